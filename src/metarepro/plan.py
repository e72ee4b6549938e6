"""Planning the pipeline's outputs from data/extracted, cheaply.

Only the standard library and PyYAML, so that Snakemake can plan (and a no-op
re-run can finish) without importing the statistics stack.
"""

from __future__ import annotations

import csv
import re
from functools import lru_cache
from pathlib import Path

import yaml

# libyaml's parser where PyYAML was built with it (same documents, about 10x faster).
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: str | Path):
    """Parse a YAML file (UTF-8, BOM allowed) with the fastest safe loader.

    Cached on the file's path, size and modification time: Snakemake asks for
    the same analysis file several times while it plans.
    """
    st = Path(path).stat()
    return _load_yaml(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=256)
def _load_yaml(path: str, size: int, mtime_ns: int):
    return yaml.load(Path(path).read_text(encoding="utf-8-sig"), Loader=SAFE_LOADER)


def discover(folder: str | Path) -> list[str]:
    """Analysis names in a folder: every ``<name>.yaml`` (its CSV may be absent)."""
    return sorted(p.stem for p in Path(folder).glob("*.yaml"))


def outcomes_with_data(csv_path: str | Path, yaml_path: str | Path) -> list[str]:
    """Outcomes of an analysis that have at least one CSV row.

    Tolerant on purpose: a malformed file is reported by the rule that reads it,
    with the one-line message, rather than breaking the planning of every analysis.
    """
    try:
        spec = load_yaml(yaml_path)
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
        spec = load_yaml(yaml_path)
        names = spec.get("moderators") or []
    except Exception:  # noqa: BLE001 - reported by the rule
        return []
    return [m for m in names if isinstance(m, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", m)]
