"""Step pool: pooled.csv of every analysis of the batch (every outcome x method x test)."""

from metarepro import steps
from metarepro.scripting import guarded

sm = snakemake  # noqa: F821 - provided by Snakemake
p = sm.params
with guarded(sm.log[0]):
    steps.pool(sm.input.plan, p.layout, tests=p.tests, level=p.level)
