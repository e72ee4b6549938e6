"""RevMan's "M-H, Random" (method MH-DL) on many 2x2 meta-analyses: metarepro in
one vectorised call vs metafor in a loop doing the same work.

Run by hand: ``python benchmarks/bench_mhdl.py [--n 20000] [--sub 200]``.
Synthetic analyses with k = 2..30 trials, 5% of arms with zero events (so
continuity corrections and double-zero studies occur). metarepro:
``pool(..., method="MH-DL", by="analysis")`` under metafor's convention (what R
can check) and under RevMan 5's. metafor, per analysis: ``escalc``, ``rma.mh``,
Q about the MH estimate and DerSimonian-Laird tau² from it, then
``rma(yi, vi, tau2 = tau2)`` (the recipe of ``tests/reference/make_mhdl.R``).
metafor is timed on a subsample and scaled to n; the figures printed are
measured in the same run, so compare the ratios. Agreement with metafor is
checked on the subsample.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import metarepro

R_LOOP = r"""
suppressMessages(library(metafor))
args <- commandArgs(TRUE)
d <- read.csv(args[1])
ids <- unique(d$analysis)
t0 <- proc.time()[["elapsed"]]
out <- vector("list", length(ids))
for (j in seq_along(ids)) {
  s <- d[d$analysis == ids[j], ]
  es <- suppressWarnings(escalc(measure = "OR", ai = events_t, n1i = total_t, ci = events_c, n2i = total_c,
                                data = s, add = 1/2, to = "only0", drop00 = TRUE))
  mh <- suppressWarnings(rma.mh(measure = "OR", ai = events_t, n1i = total_t, ci = events_c, n2i = total_c,
                                data = s, add = 1/2, to = "only0", drop00 = TRUE))
  ok <- !is.na(es$yi)
  w <- 1 / es$vi[ok]
  Q <- sum(w * (es$yi[ok] - c(mh$beta))^2)
  k <- sum(ok)
  tau2 <- if (k > 1) max(0, (Q - (k - 1)) / (sum(w) - sum(w^2) / sum(w))) else 0
  fit <- rma(es$yi[ok], es$vi[ok], tau2 = tau2)
  out[[j]] <- c(ids[j], fit$b[1], fit$se, tau2, Q)
}
el <- proc.time()[["elapsed"]] - t0
m <- do.call(rbind, out)
colnames(m) <- c("analysis", "estimate", "se", "tau2", "q")
write.csv(m, args[2], row.names = FALSE)
cat(el, "\n")
"""


def synthetic(n: int, seed: int = 20261202) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    k = rng.integers(2, 31, size=n)
    g = np.repeat(np.arange(n), k)
    m = g.size
    n1 = rng.integers(10, 400, size=m)
    n2 = rng.integers(10, 400, size=m)
    base = rng.uniform(0.02, 0.4, size=n)[g]
    lor = rng.normal(-0.2, np.sqrt(rng.choice([0.0, 0.05, 0.2], size=n)[g]))
    p2 = base
    p1 = 1 / (1 + np.exp(-(np.log(p2 / (1 - p2)) + lor)))
    e1 = rng.binomial(n1, p1)
    e2 = rng.binomial(n2, p2)
    e1[rng.random(m) < 0.05] = 0
    e2[rng.random(m) < 0.05] = 0
    study = np.concatenate([np.arange(kk) for kk in k]).astype(str)
    return pd.DataFrame({"analysis": g, "study": study, "events_t": e1, "total_t": n1,
                         "events_c": e2, "total_c": n2})


def time_metarepro(frame, convention):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tbl = metarepro.pool(frame, measure="OR", method="MH-DL", by="analysis", convention=convention)
    return time.perf_counter() - t0, tbl.summary


def time_metafor(frame, ids):
    if not shutil.which("Rscript"):
        return None, None
    with tempfile.TemporaryDirectory() as d:
        inp, out, script = Path(d, "in.csv"), Path(d, "out.csv"), Path(d, "loop.R")
        frame[frame.analysis.isin(ids)].to_csv(inp, index=False)
        script.write_text(R_LOOP)
        proc = subprocess.run(["Rscript", str(script), str(inp), str(out)], capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            print("metafor run failed:", proc.stderr.strip()[:300])
            return None, None
        return float(proc.stdout.split()[-1]), pd.read_csv(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--sub", type=int, default=200, help="analyses timed with metafor")
    args = ap.parse_args()
    frame = synthetic(args.n)
    time_metarepro(frame[frame.analysis < 20], "revman5")  # warm-up: first-use imports
    el_mf, summ = time_metarepro(frame, "metafor")
    el_rm, _ = time_metarepro(frame, "revman5")
    ids = np.arange(args.sub)
    r_el, r = time_metafor(frame, ids)
    per = {"metarepro (metafor convention)": el_mf / args.n, "metarepro (revman5)": el_rm / args.n}
    if r_el is not None:
        per["metafor loop"] = r_el / args.sub
    print(f"{args.n} analyses, {len(frame)} 2x2 tables (k = 2..30, 5% zero arms); OR, MH-DL (M-H, Random)")
    print(f"{'tool':<32} {'per analysis (ms)':>18} {'scaled to n (s)':>16} {'ratio':>8}")
    ref = per["metarepro (metafor convention)"]
    for tool, t in per.items():
        print(f"{tool:<32} {1e3 * t:>18.4f} {t * args.n:>16.1f} {t / ref:>7.1f}x")
    if r is not None:
        ours = summ.set_index("analysis").loc[r["analysis"].astype(int)]
        diffs = {c: float(np.nanmax(np.abs(ours[c].to_numpy() - r[c].to_numpy())))
                 for c in ("estimate", "se", "tau2", "q")}
        print("max |metarepro - metafor| on the subsample:", json.dumps({k: f"{v:.1e}" for k, v in diffs.items()}))


if __name__ == "__main__":
    main()
