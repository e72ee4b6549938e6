"""Vectorised meta-analysis arithmetic over many analyses at once.

All functions work on *flat* arrays of studies (``yi``, ``vi``) with an integer
``group`` array saying which analysis each study belongs to. Per-analysis sums
are ``numpy.bincount(group, weights=x)``, so one call fits thousands of
meta-analyses with no Python loop over analyses. Iterative estimators update
every analysis that has not yet converged in the same sweep; root searches use
SciPy's elementwise (vectorised) Chandrupatla solver.

This arithmetic is written here rather than taken from statsmodels because
statsmodels' ``combine_effects`` fits one analysis per call, leaves the
DerSimonian-Laird tau² untruncated (negative tau² and I²) and drops the
convergence flag of its iterative estimator; none of the Python libraries we
know of offers REML/ML/PM/EB/SJ/HE/HS, Knapp-Hartung and Q-profile intervals
vectorised over analyses.
"""

from __future__ import annotations

import numpy as np

from . import _dist as stats

#: Convergence threshold on tau² for Fisher scoring (metafor's default is 1e-5;
#: a much tighter value keeps small tau² (e.g. risk differences, tau² ~ 1e-4)
#: accurate in relative terms; stragglers go to the root search).
THRESHOLD = 1e-13
MAXITER = 1000
#: metafor's ``con$tol`` (``.Machine$double.eps^0.25``) for its ML/REML check of tau² = 0.
LL0_TOL = np.finfo(float).eps ** 0.25
_ROOT_TOL = {"xatol": 1e-14, "xrtol": 1e-14}


def find_root(*args, **kwargs):
    """SciPy's ``optimize.elementwise.find_root``, imported on first use.

    Importing ``scipy.optimize`` (which imports ``scipy.stats``) costs about
    0.5 s; pipeline jobs of analyses without per-trial data never search a root.
    """
    from scipy.optimize import elementwise

    return elementwise.find_root(*args, **kwargs)


class Segments:
    """Studies of many analyses, stored flat.

    Parameters
    ----------
    group : ndarray of int
        Analysis index (0 .. n_groups-1) of each study.
    n_groups : int
    """

    def __init__(self, group: np.ndarray, n_groups: int):
        self.g = np.asarray(group, dtype=np.intp)
        self.G = int(n_groups)
        self.k = np.bincount(self.g, minlength=self.G).astype(float)

    def sum(self, x: np.ndarray) -> np.ndarray:
        """Per-analysis sums of a per-study array."""
        return np.bincount(self.g, weights=x, minlength=self.G)

    def subset(self, gid: np.ndarray):
        """Rows belonging to the analyses ``gid`` and their position in ``gid``."""
        pos = np.full(self.G, -1, dtype=np.intp)
        pos[gid] = np.arange(gid.size)
        local = pos[self.g]
        rows = np.flatnonzero(local >= 0)
        return rows, local[rows]


# --------------------------------------------------------------------------
# Generalised Q and the pieces of the projection matrix P (intercept-only model)
# --------------------------------------------------------------------------

def weighted_mean(seg, yi, w):
    sw = seg.sum(w)
    return seg.sum(w * yi) / sw, sw


def q_statistic(seg, yi, vi, tau2):
    """Generalised Cochran Q, ``sum w (y - mu_w)^2`` with ``w = 1/(v + tau2)``."""
    w = 1.0 / (vi + tau2[seg.g])
    mu, _ = weighted_mean(seg, yi, w)
    return seg.sum(w * (yi - mu[seg.g]) ** 2)


def _q_compact(c, t):
    """Generalised Q of the analyses of a :class:`Compact` at tau² = t."""
    w = 1.0 / (c.v + t[c.loc])
    sw = c.sum(w)
    mu = c.sum(w * c.y) / sw
    return c.sum(w * (c.y - mu[c.loc]) ** 2)


def solve_q(seg, yi, vi, gid, target, lower, upper):
    """Solve ``Q(tau2) = target`` for the analyses ``gid`` (Q decreases in tau2).

    ``lower``/``upper`` must bracket the root. SciPy's elementwise Chandrupatla
    solver works on all analyses at once. Returns ``(root, success)``.
    """
    if gid.size == 0:
        return np.empty(0), np.empty(0, bool)
    c = Compact.of(seg, yi, vi, gid)
    tgt = np.asarray(target, float)

    def f(t, idx):
        idx = np.asarray(idx, dtype=np.intp)
        sub = c if idx.size == c.n else c.take(idx)
        return _q_compact(sub, np.asarray(t, float)) - tgt[idx]

    res = find_root(f, (lower, upper), args=(np.arange(gid.size),), tolerances=_ROOT_TOL)
    return np.asarray(res.x, float), np.asarray(res.success, bool)


