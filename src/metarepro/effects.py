"""Study-level effect sizes and their sampling variances (metafor's ``escalc``).

Each function takes validated float arrays and returns ``(yi, vi)`` on the
analysis scale (log for ratio measures, Fisher's z for correlations).
:func:`compute_effects` reads the right columns of a table, validates them,
applies the continuity-correction convention and records every correction and
every exclusion, so that nothing is changed or dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special

from . import _dist as stats
from . import effects_cor, effects_means, effects_proportions, effects_rates, io, natural
from .effects_common import TO_CHOICES, Rows
from .errors import InputError
from .names import TRANSFORM

#: Measures whose continuity correction is 0 unless given (metafor ``escalc``); 1/2 otherwise.
NO_ADD_BY_DEFAULT = effects_proportions.NO_ADD_BY_DEFAULT + effects_rates.NO_ADD_BY_DEFAULT


@dataclass(frozen=True)
class EffectTable:
    """Study-level effects of one table, in file order.

    Attributes
    ----------
    yi, vi : ndarray
        Effect and sampling variance on the analysis scale; NaN where the study
        is excluded from pooling (see ``excluded``).
    counts : dict of ndarray or None
        Uncorrected 2x2 cells ``ai, bi, ci, di`` for binary data (Mantel-Haenszel
        and Peto pool these, not ``yi``), else None.
    family : tuple of str or None
        The columns the effects were computed from, when every row uses the same
        family; None for a table that mixes families.
    row_family : tuple of tuple of str
        The family of each row.
    corrections, excluded : list of dict
        One entry per corrected / excluded study: ``row`` (position), ``study``,
        ``action`` or ``reason``.
    size : ndarray or None
        Per-study size the back-transformation needs (total for PFT,
        person-time for IRFT; NaN for rows given as generic effects), else None.
    """

    yi: np.ndarray
    vi: np.ndarray
    counts: dict | None
    family: tuple | None
    row_family: tuple = ()
    corrections: list = field(default_factory=list)
    excluded: list = field(default_factory=list)
    size: np.ndarray | None = None


# --------------------------------------------------------------------------
# Effect-size formulas (vectorised). References in each docstring.
# --------------------------------------------------------------------------

def log_risk_ratio(ai, bi, ci, di):
    """Log risk ratio and its large-sample variance.

    ``yi = log(ai/n1) - log(ci/n2)``, ``vi = 1/ai - 1/n1 + 1/ci - 1/n2``
    (Greenland & Robins 1985, Biometrics 41:55).
    """
    n1, n2 = ai + bi, ci + di
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(ai / n1) - np.log(ci / n2), 1 / ai - 1 / n1 + 1 / ci - 1 / n2


def log_odds_ratio(ai, bi, ci, di):
    """Log odds ratio and Woolf's variance ``1/ai + 1/bi + 1/ci + 1/di``
    (Woolf 1955, Ann Hum Genet 19:251)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(ai * di / (bi * ci)), 1 / ai + 1 / bi + 1 / ci + 1 / di


def risk_difference(ai, bi, ci, di):
    """Risk difference and its large-sample variance ``p1(1-p1)/n1 + p2(1-p2)/n2``."""
    n1, n2 = ai + bi, ci + di
    p1, p2 = ai / n1, ci / n2
    return p1 - p2, p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2


def peto_log_odds_ratio(ai, bi, ci, di):
    """Peto's one-step log odds ratio ``(O - E)/V`` and variance ``1/V``
    (Yusuf et al. 1985, Prog Cardiovasc Dis 27:335). NaN where ``V = 0``."""
    n1, n2 = ai + bi, ci + di
    n = n1 + n2
    xt, yt = ai + ci, bi + di
    e = xt * n1 / n
    v = xt * yt * (n1 / n) * (n2 / n) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        yi = np.where(v > 0, (ai - e) / v, np.nan)
        vi = np.where(v > 0, 1 / v, np.nan)
    return yi, vi


def mean_difference(m1, sd1, n1, m2, sd2, n2):
    """Raw mean difference with the unequal-variance variance ``sd1²/n1 + sd2²/n2``."""
    return m1 - m2, sd1**2 / n1 + sd2**2 / n2


