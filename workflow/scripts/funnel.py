"""Funnel plot with Egger's test (PNG, SVG, PDF) of one outcome."""

from pathlib import Path

from metarepro.analysis import figure_inputs
from metarepro.extracted import load_analysis
from metarepro.figures import funnel_plot, save_figure
from metarepro.scripting import guarded

sm = snakemake  # noqa: F821 - provided by Snakemake
with guarded(sm.log[0]):
    an = load_analysis(sm.input.table, sm.input.spec)
    fig_in = figure_inputs(an, sm.wildcards.outcome, modern=sm.params.modern, level=sm.params.level)
    fig = funnel_plot(fig_in.result, egger=fig_in.egger, title=fig_in.title)
    save_figure(fig, Path(sm.output.png).with_suffix(""), formats=("png", "svg", "pdf"))
