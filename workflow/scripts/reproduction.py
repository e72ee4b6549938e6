"""Collect every analysis's reproduction rows into one table and report."""

import pandas as pd

from metarepro.reproduce import modern_label, reproduction_markdown
from metarepro.scripting import guarded, write_csv, write_text

sm = snakemake  # noqa: F821 - provided by Snakemake
with guarded(sm.log[0]):
    parts = [pd.read_csv(p) for p in sm.input.tables]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    write_csv(table, sm.output.csv)
    modern = modern_label((sm.params.modern["method"], sm.params.modern["test"]))
    write_text(sm.output.md, reproduction_markdown(table, sm.params.tolerance, modern=modern))
