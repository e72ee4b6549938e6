"""Scale-out on Slurm: the profile (always) and a real one-node cluster (on request).

The end-to-end test starts Slurm's daemons (munged, mariadbd, slurmdbd, slurmctld, slurmd)
through workflow/slurm/run_on_slurm.sh, so it needs root and a few minutes; it runs only with
METAREPRO_SLURM_TEST=1 and is skipped otherwise:

    sudo METAREPRO_SLURM_TEST=1 python -m pytest -q tests/test_slurm.py

The other tests are cheap: the profile's settings are the ones Snakemake and the executor
plugin know, and a dry run through the profile bundles the jobs of the group "analysis".
"""

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import SNAKEMAKE, tracked_copy

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"
SCRIPT = ROOT / "workflow" / "slurm" / "run_on_slurm.sh"


def profile() -> dict:
    return yaml.safe_load(PROFILE.read_text())


def group_components() -> dict[str, int]:
    return {k: int(v) for k, v in (item.split("=") for item in profile()["group-components"])}


def test_profile_names_the_slurm_executor_and_bundles_the_analyses():
    conf = profile()
    assert conf["executor"] == "slurm"
    resources = dict(item.split("=") for item in conf["default-resources"])
    assert int(resources["mem_mb"]) > 0 and int(resources["runtime"]) > 0
    assert group_components() and all(n > 1 for n in group_components().values()), \
        "the point of the groups is to bundle small jobs"
    # the jobs of a bundle run one after another in its Slurm job (the plugin's in-job
    # Snakemake has --jobs 1): a bundle asking for more than one job's CPUs would waste them
    assert int(conf["cores"]) == 1


def test_profile_keys_are_snakemake_options():
    """Every key of the profile is an option of this Snakemake with the plugin installed."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    help_text = subprocess.run([SNAKEMAKE, "--help"], capture_output=True, text=True, check=True).stdout
    for key in profile():
        assert f"--{key}" in help_text, f"{PROFILE.name}: '{key}' is not a snakemake option"
    assert "--slurm-init-seconds-before-status-checks" in help_text  # used by the script


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    d = tracked_copy(tmp_path_factory.mktemp("slurm_dry"))
    proc = subprocess.run(
        [SNAKEMAKE, "--profile", "workflow/profiles/slurm", "--dry-run"],
        cwd=d, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_dry_run_bundles_the_jobs_of_each_analysis(dry_run):
    """Group jobs hold the per-analysis jobs, `<group>=N` of them per Slurm job.

    The groups are those the profile names in group-components (the rules carry them with
    `group:`). If a rewrite of the rules drops or renames them, this fails: the profile
    would then bundle nothing.
    """
    limits = group_components()
    sizes: dict[str, list[int]] = {name: [] for name in limits}  # jobs listed in each group job
    current = None
    for line in dry_run.splitlines():
        if re.match(r"\S", line):  # a line at the left margin: a group job's header, or not
            header = re.search(r"\] Group job (\S+) ", line)
            current = header.group(1) if header and header.group(1) in limits else None
            if current:
                sizes[current].append(0)
        elif current and re.match(r"\s+rule \w+:", line):
            sizes[current][-1] += 1
    assert any(sizes.values()), f"no group job of {sorted(limits)} in the dry run"
    for name, n in limits.items():
        assert all(1 <= s <= n for s in sizes[name]), (name, sizes[name])
        assert len(sizes[name]) == math.ceil(sum(sizes[name]) / n), (name, sizes[name])  # full but one


def test_script_is_valid_bash():
    proc = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert os.access(SCRIPT, os.X_OK), "the script is not executable"


@pytest.mark.skipif(os.environ.get("METAREPRO_SLURM_TEST") != "1",
                    reason="starts Slurm daemons (root, a few minutes): set METAREPRO_SLURM_TEST=1 to run")
def test_pipeline_on_a_real_slurm_gives_the_local_results():
    """One-node Slurm: every job through sbatch, results/ byte-identical to a local run."""
    assert os.geteuid() == 0, "needs root (slurmd, apt-get)"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run([str(SCRIPT)], capture_output=True, text=True, env=env, timeout=3600, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert re.search(r"==> identical: \d+ files", out), out[-3000:]
    jobs = int(re.search(r"==> (\d+) Slurm jobs", out).group(1))
    assert jobs >= 2, out[-3000:]  # at least one bundle of analyses and the summary
    # the script stopped what it started: no process runs from its cluster folder
    folder = re.search(r"cluster folder (\S+):", out).group(1)
    left = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if folder in cmdline.read_bytes().decode(errors="replace"):
                left.append(cmdline.parent.name)
        except OSError:
            continue
    assert not left, f"processes still running from {folder}: {left}"
    assert not Path(folder).exists()
    assert not Path("/run/slurm/conf").is_symlink()
    assert shutil.which("sbatch")
