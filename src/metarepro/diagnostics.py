"""Sensitivity analyses, small-study effects, subgroups and method forensics.

Everything here follows metafor 3.8 (``regtest``, ``ranktest``, ``trimfill``,
``leave1out``, ``influence``, ``cumul``, ``baujat``, ``rma(mods = ~ factor(g))``)
and is checked against it in ``tests/test_diagnostics.py``. Analyses that need
many pooled fits (leave-one-out, cumulative, influence, method forensics,
sensitivity) build all of them as one long table with a group column and fit
them with one vectorised :func:`metarepro.pool` call.

Inputs
------
Most functions accept the studies in one of three forms:

* a :class:`~metarepro.pooling.PoolResult` (its per-study ``yi``/``vi``; method,
  test and level default to the result's),
* a study table (DataFrame) with ``measure=`` (and any pool options), or
* arrays ``yi`` and ``vi`` (model scale: log ratios, Fisher z).

Mantel-Haenszel and Peto fits have no regression form: diagnostics that refit
a regression or a ``rma.uni`` model (Egger, trim-and-fill, influence) use the
common-effect inverse-variance model for them, while leave-one-out, cumulative
and Baujat data refit MH/Peto from the 2x2 table (pass the table).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from . import _core, io
from . import _dist as stats
from . import conventions as conv_mod
from .effects import compute_effects
from .errors import InputError, MetareproWarning
from .metareg import fit_batch, meta_regression, model_matrix
from .names import COUNT_METHODS, T_TESTS, TESTS
from .pooling import PoolResult, _clean, _natural, pool

#: Cochrane Handbook for Systematic Reviews of Interventions, version 6.4 (2023), section 13.3.5.4.
SMALL_STUDY_CAUTION = (
    "As a rule of thumb, tests for funnel plot asymmetry should be used only when there are at least "
    "10 studies "
    "included in the meta-analysis, because when there are fewer studies the power of the tests is "
    "too low to distinguish chance from real asymmetry (Cochrane Handbook, section 13.3.5.4)."
)


def small_study_caution(k: int) -> str | None:
    """The Cochrane Handbook caution for funnel-asymmetry tests when ``k < 10``.

    Parameters
    ----------
    k : int
        Number of studies.

    Returns
    -------
    str or None
        :data:`SMALL_STUDY_CAUTION` (with k) when fewer than 10 studies, else None.

    References
    ----------
    Page MJ, Higgins JPT, Sterne JAC (2023). Chapter 13: Assessing risk of bias
    due to missing results in a synthesis. In: Cochrane Handbook for Systematic
    Reviews of Interventions, version 6.4, section 13.3.5.4.
    Sterne JAC et al. (2011). Recommendations for examining and interpreting
    funnel plot asymmetry in meta-analyses of randomised controlled trials. BMJ 343:d4002.
    """
    if k < 10:
        return f"k = {k} < 10. " + SMALL_STUDY_CAUTION
    return None


# --------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Data:
    yi: np.ndarray
    vi: np.ndarray
    labels: np.ndarray
    method: str
    test: str
    level: float
    measure: str
    frame: pd.DataFrame | None
    pool_kw: dict


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetareproWarning)
        return fn(*a, **kw)


def _resolve(
    data, vi=None, *, labels=None, method=None, test=None, level=None, measure=None, pool_kw=None
) -> _Data:
    pool_kw = dict(pool_kw or {})
    if isinstance(data, PoolResult):
        st = data.studies
        ok = np.isfinite(st["yi"].to_numpy(float)) & np.isfinite(st["vi"].to_numpy(float))
        st = st[ok]
        return _Data(
            st["yi"].to_numpy(float),
            st["vi"].to_numpy(float),
            st["study"].astype(str).to_numpy(),
            method or data.method,
            test or data.test,
            float(level or data.level),
            data.measure,
            None,
            pool_kw,
        )
    if isinstance(data, pd.DataFrame):
        if measure is None:
            raise InputError(
                "a study table needs measure= (RR, OR, RD, MD, SMD, ROM, ZCOR or GEN)",
                file=data.attrs.get("source", "<data>"),
            )
        res = _quiet(
            pool,
            data,
            measure=measure,
            method=method or "REML",
            test=test or "z",
            level=level or 95,
            **pool_kw,
        )
        d = _resolve(res)
        return replace(d, frame=data.reset_index(drop=True), pool_kw=pool_kw)
    y = np.asarray(data, float).ravel()
    if vi is None:
        raise InputError("vi is needed with yi given as numbers")
    v = np.asarray(vi, float).ravel()
    if y.shape != v.shape:
        raise InputError(f"yi has {y.size} values but vi has {v.size}")
    lab = np.arange(1, y.size + 1).astype(str) if labels is None else np.asarray(labels).astype(str)
    if lab.size != y.size:
        raise InputError(f"{lab.size} labels for {y.size} studies")
    ok = np.isfinite(y) & np.isfinite(v)
    if (v[ok] <= 0).any():
        raise InputError("sampling variances must be > 0")
    return _Data(
        y[ok],
        v[ok],
        lab[ok],
        method or "REML",
        test or "z",
        float(level or 95),
        measure or "GEN",
        None,
        pool_kw,
    )


def _iv(method: str) -> str:
    """The inverse-variance model for regression-type diagnostics (MH/Peto → FE, MH-DL → DL)."""
    return {"MH": "FE", "PETO": "FE", "MH-DL": "DL"}.get(method, method)


def _pool_gen(y, v, labels, method, test, level, measure="GEN", by=None):
    frame = pd.DataFrame({"study": labels, "yi": y, "vi": v})
    if by is not None:
        frame.insert(0, "_group", by)
    res = _quiet(
        pool, frame, measure="GEN", method=method, test=test, level=level, by=None if by is None else "_group"
    )
    if by is None and measure != "GEN":
        res = replace(res, measure=measure)
    return res


def _groups(d: _Data, members: np.ndarray, groups: np.ndarray):
    """Pool the analyses ``groups`` (rows ``members`` of the studies) in one call;
    returns the per-group summary in group order."""
    if d.frame is not None and d.method in ("MH", "PETO"):
        rows = d.frame.iloc[members].reset_index(drop=True)
        rows.insert(0, "_group", groups)
        tab = _quiet(
            pool,
            rows,
            measure=d.measure,
            method=d.method,
            test=d.test,
            level=d.level,
            by="_group",
            **d.pool_kw,
        )
    elif d.method in ("MH", "PETO"):
        raise InputError(f"refitting {d.method} needs the 2x2 table: pass the study table and measure=")
    else:
        tab = _pool_gen(d.yi[members], d.vi[members], d.labels[members], d.method, d.test, d.level, by=groups)
    return tab.summary.sort_values("_group", kind="stable").reset_index(drop=True)


def _labels_index(d: _Data):
    """Rows of the study table (MH/Peto refits) or of yi/vi, and their labels."""
    if d.frame is not None and d.method in ("MH", "PETO"):
        return np.arange(len(d.frame)), io.check_studies(d.frame).astype(str)
    return np.arange(d.yi.size), d.labels


# --------------------------------------------------------------------------
# leave-one-out, cumulative, influence, Baujat
# --------------------------------------------------------------------------

COLUMNS = (
    "k",
    "estimate",
    "se",
    "statistic",
    "pvalue",
    "ci_lower",
    "ci_upper",
    "q",
    "q_pvalue",
    "tau2",
    "i2",
    "h2",
)


def leave_one_out(
    data,
    vi=None,
    *,
    labels=None,
    method: str | None = None,
    test: str | None = None,
    level: float | None = None,
    measure: str | None = None,
    **pool_kw,
) -> pd.DataFrame:
    """Pool the studies k times, each time without one, as metafor's ``leave1out``.

    All k analyses are built as one table with a group column and fitted by a
    single vectorised :func:`metarepro.pool` call.

    Parameters
    ----------
    data : PoolResult, DataFrame or array_like
        See the module notes; with a study table pass ``measure`` (and pool options).
    vi, labels : array_like, optional
        Sampling variances and study labels when ``data`` holds the effects.
    method, test, level :
        As :func:`metarepro.pool` (default: those of a PoolResult, else REML, z, 95).

    Returns
    -------
    DataFrame
        One row per omitted study: ``omitted`` and the pooled fields (model
        scale), plus ``*_natural`` columns for ratio measures and ZCOR.

    References
    ----------
    Viechtbauer W, Cheung MWL (2010). Outlier and influence diagnostics for
    meta-analysis. Res Synth Methods 1:112-125.
    """
    d = _resolve(
        data, vi, labels=labels, method=method, test=test, level=level, measure=measure, pool_kw=pool_kw
    )
    rows, lab = _labels_index(d)
    k = rows.size
    if k < 2:
        raise InputError("leave-one-out needs at least 2 studies")
    omit, keep = np.nonzero(~np.eye(k, dtype=bool))
    summ = _groups(d, rows[keep], omit)
    out = summ[[c for c in COLUMNS] + [c for c in summ.columns if c.endswith("_natural")]].copy()
    out.insert(0, "omitted", lab)
    _add_natural(out, d.measure)
    return out


def _add_natural(out, measure):
    fn = _natural(measure)
    if fn is None:
        return
    with np.errstate(over="ignore"):
        for n in ("estimate", "ci_lower", "ci_upper"):
            if n in out and f"{n}_natural" not in out:
                out[f"{n}_natural"] = fn(out[n].to_numpy(float))


def cumulative(
    data,
    vi=None,
    *,
    order=None,
    labels=None,
    decreasing: bool = False,
    method: str | None = None,
    test: str | None = None,
    level: float | None = None,
    measure: str | None = None,
    **pool_kw,
) -> pd.DataFrame:
    """Cumulative meta-analysis, as metafor's ``cumul``: add the studies one at a
    time in the order of ``order`` (ties keep their input order), all k fits in
    one vectorised pooling call.

    Parameters
    ----------
    data : PoolResult, DataFrame or array_like
    order : array_like or str, optional
        Sort key per study (e.g. publication year), or the name of a column of
        the study table; default: input order.
    decreasing : bool
        Sort from the largest key.

    Returns
    -------
    DataFrame
        One row per step: ``added`` (the study added) and the pooled fields of
        the first j studies.

    References
    ----------
    Lau J, Antman EM, Jimenez-Silva J, Kupelnick B, Mosteller F, Chalmers TC
    (1992). Cumulative meta-analysis of therapeutic trials for myocardial
    infarction. N Engl J Med 327:248-254.
    """
    d = _resolve(
        data, vi, labels=labels, method=method, test=test, level=level, measure=measure, pool_kw=pool_kw
    )
    rows, lab = _labels_index(d)
    k = rows.size
    if isinstance(order, str):
        if d.frame is None or order not in d.frame.columns:
            raise InputError(f"no column '{order}' to order by")
        key = d.frame[order].to_numpy()
        if not (d.frame is not None and d.method in ("MH", "PETO")):
            ok = np.isin(io.check_studies(d.frame).astype(str), lab)
            key = key[ok]
    elif order is None:
        key = np.arange(k)
    else:
        key = np.asarray(order)
    if len(key) != k:
        raise InputError(f"order has {len(key)} values for {k} studies")
    key = pd.to_numeric(pd.Series(key), errors="coerce").to_numpy() if key.dtype == object else key
    idx = np.argsort(-key if decreasing else key, kind="stable")
    steps = np.repeat(np.arange(k), np.arange(1, k + 1))
    members = np.concatenate([idx[: j + 1] for j in range(k)])
    summ = _groups(d, rows[members], steps)
    out = summ[[c for c in COLUMNS] + [c for c in summ.columns if c.endswith("_natural")]].copy()
    out.insert(0, "added", lab[idx])
    _add_natural(out, d.measure)
    return out


def _loo_core(y, v, method, test):
    """Leave-one-out fits of an intercept-only model with the engine: tau², mean,
    variance (Knapp-Hartung-scaled with knha), s2w and Q of each of the k fits."""
    k = y.size
    omit, keep = np.nonzero(~np.eye(k, dtype=bool))
    seg = _core.Segments(omit, k)
    yy, vv = y[keep], v[keep]
    tau2, _, _ = _core.estimate_tau2(seg, yy, vv, method)
    iv, _ = _core.inverse_variance(seg, yy, vv, tau2, test, 95.0)
    w = 1 / (vv + tau2[seg.g])
    sw = seg.sum(w)
    if test in T_TESTS:
        rss = seg.sum(w * (yy - iv["estimate"][seg.g]) ** 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            s2w = np.where(rss <= np.finfo(float).eps, 0.0, rss / (k - 2))
        if test == "adhoc":
            s2w = np.maximum(1.0, s2w)
    else:
        s2w = np.ones(k)
    q = _core.q_statistic(seg, yy, vv, np.zeros(k))
    return tau2, iv["estimate"], s2w / sw, s2w, np.maximum(q, 0.0)


def influence_measures(
    data,
    vi=None,
    *,
    labels=None,
    method: str | None = None,
    test: str | None = None,
    measure: str | None = None,
    **pool_kw,
) -> pd.DataFrame:
    """Case-deletion diagnostics of an intercept-only model, as metafor's ``influence()``.

    For each study i, with the model refitted without it (tau²_(-i), mu_(-i),
    its variance v_(-i) and Knapp-Hartung factor s²_(-i), 1 with test z):

    * ``rstudent``: ``(y_i - mu_(-i)) / sqrt(v_i s² + v_(-i) + tau²_(-i) s²)``
    * ``dffits``: ``(mu - mu_(-i)) / sqrt(s² h_i (tau²_(-i) + v_i))``
    * ``cook_d``: ``(mu - mu_(-i))² / Var(mu)``
    * ``cov_r``: ``v_(-i) / Var(mu)``
    * ``tau2_del``, ``qe_del``: tau² and Q without study i
    * ``hat``: ``w_i / sum w`` (a proportion), ``weight``: the same in percent
    * ``dfbetas``: ``(mu - mu_(-i)) / sqrt(s² / sum_j 1/(v_j + tau²_(-i)))``
    * ``influential``: flagged by any of metafor's cut-offs, ``|dffits| > 3 sqrt(1/(k-1))``,
      ``P(chi²_1 <= cook_d) > 0.5``, ``hat > 3/k`` or ``|dfbetas| > 1``.

    The k deleted fits are computed in one vectorised pass.

    References
    ----------
    Viechtbauer W, Cheung MWL (2010). Outlier and influence diagnostics for
    meta-analysis. Res Synth Methods 1:112-125.
    """
    d = _resolve(data, vi, labels=labels, method=method, test=test, measure=measure, pool_kw=pool_kw)
    y, v = d.yi, d.vi
    k = y.size
    if k < 2:
        raise InputError("influence diagnostics need at least 2 studies")
    meth = _iv(d.method)
    full = _pool_gen(y, v, d.labels, meth, d.test, d.level)
    mu, vb = full.estimate, full.se**2
    w = 1 / (v + full.tau2)
    hat = w / w.sum()
    tau2_del, mu_del, vb_del, s2w_del, q_del = _loo_core(y, v, meth, d.test)
    diff = mu - mu_del
    with np.errstate(invalid="ignore", divide="ignore"):
        dffits = diff / np.sqrt(s2w_del * hat * (tau2_del + v))
        vb_full_at_del = 1 / np.sum(1 / (v[None, :] + tau2_del[:, None]), axis=1)
        dfbs = diff / np.sqrt(s2w_del * vb_full_at_del)
        cook = diff**2 / vb
        cov_r = vb_del / vb
        resid = y - mu_del
        resid[np.abs(resid) < 100 * np.finfo(float).eps] = 0.0
        rstudent = resid / np.sqrt(v * s2w_del + vb_del + tau2_del * s2w_del)
    infl = (
        (np.abs(dffits) > 3 * np.sqrt(1 / (k - 1)))
        | (stats.chi2.cdf(cook, 1) > 0.5)
        | (hat > 3 / k)
        | (np.abs(dfbs) > 1)
    )
    return pd.DataFrame(
        {
            "study": d.labels,
            "rstudent": rstudent,
            "dffits": dffits,
            "cook_d": cook,
            "cov_r": cov_r,
            "tau2_del": tau2_del,
            "qe_del": q_del,
            "hat": hat,
            "weight": 100 * hat,
            "dfbetas": dfbs,
            "influential": infl,
        }
    )


def baujat(
    data,
    vi=None,
    *,
    labels=None,
    method: str | None = None,
    test: str | None = None,
    measure: str | None = None,
    **pool_kw,
) -> pd.DataFrame:
    """Data of a Baujat plot, as metafor's ``baujat()``.

    ``x``: the study's contribution to the (residual) heterogeneity,
    ``(y_i - mu)² / (v_i + tau²)`` (its term of Cochran's Q for common-effect
    models, the squared Pearson residual otherwise); ``y``: its influence on the
    pooled estimate, ``(mu_(-i) - mu)² / Var(mu_(-i))`` with the leave-one-out
    fits (one vectorised call).

    References
    ----------
    Baujat B, Mahé C, Pignon JP, Hill C (2002). A graphical method for exploring
    heterogeneity in meta-analyses: application to a meta-analysis of 65 trials.
    Stat Med 21:2641-2652.
    """
    d = _resolve(data, vi, labels=labels, method=method, test=test, measure=measure, pool_kw=pool_kw)
    loo = leave_one_out(
        data, vi, labels=labels, method=d.method, test=d.test, level=d.level, measure=measure, **pool_kw
    )
    if d.frame is not None and d.method in ("MH", "PETO"):
        full = _quiet(
            pool, d.frame, measure=d.measure, method=d.method, test=d.test, level=d.level, **d.pool_kw
        )
        st = full.studies
        y, v = st["yi"].to_numpy(float), st["vi"].to_numpy(float)
    else:
        full = _pool_gen(d.yi, d.vi, d.labels, d.method, d.test, d.level)
        y, v = d.yi, d.vi
    with np.errstate(invalid="ignore", divide="ignore"):
        x = (y - full.estimate) ** 2 / (v + full.tau2)
        yy = (loo["estimate"].to_numpy() - full.estimate) ** 2 / loo["se"].to_numpy() ** 2
    return pd.DataFrame({"study": loo["omitted"].to_numpy(), "x": x, "y": yy})


# --------------------------------------------------------------------------
# small-study effects
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class EggerTest:
    """Regression test for funnel-plot asymmetry (metafor ``regtest``).

    ``statistic``/``pvalue`` test the predictor (z, or t on ``df`` df);
    ``limit_estimate`` and its interval are the intercept: the expected effect
    of a study with standard error 0 (Stanley & Doucouliagos 2014's PET estimate).
    ``caution`` is the Cochrane Handbook caution when k < 10.
    """

    model: str
    predictor: str
    method: str
    test: str
    k: int
    statistic: float
    df: float | None
    pvalue: float
    slope: float
    slope_se: float
    limit_estimate: float
    limit_ci_lower: float
    limit_ci_upper: float
    caution: str | None

    def to_dict(self) -> dict:
        return {k: _clean(v) for k, v in asdict(self).items()}


def egger_test(
    data,
    vi=None,
    *,
    model: str = "rma",
    predictor: str = "sei",
    method: str | None = None,
    test: str | None = None,
    level: float | None = None,
    measure: str | None = None,
    **pool_kw,
) -> EggerTest:
    """Egger's regression test for funnel-plot asymmetry, as metafor's ``regtest``.

    ``model="rma"`` fits the meta-regression ``y_i = b0 + b1 sei_i + u_i + e_i``
    with the model's tau² estimator and test (z, or Knapp-Hartung t on k-2 df);
    ``model="lm"`` is Egger's original weighted least-squares regression
    (weights 1/v, free residual scale, t on k-2 df), which equals the
    common-effect meta-regression with the Knapp-Hartung scale. The test is on
    ``b1``; ``b0`` is the limit estimate.

    Parameters
    ----------
    data : PoolResult, DataFrame or array_like
    model : {"rma", "lm"}
    predictor : {"sei", "vi"}
        Standard error (Egger) or sampling variance (PEESE-type) as predictor.

    References
    ----------
    Egger M, Davey Smith G, Schneider M, Minder C (1997). Bias in meta-analysis
    detected by a simple, graphical test. BMJ 315:629-634.
    Sterne JAC, Egger M (2005). Regression methods to detect publication and
    other bias in meta-analysis. In: Publication Bias in Meta-Analysis, Wiley, 99-110.
    """
    d = _resolve(data, vi, method=method, test=test, level=level, measure=measure, pool_kw=pool_kw)
    if model not in ("rma", "lm"):
        raise InputError(f"unknown model '{model}' (rma or lm)")
    if predictor not in ("sei", "vi"):
        raise InputError(f"unknown predictor '{predictor}' (sei or vi)")
    k = d.yi.size
    if k < 3:
        raise InputError("the regression test needs at least 3 studies")
    pred = np.sqrt(d.vi) if predictor == "sei" else d.vi
    X = np.column_stack([np.ones(k), pred])
    meth, tst = (_iv(d.method), d.test) if model == "rma" else ("FE", "knha")
    r = fit_batch(d.yi[None], d.vi[None], X, method=meth, test=tst, level=d.level, btt=[1])
    return EggerTest(
        model=model,
        predictor=predictor,
        method=meth,
        test=tst if model == "rma" else "t",
        k=k,
        statistic=float(r["zval"][0, 1]),
        df=r["ddf"],
        pvalue=float(r["pval"][0, 1]),
        slope=float(r["beta"][0, 1]),
        slope_se=float(r["se"][0, 1]),
        limit_estimate=float(r["beta"][0, 0]),
        limit_ci_lower=float(r["ci_lb"][0, 0]),
        limit_ci_upper=float(r["ci_ub"][0, 0]),
        caution=small_study_caution(k),
    )


@dataclass(frozen=True)
class RankTest:
    """Begg and Mazumdar's rank correlation test (metafor ``ranktest``)."""

    k: int
    tau: float
    pvalue: float
    exact: bool
    statistic: float
    caution: str | None

    def to_dict(self) -> dict:
        return {k: _clean(v) for k, v in asdict(self).items()}


def _kendall_null(n: int) -> np.ndarray:
    """Null distribution of the number of concordant pairs among n untied
    observations: ``P(T = c)``, c = 0..n(n-1)/2 (Mahonian numbers / n!)."""
    prob = np.array([1.0])
    for j in range(2, n + 1):
        # adding the j-th element adds 0..j-1 concordant pairs, each equally likely
        c = np.concatenate([[0.0], np.cumsum(prob)])
        m = prob.size + j - 1
        hi = np.minimum(np.arange(m) + 1, prob.size)
        lo = np.maximum(np.arange(m) - j + 1, 0)
        prob = (c[hi] - c[lo]) / j
    return prob


def _kendall(x, y, exact=True):
    """Kendall's tau-b and its two-sided p-value as R's ``cor.test(method="kendall")``:
    exact null distribution without ties, else the normal approximation with the
    tie-corrected variance (Kendall 1970), no continuity correction."""
    n = x.size
    sx = np.sign(x[:, None] - x[None, :])
    sy = np.sign(y[:, None] - y[None, :])
    iu = np.triu_indices(n, 1)
    S = float(np.sum(sx[iu] * sy[iu]))
    _, tx = np.unique(x, return_counts=True)
    _, ty = np.unique(y, return_counts=True)
    T0 = n * (n - 1) / 2
    T1 = np.sum(tx * (tx - 1)) / 2
    T2 = np.sum(ty * (ty - 1)) / 2
    tau = S / math.sqrt((T0 - T1) * (T0 - T2))
    ties = min(tx.size, ty.size) < n
    if exact and not ties:
        q = int(np.round((tau + 1) * n * (n - 1) / 4))
        dist = _kendall_null(n)
        if q > n * (n - 1) / 4:
            p = dist[q:].sum()
        else:
            p = dist[: q + 1].sum()
        return tau, min(1.0, 2 * p), True, float(q)
    v0 = n * (n - 1) * (2 * n + 5)
    vt = np.sum(tx * (tx - 1) * (2 * tx + 5))
    vu = np.sum(ty * (ty - 1) * (2 * ty + 5))
    v1 = np.sum(tx * (tx - 1)) * np.sum(ty * (ty - 1))
    v2 = np.sum(tx * (tx - 1) * (tx - 2)) * np.sum(ty * (ty - 1) * (ty - 2))
    var_s = (v0 - vt - vu) / 18 + v1 / (2 * n * (n - 1)) + v2 / (9 * n * (n - 1) * (n - 2))
    z = S / math.sqrt(var_s)
    return tau, float(2 * min(stats.norm.cdf(z), stats.norm.sf(z))), False, z


def begg_test(data, vi=None, *, exact: bool = True, measure: str | None = None, **pool_kw) -> RankTest:
    """Rank correlation test for funnel-plot asymmetry (Begg & Mazumdar 1994),
    as metafor's ``ranktest``.

    The standardised effects ``(y_i - mu_FE) / sqrt(v_i - 1/sum w)`` (``mu_FE``
    the common-effect mean, whatever model was fitted, as metafor) are
    correlated with ``v_i`` by Kendall's tau-b. The p-value is exact (the null
    distribution of the concordant-pair count) when there are no ties and
    ``exact`` is True (metafor's default, for any k); otherwise the normal
    approximation with tie-corrected variance. ``statistic`` is the concordant
    count (exact) or z.

    References
    ----------
    Begg CB, Mazumdar M (1994). Operating characteristics of a rank correlation
    test for publication bias. Biometrics 50:1088-1101.
    """
    d = _resolve(data, vi, measure=measure, pool_kw=pool_kw)
    y, v = d.yi, d.vi
    k = y.size
    if k < 3:
        raise InputError("the rank correlation test needs at least 3 studies")
    w = 1 / v
    theta = np.sum(w * y) / np.sum(w)
    ystar = (y - theta) / np.sqrt(v - 1 / np.sum(w))
    tau, p, ex, stat = _kendall(ystar, v, exact)
    return RankTest(
        k=k, tau=float(tau), pvalue=float(p), exact=ex, statistic=float(stat), caution=small_study_caution(k)
    )


@dataclass(frozen=True)
class TrimFillResult:
    """Trim and fill (metafor ``trimfill``).

    Attributes
    ----------
    side : {"left", "right"}
        Side of the funnel where studies are estimated to be missing.
    k0, se_k0, p_k0 :
        Estimated number of missing studies, its standard error, and (R0 only)
        the p-value of the test of k0 = 0.
    filled : DataFrame
        The imputed studies (``study, yi, vi``), mirror images ``2 mu - y`` of the
        k0 most extreme studies around the trimmed estimate mu.
    result : PoolResult
        The model refitted on observed plus filled studies (the original fit when k0 = 0).
    original : PoolResult
        The fit on the observed studies.
    """

    estimator: str
    side: str
    k0: int
    se_k0: float
    p_k0: float | None
    filled: pd.DataFrame
    result: PoolResult = field(repr=False)
    original: PoolResult = field(repr=False)
    caution: str | None = None

    def to_dict(self) -> dict:
        return {
            "estimator": self.estimator,
            "side": self.side,
            "k0": self.k0,
            "se_k0": _clean(self.se_k0),
            "p_k0": _clean(self.p_k0),
            "caution": self.caution,
            "filled": [{k: _clean(v) for k, v in r.items()} for r in self.filled.to_dict(orient="records")],
            "result": self.result.to_dict(),
            "original": self.original.to_dict(),
        }


def _mu(y, v, method):
    seg = _core.Segments(np.zeros(y.size, np.intp), 1)
    t, _, _ = _core.estimate_tau2(seg, y, v, method)
    w = 1 / (v + t[0])
    return float(np.sum(w * y) / np.sum(w))


def _ordinal_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties broken by order of appearance: ``scipy.stats.rankdata(x,
    method="ordinal")`` and R's ``rank(x, ties.method="first")``, without
    importing scipy.stats for one argsort."""
    ranks = np.empty(x.size, dtype=float)
    ranks[np.argsort(x, kind="stable")] = np.arange(1, x.size + 1)
    return ranks


def trim_and_fill(
    data,
    vi=None,
    *,
    estimator: str = "L0",
    side: str | None = None,
    labels=None,
    method: str | None = None,
    test: str | None = None,
    refit_test: str = "z",
    level: float | None = None,
    measure: str | None = None,
    maxiter: int = 100,
    **pool_kw,
) -> TrimFillResult:
    """Duval and Tweedie's trim-and-fill method, as metafor's ``trimfill``.

    The side is estimated as metafor does (missing on the right if the slope of
    the meta-regression of y on sqrt(v), fitted with the same tau² estimator,
    is negative, else on the left). Then iteratively: pool the k - k0 least
    extreme studies, rank the centred effects ``|y - mu|`` (ties by order) and
    estimate k0 with L0, R0 or Q0, rounded (half to even, as R) and truncated at
    0, until k0 stops changing. The k0 most extreme studies are mirrored around
    the last trimmed estimate and the model is refitted on all k + k0 studies.

    Parameters
    ----------
    estimator : {"L0", "R0", "Q0"}
    side : {"left", "right"}, optional
        Where studies are missing; estimated when None.
    method, test :
        Model of the original fit (MH/Peto: FE). metafor's trimfill refits the
        filled data with ``test="z"`` (it does not pass the test on); ``refit_test``
        keeps that default. When k0 = 0 metafor returns the original fit (with
        its own test), and so does this function.

    References
    ----------
    Duval S, Tweedie R (2000). Trim and fill: a simple funnel-plot-based method
    of testing and adjusting for publication bias in meta-analysis.
    Biometrics 56:455-463. Duval S, Tweedie R (2000). A nonparametric "trim and
    fill" method of accounting for publication bias in meta-analysis. JASA 95:89-98.
    """
    d = _resolve(
        data, vi, labels=labels, method=method, test=test, level=level, measure=measure, pool_kw=pool_kw
    )
    if estimator not in ("L0", "R0", "Q0"):
        raise InputError(f"unknown estimator '{estimator}' (L0, R0 or Q0)")
    meth = _iv(d.method)
    y0, v0 = d.yi, d.vi
    k = y0.size
    if k < 2:
        raise InputError("trim and fill needs at least 2 studies")
    if side is None:
        X = np.column_stack([np.ones(k), np.sqrt(v0)])
        slope = fit_batch(y0[None], v0[None], X, method=meth)["beta"][0, 1]
        side = "right" if slope < 0 else "left"
    elif side not in ("left", "right"):
        raise InputError(f"side must be left or right, not '{side}'")
    ys = -y0 if side == "right" else y0.copy()
    ix = np.argsort(ys, kind="stable")
    ys, vs = ys[ix], v0[ix]
    k0, k0_prev, it = 0, -1, 0
    se_k0 = float("nan")
    beta = float("nan")
    while k0 != k0_prev:
        k0_prev = k0
        it += 1
        if it > maxiter:
            raise InputError("trim and fill did not converge")
        beta = _mu(ys[: k - k0], vs[: k - k0], meth)
        yc = ys - beta
        signed = np.sign(yc) * _ordinal_ranks(np.abs(yc))
        if estimator == "R0":
            neg = signed[signed < 0]
            kk = (k - (np.max(-neg) if neg.size else 0)) - 1
            se = math.sqrt(2 * max(0, kk) + 2)
        else:
            Sr = float(np.sum(signed[signed > 0]))
            if estimator == "L0":
                kk = (4 * Sr - k * (k + 1)) / (2 * k - 1)
            else:
                kk = k - 0.5 - math.sqrt(2 * k**2 - 4 * Sr + 0.25)
            var_sr = (
                k * (k + 1) * (2 * k + 1)
                + 10 * kk**3
                + 27 * kk**2
                + 17 * kk
                - 18 * k * kk**2
                - 18 * k * kk
                + 6 * k**2 * kk
            ) / 24
            root = math.sqrt(var_sr) if var_sr >= 0 else float("nan")
            se = (
                4 * root / (2 * k - 1)
                if estimator == "L0"
                else 2 * root / math.sqrt((k - 0.5) ** 2 - kk * (2 * k - kk - 1))
            )
        k0 = int(max(0, np.round(kk)))
        se_k0 = max(0.0, se) if not math.isnan(se) else se
    original = _pool_gen(y0, v0, d.labels, meth, d.test, d.level, measure=d.measure)
    p_k0 = 0.5 ** (k0 + 1) if estimator == "R0" else None
    if k0 > 0:
        mirrored = 2 * beta - ys[k - k0 :]  # working scale
        yf = -mirrored if side == "right" else mirrored
        vf = vs[k - k0 :]
        names = [f"Filled {j}" for j in range(1, k0 + 1)]
        filled = pd.DataFrame({"study": names, "yi": yf, "vi": vf})
        result = _pool_gen(
            np.concatenate([y0, yf]),
            np.concatenate([v0, vf]),
            np.concatenate([d.labels, names]),
            meth,
            refit_test,
            d.level,
            measure=d.measure,
        )
    else:
        filled = pd.DataFrame({"study": [], "yi": [], "vi": []})
        result = original
    return TrimFillResult(
        estimator=estimator,
        side=side,
        k0=k0,
        se_k0=se_k0,
        p_k0=p_k0,
        filled=filled,
        result=result,
        original=original,
        caution=small_study_caution(k),
    )


# --------------------------------------------------------------------------
# subgroups
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SubgroupResult:
    """Subgroup analysis with both tests for subgroup differences.

    Attributes
    ----------
    subgroups : DataFrame
        One pooled analysis per subgroup (its own tau²), in order of first appearance.
    q_between, q_between_df, q_between_pvalue, i2_between :
        RevMan / meta-style test: Cochran's Q of the subgroup estimates with
        weights ``1/se²`` on G - 1 df, and its I² (percent).
    qm, qm_df, qm_pvalue, qm_test :
        metafor's omnibus test of ``rma(yi, vi, mods = ~ factor(column))``: one
        model with a common residual tau² (chi² with test z, F with knha).
    regression : MetaRegressionResult
    overall : PoolResult
    """

    column: str
    subgroups: pd.DataFrame
    q_between: float
    q_between_df: int
    q_between_pvalue: float
    i2_between: float
    qm: float
    qm_df: tuple
    qm_pvalue: float
    qm_test: str
    regression: object = field(repr=False)
    overall: PoolResult = field(repr=False)

    def to_dict(self) -> dict:
        out = {
            k: _clean(getattr(self, k))
            for k in (
                "column",
                "q_between",
                "q_between_df",
                "q_between_pvalue",
                "i2_between",
                "qm",
                "qm_pvalue",
                "qm_test",
            )
        }
        out["qm_df"] = [_clean(x) for x in self.qm_df]
        out["subgroups"] = [
            {k: _clean(v) for k, v in r.items()} for r in self.subgroups.to_dict(orient="records")
        ]
        out["regression"] = self.regression.to_dict()
        out["overall"] = self.overall.to_dict()
        return out


def subgroup_analysis(
    frame: pd.DataFrame,
    measure: str,
    column: str,
    method: str = "REML",
    test: str = "z",
    level: float = 95,
    **pool_kw,
) -> SubgroupResult:
    """Pooled estimate per subgroup and the test for subgroup differences, two ways.

    1. **Q between** (RevMan, R's ``meta``; Borenstein et al. 2009, ch. 19):
       every subgroup is pooled separately (one vectorised ``pool(by=column)``
       call, each with its own tau²), and ``Q_b = sum w_g (mu_g - mu_w)²`` with
       ``w_g = 1/se_g²``, chi² on G - 1 df.
    2. **QM** (metafor): the mixed-effects meta-regression
       ``rma(yi, vi, mods = ~ factor(column), method, test)`` with one residual
       tau²; its omnibus test of the G - 1 dummies. Factor levels are sorted
       (as R's ``factor``); QM does not depend on the reference level.
       MH/Peto have no regression form: QM then uses the FE model.

    References
    ----------
    Borenstein M, Hedges LV, Higgins JPT, Rothstein HR (2009). Introduction to
    Meta-Analysis, chapter 19. Wiley.
    Deeks JJ, Higgins JPT, Altman DG (2023). Chapter 10, section 10.11.3.1, Cochrane Handbook.
    """
    if column not in frame.columns:
        raise InputError(f"missing column '{column}'", file=frame.attrs.get("source", "<data>"))
    tab = _quiet(pool, frame, measure=measure, method=method, test=test, level=level, by=column, **pool_kw)
    overall = _quiet(pool, frame, measure=measure, method=method, test=test, level=level, **pool_kw)
    summ = tab.summary
    est, se = summ["estimate"].to_numpy(float), summ["se"].to_numpy(float)
    ok = np.isfinite(est) & np.isfinite(se) & (se > 0)
    w = 1 / se[ok] ** 2
    mu = np.sum(w * est[ok]) / np.sum(w)
    qb = float(np.sum(w * (est[ok] - mu) ** 2))
    dfb = int(ok.sum() - 1)
    qbp = float(stats.chi2.sf(qb, dfb)) if dfb > 0 else float("nan")
    i2b = max(0.0, 100 * (qb - dfb) / qb) if qb > 0 else 0.0
    st = overall.studies
    usable = np.isfinite(st["yi"].to_numpy(float))
    groups = frame[column].to_numpy()[usable]
    levels = sorted(pd.unique(groups), key=lambda g: (str(type(g)), g))
    mods = pd.DataFrame({column: pd.Categorical(groups, categories=levels)})
    reg = meta_regression(
        st["yi"].to_numpy(float)[usable],
        st["vi"].to_numpy(float)[usable],
        mods,
        method=_iv(method),
        test=test,
        level=level,
    )
    return SubgroupResult(
        column=column,
        subgroups=summ,
        q_between=qb,
        q_between_df=dfb,
        q_between_pvalue=qbp,
        i2_between=i2b,
        qm=reg.qm,
        qm_df=reg.qm_df,
        qm_pvalue=reg.qm_pvalue,
        qm_test="F" if test in T_TESTS else "chisq",
        regression=reg,
        overall=overall,
    )


# --------------------------------------------------------------------------
# integrity sensitivity
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SensitivityResult:
    """The same analysis with and without some studies (e.g. retracted trials)."""

    full: PoolResult
    reduced: PoolResult
    dropped: tuple

    def to_frame(self) -> pd.DataFrame:
        """Side by side: one row per field, columns ``full``, ``reduced``, ``difference``."""
        names = [
            "k",
            "estimate",
            "ci_lower",
            "ci_upper",
            "se",
            "pvalue",
            "tau2",
            "i2",
            "q",
            "pi_lower",
            "pi_upper",
        ]
        f = [getattr(self.full, n) for n in names]
        r = [getattr(self.reduced, n) for n in names]
        nf, nr = self.full.natural(), self.reduced.natural()
        for key in ("estimate_natural", "ci_lower_natural", "ci_upper_natural"):
            if key in nf:
                names.append(key)
                f.append(nf[key])
                r.append(nr[key])
        f = np.array(f, float)
        r = np.array(r, float)
        return pd.DataFrame({"field": names, "full": f, "reduced": r, "difference": r - f})

    def to_dict(self) -> dict:
        return {
            "dropped": list(self.dropped),
            "full": self.full.to_dict(),
            "reduced": self.reduced.to_dict(),
            "comparison": [
                {k: _clean(v) for k, v in row.items()} for row in self.to_frame().to_dict(orient="records")
            ],
        }


def sensitivity_without(
    frame: pd.DataFrame,
    studies_to_drop,
    measure: str,
    method: str = "REML",
    test: str = "z",
    level: float = 95,
    **pool_kw,
) -> SensitivityResult:
    """Pool all studies and the studies without ``studies_to_drop`` (one
    vectorised call with two groups), e.g. to see how much retracted or
    questioned trials change a result.

    Raises
    ------
    InputError
        When a study to drop is not in the table, or nothing would be left.
    """
    labels = io.check_studies(frame).astype(str)
    drop = [str(s) for s in ([studies_to_drop] if isinstance(studies_to_drop, str) else studies_to_drop)]
    unknown = [s for s in drop if s not in set(labels)]
    if unknown:
        raise InputError(
            f"studies to drop not in the table: {', '.join(unknown)}",
            file=frame.attrs.get("source", "<data>"),
        )
    keep = ~np.isin(labels, drop)
    if not keep.any():
        raise InputError("no study is left after dropping", file=frame.attrs.get("source", "<data>"))
    base = frame.reset_index(drop=True)
    both = pd.concat(
        [base.assign(_analysis="full"), base[keep].assign(_analysis="reduced")], ignore_index=True
    )
    both.attrs.update(frame.attrs)
    tab = _quiet(
        pool, both, measure=measure, method=method, test=test, level=level, by="_analysis", **pool_kw
    )
    full, reduced = tab["full"], tab["reduced"]
    strip = lambda r: replace(r, group=None, studies=r.studies.drop(columns=["_analysis"], errors="ignore"))
    return SensitivityResult(full=strip(full), reduced=strip(reduced), dropped=tuple(drop))


# --------------------------------------------------------------------------
# method forensics
# --------------------------------------------------------------------------

#: Zero-cell conventions tried for 2x2 data: (label, add, to, drop00), under metafor's convention.
ZERO_CELL_CONVENTIONS = (
    ("add 0.5 to zero-cell studies", 0.5, "only0", False),
    ("add 0.5 to zero-cell studies, drop double zeros", 0.5, "only0", True),
    ("add 0.5 to all studies", 0.5, "all", False),
    ("add 0.5 to all studies, drop double zeros", 0.5, "all", True),
    ("no correction (zero-cell studies excluded where not estimable)", 0.0, "none", False),
)
#: RevMan 5's zero-cell rule (metarepro.conventions), tried beside them.
REVMAN5_ZERO_CELLS = (("RevMan 5 (0.5 added to zero-cell studies; double zeros not estimable for RR/OR, "
                       "all-event tables for OR; RD from raw counts)"), 0.5, "only0", "revman5")
FORENSIC_METHODS = ("FE", "MH", "PETO", "MH-DL", "DL", "REML", "PM", "ML", "HS", "SJ", "HE", "EB")


def _forensic_conventions(some_counts: bool, measure: str) -> list:
    """(convention, zero-cell label, add, to, drop00) combinations to try; the
    zero-cell variants where some rows are 2x2 counts."""
    if some_counts:
        return [("metafor", *c) for c in ZERO_CELL_CONVENTIONS] + [("revman5", *REVMAN5_ZERO_CELLS)]
    out = [("metafor", "not applicable", 0.5, "only0", False)]
    if measure == "SMD":  # the only non-2x2 measure RevMan 5 computes differently
        out.append(("revman5", "not applicable", 0.5, "only0", "revman5"))
    return out


def method_forensics(
    frame: pd.DataFrame,
    measure: str,
    target_estimate: float,
    target_ci_lower: float | None = None,
    target_ci_upper: float | None = None,
    decimals: int = 2,
    level: float = 95,
) -> pd.DataFrame:
    """Which pooling method reproduces a published result?

    Re-pools the table with every method (FE, MH, Peto and MH-DL where the
    measure allows, DL, REML, PM, ML, HS, SJ, HE, EB) × test (z,
    Knapp-Hartung) × computing convention (:mod:`metarepro.conventions`:
    metafor's, with the zero-cell variants for 2x2 data (add 0.5 to zero-cell
    studies or to all, with and without dropping double-zero studies, or no
    correction), and RevMan 5's (its zero-cell rules, MH on the corrected
    tables, raw Peto, its SMD, "not estimable" studies left out)) and compares
    the estimate and CI on the natural scale (ratios for RR/OR/ROM, r for
    ZCOR) with the published ones. A convention under which the table cannot
    be pooled at all (e.g. metafor's with an SD of 0) is left out.

    The study effects of all conventions are stacked as groups, so each
    inverse-variance method × test is one vectorised :func:`pool` call; MH,
    Peto and MH-DL are pooled from the counts, one call per convention.

    Parameters
    ----------
    target_estimate, target_ci_lower, target_ci_upper : float
        Published values on the natural scale, as printed.
    decimals : int
        Decimals the published values were printed with. A value matches when
        ours rounds to it: ``|ours - published| <= 0.5 × 10^-decimals`` (up to
        1e-9, so both round-half conventions count).

    Returns
    -------
    DataFrame
        One row per combination: ``method, test, convention, zero_cells, add,
        to, drop00, k, estimate, ci_lower, ci_upper`` (natural scale), ``tau2,
        i2``, ``matches_estimate, matches_ci, max_abs_diff`` (largest absolute
        difference over the published numbers given), sorted best first.
    """
    families = io.row_families(frame, measure)
    binary = io.counts_on_every_row(frame, measure)
    some_counts = io.BINARY in families
    labels = io.check_studies(frame).astype(str)
    convs, stacked, first_error = [], [], None
    for bundle, name, add, to, drop00 in _forensic_conventions(some_counts, measure):
        kw = {"convention": bundle, "add": add, "to": to, "drop00": drop00}
        try:
            cv = conv_mod.resolve(bundle, drop00=drop00)
            eff = compute_effects(frame, measure, add=add, to=to, drop00=cv.drop00_for("FE"), smd=cv.smd,
                                  rd=cv.rd, not_estimable=cv.not_estimable)
        except InputError as err:
            first_error = first_error or err
            continue
        j = len(convs)
        convs.append((bundle, name, add, to, drop00, kw))
        ok = np.isfinite(eff.yi) & np.isfinite(eff.vi)
        stacked.append(pd.DataFrame({"_conv": j, "study": labels[ok], "yi": eff.yi[ok], "vi": eff.vi[ok]}))
    if not convs:
        raise first_error
    gen = pd.concat(stacked, ignore_index=True)
    rows = []
    methods = [
        m
        for m in FORENSIC_METHODS
        if not (m in ("MH", "MH-DL") and not (binary and measure in ("RR", "OR", "RD")))
        and not (m == "PETO" and not (binary and measure == "OR"))
    ]
    for m in methods:
        for t in ("z",) if m in ("MH", "PETO") else TESTS:
            if m in COUNT_METHODS:
                for j, conv in enumerate(convs):
                    r = _quiet(pool, frame, measure=measure, method=m, test=t, level=level, **conv[5])
                    rows.append(
                        {
                            "_conv": j,
                            "method": m,
                            "test": t,
                            "k": r.k,
                            "est": r.estimate,
                            "lo": r.ci_lower,
                            "hi": r.ci_upper,
                            "tau2": r.tau2,
                            "i2": r.i2,
                        }
                    )
            else:
                summ = _quiet(pool, gen, measure="GEN", method=m, test=t, level=level, by="_conv").summary
                for _, s in summ.iterrows():
                    rows.append(
                        {
                            "_conv": int(s["_conv"]),
                            "method": m,
                            "test": t,
                            "k": int(s["k"]),
                            "est": s["estimate"],
                            "lo": s["ci_lower"],
                            "hi": s["ci_upper"],
                            "tau2": s["tau2"],
                            "i2": s["i2"],
                        }
                    )
    out = pd.DataFrame(rows)
    fn = _natural(measure) or (lambda x: x)
    with np.errstate(over="ignore"):
        for a, b in (("est", "estimate"), ("lo", "ci_lower"), ("hi", "ci_upper")):
            out[b] = fn(out.pop(a).to_numpy(float))
    conv = pd.DataFrame(
        [
            {"_conv": j, "convention": c[0], "zero_cells": c[1], "add": c[2], "to": c[3], "drop00": c[4]}
            for j, c in enumerate(convs)
        ]
    )
    out = out.merge(conv, on="_conv").drop(columns="_conv")
    half = 0.5 * 10.0 ** (-decimals) + 1e-9
    out["matches_estimate"] = (np.abs(out["estimate"] - target_estimate) <= half).to_numpy()
    diffs = [np.abs(out["estimate"] - target_estimate)]
    if target_ci_lower is not None and target_ci_upper is not None:
        dl = np.abs(out["ci_lower"] - target_ci_lower)
        du = np.abs(out["ci_upper"] - target_ci_upper)
        out["matches_ci"] = ((dl <= half) & (du <= half)).to_numpy()
        diffs += [dl, du]
    else:
        out["matches_ci"] = False
    out["max_abs_diff"] = np.nanmax(np.column_stack(diffs), axis=1)
    out["_both"] = out["matches_estimate"] & out["matches_ci"]
    out = out.sort_values(
        ["_both", "matches_estimate", "matches_ci", "max_abs_diff"],
        ascending=[False, False, False, True],
        kind="stable",
    ).drop(columns="_both")
    cols = [
        "method",
        "test",
        "convention",
        "zero_cells",
        "add",
        "to",
        "drop00",
        "k",
        "estimate",
        "ci_lower",
        "ci_upper",
        "tau2",
        "i2",
        "matches_estimate",
        "matches_ci",
        "max_abs_diff",
    ]
    return out[cols].reset_index(drop=True)


# --------------------------------------------------------------------------
# multi-arm trials
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


__all__ = [
    "SMALL_STUDY_CAUTION",
    "EggerTest",
    "RankTest",
    "SensitivityResult",
    "SubgroupResult",
    "TrimFillResult",
    "baujat",
    "begg_test",
    "cumulative",
    "egger_test",
    "influence_measures",
    "leave_one_out",
    "meta_regression",
    "method_forensics",
    "model_matrix",
    "sensitivity_without",
    "small_study_caution",
    "split_shared_control",
    "subgroup_analysis",
    "trim_and_fill",
]
