"""Multivariate and multilevel random-effects models with a known sampling covariance matrix.

The model of metafor's ``rma.mv`` (Viechtbauer 2010; Konstantopoulos 2011;
Berkey et al. 1998)::

    y = X b + u + e,    e ~ N(0, V),    u ~ N(0, sum_j sigma2_j Z_j Z_j' + G-part)

with ``V`` the *known* sampling covariance matrix of the estimates (diagonal
for independent estimates, with off-diagonal terms for estimates that share a
control arm or participants, see :mod:`metarepro.multiarm`), and random
effects given as metafor's formulas:

* ``"~ 1 | study"``: one variance component ``sigma2`` shared by the estimates
  of each study (estimates of a study correlate through it);
* ``"~ 1 | district/school"``: nested (multilevel) components, one ``sigma2``
  per level (Konstantopoulos 2011);
* ``"~ outcome | trial"`` with ``struct="CS"`` (compound symmetry: one ``tau2``
  and one correlation ``rho`` of the true effects of different outcomes within a
  trial) or ``struct="HCS"`` (one ``tau2`` per outcome, one ``rho``).

Several ``~ 1 | ...`` formulas and at most one ``~ inner | outer`` formula may be
combined, as in metafor. Estimation is by REML or ML (or ``"EE"``/``"FE"``: no
random effects, generalised least squares with ``V``); tests are Wald ``z`` or
``t`` on ``k - p`` degrees of freedom (metafor's ``test="t"`` with
``dfs="residual"``; its ``dfs="contain"`` is not implemented).

Why written here
----------------
statsmodels' ``MixedLM`` estimates the residual variance from the data; it has
no way to fix the residual covariance to a known, non-diagonal matrix ``V``,
which is what makes a meta-analytic model. The likelihood (metafor's
``.ll.rma.mv``, restricted likelihood including its ``+ 1/2 log|X'X|`` term)
and its analytic gradient are therefore written here, and maximised with
:func:`scipy.optimize.minimize` (BFGS) on metafor's scale (``log sigma2``,
``log tau2``, ``atanh rho``), from metafor's starting values.

Computation
-----------
The marginal covariance ``M = V + random part`` is block-diagonal: two
estimates are in one block when ``V`` links them or they share a level of a
random effect. Blocks are padded to the next power of two (padding rows are
exact no-ops) and stacked, and each stack is handled by batched numpy calls
(Cholesky, inverse, traces), so a model with thousands of studies costs a few
array operations per likelihood evaluation. Analyses are not
batched across one another: each is its own scipy minimisation
(:func:`fit_many` loops), because scipy's minimisers solve one problem at a time.

References
----------
Viechtbauer W (2010). Conducting meta-analyses in R with the metafor package.
J Stat Softw 36(3):1-48.
Konstantopoulos S (2011). Fixed effects and variance components estimation in
three-level meta-analysis. Res Synth Methods 2:61-76.
Berkey CS, Hoaglin DC, Antczak-Bouckoms A, Mosteller F, Colditz GA (1998).
Meta-analysis of multiple outcomes by regression with random effects. Stat Med
17:2537-2550.
Harville DA (1977). Maximum likelihood approaches to variance component
estimation and to related problems. J Am Stat Assoc 72:320-338.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import _dist as stats
from .errors import InputError
from .names import MV_METHODS, MV_TESTS, STRUCTS

_LOG2PI = math.log(2 * math.pi)
#: metafor sets variance components at or below this to 0 (``.Machine$double.eps * 10``).
_ZERO_VC = 10 * np.finfo(float).eps


# --------------------------------------------------------------------------
# random-effects formulas
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects formula: ``inner`` is None for ``~ 1 | a/b`` (nested ``levels``)."""

    formula: str
    inner: str | None
    levels: tuple


def parse_random(formula: str) -> RandomTerm:
    """Read a metafor random-effects formula: ``"~ 1 | study"``, ``"~ 1 | a/b/c"``
    or ``"~ inner | outer"``."""
    m = re.fullmatch(r"\s*~\s*([\w.]+)\s*\|\s*([\w.]+(?:\s*/\s*[\w.]+)*)\s*", str(formula))
    if not m:
        raise InputError(f"random-effects formula '{formula}' is not of the form '~ 1 | study', "
                         "'~ 1 | study/effect' or '~ inner | outer'")
    left = m.group(1)
    levels = tuple(s.strip() for s in m.group(2).split("/"))
    if left == "1":
        return RandomTerm(formula, None, levels)
    if len(levels) != 1:
        raise InputError(f"random-effects formula '{formula}': '~ inner | outer' takes one outer factor")
    return RandomTerm(formula, left, levels)


# --------------------------------------------------------------------------
# model set-up: blocks of the marginal covariance
# --------------------------------------------------------------------------


def _codes(values) -> np.ndarray:
    return pd.factorize(pd.Series(values).astype(str), sort=False)[0]


def _union_find(n: int, pairs_i: np.ndarray, pairs_j: np.ndarray) -> np.ndarray:
    """Connected components of rows linked by the pairs (block of each row)."""
    parent = np.arange(n)

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in zip(pairs_i.tolist(), pairs_j.tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(a) for a in range(n)])
    return pd.factorize(roots, sort=True)[0]


