"""Reading the Cochrane Library's CSV export of a review's analysis data ("data
rows"), and finding the effect measure and pooling method it does not name.

The export (``CDxxxxxx-data-rows.csv``, also inside Cochrane data packages) has
one row per study and analysis: ``Analysis group, Analysis number, Analysis
name, Subgroup, [Subgroup number], [Applicability], Study, Study year, GIV Mean,
GIV SE, Experimental mean/SD/cases/N, Control mean/SD/cases/N, O-E, Variance,
Weight, Mean, CI start, CI end, Footnotes``, then, for reviews with risk-of-bias
assessments, a ``(judgement)`` and a ``(support)`` column per domain.

The effect measure, the pooling method and the analysis model are not columns.
:func:`infer_settings` finds them by method forensics: every candidate measure
is computed for every study of every analysis (one engine call per candidate
over the whole review) and compared with the printed ``Mean`` at its printed
precision; then every candidate method's percent weights are compared with the
printed ``Weight``. The best match is recorded with the evidence, and the
outcome says that measure and method were inferred.
"""

from __future__ import annotations

import csv
import hashlib
import io as _io
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError
from .names import METHODS
from .revman import Outcome, Review, StudyRow, impossible, problem_line

#: Export columns -> engine columns, per data type.
COLUMNS = {
    "dichotomous": {"Experimental cases": "events_t", "Experimental N": "total_t", "Control cases": "events_c",
                    "Control N": "total_c"},
    "continuous": {"Experimental mean": "mean_t", "Experimental SD": "sd_t", "Experimental N": "total_t",
                   "Control mean": "mean_c", "Control SD": "sd_c", "Control N": "total_c"},
    "generic inverse variance": {"GIV Mean": "yi", "GIV SE": "sei"},
    "O - E and variance": {"O-E": "o_e", "Variance": "var"},
}
REQUIRED = ("Analysis group", "Analysis number", "Study", "Weight", "Mean", "CI start", "CI end")
PRINTED = ("Weight", "Mean", "CI start", "CI end")
#: Risk-of-bias words of the export -> the YAML's judgements.
JUDGEMENT = {"low risk": "low", "low": "low", "some concerns": "some concerns", "high risk": "high",
             "high": "high", "unclear risk": "unclear", "unclear": "unclear"}
#: Candidate measures per data type (engine measure, RevMan measure, method used to compute study effects).
MEASURES = {
    "dichotomous": (("RR", "RR", "FE"), ("OR", "OR", "FE"), ("RD", "RD", "FE"), ("OR", "PETO_OR", "PETO")),
    "continuous": (("MD", "MD", "FE"), ("SMD", "SMD", "FE")),
    "generic inverse variance": (("GEN", "GEN", "FE"), ("GEN", "HR", "FE")),
    "O - E and variance": (("GEN", "PETO_OR", "FE"),),
}
#: Candidate methods (engine code, RevMan's method, random effects?) per RevMan measure.
METHOD_CANDIDATES = {
    "dichotomous": (("MH", "MH", False), ("MH-DL", "MH", True), ("FE", "IV", False), ("DL", "IV", True),
                    ("REML", "IV", True)),
    "other": (("FE", "IV", False), ("DL", "IV", True), ("REML", "IV", True)),
}


