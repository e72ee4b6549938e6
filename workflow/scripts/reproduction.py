"""Collect every analysis's reproduction rows into one table and report."""

from metarepro import steps
from metarepro.scripting import guarded

sm = snakemake  # noqa: F821 - provided by Snakemake
with guarded(sm.log[0]):
    steps.reproduction(sm.input.tables, sm.output.csv, sm.output.md, tolerance=sm.params.tolerance,
                       modern=sm.params.modern)
