"""Mixed-effects meta-regression, vectorised over many fits at once.

The engine (:func:`fit_batch`) fits ``B`` meta-regressions of the same size in
one pass: responses ``Y`` (B, k), sampling variances ``V`` (B, k) and model
matrices ``X`` (B, k, p). Everything is written with the p x p matrices
``(X'WX)^-1``, ``X'W²X`` and ``X'W³X`` instead of the k x k projection matrix
``P = W - WX(X'WX)^-1X'W``, using

* ``y'Py = sum w r²`` with ``r = y - X b_W`` (the weighted residuals),
* ``y'PPy = sum (w r)²``,
* ``tr P = sum w - tr(M X'W²X)`` and
* ``tr PP = sum w² - 2 tr(M X'W³X) + tr(M X'W²X M X'W²X)`` with ``M = (X'WX)^-1``,

so that the permutation test (one fit per permutation) and Egger's test are
single vectorised calls. The estimators and the output follow metafor 3.8's
``rma.uni`` (Viechtbauer 2010); :func:`meta_regression` is the one-fit API and
:func:`permutation_test` metafor's ``permutest``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import _core
from . import _dist as stats
from .errors import InputError
from .names import METHODS, T_TESTS, TESTS

#: Estimators available with moderators (Mantel-Haenszel and Peto have no regression form).
REG_METHODS = tuple(m for m in METHODS if m not in ("MH", "PETO", "MH-DL"))
_ROOT_TOL = {"xatol": 1e-14, "xrtol": 1e-14}
#: metafor's ``permutest`` comparison tolerance ``sqrt(.Machine$double.eps)``.
COMPTOL = math.sqrt(np.finfo(float).eps)


# --------------------------------------------------------------------------
# batched linear algebra
# --------------------------------------------------------------------------


class _Batch:
    """``B`` weighted least-squares problems ``y ~ X`` with weights ``w``."""

    def __init__(self, Y, X, W):
        XtW = np.swapaxes(X, 1, 2) * W[:, None, :]  # (B, p, k)
        self.M = np.linalg.inv(XtW @ X)  # (X'WX)^-1
        self.beta = (self.M @ (XtW @ Y[..., None]))[..., 0]  # (B, p)
        self.r = Y - (X @ self.beta[..., None])[..., 0]
        self.W, self.X = W, X

    def rss(self):
        return np.sum(self.W * self.r**2, axis=1)

    def _xtwx(self, power):
        return (np.swapaxes(self.X, 1, 2) * (self.W**power)[:, None, :]) @ self.X

    def tr_p(self):
        return self.W.sum(1) - np.trace(self.M @ self._xtwx(2), axis1=1, axis2=2)

    def tr_pp(self):
        mc = self.M @ self._xtwx(2)
        return (
            (self.W**2).sum(1)
            - 2 * np.trace(self.M @ self._xtwx(3), axis1=1, axis2=2)
            + np.trace(mc @ mc, axis1=1, axis2=2)
        )

    def ypppy(self):
        return np.sum((self.W * self.r) ** 2, axis=1)

    def logdet(self):
        return -np.linalg.slogdet(self.M)[1]  # log det(X'WX)


def _take(a, idx):
    return a if a is None else a[idx]


# --------------------------------------------------------------------------
# tau² estimators with moderators (metafor 3.8 rma.uni)
# --------------------------------------------------------------------------


def _tau2_closed(Y, V, X, method):
    k, p = Y.shape[1], X.shape[2]
    if method == "HE":
        ols = _Batch(Y, X, np.ones_like(V))
        xtvx = (np.swapaxes(X, 1, 2) * V[:, None, :]) @ X
        tr_pv = V.sum(1) - np.trace(ols.M @ xtvx, axis1=1, axis2=2)
        return (np.sum(ols.r**2, 1) - tr_pv) / (k - p)
    if method in ("DL", "HS"):
        fe = _Batch(Y, X, 1 / V)
        if method == "DL":
            return (fe.rss() - (k - p)) / fe.tr_p()
        return (fe.rss() - k) / (1 / V).sum(1)
    if method == "SJ":
        tau0 = np.mean((Y - Y.mean(1, keepdims=True)) ** 2, axis=1)
        b = _Batch(Y, X, 1 / (V + tau0[:, None]))
        return tau0 * b.rss() / (k - p)
    raise ValueError(method)


def _qe_at(Y, V, X, t):
    return _Batch(Y, X, 1 / (V + t[:, None])).rss()


def _tau2_pm(Y, V, X):
    """Paule-Mandel: root of ``Q(tau2) = k - p``; 0 where ``Q(0) < k - p``. Also the
    fixed point of metafor's EB iteration ``(Q k/(k-p) - k)/sum w`` (Morris 1983)."""
    B, k = Y.shape
    p = X.shape[2]
    target = float(k - p)
    t = np.zeros(B)
    conv = np.ones(B, bool)
    need = np.flatnonzero(_qe_at(Y, V, X, np.zeros(B)) >= target)
    if need.size:
        hi = np.full(need.size, 100.0)
        for _ in range(30):
            low = _qe_at(Y[need], V[need], X[need], hi) > target
            if not low.any():
                break
            hi[low] *= 10

        def f(tt, idx):
            idx = np.asarray(idx, np.intp)
            sel = need[idx]
            return _qe_at(Y[sel], V[sel], X[sel], np.asarray(tt, float)) - target

        res = _core.find_root(
            f, (np.zeros(need.size), hi), args=(np.arange(need.size),), tolerances=_ROOT_TOL
        )
        t[need] = res.x
        conv[need] = res.success
    return t, conv