def _float0(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _blank(v: str) -> bool:
    return v.strip() == "" or v.strip().upper() in ("NA", "#N/A")


def _nonzero(values) -> bool:
    for v in values:
        if _blank(v):
            continue
        try:
            if float(v) != 0:
                return True
        except ValueError:
            return True
    return False


def data_types(rows: list[dict]) -> list[str]:
    """Data types an analysis's rows could hold, from the columns they fill with
    non-zero numbers. The export fills unused columns with zeros and sometimes
    with RevMan's internal values (a Variance beside 2x2 counts), so more than
    one may be plausible; :func:`infer_settings` picks the one whose study
    effects match the printed ones."""
    def col(c):
        return [r.get(c, "") for r in rows]

    out = []
    if _nonzero(col("Experimental SD")) or _nonzero(col("Control SD")):
        out.append("continuous")
    if (_nonzero(col("Experimental N")) or _nonzero(col("Control N"))) and any(
            not _blank(v) for v in col("Experimental cases") + col("Control cases")):
        out.append("dichotomous")
    if _nonzero(col("GIV SE")):
        out.append("generic inverse variance")
    if _nonzero(col("Variance")):
        out.append("O - E and variance")
    return out


def read_data_rows(path: str | Path, *, infer: bool = True) -> Review:
    """Read a Cochrane data-rows CSV export.

    Parameters
    ----------
    path : str or Path
    infer : bool
        Run :func:`infer_settings` (measure, method, model by method forensics).

    Returns
    -------
    Review
        One outcome per analysis (settings inferred, listed in ``Outcome.inferred``),
        per-study printed ``Mean``, CI and ``Weight`` as published values, risk-of-bias
        judgements per study; ``problems`` lists every analysis or study not imported.

    Raises
    ------
    InputError
        If the file is missing, unreadable, or lacks the export's columns.
    """
    path = Path(path)
    name = str(path)
    if not path.exists():
        raise InputError("file does not exist", file=name)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"is not UTF-8 text (byte {exc.start})", file=name) from None
    reader = csv.reader(_io.StringIO(text))
    try:
        header = [c.strip() for c in next(reader)]
        table = [dict(zip(header, (v.strip() for v in row))) for row in reader if any(v.strip() for v in row)]
    except (csv.Error, StopIteration) as exc:
        raise InputError(f"is not a readable CSV table ({exc})", file=name) from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(f"is not a Cochrane data-rows export: missing column(s) {', '.join(missing)}",
                         file=name)
    doi = next((r["review_doi"] for r in table if r.get("review_doi")), "")
    cd = re.search(r"CD\d{6}", doi or path.name)
    review = Review(file=name, format="cochrane-data-rows", title="", doi=doi, cd=cd.group(0) if cd else "",
                    review_id="", sha256=hashlib.sha256(raw).hexdigest(), software="Cochrane data-rows export")
    review.printed_decimals = max((len(r[c].split(".")[1]) for r in table for c in PRINTED if "." in r.get(c, "")),
                                  default=0)
    rob_cols = [c for c in header if c.endswith("(judgement)")]
    groups: dict[tuple, list] = {}
    for line, r in enumerate(table, start=2):
        r["_line"] = line
        groups.setdefault((r["Analysis group"], r["Analysis number"]), []).append(r)
    for (grp, num), rows in groups.items():
        title = rows[0].get("Analysis name", "")
        where = f"Analysis {grp}.{num} ({title!r})"
        types = data_types(rows)
        dtype = types[0] if types else None
        if dtype is None:
            review.problems.append(problem_line(path.name, where, "not imported: no counts, means/SDs, GIV "
                                                "or O-E values to tell the data type"))
            continue
        out = Outcome(comparison_no=str(grp), comparison="", outcome_no=str(num), name=title, data_type=dtype,
                      revman_measure="", measure=None, method=None, revman_method="", random=False,
                      ci_study=95.0, ci_total=95.0, log_data=False, totals_shown=True,
                      subgroups=any(r.get("Subgroup") for r in rows),
                      group_labels=("", ""), favours=("", ""))
        out.candidate_types = types
        numbers = {r["Subgroup"]: r["Subgroup number"] for r in rows if r.get("Subgroup") and r.get("Subgroup number")}
        seen = {}
        for r in rows:
            vals = {dst: r[src] for t in types for src, dst in COLUMNS[t].items() if not _blank(r.get(src, ""))}
            sub = r.get("Subgroup", "")
            if sub and sub not in numbers:
                numbers[sub] = str(seen.setdefault(sub, len(seen) + 1))
            pub = {dst: r[src] for src, dst in (("Mean", "estimate"), ("CI start", "ci_lower"),
                                                ("CI end", "ci_upper"), ("Weight", "weight"))
                   if not _blank(r.get(src, ""))}
            quote = "; ".join(f"{c}={r[c]}" for c in list(COLUMNS[dtype]) + list(PRINTED)
                              if not _blank(r.get(c, "")))
            s = StudyRow(study=r["Study"], year=r.get("Study year", ""), subgroup=sub,
                         subgroup_no=numbers.get(sub, ""), data=vals, published=pub,
                         estimable=False if "estimate" not in pub else None, quote=quote, order=r["_line"],
                         in_overall=r.get("Applicability", "") != "SUBGROUP_ONLY")
            for c in rob_cols:
                j = JUDGEMENT.get(r[c].lower())
                if j:
                    s.risk_of_bias[c.removesuffix(" (judgement)")] = j
            bad = impossible(vals, dtype)
            if bad:
                review.problems.append(problem_line(path.name, f"{where}, line {r['_line']}, study {s.study!r}",
                                                    f"{bad}; the study is not imported, the rest of the "
                                                    "analysis is"))
                continue
            out.studies.append(s)
        _drop_unprinted_weights(out)
        if out.studies:
            review.outcomes.append(out)
    if infer:
        infer_settings(review)
    return review


