"""Step forensics: forensics.csv of every analysis of the batch."""

from metarepro import steps
from metarepro.scripting import guarded

sm = snakemake  # noqa: F821 - provided by Snakemake
p = sm.params
with guarded(sm.log[0]):
    steps.forensics(sm.input.plan, p.layout, sm.output.batch, level=p.level)
