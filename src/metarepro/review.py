"""Reproducing every analysis of a review read from a RevMan 5 file or a Cochrane
data-rows export: RevMan's totals and per-study effects, CIs and weights beside
the engine's, with verdicts.

All analyses of a review are pooled together: one engine call per (measure,
method, CI level) with ``by=`` over every analysis and subgroup, never a loop
over analyses. The engine applies RevMan's conventions where it has them
(``convention="revman5"``, method ``MH-DL``); what it lacks is reported per
analysis rather than approximated here.

Agreement is judged at RevMan's printed precision: for ``.rm5`` files, whose
numbers are stored in full, the forest plot's (2 decimals for effects and
CIs, 1 for percent weights), with a stricter "full precision" count beside it
(relative difference <= 1e-6); for data-rows exports, the decimals printed in
the file (6).
"""

from __future__ import annotations

import inspect
import math
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import InputError, MetareproWarning
from .names import METHODS, REPRODUCTION_COLUMNS
from .pooling import pool
from .reproduce import judge
from .revman import Outcome, Review

#: Printed precision of RevMan 5's forest plot (effects and CIs; percent weights).
RM5_DECIMALS = {"effect": 2, "weight": 1}
#: Relative agreement counted as "full precision" for numbers stored unrounded.
FULL_PRECISION = 1e-6
#: Columns of the per-study agreement table (``metarepro reproduce --studies``).
STUDY_COLUMNS = ("analysis", "outcome", "subgroup", "study", "measure", "method", "estimable_published",
                 "estimable_ours", "published_estimate", "ours_estimate", "published_ci_lower", "ours_ci_lower",
                 "published_ci_upper", "ours_ci_upper", "published_weight", "ours_weight", "decimals",
                 "weight_decimals", "effect_agrees", "ci_agrees", "weight_agrees", "full_precision", "note")

FAMILIES = {"dichotomous": ("events_t", "total_t", "events_c", "total_c"),
            "continuous": ("mean_t", "sd_t", "total_t", "mean_c", "sd_c", "total_c"),
            "generic inverse variance": ("yi", "sei"),
            "O - E and variance": ("yi", "vi")}


def _accepts_convention() -> bool:
    return "convention" in inspect.signature(pool).parameters


def _float(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def decimals_of_text(text: str) -> int:
    """Decimals printed in a number as written ("0.919192" -> 6)."""
    t = str(text).strip()
    if "e" in t.lower() or "." not in t:
        return 0
    return len(t.split(".")[1])


def study_rows(out: Outcome) -> list[dict]:
    """Engine rows of one outcome: the numbers as floats in the engine's columns.

    O - E and variance rows become ``yi = (O - E) / V`` and ``vi = 1 / V``
    (the log odds ratio or log hazard ratio of the Peto method; Yusuf et al.
    1985); generic inverse-variance rows are ``yi, sei`` as entered.
    """
    rows = []
    for j, s in enumerate(out.studies):
        d = {k: _float(v) for k, v in s.data.items()}
        if out.data_type == "O - E and variance":
            var = d.get("var", math.nan)
            d = {"yi": d.get("o_e", math.nan) / var if var else math.nan, "vi": 1 / var if var else math.nan}
        rows.append({"_study": j, **{c: d.get(c, math.nan) for c in FAMILIES[out.data_type]}})
    return rows


@dataclass
class Reproduction:
    """Targets (``REPRODUCTION_COLUMNS`` + extras), per-study agreement and problems."""

    review: Review
    targets: list = field(default_factory=list)
    studies: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(STUDY_COLUMNS)))
    problems: list = field(default_factory=list)
    engine_notes: list = field(default_factory=list)

    def summary(self) -> dict:
        """Counts of totals and per-study values checked and reproduced."""
        t = [r for r in self.targets if r.get("published_estimate") is not None
             or (r.get("reason") or "").startswith("RevMan printed this total as not estimable")]
        st = self.studies
        out = {"analyses": len(self.review.outcomes), "totals": len(t),
               "totals_reproduced": sum(r["verdict"] == "reproduced" for r in t),
               "studies": len(st)}
        if len(st):
            for what in ("effect", "ci", "weight"):
                col = st[f"{what}_agrees"]
                checked = col.notna()
                out[f"study_{what}_checked"] = int(checked.sum())
                out[f"study_{what}_reproduced"] = int((col[checked] == True).sum())
            fp = st["full_precision"]
            out["study_full_precision_checked"] = int(fp.notna().sum())
            out["study_full_precision_reproduced"] = int((fp[fp.notna()] == True).sum())
        return out


