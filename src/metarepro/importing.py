"""Writing an imported review as a data/extracted pair (CSV + YAML).

One pair per review, one YAML outcome per RevMan analysis ("Analysis c.o"):
the pipeline runs one job per pair, so a review's analyses share one process
(the statistics stack is loaded once), and each analysis still gets its own
forest plot, heterogeneity and robustness reports. RevMan's subgroups become
the CSV column ``subgroup`` (named by the YAML's ``subgroup`` key), every
RevMan total (overall and subgroup subtotals) a target, and RevMan's
per-study results the columns ``published_estimate, published_ci_lower,
published_ci_upper, published_weight``.

Provenance (data/extracted/README.md): ``source`` is the review's DOI where the
file prints it, else ``file:<file name>``; ``source_location`` names the
analysis, subgroup and study; ``quote`` holds the numbers as they stand in the
file (attributes of the RevMan XML element, or the cells of the data-rows
line), so every number of the CSV appears in its quote. The YAML's
``imported_from`` records the file's name, format and SHA-256.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import yaml

from .datarows import risk_of_bias
from .review import FAMILIES, has_split_studies, outcome_name, review_name
from .revman import Outcome, Review

CSV_COLUMNS = ("study", "year", "outcome", "subgroup", "events_t", "total_t", "events_c", "total_c",
               "mean_t", "sd_t", "mean_c", "sd_c", "yi", "sei", "vi", "published_estimate",
               "published_ci_lower", "published_ci_upper", "published_weight", "estimable_published",
               "source", "source_url", "source_location", "quote", "derived", "notes")
MODEL = {True: "random effects", False: "common effect"}


def _fmt(x: float) -> str:
    return f"{x:.12g}"


def _where(review: Review, out: Outcome, study: str | None = None, subgroup: str = "") -> str:
    kind = "RevMan 5 file" if review.format == "revman5" else "Cochrane data-rows export"
    parts = [f"{kind} {Path(review.file).name}", f"{out.label} ({out.name})"]
    if subgroup:
        parts.append(f"subgroup {subgroup!r}")
    if study:
        parts.append(f"study {study!r}")
    return ", ".join(parts)


#: The subgroup column of a split study's combined row (RevMan Web's OVERALL_ONLY), which RevMan
#: counts in the overall total only.
SPLIT_COMBINED = "(combined arms of a split study: RevMan's overall total only)"


def pair(review: Review) -> tuple[str, list[dict], dict]:
    """The analysis name, the CSV rows and the YAML mapping of an imported review."""
    name = review_name(review)
    rows, trials = [], {}
    for out in review.outcomes:
        oname = outcome_name(out)
        seen: dict[tuple, int] = {}
        combined = ({s.study for s in out.studies if s.in_overall and not s.subgroup}
                    if has_split_studies(out) else set())
        for s in out.studies:
            if not s.in_overall and s.study in combined:
                # RevMan Web's split study: its per-subgroup rows count in subgroup totals only and its
                # combined row in the overall total; the pair holds the combined row (no study twice)
                lab = f"{s.study} [{s.subgroup}] (subgroup-only row)"
                entry = trials.setdefault(lab, {"study": lab, "outcomes": [], "status": "missing", "reason": (
                    f"{_where(review, out, s.study, s.subgroup)}: RevMan Web entered {s.study!r} once per "
                    "subgroup (SUBGROUP_ONLY, counted in that subgroup's total only) and once combined for "
                    "the overall total (OVERALL_ONLY); the pair keeps the combined row, so that no participant "
                    "is counted twice, and lists this subgroup row here")})
                entry["outcomes"].append(oname)
                continue
            label = s.study
            n = seen.get((s.subgroup, label), 0) + 1
            seen[(s.subgroup, label)] = n
            if n > 1:
                label = f"{label} ({n})"
            rec = dict.fromkeys(CSV_COLUMNS, "")
            sub = s.subgroup or (SPLIT_COMBINED if s.study in combined else "")
            rec.update(study=label, year=s.year, outcome=oname, subgroup=sub,
                       source=review.source, source_url=review.source_url,
                       source_location=_where(review, out, s.study, s.subgroup), quote=s.quote)
            if out.data_type == "O - E and variance":
                oe, var = s.data.get("o_e"), s.data.get("var")
                try:
                    yi, vi = float(oe) / float(var), 1 / float(var)
                    rec.update(yi=_fmt(yi), vi=_fmt(vi),
                               derived=f"yi = O-E / V = {oe} / {var}; vi = 1 / V = 1 / {var} (Peto)")
                except (TypeError, ValueError, ZeroDivisionError):
                    rec.update(notes="O-E or variance missing or zero: not estimable")
            else:
                for k in FAMILIES[out.data_type]:
                    if k in s.data:
                        rec[k] = s.data[k]
            for k in ("estimate", "ci_lower", "ci_upper", "weight"):
                rec[f"published_{k}"] = s.published.get(k, "")
            if s.estimable is not None:
                rec["estimable_published"] = "yes" if s.estimable else "no"
            if n > 1:
                rec["notes"] = f"the file lists {s.study!r} {n} times in this analysis; numbered to keep labels unique"
            rows.append(rec)
            t = trials.setdefault(label, {"study": label, "outcomes": [], "status": "present"})
            if oname not in t["outcomes"]:
                t["outcomes"].append(oname)
    for p in review.problems:  # studies not imported stay listed, with the reason
        if ", study " in p:
            study = p.split(", study ", 1)[1].split(":", 1)[0].strip("'\"")
            trials.setdefault(f"{study} (not imported)", {"study": f"{study} (not imported)", "outcomes": None,
                                                          "status": "missing", "reason": p})
    measures = [o.measure for o in review.outcomes if o.measure]
    spec = {
        "analysis": name,
        "title": (review.title or f"Review {review.cd or name}") + " (all analyses, imported)",
        "claim": f"RevMan's pooled results of every analysis in {review.title or review.cd or name}",
        "seed": None,
        "measure": max(set(measures), key=measures.count) if measures else "GEN",
        "convention": "revman5",
        "subgroup": "subgroup" if any(o.subgroups for o in review.outcomes) else None,
        "imported_from": {"file": Path(review.file).name, "format": review.format, "sha256": review.sha256,
                          "doi": review.doi or None, "cd": review.cd or None, "review_id": review.review_id or None,
                          "software": review.software},
        "outcomes": [_outcome_entry(o) for o in review.outcomes],
        "targets": [t for o in review.outcomes for t in _targets(review, o)],
        "trials": list(trials.values()),
        "risk_of_bias": risk_of_bias(review) or None,
        "notes": ("Imported with 'metarepro import' from " + Path(review.file).name + ". "
                  + ("Not imported: " + " | ".join(review.problems) if review.problems else
                     "Every analysis and study of the file was imported.")),
    }
    if spec["subgroup"] is None:
        del spec["subgroup"]
    return name, rows, spec


def _outcome_entry(o: Outcome) -> dict:
    e = {"name": outcome_name(o), "title": f"{o.label}: {o.name}", "description": f"{o.label}: {o.name}" + (
        f" (comparison {o.comparison_no}: {o.comparison})" if o.comparison else ""),
         "measure": o.measure, "method": o.method, "convention": "revman5", "data_type": o.data_type,
         "revman_measure": o.revman_measure, "ci_study": o.ci_study, "ci_total": o.ci_total,
         "subgroups": o.subgroups}
    if all(o.favours):  # both labels printed (the schema wants two non-empty labels)
        e["favours"] = list(o.favours)
    if any(o.group_labels):
        e["group_labels"] = list(o.group_labels)
    if o.inferred:
        e["inferred"] = list(o.inferred)
    if o.notes:
        e["notes"] = "; ".join(o.notes)
    return e


def _num(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _targets(review: Review, o: Outcome) -> list[dict]:
    out = []
    for tot in o.totals:
        if not tot.subgroup and not o.totals_shown:
            continue
        v = tot.values
        df = _num(v.get("DF"))
        t = {"outcome": outcome_name(o),
             "label": f"{o.label} total" if not tot.subgroup else f"{o.label}, subgroup {tot.subgroup}",
             "estimate": _num(v.get("EFFECT_SIZE")), "ci_lower": _num(v.get("CI_START")),
             "ci_upper": _num(v.get("CI_END")), "decimals": 2,
             "scale": "ratio" if o.ratio else "identity", "model": MODEL[o.random], "method": o.method,
             "convention": "revman5", "level": o.ci_total, "k": None if df is None else int(df) + 1,
             "i2": _num(v.get("I2")), "tau2": _num(v.get("TAU2")), "q": _num(v.get("CHI2")),
             "q_df": None if df is None else int(df), "z": _num(v.get("Z")), "pvalue": _num(v.get("P_Z")),
             "source": review.source, "source_url": review.source_url,
             "source_location": _where(review, o, subgroup=tot.subgroup) + (
                 ", subgroup total" if tot.subgroup else ", overall total"),
             "quote": tot.quote or "(no stored result)"}
        if tot.subgroup:
            t["subgroup"] = tot.subgroup
        if (v.get("ESTIMABLE") or "").upper() == "NO":
            t.update(estimate=None, ci_lower=None, ci_upper=None,
                     notes="RevMan printed this total as not estimable (ESTIMABLE=\"NO\")")
        if t["estimate"] is None and "notes" not in t:
            t["notes"] = "RevMan stored no pooled result (empty EFFECT_SIZE)"
        out.append(t)
    return out


def write_pair(review: Review, folder: str | Path) -> tuple[Path, Path]:
    """Write ``<analysis>.csv`` and ``<analysis>.yaml`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name, rows, spec = pair(review)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    csv_path, yaml_path = folder / f"{name}.csv", folder / f"{name}.yaml"
    csv_path.write_text(buf.getvalue(), encoding="utf-8")
    yaml_path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=110), encoding="utf-8")
    return csv_path, yaml_path