def _bracket_upper(seg, yi, vi, gid, target, start):
    """Grow an upper bound until ``Q(upper) < target`` (at most 30 decades)."""
    c = Compact.of(seg, yi, vi, gid)
    hi = np.array(start, float)
    for _ in range(30):
        low = _q_compact(c, hi) > target
        if not low.any():
            break
        hi = np.where(low, hi * 10, hi)
    return hi


# --------------------------------------------------------------------------
# tau² estimators. Each returns (tau2, converged) arrays of length n_groups.
# --------------------------------------------------------------------------

def tau2_dl(seg, yi, vi):
    """DerSimonian & Laird (1986, Control Clin Trials 7:177) moment estimator,
    truncated at zero: ``max(0, (Q - (k-1)) / (sum w - sum w²/sum w))``."""
    w = 1.0 / vi
    sw = seg.sum(w)
    q = q_statistic(seg, yi, vi, np.zeros(seg.G))
    tr_p = sw - seg.sum(w * w) / sw
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (q - (seg.k - 1)) / tr_p
    return np.maximum(0.0, np.nan_to_num(t, nan=0.0)), np.ones(seg.G, bool)


def tau2_he(seg, yi, vi):
    """Hedges (1983) / Hedges & Olkin (1985) unweighted moment estimator:
    ``max(0, sum (y - ybar)² / (k-1) - mean(v))``."""
    ybar = seg.sum(yi) / seg.k
    rss = seg.sum((yi - ybar[seg.g]) ** 2)
    tr_pv = seg.sum(vi) * (1 - 1 / seg.k)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (rss - tr_pv) / (seg.k - 1)
    return np.maximum(0.0, np.nan_to_num(t, nan=0.0)), np.ones(seg.G, bool)


def tau2_hs(seg, yi, vi):
    """Hunter & Schmidt (2004) estimator ``max(0, (Q - k) / sum w)`` with ``w = 1/v``."""
    w = 1.0 / vi
    q = q_statistic(seg, yi, vi, np.zeros(seg.G))
    t = (q - seg.k) / seg.sum(w)
    return np.maximum(0.0, t), np.ones(seg.G, bool)


def tau2_sj(seg, yi, vi):
    """Sidik & Jonkman (2005, J Biopharm Stat 15:823) estimator.

    Start from ``tau0 = sum (y - ybar)² / k``, then ``tau0 * Q(tau0) / (k-1)``
    (one step, as metafor's ``method="SJ"``).
    """
    ybar = seg.sum(yi) / seg.k
    tau0 = seg.sum((yi - ybar[seg.g]) ** 2) / seg.k
    q = q_statistic(seg, yi, vi, tau0)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = tau0 * q / (seg.k - 1)
    return np.maximum(0.0, np.nan_to_num(t, nan=0.0)), np.ones(seg.G, bool)


def tau2_pm(seg, yi, vi):
    """Paule & Mandel (1982, J Res Natl Bur Stand 87:377) estimator: the root of
    ``Q(tau2) = k - 1``, or 0 when ``Q(0) < k - 1``.

    Also the empirical Bayes estimator of Morris (1983, JASA 78:47): for an
    intercept-only model metafor's EB update ``(Q k/(k-1) - k)/sum w`` has the
    same fixed point. The root is found by bracketing, which always converges;
    the bracket starts at 100 (metafor's ``tau2.max``) and widens as needed where
    metafor would stop with an error.
    """
    q0 = q_statistic(seg, yi, vi, np.zeros(seg.G))
    t = np.zeros(seg.G)
    conv = np.ones(seg.G, bool)
    need = np.flatnonzero((seg.k > 1) & (q0 >= seg.k - 1))
    if need.size:
        target = seg.k[need] - 1
        hi = _bracket_upper(seg, yi, vi, need, target, np.full(need.size, 100.0))
        root, ok = solve_q(seg, yi, vi, need, target, np.zeros(need.size), hi)
        t[need] = root
        conv[need] = ok
    return np.maximum(0.0, t), conv