class _Stack:
    """Blocks padded to one size ``s``: rows (nb, s), -1 marking padding, and the pieces of M.

    A padding row has y = 0, x = 0, variance 1 and no covariance with anything, so it adds
    nothing to X'WX, X'Wy, the residuals, log|M| (log 1 = 0) or the traces: padding is
    exact, and lets blocks of sizes 5 to 8 share one batched call.
    """

    def __init__(self, rows, y, X, Vfull, comps, g_outer, g_inner):
        self.rows = rows
        real = rows >= 0
        self.real = real
        r = np.where(real, rows, 0)
        both = (real[:, :, None] & real[:, None, :]).astype(float)
        self.y = np.where(real, y[r], 0.0)  # (nb, s)
        self.X = X[r] * real[:, :, None]  # (nb, s, p)
        s = rows.shape[1]
        eye = np.eye(s, dtype=bool)[None]
        self.V = np.where(both > 0, Vfull(r), 0.0) + (eye & ~real[:, :, None])  # (nb, s, s)
        self.D = [(c[r][:, :, None] == c[r][:, None, :]) * both for c in comps]
        if g_outer is not None:
            o, i = g_outer[r], g_inner[r]
            self.same_outer = (o[:, :, None] == o[:, None, :]) * both
            self.inner_a = np.broadcast_to(i[:, :, None], self.V.shape)
            self.inner_b = np.broadcast_to(i[:, None, :], self.V.shape)
            self.diff_inner = (self.inner_a != self.inner_b).astype(float)


class _Model:
    """One analysis: data, random structure and blocks of the marginal covariance."""

    def __init__(self, y, V, X, comps, g_outer, g_inner, n_inner, struct, method):
        self.y, self.X = y, X
        self.k, self.p = X.shape
        self.method, self.struct = method, struct
        self.comps = comps  # list of code arrays, one per sigma2
        self.S = len(comps)
        self.g_outer, self.g_inner, self.n_inner = g_outer, g_inner, n_inner
        self.withG = g_outer is not None
        self.T = (n_inner if struct == "HCS" else 1) if self.withG else 0
        self.R = 1 if self.withG else 0
        k = self.k
        # rows linked by V, by a sigma2 level or by an outer level belong to one block
        if V.ndim == 1:
            vi, vi_j = np.zeros(0, np.intp), np.zeros(0, np.intp)
        else:
            vi, vi_j = np.nonzero(np.triu(V, 1))
        pi_, pj_ = [vi], [vi_j]
        for c in comps + ([g_outer] if self.withG else []):
            order = np.argsort(c, kind="stable")
            cs = c[order]
            same = cs[1:] == cs[:-1]
            pi_.append(order[:-1][same])
            pj_.append(order[1:][same])
        block = _union_find(k, np.concatenate(pi_), np.concatenate(pj_))
        if V.ndim == 1:
            def vfull(rows):
                out = np.zeros(rows.shape + (rows.shape[1],))
                idx = np.arange(rows.shape[1])
                out[:, idx, idx] = V[rows]
                return out
        else:
            def vfull(rows):
                return V[rows[:, :, None], rows[:, None, :]]
        self.V = V
        sizes = np.bincount(block)
        order = np.argsort(block, kind="stable")
        starts = np.concatenate([[0], np.cumsum(sizes)])
        # blocks are padded to the next power of two: few batched calls, at most twice the rows
        bucket = 2 ** np.ceil(np.log2(sizes)).astype(int)
        self.stacks = []
        for s in np.unique(bucket):
            bids = np.flatnonzero(bucket == s)
            rows = np.full((bids.size, s), -1, np.intp)
            for n, b in enumerate(bids):
                rows[n, :sizes[b]] = order[starts[b]:starts[b] + sizes[b]]
            self.stacks.append(_Stack(rows, y, X, vfull, comps, g_outer, g_inner))
        self.logdet_xtx = np.linalg.slogdet(X.T @ X)[1]

    # -- parameters: metafor's scale (log sigma2, log tau2, atanh rho)
    def natural(self, theta):
        S, T = self.S, self.T
        sigma2 = np.exp(theta[:S])
        sigma2 = np.where(sigma2 <= _ZERO_VC, 0.0, sigma2)
        tau2 = np.exp(theta[S:S + T])
        tau2 = np.where(tau2 <= _ZERO_VC, 0.0, tau2)
        rho = np.tanh(theta[S + T:S + T + self.R])
        return sigma2, tau2, rho

    def _pieces(self, st: _Stack, theta, grad: bool):
        """M of every block of a stack and, with ``grad``, dM/dtheta for each parameter."""
        sigma2, tau2, rho = self.natural(theta)
        M = st.V.copy()
        dM = []
        for j, D in enumerate(st.D):
            M += sigma2[j] * D
            if grad:
                dM.append(sigma2[j] * D)
        if self.withG:
            r = rho[0]
            cor = np.where(st.diff_inner > 0, r, 1.0)
            if self.struct == "CS":
                Gp = tau2[0] * cor * st.same_outer
                M += Gp
                if grad:
                    dM.append(Gp)
                    dM.append(tau2[0] * (1 - r * r) * st.diff_inner * st.same_outer)
            else:  # HCS
                sd = np.sqrt(tau2)
                sda, sdb = sd[st.inner_a], sd[st.inner_b]
                Gp = sda * sdb * cor * st.same_outer
                M += Gp
                if grad:
                    for a in range(self.T):
                        dM.append(0.5 * Gp * ((st.inner_a == a).astype(float) + (st.inner_b == a)))
                    dM.append(sda * sdb * (1 - r * r) * st.diff_inner * st.same_outer)
        return M, dM

    def evaluate(self, theta, reml: bool, grad: bool = True, want: str = "objective"):
        """Minus the (restricted) log-likelihood and its gradient in ``theta``;
        ``want="fit"`` returns everything the result needs instead."""
        p = self.p
        XtWX = np.zeros((p, p))
        XtWy = np.zeros(p)
        logdet = 0.0
        parts = []
        for st in self.stacks:
            M, dM = self._pieces(st, theta, grad)
            try:
                L = np.linalg.cholesky(M)
            except np.linalg.LinAlgError:
                return (np.inf, np.zeros_like(theta)) if want == "objective" else None
            logdet += 2 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum()
            Minv = np.linalg.inv(M)
            A = Minv @ st.X  # (nb, s, p)
            XtWX += np.einsum("bsp,bsq->pq", st.X, A)
            XtWy += np.einsum("bsp,bs->p", A, st.y)
            parts.append((st, M, Minv, A, dM))
        try:
            H = np.linalg.inv(XtWX)
        except np.linalg.LinAlgError:
            raise InputError("the model matrix is rank deficient (a moderator is constant or collinear)")
        beta = H @ XtWy
        rss = 0.0
        us = []
        for st, M, Minv, A, dM in parts:
            r = st.y - st.X @ beta
            u = np.einsum("bst,bt->bs", Minv, r)
            rss += float(np.sum(r * u))
            us.append(u)
        k = self.k
        ll_ml = -0.5 * (k * _LOG2PI + logdet + rss)
        logdet_xwx = np.linalg.slogdet(XtWX)[1]
        ll_reml = -0.5 * ((k - p) * _LOG2PI - self.logdet_xtx + logdet + logdet_xwx + rss)
        if want == "fit":
            return {"beta": beta, "vb": H, "ll_ml": ll_ml, "ll_reml": ll_reml, "parts": parts}
        obj = -(ll_reml if reml else ll_ml)
        if not grad:
            return obj
        g = np.zeros(len(dM))
        for (st, M, Minv, A, dMs), u in zip(parts, us):
            for m, D in enumerate(dMs):
                tr = np.sum(Minv * D)  # Minv symmetric: tr(Minv D)
                quad = np.einsum("bs,bst,bt->", u, D, u)
                g[m] += 0.5 * (tr - quad)
                if reml:
                    g[m] -= 0.5 * np.sum(H * np.einsum("bsp,bst,btq->pq", A, D, A))
        return obj, g


