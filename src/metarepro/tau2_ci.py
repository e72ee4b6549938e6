"""Confidence intervals for tau²: profile likelihood (metafor ``confint(type="PL")``)
for pooled analyses and meta-regressions, and the Q-profile interval of a
meta-regression (metafor ``confint()`` of an ``rma`` with moderators).

The Q-profile interval of an intercept-only model is part of every pooled
result (:func:`metarepro._core.q_profile`). Both searches follow metafor 3.8's
``confint.rma.uni``, which searches ``[0, max(100, 10 tau²)]``. As the
engine's Q-profile interval does, the upper end of the search is widened
tenfold at a time (up to 30 decades) until it holds the bound, so a bound is a
root; only a bound beyond even that, or beyond an explicit ``tau2_max``
(metafor's ``tau2.max``), is reported at the search limit with its
``tau2_ci_lower_censored``/``tau2_ci_upper_censored`` flag True (metafor's
``lb.sign``/``ub.sign`` ">"). Where the whole Q-profile interval lies below 0
(Q(0) below the lower χ² quantile) both bounds are 0 and ``ci_null`` is True.

Intercept-only analyses are searched all at once (flat arrays with per-analysis
sums, SciPy's elementwise root finder), like the rest of the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import _core
from . import _dist as stats
from .errors import InputError
from .metareg import MetaRegressionResult, _Batch, _loglik, _qe_at
from .pooling import PoolResult, PoolTable, _clean

#: The search tolerance (metafor's ``uniroot`` tol; the reference runs metafor at 1e-12).
_ROOT_TOL = {"xatol": 1e-14, "xrtol": 1e-14}
LIKELIHOOD_METHODS = ("ML", "REML")


@dataclass(frozen=True)
class Tau2Interval:
    """A confidence interval for tau² and the matching I² and H² bounds.

    ``type`` is ``"PL"`` (profile likelihood) or ``"QP"`` (Q-profile). The
    field names are those of a pooled result. ``tau2_ci_*_censored``: the
    search stopped at that value and the real bound lies beyond it (">x").
    ``ci_null``: the whole interval lies below 0 (Q-profile only).
    """

    type: str
    level: float
    tau2: float
    tau2_ci_lower: float
    tau2_ci_upper: float
    tau2_ci_lower_censored: bool
    tau2_ci_upper_censored: bool
    ci_null: bool
    i2_ci_lower: float
    i2_ci_upper: float
    h2_ci_lower: float
    h2_ci_upper: float

    def to_dict(self) -> dict:
        return {k: _clean(getattr(self, k)) for k in self.__dataclass_fields__}


# --------------------------------------------------------------------------
# flat arrays of pooled results
# --------------------------------------------------------------------------


def _flat(result):
    """(seg, yi, vi, rows, tau2, method, test, level, group keys) of a PoolResult or PoolTable."""
    if isinstance(result, PoolTable):
        st = result.studies
        keys = list(result.summary[result.by])
        pos = {k: i for i, k in enumerate(keys)}
        codes = np.array([pos[g] for g in st[result.by]], np.intp)
        tau2 = result.summary["tau2"].to_numpy(float)
    elif isinstance(result, PoolResult):
        st = result.studies
        keys = [None]
        codes = np.zeros(len(st), np.intp)
        tau2 = np.array([result.tau2], float)
    else:
        raise InputError("expected a pooled result (metarepro.pool) or a meta-regression")
    y, v = st["yi"].to_numpy(float), st["vi"].to_numpy(float)
    rows = np.flatnonzero(np.isfinite(y) & np.isfinite(v))
    seg = _core.Segments(codes[rows], len(keys))
    return seg, y[rows], v[rows], rows, tau2, result.method, result.test, result.level, keys


def _vt(seg, v):
    """metafor's "typical" within-study variance ``(k-1)/(sum w - sum w²/sum w)``."""
    w = 1 / v
    sw = seg.sum(w)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (seg.k - 1) / (sw - seg.sum(w * w) / sw)


