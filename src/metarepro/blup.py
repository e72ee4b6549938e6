"""Best linear unbiased predictions of the study effects (metafor ``blup``) and
of the random effects (metafor ``ranef``) of a random-effects model or
meta-regression.

With ``lambda_i = tau²/(tau² + v_i)`` the shrinkage factor, the BLUP of
study i's true effect is ``lambda_i y_i + (1 - lambda_i) x_i'b`` with variance
``lambda_i v_i + (1 - lambda_i)² x_i' Var(b) x_i``; its random effect is
``lambda_i (y_i - x_i'b)`` with variance ``lambda_i v_i + lambda_i² x_i'
Var(b) x_i``. Intervals use the critical value of the model's test (z, or t
on its df with Knapp-Hartung). For a common-effect model every ``lambda_i`` is
0: the BLUP is the pooled estimate and the random effects are 0.

A pooled table of many analyses (:class:`~metarepro.pooling.PoolTable`) is
done in one vectorised pass.

References
----------
Raudenbush SW, Bryk AS (1985). Empirical Bayes meta-analysis. J Educ Stat
10:75-98 (appendix).
Robinson GK (1991). That BLUP is a good thing: the estimation of random
effects. Stat Sci 6:15-32.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import _dist as stats
from .errors import InputError
from .metareg import MetaRegressionResult
from .pooling import PoolResult, PoolTable

COLUMNS = ("study", "pred", "se", "pi_lower", "pi_upper")


def _crit(test, df, level):
    alpha = 1 - level / 100
    with np.errstate(invalid="ignore"):
        t = stats.t.isf(alpha / 2, np.where(np.isfinite(df), df, 1.0))
    return np.where(np.isfinite(df) & (test != "z"), t, stats.norm.isf(alpha / 2))


def _pieces(result):
    """Per study: yi, vi, tau2, fitted x'b, x'Var(b)x, critical value (NaN rows for excluded studies)."""
    if isinstance(result, MetaRegressionResult):
        X = result.X.to_numpy(float)
        beta = result.coefficients["estimate"].to_numpy(float)
        fitted = X @ beta
        xvx = np.einsum("ij,jk,ik->i", X, result.vcov, X)
        df = np.nan if result.df is None else float(result.df)
        crit = np.full(result.k, _crit(result.test, np.array(df), result.level))
        return (np.arange(1, result.k + 1), result.yi, result.vi, np.full(result.k, result.tau2), fitted, xvx, crit,
                result.method, None)
    if isinstance(result, PoolTable):
        s, st = result.summary.set_index(result.by), result.studies
        g = st[result.by]
        get = lambda name: s[name].reindex(g).to_numpy(float)
        by = g.to_numpy()
    elif isinstance(result, PoolResult):
        st = result.studies
        get = lambda name: np.full(len(st), float(np.nan if getattr(result, name) is None else getattr(result, name)))
        by = None
    else:
        raise InputError("expected a pooled result (metarepro.pool) or a meta-regression")
    if result.method in ("MH", "PETO"):
        raise InputError(f"BLUPs need an inverse-variance model (FE or random effects), not {result.method}")
    est, se, df = get("estimate"), get("se"), get("df")
    crit = _crit(result.test, df, result.level)
    return (st["study"].to_numpy(), st["yi"].to_numpy(float), st["vi"].to_numpy(float), get("tau2"), est,
            se**2, crit, result.method, by)


def _frame(labels, pred, var, crit, by, by_name):
    se = np.sqrt(var)
    out = pd.DataFrame({"study": labels, "pred": pred, "se": se, "pi_lower": pred - crit * se,
                        "pi_upper": pred + crit * se})
    if by is not None:
        out.insert(0, by_name, by)
    return out


def blup(result, labels=None) -> pd.DataFrame:
    """BLUPs of the studies' true effects (metafor ``blup()``).

    Parameters
    ----------
    result : PoolResult, PoolTable or MetaRegressionResult
    labels : sequence, optional
        Study labels of a meta-regression's rows (default 1..k); pooled
        results carry their own.

    Returns
    -------
    DataFrame
        ``study, pred, se, pi_lower, pi_upper`` per study on the model scale
        (NaN for studies not in the model), plus the ``by`` column for a PoolTable.
    """
    own, y, v, tau2, fitted, xvx, crit, _, by = _pieces(result)
    labels = own if labels is None else np.asarray(labels)
    lam = tau2 / (tau2 + v)
    pred = lam * y + (1 - lam) * fitted
    var = lam * v + (1 - lam) ** 2 * xvx
    return _frame(labels, pred, var, crit, by, getattr(result, "by", None))


def ranef(result, labels=None) -> pd.DataFrame:
    """Predicted random effects ``u_i`` (metafor ``ranef()``); 0 for common-effect models.

    Returns the same columns as :func:`blup`.
    """
    own, y, v, tau2, fitted, xvx, crit, method, by = _pieces(result)
    labels = own if labels is None else np.asarray(labels)
    lam = tau2 / (tau2 + v)
    pred = lam * (y - fitted)
    var = lam * v + lam**2 * xvx
    if method in ("FE", "MH", "PETO"):
        ok = np.isfinite(y)
        pred, var = np.where(ok, 0.0, np.nan), np.where(ok, 0.0, np.nan)
    return _frame(labels, pred, var, crit, by, getattr(result, "by", None))