def _label(out: Outcome, subgroup: str, sno: str) -> str:
    if not subgroup:
        return f"{out.label} total"
    return f"{out.label}, subgroup {out.key}.{sno or '?'} {subgroup!r}"


def _pool_all(frame: pd.DataFrame, measure: str, method: str, test: str, level: float,
              problems: list, describe) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """One engine call over every analysis in ``frame`` (column ``key``).

    A row the engine rejects is dropped and listed (``problems``), and the call
    is repeated without it, so one bad study never takes the other analyses down.
    Returns the per-analysis summary and the per-study table (``_row`` = row of
    ``frame``), or (None, None) when nothing could be pooled.
    """
    kw = {"convention": "revman5"} if _accepts_convention() else {}
    frame = frame.reset_index(drop=True)
    frame.attrs.clear()
    keep = np.ones(len(frame), bool)
    while keep.any():
        sub = frame[keep].reset_index(drop=True)
        idx = np.flatnonzero(keep)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MetareproWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                res = pool(sub, measure=measure, method=method, test=test, by="key", level=level, **kw)
        except InputError as err:
            row = err.row
            if not isinstance(row, (int, np.integer)) or not (0 <= row < len(sub)):
                problems.append(f"{describe(None)}: {measure} {method}: engine error: {err.problem}")
                return None, None
            drop = [int(idx[row])]
            if err.column in frame.columns and ("must be > 0" in err.problem or "empty cell" in err.problem):
                # every row with the same fault at once (one engine call per kind of fault, not per row)
                v = pd.to_numeric(frame[err.column], errors="coerce").to_numpy()
                bad = keep & (~(v > 0) if "must be > 0" in err.problem else np.isnan(v))
                drop = sorted(set(drop) | set(np.flatnonzero(bad).tolist()))
            for i in drop:
                keep[i] = False
                problems.append(f"{describe(i)}: the engine rejects this study "
                                f"({err.column}: {err.problem.split(' (got')[0]}); RevMan lists such a study as "
                                "not estimable; pooled without it")
            continue
        st = res.studies.copy()
        st["_row"] = idx
        notes = [dict(c, _row=int(idx[c["row"]])) for c in res.excluded if "row" in c]
        st.attrs["excluded"] = notes
        return res.summary, st
    return None, None


def engine_blocks(review: Review) -> dict[tuple, pd.DataFrame]:
    """The engine's input for a whole review: one table per (data type, measure,
    method, CI level), one row per study and analysis it is pooled in (column
    ``key``: the outcome, or the outcome and subgroup), study labels unique
    within each analysis (``Study [subgroup]`` where RevMan lists a study in two
    subgroups, ``#n`` where it repeats one)."""
    blocks: dict[tuple, list] = {}
    for oi, out in enumerate(review.outcomes):
        if not out.studies:
            continue
        if out.measure is None or out.method is None:
            continue
        rows = study_rows(out)
        keys = [(f"{oi}|", "")] if out.totals_shown or not out.subgroups else []
        if out.subgroups:
            keys += [(f"{oi}|{s.subgroup_no}|{s.subgroup}", s.subgroup)
                     for s in {(s.subgroup_no, s.subgroup): s for s in out.studies}.values()]
            if out.totals_shown and has_split_studies(out):
                keys.append((f"{oi}|*", "*"))  # every subgroup row as one analysis (see split_weights)
        for key, sg in keys:
            sel = [r for r in rows if (bool(out.studies[r["_study"]].subgroup) if sg == "*" else
                                       out.studies[r["_study"]].subgroup == sg if sg
                                       else out.studies[r["_study"]].in_overall)]
            for r in sel:
                s = out.studies[r["_study"]]
                blocks.setdefault((out.data_type, out.measure, out.method, out.ci_total), []).append(
                    dict(r, key=key, _outcome=oi, study=s.study if not out.subgroups or sg not in ("", "*")
                         else f"{s.study} [{s.subgroup}]"))
    out_frames = {}
    for spec, rows in blocks.items():
        frame = pd.DataFrame(rows)
        dup = frame.duplicated(["key", "study"], keep=False)
        if dup.any():
            frame.loc[dup, "study"] = frame.loc[dup, "study"] + " #" + (
                frame[dup].groupby(["key", "study"]).cumcount() + 1).astype(str)
        out_frames[spec] = frame
    return out_frames


