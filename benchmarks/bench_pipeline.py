"""Cold ``snakemake --cores 4`` and a no-op re-run, beside an R script that does
the same pooling and draws the same plots with metafor, measured in the same run.

Run by hand from the repository root: ``python benchmarks/bench_pipeline.py``.
The pipeline runs in a temporary copy of the tracked files (a clean clone).
"""

from __future__ import annotations

import os
import resource
import shutil
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


def main():
    snakemake = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
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
    print(f"pipeline cold run (snakemake --cores 4): {cold:6.1f} s  ({n_fig['png']} PNG, {n_fig['svg']} SVG, {n_fig['pdf']} PDF figures)")
    print(f"pipeline no-op re-run:                   {noop:6.1f} s")
    if r is not None:
        print(f"metafor R script, same pooling + plots:  {r:6.1f} s")
        print(f"cold run / R script: {cold / r:.1f}x")
    print(f"CPU time (user + system, all processes): pipeline {cold_proc.cpu:.1f} s on {os.cpu_count()} cores"
          + (f", R script {r_proc.cpu:.1f} s" if r_proc is not None else ""))


if __name__ == "__main__":
    main()