def _drop_unprinted_weights(out: Outcome) -> None:
    """Forget the printed weights of a subgroup (or an analysis without subgroups) whose every
    printed weight is 0 or empty: RevMan computed no total there and exports 0 for each study
    (e.g. CD011627 Analysis 3.1, where each comparison is its own subgroup and none is totalled),
    so there is no weight to reproduce. Listed in the outcome's notes."""
    groups: dict[str, list] = {}
    for st in out.studies:
        groups.setdefault(st.subgroup, []).append(st)
    for sub, studies in groups.items():
        w = [_float0(st.published.get("weight")) for st in studies]
        if any(x == 0 for x in w) and all(x in (0, None) for x in w):
            for st in studies:
                st.published.pop("weight", None)
            where = f"subgroup '{sub}'" if sub else "the analysis"
            out.notes.append(f"every printed weight of {where} is 0: RevMan computed no total there; "
                             "its weights are not checked")


def _key_rows(review: Review, outcomes: list[int], within_subgroups: bool = False) -> pd.DataFrame:
    """Engine rows of the given outcomes, keyed as RevMan weighs them: the whole
    analysis, or the subgroup for rows that count in a subgroup only (or for
    every row, with ``within_subgroups``)."""
    from .review import study_rows

    rows = []
    for oi in outcomes:
        out = review.outcomes[oi]
        for r in study_rows(out):
            s = out.studies[r["_study"]]
            key = (f"{oi}|" if s.in_overall and not (within_subgroups and s.subgroup)
                   else f"{oi}|{s.subgroup_no}|{s.subgroup}")
            label = f"{s.study} [{s.subgroup}]" if out.subgroups else s.study
            rows.append(dict(r, key=key, _outcome=oi, study=label))
    frame = pd.DataFrame(rows)
    if len(frame):
        dup = frame.duplicated(["key", "study"], keep=False)
        if dup.any():
            frame.loc[dup, "study"] = frame.loc[dup, "study"] + " #" + (
                frame[dup].groupby(["key", "study"]).cumcount() + 1).astype(str)
    return frame


