"""Pool one analysis with every method and test, and judge its published targets."""

import pandas as pd

from metarepro.analysis import pooled_table, reproduction_rows
from metarepro.extracted import load_analysis
from metarepro.scripting import guarded, write_csv

sm = snakemake  # noqa: F821 - provided by Snakemake
with guarded(sm.log[0]) as log:
    an = load_analysis(sm.input.get("table", "__absent__.csv"), sm.input.spec)
    pooled = pooled_table(an, tests=tuple(sm.params.tests), level=sm.params.level)
    write_csv(pooled, sm.output.pooled)
    rows = reproduction_rows(an, tolerance=sm.params.tolerance, level=sm.params.level,
                             modern=(sm.params.modern["method"], sm.params.modern["test"]))
    write_csv(pd.DataFrame(rows), sm.output.reproduction)
    log.info("%s: %d pooled rows, %d targets", an.name, len(pooled), len(rows))
