"""End to end: the pipeline regenerates the committed results on a clean copy.

Runs Snakemake in a temporary copy of the tracked files (as a clean clone
would be), then compares every text file in results/ with what is committed.
Also: a malformed analysis fails with the one-line message while the others
finish (--keep-going), and a no-op re-run has nothing to do.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import EVIL, ROOT, SNAKEMAKE, snakemake

pytestmark = pytest.mark.skipif(not Path(SNAKEMAKE).exists(), reason="snakemake not installed")


def run(cwd, *args):
    return snakemake(cwd, *args)


@pytest.fixture(scope="module")
def fresh(pipeline_run):
    return pipeline_run


def test_results_match_committed(fresh):
    committed = sorted(p.relative_to(ROOT) for p in (ROOT / "results").rglob("*") if p.is_file())
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
    planned = {line.split()[0] for line in out.splitlines() if line.startswith(("analyse_", "reproduction"))}
    analyses = {f"analyse_{p.stem}" for p in (fresh / "data" / "extracted").glob("*.yaml")}
    assert analyses | {"reproduction"} <= planned, out[-2000:]


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
    proc = run(fresh, "--keep-going", "--config", f"extracted_dir={ext}", "--forceall")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert f"row 2, column '{col}': 'oops' is not a number" in out
    assert "Traceback" not in out
    log = (fresh / "logs" / "analyse" / f"{name}.log").read_text()
    assert "'oops' is not a number" in log


def test_report_escapes_study_labels(escaped_run):
    """snakemake --report works (its dependencies are installed with the pipeline extra), includes the
    reviewer's pages, and prints HTML from data files as text."""
    proc = subprocess.run([SNAKEMAKE, "--report", "report.html"], cwd=escaped_run,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    html = (escaped_run / "report.html").read_text()
    assert EVIL not in html
    assert "Reviewer pages" in html