def hedges_g(m1, sd1, n1, m2, sd2, n2):
    """Standardised mean difference with Hedges' exact small-sample correction.

    ``g = c(m) d`` with ``d`` on the pooled SD, ``m = n1 + n2 - 2`` and
    ``c(m) = Γ(m/2) / (sqrt(m/2) Γ((m-1)/2))`` computed on the log-gamma scale
    (Hedges 1981, J Educ Stat 6:107); variance ``1/n1 + 1/n2 + g²/(2(n1+n2))``,
    metafor's default ``vtype="LS"``.
    """
    m = n1 + n2 - 2
    sdp = np.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / m)
    cm = np.exp(special.gammaln(m / 2) - 0.5 * np.log(m / 2) - special.gammaln((m - 1) / 2))
    g = cm * (m1 - m2) / sdp
    return g, 1 / n1 + 1 / n2 + g**2 / (2 * (n1 + n2))


def hedges_g_revman5(m1, sd1, n1, m2, sd2, n2):
    """Standardised mean difference as RevMan 5 computes it (Hedges' adjusted g
    with the approximate correction).

    ``g = J d`` with ``d`` on the pooled SD and ``J = 1 - 3/(4N - 9)``, ``N = n1 + n2``;
    variance ``N/(n1 n2) + g²/(2(N - 3.94))`` (Deeks & Higgins 2010, Statistical
    algorithms in Review Manager 5; R meta's ``metacont`` with ``exact.smd =
    FALSE``, "formulae used in RevMan 5", set by ``settings.meta("RevMan5")``).
    ``J`` is Hedges' (1981, J Educ Stat 6:107) approximation ``1 - 3/(4m - 1)``
    of the exact factor, with ``m = N - 2``. Defined for ``N >= 3`` (at ``N = 3``,
    ``J = 0``: g = 0 with variance N/(n1 n2), as RevMan prints it).
    """
    N = n1 + n2
    sdp = np.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / (N - 2))
    g = (1 - 3 / (4 * N - 9)) * (m1 - m2) / sdp
    return g, N / (n1 * n2) + g**2 / (2 * (N - 3.94))


def risk_difference_revman5(ai, bi, ci, di, added):
    """Risk difference from the raw counts with the variance of the corrected table,
    as RevMan 5.

    ``yi = ai/n1 - ci/n2`` from the uncorrected cells; ``vi = a'b'/n1'³ + c'd'/n2'³``
    with ``added`` (0.5 for a study with a zero cell, else 0) added to each cell
    (``a' = ai + added``, ``n1' = n1 + 2 added``). A double-zero study has RD 0
    and a positive variance, so it is estimable (R meta's ``metabin``, Cooper &
    Hedges 1994 pp. 246-7; Deeks & Higgins 2010).
    """
    n1, n2 = ai + bi, ci + di
    a, b, c, d = (x + added for x in (ai, bi, ci, di))
    m1, m2 = a + b, c + d
    return ai / n1 - ci / n2, a * b / m1**3 + c * d / m2**3


def log_ratio_of_means(m1, sd1, n1, m2, sd2, n2):
    """Log ratio of means with the delta-method variance
    ``sd1²/(n1 m1²) + sd2²/(n2 m2²)`` (Hedges, Gurevitch & Curtis 1999, Ecology 80:1150)."""
    return np.log(m1 / m2), sd1**2 / (n1 * m1**2) + sd2**2 / (n2 * m2**2)


def fisher_z(r, n):
    """Fisher's r-to-z transformation ``atanh(r)`` with variance ``1/(n-3)`` (Fisher 1921)."""
    return np.arctanh(r), 1 / (n - 3)


# --------------------------------------------------------------------------
# Reading and validating a table
# --------------------------------------------------------------------------

