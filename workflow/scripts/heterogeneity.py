"""Step heterogeneity: heterogeneity.json and .md of every outcome of the batch."""

from metarepro import steps
from metarepro.scripting import guarded

sm = snakemake  # noqa: F821 - provided by Snakemake
p = sm.params
with guarded(sm.log[0]):
    steps.heterogeneity(sm.input.plan, p.layout, method=p.modern["method"], test=p.modern["test"], level=p.level)