def _score(Y, V, X, t, reml):
    b = _Batch(Y, X, 1 / (V + t[:, None]))
    if reml:
        return b.ypppy() - b.tr_p(), b.tr_pp()
    return b.ypppy() - b.W.sum(1), (b.W**2).sum(1)


def _loglik(Y, V, X, t, reml):
    b = _Batch(Y, X, 1 / (V + t[:, None]))
    k, p = Y.shape[1], X.shape[2]
    logv = np.log(V + t[:, None]).sum(1)
    if reml:
        return -0.5 * (k - p) * np.log(2 * np.pi) - 0.5 * logv - 0.5 * b.logdet() - 0.5 * b.rss()
    return -0.5 * k * np.log(2 * np.pi) - 0.5 * logv - 0.5 * b.rss()


def _tau2_ml_reml(Y, V, X, reml, threshold=_core.THRESHOLD, sweeps=_core.SCORING_SWEEPS):
    """Fisher scoring from the Hedges estimate (as metafor), step halving at 0,
    a bracketing root search of the score for analyses still unconverged after
    ``sweeps`` sweeps, and metafor's check that the likelihood is not higher at 0."""
    B = Y.shape[0]
    t = np.maximum(0.0, _tau2_closed(Y, V, X, "HE"))
    act = np.arange(B)
    ta = t.copy()
    for _ in range(sweeps):
        if act.size == 0:
            break
        num, den = _score(Y[act], V[act], X[act], ta, reml)
        with np.errstate(invalid="ignore", divide="ignore"):
            adj = np.nan_to_num(num / den, nan=0.0)
        adj = _core.halve_to_nonnegative(ta, adj)
        new = ta + adj
        t[act] = new
        still = np.abs(adj) > threshold
        act, ta = act[still], new[still]
    conv = np.ones(B, bool)
    if act.size:
        s0 = _score(Y[act], V[act], X[act], np.zeros(act.size), reml)[0]
        pos = act[s0 > 0]
        t[act[s0 <= 0]] = 0.0
        if pos.size:
            hi = np.full(pos.size, 10.0)
            for _ in range(30):
                up = _score(Y[pos], V[pos], X[pos], hi, reml)[0] > 0
                if not up.any():
                    break
                hi[up] *= 10

            def f(tt, idx):
                sel = pos[np.asarray(idx, np.intp)]
                return _score(Y[sel], V[sel], X[sel], np.asarray(tt, float), reml)[0]

            res = _core.find_root(
                f, (np.zeros(pos.size), hi), args=(np.arange(pos.size),), tolerances=_ROOT_TOL
            )
            t[pos] = res.x
            conv[pos] = res.success
    chk = t > threshold
    if chk.any():
        ll0 = _loglik(Y[chk], V[chk], X[chk], np.zeros(int(chk.sum())), reml)
        ll = _loglik(Y[chk], V[chk], X[chk], t[chk], reml)
        t[np.flatnonzero(chk)[ll0 - ll > _core.LL0_TOL]] = 0.0
    return np.maximum(0.0, t), conv


