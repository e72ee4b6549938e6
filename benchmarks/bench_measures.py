"""The effect measures and single-level extras of issue 14 over many synthetic
meta-analyses: metarepro (one vectorised call per measure / extra) beside
metafor (a loop over a subsample), in the same run.

Run by hand: ``python benchmarks/bench_measures.py [--n 20000] [--n-extras 2000] [--sub 200]``.

Measures (one per input family, plus the special-function ones): escalc +
REML fit + Q-profile tau² CI + back-transformed estimate (metafor:
``escalc``, ``rma(method="REML")``, ``confint``, ``predict(transf=...)``).
Extras, on generic yi/vi analyses fitted by REML: profile-likelihood tau² CI
(``confint(type="PL")``), Henmi-Copas (``hc``), fail-safe N (``fsn``,
Rosenberg), BLUPs (``blup``). metafor is timed on ``--sub`` analyses and
scaled to n; compare the ratios (machines are noisy). Agreement with metafor
is checked on the subsample (max absolute difference; metafor fits with
``threshold=1e-12``, step halving only where that fails). Henmi-Copas bounds
differ by up to ~1e-6 because metafor's ``integrate()`` runs at its default
relative tolerance (1.2e-4); SciPy's ``quad`` at 1e-13 agrees with ours (see
tests/test_reference_extras.py).
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
from metarepro import blup, publication_bias, tau2_ci

SEED = 20261202

# measure -> (columns, escalc arguments in R, R back-transformation or "")
MEASURES = {
    "PLO": ("xi=events, ni=total", "transf=transf.ilogit"),
    "PFT": ("xi=events, ni=total", "transf=transf.ipft.hm, targs=list(ni=s$total)"),
    "IRLN": ("xi=events, ti=time", "transf=exp"),
    "IRR": ("x1i=events_t, t1i=time_t, x2i=events_c, t2i=time_c", "transf=exp"),
    "MN": ("mi=mean, sdi=sd, ni=total", ""),
    "SMCR": ("m1i=mean_post, m2i=mean_pre, sd1i=sd_pre, ri=r_prepost, ni=total", ""),
    "UCOR": ("ri=r, ni=total", ""),
    "ZPCOR": ("ti=t, ni=total, mi=predictors", "transf=transf.ztor"),
}


def synthetic(measure: str, n: int, seed: int = SEED) -> pd.DataFrame:
    """``n`` analyses of k = 3..30 studies in the measure's input columns."""
    rng = np.random.default_rng([seed, list(MEASURES).index(measure)])
    k = rng.integers(3, 31, size=n)
    g = np.repeat(np.arange(n), k)
    m = g.size
    u = rng.normal(0, 0.3, size=n)[g]  # between-study variation
    total = rng.integers(20, 400, size=m)
    out = {"analysis": g, "study": np.concatenate([np.arange(kk) for kk in k]).astype(str)}
    if measure in ("PLO", "PFT"):
        p = 1 / (1 + np.exp(-(-1.0 + u)))
        out.update(events=rng.binomial(total, p), total=total)
    elif measure == "IRLN":
        time_ = rng.uniform(100, 5000, size=m).round(1)
        out.update(events=rng.poisson(time_ * 0.01 * np.exp(u)), time=time_)
    elif measure == "IRR":
        t1, t2 = rng.uniform(100, 5000, size=(2, m)).round(1)
        out.update(events_t=rng.poisson(t1 * 0.01 * np.exp(-0.3 + u)), time_t=t1,
                   events_c=rng.poisson(t2 * 0.01), time_c=t2)
    elif measure == "MN":
        out.update(mean=(50 + 5 * u + rng.normal(0, 1, m)).round(2), sd=rng.uniform(5, 15, m).round(2), total=total)
    elif measure == "SMCR":
        pre = rng.normal(50, 2, m).round(2)
        out.update(mean_pre=pre, mean_post=(pre + 3 + 3 * u + rng.normal(0, 1, m)).round(2),
                   sd_pre=rng.uniform(5, 15, m).round(2), r_prepost=rng.uniform(0.3, 0.9, m).round(2), total=total)
    elif measure == "UCOR":
        out.update(r=np.tanh(0.3 + u + rng.normal(0, 1 / np.sqrt(total - 3))).round(3), total=total)
    elif measure == "ZPCOR":
        preds = rng.integers(1, 10, size=m)
        out.update(t=(2 + 3 * u + rng.normal(0, 1, m)).round(2), total=total, predictors=preds)
    return pd.DataFrame(out)