def compute_effects(frame: pd.DataFrame, measure: str, *, add: float | None = None,
                    to: str = "only0", drop00: bool | str = False,
                    ci_level: float = 95.0, group: np.ndarray | None = None,
                    smd: str = "exact", rd: str = "metafor",
                    not_estimable: str = "error") -> EffectTable:
    """Validate a study table and compute ``yi, vi`` for ``measure``.

    Parameters
    ----------
    frame : DataFrame
        One row per study. Each row gives its numbers in one of the column
        families of :mod:`metarepro.io` (the form in which they were printed):
        rows of one table may mix families, e.g. 2x2 counts for some studies and
        an estimate with its CI for others (:func:`metarepro.io.row_families`).
    measure : str
        One of :data:`metarepro.names.MEASURES` (metafor ``escalc`` names).
    add : float or None
        Continuity correction added to the cells of count data (2x2 tables,
        proportions, rates). None: metafor's default, 1/2, or 0 for PAS, PFT,
        IRS and IRFT.
    to : {"only0", "all", "if0all", "none"}
        Which studies get ``add``: those with a zero cell (default, as metafor's
        ``escalc``), all studies, all studies if any has a zero cell, or none.
        Only rows given as counts are concerned.
    drop00 : bool or "revman5"
        Exclude studies with no events (or only events) in both arms. metafor's
        ``escalc`` keeps them (default False). ``"revman5"``: RevMan 5's rule by
        measure: no events in both arms is not estimable for RR and OR, every
        participant with the event in both arms is not estimable for OR and,
        for RR, gives RR = 1 from the raw counts with the variance of the
        corrected table (as RevMan prints it); RD keeps both (Cochrane Handbook
        5.1 section 16.9.3; R meta's ``metabin``).
    ci_level : float
        Level in percent of the intervals in ``estimate,ci_lower,ci_upper`` input.
    group : ndarray of int, optional
        Analysis of each row when the table holds several analyses; ``to="if0all"``
        then applies within each analysis.
    smd : {"exact", "revman5"}
        SMD formula: Hedges' g with the exact correction (:func:`hedges_g`,
        metafor) or RevMan 5's approximation (:func:`hedges_g_revman5`).
    rd : {"metafor", "revman5"}
        RD of a corrected study from the corrected table (metafor) or from the
        raw counts with the corrected table's variance
        (:func:`risk_difference_revman5`, RevMan 5).
    not_estimable : {"error", "exclude"}
        What a study that has no estimate becomes: an SD of 0, a group of 0
        participants, a standard error or variance of 0, an interval of zero
        width, an SMD with fewer than 4 participants. ``"error"`` stops with
        an :class:`InputError` (metafor refuses such input); ``"exclude"``
        lists it among the excluded studies as "not estimable", as RevMan 5
        shows it. Impossible data (negative counts or SDs, events > total) is
        an error either way.

    Returns
    -------
    EffectTable
        ``family`` is the family of every row when they share one, else None;
        ``row_family`` holds each row's family. ``counts`` are given only when
        every row is a 2x2 table (Mantel-Haenszel and Peto need them all).

    Notes
    -----
    For ``estimate,ci_lower,ci_upper`` input the standard error is recovered as
    ``(g(upper) - g(lower)) / (2 z)`` with ``g`` the measure's transformation
    (:data:`metarepro.names.TRANSFORM`: ``log`` for ratio and log measures,
    ``atanh`` for ZCOR/ZPCOR, logit, arcsine, square root; the identity
    otherwise; PFT and IRFT depend on the study size and take no interval), and
    ``z = Φ⁻¹(1 - (1 - level)/2)`` (Higgins et al., Cochrane Handbook §6.3).
    """
    file = frame.attrs.get("source", "<data>")
    if add is None:
        add = 0.0 if measure in NO_ADD_BY_DEFAULT else 0.5
    if to not in TO_CHOICES:
        raise InputError(f"unknown continuity-correction rule to='{to}' "
                         f"(choose one of {', '.join(TO_CHOICES)})", file=file)
    if not np.isfinite(add) or add < 0:
        raise InputError(f"continuity correction add={add} must be >= 0", file=file)
    if not (0 < ci_level < 100):
        raise InputError(f"CI level {ci_level} must be between 0 and 100", file=file)
    if not_estimable not in ("error", "exclude"):
        raise InputError(f"unknown not_estimable='{not_estimable}' (choose error or exclude)", file=file)
    exclude_ne = not_estimable == "exclude"
    fams = io.row_families(frame, measure)
    labels = frame["study"].to_numpy() if "study" in frame.columns else frame.index.to_numpy()
    n = len(frame)
    yi = np.full(n, np.nan)
    vi = np.full(n, np.nan)
    corrections: list = []
    excluded: list = []
    counts = None
    size = np.full(n, np.nan) if natural.needs_size(measure) else None
    for fam in dict.fromkeys(fams):
        pos = np.array([i for i, f in enumerate(fams) if f == fam], dtype=np.intp)
        rows = Rows(frame, fam, pos)
        if fam in _OTHER_FAMILIES or (fam == io.CORRELATION and measure != "ZCOR"):
            grp = None if group is None else np.asarray(group)[pos]
            c = _other(rows, measure, add=add, to=to, drop00=drop00, group=grp, labels=labels[pos])
            yi[pos], vi[pos] = c.yi, c.vi
            corrections += c.corrections
            excluded += c.excluded
            if size is not None and c.size is not None:
                size[pos] = c.size
            continue
        if fam == io.BINARY:
            grp = None if group is None else np.asarray(group)[pos]
            y, v, c = _binary(rows, measure, labels[pos], add, to, drop00, grp, corrections, excluded,
                              rd=rd, exclude=exclude_ne)
            if len(pos) == n:
                counts = c
        elif fam == io.CONTINUOUS:
            y, v = _continuous(rows, measure, smd=smd, exclude=exclude_ne, labels=labels[pos],
                               excluded=excluded)
        elif fam == io.CORRELATION:
            y, v = _correlation(rows)
        else:
            y, v = _generic(rows, measure, ci_level, exclude=exclude_ne, labels=labels[pos],
                            excluded=excluded)
        yi[pos] = np.where(rows.keep, y, np.nan)
        vi[pos] = np.where(rows.keep, v, np.nan)
    uniform = fams[0] if len(set(fams)) == 1 else None
    corrections.sort(key=lambda c: c["row"])
    excluded.sort(key=lambda c: c["row"])
    return EffectTable(yi=yi, vi=vi, counts=counts, family=uniform, row_family=tuple(fams),
                       corrections=corrections, excluded=excluded, size=size)


