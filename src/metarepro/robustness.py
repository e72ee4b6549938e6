"""Why a pooled estimate does or does not hold: the robustness report of one outcome.

Pure functions from an :class:`~metarepro.extracted.Analysis` to a JSON-ready
dict, a Markdown report and the tables the figures draw. The statistics are
:mod:`metarepro.diagnostics`, :mod:`metarepro.small_study` and
:mod:`metarepro.metareg` (each checked against metafor); this module only decides what applies to an outcome, runs it and
writes it down, with the reason whenever something cannot be computed.

Sections
--------
1. integrity sensitivity: the analysis without retracted trials, without
   retracted or questioned trials, and without trials judged at high risk of
   bias, beside the full analysis;
2. subgroups (a column the YAML names with ``subgroup``): per-subgroup pooled
   estimates, RevMan's Q between subgroups and metafor's QM;
3. meta-regression on every moderator the YAML names (REML by default, Wald z
   and Knapp-Hartung tests, permutation test as metafor's ``permutest``);
4. small-study effects: Egger's test (classic weighted regression and
   metafor's ``regtest`` mixed-model form), Begg's rank correlation,
   trim-and-fill (L0 and R0), the Henmi-Copas interval and fail-safe N
   (Rosenthal, Orwin, Rosenberg), with the Cochrane Handbook caution below ten studies;
5. influence: leave-one-out, ``influence()`` measures, Baujat, cumulative by
   year, and the studies' BLUPs (shrunken estimates, metafor ``blup``);
6. multi-arm trials: what was done with shared control arms.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import diagnostics as dg
from . import io
from . import small_study as ss
from .analysis import correction_lines, interval_method, outcome_frame
from .blup import blup
from .errors import InputError, MetareproWarning
from .extracted import Analysis
from .formatting import format_p, p_equals
from .metareg import MetaRegressionResult, meta_regression, permutation_test
from .multiarm import multi_arm_section
from .pooling import _clean, pool
from .pooling import _natural as _back
from .publication_bias import fail_safe_n, henmi_copas
from .tau2_ci import LIKELIHOOD_METHODS, profile_ci, qprofile_ci

__all__ = ["Robustness", "robustness"]


@dataclass
class Robustness:
    """Everything of one outcome's robustness report.

    ``report`` is JSON-ready, ``markdown`` the text; the frames feed the figures
    (``None`` where the section does not apply, with the reason in ``report``).
    """

    report: dict
    markdown: str
    result: object
    leave_one_out: pd.DataFrame | None = None
    cumulative: pd.DataFrame | None = None
    influence: pd.DataFrame | None = None
    baujat: pd.DataFrame | None = None
    regressions: dict = field(default_factory=dict)


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetareproWarning)
        return fn(*a, **kw)


def _records(df: pd.DataFrame) -> list[dict]:
    return [{k: _clean(v) for k, v in r.items()} for r in df.to_dict(orient="records")]


def _f(x, d=3):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "NA"
    return f"{x:.{d}f}"


def _attempt(section: dict, fn, *a, **kw):
    """Run one diagnostic; an input it cannot handle is written down, not raised."""
    try:
        return _quiet(fn, *a, **kw)
    except InputError as err:
        section.setdefault("not_computed", []).append(f"{getattr(fn, '__name__', fn)}: {err.problem}")
        return None


def _natural(res) -> tuple[float, float, float]:
    nat = res.natural()
    if nat:
        return nat["estimate_natural"], nat["ci_lower_natural"], nat["ci_upper_natural"]
    return res.estimate, res.ci_lower, res.ci_upper


def _matches(label: str, names) -> bool:
    """A study label of the pooled table is one of ``names`` (multi-arm rows carry
    their comparison in brackets after the trial's label, rows of a trial in two
    subgroups their subgroup in square brackets)."""
    return any(label == n or label.startswith((f"{n} (", f"{n} [")) for n in names)


# ----------------------------------------------------------------------------- sections


def _integrity(an: Analysis, frame, res, measure, method, test, level) -> dict:
    flags = an.flagged()
    outcome = frame["outcome"].iloc[0] if "outcome" in frame.columns and len(frame) else None
    # judgements for the whole trial, or for this outcome (RoB 2 judges each outcome)
    rob = {r["study"]: r.get("judgement") for r in an.spec.get("risk_of_bias") or []
           if r.get("outcome") in (None, outcome)}
    labels = [str(s) for s in res.studies["study"]]
    sets = (
        ("without retracted trials", [n for n, f in flags.items() if f == "retracted"]),
        ("without retracted or questioned trials", list(flags)),
        ("without trials at high risk of bias", [n for n, j in rob.items() if j == "high"]),
    )
    out = {"flags": [{"study": n, "flag": f} for n, f in flags.items()],
           "high_risk_of_bias": [n for n, j in rob.items() if j == "high"], "analyses": []}
    seen = set()
    for name, names in sets:
        drop = [s for s in labels if _matches(s, names)]
        entry = {"analysis": name, "dropped": drop}
        if not names:
            entry["note"] = "no trial of the analysis carries this flag"
        elif not drop:
            entry["note"] = "the flagged trials are not among the pooled rows of this outcome"
        elif len(drop) == len(labels):
            entry["note"] = "every pooled trial is flagged: nothing is left to pool"
        elif tuple(drop) in seen:
            entry["note"] = "same trials as the row above"
        else:
            seen.add(tuple(drop))
            s = _quiet(dg.sensitivity_without, frame, drop, measure, method=method, test=test, level=level)
            e, lo, hi = _natural(s.reduced)
            entry.update(k=s.reduced.k, estimate=e, ci_lower=lo, ci_upper=hi, tau2=s.reduced.tau2,
                         i2=s.reduced.i2, pvalue=s.reduced.pvalue)
        out["analyses"].append({k: _clean(v) for k, v in entry.items()})
    return out


def _subgroups(an, frame, measure, method, test, level) -> dict | None:
    col = an.spec.get("subgroup")
    if not col:
        return None
    sec = {"column": col}
    if col not in frame.columns:
        sec["not_computed"] = [f"the column '{col}' is not in the data of this outcome"]
        return sec
    if frame[col].astype(str).str.strip().replace("", np.nan).dropna().nunique() < 2:
        sec["not_computed"] = [f"'{col}' has fewer than two subgroups in this outcome"]
        return sec
    sg = _attempt(sec, dg.subgroup_analysis, frame, measure, col, method=method, test=test, level=level)
    if sg is not None:
        d = sg.to_dict()
        d.pop("regression", None)
        d.pop("overall", None)
        sec.update(d)
    return sec


def _regressions(an, frame, res, method, level, permutations, seed) -> tuple[list, dict]:
    out, fits = [], {}
    st = res.studies.reset_index(drop=True)
    ok = st["yi"].notna().to_numpy()
    for mod in an.spec.get("moderators") or []:
        sec = {"moderator": mod}
        out.append(sec)
        if mod not in frame.columns:
            sec["not_computed"] = [f"the column '{mod}' is not in the data of this outcome"]
            continue
        x = pd.to_numeric(frame[mod].reset_index(drop=True), errors="coerce").to_numpy(float)
        use = ok & np.isfinite(x)
        sec["k"] = int(use.sum())
        if use.sum() < 3 or np.unique(x[use]).size < 2:
            sec["not_computed"] = [(f"needs at least 3 studies with at least 2 distinct values of '{mod}' "
                                   f"(has {int(use.sum())} studies, {np.unique(x[use]).size} values)")]
            continue
        y, v = st["yi"].to_numpy(float)[use], st["vi"].to_numpy(float)[use]
        X = pd.DataFrame({mod: x[use]})
        for test in ("z", "knha"):
            fit = _attempt(sec, meta_regression, y, v, X, method=method, test=test, level=level)
            if fit is None:
                continue
            d = fit.to_dict()
            sec[test] = {k: d[k] for k in ("coefficients", "tau2", "i2", "r2", "qm", "qm_df", "qm_pvalue",
                                           "qe", "qe_df", "qe_pvalue") if k in d}
            if test == "knha":
                sec["tau2_ci"] = _tau2_cis(sec, fit)
                perm = _attempt(sec, permutation_test, fit, iter=permutations, seed=seed)
                if perm is not None:
                    sec["permutation"] = {k: _clean(v) if not isinstance(v, (list, tuple, np.ndarray)) else
                                          [_clean(a) for a in np.ravel(v)]
                                          for k, v in perm.to_dict().items()}
                fits[mod] = {"fit": fit, "x": x[use], "yi": y, "vi": v,
                             "study": st["study"].to_numpy()[use]}
    return out, fits


def _tau2_cis(sec, fit) -> dict:
    """Q-profile and (ML/REML fits) profile-likelihood intervals of a fit's tau²."""
    out = {}
    if fit.method == "FE":
        return out
    if isinstance(fit, MetaRegressionResult):
        qp = _attempt(sec, qprofile_ci, fit)
        if qp is not None:
            out["qp"] = qp.to_dict()
    if fit.method in LIKELIHOOD_METHODS:
        pl = _attempt(sec, profile_ci, fit)
        if pl is not None:
            out["pl"] = pl.to_dict()
    return out


