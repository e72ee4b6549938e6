"""Step engine: one file that fingerprints the engine's sources, the input through which every job depends on them."""

from metarepro.plan import fingerprint
from metarepro.scripting import guarded

sm = snakemake  # noqa: F821 - provided by Snakemake
with guarded(sm.log[0]):
    fingerprint(sm.input.sources, sm.output.fingerprint)
