"""Step plan: the batch's analyses, their files, outcomes and moderators, for its other steps."""

from metarepro.scripting import guarded
from metarepro.steps import plan_batch

sm = snakemake  # noqa: F821 - provided by Snakemake
with guarded(sm.log[0]):
    plan_batch(sm.input.analyses, sm.output.plan)