def _small_study(res, method, level) -> dict:
    sec = {"k": res.k, "caution": ss.small_study_caution(res.k)}
    if res.k < 3:
        sec["not_computed"] = [f"k = {res.k}: the tests need at least 3 studies"]
        return sec
    for model in ("lm", "rma"):
        e = _attempt(sec, ss.egger_test, res, model=model)
        if e is not None:
            sec[f"egger_{model}"] = e.to_dict()
    b = _attempt(sec, ss.begg_test, res)
    if b is not None:
        sec["begg"] = b.to_dict()
    for est in ("L0", "R0"):
        tf = _attempt(sec, ss.trim_and_fill, res, estimator=est)
        if tf is not None:
            e, lo, hi = _natural(tf.result)
            sec[f"trimfill_{est}"] = {"side": tf.side, "k0": tf.k0, "se_k0": _clean(tf.se_k0),
                                      "p_k0": _clean(tf.p_k0), "estimate": _clean(e), "ci_lower": _clean(lo),
                                      "ci_upper": _clean(hi), "filled": _records(tf.filled)}
    hc = _attempt(sec, henmi_copas, res)
    if hc is not None:
        sec["henmi_copas"] = {**hc.to_dict(), **_natural_of(res, {n: getattr(hc, n) for n in
                                                                  ("estimate", "ci_lower", "ci_upper")})}
    sec["fail_safe_n"] = {}
    for kind in ("Rosenthal", "Orwin", "Rosenberg"):
        f = _attempt(sec, fail_safe_n, res, kind)
        if f is not None:
            sec["fail_safe_n"][kind.lower()] = f.to_dict()
    return sec