def _binary(rows: Rows, measure, labels, add, to, drop00, group, corrections, excluded, *,
            rd="metafor", exclude=False):
    """2x2 rows: checks, zero-cell convention, effects; corrections and exclusions
    are appended with the row's position in the whole table."""
    a = rows.a
    rows.whole(io.BINARY)
    for c in ("events_t", "events_c"):
        i = rows.first(a[c] < 0)
        if i is not None:
            rows.fail(i, c, f"negative count {a[c][i]:g}")
    rows.positive(("total_t", "total_c"), "total", zero_ok=exclude)
    for e, t in (("events_t", "total_t"), ("events_c", "total_c")):
        i = rows.first(a[e] > a[t])
        if i is not None:
            rows.fail(i, e, f"{a[e][i]:g} events > {a[t][i]:g} total")
    ai, ci = a["events_t"], a["events_c"]
    bi, di = a["total_t"] - ai, a["total_c"] - ci
    counts = {"ai": ai.copy(), "bi": bi.copy(), "ci": ci.copy(), "di": di.copy()}
    id00 = ((ai == 0) & (ci == 0)) | ((bi == 0) & (di == 0))
    rows.unusable((a["total_t"] == 0) | (a["total_c"] == 0), "a group with 0 participants", "total_t",
                  exclude, labels, excluded)
    keep = rows.keep.copy()
    if drop00 == "revman5":
        none = keep & (ai == 0) & (ci == 0)
        every = keep & (bi == 0) & (di == 0)
        rules = {"RR": ((none, "no events in either arm"),),
                 "OR": ((none, "no events in either arm"),
                        (every, "every participant had the event in both arms"))}.get(measure, ())
        for mask, why in rules:
            for i in np.flatnonzero(mask):
                excluded.append({"row": int(rows.pos[i]), "study": labels[i],
                                 "reason": f"{measure} not estimable ({why}; RevMan 5)"})
            keep &= ~mask
    elif drop00:
        id00 &= keep
        for i in np.flatnonzero(id00):
            why = "no events in either arm" if ai[i] == 0 else "every participant had the event in both arms"
            excluded.append({"row": int(rows.pos[i]), "study": labels[i],
                             "reason": f"double-zero study ({why}); dropped (drop00)"})
        keep &= ~id00
    id0 = (ai == 0) | (bi == 0) | (ci == 0) | (di == 0)
    if to == "all":
        hit = keep.copy()
    elif to == "only0":
        hit = keep & id0
    elif to == "if0all":
        grp = np.zeros(len(ai), np.intp) if group is None else pd.factorize(group)[0]
        any0 = np.bincount(grp, weights=(keep & id0).astype(float)) > 0
        hit = keep & any0[grp]
    else:
        hit = np.zeros_like(keep)
    if add == 0:
        hit[:] = False
    added = np.where(hit, add, 0.0)
    raw = (ai, bi, ci, di)
    ai, bi, ci, di = (x + added for x in raw)
    for i in np.flatnonzero(hit):
        reason = "zero cell" if id0[i] else f"to='{to}'"
        corrections.append({"row": int(rows.pos[i]), "study": labels[i],
                            "action": f"added {add:g} to each cell ({reason})"})
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure == "RD" and rd == "revman5":
            yi, vi = risk_difference_revman5(*raw, added)
        else:
            fn = {"RR": log_risk_ratio, "OR": log_odds_ratio, "RD": risk_difference}[measure]
            yi, vi = fn(ai, bi, ci, di)
        if measure == "RR" and drop00 == "revman5":
            # RevMan 5: every participant with the event in both arms gives RR = 1 from the raw
            # counts; only its variance comes from the corrected table (checked on 89 of 89 such
            # studies printed in Cochrane data-rows exports, e.g. CD002042 Analysis 1.1, DeZern 2016:
            # 59/59 vs 30/30, RR 1.00 (0.95 to 1.05)).
            yi = np.where(keep & (raw[1] == 0) & (raw[3] == 0), 0.0, yi)
    bad = keep & ~(np.isfinite(yi) & np.isfinite(vi) & (vi > 0))
    for i in np.flatnonzero(bad):
        excluded.append({"row": int(rows.pos[i]), "study": labels[i],
                         "reason": f"{measure} not estimable (zero cell without continuity correction)"})
    keep &= ~bad
    return np.where(keep, yi, np.nan), np.where(keep, vi, np.nan), counts


