"""Three-level meta-analyses (rma.mv ``random = ~ 1 | cluster/es``): metarepro vs metafor, same run.

Run by hand: ``python benchmarks/bench_multilevel.py [--n 200] [--large 1200]``.

* many small analyses: ``n`` synthetic analyses of 5-20 clusters with 1-6 estimates each,
  REML, z test; metarepro's :func:`metarepro.multilevel.fit_many` (one scipy minimisation
  per analysis) against a loop of metafor's ``rma.mv`` in Rscript;
* one large analysis: ``large`` estimates in clusters of 1-6 (blocks batched by size);
  metafor with its default dense matrices and with ``sparse = TRUE``.

Both tools get the same CSV; times are CPU seconds of the fitting alone (Python's
``time.process_time``, R's ``proc.time()`` user + system inside the script), so that other
processes on the shared 2-core machine do not enter the ratio. Agreement: max
|metarepro - metafor| of estimate, se and both variance components.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from metarepro.multilevel import fit, fit_many

R_LOOP = r"""
suppressMessages(library(metafor))
args <- commandArgs(TRUE)
d <- read.csv(args[1])
ids <- unique(d$analysis)
cpu <- function() { p <- proc.time(); p[["user.self"]] + p[["sys.self"]] }
t0 <- cpu()
out <- vector("list", length(ids))
for (j in seq_along(ids)) {
  s <- d[d$analysis == ids[j], ]
  fit <- rma.mv(yi, vi, random = ~ 1 | cluster/es, data = s, method = "REML", sparse = args[3] == "sparse")
  out[[j]] <- c(ids[j], fit$b[1], fit$se, fit$sigma2)
}
el <- cpu() - t0
m <- do.call(rbind, out)
colnames(m) <- c("analysis", "estimate", "se", "sigma2_1", "sigma2_2")
write.csv(m, args[2], row.names = FALSE)
cat(el, "\n")
"""


def synthetic(n: int, clusters=(5, 21), seed: int = 20261123) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for a in range(n):
        m = rng.integers(*clusters)
        sizes = rng.integers(1, 7, size=m)
        cl = np.repeat(np.arange(m), sizes)
        s2c, s2e = rng.choice([0.0, 0.05, 0.2]), rng.choice([0.0, 0.02, 0.1])
        u = rng.normal(0, np.sqrt(s2c), m)[cl]
        vi = rng.uniform(0.01, 0.2, cl.size)
        yi = 0.3 + u + rng.normal(0, np.sqrt(s2e + vi))
        parts.append(pd.DataFrame({"analysis": a, "cluster": cl, "es": np.arange(cl.size), "yi": yi, "vi": vi}))
    return pd.concat(parts, ignore_index=True)


def run_metafor(frame: pd.DataFrame, sparse: bool = False):
    if not shutil.which("Rscript"):
        return None, None
    with tempfile.TemporaryDirectory() as tmp:
        script, inp, out = Path(tmp, "loop.R"), Path(tmp, "in.csv"), Path(tmp, "out.csv")
        script.write_text(R_LOOP)
        frame.to_csv(inp, index=False, float_format="%.17g")
        proc = subprocess.run(["Rscript", str(script), str(inp), str(out), "sparse" if sparse else "dense"],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print("metafor failed:", proc.stderr.strip()[-500:])
            return None, None
        return float(proc.stdout.split()[-1]), pd.read_csv(out)


def compare(ours: pd.DataFrame, ref: pd.DataFrame) -> str:
    m = ours.merge(ref, on="analysis", suffixes=("", "_r"))
    return ", ".join(f"{c} {np.max(np.abs(m[c] - m[c + '_r'])):.1e}" for c in ("estimate", "se", "sigma2_1", "sigma2_2"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--large", type=int, default=1200)
    args = ap.parse_args()
    lines = []

    frame = synthetic(args.n)
    fit_many(frame[frame["analysis"] == 0], "analysis", random="~ 1 | cluster/es")  # imports, first call
    t0 = time.process_time()
    ours = fit_many(frame, "analysis", random="~ 1 | cluster/es", method="REML")
    t_ours = time.process_time() - t0
    t_r, ref = run_metafor(frame)
    lines.append(f"{args.n} three-level analyses ({len(frame)} estimates; 5-20 clusters of 1-6), REML, "
                 "random = ~ 1 | cluster/es")
    lines.append(f"{'tool':12s}{'per analysis (ms CPU)':>22s}{'total (s CPU)':>14s}{'ratio':>10s}")
    lines.append(f"{'metarepro':12s}{1000 * t_ours / args.n:22.2f}{t_ours:14.2f}{'1x':>10s}")
    if t_r is not None:
        lines.append(f"{'metafor':12s}{1000 * t_r / args.n:22.2f}{t_r:14.2f}{t_r / t_ours:9.1f}x")
        lines.append(f"not converged (metarepro): {int((~ours['converged']).sum())}; max |metarepro - metafor|: "
                     + compare(ours, ref))

    big = synthetic(1, clusters=(args.large // 3, args.large // 3 + 1), seed=7)
    t0 = time.process_time()
    r = fit("yi", "vi", big, random="~ 1 | cluster/es", method="REML")
    t_big = time.process_time() - t0
    t_rb, refb = run_metafor(big)
    lines.append("")
    lines.append(f"one three-level analysis of {len(big)} estimates in {big['cluster'].nunique()} clusters, REML")
    lines.append(f"{'metarepro':12s}{t_big:12.2f} s CPU{'1x':>10s}")
    if t_rb is not None:
        lines.append(f"{'metafor':12s}{t_rb:12.2f} s CPU{t_rb / t_big:9.1f}x   (dense matrices, rma.mv's default)")
        t_rs, _ = run_metafor(big, sparse=True)
        if t_rs is not None:
            lines.append(f"{'metafor':12s}{t_rs:12.2f} s CPU{t_rs / t_big:9.1f}x   (sparse = TRUE)")
        ob = pd.DataFrame({"analysis": [0], "estimate": [r.estimate], "se": [r.se], "sigma2_1": [r.sigma2[0]],
                           "sigma2_2": [r.sigma2[1]]})
        lines.append("max |metarepro - metafor|: " + compare(ob, refb))
    text = "\n".join(lines)
    print(text)
    Path(__file__).with_name("multilevel_result.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