def _natural_of(res, values: dict) -> dict:
    """``<name>_natural`` of values on the model scale, where the measure has another scale."""
    fn = _back(res.measure, res.natural_size)
    if fn is None:
        return {}
    with np.errstate(over="ignore", invalid="ignore"):
        return {f"{k}_natural": _clean(fn(v)) for k, v in values.items()}


def _multi_arm(an: Analysis, outcome, frame, measure, method, test, level) -> dict:
    """Comparisons sharing control arms: the multilevel main analysis and the old handling as
    sensitivity analyses (this outcome), joint analyses and dose-response that the YAML asks for
    (``multi_arm``), and control arms this outcome shares with rows of other outcomes."""
    sec = {"corrections": frame.attrs.get("arm_corrections", []), "excluded": frame.attrs.get("arm_excluded", [])}
    entries = [m for m in an.spec.get("multi_arm") or [] if outcome in m["outcomes"]]
    own = next((m for m in entries if m["outcomes"] == [outcome]), {})
    rows = outcome_frame(an, outcome, split_shared=False)
    if not rows.empty:
        own_sec = _quiet(multi_arm_section, rows, measure, method=method, test=test, level=level,
                         dose=own.get("dose"), control_dose=own.get("control_dose"),
                         dose_per=own.get("dose_per") or 1)
        if own_sec["groups"] or own_sec["dose_response"]:
            sec.update(own_sec)
    if any(m["outcomes"] != [outcome] for m in entries):
        sec["joint"] = []
    for m in entries:
        if m["outcomes"] == [outcome]:
            continue
        parts = [outcome_frame(an, o, split_shared=False) for o in m["outcomes"]]
        joint = pd.concat(parts, ignore_index=True)
        joint.attrs.update(parts[0].attrs)
        d = _attempt(sec, multi_arm_section, joint, measure, method=method, test=test, level=level,
                     dose=m.get("dose"), control_dose=m.get("control_dose"), dose_per=m.get("dose_per") or 1,
                     joint=list(m["outcomes"]))
        if d is not None:
            d["yaml_notes"] = m.get("notes")
            sec["joint"].append(d)
    # control arms of this outcome that rows of other outcomes also use
    t = an.table
    if {"arm_c", "study"} <= set(t.columns) and not rows.empty and "arm_c" in rows.columns:
        mine = {(str(a), str(b).strip()) for a, b in zip(an.rows(outcome)["study"], an.rows(outcome)["arm_c"])
                if str(b).strip()}
        other = t[(t["outcome"] != outcome)]
        sib = sorted({o for o, a, b in zip(other["outcome"], other["study"], other["arm_c"])
                      if (str(a), str(b).strip()) in mine})
        if sib:
            sec["shared_with_outcomes"] = sib
    return sec