def _continuous(rows: Rows, measure, *, smd="exact", exclude=False, labels=None, excluded=None):
    a = rows.a
    rows.whole(("total_t", "total_c"))
    rows.positive(("total_t", "total_c"), "total", zero_ok=exclude)
    rows.positive(("sd_t", "sd_c"), "SD", zero_ok=exclude)
    args = (a["mean_t"], a["sd_t"], a["total_t"], a["mean_c"], a["sd_c"], a["total_c"])
    ne = (exclude, labels, excluded)
    rows.unusable((a["total_t"] == 0) | (a["total_c"] == 0), "a group with 0 participants", "total_t", *ne)
    rows.unusable((a["sd_t"] == 0) | (a["sd_c"] == 0), "SD = 0", "sd_t", *ne)
    if measure == "SMD":
        # metafor's exact J needs N - 2 >= 2; RevMan 5's J = 1 - 3/(4N - 9) is 0 at N = 3, where
        # RevMan prints g = 0 with variance N/(n1 n2) (CD015331 Analysis 1.56, Morrison 2020:
        # 2 vs 1 participants, SMD 0.00 (-2.40 to 2.40) = 0 -+ 1.96 sqrt(3/2))
        least = 3 if smd == "revman5" else 4
        rows.unusable(a["total_t"] + a["total_c"] < least, f"SMD needs at least {least} participants in all",
                      "total_t", *ne)
    elif measure == "ROM":
        rows.positive(("mean_t", "mean_c"), "a mean for the ratio of means (ROM)")
    fn = {"MD": mean_difference, "ROM": log_ratio_of_means,
          "SMD": hedges_g_revman5 if smd == "revman5" else hedges_g}[measure]
    with np.errstate(divide="ignore", invalid="ignore"):
        return fn(*args)


def _correlation(rows: Rows):
    a = rows.a
    rows.whole(("total",))
    i = rows.first(np.abs(a["r"]) > 1)
    if i is not None:
        rows.fail(i, "r", f"correlation {a['r'][i]:g} is outside [-1, 1]")
    i = rows.first(np.abs(a["r"]) == 1)
    if i is not None:
        rows.fail(i, "r", "correlation of exactly ±1 has no finite Fisher z")
    i = rows.first(a["total"] <= 3)
    if i is not None:
        rows.fail(i, "total", f"total {a['total'][i]:g} must be > 3 for Fisher's z")
    return fisher_z(a["r"], a["total"])


