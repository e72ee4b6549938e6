"""Heterogeneity report (JSON + Markdown) of one outcome."""

from metarepro.analysis import dumps, heterogeneity
from metarepro.extracted import load_analysis
from metarepro.scripting import guarded, write_text

sm = snakemake  # noqa: F821 - provided by Snakemake
with guarded(sm.log[0]):
    an = load_analysis(sm.input.table, sm.input.spec)
    report, md = heterogeneity(an, sm.wildcards.outcome, method=sm.params.modern["method"],
                               test=sm.params.modern["test"], level=sm.params.level)
    write_text(sm.output.json, dumps(report))
    write_text(sm.output.md, md)