def _loglik_compact(c: _core.Compact, t, reml):
    """(Restricted) log-likelihood of the analyses of a Compact at tau² = t (as :func:`_core.loglik`)."""
    w = 1.0 / (c.v + t[c.loc])
    sw = c.sum(w)
    mu = c.sum(w * c.y) / sw
    rss = c.sum(w * (c.y - mu[c.loc]) ** 2)
    logv = c.sum(np.log(c.v + t[c.loc]))
    k = np.bincount(c.loc, minlength=c.n)
    if reml:
        return -0.5 * (k - 1) * np.log(2 * np.pi) - 0.5 * logv - 0.5 * np.log(sw) - 0.5 * rss
    return -0.5 * k * np.log(2 * np.pi) - 0.5 * logv - 0.5 * rss


def profile_bounds(seg, y, v, tau2, reml: bool, level: float, tau2_max=None) -> dict:
    """Profile-likelihood bounds for tau² of many intercept-only analyses.

    A bound solves ``-2 (ll(tau²) - ll(tau²_hat)) = chi²_1(1 - alpha)`` with the
    ML or REML log-likelihood, on ``[0, tau²_hat]`` (lower) and ``[tau²_hat,
    max(100, 10 tau²_hat)]`` (upper), as metafor's ``confint(type="PL")``; the
    upper end is widened tenfold at a time (30 decades at most) until it holds
    the bound, unless ``tau2_max`` fixes it (metafor's ``tau2.max``).
    Returns arrays ``tau2_ci_lower, tau2_ci_upper, tau2_ci_lower_censored,
    tau2_ci_upper_censored`` (NaN bounds for analyses with k < 2).
    """
    G = seg.G
    alpha = 1 - level / 100
    crit = float(stats.chi2.isf(alpha, 1))
    tau2 = np.asarray(tau2, float)
    ll_hat = _core.loglik(seg, y, v, tau2, reml)
    tmax = np.maximum(100.0, 10 * tau2) if tau2_max is None else np.broadcast_to(float(tau2_max), (G,)).copy()
    if (tmax < tau2).any():
        raise InputError("tau2_max must be at least the estimate of tau²")
    lo, hi = np.full(G, np.nan), np.full(G, np.nan)
    lo_c, hi_c = np.zeros(G, bool), np.zeros(G, bool)
    ok = np.flatnonzero(seg.k >= 2)
    c = _core.Compact.of(seg, y, v, ok)

    def lrt(t, idx):
        idx = np.asarray(idx, np.intp)
        sub = c if idx.size == c.n else c.take(idx)
        return -2 * (_loglik_compact(sub, np.asarray(t, float), reml) - ll_hat[ok[idx]]) - crit

    every = np.arange(ok.size)
    at0 = lrt(np.zeros(ok.size), every)
    at_max = lrt(tmax[ok], every)
    if tau2_max is None:
        for _ in range(30):
            low = at_max < 0
            if not low.any():
                break
            tmax[ok[low]] *= 10
            at_max[low] = lrt(tmax[ok[low]], every[low])
    # lower bound: 0 when the LRT at 0 is below the critical value (as metafor: tau2.min = 0, no sign)
    zero = at0 < 0
    lo[ok[zero]] = 0.0
    need = every[~zero]
    if need.size:
        res = _core.find_root(lrt, (np.zeros(need.size), tau2[ok[need]]), args=(need,), tolerances=_ROOT_TOL)
        lo[ok[need]] = res.x
    # upper bound: the search limit, flagged, when the LRT there is still below the critical value
    cap = at_max < 0
    hi[ok[cap]] = tmax[ok[cap]]
    hi_c[ok[cap]] = True
    need = every[~cap]
    if need.size:
        res = _core.find_root(lrt, (tau2[ok[need]], tmax[ok[need]]), args=(need,), tolerances=_ROOT_TOL)
        hi[ok[need]] = res.x
    return {"tau2_ci_lower": lo, "tau2_ci_upper": hi, "tau2_ci_lower_censored": lo_c,
            "tau2_ci_upper_censored": hi_c}