# ----------------------------------------------------------------------------- report


def robustness(an: Analysis, outcome: str, *, method: str = "REML", test: str = "adhoc", level: float = 95,
               permutations: int = 1000, seed: int = 1234) -> Robustness:
    """Robustness report of one outcome (see the module docstring for the sections).

    Parameters
    ----------
    method, test :
        The model every section re-fits (tau² estimator and test: z, knha or adhoc).
    permutations, seed :
        Permutations of the meta-regression permutation test (all of them when
        there are fewer distinct ones) and the seed of numpy's generator.

    References
    ----------
    Viechtbauer W, Cheung MW-L (2010). Outlier and influence diagnostics for
    meta-analysis. Res Synth Methods 1:112-125.
    Baujat B, Mahé C, Pignon J-P, Hill C (2002). A graphical method for exploring
    heterogeneity in meta-analyses. Stat Med 21:2641-2652.
    Higgins JPT, Thompson SG (2004). Controlling the risk of spurious findings from
    meta-regression. Stat Med 23:1663-1682.
    Page MJ, Higgins JPT, Sterne JAC (2023). Chapter 13: Assessing risk of bias due
    to missing results. Cochrane Handbook, version 6.4.
    """

    frame = outcome_frame(an, outcome)
    measure = an.measure_of(outcome)
    res = _quiet(pool, frame, measure=measure, method=method, test=test, level=level)
    e, lo, hi = _natural(res)
    rep = {"analysis": an.name, "outcome": outcome, "measure": measure, "method": method, "test": test,
           "level": level, "k": res.k, "estimate": _clean(e), "ci_lower": _clean(lo), "ci_upper": _clean(hi),
           "tau2": _clean(res.tau2), "i2": _clean(res.i2),
           "tau2_ci": {"tau2": _clean(res.tau2),
                       "qp": {k: _clean(getattr(res, k)) for k in ("tau2_ci_lower", "tau2_ci_upper",
                                                                  "tau2_ci_lower_censored",
                                                                  "tau2_ci_upper_censored")}},
           "multi_arm": _multi_arm(an, outcome, frame, measure, method, test, level)}
    main = rep["multi_arm"].get("main")
    if main:  # the multilevel model is the main analysis; the split table stays for the univariate sections
        rep.update(k=main["k"], estimate=main["estimate"], ci_lower=main["ci_lower"], ci_upper=main["ci_upper"],
                   tau2=main["sigma2"][0], i2=None, main_model=main["model"])
    rob = Robustness(report=rep, markdown="", result=res)
    if res.k >= 2:
        rep["tau2_ci"].update(_tau2_cis(rep["tau2_ci"], res))
    rep["integrity"] = _integrity(an, frame, res, measure, method, test, level)
    rep["subgroups"] = _subgroups(an, frame, measure, method, test, level)
    rep["meta_regression"], rob.regressions = _regressions(an, frame, res, method, level, permutations, seed)
    rep["small_study"] = _small_study(res, method, level)
    infl = {}
    if res.k >= 2:
        rob.leave_one_out = _attempt(infl, dg.leave_one_out, res)
        rob.baujat = _attempt(infl, dg.baujat, res)
    else:
        infl["not_computed"] = [f"k = {res.k}: leave-one-out and Baujat need at least 2 studies"]
    if res.k >= 3:
        rob.influence = _attempt(infl, dg.influence_measures, res)
    if "year" in frame.columns and res.k >= 2:
        years = pd.to_numeric(frame["year"], errors="coerce").reset_index(drop=True)
        ok = res.studies["yi"].notna().to_numpy()
        if years[ok].notna().all():
            rob.cumulative = _attempt(infl, dg.cumulative, res, order=years[ok].to_numpy(float))
    for name in ("leave_one_out", "influence", "baujat", "cumulative"):
        df = getattr(rob, name)
        infl[name] = None if df is None else _records(df.drop(columns=["dfbetas"], errors="ignore"))
    if res.k >= 2:
        b = _attempt(infl, blup, res)
        if b is not None:
            b = b.assign(yi=res.studies["yi"].to_numpy(float))
            b = b[b["pred"].notna()]
            nat = _natural_of(res, {n: b[n].to_numpy(float) for n in ("yi", "pred", "pi_lower", "pi_upper")})
            infl["blup"] = [{**r, **{k: _clean(v[i]) for k, v in nat.items()}}
                            for i, r in enumerate(_records(b))]
    rep["influence"] = infl
    rob.markdown = _markdown(an, rep)
    return rob


