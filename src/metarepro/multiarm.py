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

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import io
from .effects import compute_effects
from .errors import InputError

__all__ = ["SharedArmCovariance", "assumed_correlation_covariance", "shared_arm_groups",
           "shared_control_covariance"]


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
        True when the covariance came from the arm data; False for generic effects
        (then ``V`` is diagonal and ``reason`` says why).
    """

    yi: np.ndarray
    vi: np.ndarray
    V: np.ndarray = field(repr=False)
    groups: list
    family: tuple
    modelled: bool
    reason: str | None = None
    corrections: list = field(default_factory=list)
    excluded: list = field(default_factory=list)


def _control_component(frame, eff, measure, add):
    """The control arm's part of each row's sampling variance (the ``a_i`` of the module notes)."""
    a = io.numeric_columns(frame, eff.family)
    if eff.family == io.BINARY:
        hit = np.zeros(len(frame), bool)
        for c in eff.corrections:
            hit[c["row"]] = True
        cc = a["events_c"] + np.where(hit, add, 0.0)
        dd = a["total_c"] - a["events_c"] + np.where(hit, add, 0.0)
        nc = cc + dd
        with np.errstate(divide="ignore", invalid="ignore"):
            if measure == "OR":
                return 1 / cc + 1 / dd
            if measure == "RR":
                return 1 / cc - 1 / nc
            return (cc / nc) * (1 - cc / nc) / nc
    if measure == "MD":
        return a["sd_c"] ** 2 / a["total_c"]
    if measure == "ROM":
        return a["sd_c"] ** 2 / (a["total_c"] * a["mean_c"] ** 2)
    return 1 / a["total_c"]  # SMD: plus the g_i g_j / (2N) term, added pairwise


def shared_control_covariance(frame: pd.DataFrame, measure: str, *, study: str = "study",
                              arm: str = "arm_c", add: float = 0.5, to: str = "only0",
                              drop00: bool = False, ci_level: float = 95) -> SharedArmCovariance:
    """Effect sizes and their covariance matrix for comparisons that share control arms.

    Parameters
    ----------
    frame : DataFrame
        One row per comparison in metarepro's columns, the shared control arm repeated on
        each row that uses it, ``study`` naming the trial and ``arm`` the control arm.
    measure : {"RR", "OR", "RD", "MD", "SMD", "ROM", ...}
    add, to, drop00, ci_level :
        As :func:`metarepro.effects.compute_effects` (the covariance uses the same
        continuity-corrected cells as the effect sizes).

    Returns
    -------
    SharedArmCovariance

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
    arm_data = eff.family in (io.BINARY, io.CONTINUOUS)
    out = {"yi": eff.yi, "vi": eff.vi, "groups": groups, "family": eff.family, "corrections": eff.corrections,
               "excluded": eff.excluded}
    if not groups:
        return SharedArmCovariance(V=V, modelled=True, **out)
    if not arm_data:
        return SharedArmCovariance(
            V=V, modelled=False, reason=("only generic effects (an estimate with its CI, or yi with its "
                                         "variance) are given: the shared arm's part of each variance is "
                                         "unknown, so the covariance cannot be built from arm data"), **out)
    file = frame.attrs.get("source", "<data>")
    arm_cols = ("events_c", "total_c") if eff.family == io.BINARY else ("mean_c", "sd_c", "total_c")
    num = io.numeric_columns(frame, eff.family)
    for g in groups:
        for c in arm_cols:
            vals = num[c][list(g)]
            if not np.all(vals == vals[0]):
                raise InputError(f"rows of {frame[study].iloc[g[0]]} sharing control arm "
                                 f"'{frame[arm].iloc[g[0]]}' disagree on {c}", file=file,
                                 row=io.row_label(frame, g[1]), column=c)
    comp = _control_component(frame, eff, measure, add)
    for g in groups:
        n_all = None
        if measure == "SMD":
            n_all = num["total_c"][g[0]] + num["total_t"][list(g)].sum()
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
    return SharedArmCovariance(V=V, modelled=True, **out)


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
