"""Step diagnostic plots: sensitivity, influence, Baujat and bubble plots of every outcome of the batch."""

from metarepro import steps
from metarepro.scripting import guarded

sm = snakemake  # noqa: F821 - provided by Snakemake
p = sm.params
with guarded(sm.log[0]):
    steps.diagnostic_plots(sm.input.plan, p.layout, kinds=p.kinds, modern=p.modern, level=p.level,
                           common_method=p.common_method, permutations=p.permutations, seed=p.seed)