def _scores(review, frame, measure, method, what, decimals) -> dict[int, tuple[int, int, float]]:
    """Per outcome: (studies whose printed ``what`` matches, studies checked, median
    relative difference: the tie-break when no candidate matches exactly)."""
    from .review import _agree, _pool_all

    frame = frame.reset_index(drop=True)  # "_row" of the engine's table is a position in this frame
    _, st = _pool_all(frame, measure, method, "z", 95.0, [], lambda i: review.file)
    out: dict[int, list] = {}
    if st is None:
        return {}
    st = st.merge(frame[["_outcome", "_study"]], left_on="_row", right_index=True)
    zs: dict[int, list] = {}
    ratio_measure = measure in ("RR", "OR") or what == "ratio"
    for rec in st.to_dict("records"):
        o = review.outcomes[int(rec["_outcome"])]
        s = o.studies[int(rec["_study"])]
        n = out.setdefault(int(rec["_outcome"]), [0, 0])
        if what in ("effect", "ratio", "identity"):
            p = s.published.get("estimate")
            if p is None or not np.isfinite(rec["yi"]):
                continue
            ours = math.exp(rec["yi"]) if ratio_measure else rec["yi"]
        else:
            p = s.published.get("weight")
            if p is None or not np.isfinite(rec["weight"]):
                continue
            ours = rec["weight"]
        n[1] += 1
        n[0] += _agree(ours, float(p), decimals)
        n.append(abs(ours - float(p)) / max(abs(float(p)), 1e-6))
        if what != "weight":  # the z the printed CI implies, for its level
            lo, hi = _float0(s.published.get("ci_lower")), _float0(s.published.get("ci_upper"))
            g = math.log if ratio_measure else (lambda x: x)
            try:
                zs.setdefault(int(rec["_outcome"]), []).append((g(hi) - g(lo)) / (2 * math.sqrt(rec["vi"])))
            except (TypeError, ValueError, ZeroDivisionError):
                pass
    _scores.implied_z = {k: float(np.median(v)) for k, v in zs.items() if v}
    return {k: (v[0], v[1], float(np.median(v[2:])) if len(v) > 2 else math.inf) for k, v in out.items()}


def _level_of(z: float | None) -> float | None:
    """The CI level (percent) whose normal quantile is ``z`` (90, 95, 99 or 99.9), within 0.1%."""
    from ._dist import norm

    if z is None or not np.isfinite(z):
        return None
    for level in (95.0, 99.0, 90.0, 99.9):
        if abs(z / norm.isf((1 - level / 100) / 2) - 1) < 1e-3:
            return level
    return None


