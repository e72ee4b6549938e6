"""The pipeline's speed beside metafor doing the same work, measured in the same run.

Run by hand from the repository root::

    python benchmarks/bench_pipeline.py                     # bundled analyses, 3 repeats, then 10/100/1000
    python benchmarks/bench_pipeline.py --repeats 5 --scale 10 100 --r-max 100

1. The bundled analyses (``data/extracted``), ``--repeats`` times: a cold
   ``snakemake --cores 2`` on a clean copy of the tracked files, a no-op re-run, and
   ``benchmarks/pipeline_metafor.R`` (the same pooling, diagnostics, forensics and
   plots with metafor). Medians, and the median of the per-run ratios.
2. Figures: CPU per figure file, from the ``benchmark:`` record of every figure job
   (CPU of the job's process, imports included, over the files it wrote).
3. Scale: ``--scale`` sizes (analyses, the bundled ones replicated by
   ``benchmarks/replicate.py``), figures off, one cold run each: wall time, CPU of all
   processes, CPU of each step (from the jobs' benchmark records), peak memory (largest
   resident set of one process), beside the R script without plots (sizes up to ``--r-max``).

Machines here are shared and noisy: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import csv
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
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
FIGURE_STEPS = ("forest_plot", "funnel_plot", "diagnostic_plots")
NO_FIGURES = "figures: {forest: [], funnel: [], sensitivity: [], influence: [], baujat: [], bubble: []}\nsite: false\n"
sys.path.insert(0, str(ROOT / "benchmarks"))
from replicate import replicate


def timed(cmd, cwd):
    """Wall seconds, CPU seconds (user + system, the command and all its children) and
    the peak resident set (MiB) of the largest process it waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, after.ru_maxrss / 1024


def clean_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if not f.startswith("results/") and (ROOT / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)
    return dest