def _generic(rows: Rows, measure, ci_level, *, exclude=False, labels=None, excluded=None):
    a, family = rows.a, rows.family
    ne = (exclude, labels, excluded)
    if family == io.GENERIC_VI:
        rows.positive(("vi",), "variance", zero_ok=exclude)
        rows.unusable(a["vi"] == 0, "variance = 0", "vi", *ne)
        return a["yi"], a["vi"]
    if family == io.GENERIC_SEI:
        rows.positive(("sei",), "standard error", zero_ok=exclude)
        rows.unusable(a["sei"] == 0, "standard error = 0", "sei", *ne)
        return a["yi"], a["sei"] ** 2
    est, lo, hi = a["estimate"], a["ci_lower"], a["ci_upper"]
    g = _printed_scale(rows, measure)
    i = rows.first((lo > hi) | ((lo == hi) & (not exclude)))
    if i is not None:
        rows.fail(i, "ci_lower", f"interval is reversed or empty ({lo[i]:g} to {hi[i]:g})")
    rows.unusable(lo == hi, "interval of zero width", "ci_lower", *ne)
    i = rows.first((est < lo) | (est > hi))
    if i is not None:
        rows.fail(i, "estimate", f"estimate {est[i]:g} lies outside its interval ({lo[i]:g} to {hi[i]:g})")
    z = stats.norm.isf((1 - ci_level / 100) / 2)
    return g(est), ((g(hi) - g(lo)) / (2 * z)) ** 2


# --------------------------------------------------------------------------
# the measures of issue 14 (modules by theme) and printed intervals
# --------------------------------------------------------------------------

_OTHER_FAMILIES = (io.PROPORTION, io.RATE, io.RATE2, io.MEAN, io.CHANGE, io.CHANGE_SMCR, io.PARTIAL_T,
                   io.PARTIAL_R, io.SEMIPARTIAL_T, io.SEMIPARTIAL_R)


def _other(rows: Rows, measure, *, add, to, drop00, group, labels):
    fam = rows.family
    if fam == io.PROPORTION:
        return effects_proportions.compute(rows, measure, add=add, to=to, group=group, labels=labels)
    if fam == io.RATE:
        return effects_rates.compute(rows, measure, add=add, to=to, group=group, labels=labels)
    if fam == io.RATE2:
        return effects_rates.compute_two_group(rows, measure, add=add, to=to, drop00=drop00, group=group,
                                               labels=labels)
    if fam == io.MEAN:
        return effects_means.compute_mean(rows, measure, labels=labels)
    if fam in (io.CHANGE, io.CHANGE_SMCR):
        return effects_means.compute_change(rows, measure, labels=labels)
    if fam == io.CORRELATION:
        return effects_cor.compute(rows, measure, labels=labels)
    return effects_cor.compute_partial(rows, measure, labels=labels)


#: Valid range of a value printed on the natural scale, by transformation.
_PRINTED_RANGE = {"log": (0, np.inf, "> 0"), "atanh": (-1, 1, "inside (-1, 1)"),
                  "logit": (0, 1, "inside (0, 1)"), "arcsine": (0, 1, "inside (0, 1)"), "sqrt": (0, np.inf, "> 0")}


def _printed_scale(rows: Rows, measure):
    """Transformation of an estimate and CI printed on the natural scale to the
    model scale, after checking the printed values lie in its range."""
    name = TRANSFORM.get(measure)
    if name is None:
        return np.asarray
    if name not in _PRINTED_RANGE:
        rows.fail(0, "estimate", f"measure {measure} needs each study's counts: its transformation depends on the "
                                 "study size, so a printed interval cannot be converted (give yi,vi instead)")
    lo, hi, rule = _PRINTED_RANGE[name]
    what = {"log": "ratio" if measure in io.RATIO_MEASURES else "value", "atanh": "correlation",
            "logit": "proportion", "arcsine": "proportion", "sqrt": "rate"}[name]
    for c in rows.family:
        i = rows.first((rows.a[c] <= lo) | (rows.a[c] >= hi))
        if i is not None:
            rows.fail(i, c, f"{what} {rows.a[c][i]:g} must be {rule} for measure {measure}")
    return natural.forward(measure)
