"""Means of one group: single means (metafor's ``escalc`` MN, MNLN) and change
from a pre-post or matched-pairs design (MC, SMCC, SMCR, ROMC).

Input: ``mean,sd,total`` for single means; for change scores
``mean_pre,mean_post,sd_pre,sd_post,r_prepost,total`` (SMCR needs no
``sd_post``), where ``r_prepost`` is the correlation between the two
measurements. Every change measure is post minus pre (or log post/pre): metafor's
``m1i`` is ``mean_post`` and ``m2i`` is ``mean_pre``; SMCR standardises by the
pre-test SD (metafor's ``sd1i = sd_pre``), as Becker (1988) does. For matched
pairs, "post" is the first (e.g. treated) member of the pair and "pre" the second.

metafor 3.8 defaults reproduced here: ``vtype="LS"`` and the exact bias
correction ``c(m) = Γ(m/2)/(sqrt(m/2) Γ((m-1)/2))`` with ``m = n - 1``.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from .effects_common import Computed, Rows, exclude_not_estimable

MEASURES = ("MN", "MNLN")
CHANGE_MEASURES = ("MC", "SMCC", "SMCR", "ROMC")


def bias_correction(m):
    """Hedges' exact correction ``c(m) = Γ(m/2) / (sqrt(m/2) Γ((m-1)/2))`` on the
    log-gamma scale (Hedges 1981, J Educ Stat 6:107); NaN for ``m <= 1``."""
    m = np.asarray(m, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.exp(special.gammaln(m / 2) - 0.5 * np.log(m / 2) - special.gammaln((m - 1) / 2))
    return np.where(m <= 1, np.nan, c)


def raw_mean(mean, sd, n):
    """Mean with variance ``sd²/n``."""
    return mean, sd**2 / n


def log_mean(mean, sd, n):
    """Log mean with the delta-method variance ``sd²/(n mean²)``."""
    with np.errstate(divide="ignore"):
        return np.log(mean), sd**2 / (n * mean**2)


def _var_change(sd_post, sd_pre, r):
    return sd_post**2 + sd_pre**2 - 2 * r * sd_post * sd_pre


def mean_change(m_pre, m_post, sd_pre, sd_post, r, n):
    """Raw mean change ``post - pre`` with variance
    ``(sd_post² + sd_pre² - 2 r sd_post sd_pre)/n`` (Gibbons et al. 1993,
    Arch Gen Psychiatry 50:739)."""
    return m_post - m_pre, _var_change(sd_post, sd_pre, r) / n


def smd_change_score(m_pre, m_post, sd_pre, sd_post, r, n):
    """Standardised mean change with change-score standardisation:
    ``c(n-1) (post - pre)/sd_change``, ``sd_change² = sd_post² + sd_pre² - 2 r
    sd_post sd_pre``, variance ``1/n + g²/(2n)`` (Gibbons et al. 1993; metafor
    ``vtype="LS"``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        g = bias_correction(n - 1) * (m_post - m_pre) / np.sqrt(_var_change(sd_post, sd_pre, r))
    return g, 1 / n + g**2 / (2 * n)


def smd_change_raw(m_pre, m_post, sd_pre, r, n):
    """Standardised mean change with raw-score standardisation:
    ``c(n-1) (post - pre)/sd_pre``, variance ``2(1-r)/n + g²/(2n)`` (Becker 1988,
    Br J Math Stat Psychol 41:257; Morris 2000, Psychol Methods 5:209; metafor
    ``vtype="LS"``)."""
    g = bias_correction(n - 1) * (m_post - m_pre) / sd_pre
    return g, 2 * (1 - r) / n + g**2 / (2 * n)


def log_ratio_of_means_change(m_pre, m_post, sd_pre, sd_post, r, n):
    """Log ratio of means ``log(post/pre)`` for dependent samples, variance
    ``sd_post²/(n post²) + sd_pre²/(n pre²) - 2 r sd_post sd_pre/(post pre n)``
    (Lajeunesse 2011, Ecology 92:2049, eq. 6)."""
    yi = np.log(m_post / m_pre)
    vi = (sd_post**2 / (n * m_post**2) + sd_pre**2 / (n * m_pre**2)
          - 2 * r * sd_post * sd_pre / (m_post * m_pre * n))
    return yi, vi


def compute_mean(rows: Rows, measure, *, labels) -> Computed:
    """Check ``mean,sd,total`` and compute MN or MNLN for every row."""
    a = rows.a
    rows.whole(("total",), "total")
    rows.positive(("total",), "total")
    rows.positive(("sd",), "SD")
    if measure == "MNLN":
        rows.positive(("mean",), "a mean for the log mean (MNLN)")
    fn = raw_mean if measure == "MN" else log_mean
    yi, vi = fn(a["mean"], a["sd"], a["total"])
    yi, vi, excluded = exclude_not_estimable(rows, yi, vi, np.ones(len(yi), bool), labels, measure,
                                             "value not finite")
    return Computed(yi, vi, [], excluded)


def compute_change(rows: Rows, measure, *, labels) -> Computed:
    """Check the pre-post columns and compute MC, SMCC, SMCR or ROMC for every row.

    ``r_prepost`` must lie in [-1, 1]; SMCC and SMCR need at least 3
    participants (the bias correction uses n - 1 > 1); ROMC needs positive means.
    A study whose change variance is 0 (e.g. r = 1 with equal SDs) is excluded
    with the reason.
    """
    a = rows.a
    rows.whole(("total",), "total")
    rows.positive(("total",), "total")
    rows.positive(("sd_pre",) if measure == "SMCR" else ("sd_pre", "sd_post"), "SD")
    rows.correlation("r_prepost", "pre-post correlation", closed=True)
    if measure in ("SMCC", "SMCR"):
        i = rows.first(a["total"] < 3)
        if i is not None:
            rows.fail(i, "total", f"{measure} needs at least 3 participants (got {a['total'][i]:g})")
    if measure == "ROMC":
        rows.positive(("mean_pre", "mean_post"), "a mean for the ratio of means (ROMC)")
    if measure == "SMCR":
        yi, vi = smd_change_raw(a["mean_pre"], a["mean_post"], a["sd_pre"], a["r_prepost"], a["total"])
    else:
        fn = {"MC": mean_change, "SMCC": smd_change_score, "ROMC": log_ratio_of_means_change}[measure]
        yi, vi = fn(a["mean_pre"], a["mean_post"], a["sd_pre"], a["sd_post"], a["r_prepost"], a["total"])
    yi, vi, excluded = exclude_not_estimable(rows, yi, vi, np.ones(len(yi), bool), labels, measure,
                                             "the variance of the change is 0")
    return Computed(yi, vi, [], excluded)
