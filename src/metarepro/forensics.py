"""Method forensics: which pooling method, tau² estimator, test and zero-cell convention
reproduce a published pooled estimate.

Every combination is fitted in one vectorised :func:`metarepro.pool` call per
convention and ranked by its distance from the published estimate and interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import conventions as conv_mod
from . import io
from .batch import Fit, drive, value
from .effects import compute_effects
from .errors import InputError
from .names import COUNT_METHODS, TESTS
from .pooling import _natural

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
    return drive(method_forensics_fits(frame, measure, target_estimate, target_ci_lower, target_ci_upper,
                                       decimals=decimals, level=level))


def method_forensics_fits(frame, measure, target_estimate, target_ci_lower=None, target_ci_upper=None,
                          decimals=2, level=95):
    """:func:`method_forensics` as a conversation of :mod:`metarepro.batch`: it yields
    every fit (the inverse-variance models on each convention's study effects, the
    count-based models on the table) and returns the table."""
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
        convs.append((bundle, name, add, to, drop00, kw))
        ok = np.isfinite(eff.yi) & np.isfinite(eff.vi)
        stacked.append(pd.DataFrame({"study": labels[ok], "yi": eff.yi[ok], "vi": eff.vi[ok]}))
    if not convs:
        raise first_error
    empty = not any(len(g) for g in stacked)  # then the first fit gives the error of an empty table
    methods = [
        m
        for m in FORENSIC_METHODS
        if not (m in ("MH", "MH-DL") and not (binary and measure in ("RR", "OR", "RD")))
        and not (m == "PETO" and not (binary and measure == "OR"))
    ]
    plan = []  # (convention, method, test, fit), in the order of the table
    for m in methods:
        for t in ("z",) if m in ("MH", "PETO") else TESTS:
            for j, conv in enumerate(convs):
                if m in COUNT_METHODS:
                    plan.append((j, m, t, Fit.of(frame, measure=measure, method=m, test=t, level=level,
                                                 studies=False, **conv[5])))
                elif len(stacked[j]) or (empty and j == 0):
                    plan.append((j, m, t, Fit.of(stacked[j], measure="GEN", method=m, test=t, level=level,
                                                 studies=False)))
    fits = yield [p[3] for p in plan]
    rows = []
    for (j, m, t, _), r in zip(plan, fits):
        r = value(r)
        rows.append({"_conv": j, "method": m, "test": t, "k": r.k, "est": r.estimate, "lo": r.ci_lower,
                     "hi": r.ci_upper, "tau2": r.tau2, "i2": r.i2})
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


__all__ = ["FORENSIC_METHODS", "REVMAN5_ZERO_CELLS", "ZERO_CELL_CONVENTIONS", "method_forensics", "method_forensics_fits"]
