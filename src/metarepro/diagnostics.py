"""Case-deletion and sequential diagnostics, subgroups and integrity sensitivity analyses.

Everything here follows metafor 3.8 (``leave1out``, ``influence``, ``cumul``,
``baujat``, ``rma(mods = ~ factor(g))``) and is checked against it in
``tests/test_diagnostics.py``. Analyses that need many pooled fits
(leave-one-out, cumulative, influence, sensitivity) build all of them as one
long table with a group column and fit them with one vectorised
:func:`metarepro.pool` call. Small-study effects are in
:mod:`metarepro.small_study`, method forensics in :mod:`metarepro.forensics`,
multi-arm trials in :mod:`metarepro.multiarm`; the input forms (a PoolResult,
a study table, or ``yi``/``vi`` arrays) are resolved by :mod:`metarepro._studies`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from . import _core, io
from . import _dist as stats
from ._studies import _groups, _iv, _labels_index, _pool_gen, _quiet, _resolve
from .errors import InputError
from .metareg import meta_regression
from .names import T_TESTS
from .pooling import PoolResult, _clean, _natural, pool

# --------------------------------------------------------------------------
# leave-one-out, cumulative, influence, Baujat
# --------------------------------------------------------------------------

COLUMNS = (
    "k",
    "estimate",
    "se",
    "statistic",
    "pvalue",
    "ci_lower",
    "ci_upper",
    "q",
    "q_pvalue",
    "tau2",
    "i2",
    "h2",
)


def leave_one_out(
    data,
    vi=None,
    *,
    labels=None,
    method: str | None = None,
    test: str | None = None,
    level: float | None = None,
    measure: str | None = None,
    **pool_kw,
) -> pd.DataFrame:
    """Pool the studies k times, each time without one, as metafor's ``leave1out``.

    All k analyses are built as one table with a group column and fitted by a
    single vectorised :func:`metarepro.pool` call.

    Parameters
    ----------
    data : PoolResult, DataFrame or array_like
        See the module notes; with a study table pass ``measure`` (and pool options).
    vi, labels : array_like, optional
        Sampling variances and study labels when ``data`` holds the effects.
    method, test, level :
        As :func:`metarepro.pool` (default: those of a PoolResult, else REML, z, 95).

    Returns
    -------
    DataFrame
        One row per omitted study: ``omitted`` and the pooled fields (model
        scale), plus ``*_natural`` columns for ratio measures and ZCOR.

    References
    ----------
    Viechtbauer W, Cheung MWL (2010). Outlier and influence diagnostics for
    meta-analysis. Res Synth Methods 1:112-125.
    """
    d = _resolve(
        data, vi, labels=labels, method=method, test=test, level=level, measure=measure, pool_kw=pool_kw
    )
    rows, lab = _labels_index(d)
    k = rows.size
    if k < 2:
        raise InputError("leave-one-out needs at least 2 studies")
    omit, keep = np.nonzero(~np.eye(k, dtype=bool))
    summ = _groups(d, rows[keep], omit)
    out = summ[[c for c in COLUMNS] + [c for c in summ.columns if c.endswith("_natural")]].copy()
    out.insert(0, "omitted", lab)
    _add_natural(out, d.measure)
    return out


def _add_natural(out, measure):
    fn = _natural(measure)
    if fn is None:
        return
    with np.errstate(over="ignore"):
        for n in ("estimate", "ci_lower", "ci_upper"):
            if n in out and f"{n}_natural" not in out:
                out[f"{n}_natural"] = fn(out[n].to_numpy(float))


def cumulative(
    data,
    vi=None,
    *,
    order=None,
    labels=None,
    decreasing: bool = False,
    method: str | None = None,
    test: str | None = None,
    level: float | None = None,
    measure: str | None = None,
    **pool_kw,
) -> pd.DataFrame:
    """Cumulative meta-analysis, as metafor's ``cumul``: add the studies one at a
    time in the order of ``order`` (ties keep their input order), all k fits in
    one vectorised pooling call.

    Parameters
    ----------
    data : PoolResult, DataFrame or array_like
    order : array_like or str, optional
        Sort key per study (e.g. publication year), or the name of a column of
        the study table; default: input order.
    decreasing : bool
        Sort from the largest key.

    Returns
    -------
    DataFrame
        One row per step: ``added`` (the study added) and the pooled fields of
        the first j studies.

    References
    ----------
    Lau J, Antman EM, Jimenez-Silva J, Kupelnick B, Mosteller F, Chalmers TC
    (1992). Cumulative meta-analysis of therapeutic trials for myocardial
    infarction. N Engl J Med 327:248-254.
    """
    d = _resolve(
        data, vi, labels=labels, method=method, test=test, level=level, measure=measure, pool_kw=pool_kw
    )
    rows, lab = _labels_index(d)
    k = rows.size
    if isinstance(order, str):
        if d.frame is None or order not in d.frame.columns:
            raise InputError(f"no column '{order}' to order by")
        key = d.frame[order].to_numpy()
        if not (d.frame is not None and d.method in ("MH", "PETO")):
            ok = np.isin(io.check_studies(d.frame).astype(str), lab)
            key = key[ok]
    elif order is None:
        key = np.arange(k)
    else:
        key = np.asarray(order)
    if len(key) != k:
        raise InputError(f"order has {len(key)} values for {k} studies")
    key = pd.to_numeric(pd.Series(key), errors="coerce").to_numpy() if key.dtype == object else key
    idx = np.argsort(-key if decreasing else key, kind="stable")
    steps = np.repeat(np.arange(k), np.arange(1, k + 1))
    members = np.concatenate([idx[: j + 1] for j in range(k)])
    summ = _groups(d, rows[members], steps)
    out = summ[[c for c in COLUMNS] + [c for c in summ.columns if c.endswith("_natural")]].copy()
    out.insert(0, "added", lab[idx])
    _add_natural(out, d.measure)
    return out


def _loo_core(y, v, method, test):
    """Leave-one-out fits of an intercept-only model with the engine: tau², mean,
    variance (Knapp-Hartung-scaled with knha), s2w and Q of each of the k fits."""
    k = y.size
    omit, keep = np.nonzero(~np.eye(k, dtype=bool))
    seg = _core.Segments(omit, k)
    yy, vv = y[keep], v[keep]
    tau2, _, _ = _core.estimate_tau2(seg, yy, vv, method)
    iv, _ = _core.inverse_variance(seg, yy, vv, tau2, test, 95.0)
    w = 1 / (vv + tau2[seg.g])
    sw = seg.sum(w)
    if test in T_TESTS:
        rss = seg.sum(w * (yy - iv["estimate"][seg.g]) ** 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            s2w = np.where(rss <= np.finfo(float).eps, 0.0, rss / (k - 2))
        if test == "adhoc":
            s2w = np.maximum(1.0, s2w)
    else:
        s2w = np.ones(k)
    q = _core.q_statistic(seg, yy, vv, np.zeros(k))
    return tau2, iv["estimate"], s2w / sw, s2w, np.maximum(q, 0.0)


def influence_measures(
    data,
    vi=None,
    *,
    labels=None,
    method: str | None = None,
    test: str | None = None,
    measure: str | None = None,
    **pool_kw,
) -> pd.DataFrame:
    """Case-deletion diagnostics of an intercept-only model, as metafor's ``influence()``.

    For each study i, with the model refitted without it (tau²_(-i), mu_(-i),
    its variance v_(-i) and Knapp-Hartung factor s²_(-i), 1 with test z):

    * ``rstudent``: ``(y_i - mu_(-i)) / sqrt(v_i s² + v_(-i) + tau²_(-i) s²)``
    * ``dffits``: ``(mu - mu_(-i)) / sqrt(s² h_i (tau²_(-i) + v_i))``
    * ``cook_d``: ``(mu - mu_(-i))² / Var(mu)``
    * ``cov_r``: ``v_(-i) / Var(mu)``
    * ``tau2_del``, ``qe_del``: tau² and Q without study i
    * ``hat``: ``w_i / sum w`` (a proportion), ``weight``: the same in percent
    * ``dfbetas``: ``(mu - mu_(-i)) / sqrt(s² / sum_j 1/(v_j + tau²_(-i)))``
    * ``influential``: flagged by any of metafor's cut-offs, ``|dffits| > 3 sqrt(1/(k-1))``,
      ``P(chi²_1 <= cook_d) > 0.5``, ``hat > 3/k`` or ``|dfbetas| > 1``.

    The k deleted fits are computed in one vectorised pass.

    References
    ----------
    Viechtbauer W, Cheung MWL (2010). Outlier and influence diagnostics for
    meta-analysis. Res Synth Methods 1:112-125.
    """
    d = _resolve(data, vi, labels=labels, method=method, test=test, measure=measure, pool_kw=pool_kw)
    y, v = d.yi, d.vi
    k = y.size
    if k < 2:
        raise InputError("influence diagnostics need at least 2 studies")
    meth = _iv(d.method)
    full = _pool_gen(y, v, d.labels, meth, d.test, d.level)
    mu, vb = full.estimate, full.se**2
    w = 1 / (v + full.tau2)
    hat = w / w.sum()
    tau2_del, mu_del, vb_del, s2w_del, q_del = _loo_core(y, v, meth, d.test)
    diff = mu - mu_del
    with np.errstate(invalid="ignore", divide="ignore"):
        dffits = diff / np.sqrt(s2w_del * hat * (tau2_del + v))
        vb_full_at_del = 1 / np.sum(1 / (v[None, :] + tau2_del[:, None]), axis=1)
        dfbs = diff / np.sqrt(s2w_del * vb_full_at_del)
        cook = diff**2 / vb
        cov_r = vb_del / vb
        resid = y - mu_del
        resid[np.abs(resid) < 100 * np.finfo(float).eps] = 0.0
        rstudent = resid / np.sqrt(v * s2w_del + vb_del + tau2_del * s2w_del)
    infl = (
        (np.abs(dffits) > 3 * np.sqrt(1 / (k - 1)))
        | (stats.chi2.cdf(cook, 1) > 0.5)
        | (hat > 3 / k)
        | (np.abs(dfbs) > 1)
    )
    return pd.DataFrame(
        {
            "study": d.labels,
            "rstudent": rstudent,
            "dffits": dffits,
            "cook_d": cook,
            "cov_r": cov_r,
            "tau2_del": tau2_del,
            "qe_del": q_del,
            "hat": hat,
            "weight": 100 * hat,
            "dfbetas": dfbs,
            "influential": infl,
        }
    )


def baujat(
    data,
    vi=None,
    *,
    labels=None,
    method: str | None = None,
    test: str | None = None,
    measure: str | None = None,
    **pool_kw,
) -> pd.DataFrame:
    """Data of a Baujat plot, as metafor's ``baujat()``.

    ``x``: the study's contribution to the (residual) heterogeneity,
    ``(y_i - mu)² / (v_i + tau²)`` (its term of Cochran's Q for common-effect
    models, the squared Pearson residual otherwise); ``y``: its influence on the
    pooled estimate, ``(mu_(-i) - mu)² / Var(mu_(-i))`` with the leave-one-out
    fits (one vectorised call).

    References
    ----------
    Baujat B, Mahé C, Pignon JP, Hill C (2002). A graphical method for exploring
    heterogeneity in meta-analyses: application to a meta-analysis of 65 trials.
    Stat Med 21:2641-2652.
    """
    d = _resolve(data, vi, labels=labels, method=method, test=test, measure=measure, pool_kw=pool_kw)
    loo = leave_one_out(
        data, vi, labels=labels, method=d.method, test=d.test, level=d.level, measure=measure, **pool_kw
    )
    if d.frame is not None and d.method in ("MH", "PETO"):
        full = _quiet(
            pool, d.frame, measure=d.measure, method=d.method, test=d.test, level=d.level, **d.pool_kw
        )
        st = full.studies
        y, v = st["yi"].to_numpy(float), st["vi"].to_numpy(float)
    else:
        full = _pool_gen(d.yi, d.vi, d.labels, d.method, d.test, d.level)
        y, v = d.yi, d.vi
    with np.errstate(invalid="ignore", divide="ignore"):
        x = (y - full.estimate) ** 2 / (v + full.tau2)
        yy = (loo["estimate"].to_numpy() - full.estimate) ** 2 / loo["se"].to_numpy() ** 2
    return pd.DataFrame({"study": loo["omitted"].to_numpy(), "x": x, "y": yy})


# --------------------------------------------------------------------------
# subgroups
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SubgroupResult:
    """Subgroup analysis with both tests for subgroup differences.

    Attributes
    ----------
    subgroups : DataFrame
        One pooled analysis per subgroup (its own tau²), in order of first appearance.
    q_between, q_between_df, q_between_pvalue, i2_between :
        RevMan / meta-style test: Cochran's Q of the subgroup estimates with
        weights ``1/se²`` on G - 1 df, and its I² (percent).
    qm, qm_df, qm_pvalue, qm_test :
        metafor's omnibus test of ``rma(yi, vi, mods = ~ factor(column))``: one
        model with a common residual tau² (chi² with test z, F with knha).
    regression : MetaRegressionResult
    overall : PoolResult
    """

    column: str
    subgroups: pd.DataFrame
    q_between: float
    q_between_df: int
    q_between_pvalue: float
    i2_between: float
    qm: float
    qm_df: tuple
    qm_pvalue: float
    qm_test: str
    regression: object = field(repr=False)
    overall: PoolResult = field(repr=False)

    def to_dict(self) -> dict:
        out = {
            k: _clean(getattr(self, k))
            for k in (
                "column",
                "q_between",
                "q_between_df",
                "q_between_pvalue",
                "i2_between",
                "qm",
                "qm_pvalue",
                "qm_test",
            )
        }
        out["qm_df"] = [_clean(x) for x in self.qm_df]
        out["subgroups"] = [
            {k: _clean(v) for k, v in r.items()} for r in self.subgroups.to_dict(orient="records")
        ]
        out["regression"] = self.regression.to_dict()
        out["overall"] = self.overall.to_dict()
        return out


def subgroup_analysis(
    frame: pd.DataFrame,
    measure: str,
    column: str,
    method: str = "REML",
    test: str = "z",
    level: float = 95,
    **pool_kw,
) -> SubgroupResult:
    """Pooled estimate per subgroup and the test for subgroup differences, two ways.

    1. **Q between** (RevMan, R's ``meta``; Borenstein et al. 2009, ch. 19):
       every subgroup is pooled separately (one vectorised ``pool(by=column)``
       call, each with its own tau²), and ``Q_b = sum w_g (mu_g - mu_w)²`` with
       ``w_g = 1/se_g²``, chi² on G - 1 df.
    2. **QM** (metafor): the mixed-effects meta-regression
       ``rma(yi, vi, mods = ~ factor(column), method, test)`` with one residual
       tau²; its omnibus test of the G - 1 dummies. Factor levels are sorted
       (as R's ``factor``); QM does not depend on the reference level.
       MH/Peto have no regression form: QM then uses the FE model.

    References
    ----------
    Borenstein M, Hedges LV, Higgins JPT, Rothstein HR (2009). Introduction to
    Meta-Analysis, chapter 19. Wiley.
    Deeks JJ, Higgins JPT, Altman DG (2023). Chapter 10, section 10.11.3.1, Cochrane Handbook.
    """
    if column not in frame.columns:
        raise InputError(f"missing column '{column}'", file=frame.attrs.get("source", "<data>"))
    tab = _quiet(pool, frame, measure=measure, method=method, test=test, level=level, by=column, **pool_kw)
    overall = _quiet(pool, frame, measure=measure, method=method, test=test, level=level, **pool_kw)
    summ = tab.summary
    est, se = summ["estimate"].to_numpy(float), summ["se"].to_numpy(float)
    ok = np.isfinite(est) & np.isfinite(se) & (se > 0)
    w = 1 / se[ok] ** 2
    mu = np.sum(w * est[ok]) / np.sum(w)
    qb = float(np.sum(w * (est[ok] - mu) ** 2))
    dfb = int(ok.sum() - 1)
    qbp = float(stats.chi2.sf(qb, dfb)) if dfb > 0 else float("nan")
    i2b = max(0.0, 100 * (qb - dfb) / qb) if qb > 0 else 0.0
    st = overall.studies
    usable = np.isfinite(st["yi"].to_numpy(float))
    groups = frame[column].to_numpy()[usable]
    levels = sorted(pd.unique(groups), key=lambda g: (str(type(g)), g))
    mods = pd.DataFrame({column: pd.Categorical(groups, categories=levels)})
    reg = meta_regression(
        st["yi"].to_numpy(float)[usable],
        st["vi"].to_numpy(float)[usable],
        mods,
        method=_iv(method),
        test=test,
        level=level,
    )
    return SubgroupResult(
        column=column,
        subgroups=summ,
        q_between=qb,
        q_between_df=dfb,
        q_between_pvalue=qbp,
        i2_between=i2b,
        qm=reg.qm,
        qm_df=reg.qm_df,
        qm_pvalue=reg.qm_pvalue,
        qm_test="F" if test in T_TESTS else "chisq",
        regression=reg,
        overall=overall,
    )


# --------------------------------------------------------------------------
# integrity sensitivity
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SensitivityResult:
    """The same analysis with and without some studies (e.g. retracted trials)."""

    full: PoolResult
    reduced: PoolResult
    dropped: tuple

    def to_frame(self) -> pd.DataFrame:
        """Side by side: one row per field, columns ``full``, ``reduced``, ``difference``."""
        names = [
            "k",
            "estimate",
            "ci_lower",
            "ci_upper",
            "se",
            "pvalue",
            "tau2",
            "i2",
            "q",
            "pi_lower",
            "pi_upper",
        ]
        f = [getattr(self.full, n) for n in names]
        r = [getattr(self.reduced, n) for n in names]
        nf, nr = self.full.natural(), self.reduced.natural()
        for key in ("estimate_natural", "ci_lower_natural", "ci_upper_natural"):
            if key in nf:
                names.append(key)
                f.append(nf[key])
                r.append(nr[key])
        f = np.array(f, float)
        r = np.array(r, float)
        return pd.DataFrame({"field": names, "full": f, "reduced": r, "difference": r - f})

    def to_dict(self) -> dict:
        return {
            "dropped": list(self.dropped),
            "full": self.full.to_dict(),
            "reduced": self.reduced.to_dict(),
            "comparison": [
                {k: _clean(v) for k, v in row.items()} for row in self.to_frame().to_dict(orient="records")
            ],
        }


def sensitivity_without(
    frame: pd.DataFrame,
    studies_to_drop,
    measure: str,
    method: str = "REML",
    test: str = "z",
    level: float = 95,
    **pool_kw,
) -> SensitivityResult:
    """Pool all studies and the studies without ``studies_to_drop`` (one
    vectorised call with two groups), e.g. to see how much retracted or
    questioned trials change a result.

    Raises
    ------
    InputError
        When a study to drop is not in the table, or nothing would be left.
    """
    labels = io.check_studies(frame).astype(str)
    drop = [str(s) for s in ([studies_to_drop] if isinstance(studies_to_drop, str) else studies_to_drop)]
    unknown = [s for s in drop if s not in set(labels)]
    if unknown:
        raise InputError(
            f"studies to drop not in the table: {', '.join(unknown)}",
            file=frame.attrs.get("source", "<data>"),
        )
    keep = ~np.isin(labels, drop)
    if not keep.any():
        raise InputError("no study is left after dropping", file=frame.attrs.get("source", "<data>"))
    base = frame.reset_index(drop=True)
    both = pd.concat(
        [base.assign(_analysis="full"), base[keep].assign(_analysis="reduced")], ignore_index=True
    )
    both.attrs.update(frame.attrs)
    tab = _quiet(
        pool, both, measure=measure, method=method, test=test, level=level, by="_analysis", **pool_kw
    )
    full, reduced = tab["full"], tab["reduced"]
    strip = lambda r: replace(r, group=None, studies=r.studies.drop(columns=["_analysis"], errors="ignore"))
    return SensitivityResult(full=strip(full), reduced=strip(reduced), dropped=tuple(drop))


__all__ = ["SensitivityResult", "SubgroupResult", "baujat", "cumulative", "influence_measures", "leave_one_out", "sensitivity_without", "subgroup_analysis"]