def _interval(kind, level, tau2, lo, hi, lo_c, hi_c, null, vt) -> Tau2Interval:
    with np.errstate(invalid="ignore", divide="ignore"):
        return Tau2Interval(type=kind, level=float(level), tau2=float(tau2), tau2_ci_lower=float(lo),
                            tau2_ci_upper=float(hi), tau2_ci_lower_censored=bool(lo_c),
                            tau2_ci_upper_censored=bool(hi_c), ci_null=bool(null),
                            i2_ci_lower=float(100 * lo / (vt + lo)), i2_ci_upper=float(100 * hi / (vt + hi)),
                            h2_ci_lower=float(lo / vt + 1), h2_ci_upper=float(hi / vt + 1))


def profile_ci(result, level: float | None = None, tau2_max: float | None = None):
    """Profile-likelihood confidence interval for tau² (metafor ``confint(fit, type="PL")``).

    Parameters
    ----------
    result : PoolResult, PoolTable or MetaRegressionResult
        A fit with ``method="ML"`` or ``"REML"``; the interval profiles the
        same likelihood. A PoolTable is done in one vectorised pass.
    level : float, optional
        Confidence level in percent (default: the fit's).
    tau2_max : float, optional
        Fixed upper end of the search, as metafor's ``tau2.max`` (default: from
        ``max(100, 10 tau²)``, widened until it holds the bound).

    Returns
    -------
    Tau2Interval, or a DataFrame (one row per analysis) for a PoolTable.

    Raises
    ------
    InputError
        For other tau² estimators (their estimate does not maximise a
        likelihood, so the likelihood-ratio statistic is not defined at it).

    References
    ----------
    Hardy RJ, Thompson SG (1996). A likelihood approach to meta-analysis with
    random effects. Stat Med 15:619-629.
    Viechtbauer W (2007). Confidence intervals for the amount of heterogeneity
    in meta-analysis. Stat Med 26:37-52.
    """
    method = result.method
    if method not in LIKELIHOOD_METHODS:
        raise InputError(f"the profile-likelihood interval needs method ML or REML (the fit used {method})")
    if isinstance(result, MetaRegressionResult):
        return _regression_pl(result, result.level if level is None else level, tau2_max)
    seg, y, v, _, tau2, _, _, lev, keys = _flat(result)
    level = lev if level is None else level
    b = profile_bounds(seg, y, v, tau2, method == "REML", level, tau2_max)
    vt = _vt(seg, v)
    rows = [_interval("PL", level, tau2[g], b["tau2_ci_lower"][g], b["tau2_ci_upper"][g],
                      b["tau2_ci_lower_censored"][g], b["tau2_ci_upper_censored"][g], False, vt[g])
            for g in range(seg.G)]
    if isinstance(result, PoolResult):
        return rows[0]
    return pd.DataFrame({result.by: keys, **{k: [getattr(r, k) for r in rows] for k in Tau2Interval.__dataclass_fields__}})


# --------------------------------------------------------------------------
# meta-regression (one fit; metareg's batched algebra with B = 1)
# --------------------------------------------------------------------------


def _root(f, a, b):
    res = _core.find_root(lambda t: f(np.atleast_1d(t)), (np.array([a], float), np.array([b], float)),
                          tolerances=_ROOT_TOL)
    return float(np.ravel(res.x)[0])


def _widen(beyond, tmax: float) -> float:
    """Grow the search limit tenfold (30 decades at most) while the bound lies ``beyond`` it."""
    for _ in range(30):
        if not beyond(tmax):
            break
        tmax *= 10
    return tmax


def _regression_vt(fit):
    X = fit.X.to_numpy(float)
    fe = _Batch(fit.yi[None], X[None], (1 / fit.vi)[None])
    k, p = X.shape
    return float((k - p) / fe.tr_p()[0])