def _ci(d: dict) -> str:
    """``[lower, upper]`` of a tau² interval, with ">" where the bound is a search limit."""
    hi = (">" if d.get("tau2_ci_upper_censored") else "") + _f(d.get("tau2_ci_upper"), 4)
    lo = (">" if d.get("tau2_ci_lower_censored") else "") + _f(d.get("tau2_ci_lower"), 4)
    return f"[{lo}, {hi}]"


def _nat3(r: dict):
    """Estimate and CI of a result row, on the natural scale where it has one."""
    return tuple(r.get(f"{n}_natural", r.get(n)) for n in ("estimate", "ci_lower", "ci_upper"))


def _line_est(d, ratio_word):
    return f"{_f(d.get('estimate'))} ({_f(d.get('ci_lower'))} to {_f(d.get('ci_upper'))})"


def _markdown(an: Analysis, rep: dict) -> str:
    ratio = rep["measure"] in io.RATIO_MEASURES
    scale = "ratio scale" if ratio else "the measure's scale"
    L = [f"# Robustness: {an.spec['title']} — {rep['outcome']}", "",
         (f"Model: {interval_method(rep['method'], rep['test'])}; k = {rep['k']}; estimate {_line_est(rep, ratio)} "
         f"({rep['level']:g}% CI, {scale})."), ""]
    if rep.get("main_model"):
        L[-2] = (f"Main model: {rep['main_model']}; k = {rep['k']}; estimate {_line_est(rep, ratio)} "
                 f"({rep['level']:g}% CI, {scale}).")
        L += [(f"The sections below use {rep['method']} with test {rep['test']} on the table with each shared "
               "control arm split among its comparisons, because they assume independent studies; see "
               "'Multi-arm trials' for the main model beside the old handling."), ""]
    cis = rep.get("tau2_ci") or {}
    if rep["k"] >= 2 and cis.get("qp", {}).get("tau2_ci_lower") is not None:
        which = "of the random-effects model " if rep.get("main_model") else ""
        line = f"tau² {which}= {_f(cis['tau2'], 4)}, Q-profile CI {_ci(cis['qp'])}"
        if "pl" in cis:
            line += f", profile-likelihood CI {_ci(cis['pl'])}"
        L += [line + ".", ""]

    L += ["## Integrity sensitivity", ""]
    integ = rep["integrity"]
    if integ["flags"]:
        L.append("Flags: " + "; ".join(f"{f['study']} ({f['flag']})" for f in integ["flags"]) + ".")
        L.append("")
    L += ["| analysis | trials dropped | k | estimate (CI) | tau² | I² % | note |", "|---|---|---|---|---|---|---|",
          f"| all trials | none | {rep['k']} | {_line_est(rep, ratio)} | {_f(rep['tau2'], 4)} | {_f(rep['i2'], 1)} | |"]
    for a in integ["analyses"]:
        dropped = ", ".join(a["dropped"]) or "none"
        if "estimate" in a:
            L.append(f"| {a['analysis']} | {dropped} | {a['k']} | {_line_est(a, ratio)} | {_f(a['tau2'], 4)} | "
                     f"{_f(a['i2'], 1)} | |")
        else:
            L.append(f"| {a['analysis']} | {dropped} | | | | | {a.get('note', '')} |")
    L.append("")

    sg = rep["subgroups"]
    if sg is not None:
        L += [f"## Subgroups by `{sg['column']}`", ""]
        if "not_computed" in sg:
            L += [f"Not computed: {'; '.join(sg['not_computed'])}.", ""]
        else:
            L += ["| subgroup | k | estimate | CI | tau² | I² % |", "|---|---|---|---|---|---|"]
            for r in sg["subgroups"]:
                e, lo, hi = _nat3(r)
                L.append(f"| {r.get('group', r.get(sg['column']))} | {r.get('k')} | {_f(e)} | {_f(lo)} to {_f(hi)} "
                         f"| {_f(r.get('tau2'), 4)} | {_f(r.get('i2'), 1)} |")
            L += ["", (f"Test for subgroup differences (RevMan): Q = {_f(sg['q_between'], 2)}, df = "
                      f"{sg['q_between_df']}, {p_equals(sg['q_between_pvalue'])}, I² = {_f(sg['i2_between'], 1)}%."),
                  (f"Moderator test of one model with a common tau² (metafor QM, {sg['qm_test']}): "
                  f"{_f(sg['qm'], 2)} on df {', '.join(str(x) for x in sg['qm_df'] if x is not None)}, "
                  f"{p_equals(sg['qm_pvalue'])}."), ""]

    if rep["meta_regression"]:
        L += ["## Meta-regression", ""]
        for m in rep["meta_regression"]:
            L.append(f"### Moderator `{m['moderator']}`")
            L.append("")
            if "not_computed" in m and "knha" not in m:
                L += [f"Not computed: {'; '.join(m['not_computed'])}.", ""]
                continue
            L += ["| test | term | coefficient | SE | CI | p |", "|---|---|---|---|---|---|"]
            for t in ("z", "knha"):
                for c in (m.get(t) or {}).get("coefficients", []):
                    L.append(f"| {t} | {c.get('term')} | {_f(c.get('estimate'), 5)} | {_f(c.get('se'), 5)} | "
                             f"{_f(c.get('ci_lower'), 5)} to {_f(c.get('ci_upper'), 5)} | {format_p(c.get('pvalue'))} |")
            kn = m.get("knha", {})
            cis = m.get("tau2_ci") or {}
            ci_text = "".join(f", {name} CI {_ci(cis[key])}" for key, name in (("qp", "Q-profile"),
                                                                                ("pl", "profile-likelihood"))
                              if key in cis)
            L += ["", (f"k = {m['k']}; residual tau² = {_f(kn.get('tau2'), 4)}{ci_text}, I² = {_f(kn.get('i2'), 1)}%, "
                      f"R² = {_f(kn.get('r2'), 1)}%; residual heterogeneity QE = {_f(kn.get('qe'), 2)} "
                      f"({p_equals(kn.get('qe_pvalue'))}).")]
            perm = m.get("permutation")
            if perm:
                how = "exact, all permutations" if perm.get("exact") else f"{perm.get('iter')} permutations, seed {perm.get('seed')}"
                L.append(f"Permutation test of the moderator ({how}): {p_equals(perm.get('qm_pvalue'))}.")
            L.append("")

    ss = rep["small_study"]
    L += ["## Small-study effects", ""]
    if ss.get("caution"):
        L += [f"**Caution:** {ss['caution']}", ""]
    if "not_computed" in ss:
        L += [f"Not computed: {'; '.join(ss['not_computed'])}.", ""]
    for key, name in (("egger_lm", "Egger's regression test (weighted least squares, Egger 1997)"),
                      ("egger_rma", "Egger-type test, mixed-effects form (metafor regtest)")):
        e = ss.get(key)
        if e:
            kind = f"t (df = {e['df']:g})" if e.get("df") else "z"
            L.append(f"- {name}: {kind} = {_f(e['statistic'], 3)}, {p_equals(e['pvalue'])}; limit estimate "
                     f"{_f(e['limit_estimate'])} ({_f(e['limit_ci_lower'])} to {_f(e['limit_ci_upper'])}).")
    if ss.get("begg"):
        b = ss["begg"]
        L.append(f"- Begg's rank correlation: Kendall's tau = {_f(b['tau'], 3)}, {p_equals(b['pvalue'])}"
                 f"{' (exact)' if b.get('exact') else ''}.")
    for est in ("L0", "R0"):
        t = ss.get(f"trimfill_{est}")
        if t:
            L.append(f"- Trim and fill ({est}): {t['k0']} {'study' if t['k0'] == 1 else 'studies'} imputed on the {t['side']} side; adjusted "
                     f"estimate {_f(t['estimate'])} ({_f(t['ci_lower'])} to {_f(t['ci_upper'])}).")
    hc = ss.get("henmi_copas")
    if hc:
        e, lo, hi = _nat3(hc)
        L.append(f"- Henmi-Copas interval (common-effect estimate with a DerSimonian-Laird variance, robust to "
                 f"publication bias; Henmi & Copas 2010): {_f(e)} ({_f(lo)} to {_f(hi)}).")
    fsn = ss.get("fail_safe_n")
    if fsn:
        parts = []
        if "rosenthal" in fsn:
            parts.append(f"Rosenthal {fsn['rosenthal']['fsn']:g} (null studies to lose one-sided p < 0.05)")
        if "orwin" in fsn:
            parts.append(f"Orwin {fsn['orwin']['fsn']:g} (studies of effect 0 to halve the unweighted mean effect)")
        if "rosenberg" in fsn:
            parts.append(f"Rosenberg {fsn['rosenberg']['fsn']:g} (null studies to lose p < 0.05 of the "
                         "common-effect estimate)")
        L.append("- Fail-safe N: " + "; ".join(parts) + ". It counts studies, it does not test for bias.")
    L.append("")

    inf = rep["influence"]
    L += ["## Influence", ""]
    if inf.get("not_computed"):
        L += [f"Not computed: {'; '.join(inf['not_computed'])}.", ""]
    if inf.get("leave_one_out"):
        L += ["Leave-one-out:", "", "| omitted | k | estimate | CI | tau² | I² % |", "|---|---|---|---|---|---|"]
        for r in inf["leave_one_out"]:
            e, lo, hi = _nat3(r)
            L.append(f"| {r['omitted']} | {r['k']} | {_f(e)} | {_f(lo)} to {_f(hi)} | {_f(r['tau2'], 4)} | "
                     f"{_f(r['i2'], 1)} |")
        L.append("")
    if inf.get("influence"):
        L += ["Influence measures (metafor `influence()`; * = influential by its criteria):", "",
              "| study | rstudent | DFFITS | Cook's d | cov ratio | hat | weight % |", "|---|---|---|---|---|---|---|"]
        for r in inf["influence"]:
            L.append(f"| {r['study']}{' *' if r.get('influential') else ''} | {_f(r['rstudent'])} | "
                     f"{_f(r['dffits'])} | {_f(r['cook_d'])} | {_f(r['cov_r'])} | {_f(r['hat'])} | "
                     f"{_f(r['weight'], 1)} |")
        L.append("")
    if inf.get("blup"):
        L += ["Study-specific estimates shrunken towards the pooled one (BLUPs, metafor `blup()`):", "",
              "| study | observed | BLUP | prediction interval |", "|---|---|---|---|"]
        for r in inf["blup"]:
            o, e, lo, hi = (r.get(f"{n}_natural", r.get(n)) for n in ("yi", "pred", "pi_lower", "pi_upper"))
            L.append(f"| {r['study']} | {_f(o)} | {_f(e)} | {_f(lo)} to {_f(hi)} |")
        L.append("")
    if inf.get("cumulative"):
        L += ["Cumulative meta-analysis by year:", "", "| added | k | estimate | CI |", "|---|---|---|---|"]
        for r in inf["cumulative"]:
            e, lo, hi = _nat3(r)
            L.append(f"| {r['added']} | {r['k']} | {_f(e)} | {_f(lo)} to {_f(hi)} |")
        L.append("")

    L += ["## Multi-arm trials", ""] + _multi_arm_md(rep["multi_arm"], ratio)
    return "\n".join(L) + "\n"