class Compact:
    """The studies of a subset of analyses, renumbered 0..n-1 (for sweeps that
    shrink as analyses converge)."""

    def __init__(self, y, v, loc, n):
        self.y, self.v, self.loc, self.n = y, v, loc, int(n)

    @classmethod
    def of(cls, seg, yi, vi, gid):
        rows, loc = seg.subset(np.asarray(gid, dtype=np.intp))
        return cls(yi[rows], vi[rows], loc, len(gid))

    def sum(self, x):
        return np.bincount(self.loc, weights=x, minlength=self.n)

    def keep(self, mask):
        """Keep the analyses where ``mask`` (length n) is True."""
        rows = mask[self.loc]
        newpos = np.cumsum(mask) - 1
        return Compact(self.y[rows], self.v[rows], newpos[self.loc[rows]], int(mask.sum()))

    def take(self, idx):
        """Analyses ``idx`` (positions in this compact set), in that order."""
        pos = np.full(self.n, -1, dtype=np.intp)
        pos[idx] = np.arange(idx.size)
        lp = pos[self.loc]
        rows = lp >= 0
        return Compact(self.y[rows], self.v[rows], lp[rows], idx.size)


def _score(c: Compact, t, reml):
    """Fisher-scoring numerator and denominator for ML/REML at tau² = t.

    With ``w = 1/(v+t)``, ``r = y - mu_w`` and the projection matrix
    ``P = W - w w'/sum w``: ``y'PPy = sum w² r²``, ``tr P = sum w - sum w²/sum w``,
    ``tr PP = sum w² - 2 sum w³/sum w + (sum w²)²/(sum w)²``; the REML score is
    ``y'PPy - tr P`` with information ``tr PP``, the ML score ``y'PPy - sum w``
    with information ``sum w²`` (Viechtbauer 2005).
    """
    w = 1.0 / (c.v + t[c.loc])
    sw = c.sum(w)
    mu = c.sum(w * c.y) / sw
    w2 = w * w
    sw2 = c.sum(w2)
    ypppy = c.sum(w2 * (c.y - mu[c.loc]) ** 2)
    if reml:
        return ypppy - (sw - sw2 / sw), sw2 - 2 * c.sum(w2 * w) / sw + (sw2 / sw) ** 2
    return ypppy - sw, sw2


def loglik(seg, yi, vi, t, reml):
    """(Restricted) log-likelihood of the random-effects model at tau² = t
    (Viechtbauer 2005, J Educ Behav Stat 30:261, eq. 5 and 6)."""
    w = 1.0 / (vi + t[seg.g])
    mu, sw = weighted_mean(seg, yi, w)
    rss = seg.sum(w * (yi - mu[seg.g]) ** 2)
    logv = seg.sum(np.log(vi + t[seg.g]))
    if reml:
        return -0.5 * (seg.k - 1) * np.log(2 * np.pi) - 0.5 * logv - 0.5 * np.log(sw) - 0.5 * rss
    return -0.5 * seg.k * np.log(2 * np.pi) - 0.5 * logv - 0.5 * rss


#: Fisher-scoring sweeps before the remaining analyses are handed to the root search.
SCORING_SWEEPS = 100


def halve_to_nonnegative(t, adj):
    """metafor's step halving: halve a Fisher-scoring step while ``t + adj < 0``.

    A step from ``t = 0`` that points below zero becomes 0 (halving it would
    only underflow); after 64 halvings any remaining overshoot stops at 0.
    """
    adj = np.array(adj, float)
    adj[(t == 0) & (adj < 0)] = 0.0
    for _ in range(64):
        neg = t + adj < 0
        if not neg.any():
            break
        adj[neg] /= 2
    return np.where(t + adj < 0, -t, adj)


