"""Egger's regression test for funnel-plot asymmetry.

The regression is an ordinary weighted least-squares fit, which statsmodels'
``WLS`` does correctly, so it is used here rather than written by hand.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import statsmodels.api as sm
from scipy import stats


@dataclass(frozen=True)
class EggerResult:
    """Egger's test: the slope on the standard error and the limit estimate.

    Attributes
    ----------
    model : str
        ``"lm"`` (classic: weighted regression with a free residual scale, t on
        k-2 df) or ``"fe"`` (residual scale fixed at 1, z test; metafor's
        ``regtest(model="rma")`` on a common-effect fit).
    statistic, pvalue, df : float
        Test of the slope on ``sei`` (asymmetry); ``df`` is None for z tests.
    estimate, ci_lower, ci_upper : float
        The limit estimate (intercept: the effect as the standard error goes to 0).
    """

    model: str
    statistic: float
    pvalue: float
    df: float | None
    estimate: float
    ci_lower: float
    ci_upper: float
    k: int

    def to_dict(self) -> dict:
        return asdict(self)


def egger_test(yi, vi, model: str = "lm", level: float = 95) -> EggerResult:
    """Egger's regression test (Egger et al. 1997, BMJ 315:629), in the form of
    metafor's ``regtest`` with predictor ``sei``: ``yi = b0 + b1 sei`` with
    weights ``1/vi``; the test is on ``b1``.

    Parameters
    ----------
    yi, vi : array_like
        Study effects and sampling variances.
    model : {"lm", "fe"}
        ``"lm"``: the classic test, residual scale estimated, t on k-2 df
        (``regtest(model="lm")``). ``"fe"``: scale fixed at 1, z test
        (``regtest(model="rma")`` of a common-effect model).
    level : float
        Confidence level (percent) of the limit estimate's interval.

    Raises
    ------
    ValueError
        With fewer than 3 studies (the regression has no residual df).
    """
    yi = np.asarray(yi, float)
    vi = np.asarray(vi, float)
    k = yi.size
    if k < 3:
        raise ValueError("Egger's test needs at least 3 studies")
    X = sm.add_constant(np.sqrt(vi), has_constant="add")
    if model == "lm":
        fit = sm.WLS(yi, X, weights=1 / vi).fit()
        df = k - 2
        crit = stats.t.isf((1 - level / 100) / 2, df)
        pval = float(fit.pvalues[1])
    elif model == "fe":
        fit = sm.WLS(yi, X, weights=1 / vi).fit(cov_type="fixed scale", cov_kwds={"scale": 1.0})
        df = None
        crit = stats.norm.isf((1 - level / 100) / 2)
        pval = float(2 * stats.norm.sf(abs(fit.tvalues[1])))
    else:
        raise ValueError(f"unknown model '{model}' (lm or fe)")
    b0, se0 = float(fit.params[0]), float(fit.bse[0])
    return EggerResult(model=model, statistic=float(fit.tvalues[1]), pvalue=pval, df=df, estimate=b0,
                       ci_lower=b0 - crit * se0, ci_upper=b0 + crit * se0, k=k)