def _regression_pl(fit: MetaRegressionResult, level, tau2_max=None):
    Y, V, X = fit.yi[None], fit.vi[None], fit.X.to_numpy(float)[None]
    reml = fit.method == "REML"
    crit = float(stats.chi2.isf(1 - level / 100, 1))
    t_hat = fit.tau2
    ll_hat = float(_loglik(Y, V, X, np.array([t_hat]), reml)[0])
    tmax = max(100.0, 10 * t_hat) if tau2_max is None else float(tau2_max)
    if tmax < t_hat:
        raise InputError("tau2_max must be at least the estimate of tau²")

    def lrt(t):
        return -2 * (_loglik(np.repeat(Y, t.size, 0), np.repeat(V, t.size, 0), np.repeat(X, t.size, 0), t, reml)
                     - ll_hat) - crit

    lo_c = hi_c = False
    lo = 0.0 if lrt(np.array([0.0]))[0] < 0 else _root(lrt, 0.0, t_hat)
    if tau2_max is None:
        tmax = _widen(lambda t: lrt(np.array([t]))[0] < 0, tmax)
    if lrt(np.array([tmax]))[0] < 0:
        hi, hi_c = tmax, True
    else:
        hi = _root(lrt, t_hat, tmax)
    return _interval("PL", level, t_hat, lo, hi, lo_c, hi_c, False, _regression_vt(fit))


def qprofile_ci(fit: MetaRegressionResult, level: float | None = None,
                tau2_max: float | None = None) -> Tau2Interval:
    """Q-profile confidence interval for the residual tau² of a meta-regression
    (metafor ``confint()`` of ``rma(yi, vi, mods=...)``).

    The bounds solve ``Q_E(tau²) = chi²_{k-p}`` quantiles, with the generalised
    residual heterogeneity statistic ``Q_E(tau²) = sum w (y - X b_w)²``,
    ``w = 1/(v + tau²)``, searched on ``[0, max(100, 10 tau²)]`` with metafor's
    rules for bounds outside that range; the upper limit is widened tenfold at
    a time until it holds the bound, unless ``tau2_max`` fixes it (metafor's
    ``tau2.max``).

    References
    ----------
    Viechtbauer W (2007). Confidence intervals for the amount of heterogeneity
    in meta-analysis. Stat Med 26:37-52.
    Jackson D, Turner R, Rhodes K, Viechtbauer W (2014). Methods for
    calculating confidence and credible intervals for the residual
    between-study variance in random effects meta-regression models. BMC Med
    Res Methodol 14:103.
    """
    if fit.method == "FE":
        raise InputError("a common-effect (FE) model has no tau² to bound")
    level = fit.level if level is None else level
    Y, V, X = fit.yi[None], fit.vi[None], fit.X.to_numpy(float)[None]
    k, p = fit.k, fit.p
    alpha = 1 - level / 100
    crit_u = float(stats.chi2.isf(alpha / 2, k - p))
    crit_l = float(stats.chi2.ppf(alpha / 2, k - p))
    tmin, tmax = 0.0, (max(100.0, 10 * fit.tau2) if tau2_max is None else float(tau2_max))

    def qe(t):
        t = np.atleast_1d(np.asarray(t, float))
        return _qe_at(np.repeat(Y, t.size, 0), np.repeat(V, t.size, 0), np.repeat(X, t.size, 0), t)

    q_min = float(qe(tmin)[0])
    if tau2_max is None:  # Q_E falls with tau²: widen until it is below the lower quantile (the upper bound's)
        tmax = _widen(lambda t: qe(t)[0] > crit_l, tmax)
    q_max = float(qe(tmax)[0])
    lo = hi = np.nan
    lo_c = hi_c = null = False
    if q_min < crit_l:  # both bounds below tau2.min = 0: the interval is the null set
        lo = hi = tmin
        null = True
    elif q_max > crit_l:
        hi, hi_c = tmax, True
    else:
        hi = _root(lambda t: qe(t) - crit_l, tmin, tmax)
    if q_max > crit_u:  # both bounds above tau2.max
        lo = hi = tmax
        lo_c = hi_c = True
    elif q_min < crit_u:
        lo = tmin
    else:
        lo = _root(lambda t: qe(t) - crit_u, tmin, tmax)
    return _interval("QP", level, fit.tau2, lo, hi, lo_c, hi_c, null, _regression_vt(fit))
