"""Planning the pipeline's outputs from data/extracted, cheaply.

Only the standard library and PyYAML, so that Snakemake can plan (and a no-op
re-run can finish) without importing the statistics stack.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import yaml


def discover(folder: str | Path) -> list[str]:
    """Analysis names in a folder: every ``<name>.yaml`` (its CSV may be absent)."""
    return sorted(p.stem for p in Path(folder).glob("*.yaml"))


def outcomes_with_data(csv_path: str | Path, yaml_path: str | Path) -> list[str]:
    """Outcomes of an analysis that have at least one CSV row.

    Tolerant on purpose: a malformed file is reported by the rule that reads it,
    with the one-line message, rather than breaking the planning of every analysis.
    """
    try:
        spec = yaml.safe_load(Path(yaml_path).read_text(encoding="utf-8-sig"))
        names = [o["name"] for o in spec["outcomes"]]
    except Exception:  # noqa: BLE001 - reported by the rule
        return []
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            seen = {row.get("outcome") for row in csv.DictReader(fh)}
    except FileNotFoundError:
        return []
    except Exception:  # noqa: BLE001
        return names
    return [n for n in names if n in seen]


def moderators(yaml_path: str | Path) -> list[str]:
    """Moderators the YAML names (one bubble plot each); names that could not be
    file names are left to the schema check of the rule that reads the YAML."""
    try:
        spec = yaml.safe_load(Path(yaml_path).read_text(encoding="utf-8-sig"))
        names = spec.get("moderators") or []
    except Exception:  # noqa: BLE001 - reported by the rule
        return []
    return [m for m in names if isinstance(m, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", m)]