def generic(n: int, seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng([seed, 99])
    k = rng.integers(3, 31, size=n)
    g = np.repeat(np.arange(n), k)
    tau2 = rng.choice([0.0, 0.02, 0.1, 0.3], size=n)[g]
    vi = rng.uniform(0.01, 0.3, size=g.size)
    return pd.DataFrame({"analysis": g, "study": np.concatenate([np.arange(kk) for kk in k]).astype(str),
                         "yi": rng.normal(0.2, np.sqrt(vi + tau2)), "vi": vi})


R_MEASURE = r"""
suppressMessages(library(metafor))
args <- commandArgs(TRUE)
d <- read.csv(args[1]); measure <- args[3]
ids <- unique(d$analysis)
t0 <- proc.time()[["elapsed"]]
out <- vector("list", length(ids))
for (j in seq_along(ids)) {
  s <- d[d$analysis == ids[j], ]
  es <- eval(parse(text = sprintf("escalc(measure=measure, %s, data=s)", args[4])))
  fit <- tryCatch(rma(yi, vi, data = es, method = "REML", control = list(threshold = 1e-12, maxiter = 1000)),
                  error = function(e) rma(yi, vi, data = es, method = "REML",
                                          control = list(threshold = 1e-12, maxiter = 10000, stepadj = 0.5)))
  ci <- confint(fit, control = list(tol = 1e-12))
  nat <- if (nchar(args[5])) eval(parse(text = sprintf("predict(fit, %s)$pred", args[5]))) else NA
  out[[j]] <- c(ids[j], fit$b[1], fit$tau2, ci$random[1, 2], ci$random[1, 3], nat)
}
el <- proc.time()[["elapsed"]] - t0
m <- do.call(rbind, out)
colnames(m) <- c("analysis", "estimate", "tau2", "tau2_ci_lower", "tau2_ci_upper", "estimate_natural")
write.csv(m, args[2], row.names = FALSE)
cat(el, "\n")
"""

R_EXTRAS = r"""
suppressMessages(library(metafor))
args <- commandArgs(TRUE)
d <- read.csv(args[1])
ids <- unique(d$analysis)
fits <- lapply(ids, function(a) { s <- d[d$analysis == a, ]
  tryCatch(rma(s$yi, s$vi, method = "REML", control = list(threshold = 1e-12, maxiter = 1000)),
           error = function(e) rma(s$yi, s$vi, method = "REML",
                                   control = list(threshold = 1e-12, maxiter = 10000, stepadj = 0.5))) })
time_it <- function(f) { t0 <- proc.time()[["elapsed"]]; v <- lapply(fits, f); list(el = proc.time()[["elapsed"]] - t0, v = v) }
pl <- time_it(function(f) { r <- confint(f, type = "PL", control = list(tol = 1e-12))$random; c(r[1, 2], r[1, 3]) })
hc <- time_it(function(f) { h <- hc(f, control = list(tol = 1e-12)); c(h$ci.lb, h$ci.ub) })
fs <- time_it(function(f) fsn(f$yi, f$vi, type = "Rosenberg")$fsnum)
bl <- time_it(function(f) blup(f)$pred[1])
m <- cbind(ids, do.call(rbind, pl$v), do.call(rbind, hc$v), unlist(fs$v), unlist(bl$v))
colnames(m) <- c("analysis", "pl_lower", "pl_upper", "hc_lower", "hc_upper", "fsn", "blup1")
write.csv(m, args[2], row.names = FALSE)
cat(pl$el, hc$el, fs$el, bl$el, "\n")
"""


def _rscript(code, frame, extra_args=()):
    if not shutil.which("Rscript"):
        return None, None
    with tempfile.TemporaryDirectory() as d:
        inp, out, script = Path(d, "in.csv"), Path(d, "out.csv"), Path(d, "run.R")
        frame.to_csv(inp, index=False)
        script.write_text(code)
        proc = subprocess.run(["Rscript", str(script), str(inp), str(out), *extra_args], capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            print("metafor run failed:", proc.stderr.strip()[:300])
            return None, None
        return [float(x) for x in proc.stdout.split()], pd.read_csv(out)


def _row(name, ours_per, theirs_per, n, diff):
    ratio = f"{theirs_per / ours_per:>8.0f}x" if theirs_per else "       -"
    theirs = f"{1e3 * theirs_per:>12.3f}" if theirs_per else "           -"
    print(f"{name:<26} {1e3 * ours_per:>12.4f} {theirs} {ratio}   {diff}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000, help="analyses per measure")
    ap.add_argument("--n-extras", type=int, default=2_000, help="analyses for the extras")
    ap.add_argument("--sub", type=int, default=200, help="analyses timed with metafor")
    args = ap.parse_args()
    print(f"{args.n} analyses per measure (k = 3..30), REML + Q-profile tau² CI + back-transformation; "
          f"extras on {args.n_extras} analyses; metafor on {args.sub} of each, scaled")
    print(f"{'':<26} {'metarepro ms':>12} {'metafor ms':>12} {'ratio':>9}   max |metarepro - metafor|")
    for measure, (cols, transf) in MEASURES.items():
        frame = synthetic(measure, args.n)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tbl = metarepro.pool(frame, measure=measure, method="REML", by="analysis")
        ours = (time.perf_counter() - t0) / args.n
        sub = frame[frame.analysis < args.sub]
        el, mf = _rscript(R_MEASURE, sub, (measure, cols, transf))
        diff = ""
        if mf is not None:
            s = tbl.summary.set_index("analysis").loc[mf["analysis"].astype(int)]
            fields = ["estimate", "tau2", "tau2_ci_lower", "tau2_ci_upper"] + (["estimate_natural"] if transf else [])
            diff = json.dumps({f: f"{np.nanmax(np.abs(s[f].to_numpy(float) - mf[f].to_numpy(float))):.1e}"
                               for f in fields})
        _row(f"measure {measure}", ours, el[0] / args.sub if el else None, args.n, diff)

    frame = generic(args.n_extras)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tbl = metarepro.pool(frame, measure="GEN", method="REML", by="analysis")
    ours = {}
    for name, fn in (("PL tau² CI", tau2_ci.profile_ci), ("Henmi-Copas", publication_bias.henmi_copas),
                     ("fail-safe N (Rosenberg)", lambda t: publication_bias.fail_safe_n(t, "Rosenberg")),
                     ("BLUPs", blup.blup)):
        t0 = time.perf_counter()
        res = fn(tbl)
        ours[name] = ((time.perf_counter() - t0) / args.n_extras, res)
    el, mf = _rscript(R_EXTRAS, frame[frame.analysis < args.sub])
    diffs = {}
    if mf is not None:
        ids = mf["analysis"].astype(int).to_numpy()
        pl = ours["PL tau² CI"][1].set_index("analysis").loc[ids]
        hc = ours["Henmi-Copas"][1].set_index("analysis").loc[ids]
        fs = ours["fail-safe N (Rosenberg)"][1].set_index("analysis").loc[ids]
        bl = ours["BLUPs"][1].groupby("analysis").first().loc[ids]
        mx = lambda a, b: f"{np.nanmax(np.abs(np.asarray(a, float) - np.asarray(b, float))):.1e}"
        diffs = {"PL tau² CI": mx(np.c_[pl.tau2_ci_lower, pl.tau2_ci_upper], mf[["pl_lower", "pl_upper"]]),
                 "Henmi-Copas": mx(np.c_[hc.ci_lower, hc.ci_upper], mf[["hc_lower", "hc_upper"]]),
                 "fail-safe N (Rosenberg)": mx(fs.fsn, mf.fsn), "BLUPs": mx(bl.pred, mf.blup1)}
    for j, (name, (per, _)) in enumerate(ours.items()):
        _row(f"extra {name}", per, el[j] / args.sub if el else None, args.n_extras, diffs.get(name, ""))


if __name__ == "__main__":
    main()
