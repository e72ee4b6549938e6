"""environment.yml (conda) and pyproject.toml list the same dependencies."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def names(specs):
    return {re.split(r"[<>=!~ \[]", s.strip(), maxsplit=1)[0].lower() for s in specs}


import pytest


@pytest.mark.parametrize("env_file", ["environment.yml", "workflow/envs/metarepro.yaml"])
def test_dependency_lists_in_step(env_file):
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    want = names(py["dependencies"])
    for extra in py["optional-dependencies"].values():
        want |= names(extra)
    env = yaml.safe_load((ROOT / env_file).read_text())
    conda, pip = set(), set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip |= names(dep.get("pip", []))
        else:
            conda |= names([dep])
    have = (conda | pip) - {"python", "pip", "-e"}  # "-e ." installs metarepro itself
    assert want == have, f"only in pyproject: {want - have}; only in environment.yml: {have - want}"
