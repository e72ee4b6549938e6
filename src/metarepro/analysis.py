"""Everything the pipeline reports for one analysis of the evidence base.

Pure functions from an :class:`~metarepro.extracted.Analysis` to tables and
text; the Snakemake scripts only read files, call these and write the results.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import io
from .batch import Fit, drive, fit_alone, value
from .errors import InputError, MetareproWarning
from .extracted import Analysis
from .formatting import p_equals
from .names import FIELDS, FORENSICS_COLUMNS, NATURAL, POOLED_COLUMNS, REPRODUCTION_COLUMNS, TESTS  # noqa: F401
from .pooling import PoolResult, _clean, pool
from .reproduce import (  # noqa: F401 - reproduction_markdown re-exported
    DEFAULT_TOLERANCE,
    judge,
    published_method,
    reproduction_markdown,
    target_convention,
    target_measure,
    target_record,
    unpooled_verdict,
)
from .small_study import egger_test
from .spec import outcome_favours, outcome_title

RE_METHODS = ("DL", "REML", "PM", "ML", "HS", "SJ", "HE", "EB")


def outcome_frame(an: Analysis, outcome: str, comparison: str | None = None, *,
                  split_shared: bool = True) -> pd.DataFrame:
    """The rows of one outcome (optionally one comparison) ready for :func:`pool`.

    Study labels are made unique by appending the comparison where a trial
    contributes several comparisons (multi-arm trials). Comparisons sharing a
    control arm are split or dropped as :func:`_shared_controls` says, so that
    the univariate engine never counts an arm twice; ``split_shared=False``
    keeps the rows and their trial labels as extracted, for the multilevel model
    (:func:`metarepro.multiarm.multi_arm_section`), which models their covariance.
    """
    rows = an.rows(outcome)
    if comparison is not None and "comparison" in rows.columns:
        keep = (rows["comparison"] == comparison).to_numpy()
        lines = [ln for ln, k in zip(rows.attrs["lines"], keep) if k]
        rows = rows[keep].reset_index(drop=True)
        rows.attrs.update(source=an.csv_path, lines=lines, first_line=None)
    if not split_shared:  # trial labels stay as extracted: they say which comparisons share an arm
        rows.attrs.setdefault("arm_corrections", [])
        rows.attrs.setdefault("arm_excluded", [])
        return rows
    rows = _shared_controls(rows)
    if "comparison" in rows.columns and rows["study"].duplicated().any():
        attrs = dict(rows.attrs)
        rows = rows.assign(study=rows["study"] + " (" + rows["comparison"] + ")")
        rows.attrs.update(attrs)
    if "subgroup" in rows.columns and rows["study"].duplicated().any():
        # a trial in two subgroups of one analysis (RevMan allows it): one label per row
        attrs = dict(rows.attrs)
        dup = rows["study"].duplicated(keep=False)
        rows = rows.assign(study=rows["study"].where(~dup, rows["study"] + " [" + rows["subgroup"] + "]"))
        rows.attrs.update(attrs)
    return rows


def _shared_controls(rows: pd.DataFrame) -> pd.DataFrame:
    """Comparisons of one trial that share a control arm (same ``study`` and
    ``arm_c``) are never pooled as if independent (Cochrane Handbook 23.3.4).

    With per-arm data (2x2 counts, or mean/SD/n) the shared arm is split evenly
    among the comparisons (:func:`~metarepro.multiarm.split_shared_control`).
    Generic effects (``yi,vi`` or an estimate with its CI) cannot be split, and
    their correlation cannot be modelled without the arm's own variance, so
    the Handbook's other option is taken: the first comparison listed is kept
    and the others are excluded. Either way ``attrs["arm_corrections"]`` and
    ``attrs["arm_excluded"]`` say what was done, and the reports list it.
    """
    from .multiarm import split_shared_control

    rows.attrs.setdefault("arm_corrections", [])
    rows.attrs.setdefault("arm_excluded", [])
    if "arm_c" not in rows.columns or rows.empty:
        return rows
    arm = rows["arm_c"].astype(str).str.strip()
    key = rows["study"].astype(str) + "\x00" + arm
    shared = (arm != "") & key.duplicated(keep=False)
    if not shared.any():
        return rows
    attrs = dict(rows.attrs)
    cols = set(rows.columns)
    if set(io.BINARY) <= cols or set(io.CONTINUOUS) <= cols:
        out, notes = split_shared_control(rows, relabel=True)
        out.attrs.update(attrs)
        out.attrs["arm_corrections"] = [{"study": n.get("label", n["study"]), "action": n["action"]}
                                        for n in notes]
        return out
    drop = (shared & key.duplicated(keep="first")).to_numpy()
    excluded = []
    for i in np.flatnonzero(drop):
        first = rows.index[(key == key.iloc[i]).to_numpy()][0]
        what = rows.at[i, "comparison"] if "comparison" in cols else f"row {attrs['lines'][i]}"
        kept = rows.at[first, "comparison"] if "comparison" in cols else f"row {attrs['lines'][first]}"
        excluded.append({"study": f"{rows.at[i, 'study']} ({what})",
                         "reason": f"shares control arm '{arm.iloc[i]}' with comparison {kept}; generic effects "
                                   "cannot be split, so only the first comparison is pooled "
                                   "(Cochrane Handbook 23.3.4)"})
    out = rows[~drop].reset_index(drop=True)
    out.attrs.update(attrs, lines=[ln for ln, d in zip(attrs["lines"], drop) if not d],
                     arm_excluded=excluded)
    return out


def applicable_methods(frame: pd.DataFrame, measure: str) -> list[str]:
    """FE and every tau² estimator, plus MH/Peto and MH-DL where 2x2 counts allow them."""
    methods = ["FE"]
    binary = io.counts_on_every_row(frame, measure)
    if binary:
        methods.append("MH")
        if measure == "OR":
            methods.append("PETO")
    return methods + list(RE_METHODS) + (["MH-DL"] if binary else [])


def _quiet_pool(frame, **kw) -> PoolResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetareproWarning)
        return pool(frame, **kw)


def pooled_table(an: Analysis, tests=TESTS, level: float = 95) -> pd.DataFrame:
    """One row per outcome × method × test with the engine's fields, under the
    analysis's computing convention (YAML ``convention``, default metafor's)."""
    return drive(pooled_table_fits(an, tests=tests, level=level))


def pooled_table_fits(an: Analysis, tests=TESTS, level: float = 95):
    """:func:`pooled_table` as a conversation of :mod:`metarepro.batch` (it yields
    the fits of each outcome and returns the table), to be fitted alone or in a batch."""
    recs = []
    conv = an.spec.get("convention") or "metafor"
    for outcome in an.outcomes():
        frame = outcome_frame(an, outcome)
        if frame.empty:
            continue
        measure = an.measure_of(outcome)
        plan = [(method, test) for method in applicable_methods(frame, measure) for test in tests
                if not (method in ("MH", "PETO") and test != "z")]
        fits = yield [Fit.of(frame, measure=measure, method=method, test=test, level=level, convention=conv,
                             studies=False) for method, test in plan]
        for (method, test), res in zip(plan, fits):
            res = value(res)
            rec = {"analysis": an.name, "outcome": outcome, "measure": measure, "method": method,
                   "test": test, "convention": res.convention}
            rec.update({k: _clean(getattr(res, k)) for k in FIELDS})
            rec.update(res.natural())
            recs.append(rec)
    return pd.DataFrame(recs, columns=list(POOLED_COLUMNS))


def _fmt(x, d=3):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "NA"
    return f"{x:.{d}f}"


def bound(x, censored: bool, side: str, d=4) -> str:
    """A Q-profile bound (``side`` "lower" or "upper"); one that is a search
    limit, not a root, is printed with metafor's sign (">1344.9182": either
    bound then lies above the limit), never as a bound."""
    text = _fmt(x, d)
    return ">" + text if censored and text != "NA" else text


def interval_method(method: str, test: str) -> str:
    """How a model's confidence interval was computed, in words."""
    if method in ("FE", "MH", "PETO"):
        return f"common effect ({method}), Wald z interval"
    return {"z": f"random effects ({method} tau²), Wald z interval",
            "knha": f"random effects ({method} tau²), Hartung-Knapp t interval on k - 1 df (no truncation)",
            "adhoc": (f"random effects ({method} tau²), Hartung-Knapp t interval on k - 1 df with the ad hoc "
                      "correction (scale factor at least 1, so never narrower than the z interval; "
                      "Knapp & Hartung 2003)")}[test]