def has_split_studies(out: Outcome) -> bool:
    """Whether RevMan Web entered a study per subgroup and once, combined, for the overall
    total (data-rows ``Applicability`` SUBGROUP_ONLY / OVERALL_ONLY)."""
    return any(not s.in_overall for s in out.studies) and any(s.in_overall and not s.subgroup
                                                              for s in out.studies)


def split_weights(review: Review, studies: pd.DataFrame, summaries: dict) -> dict[tuple, float]:
    """The percent weights RevMan Web prints for the subgroup rows of an analysis with split
    studies (a study entered per subgroup, SUBGROUP_ONLY, and once combined, OVERALL_ONLY).

    Read off RevMan's printed weights in every such analysis at hand (20 analyses of
    CD011535 and CD014964, 574 weights, all to 6 decimals): with ``T`` the tau² of all
    subgroup rows pooled as one analysis and ``tau²_ov`` that of the overall total,
    an ordinary row weighs ``1/(v + T)``; a split study keeps its overall amount
    ``1/(v_OO + tau²_ov)``, shared among its subgroup rows in proportion to ``1/v``
    (all of it to a part that is not estimable, which is then not printed, so the
    estimable parts print 0 and the amount leaves the sum); percent of the sum of
    these amounts. Returns ``{(outcome index, study index): weight}``.
    """
    out_w: dict[tuple, float] = {}
    if not len(studies):
        return out_w
    for oi, out in enumerate(review.outcomes):
        k_all, k_ov = f"{oi}|*", f"{oi}|"
        if k_all not in summaries or k_ov not in summaries:
            continue
        T, t_ov = float(summaries[k_all][0]["tau2"]), float(summaries[k_ov][0]["tau2"])
        st = studies[studies["_outcome"] == oi]
        v_all = {int(j): float(v) for j, v in zip(st.loc[st["key"] == k_all, "_study"],
                                                    st.loc[st["key"] == k_all, "vi"])}
        v_ov = {int(j): float(v) for j, v in zip(st.loc[st["key"] == k_ov, "_study"],
                                                   st.loc[st["key"] == k_ov, "vi"])}
        combined = {s.study: j for j, s in enumerate(out.studies) if s.in_overall and not s.subgroup}
        parts: dict[str, list[int]] = {}
        for j, s in enumerate(out.studies):
            if not s.in_overall and s.study in combined:
                parts.setdefault(s.study, []).append(j)
        amount: dict[int, float] = {}
        for j, s in enumerate(out.studies):
            v = v_all.get(j, math.nan)
            if s.subgroup and s.in_overall and math.isfinite(v):
                amount[j] = 1 / (v + T)
        for name, js in parts.items():
            v_oo = v_ov.get(combined[name], math.nan)
            vs = [v_all.get(j, math.nan) for j in js]
            if not math.isfinite(v_oo):
                continue
            if not all(math.isfinite(v) for v in vs):
                amount.update({j: 0.0 for j, v in zip(js, vs) if math.isfinite(v)})
                continue
            share = sum(1 / v for v in vs)
            amount.update({j: (1 / (v_oo + t_ov)) * (1 / v) / share for j, v in zip(js, vs)})
        total = sum(amount.values())
        if total > 0:
            out_w.update({(oi, j): 100 * a / total for j, a in amount.items()})
    return out_w


