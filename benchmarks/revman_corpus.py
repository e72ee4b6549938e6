"""Reproduction rate of RevMan's numbers over every real file at hand.

Usage: python benchmarks/revman_corpus.py [FOLDER_OF_DATA_ROWS_CSV] [--out FILE]

Reads the committed RevMan 5 fixtures (tests/data/revman/*.rm5) and every
``*-data-rows.csv`` in the folder (default benchmarks/data/pairwise70, written by
benchmarks/pairwise70_to_datarows.R; not committed), reproduces each review with
``metarepro.review.reproduce`` and prints totals and per-study effects, CIs and
weights checked and reproduced, overall and by method, plus every failure group.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from metarepro.datarows import read_data_rows
from metarepro.review import reproduce
from metarepro.revman import read_rm5


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", nargs="?", default=str(ROOT / "benchmarks" / "data" / "pairwise70"))
    ap.add_argument("--out", default=None, help="write the per-study table (CSV) here")
    args = ap.parse_args()
    files = sorted((ROOT / "tests" / "data" / "revman").glob("*.rm5")) + sorted(Path(args.folder).glob("*-data-rows.csv"))
    t0 = time.perf_counter()
    totals, studies, problems, engine = [], [], Counter(), Counter()
    for f in files:
        r = read_rm5(f) if f.suffix == ".rm5" else read_data_rows(f)
        rep = reproduce(r)
        totals += [dict(t, file=f.name) for t in rep.targets]
        studies.append(rep.studies.assign(file=f.name, format=r.format))
        for p in rep.problems:
            problems[p.split(": ", 1)[-1].split(";")[0][:90]] += 1
        for n in rep.engine_notes:
            engine[n.split(": ", 1)[-1]] += 1
    st = pd.concat(studies, ignore_index=True)
    elapsed = time.perf_counter() - t0
    print(f"{len(files)} files, {st['outcome'].groupby(st['file']).nunique().sum()} analyses, "
          f"{len(st)} study rows, {elapsed:.0f} s")
    tt = [t for t in totals if t["published_estimate"] is not None]
    print(f"totals: {sum(t['verdict'] == 'reproduced' for t in tt)} of {len(tt)} reproduced "
          f"(verdicts {dict(Counter(t['verdict'] for t in tt))})")
    for fmt, g in st.groupby("format"):
        for col in ("effect_agrees", "ci_agrees", "weight_agrees"):
            c = g[col].dropna()
            print(f"{fmt}: study {col.split('_')[0]}: {int((c == True).sum())} of {len(c)} "
                  f"({100 * (c == True).mean():.2f}%)")
        for m, gm in g.groupby("method"):
            c = gm["weight_agrees"].dropna()
            e = gm["effect_agrees"].dropna()
            print(f"  method {m}: effects {int((e == True).sum())}/{len(e)}, weights "
                  f"{int((c == True).sum())}/{len(c)}")
    explain_weights(st)
    print("problems (grouped):")
    for k, v in problems.most_common(15):
        print(f"  {v:6d}  {k}")
    print("engine notes (grouped):")
    for k, v in engine.most_common(10):
        print(f"  {v:6d}  {k}")
    if args.out:
        st.to_csv(args.out, index=False)
    return 0


def explain_weights(st: pd.DataFrame) -> None:
    """Every printed weight we do not reproduce at the export's 6 decimals, by cause (RevMan and
    metarepro disagreeing on whether a study is estimable, differences below the forest plot's
    0.1 percentage point, the rest), then analysis by analysis."""
    d = st[(st["format"] == "cochrane-data-rows") & st["weight_agrees"].notna()]
    bad = d[d["weight_agrees"] == False].copy()
    diff = (bad["ours_weight"] - bad["published_weight"]).abs()
    cause = pd.Series("other", index=bad.index)
    cause[diff < 0.05] = "differs by < 0.05 percentage points (agrees at the forest plot's 0.1%)"
    cause[bad["note"].fillna("").str.contains("estimable")] = "RevMan and metarepro differ on estimability"
    bad["cause"] = cause
    near = ((d["ours_weight"] - d["published_weight"]).abs() < 0.05) | (d["weight_agrees"] == True)
    print(f"weights at the forest plot's precision (0.1 percentage point): {int(near.sum())} of {len(d)} "
          f"({100 * near.mean():.2f}%)")
    print(f"weights not reproduced at 6 decimals, by cause ({len(bad)}):")
    for c, n in bad["cause"].value_counts().items():
        print(f"  {n:6d}  {c}")
    print("  analysis by analysis (file, analysis, method, measure, rows, largest difference, cause):")
    g = bad.assign(diff=diff).groupby(["file", "outcome", "method", "measure", "cause"])
    for (f, o, m, me, c), x in sorted(g, key=lambda kv: -len(kv[1])):
        print(f"    {f.removesuffix('-data-rows.csv')}  {o}  {m} {me}  {len(x)}  {x['diff'].max():.6f}  {c}")


if __name__ == "__main__":
    raise SystemExit(main())