# --------------------------------------------------------------------------
# result
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class MVResult:
    """A fitted multivariate / multilevel model (metafor ``rma.mv``).

    Attributes
    ----------
    coefficients : DataFrame
        One row per term: ``term, estimate, se, statistic, pvalue, ci_lower, ci_upper, df``
        (``df`` is None for z tests).
    estimate, se, ci_lower, ci_upper, statistic, pvalue, df :
        Those of the first coefficient (the pooled effect of an intercept-only model).
    pi_lower, pi_upper :
        Prediction interval of an intercept-only model as metafor's ``predict()``:
        ``estimate ± crit sqrt(se² + sum(sigma2) + tau2)`` (NaN with moderators, with
        HCS, and for EE/FE).
    sigma2, sigma2_names, sigma2_levels :
        Variance components of the ``~ 1 | ...`` terms, their factors (``a``, ``a/b``) and
        number of levels.
    tau2, rho, tau2_names :
        Variance(s) and correlation of an ``~ inner | outer`` term (empty tuples without).
    qe, qe_df, qe_pvalue :
        Test of residual heterogeneity: ``r' V^-1 r`` of the fixed-effects GLS fit with
        ``V`` alone, on ``k - p`` df.
    qm, qm_df, qm_pvalue :
        Wald test of the coefficients ``btt`` (by default all but the intercept): chi² on
        ``qm_df[0]`` df (z), or F on ``qm_df`` (t; QM divided by its df).
    loglik, deviance, aic, bic, aicc :
        Fit statistics of the estimation method (metafor's ``fitstats``); ``fit_stats``
        holds both the ML and the REML column.
    """

    method: str
    test: str
    level: float
    k: int
    p: int
    random: tuple
    struct: str | None
    coefficients: pd.DataFrame
    vcov: np.ndarray = field(repr=False)
    estimate: float
    se: float
    ci_lower: float
    ci_upper: float
    statistic: float
    pvalue: float
    df: float | None
    pi_lower: float
    pi_upper: float
    sigma2: tuple
    sigma2_names: tuple
    sigma2_levels: tuple
    tau2: tuple
    tau2_names: tuple
    rho: tuple
    qe: float
    qe_df: int
    qe_pvalue: float
    qm: float
    qm_df: tuple
    qm_pvalue: float
    parms: int
    loglik: float
    deviance: float
    aic: float
    bic: float
    aicc: float
    fit_stats: dict
    converged: bool
    iterations: int
    weights: np.ndarray = field(repr=False)
    yi: np.ndarray = field(repr=False)
    V: np.ndarray = field(repr=False)
    X: pd.DataFrame = field(repr=False)
    warnings: list = field(default_factory=list, repr=False)
    studies: pd.DataFrame | None = field(default=None, repr=False)
    covariance: str | None = None
    shared_arms: list = field(default_factory=list, repr=False)
    excluded: list = field(default_factory=list, repr=False)
    measure: str | None = None

    def natural(self) -> dict:
        """Estimate and intervals back-transformed (``exp`` for RR/OR/ROM, ``tanh`` for ZCOR);
        empty for other measures and for models with moderators."""
        from .pooling import _clean, _natural

        fn = _natural(self.measure) if self.measure else None
        if fn is None or self.p != 1:
            return {}
        with np.errstate(over="ignore", invalid="ignore"):
            return {f"{n}_natural": _clean(fn(getattr(self, n)))
                    for n in ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper")}

    def to_dict(self) -> dict:
        """Every scalar field, the coefficients and the variance components as plain Python values."""
        from .pooling import _clean

        out = {k: _clean(getattr(self, k)) for k in (
            "method", "test", "level", "k", "p", "struct", "estimate", "se", "ci_lower", "ci_upper",
            "statistic", "pvalue", "df", "pi_lower", "pi_upper", "qe", "qe_df", "qe_pvalue", "qm",
            "qm_pvalue", "parms", "loglik", "deviance", "aic", "bic", "aicc", "converged", "iterations")}
        out["random"] = list(self.random)
        out["qm_df"] = [_clean(x) for x in self.qm_df]
        out["sigma2"] = [{"factor": n, "levels": int(lv), "sigma2": _clean(s)}
                         for n, s, lv in zip(self.sigma2_names, self.sigma2, self.sigma2_levels)]
        out["tau2"] = [{"level": n, "tau2": _clean(t)} for n, t in zip(self.tau2_names, self.tau2)]
        out["rho"] = [_clean(r) for r in self.rho]
        out["fit_stats"] = {m: {k: _clean(v) for k, v in d.items()} for m, d in self.fit_stats.items()}
        out["coefficients"] = [{k: _clean(v) for k, v in r.items()}
                               for r in self.coefficients.to_dict(orient="records")]
        out["weights"] = [_clean(w) for w in self.weights]
        out["warnings"] = list(self.warnings)
        out["measure"] = self.measure
        out.update(self.natural())
        out["covariance"] = self.covariance
        out["shared_arms"] = [list(g) for g in self.shared_arms]
        out["excluded"] = [dict(e) for e in self.excluded]
        if self.studies is not None:
            out["studies"] = [{k: _clean(v) for k, v in r.items()} for r in self.studies.to_dict(orient="records")]
        return out


# --------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------


def _as_V(V, k: int, file: str) -> np.ndarray:
    try:
        import scipy.sparse as sp

        if sp.issparse(V):
            V = V.toarray()
    except ImportError:  # pragma: no cover - scipy is a dependency
        pass
    V = np.asarray(V, float)
    if V.ndim == 1:
        if V.shape[0] != k:
            raise InputError(f"{V.shape[0]} sampling variances for {k} estimates", file=file)
        if not np.all(np.isfinite(V)) or np.any(V <= 0):
            i = int(np.flatnonzero(~(np.isfinite(V) & (V > 0)))[0])
            raise InputError(f"sampling variance of estimate {i + 1} must be finite and > 0 (got {V[i]:g})",
                             file=file)
        return V
    if V.shape != (k, k):
        raise InputError(f"V is {V.shape[0]} x {V.shape[1]}, not {k} x {k}", file=file)
    if not np.all(np.isfinite(V)) or not np.allclose(V, V.T, rtol=0, atol=1e-12 * np.abs(V).max()):
        raise InputError("V must be a finite symmetric matrix", file=file)
    d = np.diag(V)
    if np.any(d <= 0):
        i = int(np.flatnonzero(d <= 0)[0])
        raise InputError(f"sampling variance of estimate {i + 1} must be > 0 (got {d[i]:g})", file=file)
    if np.all(V[~np.eye(k, dtype=bool)] == 0):
        return d.copy()
    return 0.5 * (V + V.T)


def _design(mods, k: int, intercept: bool) -> pd.DataFrame:
    """Model matrix as R's ``model.matrix``: with an intercept, factors are treatment coded
    (:func:`metarepro.metareg.model_matrix`); without one, the first factor gets a column for
    every level (R's ``~ f - 1``)."""
    from .metareg import model_matrix

    X = model_matrix(mods, k=k, intercept=True)
    if intercept or X.shape[1] == 1:
        return X if intercept else X.iloc[:, 1:]
    first = mods if isinstance(mods, pd.Series) else (mods.iloc[:, 0] if isinstance(mods, pd.DataFrame) else None)
    if first is not None and str(X.columns[1]) != str(first.name):  # the first moderator is a factor
        levels = (list(first.cat.categories) if isinstance(first.dtype, pd.CategoricalDtype)
                  else sorted(first.astype(str).unique()))
        X = X.rename(columns={"intrcpt": f"{first.name}{levels[0]}"})
        X.iloc[:, 0] = (first.astype(str).to_numpy() == str(levels[0])).astype(float)
        return X
    return X.iloc[:, 1:]


def _qe(model: _Model) -> float:
    """Residual heterogeneity ``Q_E`` of the GLS fit with V alone (metafor's QE)."""
    k, p = model.k, model.p
    if k - p <= 0:
        return 0.0
    XtWX = np.zeros((p, p))
    XtWy = np.zeros(p)
    invs = []
    for st in model.stacks:
        Vi = np.linalg.inv(st.V)
        A = Vi @ st.X
        XtWX += np.einsum("bsp,bsq->pq", st.X, A)
        XtWy += np.einsum("bsp,bs->p", A, st.y)
        invs.append(Vi)
    b = np.linalg.solve(XtWX, XtWy)
    q = 0.0
    for st, Vi in zip(model.stacks, invs):
        r = st.y - st.X @ b
        q += float(np.einsum("bs,bst,bt->", r, Vi, r))
    return q


def _start(model: _Model) -> np.ndarray:
    """metafor's starting values: the total residual variance of the GLS fit with V,
    less the typical sampling variance, shared equally among the variance components;
    rho = 0.5."""
    k, p = model.k, model.p
    X, y = model.X, model.y
    XtWX = np.zeros((p, p))
    XtWy = np.zeros(p)
    for st in model.stacks:
        A = np.linalg.inv(st.V) @ st.X
        XtWX += np.einsum("bsp,bsq->pq", st.X, A)
        XtWy += np.einsum("bsp,bs->p", A, st.y)
    b = np.linalg.solve(XtWX, XtWy)
    res = y - X @ b
    vdiag = model.V if model.V.ndim == 1 else np.diag(model.V)
    nvc = model.S + model.T
    total = max(0.001 * nvc, np.var(res, ddof=1) - 1 / np.mean(1 / vdiag)) if k > 1 else 0.001 * nvc
    init = np.full(model.S + model.T, math.log(total / max(nvc, 1)))
    return np.concatenate([init, np.full(model.R, math.atanh(0.5))])


def fit(yi, V, data: pd.DataFrame | None = None, *, random=None, mods=None, intercept: bool = True,
        struct: str = "CS", method: str = "REML", test: str = "z", level: float = 95, btt=None,
        labels=None) -> MVResult:
    """Fit a multivariate / multilevel meta-analytic model, as metafor's ``rma.mv``.

    Parameters
    ----------
    yi : array-like or str
        The k estimates (or the name of a column of ``data``).
    V : array-like or str
        Their sampling variances (length k, or the name of a column of ``data``) or the full
        k x k sampling covariance matrix (numpy or scipy.sparse).
    data : DataFrame, optional
        Holds the columns the random-effects formulas (and string ``yi``/``V``) name.
    random : str or list of str, optional
        metafor random-effects formulas: ``"~ 1 | study"``, ``"~ 1 | district/school"``,
        ``"~ outcome | trial"``; None fits no random effects (as ``method="EE"``).
    mods : DataFrame or array-like, optional
        Moderators, coded as R's ``model.matrix`` (see :func:`metarepro.metareg.model_matrix`;
        text columns become treatment dummies).
    intercept : bool
        Add an intercept (metafor's default).
    struct : {"CS", "HCS"}
        Structure of an ``~ inner | outer`` term: compound symmetry (one tau², one rho) or
        heteroscedastic compound symmetry (one tau² per inner level, one rho).
    method : {"REML", "ML", "EE", "FE"}
    test : {"z", "t"}
        Wald z, or t (and F for QM) on k - p df (metafor ``test="t"``, ``dfs="residual"``).
    level : float
        Confidence level in percent.
    btt : sequence of int, optional
        Coefficients (0-based) tested by QM; default all but the intercept (all if none).
    labels : array-like, optional
        Labels of the estimates (only carried into errors and warnings).

    Returns
    -------
    MVResult

    Notes
    -----
    A ``~ 1 | f`` component whose factor has a single level is fixed at 0 with a warning,
    as metafor does. Variance components at or below ``10 * machine epsilon`` are set to 0
    (metafor's rule); otherwise a component that belongs at the boundary converges towards
    0 on the log scale, as in metafor, and is reported as a small positive number.

    References
    ----------
    Viechtbauer W (2010). Conducting meta-analyses in R with the metafor package.
    J Stat Softw 36(3):1-48.
    Konstantopoulos S (2011). Fixed effects and variance components estimation in
    three-level meta-analysis. Res Synth Methods 2:61-76.
    """
    file = "<data>" if data is None else data.attrs.get("source", "<data>")
    if method not in MV_METHODS:
        raise InputError(f"unknown method '{method}' for a multilevel model (choose one of "
                         f"{', '.join(MV_METHODS)})", file=file)
    if test not in MV_TESTS:
        raise InputError(f"unknown test '{test}' for a multilevel model (choose z or t)", file=file)
    if not (0 < float(level) < 100):
        raise InputError(f"level {level} must be between 0 and 100 (percent)", file=file)
    if struct not in STRUCTS:
        raise InputError(f"unknown struct '{struct}' (choose one of {', '.join(STRUCTS)})", file=file)

    def column(x, what):
        if isinstance(x, str):
            if data is None or x not in data.columns:
                raise InputError(f"missing column '{x}' named as {what}", file=file)
            return pd.to_numeric(data[x], errors="coerce").to_numpy(float)
        return x

    y = np.asarray(column(yi, "yi"), float).ravel()
    k = y.size
    if k == 0:
        raise InputError("has no estimates", file=file)
    if not np.all(np.isfinite(y)):
        i = int(np.flatnonzero(~np.isfinite(y))[0])
        raise InputError(f"estimate {i + 1} is missing or not finite", file=file)
    Vm = _as_V(column(V, "V"), k, file)
    Xdf = _design(mods, k, intercept)
    if len(Xdf) != k:
        raise InputError(f"{len(Xdf)} moderator rows for {k} estimates", file=file)
    X = Xdf.to_numpy(float)
    if X.shape[1] == 0:
        raise InputError("the model has no coefficients (no intercept and no moderators)", file=file)
    if not np.all(np.isfinite(X)):
        raise InputError("moderators must not be missing", file=file)
    p = X.shape[1]
    if np.linalg.matrix_rank(X) < p:
        raise InputError("the model matrix is rank deficient (a moderator is constant or collinear "
                         "with others)", file=file)

    warns: list = []
    terms = [] if random is None or method in ("EE", "FE") else (
        [parse_random(random)] if isinstance(random, str) else [parse_random(r) for r in random])
    if random is not None and method in ("EE", "FE"):
        warns.append(f"method {method} fits no random effects; 'random' ignored")
    comps, names, nlev, fixed0 = [], [], [], []
    g_outer = g_inner = None
    n_inner, inner_names = 0, ()
    for t in terms:
        for c in t.levels + ((t.inner,) if t.inner else ()):
            if data is None or c not in data.columns:
                raise InputError(f"missing column '{c}' named in the random-effects formula '{t.formula}'",
                                 file=file)
            if data[c].isna().any():
                raise InputError(f"column '{c}' (random effects) has missing values", file=file)
        if t.inner is None:
            key = None
            for j, lev in enumerate(t.levels):
                part = data[lev].astype(str)
                key = part if key is None else key + "\x00" + part
                codes = _codes(key)
                n = int(codes.max()) + 1
                if n == 1:
                    warns.append(f"single-level factor '{'/'.join(t.levels[:j + 1])}': its sigma2 is fixed at 0 "
                                 "(as metafor)")
                    fixed0.append(len(comps))
                comps.append(codes)
                names.append("/".join(t.levels[: j + 1]))
                nlev.append(n)
        else:
            if g_outer is not None:
                raise InputError("only one '~ inner | outer' random-effects formula is supported", file=file)
            g_outer = _codes(data[t.levels[0]])
            inner = pd.Series(data[t.inner]).astype(str)
            lev = sorted(inner.unique())
            g_inner = np.array([lev.index(v) for v in inner])
            n_inner, inner_names = len(lev), tuple(lev)
    keep = [j for j in range(len(comps)) if j not in fixed0]
    model = _Model(y, Vm, X, [comps[j] for j in keep], g_outer, g_inner, n_inner, struct, method)
    random_fit = model.S + model.T > 0
    converged, iters = True, 0
    theta = np.zeros(0)
    if random_fit:
        from scipy.optimize import minimize

        reml = method == "REML"
        theta0 = _start(model)
        opt = minimize(model.evaluate, theta0, args=(reml,), jac=True, method="BFGS",
                       options={"gtol": 1e-10, "maxiter": 2000})
        theta, iters = opt.x, int(opt.nit)
        # BFGS stops with "precision loss" when the gradient is already at rounding level;
        # that is convergence for our purpose when the gradient is small.
        gnorm = float(np.max(np.abs(opt.jac))) if opt.jac is not None else np.inf
        converged = bool(opt.success or gnorm < 1e-6)
        if not converged:
            warns.append(f"the optimiser did not converge ({opt.message}); max |gradient| = {gnorm:.2g}")
    got = model.evaluate(theta, method == "REML", grad=False, want="fit")
    if got is None:
        raise InputError("the marginal covariance matrix is not positive definite at the estimates", file=file)
    sig, tau2, rho = model.natural(theta) if random_fit else (np.zeros(0), np.zeros(0), np.zeros(0))
    sigma2_all = np.zeros(len(comps))
    sigma2_all[keep] = sig
    beta, vb = got["beta"], got["vb"]
    se = np.sqrt(np.diag(vb))
    stat = beta / se
    if btt is None:
        btt = list(range(1, p)) if (intercept and p > 1) else list(range(p))
    btt = sorted({int(b) for b in btt})
    m = len(btt)
    bb = beta[btt]
    qm = float(bb @ np.linalg.solve(vb[np.ix_(btt, btt)], bb))
    a = 1 - level / 100
    if test == "t":
        ddf = float(max(k - p, 1))
        pval = 2 * stats.t.sf(np.abs(stat), ddf)
        crit = float(stats.t.isf(a / 2, ddf))
        qm = qm / m
        qm_df = (m, ddf)
        qm_p = float(stats.f.sf(qm, m, ddf))
        dfs = [ddf] * p
    else:
        pval = 2 * stats.norm.sf(np.abs(stat))
        crit = float(stats.norm.isf(a / 2))
        qm_df = (m, None)
        qm_p = float(stats.chi2.sf(qm, m))
        dfs = [None] * p
    qe_df = k - p
    qe = _qe(model) if qe_df > 0 else 0.0
    qe_p = float(stats.chi2.sf(qe, qe_df)) if qe_df > 0 else 1.0
    coefs = pd.DataFrame({"term": list(Xdf.columns), "estimate": beta, "se": se, "statistic": stat,
                          "pvalue": pval, "ci_lower": beta - crit * se, "ci_upper": beta + crit * se,
                          "df": dfs})
    # fit statistics as metafor's fitstats (both columns at the estimates)
    parms = p + model.S + model.T + model.R
    ll_ml, ll_reml = got["ll_ml"], got["ll_reml"]
    vdiag = Vm if Vm.ndim == 1 else np.diag(Vm)
    logdet_v = (np.sum(np.log(vdiag)) if Vm.ndim == 1 else np.linalg.slogdet(Vm)[1])
    ll_qe = -0.5 * k * _LOG2PI - 0.5 * logdet_v

    def aicc(ll, n):
        nn = max(n, parms + 2)
        return -2 * ll + 2 * parms * nn / (nn - parms - 1)

    fs = {"ML": {"ll": ll_ml, "dev": -2 * (ll_ml - ll_qe), "AIC": -2 * ll_ml + 2 * parms,
                 "BIC": -2 * ll_ml + parms * math.log(k), "AICc": aicc(ll_ml, k)},
          "REML": {"ll": ll_reml, "dev": -2 * ll_reml, "AIC": -2 * ll_reml + 2 * parms,
                   "BIC": (-2 * ll_reml + parms * math.log(k - p)) if k > p else math.nan,
                   "AICc": aicc(ll_reml, k - p)}}
    use = fs["REML" if method == "REML" else "ML"]
    # weights: diagonal of M^-1, in percent (metafor weights.rma.mv)
    wdiag = np.zeros(k)
    for st, M, Minv, A, dM in got["parts"]:
        wdiag[st.rows[st.real]] = np.diagonal(Minv, axis1=1, axis2=2)[st.real]
    weights = 100 * wdiag / wdiag.sum()
    pi_lo = pi_hi = math.nan
    if p == 1 and intercept and random_fit and (model.T <= 1):
        extra = float(np.sum(sigma2_all) + (tau2[0] if model.T == 1 else 0.0))
        half = crit * math.sqrt(se[0] ** 2 + extra)
        pi_lo, pi_hi = beta[0] - half, beta[0] + half
    tau2_names = inner_names if model.T > 1 else (("all",) if model.T == 1 else ())
    return MVResult(
        method=method, test=test, level=float(level), k=k, p=p,
        random=tuple(t.formula for t in terms), struct=struct if model.withG else None,
        coefficients=coefs, vcov=vb, estimate=float(beta[0]), se=float(se[0]), ci_lower=float(coefs.ci_lower[0]),
        ci_upper=float(coefs.ci_upper[0]), statistic=float(stat[0]), pvalue=float(pval[0]),
        df=dfs[0], pi_lower=pi_lo, pi_upper=pi_hi, sigma2=tuple(float(s) for s in sigma2_all),
        sigma2_names=tuple(names), sigma2_levels=tuple(nlev), tau2=tuple(float(t) for t in tau2),
        tau2_names=tuple(tau2_names), rho=tuple(float(r) for r in rho), qe=float(qe), qe_df=int(qe_df),
        qe_pvalue=qe_p, qm=qm, qm_df=qm_df, qm_pvalue=qm_p, parms=int(parms), loglik=float(use["ll"]),
        deviance=float(use["dev"]), aic=float(use["AIC"]), bic=float(use["BIC"]), aicc=float(use["AICc"]),
        fit_stats=fs, converged=converged, iterations=iters, weights=weights, yi=y, V=Vm, X=Xdf,
        warnings=warns)


def pool_mv(frame: pd.DataFrame, measure: str, *, random=None, mods=None, intercept: bool = True,
            struct: str = "CS", method: str = "REML", test: str = "z", level: float = 95,
            study: str = "study", arm: str = "arm_c", assumed_rho: float | None = None,
            add: float = 0.5, to: str = "only0", drop00: bool = False, ci_level: float = 95) -> MVResult:
    """Pool a study table whose comparisons may share control arms, with their covariance.

    The effect sizes come from the table as in :func:`metarepro.pool`; comparisons of one
    trial (same ``study``) with the same control arm (same ``arm`` value) get the covariance
    of :func:`metarepro.multiarm.shared_control_covariance`, and the model is fitted by
    :func:`fit`.

    Parameters
    ----------
    frame : DataFrame
        One row per comparison (per-arm columns, or generic effects), ``study`` and ``arm``.
    measure : str
        As :func:`metarepro.pool`.
    random : str or list of str, optional
        metafor random-effects formulas over the columns of ``frame``. Default: one random
        effect per comparison (``~ 1 | _comparison``), which is the usual random-effects model
        with the sampling covariance of shared arms added (with no shared arms it is exactly
        ``rma(yi, vi)`` with REML/ML).
    mods : str, list of str or DataFrame, optional
        Moderator columns of ``frame`` (e.g. a dose), or a table of them.
    assumed_rho : float, optional
        Only for generic effects (no arm data): the correlation assumed between comparisons
        that share a control arm, for a sensitivity analysis
        (:func:`metarepro.multiarm.assumed_correlation_covariance`). Without it such a table
        is an error, because its covariance cannot be built from the data.
    other parameters :
        As :func:`fit` and :func:`metarepro.effects.compute_effects`.

    Returns
    -------
    MVResult
        With ``studies`` (study, yi, vi, weight), ``covariance`` (how V was built) and
        ``shared_arms`` (the study labels of each group sharing an arm).

    References
    ----------
    Gleser LJ, Olkin I (2009). Stochastically dependent effect sizes. In: The Handbook of
    Research Synthesis and Meta-Analysis, 2nd ed., 357-376.
    """
    from .multiarm import shared_control_covariance, with_assumed_correlation

    file = frame.attrs.get("source", "<data>")
    if len(frame) == 0:
        raise InputError("has no rows", file=file)
    cov = shared_control_covariance(frame, measure, study=study, arm=arm, add=add, to=to, drop00=drop00,
                                    ci_level=ci_level)
    labels = frame[study].astype(str) if study in frame.columns else pd.Series(np.arange(len(frame)).astype(str))
    tag = "comparison" if "comparison" in frame.columns else ("arm_t" if "arm_t" in frame.columns else None)
    dup = labels.duplicated(keep=False).to_numpy()
    if tag is not None and dup.any():  # a trial with several comparisons: label each by its comparison
        labels = labels.where(~dup, labels + " (" + frame[tag].astype(str) + ")")
    labels = labels.to_numpy()
    V = cov.V
    if cov.groups and not cov.modelled:
        if assumed_rho is None:
            names = "; ".join(", ".join(labels[list(g)]) for g in cov.unmodelled)
            raise InputError(f"comparisons share a control arm ({names}) but {cov.reason}; give an assumed "
                             "correlation (assumed_rho) for a sensitivity analysis", file=file)
        if not -1 < assumed_rho < 1:
            raise InputError(f"assumed correlation {assumed_rho} must lie strictly between -1 and 1", file=file)
        V = with_assumed_correlation(cov, assumed_rho)
        how = (f"assumed correlation rho = {assumed_rho:g} between comparisons sharing a control arm"
               + (" where only generic effects are given; from the arm data elsewhere" if
                  len(cov.unmodelled) < len(cov.groups) else ""))
    elif cov.groups:
        how = "from the arm data (Gleser & Olkin 2009)"
    else:
        how = "no shared arms: V is diagonal"
    keep = np.isfinite(cov.yi)
    data = frame.reset_index(drop=True).copy()
    data["_comparison"] = np.arange(len(data))
    if isinstance(mods, str):
        mods = [mods]
    if isinstance(mods, (list, tuple)):
        missing = [c for c in mods if c not in data.columns]
        if missing:
            raise InputError(f"missing moderator column '{missing[0]}'", file=file)
        mods = data[list(mods)].apply(lambda c: pd.to_numeric(c, errors="coerce") if
                                      pd.to_numeric(c, errors="coerce").notna().all() else c)
    idx = np.flatnonzero(keep)
    sub = data.iloc[idx].reset_index(drop=True)
    sub.attrs.update(frame.attrs)
    msub = None if mods is None else mods.reset_index(drop=True).iloc[idx].reset_index(drop=True)
    if random is None and method not in ("EE", "FE"):
        random = "~ 1 | _comparison"
    res = fit(cov.yi[idx], V[np.ix_(idx, idx)], sub, random=random, mods=msub,
              intercept=intercept, struct=struct, method=method, test=test, level=level)
    studies = pd.DataFrame({"study": labels, "yi": cov.yi, "vi": cov.vi, "weight": np.nan})
    studies.loc[idx, "weight"] = res.weights
    shared = [tuple(labels[list(g)]) for g in cov.groups]
    from dataclasses import replace

    return replace(res, studies=studies, covariance=how, shared_arms=shared,
                   excluded=list(cov.excluded), measure=measure)


def fit_many(data: pd.DataFrame, by: str, yi: str = "yi", vi: str = "vi", **kw) -> pd.DataFrame:
    """Fit the same model to every analysis named by column ``by`` (independent estimates
    within each analysis' blocks, sampling variances in column ``vi``).

    Each analysis is its own :func:`fit` (a scipy minimisation); within it, blocks of equal
    size are batched. Returns one row per analysis: ``by``, ``k``, ``estimate``, ``se``,
    ``ci_lower``, ``ci_upper``, ``pvalue``, ``sigma2_1``.., ``loglik``, ``converged``.
    """
    rows = []
    for key, sub in data.groupby(by, sort=False):
        sub = sub.reset_index(drop=True)
        r = fit(yi, vi, sub, **kw)
        rec = {by: key, "k": r.k, "estimate": r.estimate, "se": r.se, "ci_lower": r.ci_lower,
               "ci_upper": r.ci_upper, "pvalue": r.pvalue, "loglik": r.loglik, "converged": r.converged}
        rec.update({f"sigma2_{j + 1}": s for j, s in enumerate(r.sigma2)})
        rows.append(rec)
    return pd.DataFrame(rows)