def _est_ci(d) -> str:
    return f"{_f(d.get('estimate'))} ({_f(d.get('ci_lower'))} to {_f(d.get('ci_upper'))})"


def _dose_md(dr: dict, level) -> list[str]:
    per = f"{dr['per']:g}" if dr.get("per") not in (None, 1) else "1"
    L = [(f"Dose-response on `{dr['dose']}` (difference in dose to the control arm; slope per {per} units of "
         f"`{dr['dose']}`):"), ""]
    if dr.get("blocked_by"):
        L += ["What limits it:"] + [f"- {b}" for b in dr["blocked_by"]] + [""]
    fit = dr.get("fit")
    if fit:
        L.append(f"- main (covariance from the arm data; {fit['method']}, {fit['test']}; {fit['trials']} trial(s), "
                 f"k = {fit['k']}): slope {_f(fit['slope'], 4)} ({_f(fit['ci_lower'], 4)} to "
                 f"{_f(fit['ci_upper'], 4)}), {p_equals(fit['pvalue'])}; QE = {_f(fit['qe'], 2)} on {fit['qe_df']} df.")
        sp = dr.get("sensitivity_split")
        if sp:
            L.append(f"- sensitivity, control arm split (comparisons independent): slope {_f(sp['slope'], 4)} "
                     f"({_f(sp['ci_lower'], 4)} to {_f(sp['ci_upper'], 4)}), {p_equals(sp['pvalue'])}.")
        L.append("")
    if dr.get("assumed"):
        L += [f"**Not evidence** — {dr['assumed_note']}.", "",
              "| assumed correlation | slope | CI | p | QE (df) |", "|---|---|---|---|---|"]
        for a in dr["assumed"]:
            L.append(f"| {a['rho']:g} | {_f(a['slope'], 4)} | {_f(a['ci_lower'], 4)} to {_f(a['ci_upper'], 4)} | "
                     f"{format_p(a['pvalue'])} | {_f(a['qe'], 2)} ({a['qe_df']}) |")
        how = ("a common-effect (EE) fit" if dr["assumed"][0]["method"] == "EE" else
               f"a {dr['assumed'][0]['method']} fit")
        L += ["", (f"Each row: {how} of the comparisons on the dose difference, without intercept, with the "
                   "covariance built from the assumed correlation."), ""]
    elif not fit and not dr.get("blocked_by"):
        L += ["Not computed.", ""]
    return L


