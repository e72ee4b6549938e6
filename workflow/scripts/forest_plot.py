"""Step forest plot: forest.<format> of every outcome of the batch."""

from metarepro import steps
from metarepro.scripting import guarded

sm = snakemake  # noqa: F821 - provided by Snakemake
p = sm.params
with guarded(sm.log[0]):
    steps.forest_plots(sm.input.plan, p.layout, formats=p.formats, modern=p.modern, level=p.level,
                       common_method=p.common_method)