def tau2_ml_reml(seg, yi, vi, reml=True, threshold=THRESHOLD, sweeps=SCORING_SWEEPS):
    """ML or REML tau² (Viechtbauer 2005): Fisher scoring, then a root search.

    Fisher scoring starts at the truncated Hedges estimate, as metafor does; a
    step that would make tau² negative is halved until it does not. Each sweep
    updates only the analyses that have not converged (``|change| <= threshold``).
    Near the boundary tau² = 0 scoring converges only linearly, so analyses not
    converged after ``sweeps`` sweeps are finished by a bracketing root search
    (SciPy's Chandrupatla solver) of the same score equation, which converges
    whenever the score changes sign; where the score at 0 is not positive the
    estimate is 0. Finally tau² is set to 0 where the log-likelihood at 0 is
    higher (metafor's ``ll0check``).

    Returns
    -------
    tau2, converged, fallback : ndarray
        ``fallback`` marks analyses finished by the root search; ``converged``
        is False only where neither method reached the tolerance.
    """
    t, _ = tau2_he(seg, yi, vi)
    gid = np.flatnonzero(seg.k > 1)
    t = np.where(seg.k > 1, t, 0.0)
    c = Compact.of(seg, yi, vi, gid)
    ta = t[gid]
    for _ in range(sweeps):
        if gid.size == 0:
            break
        num, den = _score(c, ta, reml)
        with np.errstate(invalid="ignore", divide="ignore"):
            adj = np.nan_to_num(num / den, nan=0.0)
        adj = halve_to_nonnegative(ta, adj)
        new = ta + adj
        still = np.abs(adj) > threshold
        t[gid] = new
        ta = new
        if not still.all():
            gid, ta, c = gid[still], ta[still], c.keep(still)
    conv = np.ones(seg.G, bool)
    fallback = np.zeros(seg.G, bool)
    if gid.size:
        fallback[gid] = True
        root, ok = _score_root(c, reml)
        t[gid] = root
        conv[gid] = ok
    pos = t > threshold
    if pos.any():
        ll0 = loglik(seg, yi, vi, np.zeros(seg.G), reml)
        ll = loglik(seg, yi, vi, t, reml)
        t = np.where(pos & (ll0 - ll > LL0_TOL), 0.0, t)
    return np.maximum(0.0, t), conv, fallback


def _score_root(c: Compact, reml):
    """Root in tau² of the ML/REML score for every analysis of ``c``."""
    out = np.zeros(c.n)
    ok = np.ones(c.n, bool)

    def score(tt, idx):
        sub = c.take(np.asarray(idx, dtype=np.intp))
        return _score(sub, np.asarray(tt, float), reml)[0]

    idx = np.arange(c.n)
    need = score(np.zeros(c.n), idx) > 0
    if need.any():
        sub = idx[need]
        hi = np.full(sub.size, 10.0)
        for _ in range(30):
            up = score(hi, sub) > 0
            if not up.any():
                break
            hi[up] *= 10
        res = find_root(score, (np.zeros(sub.size), hi), args=(sub,), tolerances=_ROOT_TOL)
        out[sub] = res.x
        ok[sub] = res.success
    return out, ok




def estimate_tau2(seg, yi, vi, method):
    """Dispatch to a tau² estimator; returns ``(tau2, converged, fallback)``."""
    none = np.zeros(seg.G, bool)
    if method == "FE":
        return np.zeros(seg.G), np.ones(seg.G, bool), none
    if method in ("REML", "ML"):
        return tau2_ml_reml(seg, yi, vi, reml=method == "REML")
    fn = {"DL": tau2_dl, "HE": tau2_he, "HS": tau2_hs, "SJ": tau2_sj,
          "PM": tau2_pm, "EB": tau2_pm}[method]
    t, conv = fn(seg, yi, vi)
    t = np.where(seg.k > 1, t, 0.0)  # metafor: tau² = 0 when k = 1
    return t, conv, none


# --------------------------------------------------------------------------
# Heterogeneity: Q, I², H² and the Q-profile interval
# --------------------------------------------------------------------------

def heterogeneity(seg, yi, vi, tau2, common):
    """Cochran's Q (on 1/v weights), its p-value, I² and H² as metafor computes them.

    For random-effects fits ``I² = 100 tau²/(vt + tau²)`` and ``H² = tau²/vt + 1``
    with the "typical" within-study variance ``vt = (k-1)/(sum w - sum w²/sum w)``
    (Higgins & Thompson 2002, Stat Med 21:1539); for common-effect fits
    ``I² = max(0, 100 (Q - df)/Q)`` and ``H² = Q/df``. With k = 1: Q = 0, p = 1,
    I² = 0, H² = 1.
    """
    w = 1.0 / vi
    sw = seg.sum(w)
    q = np.maximum(0.0, q_statistic(seg, yi, vi, np.zeros(seg.G)))
    df = seg.k - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        p = stats.chi2.sf(q, df)
        vt = df / (sw - seg.sum(w * w) / sw)
        if common:
            i2 = np.where(q > 0, np.maximum(0.0, 100 * (q - df) / q), 0.0)
            h2 = q / df
        else:
            i2 = 100 * tau2 / (vt + tau2)
            h2 = tau2 / vt + 1
    one = seg.k <= 1
    q, p, i2, h2, vt = (np.where(one, a, b) for a, b in
                        ((0.0, q), (1.0, p), (0.0, i2), (1.0, h2), (0.0, vt)))
    return {"q": q, "q_df": df, "q_pvalue": p, "i2": i2, "h2": h2, "vt": vt}


