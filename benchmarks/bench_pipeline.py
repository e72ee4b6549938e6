"""Cold ``snakemake --cores 4`` and a no-op re-run, beside an R script that does
the same pooling and draws the same plots with metafor, measured in the same run.

Run by hand from the repository root: ``python benchmarks/bench_pipeline.py``.
The pipeline runs in a temporary copy of the tracked files (a clean clone).
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd, cwd):
    """Wall-clock seconds, and CPU seconds (user + system) of the command and all its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    el = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        print(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return el, proc


def one_run(snakemake):
    """Cold run, no-op re-run and the R script, in a fresh copy of the tracked files."""
    with tempfile.TemporaryDirectory() as d:
        files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        for f in files:
            if not f.startswith("results/") and (ROOT / f).is_file():
                (Path(d) / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / f, Path(d) / f)
        cold, cold_proc = timed([snakemake, "--cores", "4", "--quiet", "all"], d)
        noop, _ = timed([snakemake, "--cores", "4", "--quiet", "all"], d)
        n_fig = {ext: len(list(Path(d, "results").rglob(f"*.{ext}"))) for ext in ("png", "svg", "pdf")}
        r = r_proc = None
        if shutil.which("Rscript"):
            r, r_proc = timed(["Rscript", str(ROOT / "benchmarks" / "pipeline_metafor.R"), "data/extracted",
                               str(Path(d) / "r_out")], d)
    return {"cold": cold, "cold_cpu": cold_proc.cpu, "noop": noop, "figures": n_fig,
            "r": r, "r_cpu": None if r_proc is None else r_proc.cpu}


def main():
    """``python benchmarks/bench_pipeline.py [REPEATS]`` (default 3): every run, then the medians."""
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    snakemake = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    runs = [one_run(snakemake) for _ in range(repeats)]
    for i, run in enumerate(runs, 1):
        ratio = f", {run['cold'] / run['r']:.1f}x the R script" if run["r"] else ""
        print(f"run {i}: cold {run['cold']:5.1f} s, no-op {run['noop']:4.1f} s"
              + (f", R script {run['r']:4.1f} s" if run["r"] else "") + ratio)
    med = statistics.median
    n_fig = runs[0]["figures"]
    print(f"median of {repeats} runs:")
    print(f"pipeline cold run (snakemake --cores 4): {med(r['cold'] for r in runs):6.1f} s  "
          f"({n_fig['png']} PNG, {n_fig['svg']} SVG, {n_fig['pdf']} PDF figures)")
    print(f"pipeline no-op re-run:                   {med(r['noop'] for r in runs):6.1f} s")
    if all(r["r"] for r in runs):
        print(f"metafor R script, same pooling + plots:  {med(r['r'] for r in runs):6.1f} s")
        print(f"cold run / R script: {med(r['cold'] / r['r'] for r in runs):.1f}x (median of the per-run ratios)")
    print(f"CPU time (user + system, all processes): pipeline {med(r['cold_cpu'] for r in runs):.1f} s on "
          f"{os.cpu_count()} cores" + (f", R script {med(r['r_cpu'] for r in runs):.1f} s" if all(r["r"] for r in runs)
                                      else ""))


if __name__ == "__main__":
    main()
