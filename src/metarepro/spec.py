"""Reading and checking an analysis YAML (``data/extracted/<analysis>.yaml``).

Light on purpose (PyYAML and jsonschema only): the pipeline checks the YAML of
an analysis without per-trial data without importing the statistics stack.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from .errors import InputError
from .plan import SAFE_LOADER


def _schema() -> dict:
    text = resources.files("metarepro").joinpath("schemas/analysis.schema.json").read_text()
    return json.loads(text)


def outcome_measure(spec: dict, outcome: str) -> str:
    """The measure of an outcome: its own ``measure`` where the YAML names one, else the analysis's."""
    for o in spec["outcomes"]:
        if o["name"] == outcome and o.get("measure"):
            return o["measure"]
    return spec["measure"]


def outcome_title(spec: dict, outcome: str) -> str:
    """An outcome's heading in figures and pages: its ``title`` where the YAML gives one
    (an imported review: "Analysis 1.2: Symptom of sore throat on day 3"), else its name."""
    for o in spec["outcomes"]:
        if o["name"] == outcome and o.get("title"):
            return o["title"]
    return outcome.replace("_", " ")


def outcome_favours(spec: dict, outcome: str) -> tuple[str, str] | None:
    """The labels printed under the left and the right of an outcome's forest-plot axis: the
    outcome's own ``favours`` where the YAML names them, else the analysis's, else None."""
    for o in spec["outcomes"]:
        if o["name"] == outcome and o.get("favours"):
            return tuple(o["favours"])
    fav = spec.get("favours")
    return tuple(fav) if fav else None


def check_spec(path: str | Path) -> dict:
    """Read and check an analysis YAML against the JSON schema and the rules."""
    name = str(path)
    try:
        spec = yaml.load(Path(path).read_text(encoding="utf-8-sig"), Loader=SAFE_LOADER)
    except FileNotFoundError:
        raise InputError("file does not exist", file=name) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"is not valid YAML ({getattr(exc, 'problem', exc)})", file=name,
                         row=None if mark is None else mark.line + 1) from None
    if not isinstance(spec, dict):
        raise InputError("is not a YAML mapping", file=name)
    errors = sorted(jsonschema.Draft202012Validator(_schema()).iter_errors(spec),
                    key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        e = errors[0]
        where = ".".join(str(p) for p in e.absolute_path) or "(top level)"
        raise InputError(e.message, file=name, column=where)
    stem = Path(path).stem
    if spec["analysis"] != stem:
        raise InputError(f"analysis '{spec['analysis']}' must equal the file name '{stem}'", file=name,
                         column="analysis")
    outs = [o["name"] for o in spec["outcomes"]]
    for j, t in enumerate(spec["targets"]):
        if t["outcome"] not in outs:
            raise InputError(f"target outcome '{t['outcome']}' is not one of the outcomes", file=name,
                             column=f"targets.{j}.outcome")
    for j, m in enumerate(spec.get("multi_arm") or []):
        for o in m["outcomes"]:
            if o not in outs:
                raise InputError(f"multi_arm outcome '{o}' is not one of the outcomes", file=name,
                                 column=f"multi_arm.{j}.outcomes")
    return spec