def q_profile(seg, yi, vi, tau2, vt, level):
    """Q-profile confidence interval for tau² (Viechtbauer 2007, Stat Med 26:37),
    with the matching bounds for I² and H², following metafor's ``confint()``.

    The bounds solve ``Q(tau2) = chi²_{k-1}`` quantiles; a bound below zero is
    truncated to 0. NaN when k < 2.

    metafor searches ``[0, max(100, 10 tau²)]`` and, when a bound lies beyond,
    prints that limit with a ">" sign. Here the bracket is widened tenfold at a
    time (up to 30 decades) until it holds the root, so a bound is always a
    root of the Q-profile equation (e.g. ``normand1999`` MD, HS: upper bound
    2889.45 where metafor prints ">1344.92"). Where even the widest bracket
    does not hold it, the bound is the search limit and its
    ``tau2_ci_*_censored`` flag is True (I² and H² bounds share the flag).
    """
    alpha = 1 - level / 100
    df = seg.k - 1
    G = seg.G
    lo = np.full(G, np.nan)
    hi = np.full(G, np.nan)
    cens_lo = np.zeros(G, bool)
    cens_hi = np.zeros(G, bool)
    ok = df >= 1
    with np.errstate(invalid="ignore"):
        crit_u = stats.chi2.isf(alpha / 2, df)
        crit_l = stats.chi2.ppf(alpha / 2, df)
    tmax = np.maximum(100.0, 10 * tau2)
    q0 = q_statistic(seg, yi, vi, np.zeros(G))
    # Q(tau²) falls from Q(0) towards 0: the upper bound solves Q = crit_l, the lower Q = crit_u.
    null = ok & (q0 < crit_l)  # even tau² = 0 fits "too well": the interval is {0}
    lo[null] = 0.0
    hi[null] = 0.0
    zero = ok & ~null & (q0 < crit_u)
    lo[zero] = 0.0
    for bound, crit, cens, need in ((hi, crit_l, cens_hi, ok & ~null), (lo, crit_u, cens_lo, ok & ~null & ~zero)):
        gid = np.flatnonzero(need)
        if gid.size == 0:
            continue
        top = _bracket_upper(seg, yi, vi, gid, crit[gid], tmax[gid])
        beyond = _q_compact(Compact.of(seg, yi, vi, gid), top) > crit[gid]
        bound[gid[beyond]] = top[beyond]
        cens[gid[beyond]] = True
        inside = gid[~beyond]
        if inside.size:
            bound[inside], _ = solve_q(seg, yi, vi, inside, crit[inside], np.zeros(inside.size), top[~beyond])
    with np.errstate(invalid="ignore", divide="ignore"):
        i2_lo, i2_hi = 100 * lo / (vt + lo), 100 * hi / (vt + hi)
        h2_lo, h2_hi = lo / vt + 1, hi / vt + 1
    return {"tau2_ci_lower": lo, "tau2_ci_upper": hi, "i2_ci_lower": i2_lo, "i2_ci_upper": i2_hi,
            "h2_ci_lower": h2_lo, "h2_ci_upper": h2_hi, "tau2_ci_lower_censored": cens_lo,
            "tau2_ci_upper_censored": cens_hi}


# --------------------------------------------------------------------------
# Inverse-variance pooling, Knapp-Hartung, prediction intervals
# --------------------------------------------------------------------------

