"""End to end: the pipeline regenerates the committed results on a clean copy.

Runs Snakemake in a temporary copy of the tracked files (as a clean clone
would be), then compares every text file in results/ with what is committed.
Also: a malformed analysis fails with the one-line message while the others
finish (--keep-going), and a no-op re-run has nothing to do.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))

pytestmark = pytest.mark.skipif(not Path(SNAKEMAKE).exists(), reason="snakemake not installed")


def tracked_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if f.startswith("results/"):
            continue
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    return dest


def run(cwd, *args):
    return subprocess.run([SNAKEMAKE, "--cores", "2", *args], cwd=cwd, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    d = tracked_copy(tmp_path_factory.mktemp("clone"))
    proc = run(d)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return d


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


def test_report_escapes_study_labels(fresh, tmp_path):
    ext = tmp_path / "extracted"
    ext.mkdir()
    evil = "<script>alert(1)</script>"
    (ext / "mini.yaml").write_text(f"""analysis: mini
title: Mini
claim: a claim
measure: RR
outcomes: [{{name: hip}}]
targets: []
trials: [{{study: "{evil}", status: present}}, {{study: B, status: present}}, {{study: C, status: present}}]
""")
    (ext / "mini.csv").write_text(
        "study,outcome,events_t,total_t,events_c,total_c,source,source_url,source_location,quote,derived\n"
        f'{evil},hip,4,123,11,139,10.1000/a,https://example.org/a,T2,"4/123 vs 11/139",\n'
        'B,hip,6,306,29,303,10.1000/b,https://example.org/b,T2,"6/306 vs 29/303",\n'
        'C,hip,3,231,11,220,10.1000/c,https://example.org/c,T2,"3/231 vs 11/220",\n')
    out = tmp_path / "wf"
    out.mkdir()
    for name in ("Snakefile", "config.yaml", "workflow"):
        src = fresh / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, out / name if src.is_dir() else out)
    cfg = ["--config", f"extracted_dir={ext}"]
    assert run(out, *cfg).returncode == 0
    proc = subprocess.run([SNAKEMAKE, "--report", "report.html", *cfg], cwd=out, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    html = (out / "report.html").read_text()
    assert evil not in html