def job_records(workdir: Path) -> dict[str, list[dict]]:
    """Step -> the benchmark records (Snakemake's ``benchmark:`` TSV) of its jobs."""
    out: dict[str, list[dict]] = {}
    for tsv in sorted((workdir / "logs" / "benchmark").rglob("*.tsv")):
        step = tsv.parent.name if tsv.parent.name != "benchmark" else tsv.stem
        with open(tsv, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        out.setdefault(step, []).append({k: float(v) for k, v in rows[-1].items() if k not in ("h:m:s",)})
    return out


def figure_files(workdir: Path) -> int:
    return sum(len(list((workdir / "results").rglob(f"*.{ext}"))) for ext in ("png", "svg", "pdf"))


def bundled_run() -> dict:
    with tempfile.TemporaryDirectory() as d:
        wd = clean_copy(Path(d))
        cold = timed([SNAKEMAKE, "--cores", "2", "--quiet", "all"], wd)
        noop = timed([SNAKEMAKE, "--cores", "2", "--quiet", "all"], wd)
        jobs = job_records(wd)
        fig_cpu = sum(r["cpu_time"] for s in FIGURE_STEPS for r in jobs.get(s, []))
        r = timed(["Rscript", str(ROOT / "benchmarks" / "pipeline_metafor.R"), "data/extracted",
                   str(wd / "r_out")], wd) if shutil.which("Rscript") else None
        return {"cold": cold, "noop": noop, "r": r, "figures": figure_files(wd), "figure_cpu": fig_cpu,
                "job_rss": max(x["max_rss"] for rs in jobs.values() for x in rs)}


def scale_run(n: int, r_max: int, draw: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as d:
        wd = clean_copy(Path(d) / "wf")
        names = replicate(n, Path(d) / "extracted", ROOT / "data" / "extracted")
        with_data = sum((Path(d) / "extracted" / f"{x}.csv").exists() for x in names)
        (Path(d) / "nofig.yaml").write_text(NO_FIGURES)
        cfg = ["--configfile", "config.yaml"] + ([] if draw else [str(Path(d) / "nofig.yaml")])
        cold = timed([SNAKEMAKE, "--cores", "2", "--quiet", "all", *cfg, "--config",
                      f"extracted_dir={Path(d) / 'extracted'}"], wd)
        jobs = job_records(wd)
        outcomes = len(list((wd / "results").rglob("heterogeneity.json")))
        r = None
        if n <= r_max and shutil.which("Rscript"):
            args = [str(Path(d) / "extracted"), str(Path(d) / "r_out")] + ([] if draw else ["noplots"])
            r = timed(["Rscript", str(ROOT / "benchmarks" / "pipeline_metafor.R"), *args], wd)
        steps = {s: sum(x["cpu_time"] for x in rs) for s, rs in jobs.items()}
        return {"n": n, "with_data": with_data, "outcomes": outcomes, "cold": cold, "r": r, "steps": steps,
                "job_rss": max(x["max_rss"] for rs in jobs.values() for x in rs), "figures": figure_files(wd)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scale", type=int, nargs="*", default=[10, 100, 1000])
    ap.add_argument("--r-max", type=int, default=1000, help="largest size the R script also runs")
    args = ap.parse_args()
    med = statistics.median

    runs = [bundled_run() for _ in range(args.repeats)]
    for i, run in enumerate(runs, 1):
        line = f"run {i}: cold {run['cold'][0]:5.1f} s (CPU {run['cold'][1]:5.1f} s), no-op {run['noop'][0]:4.1f} s"
        if run["r"]:
            line += (f", R script {run['r'][0]:4.1f} s (CPU {run['r'][1]:4.1f} s), "
                     f"{run['cold'][0] / run['r'][0]:.1f}x the R script")
        print(line)
    print(f"median of {args.repeats} runs ({os.cpu_count()} cores):")
    print(f"pipeline cold run (snakemake --cores 2): {med(r['cold'][0] for r in runs):6.1f} s, "
          f"CPU {med(r['cold'][1] for r in runs):.1f} s")
    print(f"pipeline no-op re-run:                   {med(r['noop'][0] for r in runs):6.1f} s")
    if all(r["r"] for r in runs):
        print(f"metafor R script, same work:             {med(r['r'][0] for r in runs):6.1f} s, "
              f"CPU {med(r['r'][1] for r in runs):.1f} s")
        print(f"cold run / R script: {med(r['cold'][0] / r['r'][0] for r in runs):.1f}x wall, "
              f"{med(r['cold'][1] / r['r'][1] for r in runs):.1f}x CPU (medians of the per-run ratios)")
    n_fig = runs[0]["figures"]
    print(f"figures: {n_fig} files, CPU of the figure jobs {med(r['figure_cpu'] for r in runs):.1f} s = "
          f"{med(r['figure_cpu'] for r in runs) / n_fig:.3f} s per file (imports included)")
    print(f"peak memory: {max(r['cold'][2] for r in runs):.0f} MiB (largest process), "
          f"largest job {max(r['job_rss'] for r in runs):.0f} MiB")

    if args.scale:
        print("\nscale (bundled analyses replicated; figures off; one cold run each):")
        head = ("analyses", "with data", "outcomes", "wall s", "CPU s", "CPU ms/analysis", "peak MiB", "R wall s",
                "R CPU s", "wall / R")
        print(" | ".join(head))
        rows = []
        for n in args.scale:
            s = scale_run(n, args.r_max)
            rows.append(s)
            r = s["r"]
            print(" | ".join([str(n), str(s["with_data"]), str(s["outcomes"]), f"{s['cold'][0]:.1f}",
                              f"{s['cold'][1]:.1f}", f"{1000 * s['cold'][1] / n:.0f}", f"{s['cold'][2]:.0f}",
                              f"{r[0]:.1f}" if r else "-", f"{r[1]:.1f}" if r else "-",
                              f"{s['cold'][0] / r[0]:.2f}" if r else "-"]), flush=True)
        for s in rows:
            total = sum(s["steps"].values())
            parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(s["steps"].items(), key=lambda kv: -kv[1]))
            print(f"{s['n']} analyses, CPU by step (jobs, s): {parts}; Snakemake itself (planning, checks, "
                  f"scheduling) {s['cold'][1] - total:.1f}")


if __name__ == "__main__":
    main()
