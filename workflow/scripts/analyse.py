"""Everything of one analysis: pooled table, verdicts, and per outcome the
heterogeneity report (JSON + Markdown) and forest and funnel plots (PNG, SVG, PDF)."""

from pathlib import Path

import pandas as pd

from metarepro.analysis import (
    REPRODUCTION_COLUMNS,
    dumps,
    figure_inputs,
    heterogeneity,
    pooled_table,
    reproduction_rows,
)
from metarepro.extracted import load_analysis
from metarepro.figures import forest_plot, funnel_plot, save_figure
from metarepro.scripting import guarded, write_csv, write_text

sm = snakemake  # noqa: F821 - provided by Snakemake
p = sm.params
with guarded(sm.log[0]) as log:
    an = load_analysis(sm.input.get("table", "__no_per_trial_data__.csv"), sm.input.spec)
    write_csv(pooled_table(an, tests=tuple(p.tests), level=p.level), sm.output.pooled)
    rows = reproduction_rows(an, tolerance=p.tolerance, level=p.level,
                             modern=(p.modern["method"], p.modern["test"]))
    write_csv(pd.DataFrame(rows, columns=list(REPRODUCTION_COLUMNS)), sm.output.reproduction)
    for outcome in p.outcomes:
        report, md = heterogeneity(an, outcome, method=p.modern["method"], test=p.modern["test"], level=p.level)
        write_text(sm.output[f"{outcome}__heterogeneity_json"], dumps(report))
        write_text(sm.output[f"{outcome}__heterogeneity_md"], md)
        fig_in = figure_inputs(an, outcome, modern=p.modern, level=p.level, common_method=p.common_method)
        forest = forest_plot(fig_in.result, fig_in.frame, common=fig_in.common, flagged=fig_in.flagged,
                             subgroups=fig_in.subgroups, title=fig_in.title)
        save_figure(forest, Path(sm.output[f"{outcome}__forest_png"]).with_suffix(""))
        save_figure(funnel_plot(fig_in.result, egger=fig_in.egger, title=fig_in.title),
                    Path(sm.output[f"{outcome}__funnel_png"]).with_suffix(""))
        log.info("%s / %s: k = %d", an.name, outcome, fig_in.result.k)
