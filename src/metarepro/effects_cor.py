"""Correlations (metafor's ``escalc`` measures COR, UCOR, and the partial and
semi-partial correlations PCOR, ZPCOR, SPCOR of a regression coefficient).

Input: ``r,total`` for COR and UCOR (Fisher's z, ZCOR, lives in
:mod:`metarepro.effects`). Partial correlations come from the t statistic of
the coefficient of interest as printed, ``t,total,predictors`` (metafor's
``ti, ni, mi``: ``predictors`` is the number of predictors in the regression,
the coefficient's own included, so the residual df are ``total - predictors -
1``), or from the printed partial correlation itself, ``r,total,predictors``;
SPCOR also needs the model's R², ``r2`` (metafor's ``r2i``). With ``r`` input
``t = r sqrt(df)/sqrt(1 - r²)`` (partial) or ``t = r sqrt(df)/sqrt(1 - R²)``
(semi-partial) is implied, so both inputs give the same effect; the
variance formulas are the same.

metafor 3.8 defaults reproduced here: ``vtype="LS"``.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from .effects_common import Computed, Rows, exclude_not_estimable

MEASURES = ("COR", "UCOR")
PARTIAL_MEASURES = ("PCOR", "ZPCOR", "SPCOR")
#: Smallest total for which each measure has a sampling variance (metafor sets NA below).
MIN_TOTAL = {"COR": 4, "UCOR": 5}


def raw_correlation(r, n):
    """Pearson's r with the large-sample variance ``(1 - r²)²/(n - 1)``."""
    return r, (1 - r**2) ** 2 / (n - 1)


def unbiased_correlation(r, n):
    """Olkin-Pratt unbiased correlation ``r 2F1(1/2, 1/2; (n-2)/2; 1 - r²)`` with
    variance ``(1 - u²)²/(n - 1)`` (Olkin & Pratt 1958, Ann Math Stat 29:201).

    The Gauss hypergeometric function is SciPy's ``special.hyp2f1`` (metafor
    calls GSL's ``hyperg_2F1``); it is defined for ``n > 4``. Where SciPy
    1.17 returns NaN (some large ``n`` with ``r`` near 0, e.g. n = 500,
    r = 0.05) the power series is summed instead (:func:`_hyp2f1_series`).
    """
    c, z = (n - 2) / 2, 1 - r**2
    f = np.asarray(special.hyp2f1(0.5, 0.5, c, z), float)
    bad = ~np.isfinite(f) & (np.asarray(c) > 1)
    if bad.any():
        cb, zb = np.broadcast_to(c, f.shape)[bad], np.broadcast_to(z, f.shape)[bad]
        f = f.copy()
        f[bad] = _hyp2f1_series(cb, zb)
    u = r * f
    return u, (1 - u**2) ** 2 / (n - 1)


def _hyp2f1_series(c, z, terms: int = 100_000):
    """``2F1(1/2, 1/2; c; z)`` by its power series, vectorised, for ``0 <= z <= 1``.

    Term ``j+1`` is term ``j`` times ``(j + 1/2)² z / ((c + j)(j + 1))``; with
    ``c - a - b = c - 1 > 0`` the series converges on [0, 1], quickly where ``c``
    is large (the case SciPy misses). Summation stops when every term is below
    1e-17 of its sum.
    """
    c = np.asarray(c, float)
    z = np.asarray(z, float)
    term = np.ones_like(c)
    total = np.ones_like(c)
    for j in range(terms):
        term = term * (j + 0.5) ** 2 * z / ((c + j) * (j + 1))
        total = total + term
        if np.all(term <= 1e-17 * total):
            break
    return total


def partial_correlation(t, n, m):
    """Partial correlation ``t/sqrt(t² + df)``, ``df = n - m - 1``, with variance
    ``(1 - r²)²/df`` (Aloe & Becker 2012, J Educ Behav Stat 37:278)."""
    df = n - m - 1
    r = t / np.sqrt(t**2 + df)
    return r, (1 - r**2) ** 2 / df


def fisher_z_partial(t, n, m):
    """Fisher's z of the partial correlation with variance ``1/(n - m - 1)``."""
    df = n - m - 1
    return np.arctanh(t / np.sqrt(t**2 + df)), 1 / df


def semipartial_correlation(t, n, m, r2):
    """Semi-partial correlation ``t sqrt(1 - R²)/sqrt(n - m - 1)`` with variance
    ``(R⁴ - 2R² + (R² - sr²) + 1 - (R² - sr²)²)/n`` (Aloe & Becker 2012, eq. 6,
    as metafor)."""
    sr = t * np.sqrt(1 - r2) / np.sqrt(n - m - 1)
    return sr, (r2**2 - 2 * r2 + (r2 - sr**2) + 1 - (r2 - sr**2) ** 2) / n


def compute(rows: Rows, measure, *, labels) -> Computed:
    """Check ``r,total`` and compute COR or UCOR for every row."""
    a = rows.a
    rows.whole(("total",))
    rows.correlation("r")
    low = MIN_TOTAL[measure]
    i = rows.first(a["total"] < low)
    if i is not None:
        rows.fail(i, "total", f"total {a['total'][i]:g} must be >= {low} for {measure}")
    fn = raw_correlation if measure == "COR" else unbiased_correlation
    yi, vi = fn(a["r"], a["total"])
    yi, vi, excluded = exclude_not_estimable(rows, yi, vi, np.ones(len(yi), bool), labels, measure,
                                             "value not finite")
    return Computed(yi, vi, [], excluded)


def compute_partial(rows: Rows, measure, *, labels) -> Computed:
    """Check the partial-correlation columns and compute PCOR, ZPCOR or SPCOR.

    ``predictors`` and ``total`` are whole numbers with ``total - predictors - 1 > 0``;
    ``r2`` lies in [0, 1]; a printed ``r`` lies strictly inside (-1, 1).
    """
    a, family = rows.a, rows.family
    rows.whole(("total", "predictors"))
    rows.nonnegative(("predictors",), "number of predictors")
    n, m = a["total"], a["predictors"]
    i = rows.first(n - m - 1 <= 0)
    if i is not None:
        rows.fail(i, "total", f"total {n[i]:g} leaves no residual degrees of freedom "
                              f"with {m[i]:g} predictors (need total > predictors + 1)")
    r2 = a.get("r2")
    if measure == "SPCOR":
        i = rows.first((r2 < 0) | (r2 > 1))
        if i is not None:
            rows.fail(i, "r2", f"R² {r2[i]:g} is outside [0, 1]")
    if "r" in family:
        what = "semi-partial correlation" if measure == "SPCOR" else "partial correlation"
        rows.correlation("r", what)
        r, df = a["r"], n - m - 1
        if measure == "PCOR":
            yi, vi = r, (1 - r**2) ** 2 / df
        elif measure == "ZPCOR":
            yi, vi = np.arctanh(r), 1 / df
        else:
            yi, vi = r, (r2**2 - 2 * r2 + (r2 - r**2) + 1 - (r2 - r**2) ** 2) / n
    elif measure == "SPCOR":
        yi, vi = semipartial_correlation(a["t"], n, m, r2)
    elif measure == "PCOR":
        yi, vi = partial_correlation(a["t"], n, m)
    else:
        yi, vi = fisher_z_partial(a["t"], n, m)
    yi, vi, excluded = exclude_not_estimable(rows, yi, vi, np.ones(len(yi), bool), labels, measure,
                                             "value not finite")
    return Computed(yi, vi, [], excluded)
