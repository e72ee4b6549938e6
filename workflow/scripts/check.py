"""A malformed analysis: say what is wrong in one line and fail (planning kept it out of the batches)."""

from metarepro.errors import InputError
from metarepro.scripting import guarded
from metarepro.steps import problem

sm = snakemake  # noqa: F821 - provided by Snakemake
with guarded(sm.log[0]):
    yaml = next(f for f in sm.input if f.endswith(".yaml"))
    csv = next((f for f in sm.input if f.endswith(".csv")), None)
    err = problem(yaml, csv)
    raise err or InputError("was malformed when this run was planned and is sound now: run again", file=yaml)