def _multi_arm_md(ma: dict, ratio: bool) -> list[str]:
    L = []
    if ma.get("groups"):
        L.append("Comparisons sharing a control arm: " + "; ".join(", ".join(g) for g in ma["groups"]) + ".")
        L.append(f"Their sampling covariance: {ma.get('covariance')}.")
        L.append("")
    main = ma.get("main")
    if main:
        tau = lambda d: _f((d.get("sigma2") or [d.get("tau2")])[0], 4)
        L += ["| analysis | k | estimate (CI) | p | tau² (sigma²) |", "|---|---|---|---|---|",
              f"| main: {main['model']} | {main['k']} | {_est_ci(main)} | {format_p(main['pvalue'])} | {tau(main)} |"]
        for s_ in ma["sensitivity"]:
            L.append(f"| sensitivity: {s_['analysis']} | {s_['k']} | {_est_ci(s_)} | {format_p(s_['pvalue'])} | "
                     f"{tau(s_)} |")
        L += ["", (f"Main model's residual heterogeneity QE = {_f(main['qe'], 2)} on {main['qe_df']} df "
                   f"({p_equals(main['qe_pvalue'])})."), ""]
    for n in ma.get("notes", []):
        L += [n, ""]
    if ma.get("dose_response"):
        L += _dose_md(ma["dose_response"], None)
    for j in ma.get("joint", []):
        L += [f"### Joint analysis of outcomes {', '.join(j['joint_outcomes'])}", ""]
        if j.get("groups"):
            L.append("Comparisons sharing a control arm: " + "; ".join(", ".join(g) for g in j["groups"]) + ".")
            L.append(f"Their sampling covariance: {j.get('covariance')}.")
            L.append("")
        else:
            L += ["No two comparisons of these outcomes share a control arm.", ""]
        for n in j.get("notes", []):
            L += [n, ""]
        if j.get("dose_response"):
            L += _dose_md(j["dose_response"], None)
        if j.get("yaml_notes"):
            L += [f"Note (analysis YAML): {j['yaml_notes']}", ""]
    if ma.get("shared_with_outcomes"):
        L += [("The control arm(s) of this outcome's rows are also the control arm(s) of rows in outcome(s) "
               + ", ".join(ma["shared_with_outcomes"]) + "; estimates across those outcomes are not independent."),
              ""]
    for nc in ma.get("not_computed", []):
        L += [f"Not computed: {nc}.", ""]
    L += correction_lines(ma["corrections"], ma["excluded"],
                          none=("No comparison of this outcome was split or dropped." if (ma.get("groups") or
                                ma.get("shared_with_outcomes") or ma.get("joint")) else
                                "No two comparisons of this outcome share a control arm."))
    return L