CENSORED_NOTE = ("A Q-profile bound marked '>' is the end of the search (tau² up to 10^30 times metafor's "
                 "limit max(100, 10 tau²)), not a root: the bound lies beyond it.")


def heterogeneity(an: Analysis, outcome: str, method: str = "REML", test: str = "adhoc",
                  level: float = 95) -> tuple[dict, str]:
    """Heterogeneity report of one outcome: JSON-ready dict and Markdown text.

    Q, df, p; I² and tau² with Q-profile CIs; H²; the prediction interval; every
    tau² estimator under every test side by side; every corrected or excluded
    study with the reason; trials missing from the evidence base.
    """
    return drive(heterogeneity_fits(an, outcome, method=method, test=test, level=level))


def heterogeneity_fits(an: Analysis, outcome: str, method: str = "REML", test: str = "adhoc",
                       level: float = 95):
    """:func:`heterogeneity` as a conversation of :mod:`metarepro.batch`."""
    frame = outcome_frame(an, outcome)
    measure = an.measure_of(outcome)
    conv = an.spec.get("convention") or "metafor"
    plan = [(m, t) for m in ("FE",) + RE_METHODS for t in TESTS]
    fits = yield ([Fit.of(frame, measure=measure, method=method, test=test, level=level, convention=conv)]
                  + [Fit.of(frame, measure=measure, method=m, test=t, level=level, convention=conv,
                            studies=False) for m, t in plan])
    main = value(fits[0])
    rows = []
    for (m, t), r in zip(plan, fits[1:]):
        r = value(r)
        rows.append({"method": m, "test": t, "tau2": r.tau2, "tau2_ci_lower": r.tau2_ci_lower,
                     "tau2_ci_upper": r.tau2_ci_upper, "tau2_ci_lower_censored": r.tau2_ci_lower_censored,
                     "tau2_ci_upper_censored": r.tau2_ci_upper_censored, "i2": r.i2, "estimate": r.estimate,
                     "ci_lower": r.ci_lower, "ci_upper": r.ci_upper, "pi_lower": r.pi_lower,
                     "pi_upper": r.pi_upper, "pvalue": r.pvalue, "converged": r.converged,
                     **{f"{k}": v for k, v in r.natural().items()}})
    missing = [{"study": t["study"], "reason": t.get("reason")} for t in an.trials_missing(outcome)]
    d = main.to_dict()
    report = {"analysis": an.name, "outcome": outcome, "measure": measure, "method": method, "test": test,
              "interval_method": interval_method(method, test),
              "tau2_ci_lower_censored": d["tau2_ci_lower_censored"],
              "tau2_ci_upper_censored": d["tau2_ci_upper_censored"], "level": level, "k": main.k, "q": d["q"], "q_df": d["q_df"], "q_pvalue": d["q_pvalue"],
              "tau2": d["tau2"], "tau2_ci_lower": d["tau2_ci_lower"], "tau2_ci_upper": d["tau2_ci_upper"],
              "i2": d["i2"], "i2_ci_lower": d["i2_ci_lower"], "i2_ci_upper": d["i2_ci_upper"],
              "h2": d["h2"], "h2_ci_lower": d["h2_ci_lower"], "h2_ci_upper": d["h2_ci_upper"],
              "pi_lower": d["pi_lower"], "pi_upper": d["pi_upper"], **main.natural(),
              "estimators": [{k: _jsonable(v) for k, v in r.items()} for r in rows],
              "corrections": frame.attrs["arm_corrections"] + main.corrections,
              "excluded": frame.attrs["arm_excluded"] + main.excluded,
              "missing_trials": missing, "integrity_flags": [
                  {"study": s, "flag": f} for s, f in an.flagged().items()], "warnings": main.warnings}
    nat = main.natural()
    lo_c, hi_c = d["tau2_ci_lower_censored"], d["tau2_ci_upper_censored"]
    lines = [f"# Heterogeneity: {an.spec['title']} — {outcome}", "",
             f"Measure {measure}; model: {interval_method(method, test)}; k = {main.k}"
             + (f" of {main.k + len(missing)} trials listed (missing: "
                + "; ".join(f"{m['study']} — {m['reason']}" for m in missing) + ")" if missing else "") + ".",
             ""]
    if main.k < 2:
        est, lo, hi = (nat.get(f"{k}_natural", d[k]) for k in ("estimate", "ci_lower", "ci_upper"))
        lines += [("One trial: nothing is pooled, so Q, tau², I², H², the prediction interval and the "
                   "tau² estimators are not applicable (RevMan prints \"Heterogeneity: Not applicable\"). "
                   f"The trial's own estimate: {_fmt(est)} ({_fmt(lo)} to {_fmt(hi)}).")]
        return report, _heterogeneity_tail(an, report, lines)
    lines += ["| statistic | value | 95% CI |", "|---|---|---|",
             f"| Q (df = {d['q_df']}) | {_fmt(d['q'])} | {p_equals(d['q_pvalue'])} |",
             (f"| tau² | {_fmt(d['tau2'], 4)} | {bound(d['tau2_ci_lower'], lo_c, 'lower', 4)} to "
             f"{bound(d['tau2_ci_upper'], hi_c, 'upper', 4)} |"),
             (f"| I² (%) | {_fmt(d['i2'], 1)} | {bound(d['i2_ci_lower'], lo_c, 'lower', 1)} to "
             f"{bound(d['i2_ci_upper'], hi_c, 'upper', 1)} |"),
             (f"| H² | {_fmt(d['h2'], 2)} | {bound(d['h2_ci_lower'], lo_c, 'lower', 2)} to "
             f"{bound(d['h2_ci_upper'], hi_c, 'upper', 2)} |")]
    if main.k < 3:
        lines.append("| prediction interval | | not shown with fewer than three trials |")
    elif nat:
        lines.append(f"| prediction interval (natural scale) | | {_fmt(nat['pi_lower_natural'])} to "
                     f"{_fmt(nat['pi_upper_natural'])} |")
    else:
        lines.append(f"| prediction interval | | {_fmt(d['pi_lower'])} to {_fmt(d['pi_upper'])} |")
    lines += ["", "Confidence intervals for tau², I² and H² are Q-profile intervals (Viechtbauer 2007); every "
              "bound is a root of the Q-profile equation, or 0 where the root would be negative. " + CENSORED_NOTE, "",
              "## Every tau² estimator, every test", "",
              ("Tests: z = Wald z; knha = Hartung-Knapp t (no truncation); adhoc = Hartung-Knapp t with the ad hoc "
              "correction (never narrower than z)."), "",
              "| method | test | tau² | tau² CI | I² % | estimate | CI | prediction interval |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        est = r.get("estimate_natural", r["estimate"])
        lo = r.get("ci_lower_natural", r["ci_lower"])
        hi = r.get("ci_upper_natural", r["ci_upper"])
        plo = r.get("pi_lower_natural", r["pi_lower"])
        phi = r.get("pi_upper_natural", r["pi_upper"])
        lines.append(f"| {r['method']} | {r['test']} | {_fmt(r['tau2'], 4)} | "
                     f"{bound(r['tau2_ci_lower'], r['tau2_ci_lower_censored'], 'lower', 4)}–"
                     f"{bound(r['tau2_ci_upper'], r['tau2_ci_upper_censored'], 'upper', 4)} | {_fmt(r['i2'], 1)} "
                     f"| {_fmt(est)} | {_fmt(lo)}–{_fmt(hi)} "
                     f"| {_fmt(plo)}–{_fmt(phi)} |")
    shared = _modelled_shared_arms(an, outcome)
    if shared:
        report["multi_arm_main"] = shared
        lines += ["", ("Comparisons sharing a control arm (" + "; ".join(", ".join(g) for g in shared["groups"])
                       + ") are pooled above with the control arm split among them; the main analysis models "
                       "their covariance from the arm data (multilevel model: estimate "
                       f"{_fmt(shared['estimate'])} ({_fmt(shared['ci_lower'])} to {_fmt(shared['ci_upper'])})); "
                       "see the robustness report.")]
    return report, _heterogeneity_tail(an, report, lines)


def _heterogeneity_tail(an: Analysis, report: dict, lines: list[str]) -> str:
    """The heterogeneity report's closing sections (corrected/excluded studies, integrity flags)."""
    lines += ["", "## Corrected and excluded studies", ""]
    lines += correction_lines(report["corrections"], report["excluded"],
                              none="None: every study entered as extracted.")
    if an.flagged():
        lines += ["", "## Integrity flags", ""]
        lines += [f"- {s}: {f}" for s, f in an.flagged().items()]
    return "\n".join(lines) + "\n"


def _modelled_shared_arms(an: Analysis, outcome: str, comparison: str | None = None, method: str = "REML",
                         test: str = "knha", level: float = 95) -> dict | None:
    """The multilevel main analysis of an outcome whose comparisons share control arms and
    carry arm data (None otherwise): :func:`metarepro.multiarm.multi_arm_section`'s ``main``
    with the groups."""
    from .multiarm import multi_arm_section, shared_arm_groups

    rows = outcome_frame(an, outcome, comparison, split_shared=False)
    if rows.empty or not shared_arm_groups(rows):
        return None
    cols = set(rows.columns)
    if not (set(io.BINARY) <= cols or set(io.CONTINUOUS) <= cols):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sec = multi_arm_section(rows, an.measure_of(outcome), method=method, test=test, level=level)
    if not sec.get("main"):
        return None
    return dict(sec["main"], groups=sec["groups"])


def correction_lines(corrections: list, excluded: list, none: str) -> list[str]:
    """Markdown bullets for corrected and excluded studies (or ``none``)."""
    if not (corrections or excluded):
        return [none]
    return ([f"- corrected: {c['study']}: {c['action']}" for c in corrections]
            + [f"- excluded: {c['study']}: {c['reason']}" for c in excluded])


def _jsonable(v):
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if math.isfinite(v) else None
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _target_frame(an: Analysis, t: dict) -> tuple[pd.DataFrame, str]:
    """The rows a target was pooled from (those of its ``subgroup`` only, where it
    names one), and its measure."""
    frame = outcome_frame(an, t["outcome"], t.get("comparison")) if len(an.table) else pd.DataFrame()
    if t.get("subgroup") is not None and len(frame) and "subgroup" in frame.columns:
        attrs = dict(frame.attrs)
        keep = (frame["subgroup"] == t["subgroup"]).to_numpy()
        frame = frame[keep].reset_index(drop=True)
        frame.attrs.update(attrs, lines=[ln for ln, k in zip(attrs.get("lines", []), keep) if k])
    return frame, target_measure(an.spec, t)


def _restates_target(frame: pd.DataFrame, target: dict) -> bool:
    """One row, given as an estimate with its CI, read in the same document as the
    target: re-pooling it can only give back the printed numbers."""
    if len(frame) != 1 or not set(io.GENERIC_CI) <= set(frame.columns) or "source" not in frame.columns:
        return False
    return str(frame["source"].iloc[0]).strip().lower() == str(target.get("source", "")).strip().lower()


def forensics_table(an: Analysis, level: float = 95) -> pd.DataFrame:
    """Method forensics for every published target that has per-trial data:
    every pooling method × tau² estimator × test × zero-cell convention
    (:func:`~metarepro.forensics.method_forensics`), compared with the
    printed numbers at their printed precision. One block of rows per target,
    best match first; empty when no target has data."""
    return drive(forensics_table_fits(an, level=level))


def forensics_table_fits(an: Analysis, level: float = 95):
    """:func:`forensics_table` as a conversation of :mod:`metarepro.batch`."""
    from .forensics import method_forensics_fits
    from .reproduce import decimals_of

    parts = []
    for t in an.spec["targets"]:
        if t.get("trial_set") == "other" or t.get("estimate") is None:
            continue
        frame, measure = _target_frame(an, t)
        if frame.empty:
            continue
        try:
            f = yield from method_forensics_fits(frame, measure, t["estimate"], t.get("ci_lower"),
                                                 t.get("ci_upper"), decimals=decimals_of(t), level=level)
        except InputError:
            continue
        na = (f["zero_cells"] == "not applicable").to_numpy()
        for c in ("add", "to", "drop00"):
            f[c] = f[c].astype(object).where(~na, None)
        f.insert(0, "target", t["label"])
        f.insert(1, "outcome", t["outcome"])
        f.insert(0, "analysis", an.name)
        parts.append(f)
    cols = list(FORENSICS_COLUMNS)
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def _combination(row) -> str:
    """``method (test)``, with the convention where it is not metafor's: ``MH-DL (z, revman5)``."""
    conv = row.get("convention", "metafor")
    return f"{row['method']} ({row['test']}{'' if conv in (None, 'metafor') else ', ' + conv})"


def likely_method(forensics: pd.DataFrame, target_label: str, outcome: str) -> str | None:
    """In words: which combinations reproduce a target (estimate and CI at the
    printed precision), or that none does and which came closest."""
    f = forensics[(forensics["target"] == target_label) & (forensics["outcome"] == outcome)]
    if f.empty:
        return None

    def methods(rows):
        return ", ".join(dict.fromkeys(_combination(r) for _, r in rows.iterrows()))

    def conventions(rows):
        used = list(dict.fromkeys(rows["zero_cells"]))
        every = list(dict.fromkeys(f["zero_cells"]))
        if used == ["not applicable"] or sorted(used) == sorted(every):
            return ""
        return "; only with zero-cell convention(s): " + ", ".join(used)

    best = f.iloc[0]
    closest = (f"{_combination(best)} gives {best['estimate']:.3f} ({best['ci_lower']:.3f} to "
               f"{best['ci_upper']:.3f})")
    both = f[f["matches_estimate"] & f["matches_ci"]]
    if len(both):
        return f"reproduced by {len(both)} of {len(f)} combinations: {methods(both)}{conventions(both)}"
    est = f[f["matches_estimate"]]
    if len(est):
        return (f"no combination of {len(f)} reproduces estimate and CI; the estimate alone matches with "
                f"{methods(est)}{conventions(est)}; closest: {closest}")
    return (f"none of {len(f)} combinations reproduces the printed numbers; closest: {closest}, largest "
            f"difference {best['max_abs_diff']:.3f}")


def _published_fit(frame: pd.DataFrame, measure: str, target: dict, level: float,
                   convention: str = "metafor") -> tuple[PoolResult, str, str]:
    """The target's trials re-pooled with the published method (z test) under the target's
    convention, the method code used and how it was chosen
    (:func:`~metarepro.reproduce.published_method`; MH, Peto and MH-DL need 2x2 counts on every
    row, else inverse variance: FE, or DL for MH-DL). Raises InputError where the rows cannot be
    pooled."""
    request, method, how = _published_request(frame, measure, target, level, convention)
    return value(fit_alone(request)), method, how


def _published_request(frame: pd.DataFrame, measure: str, target: dict, level: float,
                       convention: str = "metafor") -> tuple[Fit, str, str]:
    """The fit of :func:`_published_fit`, not yet fitted."""
    method, how = published_method(target)
    if method in ("MH", "PETO", "MH-DL") and not io.counts_on_every_row(frame, measure):
        iv = "DL" if method == "MH-DL" else "FE"
        method, how = iv, f"{method} needs 2x2 counts on every row; inverse-variance {iv} used instead"
    # the printed CI's level (an imported RevMan total may print 99% CIs)
    request = Fit.of(frame, measure=measure, method=method, test="z", level=target.get("level") or level,
                     convention=convention, studies=False)
    return request, method, how


def reproduction_rows(an: Analysis, *, tolerance: float = DEFAULT_TOLERANCE, level: float = 95,
                      modern=("REML", "adhoc"), forensics: pd.DataFrame | None = None) -> list[dict]:
    """One row per published target: published vs re-pooled numbers and the verdict
    (and, given :func:`forensics_table`, the likely method behind the published number)."""
    return drive(reproduction_rows_fits(an, tolerance=tolerance, level=level, modern=modern, forensics=forensics))


def reproduction_rows_fits(an: Analysis, *, tolerance: float = DEFAULT_TOLERANCE, level: float = 95,
                           modern=("REML", "adhoc"), forensics: pd.DataFrame | None = None):
    """:func:`reproduction_rows` as a conversation of :mod:`metarepro.batch`."""
    out = []
    for t in an.spec["targets"]:
        frame, measure = _target_frame(an, t)
        ratio = measure in io.RATIO_MEASURES
        rec, missing = target_record(an.name, an.spec, t)
        if forensics is not None:
            rec["likely_method"] = likely_method(forensics, t["label"], t["outcome"])
        if t.get("trial_set") == "other" or frame.empty:
            out.append(unpooled_verdict(t, rec, missing, measure))
            continue
        conv = target_convention(an.spec, t)
        # the modern model is fitted with the published one; it is read only if that one could be fitted
        request, method, how = _published_request(frame, measure, t, level, conv)
        fits = yield [request, Fit.of(frame, measure=measure, method=modern[0], test=modern[1], level=level,
                                      convention=conv, studies=False)]
        try:
            res = value(fits[0])
        except InputError as err:
            out.append(dict(rec, verdict="not_reproducible", reason=f"data cannot be pooled: {err}"))
            continue
        nat = res.natural() or {f"{k}_natural": getattr(res, k) for k in NATURAL}
        ours = {"estimate": nat["estimate_natural"], "ci_lower": nat["ci_lower_natural"],
                "ci_upper": nat["ci_upper_natural"]}
        rec.update(reproduced_estimate=ours["estimate"], reproduced_ci_lower=ours["ci_lower"],
                   reproduced_ci_upper=ours["ci_upper"],
                   method=f"{method} (z{'' if conv == 'metafor' else ', ' + conv})", k_used=res.k)
        mod = value(fits[1])
        mn = mod.natural() or {f"{k}_natural": getattr(mod, k) for k in NATURAL}
        rec.update(modern_estimate=mn["estimate_natural"], modern_ci_lower=mn["ci_lower_natural"],
                   modern_ci_upper=mn["ci_upper_natural"], modern_pi_lower=mn["pi_lower_natural"],
                   modern_pi_upper=mn["pi_upper_natural"])
        shared = _modelled_shared_arms(an, t["outcome"], t.get("comparison"), modern[0], modern[1], level)
        if shared:  # comparisons share control arms: the multilevel model is the modern analysis
            rec.update(modern_estimate=shared["estimate"], modern_ci_lower=shared["ci_lower"],
                       modern_ci_upper=shared["ci_upper"], modern_pi_lower=shared["pi_lower"],
                       modern_pi_upper=shared["pi_upper"])
        if t.get("estimate") is None:
            v = ("not_reproducible", "the published estimate is not printed in a readable source"
                 + (f" ({t['notes']})" if t.get("notes") and "not estimable" in t["notes"] else ""))
        else:
            j = judge(t, ours, ratio=ratio, k_used=res.k, k_published=rec["k_published"], missing=missing,
                      tolerance=tolerance)
            v = (j.verdict, f"{j.reason}; method: {how}")
            if _restates_target(frame, t):
                v = (v[0], v[1] + "; circular: the only row is the published result itself (same source, "
                                  "estimate and CI), so the match checks only the CI-to-SE round trip")
            excluded = frame.attrs.get("arm_excluded", []) + res.excluded
            if excluded:
                v = (v[0], v[1] + "; excluded: " + "; ".join(f"{e['study']} ({e['reason']})"
                                                              for e in excluded))
            if frame.attrs.get("arm_corrections"):
                v = (v[0], v[1] + "; " + "; ".join(f"{c['study']}: {c['action']}"
                                                   for c in frame.attrs["arm_corrections"]))
            if shared:
                v = (v[0], v[1] + f"; modern re-analysis: {shared['model']}")
        rec.update(verdict=v[0], reason=v[1])
        out.append(rec)
    return out


@dataclass(frozen=True)
class PublishedPooled:
    """A published pooled result of an outcome's trials, as a forest plot draws it: the numbers
    as printed (natural scale) and the same trials re-pooled with the published method."""

    label: str  #: the paper, as the YAML target names it
    method: str  #: its model and method as printed ("random effects", "common effect, PETO")
    estimate: float
    ci_lower: float | None
    ci_upper: float | None
    decimals: int  #: printed precision
    repooled: PoolResult | None  #: the trials re-pooled with the published method (None: not poolable)
    repooled_label: str  #: e.g. "Re-pooled as published (DL, assumed), k = 7"
    note: str | None = None  #: a footnote (e.g. why the method was assumed)


@dataclass(frozen=True)
class FigureInputs:
    """What a forest or funnel plot of one outcome needs, computed by the engine."""

    result: PoolResult  #: the modern random-effects fit
    frame: pd.DataFrame
    common: PoolResult | None
    flagged: set
    subgroups: object | None  #: PoolTable by the YAML's subgroup column
    egger: dict | None
    title: str
    published: tuple = ()  #: PublishedPooled of the outcome's targets (same trial set)
    favours: tuple[str, str] | None = None
    not_drawn: tuple = ()  #: targets of the outcome not drawn, with the reason


def published_pooled(an: Analysis, outcome: str, measure: str, level: float = 95
                     ) -> tuple[list[PublishedPooled], list[str]]:
    """The outcome's published targets that pooled this analysis's trials (``trial_set`` not
    ``other``), each with its re-pooling by the published method; and, for targets that cannot be
    drawn on the outcome's axis (no printed estimate, another measure), why not."""
    from .reproduce import decimals_of

    out, skipped = [], []
    for t in an.spec["targets"]:
        if t["outcome"] != outcome or t.get("trial_set") == "other":
            continue
        if t.get("estimate") is None:
            skipped.append(f"{t['label']}: no estimate printed")
            continue
        frame, m = _target_frame(an, t)
        if m != measure:
            skipped.append(f"{t['label']}: published as {m}, not {measure}")
            continue
        stated = (t.get("method") or "").strip()
        printed = ", ".join(x for x in (t.get("model"), stated) if x and x.lower() != "unknown")
        res, method, how, note = None, "", "", None
        if not frame.empty:
            try:
                res, method, how = _published_fit(frame, measure, t, level, target_convention(an.spec, t))
            except InputError as err:
                note = f"{t['label']}: not re-pooled ({err.problem})"
        k_pub = t.get("k")
        if res is not None:
            k = f"k = {res.k}" + (f" of {k_pub}" if k_pub else "")
            assumed = not how.startswith("as published")
            label = f"Re-pooled as published ({method}{', assumed' if assumed else ''}), {k}"
            if res.k == 1 and method not in ("MH", "PETO", "MH-DL"):  # inverse variance of one trial: the trial itself
                label, assumed = f"Re-computed from the trial's data, {k}", False
            if assumed:  # the long reason is in reproduction.csv; the figure says it briefly
                why = how if "needs 2x2 counts" in how else "the paper names no estimator"
                note = f"{method} assumed for {t['label']}: {why}"
        else:
            label = ""
        out.append(PublishedPooled(label=t["label"], method=printed, estimate=float(t["estimate"]),
                                   ci_lower=t.get("ci_lower"), ci_upper=t.get("ci_upper"),
                                   decimals=decimals_of(t), repooled=res, repooled_label=label, note=note))
    return out, skipped


def figure_inputs(an: Analysis, outcome: str, *, modern=None, level: float = 95,
                  common_method: str = "FE") -> FigureInputs:
    """Fit the models a figure shows: the modern random-effects model, the
    common-effect model, subgroups (if the YAML names a column), Egger's test,
    and the outcome's published results beside their re-pooling with the
    published method (:func:`published_pooled`); the YAML's ``favours`` labels."""
    modern = modern or {"method": "REML", "test": "adhoc"}
    frame = outcome_frame(an, outcome)
    measure = an.measure_of(outcome)
    conv = an.spec.get("convention") or "metafor"
    res = _quiet_pool(frame, measure=measure, method=modern["method"], test=modern["test"], level=level,
                      convention=conv)
    cm = common_method
    if cm in ("MH", "PETO") and cm not in applicable_methods(frame, measure):
        cm = "FE"
    common = _quiet_pool(frame, measure=measure, method=cm, test="z", level=level, convention=conv)
    subgroups = None
    col = an.spec.get("subgroup")
    if col and col in frame.columns and frame[col].nunique() > 1:
        subgroups = _quiet_pool(frame, measure=measure, method=modern["method"], test=modern["test"],
                                level=level, by=col, convention=conv)
    egger = None
    if res.k >= 3:
        egger = egger_test(res, model="lm").to_dict()
    label = f"{an.spec['title']}: {outcome_title(an.spec, outcome)}"
    published, not_drawn = published_pooled(an, outcome, measure, level)
    return FigureInputs(res, frame, common, set(an.flagged()), subgroups, egger, label, tuple(published),
                        outcome_favours(an.spec, outcome), tuple(not_drawn))
