"""Replicate the bundled analyses into a folder of N analyses, for scale benchmarks.

``python benchmarks/replicate.py N DEST [SOURCE]`` copies the pairs of SOURCE
(default ``data/extracted``) round-robin until DEST holds N analyses, named
``<analysis>_r<i>``, with the YAML's ``analysis:`` renamed to match the file.
The evidence is the bundled evidence, copied: the copies are for timing only.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path


def replicate(n: int, dest: str | Path, source: str | Path = "data/extracted") -> list[str]:
    """Write ``n`` analyses into ``dest``; returns their names."""
    source, dest = Path(source), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    originals = sorted(p.stem for p in source.glob("*.yaml"))
    names = []
    for i in range(n):
        orig = originals[i % len(originals)]
        name = f"{orig}_r{i // len(originals):04d}"
        text = (source / f"{orig}.yaml").read_text(encoding="utf-8")
        text = re.sub(r"(?m)^analysis:.*$", f"analysis: {name}", text, count=1)
        (dest / f"{name}.yaml").write_text(text, encoding="utf-8")
        if (source / f"{orig}.csv").exists():
            shutil.copyfile(source / f"{orig}.csv", dest / f"{name}.csv")
        names.append(name)
    return names


if __name__ == "__main__":
    replicate(int(sys.argv[1]), sys.argv[2], *(sys.argv[3:4]))