def reproduce(review: Review, *, tolerance: float = 0.10, modern=("REML", "adhoc")) -> Reproduction:
    """Re-pool every analysis of a review and compare with RevMan's numbers.

    Parameters
    ----------
    review : Review
        From :func:`metarepro.revman.read_rm5` or :func:`metarepro.datarows.read_data_rows`.
    tolerance : float
        "close" threshold of :func:`metarepro.reproduce.judge`.
    modern : (method, test)
        The re-analysis shown beside every target: REML with Hartung-Knapp
        and Knapp & Hartung's ad hoc correction (metafor's ``test="adhoc"``),
        as the pipeline's modern re-analysis in config.yaml.

    Returns
    -------
    Reproduction
    """
    rep = Reproduction(review=review, problems=list(review.problems))
    name = review_name(review)
    rm5 = review.format == "revman5"
    blocks = engine_blocks(review)
    summaries, per_study = {}, []
    modern_summaries = {}
    for (dtype, measure, method, level), frame in blocks.items():

        def describe(i, frame=frame):
            if i is None:
                return review.file
            o = review.outcomes[int(frame.at[i, "_outcome"])]
            return f"{review.file}, {o.label}, study {o.studies[int(frame.at[i, '_study'])].study!r}"

        if method not in METHODS:
            for oi in sorted(set(frame["_outcome"])):
                rep.engine_notes.append(f"{review.outcomes[oi].label}: the engine has no method {method} "
                                        "(RevMan's M-H random effects); not re-pooled")
            continue
        summ, st = _pool_all(frame, measure, method, "z", level, rep.problems, describe)
        if summ is not None:
            for _, r in summ.iterrows():
                summaries[r["key"]] = (r, measure, method)
            st = st.merge(frame[["key", "_outcome", "_study"]], left_on="_row", right_index=True,
                          suffixes=("", "_f"))
            per_study.append(st.assign(_measure=measure, _method=method))
        msumm, _ = _pool_all(frame, measure, modern[0], modern[1], level, [], describe)
        if msumm is not None:
            for _, r in msumm.iterrows():
                modern_summaries[r["key"]] = r
    studies = pd.concat(per_study, ignore_index=True) if per_study else pd.DataFrame()
    # --- totals
    for oi, out in enumerate(review.outcomes):
        for tot in out.totals:
            pub = {k: _float(tot.values.get(k)) for k in ("EFFECT_SIZE", "CI_START", "CI_END")}
            key = f"{oi}|" if not tot.subgroup else f"{oi}|{tot.subgroup_no}|{tot.subgroup}"
            rec = dict.fromkeys(REPRODUCTION_COLUMNS)
            rec.update(analysis=name, claim=f"{out.label}: {out.name}", outcome=outcome_name(out),
                       target=_label(out, tot.subgroup, tot.subgroup_no),
                       published_estimate=None if math.isnan(pub["EFFECT_SIZE"]) else pub["EFFECT_SIZE"],
                       published_ci_lower=None if math.isnan(pub["CI_START"]) else pub["CI_START"],
                       published_ci_upper=None if math.isnan(pub["CI_END"]) else pub["CI_END"],
                       published_method=f"{out.revman_method}, {'Random' if out.random else 'Fixed'}"
                                        f" ({out.method})",
                       k_used=0, source=review.source)
            df = _float(tot.values.get("DF"))
            rec["k_published"] = None if math.isnan(df) else int(df) + 1
            if (tot.values.get("ESTIMABLE") or "").upper() == "NO":
                ours_k = int(summaries[key][0]["k"]) if key in summaries else 0
                rec.update(published_estimate=None, published_ci_lower=None, published_ci_upper=None,
                           k_published=int(_float(tot.values.get("STUDIES")) or 0), k_used=ours_k,
                           verdict="not_reproducible" if ours_k else "reproduced",
                           reason=("RevMan printed this total as not estimable "
                                   f"(ESTIMABLE=\"NO\", STUDIES=\"{tot.values.get('STUDIES', '')}\")"
                                   + ("; ours is not estimable either (no study to pool)" if not ours_k else
                                      f"; but we pooled {ours_k} studies")))
                rep.targets.append(rec)
                continue
            if rec["published_estimate"] is None or (not out.totals_shown and not tot.subgroup):
                if not (not out.totals_shown and not tot.subgroup):
                    rec.update(verdict="not_reproducible", reason="RevMan stored no pooled result for this "
                               "total (empty EFFECT_SIZE); ours is shown for information")
                    if key in summaries:
                        r, measure, method = summaries[key]
                        ours = _natural(out, r)
                        rec.update(reproduced_estimate=ours["estimate"], reproduced_ci_lower=ours["ci_lower"],
                                   reproduced_ci_upper=ours["ci_upper"], method=f"{method} (z)",
                                   k_used=int(r["k"]))
                    rep.targets.append(rec)
                continue
            if key not in summaries:
                why = next((n for n in rep.engine_notes if n.startswith(out.label + ":")),
                           "no study of this analysis could be pooled")
                rec.update(verdict="not_reproducible", reason=why)
                rep.targets.append(rec)
                continue
            r, measure, method = summaries[key]
            ours = _natural(out, r)
            rec.update(reproduced_estimate=ours["estimate"], reproduced_ci_lower=ours["ci_lower"],
                       reproduced_ci_upper=ours["ci_upper"], method=f"{method} (z)", k_used=int(r["k"]))
            m = modern_summaries.get(key)
            if m is not None:
                mn = _natural(out, m, pi=True)
                rec.update(modern_estimate=mn["estimate"], modern_ci_lower=mn["ci_lower"],
                           modern_ci_upper=mn["ci_upper"], modern_pi_lower=mn["pi_lower"],
                           modern_pi_upper=mn["pi_upper"])
            target = {"estimate": rec["published_estimate"], "ci_lower": rec["published_ci_lower"],
                      "ci_upper": rec["published_ci_upper"],
                      "decimals": RM5_DECIMALS["effect"] if rm5 else None}
            target = {k: v for k, v in target.items() if v is not None}
            j = judge(target, ours, ratio=out.ratio, k_used=int(r["k"]), k_published=rec["k_published"],
                      missing=[], tolerance=tolerance)
            extra = _heterogeneity_note(tot.values, r, out)
            rec.update(verdict=j.verdict, reason=j.reason + (f"; {extra}" if extra else ""))
            rep.targets.append(rec)
    rep.studies = _study_agreement(review, studies, name, split_weights(review, studies, summaries))
    return rep


