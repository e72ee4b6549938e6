"""Pipeline runs shared by the end-to-end tests (test_pipeline.py, test_site_browser.py).

``pipeline_run``: Snakemake on a copy of the tracked files (as a clean clone would be), once per
session. ``escaped_run``: Snakemake on a small folder of analyses whose texts carry HTML
(``<script>alert(1)</script>`` as a study label, and as the title of a copy of a real analysis),
for the escaping checks of the report and of the reviewer's pages. Tests that change files work
on copies, never in these folders.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
EVIL = "<script>alert(1)</script>"
#: The real analysis copied under an HTML title (it has a forest plot with a published diamond).
ESCAPED_SOURCE = "vitk2_fractures"
ESCAPED_COPY = "escaped_copy"


def snakemake(cwd, *args):
    return subprocess.run([SNAKEMAKE, "--cores", "2", *args], cwd=cwd, capture_output=True, text=True, check=False)


def tracked_files() -> list[str]:
    """The repository's files as committed (``git ls-files``), relative to its root."""
    return subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()


def tracked_copy(dest: Path) -> Path:
    for f in tracked_files():
        if f.startswith("results/"):
            continue
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    return dest


def workflow_copy(dest: Path) -> Path:
    """The workflow alone (Snakefile, config, rules), to run on another extracted folder."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "config.yaml"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "workflow", dest / "workflow", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
    if not Path(SNAKEMAKE).exists():
        pytest.skip("snakemake not installed")
    d = tracked_copy(tmp_path_factory.mktemp("clone"))
    proc = snakemake(d)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return d


def write_escaped_analyses(ext: Path) -> None:
    """'mini': a study labelled with HTML; 'escaped_copy': a real analysis retitled with HTML."""
    ext.mkdir(parents=True, exist_ok=True)
    (ext / "mini.yaml").write_text(f"""analysis: mini
title: Mini
claim: a claim
measure: RR
outcomes: [{{name: hip}}]
targets: []
trials: [{{study: "{EVIL}", status: present}}, {{study: B, status: present}}, {{study: C, status: present}}]
""")
    (ext / "mini.csv").write_text(
        "study,outcome,events_t,total_t,events_c,total_c,source,source_url,source_location,quote,derived\n"
        f'{EVIL},hip,4,123,11,139,10.1000/a,https://example.org/a,T2,"4/123 vs 11/139",\n'
        'B,hip,6,306,29,303,10.1000/b,https://example.org/b,T2,"6/306 vs 29/303",\n'
        'C,hip,3,231,11,220,10.1000/c,https://example.org/c,T2,"3/231 vs 11/220",\n')
    src = ROOT / "data" / "extracted"
    spec = yaml.safe_load((src / f"{ESCAPED_SOURCE}.yaml").read_text(encoding="utf-8"))
    spec.update(analysis=ESCAPED_COPY, title=EVIL)
    spec["targets"][0]["source_url"] = "javascript:alert(2)"  # the CSV refuses it; the YAML schema does not
    (ext / f"{ESCAPED_COPY}.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False),
                                              encoding="utf-8")
    shutil.copy2(src / f"{ESCAPED_SOURCE}.csv", ext / f"{ESCAPED_COPY}.csv")


@pytest.fixture(scope="session")
def escaped_run(tmp_path_factory):
    if not Path(SNAKEMAKE).exists():
        pytest.skip("snakemake not installed")
    base = tmp_path_factory.mktemp("escaped")
    write_escaped_analyses(base / "extracted")
    out = workflow_copy(base / "wf")
    config = (out / "config.yaml").read_text()
    assert "extracted_dir: data/extracted\n" in config
    (out / "config.yaml").write_text(config.replace("extracted_dir: data/extracted\n",
                                                    f"extracted_dir: {base / 'extracted'}\n"))
    proc = snakemake(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out