def estimate_tau2(Y, V, X, method):
    """tau² of ``B`` meta-regressions; returns ``(tau2, converged)``."""
    B = Y.shape[0]
    if method == "FE":
        return np.zeros(B), np.ones(B, bool)
    if method in ("ML", "REML"):
        return _tau2_ml_reml(Y, V, X, reml=method == "REML")
    if method in ("PM", "EB"):
        return _tau2_pm(Y, V, X)
    return np.maximum(0.0, _tau2_closed(Y, V, X, method)), np.ones(B, bool)


# --------------------------------------------------------------------------
# the batched fit
# --------------------------------------------------------------------------


def fit_batch(Y, V, X, method="REML", test="z", level=95.0, btt=None, tau2=None):
    """Fit ``B`` mixed-effects meta-regressions ``y = X b + u + e`` in one pass.

    Parameters
    ----------
    Y, V : ndarray (B, k)
        Effects and sampling variances (V may be (k,) to share it).
    X : ndarray (B, k, p) or (k, p)
        Model matrices (with the intercept column where wanted).
    method : str
        tau² estimator: FE, DL, HE, HS, SJ, ML, REML, PM, EB.
    test : {"z", "knha"}
        Wald z / chi², or Knapp-Hartung t / F on k-p df.
    btt : sequence of int, optional
        Coefficients in the omnibus test QM (default: all but the first column
        when p > 1, else the first), as metafor's ``btt``.
    tau2 : ndarray (B,), optional
        Use these tau² values instead of estimating them.

    Returns
    -------
    dict of ndarray
        ``beta, vb, se, zval, pval, ci_lb, ci_ub`` (B, p) / (B, p, p);
        ``tau2, converged, s2w, QM, QMp, QE, QEp, I2, H2, vt`` (B,); ``QMdf``, ``ddf``.
    """
    Y = np.atleast_2d(np.asarray(Y, float))
    B, k = Y.shape
    V = np.broadcast_to(np.asarray(V, float), (B, k)).copy()
    X = np.asarray(X, float)
    if X.ndim == 2:
        X = np.broadcast_to(X, (B,) + X.shape)
    p = X.shape[2]
    if btt is None:
        btt = list(range(1, p)) if p > 1 else [0]
    btt = np.asarray(btt, np.intp)
    m = btt.size
    if tau2 is None:
        t, conv = estimate_tau2(Y, V, X, method)
    else:
        t, conv = np.broadcast_to(np.asarray(tau2, float), (B,)).copy(), np.ones(B, bool)
    fit = _Batch(Y, X, 1 / (V + t[:, None]))
    beta, vb = fit.beta, fit.M.copy()
    s2w = np.ones(B)
    if test in T_TESTS:
        rss = fit.rss()
        s2w = np.where(rss <= np.finfo(float).eps, 0.0, rss / (k - p))
        if test == "adhoc":  # Knapp & Hartung (2003): never below the z test's variance
            s2w = np.maximum(1.0, s2w)
        vb = vb * s2w[:, None, None]
    se = np.sqrt(np.diagonal(vb, axis1=1, axis2=2))
    with np.errstate(invalid="ignore", divide="ignore"):
        zval = beta / se
        bb = beta[:, btt]
        vbb = vb[:, btt][:, :, btt]
        try:
            QM = np.einsum("bi,bij,bj->b", bb, np.linalg.inv(vbb), bb)
        except np.linalg.LinAlgError:
            QM = np.full(B, np.nan)
        alpha = 1 - level / 100
        if test in T_TESTS:
            ddf = k - p
            QM = QM / m
            QMp = stats.f.sf(QM, m, ddf) if ddf > 0 else np.full(B, np.nan)
            pval = 2 * stats.t.sf(np.abs(zval), ddf) if ddf > 0 else np.full_like(zval, np.nan)
            crit = stats.t.isf(alpha / 2, ddf) if ddf > 0 else np.nan
            QMdf = (m, ddf)
        else:
            ddf = None
            QMp = stats.chi2.sf(QM, m)
            pval = 2 * stats.norm.sf(np.abs(zval))
            crit = stats.norm.isf(alpha / 2)
            QMdf = (m, None)
    # residual heterogeneity on 1/v weights
    if k > p:
        fe = _Batch(Y, X, 1 / V)
        QE = np.maximum(0.0, fe.rss())
        QEp = stats.chi2.sf(QE, k - p)
        vt = (k - p) / fe.tr_p()
        with np.errstate(invalid="ignore", divide="ignore"):
            if method == "FE":
                I2 = np.where(QE > 0, np.maximum(0.0, 100 * (QE - (k - p)) / QE), 0.0)
                H2 = QE / (k - p)
            else:
                I2 = 100 * t / (vt + t)
                H2 = t / vt + 1
    else:
        QE, QEp, I2, H2, vt = (np.full(B, x) for x in (0.0, 1.0, 0.0, 1.0, 0.0))
    return {
        "beta": beta,
        "vb": vb,
        "se": se,
        "zval": zval,
        "pval": pval,
        "ci_lb": beta - crit * se,
        "ci_ub": beta + crit * se,
        "tau2": t,
        "converged": conv,
        "s2w": s2w,
        "QM": QM,
        "QMp": QMp,
        "QMdf": QMdf,
        "ddf": ddf,
        "QE": QE,
        "QEp": QEp,
        "I2": I2,
        "H2": H2,
        "vt": vt,
        "k": k,
        "p": p,
    }


