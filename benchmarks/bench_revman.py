"""Import + reproduction of the largest real review at hand, timed beside a
metafor loop doing the same pooling in the same run.

Run by hand: ``python benchmarks/bench_revman.py [FILE] [--repeat 3]``. FILE
defaults to the data-rows export with the most analyses in
benchmarks/data/pairwise70 (see tests/data/revman/README.md), else the largest
committed .rm5 fixture. metarepro: read the file, infer what it does not print,
pool every analysis and subgroup (one engine call per measure x method x level)
and compare every total and study with RevMan's numbers. metafor
(benchmarks/bench_revman.R): a loop of ``rma``/``rma.mh``/``rma.peto`` over the
same analyses with the same methods, on rows this script writes from the same
file (reading excluded). Medians of ``--repeat`` runs; writes
benchmarks/revman_result.txt.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from metarepro.datarows import read_data_rows
from metarepro.names import METHODS
from metarepro.review import engine_blocks, reproduce
from metarepro.revman import read_rm5


def largest() -> Path:
    rows = sorted((ROOT / "benchmarks" / "data" / "pairwise70").glob("*-data-rows.csv"))
    if rows:
        def n_analyses(p):
            d = pd.read_csv(p, usecols=["Analysis group", "Analysis number"], dtype=str)
            return len(d.drop_duplicates())
        return max(rows, key=n_analyses)
    return max((ROOT / "tests" / "data" / "revman").glob("*.rm5"), key=lambda p: p.stat().st_size)


def run_ours(path: Path):
    t0 = time.perf_counter()
    review = read_rm5(path) if path.suffix == ".rm5" else read_data_rows(path)
    rep = reproduce(review)
    return time.perf_counter() - t0, review, rep


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", nargs="?")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    path = Path(args.file) if args.file else largest()
    times = []
    for _ in range(args.repeat):
        t, review, rep = run_ours(path)
        times.append(t)
    blocks = engine_blocks(review)
    n_keys = sum(f["key"].nunique() for f in blocks.values())
    rows = []
    for (dtype, measure, method, level), f in blocks.items():
        if method not in METHODS or method == "MH-DL":
            continue
        rows.append(f.assign(measure=measure, method=method, level=level,
                             block_key=f["key"] + "|" + measure + "|" + method))
    lines = [(f"file: {path.name} ({review.format}); {len(review.outcomes)} analyses, {n_keys} pooled analyses "
             f"and subgroups, {sum(len(o.studies) for o in review.outcomes)} study rows")]
    s = rep.summary()
    lines.append(f"metarepro: read + infer + pool + compare, median of {args.repeat}: {statistics.median(times):.2f} s "
                 f"(totals {s['totals_reproduced']}/{s['totals']}, study effects "
                 f"{s.get('study_effect_reproduced')}/{s.get('study_effect_checked')}, weights "
                 f"{s.get('study_weight_reproduced')}/{s.get('study_weight_checked')})")
    if rows and shutil.which("Rscript"):
        data = pd.concat(rows, ignore_index=True)
        with tempfile.TemporaryDirectory() as tmp:
            inp, out = Path(tmp) / "rows.csv", Path(tmp) / "out.csv"
            data.drop(columns=[c for c in data.columns if c.startswith("_")]).to_csv(inp, index=False)
            r_times = []
            for _ in range(args.repeat):
                proc = subprocess.run(["Rscript", str(ROOT / "benchmarks" / "bench_revman.R"), str(inp), str(out)],
                                      capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    lines.append(f"metafor: failed: {proc.stderr.strip()[-300:]}")
                    break
                r_times.append(float(proc.stdout.split()[-1]))
            if r_times:
                n_r = data["block_key"].nunique()
                r = statistics.median(r_times)
                lines.append(f"metafor loop over the same {n_r} analyses (pooling only, reading excluded), "
                             f"median of {len(r_times)}: {r:.2f} s")
                lines.append(f"ratio metafor / metarepro: {r / statistics.median(times):.1f}x "
                             "(metarepro's time includes reading, forensics and the comparisons)")
                got = pd.read_csv(out)
                lines.append(f"metafor fits that failed: {int(got['estimate'].isna().sum())} of {len(got)}")
    else:
        lines.append("metafor: not run (Rscript missing or no analysis with a method metafor has)")
    skipped = sum(f["key"].nunique() for (d, m, meth, lv), f in blocks.items() if meth == "MH-DL")
    if skipped:
        lines.append(f"not in the metafor loop: {skipped} analyses pooled with MH-DL (RevMan's M-H random; "
                     "metafor has no such method)")
    text = "\n".join(lines)
    print(text)
    (ROOT / "benchmarks" / "revman_result.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
