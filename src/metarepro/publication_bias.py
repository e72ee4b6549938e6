"""Robustness to unpublished studies: fail-safe N (metafor ``fsn``: Rosenthal,
Orwin, Rosenberg) and the Henmi-Copas confidence interval (metafor ``hc``).

Both take pooled results; a :class:`~metarepro.pooling.PoolTable` of many
analyses is done in one vectorised pass (per-analysis sums with
``numpy.bincount``; the Henmi-Copas root search with SciPy's elementwise
solver and a fixed composite Gauss-Legendre rule for its integral).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from . import _core
from . import _dist as stats
from .errors import InputError
from .pooling import PoolResult, PoolTable, _clean

FSN_TYPES = ("Rosenthal", "Orwin", "Rosenberg")
_ROOT_TOL = {"xatol": 1e-13, "xrtol": 1e-13}


def _flat(result):
    """(seg, yi, vi, keys, level, estimate, se, ci_lower, ci_upper) of a PoolResult or PoolTable."""
    if isinstance(result, PoolTable):
        st, s = result.studies, result.summary
        keys = list(s[result.by])
        pos = {k: i for i, k in enumerate(keys)}
        codes = np.array([pos[g] for g in st[result.by]], np.intp)
        fields = {n: s[n].to_numpy(float) for n in ("estimate", "se", "ci_lower", "ci_upper", "tau2")}
    elif isinstance(result, PoolResult):
        st = result.studies
        keys = [None]
        codes = np.zeros(len(st), np.intp)
        fields = {n: np.array([getattr(result, n)], float) for n in ("estimate", "se", "ci_lower", "ci_upper", "tau2")}
    else:
        raise InputError("expected a pooled result (metarepro.pool)")
    y, v = st["yi"].to_numpy(float), st["vi"].to_numpy(float)
    ok = np.isfinite(y) & np.isfinite(v)
    return _core.Segments(codes[ok], len(keys)), y[ok], v[ok], keys, fields


def _round_fsn(x):
    """metafor's rounding of a fail-safe N: up, unless within sqrt(eps) of a whole number."""
    x = np.asarray(x, float)
    near = np.abs(x - np.round(x)) < math.sqrt(np.finfo(float).eps)
    return np.where(np.isinf(x) | near, np.round(x), np.ceil(x))


@dataclass(frozen=True)
class FailSafeN:
    """Fail-safe N of one analysis (metafor ``fsn``).

    ``fsn`` is the number of unpublished null studies (Rosenthal, Rosenberg)
    or of studies with mean effect 0 (Orwin) that would bring the result to
    the threshold; ``pvalue`` is the observed combined p-value (Rosenthal:
    one-sided Stouffer; Rosenberg: two-sided Wald test of the common-effect
    estimate; none for Orwin); ``mean_effect`` and ``target`` are Orwin's and
    Rosenberg's average effect (and Orwin's target).
    """

    type: str
    fsn: float
    alpha: float
    pvalue: float
    mean_effect: float
    target: float

    def to_dict(self) -> dict:
        return {k: _clean(getattr(self, k)) for k in self.__dataclass_fields__}


