"""Multi-arm trials: the covariance of comparisons that share a control arm.

When a trial compares several arms with one control arm, its comparisons are
correlated: they share the control arm's sampling error. Pooling them as
independent counts the control participants twice. With the per-arm data
(2x2 counts, or mean/SD/n) the covariance is known exactly to first order: it
is the control arm's own contribution to each comparison's sampling variance
(Gleser & Olkin 2009, section 19.3):

=========  ==========================================  =================================
measure    variance of comparison i                    covariance of comparisons i and j
=========  ==========================================  =================================
log RR     1/a - 1/n_t + 1/c - 1/n_c                   1/c - 1/n_c
log OR     1/a + 1/b + 1/c + 1/d                       1/c + 1/d
RD         p_t(1-p_t)/n_t + p_c(1-p_c)/n_c             p_c(1-p_c)/n_c
MD         sd_t²/n_t + sd_c²/n_c                       sd_c²/n_c
ROM        sd_t²/(n_t m_t²) + sd_c²/(n_c m_c²)         sd_c²/(n_c m_c²)
SMD        1/n_t + 1/n_c + g²/(2(n_t+n_c))             1/n_c + g_i g_j/(2N)
=========  ==========================================  =================================

with ``c, d`` the control arm's events and non-events (continuity-corrected as
the row's effect size, see :func:`metarepro.effects.compute_effects`), and
``N`` the total of all arms of the trial (the control arm plus every arm
compared with it). The SMD term follows Gleser & Olkin's formula for
standardised differences that share a control group; it assumes one pooled SD
for the trial, whereas Hedges' g of each comparison pools the SDs of its two
arms only: a first-order approximation either way. When the two rows of a
pair carry different corrected control cells (one row had a zero cell and the
other not), the covariance is ``sqrt(a_i a_j)`` with ``a_i`` the control
component of row ``i``.

With generic effects only (an estimate with its CI, or ``yi, vi``) the control
arm's share of each variance is not known and the covariance cannot be built
from the data; :func:`assumed_correlation_covariance` builds one from an
assumed correlation for a sensitivity analysis, never as evidence.

References
----------
Gleser LJ, Olkin I (2009). Stochastically dependent effect sizes. In: Cooper H,
Hedges LV, Valentine JC (eds), The Handbook of Research Synthesis and
Meta-Analysis, 2nd ed. Russell Sage Foundation, 357-376.
Higgins JPT, Eldridge S, Li T (2023). Chapter 23: Including variants on
randomized trials, section 23.3.4. Cochrane Handbook, version 6.4.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import io
from .effects import compute_effects
from .errors import InputError

__all__ = [
    "ASSUMED_RHOS",
    "SharedArmCovariance",
    "assumed_correlation_covariance",
    "multi_arm_section",
    "shared_arm_groups",
    "shared_control_covariance",
    "split_shared_control",
    "with_assumed_correlation",
]


def shared_arm_groups(frame: pd.DataFrame, *, study: str = "study", arm: str = "arm_c") -> list[tuple]:
    """Rows (positions) of each trial's comparisons that share a control arm: rows with the
    same ``study`` and the same non-empty ``arm`` value; groups of one row are left out."""
    if study not in frame.columns or arm not in frame.columns or frame.empty:
        return []
    a = frame[arm]
    has = a.notna() & (a.astype(str).str.strip() != "")
    key = frame[study].astype(str) + "\x00" + a.astype(str).str.strip()
    groups = []
    for _, idx in pd.Series(np.arange(len(frame)))[has.to_numpy()].groupby(key[has].to_numpy(), sort=False):
        if len(idx) > 1:
            groups.append(tuple(int(i) for i in idx))
    return groups


@dataclass(frozen=True)
class SharedArmCovariance:
    """Effect sizes of a table and their sampling covariance matrix.

    Attributes
    ----------
    yi, vi : ndarray
        As :func:`~metarepro.effects.compute_effects` (NaN for excluded rows).
    V : ndarray (k, k)
        ``diag(vi)`` plus the covariance of every pair of rows sharing a control arm
        (NaN rows/columns for excluded rows).
    groups : list of tuple
        Row positions of the comparisons sharing each control arm.
    modelled : bool
        True when the covariance of every group came from the arm data; False when some
        group has generic effects only (``unmodelled`` lists those groups, whose covariance
        is left at 0, and ``reason`` says why).
    """

    yi: np.ndarray
    vi: np.ndarray
    V: np.ndarray = field(repr=False)
    groups: list
    family: tuple | None
    modelled: bool
    reason: str | None = None
    corrections: list = field(default_factory=list)
    excluded: list = field(default_factory=list)
    unmodelled: list = field(default_factory=list)


def _control_component(frame, fam, mask, eff, measure, add):
    """The control arm's part of the sampling variance of the rows ``mask`` (all of family
    ``fam``): the ``a_i`` of the module notes; NaN elsewhere."""
    a = io.numeric_columns(frame, fam, rows=mask)
    if fam == io.BINARY:
        hit = np.zeros(len(frame), bool)
        for c in eff.corrections:
            hit[c["row"]] = True
        cc = a["events_c"] + np.where(hit, add, 0.0)
        dd = a["total_c"] - a["events_c"] + np.where(hit, add, 0.0)
        nc = cc + dd
        with np.errstate(divide="ignore", invalid="ignore"):
            if measure == "OR":
                out = 1 / cc + 1 / dd
            elif measure == "RR":
                out = 1 / cc - 1 / nc
            else:
                out = (cc / nc) * (1 - cc / nc) / nc
    elif measure == "MD":
        out = a["sd_c"] ** 2 / a["total_c"]
    elif measure == "ROM":
        out = a["sd_c"] ** 2 / (a["total_c"] * a["mean_c"] ** 2)
    else:
        out = 1 / a["total_c"]  # SMD: plus the g_i g_j / (2N) term, added pairwise
    return np.where(mask, out, np.nan), a


def shared_control_covariance(frame: pd.DataFrame, measure: str, *, study: str = "study",
                              arm: str = "arm_c", add: float = 0.5, to: str = "only0",
                              drop00: bool = False, ci_level: float = 95) -> SharedArmCovariance:
    """Effect sizes and their covariance matrix for comparisons that share control arms.

    Parameters
    ----------
    frame : DataFrame
        One row per comparison in metarepro's columns, the shared control arm repeated on
        each row that uses it, ``study`` naming the trial and ``arm`` the control arm. Rows
        may mix input families (as :func:`~metarepro.effects.compute_effects`); a group of
        rows sharing an arm is modelled when all its rows carry the same per-arm family
        (2x2 counts, or means/SDs).
    measure : {"RR", "OR", "RD", "MD", "SMD", "ROM", ...}
    add, to, drop00, ci_level :
        As :func:`metarepro.effects.compute_effects` (the covariance uses the same
        continuity-corrected cells as the effect sizes).

    Returns
    -------
    SharedArmCovariance
        ``modelled`` is False when some group could not be modelled (``unmodelled``
        lists them; their covariance is left at 0).

    Raises
    ------
    InputError
        When rows that share a control arm disagree on that arm's numbers.

    References
    ----------
    Gleser LJ, Olkin I (2009). Stochastically dependent effect sizes. In: The Handbook
    of Research Synthesis and Meta-Analysis, 2nd ed., 357-376.
    """
    eff = compute_effects(frame, measure, add=add, to=to, drop00=drop00, ci_level=ci_level)
    V = np.diag(eff.vi.astype(float))
    groups = shared_arm_groups(frame, study=study, arm=arm)
    fams = eff.row_family
    arm_fams = (io.BINARY, io.CONTINUOUS)
    ok = [g for g in groups if fams[g[0]] in arm_fams and all(fams[i] == fams[g[0]] for i in g)]
    unmodelled = [g for g in groups if g not in ok]
    out = {"yi": eff.yi, "vi": eff.vi, "groups": groups, "family": eff.family, "corrections": eff.corrections,
           "excluded": eff.excluded, "unmodelled": unmodelled}
    reason = None
    if unmodelled:
        reason = ("only generic effects (an estimate with its CI, or yi with its variance) are given"
                  + (" for some of the comparisons sharing an arm" if ok else "")
                  + ": the shared arm's part of each variance is unknown, so the covariance cannot be built "
                  "from arm data")
    file = frame.attrs.get("source", "<data>")
    for fam in dict.fromkeys(fams[g[0]] for g in ok):
        fg = [g for g in ok if fams[g[0]] == fam]
        mask = np.zeros(len(frame), bool)
        for g in fg:
            mask[list(g)] = True
        comp, num = _control_component(frame, fam, mask, eff, measure, add)
        arm_cols = ("events_c", "total_c") if fam == io.BINARY else ("mean_c", "sd_c", "total_c")
        for g in fg:
            for c in arm_cols:
                vals = num[c][list(g)]
                if not np.all(vals == vals[0]):
                    raise InputError(f"rows of {frame[study].iloc[g[0]]} sharing control arm "
                                     f"'{frame[arm].iloc[g[0]]}' disagree on {c}", file=file,
                                     row=io.row_label(frame, g[1]), column=c)
            n_all = num["total_c"][g[0]] + num["total_t"][list(g)].sum() if measure == "SMD" else None
            for i in g:
                for j in g:
                    if i == j:
                        continue
                    if measure == "SMD":
                        V[i, j] = 1 / num["total_c"][i] + eff.yi[i] * eff.yi[j] / (2 * n_all)
                    else:
                        V[i, j] = np.sqrt(comp[i] * comp[j])
    bad = ~np.isfinite(eff.yi)
    V[bad, :] = np.nan
    V[:, bad] = np.nan
    return SharedArmCovariance(V=V, modelled=not unmodelled, reason=reason, **out)


def with_assumed_correlation(cov: SharedArmCovariance, rho: float) -> np.ndarray:
    """``cov.V`` with the groups it could not model given the assumed correlation ``rho``."""
    V = cov.V.copy()
    A = assumed_correlation_covariance(cov.vi, cov.unmodelled, rho)
    for g in cov.unmodelled:
        V[np.ix_(g, g)] = A[np.ix_(g, g)]
    return V


def assumed_correlation_covariance(vi, groups, rho: float) -> np.ndarray:
    """A covariance matrix from an *assumed* correlation ``rho`` between comparisons that
    share a control arm: ``V_ij = rho sqrt(v_i v_j)`` within each group.

    For a sensitivity analysis only, when the arm data needed for
    :func:`shared_control_covariance` are not available. With equal arm sizes and
    equal variances per arm the true correlation of two comparisons sharing a
    control arm is 0.5 (Gleser & Olkin 2009), which is why 0.5 is the usual
    middle value of such an analysis.
    """
    vi = np.asarray(vi, float)
    if not -1 < rho < 1:
        raise InputError(f"assumed correlation {rho} must lie strictly between -1 and 1")
    V = np.diag(vi)
    sd = np.sqrt(vi)
    for g in groups:
        for i in g:
            for j in g:
                if i != j:
                    V[i, j] = rho * sd[i] * sd[j]
    return V


# --------------------------------------------------------------------------
# what the reports say about multi-arm trials
# --------------------------------------------------------------------------

#: Assumed correlations of the sensitivity analysis for generic effects (never evidence).
ASSUMED_RHOS = (0.0, 0.5, 0.8)
NOT_EVIDENCE = ("sensitivity analysis over assumed correlations between comparisons that share a control "
                "arm: the correlation is not known from the data, so these numbers show how much the "
                "answer depends on it and are not evidence")


def _summary(res, measure: str) -> dict:
    """Estimate, CI, p and variance components of a pool() or pool_mv() result, JSON-ready."""
    from .pooling import _clean

    names = ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper")
    out = {k: _clean(getattr(res, k)) for k in names}
    out.update(k=res.k, pvalue=_clean(res.pvalue))
    nat = res.natural()
    if nat:
        out.update({k: _clean(nat[f"{k}_natural"]) for k in names})
        out["scale"] = "ratio"
    if hasattr(res, "sigma2"):
        out["sigma2"] = [_clean(s) for s in res.sigma2]
        out["qe"], out["qe_df"], out["qe_pvalue"] = _clean(res.qe), res.qe_df, _clean(res.qe_pvalue)
    else:
        out["tau2"] = _clean(res.tau2)
    return out


def _label_rows(rows: pd.DataFrame, study: str = "study") -> pd.Series:
    lab = rows[study].astype(str)
    tag = "comparison" if "comparison" in rows.columns else ("arm_t" if "arm_t" in rows.columns else None)
    dup = lab.duplicated(keep=False)
    if tag is not None and dup.any():
        lab = lab.where(~dup, lab + " (" + rows[tag].astype(str) + ")")
    return lab


def _dose_fit(rows, measure, dose, control_dose, V, method, test, level, per):
    """Meta-regression of the comparisons on the dose difference to the control arm, without an
    intercept (two arms given the same dose differ by nothing), slope per ``per`` units."""
    from .multilevel import fit

    x = pd.to_numeric(rows[dose], errors="coerce").to_numpy(float)
    xc = (pd.to_numeric(rows["control_dose"], errors="coerce").to_numpy(float) if control_dose is None
          else np.full(len(rows), float(control_dose)))
    mods = pd.DataFrame({f"{dose}_minus_control_per_{per:g}": (x - xc) / per})
    trials = rows["study"].nunique()
    m = method if trials >= 2 else "EE"
    res = fit(rows["_yi"].to_numpy(float), V, rows.assign(_comparison=np.arange(len(rows))),
              random="~ 1 | _comparison" if m != "EE" else None, mods=mods, intercept=False,
              method=m, test=test if trials >= 2 else "z", level=level)
    c = res.coefficients.iloc[0]
    return {"method": m, "test": res.test, "k": res.k, "trials": trials, "term": c["term"],
            "slope": float(c["estimate"]), "se": float(c["se"]), "ci_lower": float(c["ci_lower"]),
            "ci_upper": float(c["ci_upper"]), "pvalue": float(c["pvalue"]), "qe": res.qe, "qe_df": res.qe_df,
            "qe_pvalue": res.qe_pvalue}


def multi_arm_section(rows: pd.DataFrame, measure: str, *, method: str = "REML", test: str = "knha",
                      level: float = 95, dose: str | None = None, control_dose: float | None = None,
                      dose_per: float = 1000, joint: list | None = None) -> dict:
    """What a report says about comparisons sharing control arms in ``rows`` (unsplit).

    With per-arm data the main analysis is the multilevel model with the covariance from the
    arm data (:func:`metarepro.multilevel.pool_mv`, one random effect per comparison; REML or
    ML, test t for Knapp-Hartung reports and z otherwise), and the old handling is the
    sensitivity analysis: the control arm split among the comparisons (Cochrane Handbook
    23.3.4) and the first comparison of each shared arm only. With generic effects the
    covariance cannot be built; the section says so and, where a dose-response or joint
    analysis is asked for, gives the sensitivity analysis over assumed correlations
    (:data:`ASSUMED_RHOS`), labelled as not evidence.

    Parameters
    ----------
    rows : DataFrame
        Comparisons of one outcome (or of the outcomes analysed jointly, ``joint``), not split.
    dose, control_dose, dose_per :
        Column of the treated arm's dose, the control arm's dose (or a ``control_dose`` column),
        and the unit of the slope: with ``dose`` a dose-response meta-regression is attempted.

    Returns
    -------
    dict
        JSON-ready: ``groups``, ``arm_data``, ``covariance``, ``main``, ``sensitivity``,
        ``dose_response``, ``notes``.
    """
    from .multilevel import pool_mv
    from .pooling import pool

    rows = rows.reset_index(drop=True)
    groups = shared_arm_groups(rows)
    labels = _label_rows(rows)
    sec: dict = {"joint_outcomes": joint, "groups": [list(labels.iloc[list(g)]) for g in groups],
                 "main": None, "sensitivity": [], "dose_response": None, "notes": []}
    if not groups:
        return sec
    mv_method = method if method in ("REML", "ML") else "REML"
    mv_test = "t" if test in ("knha", "adhoc", "t") else "z"
    cov = shared_control_covariance(rows, measure)
    sec["arm_data"] = cov.modelled
    sec["covariance"] = ("from the arm data (Gleser & Olkin 2009)" if cov.modelled else
                         f"not built: {cov.reason}")
    quiet = rows.copy()
    quiet["study"] = labels
    quiet.attrs.update(rows.attrs)
    if cov.modelled and joint is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            main = pool_mv(rows, measure, method=mv_method, test=mv_test, level=level)
            sec["main"] = dict(_summary(main, measure), model=(
                f"multilevel model (metafor rma.mv): {mv_method}, one random effect per comparison, sampling "
                f"covariance of comparisons sharing a control arm from the arm data, test {mv_test}"))
            split, _ = split_shared_control(rows, relabel=True)
            s = pool(split, measure=measure, method=method, test=test, level=level)
            sec["sensitivity"].append(dict(_summary(s, measure), analysis=(
                "control arm split evenly among its comparisons (Cochrane Handbook 23.3.4)")))
            drop = np.zeros(len(rows), bool)
            for g in groups:
                drop[list(g[1:])] = True
            f = pool(quiet[~drop].reset_index(drop=True), measure=measure, method=method, test=test, level=level)
            sec["sensitivity"].append(dict(_summary(f, measure), analysis=(
                "first comparison of each shared control arm only (the others dropped)")))
    elif not cov.modelled:
        sec["notes"].append("No pooled estimate treats these comparisons as independent: "
                            + ("each is its own outcome." if joint else "the first comparison of each shared "
                               "arm is kept and the others are excluded (see the excluded studies)."))
    if dose is not None:
        sec["dose_response"] = _dose_section(rows, measure, cov, dose, control_dose, dose_per, mv_method, mv_test,
                                             level)
    return sec


def _dose_section(rows, measure, cov, dose, control_dose, per, method, test, level) -> dict:
    out: dict = {"dose": dose, "per": per, "fit": None, "assumed": [], "blocked_by": []}
    if dose not in rows.columns:
        out["blocked_by"].append(f"the column '{dose}' is not in the data")
        return out
    x = pd.to_numeric(rows[dose], errors="coerce")
    if control_dose is None and "control_dose" not in rows.columns:
        out["blocked_by"].append("the control arm's dose is not given (YAML control_dose or a control_dose column)")
    if x.isna().any() or x.nunique() < 2:
        out["blocked_by"].append(f"needs at least 2 distinct doses in '{dose}' (has {x.nunique()})")
    trials = rows["study"].nunique()
    if trials < 2:
        out["blocked_by"].append(
            f"only {trials} trial: with one trial the between-trial variance cannot be estimated, so this is "
            "that trial's own dose-response (a common-effect fit through its contrasts), not a meta-regression "
            "across trials")
    keep = np.isfinite(cov.yi)
    r = rows[keep].reset_index(drop=True).assign(_yi=cov.yi[keep])
    if not cov.modelled:
        out["blocked_by"].append("the comparisons share a control arm but only generic effects are printed (no "
                                 "arm-level SDs or counts), so their covariance cannot be built from arm data")
    fatal = [b for b in out["blocked_by"] if not b.startswith("only ") and "generic effects" not in b]
    if fatal:
        return out
    idx = np.flatnonzero(keep)
    if cov.modelled:
        out["fit"] = _dose_fit(r, measure, dose, control_dose, cov.V[np.ix_(idx, idx)], method, test, level, per)
    
        split, _ = split_shared_control(rows, relabel=False)
        sc = shared_control_covariance(split.drop(columns=["arm_c"]), measure)
        out["sensitivity_split"] = _dose_fit(split[keep].reset_index(drop=True).assign(_yi=sc.yi[keep]), measure,
                                             dose, control_dose, np.diag(sc.vi[keep]), method, test, level, per)
    else:
        out["assumed_note"] = NOT_EVIDENCE
        for rho in ASSUMED_RHOS:
            V = with_assumed_correlation(cov, rho)[np.ix_(idx, idx)]
            out["assumed"].append(dict(_dose_fit(r, measure, dose, control_dose, V, method, test, level, per),
                                       rho=rho))
    return out


# --------------------------------------------------------------------------
# splitting a shared control arm (the Handbook's simple approach)
# --------------------------------------------------------------------------


def _split_int(n: float, m: int) -> np.ndarray:
    """Split a whole number n into m whole parts that differ by at most 1 and
    sum to n (the larger parts first)."""
    n = round(n)
    base, rem = divmod(n, m)
    return np.array([base + (1 if j < rem else 0) for j in range(m)], float)


def split_shared_control(
    frame: pd.DataFrame, *, study: str = "study", arm: str = "arm_c", relabel: bool = True
) -> tuple[pd.DataFrame, list]:
    """Split a control arm shared by several comparisons of one trial (Cochrane
    Handbook section 23.3.4), so that its participants are not counted twice.

    Rows with the same ``study`` and the same control arm ``arm`` are the
    comparisons sharing it. For 2x2 data the control events and total are
    divided evenly among the m comparisons; for continuous data the total is
    divided and mean and SD are kept. Counts stay whole numbers: the parts
    differ by at most one and add up to the original (e.g. 109 into 55 + 54),
    with the larger parts given to the first rows. Generic effects
    (``yi,vi``/``estimate,ci``) cannot be split; such groups are reported in the
    corrections and left unchanged.

    Parameters
    ----------
    frame : DataFrame
        The study table with columns ``study`` and ``arm`` (rows without an
        ``arm`` value are left alone).
    relabel : bool
        Make the labels of the split rows unique by appending the comparison
        (column ``comparison``, else ``arm_t``), so the table can be pooled.

    Returns
    -------
    (DataFrame, list of dict)
        The adjusted table and one correction per adjusted row (``row``,
        ``study``, ``arm``, ``shared_by``, ``action``).

    References
    ----------
    Higgins JPT, Eldridge S, Li T (2023). Chapter 23: Including variants on
    randomized trials, section 23.3.4. In: Cochrane Handbook for Systematic
    Reviews of Interventions, version 6.4.
    """
    file = frame.attrs.get("source", "<data>")
    for c in (study, arm):
        if c not in frame.columns:
            raise InputError(f"missing column '{c}'", file=file)
    out = frame.copy().reset_index(drop=True)
    cols = set(out.columns)
    binary = set(io.BINARY) <= cols
    continuous = set(io.CONTINUOUS) <= cols
    corrections: list = []
    armv = out[arm]
    has_arm = armv.notna() & (armv.astype(str).str.strip() != "")
    key = out[study].astype(str) + "\x00" + armv.astype(str)
    sizes = key[has_arm].value_counts()
    shared = [g for g, n in sizes.items() if n > 1]
    split_cols = ["total_c"] + (["events_c"] if binary else [])
    for col in split_cols:
        if col in out.columns:
            out[col] = out[col].astype(object)
    for g in sorted(shared, key=lambda s: int(np.flatnonzero((key == s) & has_arm)[0])):
        idx = np.flatnonzero((key == g) & has_arm)
        m = idx.size
        lab, armname = out.at[idx[0], study], out.at[idx[0], arm]
        if not (binary or continuous):
            for i in idx:
                corrections.append(
                    {
                        "row": int(i),
                        "study": lab,
                        "arm": armname,
                        "shared_by": m,
                        "action": "not split: generic effect input cannot be split; the shared "
                        "control arm is counted in each comparison",
                    }
                )
            continue
        changes = {}
        for col in split_cols:
            vals = pd.to_numeric(out.loc[idx, col], errors="coerce").to_numpy(float)
            if np.isnan(vals).any() or not np.all(vals == vals[0]):
                raise InputError(
                    f"rows of {lab} sharing control arm '{armname}' disagree on {col}", file=file, column=col
                )
            changes[col] = (vals[0], _split_int(vals[0], m))
        for j, i in enumerate(idx):
            parts = []
            for col, (orig, new) in changes.items():
                out.at[i, col] = int(new[j])
                parts.append(f"{col} {orig:g} -> {new[j]:g}")
            corrections.append(
                {
                    "row": int(i),
                    "study": lab,
                    "arm": armname,
                    "shared_by": m,
                    "action": f"shared control arm split among {m} comparisons "
                    f"(Cochrane Handbook 23.3.4): " + ", ".join(parts),
                }
            )
    for col in split_cols:
        if col in out.columns:
            out[col] = pd.to_numeric(out[col])
    if relabel and shared:
        tag = "comparison" if "comparison" in cols else ("arm_t" if "arm_t" in cols else None)
        dup = out[study].astype(str).duplicated(keep=False)
        if tag is not None:
            out.loc[dup, study] = out.loc[dup, study].astype(str) + " (" + out.loc[dup, tag].astype(str) + ")"
        for c in corrections:
            c["label"] = out.at[c["row"], study]
    out.attrs.update(frame.attrs)
    return out, corrections
