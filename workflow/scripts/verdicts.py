"""Step verdicts: reproduction.csv of every analysis of the batch (reads its forensics.csv)."""

from metarepro import steps
from metarepro.scripting import guarded

sm = snakemake  # noqa: F821 - provided by Snakemake
p = sm.params
with guarded(sm.log[0]):
    steps.verdicts(sm.input.plan, p.layout, sm.input.forensics, tolerance=p.tolerance, level=p.level, modern=p.modern)
