"""Small-study effects: Egger's regression test, Begg's rank correlation test and trim-and-fill.

As metafor 3.8's ``regtest``, ``ranktest`` and ``trimfill``, checked against it
in ``tests/test_diagnostics.py``; Henmi-Copas and fail-safe N are in
:mod:`metarepro.publication_bias`.

References
----------
Egger M, Davey Smith G, Schneider M, Minder C (1997). Bias in meta-analysis
detected by a simple, graphical test. BMJ 315:629-634.
Begg CB, Mazumdar M (1994). Operating characteristics of a rank correlation
test for publication bias. Biometrics 50:1088-1101.
Duval S, Tweedie R (2000). Trim and fill: a simple funnel-plot-based method of
testing and adjusting for publication bias in meta-analysis. Biometrics
56:455-463.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from . import _core
from . import _dist as stats
from ._studies import _iv, _pool_gen, _resolve
from .errors import InputError
from .metareg import fit_batch
from .pooling import PoolResult, _clean

#: Cochrane Handbook for Systematic Reviews of Interventions, version 6.4 (2023), section 13.3.5.4.
SMALL_STUDY_CAUTION = (
    "As a rule of thumb, tests for funnel plot asymmetry should be used only when there are at least "
    "10 studies "
    "included in the meta-analysis, because when there are fewer studies the power of the tests is "
    "too low to distinguish chance from real asymmetry (Cochrane Handbook, section 13.3.5.4)."
)


def small_study_caution(k: int) -> str | None:
    """The Cochrane Handbook caution for funnel-asymmetry tests when ``k < 10``.

    Parameters
    ----------
    k : int
        Number of studies.

    Returns
    -------
    str or None
        :data:`SMALL_STUDY_CAUTION` (with k) when fewer than 10 studies, else None.

    References
    ----------
    Page MJ, Higgins JPT, Sterne JAC (2023). Chapter 13: Assessing risk of bias
    due to missing results in a synthesis. In: Cochrane Handbook for Systematic
    Reviews of Interventions, version 6.4, section 13.3.5.4.
    Sterne JAC et al. (2011). Recommendations for examining and interpreting
    funnel plot asymmetry in meta-analyses of randomised controlled trials. BMJ 343:d4002.
    """
    if k < 10:
        return f"k = {k} < 10. " + SMALL_STUDY_CAUTION
    return None


# --------------------------------------------------------------------------
# small-study effects
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class EggerTest:
    """Regression test for funnel-plot asymmetry (metafor ``regtest``).

    ``statistic``/``pvalue`` test the predictor (z, or t on ``df`` df);
    ``limit_estimate`` and its interval are the intercept: the expected effect
    of a study with standard error 0 (Stanley & Doucouliagos 2014's PET estimate).
    ``caution`` is the Cochrane Handbook caution when k < 10.
    """

    model: str
    predictor: str
    method: str
    test: str
    k: int
    statistic: float
    df: float | None
    pvalue: float
    slope: float
    slope_se: float
    limit_estimate: float
    limit_ci_lower: float
    limit_ci_upper: float
    caution: str | None

    def to_dict(self) -> dict:
        return {k: _clean(v) for k, v in asdict(self).items()}


def egger_test(
    data,
    vi=None,
    *,
    model: str = "rma",
    predictor: str = "sei",
    method: str | None = None,
    test: str | None = None,
    level: float | None = None,
    measure: str | None = None,
    **pool_kw,
) -> EggerTest:
    """Egger's regression test for funnel-plot asymmetry, as metafor's ``regtest``.

    ``model="rma"`` fits the meta-regression ``y_i = b0 + b1 sei_i + u_i + e_i``
    with the model's tau² estimator and test (z, or Knapp-Hartung t on k-2 df);
    ``model="lm"`` is Egger's original weighted least-squares regression
    (weights 1/v, free residual scale, t on k-2 df), which equals the
    common-effect meta-regression with the Knapp-Hartung scale. The test is on
    ``b1``; ``b0`` is the limit estimate.

    Parameters
    ----------
    data : PoolResult, DataFrame or array_like
    model : {"rma", "lm"}
    predictor : {"sei", "vi"}
        Standard error (Egger) or sampling variance (PEESE-type) as predictor.

    References
    ----------
    Egger M, Davey Smith G, Schneider M, Minder C (1997). Bias in meta-analysis
    detected by a simple, graphical test. BMJ 315:629-634.
    Sterne JAC, Egger M (2005). Regression methods to detect publication and
    other bias in meta-analysis. In: Publication Bias in Meta-Analysis, Wiley, 99-110.
    """
    d = _resolve(data, vi, method=method, test=test, level=level, measure=measure, pool_kw=pool_kw)
    if model not in ("rma", "lm"):
        raise InputError(f"unknown model '{model}' (rma or lm)")
    if predictor not in ("sei", "vi"):
        raise InputError(f"unknown predictor '{predictor}' (sei or vi)")
    k = d.yi.size
    if k < 3:
        raise InputError("the regression test needs at least 3 studies")
    pred = np.sqrt(d.vi) if predictor == "sei" else d.vi
    X = np.column_stack([np.ones(k), pred])
    meth, tst = (_iv(d.method), d.test) if model == "rma" else ("FE", "knha")
    r = fit_batch(d.yi[None], d.vi[None], X, method=meth, test=tst, level=d.level, btt=[1])
    return EggerTest(
        model=model,
        predictor=predictor,
        method=meth,
        test=tst if model == "rma" else "t",
        k=k,
        statistic=float(r["zval"][0, 1]),
        df=r["ddf"],
        pvalue=float(r["pval"][0, 1]),
        slope=float(r["beta"][0, 1]),
        slope_se=float(r["se"][0, 1]),
        limit_estimate=float(r["beta"][0, 0]),
        limit_ci_lower=float(r["ci_lb"][0, 0]),
        limit_ci_upper=float(r["ci_ub"][0, 0]),
        caution=small_study_caution(k),
    )


@dataclass(frozen=True)
class RankTest:
    """Begg and Mazumdar's rank correlation test (metafor ``ranktest``)."""

    k: int
    tau: float
    pvalue: float
    exact: bool
    statistic: float
    caution: str | None

    def to_dict(self) -> dict:
        return {k: _clean(v) for k, v in asdict(self).items()}


def _kendall_null(n: int) -> np.ndarray:
    """Null distribution of the number of concordant pairs among n untied
    observations: ``P(T = c)``, c = 0..n(n-1)/2 (Mahonian numbers / n!)."""
    prob = np.array([1.0])
    for j in range(2, n + 1):
        # adding the j-th element adds 0..j-1 concordant pairs, each equally likely
        c = np.concatenate([[0.0], np.cumsum(prob)])
        m = prob.size + j - 1
        hi = np.minimum(np.arange(m) + 1, prob.size)
        lo = np.maximum(np.arange(m) - j + 1, 0)
        prob = (c[hi] - c[lo]) / j
    return prob


def _kendall(x, y, exact=True):
    """Kendall's tau-b and its two-sided p-value as R's ``cor.test(method="kendall")``:
    exact null distribution without ties, else the normal approximation with the
    tie-corrected variance (Kendall 1970), no continuity correction."""
    n = x.size
    sx = np.sign(x[:, None] - x[None, :])
    sy = np.sign(y[:, None] - y[None, :])
    iu = np.triu_indices(n, 1)
    S = float(np.sum(sx[iu] * sy[iu]))
    _, tx = np.unique(x, return_counts=True)
    _, ty = np.unique(y, return_counts=True)
    T0 = n * (n - 1) / 2
    T1 = np.sum(tx * (tx - 1)) / 2
    T2 = np.sum(ty * (ty - 1)) / 2
    tau = S / math.sqrt((T0 - T1) * (T0 - T2))
    ties = min(tx.size, ty.size) < n
    if exact and not ties:
        q = int(np.round((tau + 1) * n * (n - 1) / 4))
        dist = _kendall_null(n)
        if q > n * (n - 1) / 4:
            p = dist[q:].sum()
        else:
            p = dist[: q + 1].sum()
        return tau, min(1.0, 2 * p), True, float(q)
    v0 = n * (n - 1) * (2 * n + 5)
    vt = np.sum(tx * (tx - 1) * (2 * tx + 5))
    vu = np.sum(ty * (ty - 1) * (2 * ty + 5))
    v1 = np.sum(tx * (tx - 1)) * np.sum(ty * (ty - 1))
    v2 = np.sum(tx * (tx - 1) * (tx - 2)) * np.sum(ty * (ty - 1) * (ty - 2))
    var_s = (v0 - vt - vu) / 18 + v1 / (2 * n * (n - 1)) + v2 / (9 * n * (n - 1) * (n - 2))
    z = S / math.sqrt(var_s)
    return tau, float(2 * min(stats.norm.cdf(z), stats.norm.sf(z))), False, z


def begg_test(data, vi=None, *, exact: bool = True, measure: str | None = None, **pool_kw) -> RankTest:
    """Rank correlation test for funnel-plot asymmetry (Begg & Mazumdar 1994),
    as metafor's ``ranktest``.

    The standardised effects ``(y_i - mu_FE) / sqrt(v_i - 1/sum w)`` (``mu_FE``
    the common-effect mean, whatever model was fitted, as metafor) are
    correlated with ``v_i`` by Kendall's tau-b. The p-value is exact (the null
    distribution of the concordant-pair count) when there are no ties and
    ``exact`` is True (metafor's default, for any k); otherwise the normal
    approximation with tie-corrected variance. ``statistic`` is the concordant
    count (exact) or z.

    References
    ----------
    Begg CB, Mazumdar M (1994). Operating characteristics of a rank correlation
    test for publication bias. Biometrics 50:1088-1101.
    """
    d = _resolve(data, vi, measure=measure, pool_kw=pool_kw)
    y, v = d.yi, d.vi
    k = y.size
    if k < 3:
        raise InputError("the rank correlation test needs at least 3 studies")
    w = 1 / v
    theta = np.sum(w * y) / np.sum(w)
    ystar = (y - theta) / np.sqrt(v - 1 / np.sum(w))
    tau, p, ex, stat = _kendall(ystar, v, exact)
    return RankTest(
        k=k, tau=float(tau), pvalue=float(p), exact=ex, statistic=float(stat), caution=small_study_caution(k)
    )


@dataclass(frozen=True)
class TrimFillResult:
    """Trim and fill (metafor ``trimfill``).

    Attributes
    ----------
    side : {"left", "right"}
        Side of the funnel where studies are estimated to be missing.
    k0, se_k0, p_k0 :
        Estimated number of missing studies, its standard error, and (R0 only)
        the p-value of the test of k0 = 0.
    filled : DataFrame
        The imputed studies (``study, yi, vi``), mirror images ``2 mu - y`` of the
        k0 most extreme studies around the trimmed estimate mu.
    result : PoolResult
        The model refitted on observed plus filled studies (the original fit when k0 = 0).
    original : PoolResult
        The fit on the observed studies.
    """

    estimator: str
    side: str
    k0: int
    se_k0: float
    p_k0: float | None
    filled: pd.DataFrame
    result: PoolResult = field(repr=False)
    original: PoolResult = field(repr=False)
    caution: str | None = None

    def to_dict(self) -> dict:
        return {
            "estimator": self.estimator,
            "side": self.side,
            "k0": self.k0,
            "se_k0": _clean(self.se_k0),
            "p_k0": _clean(self.p_k0),
            "caution": self.caution,
            "filled": [{k: _clean(v) for k, v in r.items()} for r in self.filled.to_dict(orient="records")],
            "result": self.result.to_dict(),
            "original": self.original.to_dict(),
        }


def _mu(y, v, method):
    seg = _core.Segments(np.zeros(y.size, np.intp), 1)
    t, _, _ = _core.estimate_tau2(seg, y, v, method)
    w = 1 / (v + t[0])
    return float(np.sum(w * y) / np.sum(w))


def _ordinal_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties broken by order of appearance: ``scipy.stats.rankdata(x,
    method="ordinal")`` and R's ``rank(x, ties.method="first")``, without
    importing scipy.stats for one argsort."""
    ranks = np.empty(x.size, dtype=float)
    ranks[np.argsort(x, kind="stable")] = np.arange(1, x.size + 1)
    return ranks


def trim_and_fill(
    data,
    vi=None,
    *,
    estimator: str = "L0",
    side: str | None = None,
    labels=None,
    method: str | None = None,
    test: str | None = None,
    refit_test: str = "z",
    level: float | None = None,
    measure: str | None = None,
    maxiter: int = 100,
    **pool_kw,
) -> TrimFillResult:
    """Duval and Tweedie's trim-and-fill method, as metafor's ``trimfill``.

    The side is estimated as metafor does (missing on the right if the slope of
    the meta-regression of y on sqrt(v), fitted with the same tau² estimator,
    is negative, else on the left). Then iteratively: pool the k - k0 least
    extreme studies, rank the centred effects ``|y - mu|`` (ties by order) and
    estimate k0 with L0, R0 or Q0, rounded (half to even, as R) and truncated at
    0, until k0 stops changing. The k0 most extreme studies are mirrored around
    the last trimmed estimate and the model is refitted on all k + k0 studies.

    Parameters
    ----------
    estimator : {"L0", "R0", "Q0"}
    side : {"left", "right"}, optional
        Where studies are missing; estimated when None.
    method, test :
        Model of the original fit (MH/Peto: FE). metafor's trimfill refits the
        filled data with ``test="z"`` (it does not pass the test on); ``refit_test``
        keeps that default. When k0 = 0 metafor returns the original fit (with
        its own test), and so does this function.

    References
    ----------
    Duval S, Tweedie R (2000). Trim and fill: a simple funnel-plot-based method
    of testing and adjusting for publication bias in meta-analysis.
    Biometrics 56:455-463. Duval S, Tweedie R (2000). A nonparametric "trim and
    fill" method of accounting for publication bias in meta-analysis. JASA 95:89-98.
    """
    d = _resolve(
        data, vi, labels=labels, method=method, test=test, level=level, measure=measure, pool_kw=pool_kw
    )
    if estimator not in ("L0", "R0", "Q0"):
        raise InputError(f"unknown estimator '{estimator}' (L0, R0 or Q0)")
    meth = _iv(d.method)
    y0, v0 = d.yi, d.vi
    k = y0.size
    if k < 2:
        raise InputError("trim and fill needs at least 2 studies")
    if side is None:
        X = np.column_stack([np.ones(k), np.sqrt(v0)])
        slope = fit_batch(y0[None], v0[None], X, method=meth)["beta"][0, 1]
        side = "right" if slope < 0 else "left"
    elif side not in ("left", "right"):
        raise InputError(f"side must be left or right, not '{side}'")
    ys = -y0 if side == "right" else y0.copy()
    ix = np.argsort(ys, kind="stable")
    ys, vs = ys[ix], v0[ix]
    k0, k0_prev, it = 0, -1, 0
    se_k0 = float("nan")
    beta = float("nan")
    while k0 != k0_prev:
        k0_prev = k0
        it += 1
        if it > maxiter:
            raise InputError("trim and fill did not converge")
        beta = _mu(ys[: k - k0], vs[: k - k0], meth)
        yc = ys - beta
        signed = np.sign(yc) * _ordinal_ranks(np.abs(yc))
        if estimator == "R0":
            neg = signed[signed < 0]
            kk = (k - (np.max(-neg) if neg.size else 0)) - 1
            se = math.sqrt(2 * max(0, kk) + 2)
        else:
            Sr = float(np.sum(signed[signed > 0]))
            if estimator == "L0":
                kk = (4 * Sr - k * (k + 1)) / (2 * k - 1)
            else:
                kk = k - 0.5 - math.sqrt(2 * k**2 - 4 * Sr + 0.25)
            var_sr = (
                k * (k + 1) * (2 * k + 1)
                + 10 * kk**3
                + 27 * kk**2
                + 17 * kk
                - 18 * k * kk**2
                - 18 * k * kk
                + 6 * k**2 * kk
            ) / 24
            root = math.sqrt(var_sr) if var_sr >= 0 else float("nan")
            se = (
                4 * root / (2 * k - 1)
                if estimator == "L0"
                else 2 * root / math.sqrt((k - 0.5) ** 2 - kk * (2 * k - kk - 1))
            )
        k0 = int(max(0, np.round(kk)))
        se_k0 = max(0.0, se) if not math.isnan(se) else se
    original = _pool_gen(y0, v0, d.labels, meth, d.test, d.level, measure=d.measure)
    p_k0 = 0.5 ** (k0 + 1) if estimator == "R0" else None
    if k0 > 0:
        mirrored = 2 * beta - ys[k - k0 :]  # working scale
        yf = -mirrored if side == "right" else mirrored
        vf = vs[k - k0 :]
        names = [f"Filled {j}" for j in range(1, k0 + 1)]
        filled = pd.DataFrame({"study": names, "yi": yf, "vi": vf})
        result = _pool_gen(
            np.concatenate([y0, yf]),
            np.concatenate([v0, vf]),
            np.concatenate([d.labels, names]),
            meth,
            refit_test,
            d.level,
            measure=d.measure,
        )
    else:
        filled = pd.DataFrame({"study": [], "yi": [], "vi": []})
        result = original
    return TrimFillResult(
        estimator=estimator,
        side=side,
        k0=k0,
        se_k0=se_k0,
        p_k0=p_k0,
        filled=filled,
        result=result,
        original=original,
        caution=small_study_caution(k),
    )


__all__ = ["SMALL_STUDY_CAUTION", "EggerTest", "RankTest", "TrimFillResult", "begg_test", "egger_test", "small_study_caution", "trim_and_fill"]
