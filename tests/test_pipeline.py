"""End to end: the pipeline regenerates the committed results on a clean copy.

Runs Snakemake in a temporary copy of the tracked files (as a clean clone
would be), then compares every text file in results/ with what is committed.
Also: a malformed analysis fails with the one-line message while the others
finish (--keep-going), a no-op re-run has nothing to do, and a run killed halfway
resumes without redoing finished work and ends with the same results.
"""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import EVIL, ROOT, SNAKEMAKE, snakemake, tracked_copy, tracked_files

#: Rules of the workflow's steps (each named <step>_<batch>), and the table across analyses.
STEPS = ("pool", "heterogeneity", "robustness", "forensics", "verdicts", "forest_plot", "funnel_plot",
         "diagnostic_plots", "reproduction")

pytestmark = pytest.mark.skipif(not Path(SNAKEMAKE).exists(), reason="snakemake not installed")


def run(cwd, *args):
    return snakemake(cwd, *args)


@pytest.fixture(scope="module")
def fresh(pipeline_run):
    return pipeline_run


def test_results_match_committed(fresh):
    # what git tracks, not what lies in the working tree (a report.html the README's
    # `snakemake --report results/report.html` wrote there is ignored, not committed)
    committed = sorted(Path(f) for f in tracked_files() if f.startswith("results/"))
    produced = sorted(p.relative_to(fresh) for p in (fresh / "results").rglob("*") if p.is_file())
    assert [str(p) for p in produced] == [str(p) for p in committed]
    # every number is written at 12 significant digits, so the text is what any machine regenerates
    for rel in committed:
        if rel.suffix in (".csv", ".json", ".md"):
            assert (ROOT / rel).read_text() == (fresh / rel).read_text(), rel


def test_engine_edit_reruns_what_it_computes(fresh):
    """Jobs depend on src/metarepro: an edited engine never leaves stale results (issue 11, item 5)."""
    engine = fresh / "src" / "metarepro" / "_core.py"
    text, st = engine.read_bytes(), engine.stat()
    try:
        # an edit, not a touch: Snakemake ignores a newer mtime when the content is unchanged
        engine.write_bytes(text + b"\n# edited\n")
        proc = run(fresh, "-n")
    finally:
        engine.write_bytes(text)
        os.utime(engine, (st.st_atime, st.st_mtime))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    planned = {line.split()[0].rsplit("_", 1)[0] for line in out.splitlines() if line.startswith(STEPS)}
    assert set(STEPS) <= planned | {"reproduction"}, out[-2000:]


def test_noop_rerun_does_nothing(fresh):
    proc = run(fresh, "-n")
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_bad_analysis_fails_alone(fresh, tmp_path):
    fresh = shutil.copytree(fresh, tmp_path / "run", symlinks=True)  # the shared run stays as it was
    ext = tmp_path / "extracted"
    shutil.copytree(fresh / "data" / "extracted", ext)
    name = min(p.stem for p in ext.glob("*.csv"))
    lines = (ext / f"{name}.csv").read_text().splitlines()
    head = lines[0].split(",")
    col = next(c for c in ("events_t", "mean_t", "estimate", "r") if c in head)
    cells = lines[1].split(",")
    cells[head.index(col)] = "oops"
    lines[1] = ",".join(cells)
    (ext / f"{name}.csv").write_text("\n".join(lines) + "\n")
    start = time.time()
    proc = run(fresh, "--keep-going", "--config", f"extracted_dir={ext}", "--forceall")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert f"row 2, column '{col}': 'oops' is not a number" in out
    assert "Traceback" not in out
    log = (fresh / "logs" / "check" / f"{name}.log").read_text()
    assert "'oops' is not a number" in log
    # the others finish: every other analysis's files were written by this run
    others = [p.stem for p in ext.glob("*.yaml") if p.stem != name]
    for other in others:
        for f in ("pooled.csv", "forensics.csv", "reproduction.csv"):
            assert (fresh / "results" / other / f).stat().st_mtime >= start, (other, f)


def test_report_escapes_study_labels(escaped_run):
    """snakemake --report works (its dependencies are installed with the pipeline extra), includes the
    reviewer's pages, and prints HTML from data files as text."""
    proc = subprocess.run([SNAKEMAKE, "--report", "report.html"], cwd=escaped_run,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    html = (escaped_run / "report.html").read_text()
    assert EVIL not in html
    assert "Reviewer pages" in html


def test_killed_run_resumes(fresh, tmp_path):
    """Kill the whole run (its process group, SIGKILL) once some jobs have finished and
    others are running; the re-run redoes only the unfinished jobs and ends with the
    results of a clean run, byte for byte."""
    d = tracked_copy(tmp_path / "clone")
    proc = subprocess.Popen([SNAKEMAKE, "--cores", "2"], cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    bench = d / "logs" / "benchmark"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and not list(bench.rglob("*.tsv")):
        time.sleep(0.05)
    time.sleep(3)  # a job's record is written just before Snakemake marks the job done
    assert proc.poll() is None, "the run ended before it could be killed"
    killed = time.time_ns()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # finished jobs: those whose record was written well before the kill
    finished = {p: p.stat().st_mtime_ns for p in bench.rglob("*.tsv") if p.stat().st_mtime_ns < killed - 2e9}
    assert finished
    done_outputs = {}
    for tsv in finished:  # outputs of finished jobs: those of their step and batch
        step, batch = tsv.parent.name, tsv.stem
        log = d / "logs" / step / f"{batch}.log"
        assert log.exists()
        done_outputs[(step, batch)] = log.stat().st_mtime_ns
    assert subprocess.run([SNAKEMAKE, "--unlock"], check=False, cwd=d, capture_output=True).returncode == 0
    again = run(d)
    assert again.returncode == 0, again.stderr[-3000:]
    for tsv, mtime in finished.items():
        assert tsv.stat().st_mtime_ns == mtime, f"{tsv.parent.name}/{tsv.stem} was redone"
    for (step, batch), mtime in done_outputs.items():
        assert (d / "logs" / step / f"{batch}.log").stat().st_mtime_ns == mtime
    produced = sorted(str(p.relative_to(d)) for p in (d / "results").rglob("*") if p.is_file())
    clean = sorted(str(p.relative_to(fresh)) for p in (fresh / "results").rglob("*") if p.is_file())
    assert produced == clean
    for rel in produced:
        if rel.endswith((".csv", ".json", ".md")):
            assert (d / rel).read_bytes() == (fresh / rel).read_bytes(), rel