def _natural(out: Outcome, r, pi=False) -> dict:
    keys = ("estimate", "ci_lower", "ci_upper") + (("pi_lower", "pi_upper") if pi else ())
    fn = np.exp if out.ratio else (lambda x: x)
    with np.errstate(over="ignore"):
        return {k: float(fn(float(r[k]))) if r[k] is not None and np.isfinite(float(r[k])) else None
                for k in keys}


def _heterogeneity_note(values: dict, r, out: Outcome) -> str:
    """RevMan's tau², I² and Chi² beside ours, where printed."""
    parts = []
    for key, ours, fmt in (("TAU2", r.get("tau2"), "{:.4f}"), ("I2", r.get("i2"), "{:.0f}%"),
                           ("CHI2", r.get("q"), "{:.2f}")):
        p = _float(values.get(key))
        if math.isnan(p) or ours is None or not np.isfinite(float(ours)):
            continue
        parts.append(f"{key.lower()} {fmt.format(float(ours))} vs {fmt.format(p)}")
    return ("heterogeneity (ours vs RevMan): " + ", ".join(parts)) if parts else ""


def _study_agreement(review: Review, st: pd.DataFrame, name: str, shown: dict | None = None) -> pd.DataFrame:
    """Per-study effect, CI and weight beside RevMan's, at RevMan's printed precision.

    Weights are compared in the analysis RevMan shows them for: percent of the
    overall total where the outcome shows totals, else of the study's subgroup;
    ``shown`` overrides them (:func:`split_weights`).
    """
    from ._dist import norm

    recs = []
    rm5 = review.format == "revman5"
    by_key = {}
    if len(st):
        for rec in st.to_dict("records"):
            by_key.setdefault((int(rec["_outcome"]), int(rec["_study"])), []).append(rec)
    for oi, out in enumerate(review.outcomes):
        z = norm.isf((1 - out.ci_study / 100) / 2)
        for j, s in enumerate(out.studies):
            cands = by_key.get((oi, j), [])
            overall = [c for c in cands if c["key"] == f"{oi}|"]
            sub = [c for c in cands if c["key"] != f"{oi}|"]
            c = (overall or sub or [None])[0]
            pub = s.published
            pe, plo, phi, pw = (_float(pub.get(k)) for k in ("estimate", "ci_lower", "ci_upper", "weight"))
            rec = dict.fromkeys(STUDY_COLUMNS)
            rec.update(analysis=name, outcome=out.label, subgroup=s.subgroup, study=s.study,
                       measure=out.revman_measure, method=out.method,
                       published_estimate=pe, published_ci_lower=plo, published_ci_upper=phi,
                       published_weight=pw)
            if "estimate" not in pub and s.estimable is not False:
                rec.update(note="RevMan stored no result for this study (empty EFFECT_SIZE): not checked")
                recs.append(rec)
                continue
            pub_est = s.estimable if s.estimable is not None else not (
                math.isnan(pe) or (pe == 0 and plo == 0 and phi == 0))
            rec["estimable_published"] = pub_est
            if c is None:
                rec.update(note="not re-pooled (see the analysis's verdict)", estimable_ours=None)
                recs.append(rec)
                continue
            yi, vi, w = c["yi"], c["vi"], (shown or {}).get((oi, j), c["weight"])
            ours_est = bool(np.isfinite(yi) and np.isfinite(vi))
            rec["estimable_ours"] = ours_est
            if ours_est:
                se = math.sqrt(vi)
                fn = math.exp if out.ratio else (lambda x: x)
                rec.update(ours_estimate=fn(yi), ours_ci_lower=fn(yi - z * se), ours_ci_upper=fn(yi + z * se),
                           ours_weight=w)
            d = RM5_DECIMALS["effect"] if rm5 else review.printed_decimals
            dw = RM5_DECIMALS["weight"] if rm5 else review.printed_decimals
            rec.update(decimals=d, weight_decimals=dw)
            if not pub_est or not ours_est:
                same = pub_est == ours_est
                rec.update(effect_agrees=same, ci_agrees=same,
                           weight_agrees=same and (not ours_est or _agree(w, pw, dw)),
                           note=None if same else ("RevMan: not estimable; ours: estimable" if ours_est
                                                   else "RevMan: estimable; ours: not estimable"))
                recs.append(rec)
                continue
            rec["effect_agrees"] = _agree(rec["ours_estimate"], pe, d)
            rec["ci_agrees"] = _agree(rec["ours_ci_lower"], plo, d) and _agree(rec["ours_ci_upper"], phi, d)
            rec["weight_agrees"] = None if math.isnan(pw) else _agree(w, pw, dw)
            if rm5:
                rec["full_precision"] = all(_rel(a, b) for a, b in (
                    (rec["ours_estimate"], pe), (rec["ours_ci_lower"], plo), (rec["ours_ci_upper"], phi),
                    (w, pw)) if not math.isnan(b))
            recs.append(rec)
    return pd.DataFrame(recs, columns=list(STUDY_COLUMNS))


def _agree(ours, printed, decimals) -> bool:
    if ours is None or printed is None or math.isnan(printed):
        return False
    if not np.isfinite(ours):
        return False
    return abs(ours - printed) <= 0.5 * 10.0 ** (-decimals) + 1e-9


def _rel(a, b) -> bool:
    if a is None or not np.isfinite(a):
        return False
    return abs(a - b) <= FULL_PRECISION * max(abs(b), 1e-8) + 1e-12


def review_name(review: Review) -> str:
    """Analysis name of an imported review: its CD number (and version) where
    known, else the file's stem, as a lower-case identifier."""
    doi = review.doi or ""
    m = re.search(r"(CD\d{6})(?:\.(pub\d+))?", doi) or re.search(r"(CD\d{6})(?:[._-](pub\d+))?",
                                                                 review.file)
    stem = "_".join(x for x in m.groups() if x) if m else re.sub(r"\.(rm5|csv)$", "", review.file.split("/")[-1])
    return re.sub(r"[^a-z0-9_]+", "_", stem.lower()).strip("_") or "review"


def outcome_name(out: Outcome) -> str:
    """Outcome key of an analysis in the imported pair (``analysis_1_2``)."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", f"analysis_{out.comparison_no}_{out.outcome_no}")