def infer_settings(review: Review) -> None:
    """Method forensics for a data-rows review: set each outcome's measure,
    method and model from the printed per-study effects and weights.

    Every candidate is computed for all analyses of a data type in one engine
    call. An analysis whose studies match no candidate keeps the best one,
    and its ``inferred`` notes say how many studies matched. Single-study
    analyses (every method gives 100%) get the first method that matches.
    """
    d = getattr(review, "printed_decimals", 6) or 6
    by_type: dict[str, list[int]] = {}
    for oi, out in enumerate(review.outcomes):
        for t in getattr(out, "candidate_types", [out.data_type]):
            by_type.setdefault(t, []).append(oi)
    best: dict[int, tuple] = {}
    tried: dict[int, list] = {}
    for dtype, idx in by_type.items():
        saved = {oi: review.outcomes[oi].data_type for oi in idx}
        for oi in idx:
            review.outcomes[oi].data_type = dtype
        frame = _key_rows(review, idx)
        for measure, rm, method in MEASURES[dtype]:
            what = "effect"
            if measure == "GEN":
                what = "ratio" if rm in ("HR", "PETO_OR") else "identity"
            scores = _scores(review, frame, measure, method, what, d)
            for oi, (hit, n, err) in scores.items():
                tried.setdefault(oi, []).append(f"{rm} ({dtype})")
                if oi not in best or (hit, -err) > (best[oi][0], -best[oi][5]):
                    best[oi] = (hit, n, measure, rm, dtype, err, _scores.implied_z.get(oi))
        for oi, t in saved.items():
            review.outcomes[oi].data_type = t
    by_type = {}
    for oi, out in enumerate(review.outcomes):
        hit, n, measure, rm, dtype, err, z = best.get(oi, (0, 0, None, None, out.data_type, math.inf, None))
        if rm is None:
            review.problems.append(problem_line(Path(review.file).name, out.label,
                                                "measure could not be inferred (no study could be pooled)"))
            continue
        out.revman_measure, out.measure, out.data_type = rm, measure, dtype
        out.inferred.append(f"data type {dtype}, measure {rm}: {hit} of {n} printed study effects match at "
                            f"{d} decimals" + (f" (none matches; closest, median relative difference {err:.2g})"
                                               if hit == 0 else "")
                            + f" (tried {', '.join(dict.fromkeys(tried.get(oi, [])))})")
        by_type.setdefault(dtype, []).append(oi)
        level = _level_of(z)
        if level is not None and level != 95.0:
            out.ci_study = out.ci_total = level
            out.inferred.append(f"study CI level {level:g}%: the printed CIs are {z:.4f} standard errors wide "
                                "on each side")
    for dtype, idx in by_type.items():
        frame = _key_rows(review, idx)
        # --- method: per chosen measure, compare the printed weights
        by_measure: dict[tuple, list[int]] = {}
        for oi in idx:
            out = review.outcomes[oi]
            if out.measure:
                by_measure.setdefault((out.measure, out.revman_measure), []).append(oi)
        for (measure, rm), oids in by_measure.items():
            sub = frame[frame["_outcome"].isin(oids)]
            cands = list(METHOD_CANDIDATES["dichotomous" if dtype == "dichotomous" else "other"])
            if rm == "PETO_OR" and dtype == "dichotomous":
                cands = [("PETO", "Peto", False)] + cands[2:]
            best_m: dict[int, tuple] = {}
            lacking = [c[0] for c in cands if c[0] not in METHODS]
            subs = [o for o in oids if review.outcomes[o].subgroups]
            within = _key_rows(review, subs, within_subgroups=True) if subs else None
            for code, rmeth, random in cands:
                if code not in METHODS:
                    continue
                for frame_, where in ((sub, "analysis"), (within, "subgroup")):
                    if frame_ is None or not len(frame_):
                        continue
                    for oi, (hit, n, err) in _scores(review, frame_, measure, code, "weight", d).items():
                        if oi not in best_m or (hit, -err) > (best_m[oi][0], -best_m[oi][6]):
                            best_m[oi] = (hit, n, code, rmeth, random, where, err)
            for oi in oids:
                out = review.outcomes[oi]
                hit, n, code, rmeth, random, where, _ = best_m.get(oi, (0, 0, None, "", False, "analysis", 0))
                if code is None:
                    continue
                out.method, out.revman_method, out.random = code, rmeth, random
                out.weights_within = where
                if where == "subgroup":
                    out.totals_shown = False
                note = (f"method {code}: {hit} of {n} printed weights (percent of the {where}) match at "
                        f"{d} decimals")
                if lacking:
                    note += f" (not tried, the engine lacks {', '.join(lacking)})"
                out.inferred.append(note)
    counts = Counter(o.method for o in review.outcomes)
    review.inferred_methods = dict(counts)


def risk_of_bias(review: Review) -> list[dict]:
    """YAML ``risk_of_bias`` entries: per study and outcome, the overall judgement
    (or the worst domain judgement where no overall column exists)."""
    order = {"low": 0, "unclear": 1, "some concerns": 2, "high": 3}
    out = []
    from .review import outcome_name

    for o in review.outcomes:
        for s in o.studies:
            if not s.risk_of_bias:
                continue
            overall = s.risk_of_bias.get("Overall bias")
            j = overall or max(s.risk_of_bias.values(), key=lambda v: order.get(v, 0))
            out.append({"study": s.study, "outcome": outcome_name(o), "judgement": j,
                        "source": review.source,
                        "note": ("Overall bias (judgement)" if overall else "worst domain judgement") + "; "
                                + "; ".join(f"{k}: {v}" for k, v in s.risk_of_bias.items())})
    return out