def fail_safe_n(result, type: str = "Rosenthal", *, alpha: float = 0.05, target: float | None = None,
                weighted: bool = False):
    """Fail-safe N (metafor ``fsn(yi, vi, type=...)``).

    * Rosenthal (1979): ``k (z_S / z_alpha)² - k`` with Stouffer's
      ``z_S = |sum y_i/sqrt(v_i)| / sqrt(k)`` and the one-sided ``z_alpha``;
    * Orwin (1983): ``k (mean - target)/target``, with the unweighted mean
      (``weighted=True``: inverse-variance weighted) and ``target`` half of it
      by default (then the answer is always k);
    * Rosenberg (2005): ``k ((sum w y / z_{alpha/2})² - sum w) / sum w`` with
      ``w = 1/v``: studies with mean effect 0 and average weight that make the
      common-effect estimate non-significant.

    Each is truncated at 0 and rounded up (metafor's rule). Studies are those
    of the pooled analysis; the model itself plays no part.

    Parameters
    ----------
    result : PoolResult or PoolTable
    type : {"Rosenthal", "Orwin", "Rosenberg"}
    alpha : float
        Significance level (one-sided for Rosenthal, two-sided for Rosenberg).
    target : float, optional
        Orwin's target average effect (default: half the observed mean).

    Returns
    -------
    FailSafeN, or a DataFrame (one row per analysis) for a PoolTable.

    References
    ----------
    Rosenthal R (1979). The file drawer problem and tolerance for null
    results. Psychol Bull 86:638-641.
    Orwin RG (1983). A fail-safe N for effect size in meta-analysis. J Educ
    Stat 8:157-159.
    Rosenberg MS (2005). The file-drawer problem revisited: a general weighted
    method for calculating fail-safe numbers in meta-analysis. Evolution
    59:464-468.
    """
    if type not in FSN_TYPES:
        raise InputError(f"unknown fail-safe N type '{type}' (choose one of {', '.join(FSN_TYPES)})")
    if not 0 < alpha < 1:
        raise InputError(f"alpha {alpha} must be between 0 and 1")
    seg, y, v, keys, _ = _flat(result)
    k = seg.k
    nan = np.full(seg.G, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        if type == "Rosenthal":
            z = np.abs(seg.sum(y / np.sqrt(v))) / np.sqrt(k)
            p = stats.norm.sf(z)
            fsn = np.maximum(0.0, k * (z / stats.norm.isf(alpha)) ** 2 - k)
            mean, tgt = nan, nan
        elif type == "Orwin":
            w = 1 / v if weighted else np.ones_like(y)
            mean = seg.sum(w * y) / seg.sum(w)
            tgt = mean / 2 if target is None else np.where(np.sign(target) != np.sign(mean), -target, target)
            tgt = np.broadcast_to(np.asarray(tgt, float), mean.shape)
            fsn = np.where(tgt == 0, np.inf, np.maximum(0.0, k * (mean - tgt) / tgt))
            p = nan
        else:
            w = 1 / v
            sw = seg.sum(w)
            mean = seg.sum(w * y) / sw
            p = 2 * stats.norm.sf(np.abs(mean / np.sqrt(1 / sw)))
            wp = (seg.sum(w * y) / stats.norm.isf(alpha / 2)) ** 2 - sw
            fsn = np.maximum(0.0, k * wp / sw)
            tgt = nan
    fsn = _round_fsn(fsn)
    rows = [FailSafeN(type=type, fsn=float(fsn[g]), alpha=float(alpha), pvalue=float(p[g]),
                      mean_effect=float(mean[g]), target=float(tgt[g])) for g in range(seg.G)]
    if isinstance(result, PoolResult):
        return rows[0]
    return pd.DataFrame({result.by: keys, **{f: [getattr(r, f) for r in rows] for f in FailSafeN.__dataclass_fields__}})


# --------------------------------------------------------------------------
# Henmi-Copas
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class HenmiCopas:
    """Henmi-Copas interval of one analysis (metafor ``hc``).

    ``estimate`` is the common-effect (inverse-variance) estimate, ``se`` its
    standard error allowing for heterogeneity (DerSimonian-Laird ``tau2``),
    ``ci_lower``/``ci_upper`` the interval, ``u0`` its half-width in units of
    ``se``; ``estimate_re`` etc. repeat the random-effects fit it is compared with.
    """

    estimate: float
    se: float
    ci_lower: float
    ci_upper: float
    tau2: float
    u0: float
    level: float
    method_re: str
    estimate_re: float
    se_re: float
    ci_lower_re: float
    ci_upper_re: float
    tau2_re: float

    def to_dict(self) -> dict:
        return {k: _clean(getattr(self, k)) for k in self.__dataclass_fields__}


#: Composite Gauss-Legendre rule on [x, x + _SPAN]: _PANELS panels of _NODES nodes.
_SPAN, _PANELS, _NODES = 12.0, 24, 16
_GL_X, _GL_W = np.polynomial.legendre.leggauss(_NODES)


def _quadrature_nodes():
    """Offsets ``s`` and weights of the rule on [0, _SPAN] (the integral runs over r = x + s)."""
    h = _SPAN / _PANELS
    left = np.arange(_PANELS) * h
    s = (left[:, None] + (_GL_X[None, :] + 1) * h / 2).ravel()
    w = np.tile(_GL_W * h / 2, _PANELS)
    return s, w


_S, _W = _quadrature_nodes()


def henmi_copas(result, level: float | None = None):
    """Henmi-Copas confidence interval (metafor ``hc(fit)``), robust to
    publication bias: the common-effect estimate with a DerSimonian-Laird
    variance, and an interval from the approximate distribution of its t-like
    statistic (Henmi & Copas 2010, eqs. 4-10).

    The half-width is ``u0 se``: ``t0 = u0/sqrt(1 + tau² W2/W1)`` solves
    ``int_{t0}^inf P(Q <= finv(r/t0)) phi(r) dr = alpha/2``, with Q given r
    approximated by a gamma distribution with the paper's mean and variance
    (their equations for E[Q|r] and Var[Q|r]), as metafor computes it; metafor
    uses R's adaptive ``integrate``, this uses a fixed 384-node composite
    Gauss-Legendre rule on ``[t0, t0 + 12]`` (the normal density beyond is below 1e-31).

    Parameters
    ----------
    result : PoolResult or PoolTable
        An intercept-only fit (its estimate, CI and tau² are repeated as ``*_re``).
    level : float, optional
        Confidence level in percent (default: the fit's).

    Returns
    -------
    HenmiCopas, or a DataFrame (one row per analysis) for a PoolTable; NaN
    for analyses with k < 2.

    References
    ----------
    Henmi M, Copas JB (2010). Confidence intervals for random effects
    meta-analysis and robustness to publication bias. Stat Med 29:2969-2983.
    """
    seg, y, v, keys, fit = _flat(result)
    level = result.level if level is None else float(level)
    alpha = 1 - level / 100
    k = seg.k
    w = 1 / v
    W1 = seg.sum(w)
    with np.errstate(invalid="ignore", divide="ignore"):
        W2, W3, W4 = seg.sum(w**2) / W1, seg.sum(w**3) / W1, seg.sum(w**4) / W1
        beta = seg.sum(w * y) / W1
        Q = seg.sum(w * (y - beta[seg.g]) ** 2)
        tau2 = np.maximum(0.0, (Q - (k - 1)) / (W1 - W2))
        se = np.sqrt((tau2 * W2 + 1) / W1)
        VR = 1 + tau2 * W2
        SDR = np.sqrt(VR)
    ok = np.flatnonzero(k >= 2)
    t0 = np.full(seg.G, np.nan)
    if ok.size:

        def eqn(x, idx):
            g = ok[np.asarray(idx, np.intp)]
            x = np.asarray(x, float)
            r = x[:, None] + _S[None, :]  # (n, nodes)
            kk, t2, vr, w1, w2, w3, w4 = (a[g][:, None] for a in (k, tau2, VR, W1, W2, W3, W4))
            rr = (SDR[g][:, None] * r) ** 2
            d = rr / vr**2 - 1 / vr
            eq = (kk - 1) + t2 * (w1 - w2) + t2**2 * d * (w3 - w2**2)
            vq = (2 * (kk - 1) + 4 * t2 * (w1 - w2) + 2 * t2**2 * (w1 * w2 - 2 * w3 + w2**2)
                  + 4 * t2**2 * d * (w3 - w2**2) + 4 * t2**3 * d * (w4 - 2 * w2 * w3 + w2**3)
                  + 2 * t2**4 * (1 / vr**2 - 2 * rr / vr**3) * (w3 - w2**2) ** 2)
            finv = (w1 / w2 - 1) * ((r / x[:, None]) ** 2 - 1) + (kk - 1)
            with np.errstate(invalid="ignore", divide="ignore"):
                pg = special.gammainc(eq**2 / vq, np.maximum(finv, 0.0) * eq / vq)
            dens = np.exp(-0.5 * r**2) / np.sqrt(2 * np.pi)
            return (pg * dens) @ _W - alpha / 2

        res = _core.find_root(eqn, (np.full(ok.size, 1e-8), np.full(ok.size, 2.0)), args=(np.arange(ok.size),),
                              tolerances=_ROOT_TOL)
        t0[ok] = res.x
    u0 = SDR * t0
    lo, hi = beta - u0 * se, beta + u0 * se
    rows = [HenmiCopas(estimate=float(beta[g]), se=float(se[g]), ci_lower=float(lo[g]), ci_upper=float(hi[g]),
                       tau2=float(tau2[g]), u0=float(u0[g]), level=level, method_re=result.method,
                       estimate_re=float(fit["estimate"][g]), se_re=float(fit["se"][g]),
                       ci_lower_re=float(fit["ci_lower"][g]), ci_upper_re=float(fit["ci_upper"][g]),
                       tau2_re=float(fit["tau2"][g])) for g in range(seg.G)]
    if isinstance(result, PoolResult):
        return rows[0]
    return pd.DataFrame({result.by: keys, **{f: [getattr(r, f) for r in rows] for f in HenmiCopas.__dataclass_fields__}})
