"""Incidence rates from events and person-time (metafor's ``escalc`` measures
IR, IRLN, IRS, IRFT for one group, IRR and IRD for two groups).

Input: ``events,time`` (metafor's ``xi, ti``) for one group;
``events_t,time_t,events_c,time_c`` (``x1i, t1i, x2i, t2i``) for two groups.
Person-time is in whatever unit the study printed (person-years, catheter-days);
rates are events per that unit.

metafor 3.8 defaults reproduced here: ``add=1/2`` with ``to="only0"`` for IR,
IRLN, IRR and IRD (added to the events of a study with zero events), ``add=0``
for IRS and IRFT, and ``drop00=FALSE`` for the two-group measures.
"""

from __future__ import annotations

import numpy as np

from .effects_common import Computed, Rows, correction_mask, exclude_not_estimable, record_corrections

MEASURES = ("IR", "IRLN", "IRS", "IRFT")
TWO_GROUP_MEASURES = ("IRR", "IRD")
NO_ADD_BY_DEFAULT = ("IRS", "IRFT")


def incidence_rate(xi, ti):
    """Rate ``x/t`` with the Poisson variance ``x/t²``."""
    return xi / ti, xi / ti**2


def log_incidence_rate(xi, ti):
    """Log rate ``log(x/t)`` with variance ``1/x``."""
    with np.errstate(divide="ignore"):
        return np.log(xi / ti), 1 / xi


def sqrt_incidence_rate(xi, ti):
    """Square-root rate ``sqrt(x/t)`` with variance ``1/(4t)``."""
    return np.sqrt(xi / ti), 1 / (4 * ti)


def freeman_tukey_rate(xi, ti):
    """Freeman-Tukey rate ``(sqrt(x/t) + sqrt(x/t + 1/t))/2`` with variance
    ``1/(4t)`` (Freeman & Tukey 1950, Ann Math Stat 21:607)."""
    ir = xi / ti
    return 0.5 * (np.sqrt(ir) + np.sqrt(ir + 1 / ti)), 1 / (4 * ti)


def log_rate_ratio(x1, t1, x2, t2):
    """Log incidence rate ratio ``log(x1/t1) - log(x2/t2)`` with variance
    ``1/x1 + 1/x2`` (Rothman, Greenland & Lash 2008, Modern Epidemiology, ch. 14)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x1 / t1) - np.log(x2 / t2), 1 / x1 + 1 / x2


def rate_difference(x1, t1, x2, t2):
    """Incidence rate difference ``x1/t1 - x2/t2`` with variance ``x1/t1² + x2/t2²``."""
    return x1 / t1 - x2 / t2, x1 / t1**2 + x2 / t2**2


FORMULAS = {"IR": incidence_rate, "IRLN": log_incidence_rate, "IRS": sqrt_incidence_rate,
            "IRFT": freeman_tukey_rate, "IRR": log_rate_ratio, "IRD": rate_difference}


def inverse_sqrt(x):
    """``x²``, 0 below 0 (metafor ``transf.isqrt``)."""
    x = np.asarray(x, float)
    return np.where(x < 0, 0.0, x * x)


def inverse_freeman_tukey_rate(x, t):
    """Inverse of the Freeman-Tukey rate transform at person-time ``t``
    (metafor ``transf.iirft``): ``(1/t - 8x² + 16 t x⁴)/(16 x² t)``, 0 below
    the transform of a zero rate and where the result is below machine epsilon."""
    x = np.asarray(x, float)
    t = np.asarray(t, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (1 / t - 8 * x**2 + 16 * t * x**4) / (16 * x**2 * t)
        z = np.where(x < 0.5 * np.sqrt(1 / t), 0.0, z)
        return np.where(z <= np.finfo(float).eps, 0.0, z)


def _check_counts(rows: Rows, events, times):
    rows.whole(events)
    rows.nonnegative(events, "events")
    rows.positive(times, "person-time")


def compute(rows: Rows, measure, *, add, to, group, labels) -> Computed:
    """Check ``events,time`` and compute a one-group rate measure for every row.

    A study with zero events gets ``add`` on its events (``to="only0"``).
    ``size`` holds the person-time (IRFT's back-transformation uses its
    harmonic mean).
    """
    _check_counts(rows, ("events",), ("time",))
    xi, ti = rows.a["events"], rows.a["time"]
    keep = np.ones(len(xi), bool)
    id0 = xi == 0
    hit = correction_mask(id0, keep, to, add, group)
    corrections = record_corrections(rows, hit, id0, add, to, labels, "the events")
    yi, vi = FORMULAS[measure](xi + np.where(hit, add, 0.0), ti)
    yi, vi, excluded = exclude_not_estimable(rows, yi, vi, keep, labels, measure,
                                             "no events and no continuity correction")
    return Computed(yi, vi, corrections, excluded, size=ti.copy())


def compute_two_group(rows: Rows, measure, *, add, to, drop00, group, labels) -> Computed:
    """Check ``events_t,time_t,events_c,time_c`` and compute IRR or IRD.

    A study with zero events in either group gets ``add`` on the events of
    both groups (``to="only0"``); ``drop00`` excludes studies without events
    in both groups.
    """
    _check_counts(rows, ("events_t", "events_c"), ("time_t", "time_c"))
    a = rows.a
    x1, t1, x2, t2 = a["events_t"], a["time_t"], a["events_c"], a["time_c"]
    keep = np.ones(len(x1), bool)
    excluded = []
    if drop00:
        id00 = (x1 == 0) & (x2 == 0)
        excluded += [{"row": int(rows.pos[i]), "study": labels[i],
                      "reason": "no events in either group; dropped (drop00)"} for i in np.flatnonzero(id00)]
        keep &= ~id00
    id0 = (x1 == 0) | (x2 == 0)
    hit = correction_mask(id0, keep, to, add, group)
    corrections = record_corrections(rows, hit, id0, add, to, labels, "the events of both groups")
    plus = np.where(hit, add, 0.0)
    yi, vi = FORMULAS[measure](x1 + plus, t1, x2 + plus, t2)
    yi, vi, more = exclude_not_estimable(rows, yi, vi, keep, labels, measure,
                                         "zero events without continuity correction")
    return Computed(yi, vi, corrections, excluded + more)