# --------------------------------------------------------------------------
# model matrix from a moderator table
# --------------------------------------------------------------------------


def model_matrix(mods, k: int | None = None, intercept: bool = True) -> pd.DataFrame:
    """Model matrix from moderators, coded as R's ``model.matrix(~ ...)``.

    Numeric columns enter as they are; text, boolean and categorical columns
    become treatment-coded dummies of their sorted levels (the first level is
    the reference), named ``column + level`` as R does. An intercept column
    ``intrcpt`` is put first.
    """
    if mods is None:
        mods = pd.DataFrame(index=range(k or 0))
    if isinstance(mods, pd.Series):
        mods = mods.to_frame()
    if not isinstance(mods, pd.DataFrame):
        arr = np.asarray(mods, float)
        if arr.ndim == 1:
            arr = arr[:, None]
        mods = pd.DataFrame(arr, columns=[f"x{j + 1}" for j in range(arr.shape[1])])
    mods = mods.reset_index(drop=True)
    cols = {}
    if intercept:
        cols["intrcpt"] = np.ones(len(mods))
    for name in mods.columns:
        col = mods[name]
        kind = col.dtype
        categorical = isinstance(kind, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(kind)
        if not categorical and not pd.api.types.is_numeric_dtype(kind):
            conv = pd.to_numeric(col, errors="coerce")
            if conv.notna().all():
                col = conv
            else:
                categorical = True
        if categorical:
            levels = (
                list(col.cat.categories)
                if isinstance(kind, pd.CategoricalDtype)
                else sorted(col.astype(str).unique())
            )
            vals = col.astype(str).to_numpy()
            for lev in levels[1:]:
                cols[f"{name}{lev}"] = (vals == str(lev)).astype(float)
        else:
            cols[str(name)] = col.to_numpy(float)
    return pd.DataFrame(cols)


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class MetaRegressionResult:
    """A mixed-effects meta-regression (metafor ``rma(yi, vi, mods=...)``).

    Attributes
    ----------
    coefficients : DataFrame
        One row per term: ``term, estimate, se, statistic, pvalue, ci_lower, ci_upper``.
    qm, qm_df, qm_pvalue :
        Omnibus test of the moderators (all coefficients but the intercept):
        Wald chi² on ``qm_df[0]`` df (test z), or F on ``qm_df`` (test knha, QM divided by its df).
    qe, qe_df, qe_pvalue :
        Test of residual heterogeneity (Q on 1/v weights, k - p df).
    tau2, i2, h2 :
        Residual tau², I² (percent) and H².
    r2 :
        Pseudo-R² in percent, ``max(0, 100 (tau²_RE - tau²_ME)/tau²_RE)`` with tau²_RE of the
        intercept-only model with the same estimator (Raudenbush 2009); for FE the adjusted R² of
        the weighted regression, as metafor. None for intercept-only models.
    """

    method: str
    test: str
    level: float
    k: int
    p: int
    coefficients: pd.DataFrame
    vcov: np.ndarray = field(repr=False)
    qm: float
    qm_df: tuple
    qm_pvalue: float
    qe: float
    qe_df: int
    qe_pvalue: float
    tau2: float
    i2: float
    h2: float
    r2: float | None
    s2w: float
    df: float | None
    converged: bool
    yi: np.ndarray = field(repr=False)
    vi: np.ndarray = field(repr=False)
    X: pd.DataFrame = field(repr=False)

    def to_dict(self) -> dict:
        from .pooling import _clean

        out = {
            k: _clean(getattr(self, k))
            for k in (
                "method",
                "test",
                "level",
                "k",
                "p",
                "qm",
                "qm_pvalue",
                "qe",
                "qe_df",
                "qe_pvalue",
                "tau2",
                "i2",
                "h2",
                "r2",
                "s2w",
                "df",
                "converged",
            )
        }
        out["qm_df"] = [_clean(x) for x in self.qm_df]
        out["coefficients"] = [
            {k: _clean(v) for k, v in r.items()} for r in self.coefficients.to_dict(orient="records")
        ]
        return out


def _check(method, test):
    if method not in REG_METHODS:
        raise InputError(
            f"method '{method}' has no meta-regression form (choose one of {', '.join(REG_METHODS)})"
        )
    if test not in TESTS:
        raise InputError(f"unknown test '{test}' (choose one of {', '.join(TESTS)})")


def meta_regression(
    yi, vi, X=None, *, method: str = "REML", test: str = "z", level: float = 95, intercept: bool = True
) -> MetaRegressionResult:
    """Mixed-effects meta-regression as metafor's ``rma(yi, vi, mods = ~ ...)``.

    Parameters
    ----------
    yi, vi : array_like
        Effects (model scale) and sampling variances.
    X : DataFrame, array_like or None
        Moderators, one row per study; coded by :func:`model_matrix` (numeric
        as is, categorical as treatment dummies); the intercept is added.
    method : {"FE", "DL", "HE", "HS", "SJ", "ML", "REML", "PM", "EB"}
        tau² estimator (metafor's formulas with the general projection matrix;
        ML/REML by Fisher scoring, PM/EB as the root of ``Q_E(tau2) = k - p``).
    test : {"z", "knha"}
        Wald z tests and chi² omnibus test, or Knapp & Hartung (2003) t tests
        and F omnibus test on k - p df.
    level : float
        Confidence level (percent).

    Returns
    -------
    MetaRegressionResult

    References
    ----------
    Berkey CS, Hoaglin DC, Mosteller F, Colditz GA (1995). A random-effects
    regression model for meta-analysis. Stat Med 14:395-411.
    Knapp G, Hartung J (2003). Improved tests for a random effects
    meta-regression with a single covariate. Stat Med 22:2693-2710.
    Viechtbauer W (2010). Conducting meta-analyses in R with the metafor
    package. J Stat Softw 36(3):1-48.
    """
    _check(method, test)
    y = np.asarray(yi, float).ravel()
    v = np.asarray(vi, float).ravel()
    if y.shape != v.shape:
        raise InputError("yi and vi differ in length")
    ok = np.isfinite(y) & np.isfinite(v)
    Xdf = model_matrix(X, k=y.size, intercept=intercept)
    if len(Xdf) != y.size:
        raise InputError(f"moderators have {len(Xdf)} rows for {y.size} studies")
    ok &= np.isfinite(Xdf.to_numpy()).all(1)
    y, v, Xdf = y[ok], v[ok], Xdf[ok].reset_index(drop=True)
    # drop dummy columns that became constant zero after removing rows
    Xm = Xdf.to_numpy()
    k, p = Xm.shape
    if p == 0:
        raise InputError("the model has no coefficients")
    if k <= p:
        raise InputError(f"k = {k} studies cannot fit {p} coefficients (need k > p)")
    if np.linalg.matrix_rank(Xm) < p:
        raise InputError("model matrix not of full rank (a moderator is constant or collinear)")
    if (v <= 0).any():
        raise InputError("sampling variances must be > 0")
    r = fit_batch(y[None], v[None], Xm, method=method, test=test, level=level)
    r2 = None
    if intercept and p > 1:
        if method == "FE":
            r2 = _adj_r2(y, v, Xm)
        else:
            t_re, _ = estimate_tau2(y[None], v[None], np.ones((1, k, 1)), method)
            t_re = float(t_re[0])
            r2 = 0.0 if t_re == 0 else max(0.0, 100 * (t_re - float(r["tau2"][0])) / t_re)
    coef = pd.DataFrame(
        {
            "term": list(Xdf.columns),
            "estimate": r["beta"][0],
            "se": r["se"][0],
            "statistic": r["zval"][0],
            "pvalue": r["pval"][0],
            "ci_lower": r["ci_lb"][0],
            "ci_upper": r["ci_ub"][0],
        }
    )
    return MetaRegressionResult(
        method=method,
        test=test,
        level=float(level),
        k=k,
        p=p,
        coefficients=coef,
        vcov=r["vb"][0],
        qm=float(r["QM"][0]),
        qm_df=r["QMdf"],
        qm_pvalue=float(r["QMp"][0]),
        qe=float(r["QE"][0]),
        qe_df=k - p,
        qe_pvalue=float(r["QEp"][0]),
        tau2=float(r["tau2"][0]),
        i2=float(r["I2"][0]),
        h2=float(r["H2"][0]),
        r2=r2,
        s2w=float(r["s2w"][0]),
        df=r["ddf"],
        converged=bool(r["converged"][0]),
        yi=y,
        vi=v,
        X=Xdf,
    )


def _adj_r2(y, v, X):
    """Adjusted R² (percent, truncated at 0) of the weighted least-squares fit
    ``lm(y ~ X, weights = 1/v)``, which metafor reports as R² for FE models."""
    w = 1 / v
    b = _Batch(y[None], X[None], w[None])
    rss = float(b.rss()[0])
    mu = np.sum(w * y) / np.sum(w)
    tss = float(np.sum(w * (y - mu) ** 2))
    if tss == 0:
        return 0.0
    k, p = X.shape
    r2 = 1 - rss / tss
    return max(0.0, 100 * (1 - (1 - r2) * (k - 1) / (k - p)))


@dataclass(frozen=True)
class PermutationResult:
    """Permutation test of a (meta-)regression, as metafor's ``permutest``.

    ``pvalues`` holds one permutation p-value per coefficient (two-sided, from
    ``|z|`` or ``|t|``), ``qm_pvalue`` that of the omnibus test. ``exact`` says
    whether all distinct permutations were enumerated (then ``iter`` is their number).
    """

    terms: tuple
    pvalues: tuple
    qm_pvalue: float
    iter: int
    exact: bool
    seed: object
    statistic: tuple
    qm: float

    def to_dict(self) -> dict:
        from .pooling import _clean

        return {
            "terms": list(self.terms),
            "pvalues": [_clean(x) for x in self.pvalues],
            "qm_pvalue": _clean(self.qm_pvalue),
            "iter": self.iter,
            "exact": self.exact,
            "seed": _clean(self.seed),
            "statistic": [_clean(x) for x in self.statistic],
            "qm": _clean(self.qm),
        }


def _multiset_permutations(codes):
    """All distinct orderings of ``codes`` (a multiset), as an integer array."""
    values, counts = np.unique(codes, return_counts=True)
    n = len(codes)
    out = []
    cur = np.empty(n, np.intp)

    def rec(pos):
        if pos == n:
            out.append(cur.copy())
            return
        for j in range(len(values)):
            if counts[j]:
                counts[j] -= 1
                cur[pos] = values[j]
                rec(pos + 1)
                counts[j] += 1

    rec(0)
    return np.array(out)


def _n_unique_perms(codes):
    _, counts = np.unique(codes, return_counts=True)
    return math.factorial(len(codes)) // math.prod(math.factorial(int(c)) for c in counts)


def permutation_test(
    yi,
    vi=None,
    X=None,
    *,
    method: str = "REML",
    test: str = "z",
    iter: int = 1000,
    seed=None,
    exact: bool = False,
    level: float = 95,
    batch: int = 2000,
) -> PermutationResult:
    """Permutation test of a meta-regression (or of an intercept-only model),
    as metafor's ``permutest`` (Higgins & Thompson 2004).

    Meta-regression: the rows of the model matrix are permuted relative to
    ``(yi, vi)`` and the model refitted; intercept-only models: the signs of
    ``yi`` are flipped. The p-value of each coefficient is the share of
    permutations with ``|z_perm| >= |z_obs| - tol`` (``tol = sqrt(machine eps)``),
    that of the omnibus test the share with ``QM_perm >= QM_obs - tol``. In the
    approximate test the first of the ``iter`` permutations is the observed
    data (metafor's convention, so p >= 1/iter). When the number of distinct
    permutations (2^k sign flips; k!/prod(n_j!) row orders with repeated rows)
    is at most ``iter``, or ``exact=True``, they are all enumerated, as metafor does.

    Parameters
    ----------
    yi : array_like or MetaRegressionResult
        Effects, or a fitted regression (then ``vi``, ``X``, ``method``, ``test``, ``level`` come from it).
    vi, X :
        Sampling variances; moderators (None: intercept-only model).
    iter : int
        Number of permutations (including the observed one) for the approximate test.
    seed : int or numpy Generator, optional
        Seed of ``numpy.random.default_rng``. R's random stream cannot be
        reproduced, so approximate p-values agree with metafor's only within
        Monte-Carlo error (sd about ``sqrt(p(1-p)/iter)``); exact ones agree exactly.

    Returns
    -------
    PermutationResult

    References
    ----------
    Higgins JPT, Thompson SG (2004). Controlling the risk of spurious findings
    from meta-regression. Stat Med 23:1663-1682.
    Viechtbauer W, López-López JA, Sánchez-Meca J, Marín-Martínez F (2015). A
    comparison of procedures to test for moderators in mixed-effects
    meta-regression models. Psychol Methods 20:360-374.
    """
    if isinstance(yi, MetaRegressionResult):
        fit = yi
        y, v, Xm = fit.yi, fit.vi, fit.X.to_numpy()
        terms = tuple(fit.X.columns)
        method, test, level = fit.method, fit.test, fit.level
    else:
        _check(method, test)
        y = np.asarray(yi, float)
        v = np.asarray(vi, float)
        Xdf = model_matrix(X, k=y.size)
        Xm, terms = Xdf.to_numpy(), tuple(Xdf.columns)
    k, p = Xm.shape
    iter = int(iter)
    if iter < 2:
        raise InputError("iter must be >= 2")
    obs = fit_batch(y[None], v[None], Xm, method=method, test=test, level=level)
    z_obs, qm_obs = obs["zval"][0], obs["QM"][0]
    int_only = p == 1
    if int_only:
        n_exact = 2**k
        codes = None
    else:
        _, codes = np.unique(Xm, axis=0, return_inverse=True)
        codes = codes.ravel()
        n_exact = _n_unique_perms(codes)
    is_exact = bool(exact) or n_exact <= iter
    rng = np.random.default_rng(seed)
    if is_exact:
        if n_exact > 10**6:
            raise InputError(f"exact test needs {n_exact} permutations (too many)")
        if int_only:
            signs = 1 - 2 * ((np.arange(n_exact)[:, None] >> np.arange(k)[None, :]) & 1)
            perms = signs.astype(float)
        else:
            # a distinct arrangement of the rows: position i gets a row with pattern perms[b, i]
            pats = _multiset_permutations(codes)
            rep_row = np.array([np.flatnonzero(codes == c)[0] for c in range(codes.max() + 1)])
            perms = rep_row[pats]
        n = n_exact
    else:
        n = iter
        if int_only:
            perms = rng.choice(np.array([-1.0, 1.0]), size=(n - 1, k))
        else:
            perms = np.argsort(rng.random((n - 1, k)), axis=1)
    zs, qms = [], []
    for start in range(0, len(perms), batch):
        blk = perms[start : start + batch]
        b = len(blk)
        if int_only:
            r = fit_batch(blk * y[None], v[None], Xm, method=method, test=test, level=level)
        else:
            r = fit_batch(np.broadcast_to(y, (b, k)), v[None], Xm[blk], method=method, test=test, level=level)
        zs.append(r["zval"])
        qms.append(r["QM"])
    zp = np.concatenate(zs)
    qp = np.concatenate(qms)
    if not is_exact:  # the first permutation is the observed data
        zp = np.vstack([z_obs[None], zp])
        qp = np.concatenate([[qm_obs], qp])
    pv = np.nanmean(np.abs(zp) >= np.abs(z_obs)[None] - COMPTOL, axis=0)
    qmp = float(np.nanmean(qp >= qm_obs - COMPTOL))
    return PermutationResult(
        terms=terms,
        pvalues=tuple(float(x) for x in np.minimum(pv, 1)),
        qm_pvalue=qmp,
        iter=int(n),
        exact=is_exact,
        seed=seed if not isinstance(seed, np.random.Generator) else None,
        statistic=tuple(float(x) for x in z_obs),
        qm=float(qm_obs),
    )


# --------------------------------------------------------------------------
# Wald / F test of a subset of coefficients (metafor anova(fit, btt=))
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class WaldTest:
    """Test that the coefficients ``terms`` equal ``rhs`` (metafor ``anova(fit, btt=)``).

    ``statistic`` is the Wald chi² on ``df[0]`` degrees of freedom (test z) or
    the F statistic on ``df`` (Knapp-Hartung: the Wald statistic divided by the
    number of coefficients, on ``(m, k - p)`` df).
    """

    terms: tuple
    rhs: tuple
    statistic: float
    df: tuple
    pvalue: float
    test: str

    def to_dict(self) -> dict:
        from .pooling import _clean

        return {"terms": list(self.terms), "rhs": [_clean(x) for x in self.rhs], "statistic": _clean(self.statistic),
                "df": [_clean(x) for x in self.df], "pvalue": _clean(self.pvalue), "test": self.test}


def wald_test(fit: MetaRegressionResult, btt, rhs=0.0) -> WaldTest:
    """Wald-type test of a subset of the coefficients of a meta-regression.

    ``QM = (b - rhs)' Var(b)^-1 (b - rhs)`` over the coefficients ``btt``,
    referred to chi² with m df (test z) or, divided by m, to F(m, k - p)
    (test knha; Knapp & Hartung 2003), as metafor's ``anova(fit, btt=...)``.

    Parameters
    ----------
    fit : MetaRegressionResult
    btt : int, str or sequence of them
        Coefficients to test: positions (0 = intercept) or term names
        (``fit.coefficients["term"]``).
    rhs : float or sequence
        Values under the null hypothesis (default 0).

    References
    ----------
    Knapp G, Hartung J (2003). Improved tests for a random effects
    meta-regression with a single covariate. Stat Med 22:2693-2710.
    Viechtbauer W (2010). Conducting meta-analyses in R with the metafor
    package. J Stat Softw 36(3):1-48.
    """
    terms = list(fit.coefficients["term"])
    items = [btt] if isinstance(btt, (int, str, np.integer)) else list(btt)
    idx = []
    for b in items:
        if isinstance(b, str):
            if b not in terms:
                raise InputError(f"no coefficient '{b}' in the model (terms: {', '.join(terms)})")
            idx.append(terms.index(b))
        else:
            if not 0 <= int(b) < len(terms):
                raise InputError(f"coefficient position {b} outside 0..{len(terms) - 1}")
            idx.append(int(b))
    if not idx or len(set(idx)) != len(idx):
        raise InputError("btt must name each coefficient to test once")
    m = len(idx)
    rhs = np.broadcast_to(np.asarray(rhs, float), (m,)).copy()
    b = fit.coefficients["estimate"].to_numpy(float)[idx] - rhs
    vb = fit.vcov[np.ix_(idx, idx)]
    qm = float(b @ np.linalg.solve(vb, b))
    if fit.test == "z":
        df = (m, None)
        p = float(stats.chi2.sf(qm, m))
    else:
        qm /= m
        ddf = fit.k - fit.p
        df = (m, ddf)
        p = float(stats.f.sf(qm, m, ddf))
    return WaldTest(terms=tuple(terms[i] for i in idx), rhs=tuple(float(x) for x in rhs), statistic=qm, df=df,
                    pvalue=p, test=fit.test)
