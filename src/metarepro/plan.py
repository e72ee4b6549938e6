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


def batches(names: list[str], batch_size: int) -> dict[str, list[str]]:
    """Analyses in batches of about ``batch_size``, by a stable hash of the name.

    The number of batches is the smallest power of two that holds the analyses
    at ``batch_size`` each, and an analysis's batch is its name's CRC-32 modulo that
    number: adding or removing an analysis changes only its own batch (so only that
    batch re-runs), except when the count doubles or halves the batches. Empty
    batches are left out. Returns batch id ("b<i>") -> sorted names.
    """
    import zlib

    n = 1
    while n * batch_size < len(names):
        n *= 2
    width = len(str(n - 1))
    out: dict[str, list[str]] = {}
    for name in sorted(names):
        out.setdefault(f"b{zlib.crc32(name.encode()) % n:0{width}d}", []).append(name)
    return dict(sorted(out.items()))


def checked(pairs: dict[str, tuple[str, str | None]], cache: str | Path, stamp: str, check) -> dict[str, str | None]:
    """The one-line error of each analysis (None where it is sound), from ``check(yaml, csv)``.

    Results are kept in ``cache`` (JSON) under the path, size and modification time of
    the analysis's files and ``stamp`` (the engine's sources), so that a re-run checks
    only what changed, and imports nothing heavy when nothing did.
    """
    import json

    def key(yaml_path, csv_path):
        parts = [stamp]
        for p in (yaml_path, csv_path):
            try:
                st = Path(p).stat() if p else None
            except FileNotFoundError:
                st = None
            parts.append(f"{Path(p).resolve()}:{st.st_size}:{st.st_mtime_ns}" if st else "-")
        return "|".join(parts)

    cache = Path(cache)
    try:
        known = json.loads(cache.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        known = {}
    out, fresh = {}, {}
    for name, (yaml_path, csv_path) in pairs.items():
        k = key(yaml_path, csv_path)
        hit = known.get(name)
        if hit is not None and hit[0] == k:
            out[name] = hit[1]
        else:
            out[name] = check(yaml_path, csv_path)
        fresh[name] = [k, out[name]]
    if fresh != known:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(fresh, indent=0, sort_keys=True), encoding="utf-8")
        tmp.replace(cache)
    return out


def fingerprint(files, path) -> None:
    """Write one line per file, its SHA-256 and its path: a single small file that
    changes when any of ``files`` does (the pipeline's jobs depend on the engine's
    sources through it, so that Snakemake checksums one input per output, not dozens)."""
    import hashlib

    lines = [f"{hashlib.sha256(Path(f).read_bytes()).hexdigest()}  {f}" for f in sorted(map(str, files))]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
