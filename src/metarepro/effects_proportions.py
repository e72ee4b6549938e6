"""Single-group proportions (metafor's ``escalc`` measures PR, PLN, PLO, PAS, PFT).

Input: ``events`` (metafor's ``xi``) and ``total`` (``ni``) per study. Each
formula takes the (possibly continuity-corrected) events ``xi`` and non-events
``mi`` and returns ``(yi, vi)``; :func:`compute` checks the columns, applies
metafor's zero-cell convention and records every correction and exclusion.

metafor 3.8 defaults reproduced here: ``vtype="LS"`` (large-sample variances),
``add=1/2`` with ``to="only0"`` for PR, PLN and PLO, and ``add=0`` for PAS and
PFT (metafor sets ``add=0`` for them unless the user gives ``add``).
"""

from __future__ import annotations

import numpy as np

from .effects_common import Computed, Rows, correction_mask, exclude_not_estimable, record_corrections

MEASURES = ("PR", "PLN", "PLO", "PAS", "PFT")
#: Measures whose default continuity correction is 0 (metafor ``escalc``).
NO_ADD_BY_DEFAULT = ("PAS", "PFT")


def raw_proportion(xi, mi):
    """Raw proportion ``p = x/n`` with the large-sample variance ``p(1-p)/n``."""
    ni = xi + mi
    p = xi / ni
    return p, p * (1 - p) / ni


def log_proportion(xi, mi):
    """Log proportion ``log(x/n)`` with variance ``1/x - 1/n`` (delta method)."""
    ni = xi + mi
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(xi / ni), 1 / xi - 1 / ni


def logit_proportion(xi, mi):
    """Logit ``log(x/(n-x))`` with variance ``1/x + 1/(n-x)`` (delta method)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(xi / mi), 1 / xi + 1 / mi


def arcsine_proportion(xi, mi):
    """Angular transformation ``asin(sqrt(p))`` with variance ``1/(4n)``
    (Anscombe 1948, Biometrika 35:246)."""
    ni = xi + mi
    return np.arcsin(np.sqrt(xi / ni)), 1 / (4 * ni)


def freeman_tukey_proportion(xi, mi):
    """Freeman-Tukey double arcsine
    ``(asin(sqrt(x/(n+1))) + asin(sqrt((x+1)/(n+1))))/2`` with variance
    ``1/(4n+2)`` (Freeman & Tukey 1950, Ann Math Stat 21:607)."""
    ni = xi + mi
    yi = 0.5 * (np.arcsin(np.sqrt(xi / (ni + 1))) + np.arcsin(np.sqrt((xi + 1) / (ni + 1))))
    return yi, 1 / (4 * ni + 2)


FORMULAS = {"PR": raw_proportion, "PLN": log_proportion, "PLO": logit_proportion,
            "PAS": arcsine_proportion, "PFT": freeman_tukey_proportion}


# --------------------------------------------------------------------------
# back-transformations (metafor's transf.*)
# --------------------------------------------------------------------------

def inverse_logit(x):
    """``1/(1 + exp(-x))`` (metafor ``transf.ilogit``)."""
    from scipy.special import expit

    return expit(x)


def inverse_arcsine(x):
    """``sin(x)²``, 0 below 0 and 1 above ``pi/2`` (metafor ``transf.iarcsin``)."""
    x = np.asarray(x, float)
    z = np.sin(x) ** 2
    z = np.where(x < 0, 0.0, z)
    return np.where(x > np.arcsin(1.0), 1.0, z)


def freeman_tukey(p, n):
    """Freeman-Tukey transform of a proportion ``p`` at sample size ``n`` (metafor ``transf.pft``)."""
    x = p * n
    return 0.5 * (np.arcsin(np.sqrt(x / (n + 1))) + np.arcsin(np.sqrt((x + 1) / (n + 1))))


def inverse_freeman_tukey(x, n):
    """Inverse of the Freeman-Tukey double arcsine at sample size ``n`` (Miller 1978).

    ``p = (1 - sgn(cos 2x) sqrt(1 - (sin 2x + (sin 2x - 1/sin 2x)/n)²))/2``,
    set to 0 below ``freeman_tukey(0, n)`` and to 1 above ``freeman_tukey(1, n)``;
    NaN where the root is not real (metafor ``transf.ipft``).

    References
    ----------
    Miller JJ (1978). The inverse of the Freeman-Tukey double arcsine
    transformation. Am Stat 32:138.
    """
    x = np.asarray(x, float)
    n = np.asarray(n, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.sin(2 * x)
        z = 0.5 * (1 - np.sign(np.cos(2 * x)) * np.sqrt(1 - (s + (s - 1 / s) / n) ** 2))
        z = np.where(x > freeman_tukey(1.0, n), 1.0, z)
        return np.where(x < freeman_tukey(0.0, n), 0.0, z)


# --------------------------------------------------------------------------
# reading a table
# --------------------------------------------------------------------------

def compute(rows: Rows, measure, *, add, to, group, labels) -> Computed:
    """Check ``events,total`` and compute ``measure`` for every row.

    Zero cells: a study with no events or only events gets ``add`` on its
    events and non-events (``to="only0"``; see
    :func:`metarepro.effects_common.correction_mask` for the other rules).
    ``size`` holds the uncorrected totals (the Freeman-Tukey back-transformation
    uses their harmonic mean).
    """
    a = rows.a
    rows.whole(("events", "total"))
    rows.nonnegative(("events",), "events")
    rows.positive(("total",), "total")
    i = rows.first(a["events"] > a["total"])
    if i is not None:
        rows.fail(i, "events", f"{a['events'][i]:g} events > {a['total'][i]:g} total (a proportion above 1)")
    xi, ni = a["events"], a["total"]
    mi = ni - xi
    keep = np.ones(len(xi), bool)
    id0 = (xi == 0) | (mi == 0)
    hit = correction_mask(id0, keep, to, add, group)
    corrections = record_corrections(rows, hit, id0, add, to, labels, "events and non-events")
    plus = np.where(hit, add, 0.0)
    yi, vi = FORMULAS[measure](xi + plus, mi + plus)
    why = "no events or only events, and no continuity correction"
    yi, vi, excluded = exclude_not_estimable(rows, yi, vi, keep, labels, measure, why)
    return Computed(yi, vi, corrections, excluded, size=ni.astype(float))
