"""Cold ``snakemake --cores 4`` and a no-op re-run, beside an R script that does
the same pooling and draws the same plots with metafor, measured in the same run.

Run by hand from the repository root: ``python benchmarks/bench_pipeline.py``.
The pipeline runs in a temporary copy of the tracked files (a clean clone).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd, cwd):
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    el = time.perf_counter() - t0
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
        cold, _ = timed([snakemake, "--cores", "4", "--quiet", "all"], d)
        noop, _ = timed([snakemake, "--cores", "4", "--quiet", "all"], d)
        n_fig = {ext: len(list(Path(d, "results").rglob(f"*.{ext}"))) for ext in ("png", "svg", "pdf")}
        r = None
        if shutil.which("Rscript"):
            r, _ = timed(["Rscript", str(ROOT / "benchmarks" / "pipeline_metafor.R"), "data/extracted",
                          str(Path(d) / "r_out")], d)
    print(f"pipeline cold run (snakemake --cores 4): {cold:6.1f} s  ({n_fig['png']} PNG, {n_fig['svg']} SVG, {n_fig['pdf']} PDF figures)")
    print(f"pipeline no-op re-run:                   {noop:6.1f} s")
    if r is not None:
        print(f"metafor R script, same pooling + plots:  {r:6.1f} s")
        print(f"cold run / R script: {cold / r:.1f}x")


if __name__ == "__main__":
    main()