def inverse_variance(seg, yi, vi, tau2, test, level):
    """Pooled estimate, SE, test and CI for given tau² (intercept-only model).

    ``test="knha"`` scales the variance by ``s² = sum w (y - mu)² / (k-1)`` and
    uses t on k-1 df (Hartung & Knapp 2001, Stat Med 20:3875; Sidik & Jonkman
    2002, Stat Med 21:3153), without truncation of the scale factor, as
    metafor's ``test="knha"``. When Q < k - 1 then s² < 1 and the interval can
    be narrower than the z interval, even than the common-effect one.
    ``test="adhoc"`` uses ``max(1, s²)`` instead, Knapp & Hartung's (2003, Stat
    Med 22:2693) ad hoc correction, so the standard error is never below the
    z test's (metafor's ``test="adhoc"``; recommended for few studies by
    Röver, Knapp & Friede 2015, BMC Med Res Methodol 15:99).
    """
    w = 1.0 / (vi + tau2[seg.g])
    mu, sw = weighted_mean(seg, yi, w)
    var = 1.0 / sw
    df = seg.k - 1
    t_test = test in ("knha", "adhoc")
    # metafor: "Setting argument test='z' since k=1"
    hk = (seg.k > 1) if t_test else np.zeros(seg.G, bool)
    if t_test:
        rss = seg.sum(w * (yi - mu[seg.g]) ** 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            s2w = np.where(rss <= np.finfo(float).eps, 0.0, rss / df)
        if test == "adhoc":
            s2w = np.maximum(1.0, s2w)
        var = np.where(hk, s2w * var, var)
    se = np.sqrt(var)
    alpha = 1 - level / 100
    with np.errstate(invalid="ignore", divide="ignore"):
        stat = mu / se
        dfp = np.where(hk & (df > 0), df, np.nan)
        crit = np.where(hk, stats.t.isf(alpha / 2, dfp), stats.norm.isf(alpha / 2))
        p = np.where(hk, 2 * stats.t.sf(np.abs(stat), dfp), 2 * stats.norm.sf(np.abs(stat)))
    weights = 100 * w / sw[seg.g]
    return {"estimate": mu, "se": se, "statistic": stat, "pvalue": p, "ci_lower": mu - crit * se,
            "ci_upper": mu + crit * se, "crit": crit, "df": dfp}, weights


def prediction_interval(est, se, tau2, crit, k, level):
    """Prediction interval as metafor's ``predict()`` (same critical value as the
    test: z, or t on k-1 df with knha), and the Higgins, Thompson &
    Spiegelhalter (2009, JRSS A 172:137) interval on t with k-2 df."""
    half = crit * np.sqrt(se**2 + tau2)
    alpha = 1 - level / 100
    with np.errstate(invalid="ignore"):
        dfh = np.where(k > 2, k - 2, np.nan)
        hts = stats.t.isf(alpha / 2, dfh) * np.sqrt(se**2 + tau2)
    return {"pi_lower": est - half, "pi_upper": est + half,
                "pi_hts_lower": est - hts, "pi_hts_upper": est + hts}


# --------------------------------------------------------------------------
# Mantel-Haenszel and Peto (from the uncorrected 2x2 counts)
# --------------------------------------------------------------------------

def mantel_haenszel(seg, ai, bi, ci, di, measure, *, rd_variance="sato", rr_one=None):
    """Mantel-Haenszel pooled log RR, log OR or RD with its standard error.

    OR: Mantel & Haenszel (1959, JNCI 22:719), variance of Robins, Breslow &
    Greenland (1986, Biometrics 42:311). RR: Greenland & Robins (1985,
    Biometrics 41:55). RD: variance of Sato, Greenland & Robins (1989,
    Biometrics 45:1323) as metafor's ``rma.mh`` (``rd_variance="sato"``), or of
    Greenland & Robins (1985) as RevMan 5 (``rd_variance="greenland-robins"``:
    ``sum (a b n2³ + c d n1³)/(n1 n2 N²) / (sum n1 n2/N)²``; Deeks & Higgins
    2010; R meta's ``metabin``).

    The cells are used as given: metafor's ``rma.mh`` passes the uncorrected
    counts (its ``add[2] = 0``); RevMan 5 passes, for RR and OR, the table with
    0.5 added to every cell of a zero-cell study, for RD the uncorrected
    counts, and zeros for the studies it does not estimate
    (:func:`metarepro.pooling.pool` builds both). ``rr_one``, if given, marks the
    RR tables whose risk ratio is 1 by RevMan's all-event rule (every
    participant with the event in both arms): their numerator term is their
    weight ``c n1 / N`` of the corrected table, so that they enter the pooled
    estimate with their displayed RR of 1 (as the weights RevMan prints in
    "M-H, Random" analyses require, e.g. CD002042 Analysis 1.1; the variance
    keeps the cells' terms).

    NaN where the estimate does not exist (e.g. no events in one arm of every
    study). Returns ``(beta, se, weights)`` with study weights in percent as
    metafor's ``weights()``.
    """
    n1, n2 = ai + bi, ci + di
    n = n1 + n2
    n = np.where(n > 0, n, 1.0)  # a study left out with all cells 0 then adds 0 to every sum
    S = seg.sum
    with np.errstate(invalid="ignore", divide="ignore"):
        if measure == "OR":
            p_, q_ = (ai + di) / n, (bi + ci) / n
            r_, s_ = ai * di / n, bi * ci / n
            R, Sx = S(r_), S(s_)
            beta = np.log(R / Sx)
            var = 0.5 * (S(p_ * r_) / R**2 + S(p_ * s_ + q_ * r_) / (R * Sx) + S(q_ * s_) / Sx**2)
            bad = (R == 0) | (Sx == 0)
            w = bi * ci / n
        elif measure == "RR":
            num = ai * n2 / n if rr_one is None else np.where(rr_one, ci * n1 / n, ai * n2 / n)
            R, Sx = S(num), S(ci * n1 / n)
            beta = np.log(R / Sx)
            var = S(n1 * n2 * (ai + ci) / n**2 - ai * ci / n) / (R * Sx)
            bad = (S(ai) == 0) | (S(ci) == 0)
            w = ci * n1 / n
        else:  # RD
            w = n1 * n2 / n
            L = S(w)
            beta = S(ai * n2 / n - ci * n1 / n) / L
            if rd_variance == "greenland-robins":
                var = S(np.where(w > 0, (ai * bi * n2**3 + ci * di * n1**3) / (n1 * n2 * n**2), 0.0)) / L**2
            else:
                var = (beta * S(ci * (n1 / n) ** 2 - ai * (n2 / n) ** 2 + (n1 / n) * (n2 / n) * (n2 - n1) / 2)
                       + S(ai * (n2 - ci) / n + ci * (n1 - ai) / n) / 2) / L**2
            bad = np.zeros(seg.G, bool)
        beta = np.where(bad, np.nan, beta)
        se = np.where(bad, np.nan, np.sqrt(var))
        weights = 100 * w / S(w)[seg.g]
    return beta, se, weights


def tau2_dl_about(seg, yi, vi, mu):
    """DerSimonian-Laird tau² from Cochran's Q about a given estimate ``mu``.

    ``Q = sum w (y - mu)²`` with ``w = 1/v``, then
    ``tau² = max(0, (Q - (k-1)) / (sum w - sum w²/sum w))`` (0 when k = 1).
    With ``mu`` the Mantel-Haenszel estimate this is RevMan 5's "M-H, Random"
    (Deeks & Higgins 2010, Statistical algorithms in Review Manager 5; R
    meta's ``hetcalc`` with ``TE.tau``, "Mantel-Haenszel estimator to calculate
    Q and tau (like RevMan 5)", ``Q.Cochrane = TRUE``). Returns ``(tau2, q)``.
    """
    w = 1.0 / vi
    sw = seg.sum(w)
    with np.errstate(invalid="ignore"):
        q = seg.sum(w * (yi - mu[seg.g]) ** 2)
    tr_p = sw - seg.sum(w * w) / sw
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (q - (seg.k - 1)) / tr_p
    t = np.where(seg.k > 1, np.maximum(0.0, np.nan_to_num(t, nan=0.0)), 0.0)
    return t, np.where(seg.k > 1, np.maximum(0.0, q), 0.0)


def peto(seg, ai, bi, ci, di):
    """Peto's pooled log odds ratio ``sum(O-E)/sum V``, SE ``1/sqrt(sum V)``, and
    its heterogeneity statistic ``sum (O-E)²/V - (sum(O-E))²/sum V`` over tables
    with ``V > 0`` (Yusuf et al. 1985). Returns ``(beta, se, q, weights)``."""
    n1, n2 = ai + bi, ci + di
    n = n1 + n2
    xt, yt = ai + ci, bi + di
    e = xt * n1 / n
    v = xt * yt * (n1 / n) * (n2 / n) / (n - 1)
    S = seg.sum
    sv = S(v)
    o_e = ai - e
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = np.where(sv > 0, S(o_e) / sv, np.nan)
        se = np.where(sv > 0, 1 / np.sqrt(sv), np.nan)
        q = np.maximum(0.0, S(np.where(v > 0, o_e**2 / np.where(v > 0, v, 1), 0.0)) - S(o_e) ** 2 / sv)
        weights = 100 * v / sv[seg.g]
    return beta, se, q, weights
