"""Pooling: the public entry point :func:`pool` and its result objects."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from . import _core, io, natural
from . import _dist as stats
from . import conventions as conv_mod
from .effects import NO_ADD_BY_DEFAULT, compute_effects
from .effects_common import harmonic_mean
from .errors import InputError, MetareproWarning
from .names import COUNT_METHODS, FIELDS, METHODS, NATURAL, T_TESTS, TESTS

COMMON_EFFECT = ("FE", "MH", "PETO")
#: Fields that hold flags.
BOOL_FIELDS = ("tau2_ci_lower_censored", "tau2_ci_upper_censored", "converged")


def _natural(measure, size=None):
    """One-argument back-transformation of ``measure`` (:mod:`metarepro.natural`), or
    None: for measures with one scale, and for PFT/IRFT when the studies' harmonic
    mean size (``size``) is not given."""
    fn = natural.back(measure)
    if fn is None or (natural.needs_size(measure) and size is None):
        return None

    def back(x):
        out = fn(np.asarray(x, float), size)
        return out[()] if np.ndim(out) == 0 else out

    return back


def _clean(x):
    """JSON-friendly scalar: NaN and inf become None, numpy types become Python."""
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    return x


@dataclass(frozen=True)
class PoolResult:
    """One pooled meta-analysis.

    All effect fields are on the model scale (log for RR/OR/ROM, Fisher's z for
    ZCOR); ``*_natural`` fields hold the back-transformed values (ratios,
    correlations) where the measure has another natural scale. ``i2`` and
    weights are percentages. ``df`` is the t degrees of freedom with
    ``test="knha"``/``"adhoc"`` and None for z tests. ``tau2_ci_*_censored`` is True
    where a Q-profile bound is a search limit rather than a root (the bound lies
    beyond; see :func:`metarepro._core.q_profile`).
    """

    measure: str
    method: str
    test: str
    level: float
    k: int
    estimate: float
    se: float
    ci_lower: float
    ci_upper: float
    statistic: float
    pvalue: float
    df: float | None
    pi_lower: float
    pi_upper: float
    pi_hts_lower: float
    pi_hts_upper: float
    tau2: float
    tau2_ci_lower: float
    tau2_ci_upper: float
    i2: float
    i2_ci_lower: float
    i2_ci_upper: float
    h2: float
    h2_ci_lower: float
    h2_ci_upper: float
    tau2_ci_lower_censored: bool
    tau2_ci_upper_censored: bool
    q: float
    q_df: int
    q_pvalue: float
    converged: bool
    studies: pd.DataFrame = field(repr=False)
    corrections: list = field(default_factory=list, repr=False)
    excluded: list = field(default_factory=list, repr=False)
    warnings: list = field(default_factory=list, repr=False)
    group: object = None
    convention: str = "metafor"
    study_level: float | None = None
    #: Harmonic mean of the pooled studies' totals (PFT) or person-times (IRFT),
    #: at which those measures are back-transformed; None for other measures.
    natural_size: float | None = None

    def natural(self) -> dict:
        """Estimate and intervals back-transformed to the natural scale
        (:mod:`metarepro.natural`: ``exp`` for log measures, ``tanh`` for
        Fisher's z, inverse logit, arcsine, square root and Freeman-Tukey);
        empty for measures with one scale."""
        fn = _natural(self.measure, self.natural_size)
        if fn is None:
            return {}
        with np.errstate(over="ignore", invalid="ignore"):
            return {f"{n}_natural": _clean(fn(getattr(self, n))) for n in NATURAL}

    def to_dict(self) -> dict:
        """All fields as plain Python values (NaN → None), studies as a list of dicts."""
        out = {"measure": self.measure, "method": self.method, "test": self.test,
               "level": self.level, "convention": self.convention,
               "study_level": self.level if self.study_level is None else self.study_level}
        if self.group is not None:
            out["group"] = _clean(self.group)
        for name in FIELDS:
            out[name] = _clean(getattr(self, name))
        out.update(self.natural())
        out["studies"] = [{k: _clean(v) for k, v in row.items()}
                          for row in self.studies.to_dict(orient="records")]
        out["corrections"] = [dict(c) for c in self.corrections]
        out["excluded"] = [dict(c) for c in self.excluded]
        out["warnings"] = list(self.warnings)
        return out


@dataclass(frozen=True)
class PoolTable:
    """Many pooled meta-analyses from one call with ``by=``.

    Attributes
    ----------
    summary : DataFrame
        One row per analysis: the ``by`` column then the fields of :class:`PoolResult`.
    studies : DataFrame
        One row per study: ``by``, ``study``, ``yi``, ``vi``, ``weight``,
        ``ci_lower``, ``ci_upper`` (at ``study_level``).
    """

    by: str
    summary: pd.DataFrame
    studies: pd.DataFrame
    measure: str
    method: str
    test: str
    level: float
    corrections: list = field(default_factory=list)
    excluded: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    convention: str = "metafor"
    study_level: float | None = None

    def to_frame(self) -> pd.DataFrame:
        """The per-analysis summary table."""
        return self.summary

    def groups(self) -> list:
        return list(self.summary[self.by])

    def __len__(self):
        return len(self.summary)

    def __getitem__(self, group) -> PoolResult:
        """The :class:`PoolResult` of one analysis."""
        row = self.summary[self.summary[self.by] == group]
        if row.empty:
            raise KeyError(group)
        rec = row.iloc[0].to_dict()
        st = self.studies[self.studies[self.by] == group].drop(columns=[self.by]).reset_index(drop=True)
        names = {f.name for f in fields(PoolResult)}
        kw = {k: v for k, v in rec.items() if k in names}
        kw["k"] = int(kw["k"])
        kw["q_df"] = int(kw["q_df"])
        for flag in BOOL_FIELDS:
            kw[flag] = bool(kw[flag])
        kw["df"] = None if pd.isna(kw["df"]) else kw["df"]
        sel = lambda lst: [c for c in lst if c.get(self.by) == group]
        return PoolResult(measure=self.measure, method=self.method, test=self.test,
                          level=self.level, convention=self.convention, study_level=self.study_level,
                          studies=st, corrections=sel(self.corrections),
                          excluded=sel(self.excluded),
                          warnings=[w for w in self.warnings if w.startswith(f"{self.by}={group}:")],
                          group=group, **kw)

    def results(self) -> list:
        return [self[g] for g in self.groups()]


def _check_options(frame, measure, method, test, level, by):
    file = frame.attrs.get("source", "<data>")
    if measure not in io.MEASURES:
        raise InputError(f"unknown measure '{measure}' (choose one of {', '.join(io.MEASURES)})", file=file)
    if method not in METHODS:
        raise InputError(f"unknown method '{method}' (choose one of {', '.join(METHODS)})", file=file)
    if test not in TESTS:
        raise InputError(f"unknown test '{test}' (choose one of {', '.join(TESTS)})", file=file)
    if not (0 < float(level) < 100):
        raise InputError(f"level {level} must be between 0 and 100 (percent)", file=file)
    if method in COUNT_METHODS:
        if measure not in (("OR",) if method == "PETO" else ("RR", "OR", "RD")):
            raise InputError(f"method {method} needs measure "
                             f"{'OR' if method == 'PETO' else 'RR, OR or RD'}, not {measure}", file=file)
        if test != "z" and method != "MH-DL":
            raise InputError(f"test '{test}' does not apply to the common-effect method {method}; use z",
                             file=file)
    if by is not None and by not in frame.columns:
        raise InputError(f"missing column '{by}' named by --by", file=file)
    if len(frame) == 0:
        raise InputError("has no rows", file=file)


def pool(frame: pd.DataFrame, measure: str, method: str = "REML", test: str = "z",
         by: str | None = None, level: float = 95, add: float | None = None, to: str = "only0",
         drop00: bool | str | None = None, ci_level: float = 95, *, convention: str = "metafor",
         smd: str | None = None, rd: str | None = None, mh: str | None = None, peto: str | None = None,
         not_estimable: str | None = None, study_level: float | None = None) -> PoolResult | PoolTable:
    """Pool the studies of one or many meta-analyses.

    Parameters
    ----------
    frame : DataFrame
        One row per study with a unique ``study`` label and the columns of one
        input family (see :mod:`metarepro.io`). Other columns are ignored here
        and pass through the pipeline untouched.
    measure : str
        One of :data:`metarepro.names.MEASURES` (metafor ``escalc`` names;
        the input columns of each are in ``data/extracted/README.md``).
    method : {"FE", "MH", "PETO", "DL", "REML", "PM", "ML", "HS", "SJ", "HE", "EB", "MH-DL"}
        Common effect (inverse variance, Mantel-Haenszel, Peto), random effects
        with the named tau² estimator, or ``"MH-DL"``: RevMan's "M-H, Random",
        DerSimonian-Laird tau² from Cochran's Q about the Mantel-Haenszel
        estimate (inverse-variance weights ``1/v``), then inverse-variance
        weights ``1/(v + tau²)`` (Deeks & Higgins 2010; R meta's
        ``Q.Cochrane = TRUE``). ``q`` is then Q about the MH estimate, as RevMan
        reports it.
    test : {"z", "knha", "adhoc"}
        Wald z; Hartung-Knapp-Sidik-Jonkman with t on k-1 df; or the same with
        Knapp & Hartung's (2003) ad hoc correction (variance scale factor never
        below 1, so the interval is never narrower than the z interval).
    by : str, optional
        Column whose values name separate analyses; all are fitted in one
        vectorised pass and a :class:`PoolTable` is returned.
    level : float
        Confidence level in percent for the pooled intervals (RevMan's CI_TOTAL).
    add, to, drop00 :
        Zero-cell conventions for count data (see :func:`metarepro.effects.compute_effects`;
        ``add=None`` is metafor's default for the measure: 1/2, or 0 for PAS, PFT, IRS, IRFT).
        ``drop00=None`` means the convention's default: under ``"metafor"``
        False for inverse-variance models (``escalc``), True for the
        study-level effects of MH and Peto (``rma.mh``/``rma.peto``), whose
        pooled estimates use the uncorrected counts of all tables; under
        ``"revman5"`` RevMan's rule by measure (``drop00="revman5"``).
    ci_level : float
        Level of the intervals in ``estimate,ci_lower,ci_upper`` input.
    convention : {"metafor", "revman5"}
        Bundle of the computing conventions below (see :mod:`metarepro.conventions`,
        which gives RevMan 5's rule and its source for each).
    smd, rd, mh, peto, not_estimable : str, optional
        One piece of the convention, overriding the bundle: ``smd`` "exact" |
        "revman5" (Hedges' g), ``rd`` "metafor" | "revman5" (RD of a corrected
        study), ``mh`` "metafor" | "revman5" (cells and RD variance of
        Mantel-Haenszel), ``peto`` "metafor" | "revman5" (Peto study effects),
        ``not_estimable`` "error" | "exclude".
    study_level : float, optional
        Level in percent of the per-study intervals (``studies.ci_lower/ci_upper``;
        RevMan's CI_STUDY); default ``level``.

    Returns
    -------
    PoolResult or PoolTable

    Raises
    ------
    InputError
        For any problem with the table or the options (one line, with file,
        row and column where they apply).

    Notes
    -----
    Agrees with metafor 3.8 (``rma``, ``rma.mh``, ``rma.peto``, ``confint``,
    ``predict``); see ``tests/reference`` for the comparison and tolerances.
    With ``convention="revman5"`` it computes as RevMan 5 (tested against the
    numbers RevMan stored in a review file and against hand calculations).

    References
    ----------
    Viechtbauer W (2010). Conducting meta-analyses in R with the metafor
    package. J Stat Softw 36(3):1-48.
    Deeks JJ, Higgins JPT (2010). Statistical algorithms in Review Manager 5.
    Cochrane Statistical Methods Group.
    """
    _check_options(frame, measure, method, test, level, by)
    file = frame.attrs.get("source", "<data>")
    conv = conv_mod.resolve(convention, file=file, smd=smd, rd=rd, mh=mh, peto=peto,
                            not_estimable=not_estimable, drop00=drop00)
    if study_level is not None and not (0 < float(study_level) < 100):
        raise InputError(f"study_level {study_level} must be between 0 and 100 (percent)", file=file)
    labels = io.check_studies(frame, by)
    level = float(level)
    if by is None:
        codes = np.zeros(len(frame), np.intp)
        keys = [None]
    else:
        codes, uniques = pd.factorize(frame[by], sort=False)
        keys = list(uniques)
    G = len(keys)
    if add is None:
        add = 0.0 if measure in NO_ADD_BY_DEFAULT else 0.5
    # RevMan 5's Peto: (O - E)/V of the raw table, no continuity correction
    raw_peto = method == "PETO" and conv.peto == "revman5"
    eff = compute_effects(frame, measure, add=0.0 if raw_peto else add, to=to,
                          drop00=conv.drop00_for(method), ci_level=ci_level, group=codes,
                          smd=conv.smd, rd=conv.rd, not_estimable=conv.not_estimable)
    yi, vi = eff.yi, eff.vi
    usable = np.isfinite(yi) & np.isfinite(vi)
    if method in COUNT_METHODS and eff.counts is None:
        fams = eff.row_family
        i = next(j for j, f in enumerate(fams) if f != io.BINARY)
        raise InputError(f"method {method} needs 2x2 counts (events_t,total_t,events_c,total_c) on every "
                         f"row; study '{labels[i]}' gives {','.join(fams[i])}",
                         file=frame.attrs.get("source", "<data>"), row=io.row_label(frame, i))
    if method == "PETO":
        yi, vi, usable = _peto_studies(eff, labels, add)
    mh_cells = _mh_cells(eff, conv, add, measure) if method in ("MH", "MH-DL") else None

    out, weights, warns = _fit(yi, vi, usable, codes, G, eff, method, test, level, measure, mh_cells)

    by_name = by
    for lst in (eff.corrections, eff.excluded):
        for item in lst:
            item.setdefault("study", labels[item["row"]])
            if by is not None:
                item[by] = keys[codes[item["row"]]]
    size = None
    if natural.needs_size(measure) and eff.size is not None:
        size = harmonic_mean(np.where(usable, eff.size, np.nan), codes, G)
    slevel = level if study_level is None else float(study_level)
    zs = stats.norm.isf((1 - slevel / 100) / 2)
    y_, v_ = np.where(usable, yi, np.nan), np.where(usable, vi, np.nan)
    studies = pd.DataFrame({"study": labels, "yi": y_, "vi": v_, "weight": weights,
                            "ci_lower": y_ - zs * np.sqrt(v_), "ci_upper": y_ + zs * np.sqrt(v_)})
    name = conv.label
    if by is None:
        w = [f"{m}" for m in warns.get(0, [])]
        for m in w:
            warnings.warn(m, MetareproWarning, stacklevel=2)
        rec = {name: out[name][0] for name in out}
        return PoolResult(measure=measure, method=method, test=test, level=level,
                          convention=name, study_level=study_level, k=int(rec["k"]), q_df=int(rec["q_df"]), **{f: bool(rec[f]) for f in BOOL_FIELDS},
                          df=None if not np.isfinite(rec["df"]) else float(rec["df"]),
                          studies=studies, corrections=eff.corrections, excluded=eff.excluded,
                          warnings=w, natural_size=None if size is None else float(size[0]),
                          **{n: float(rec[n]) for n in FIELDS if n not in ("k", "q_df", "df", *BOOL_FIELDS)})
    summary = pd.DataFrame({by_name: keys, **{n: out[n] for n in FIELDS}})
    summary["k"] = summary["k"].astype(int)
    summary["q_df"] = summary["q_df"].astype(int)
    for flag in BOOL_FIELDS:
        summary[flag] = summary[flag].astype(bool)
    fn = natural.back(measure)
    if fn is not None:
        if size is not None:
            summary["natural_size"] = size
        with np.errstate(over="ignore", invalid="ignore"):
            for n in NATURAL:
                summary[f"{n}_natural"] = fn(summary[n].to_numpy(float), size)
    studies.insert(0, by_name, np.asarray(uniques)[codes])
    allw = []
    for gi, msgs in sorted(warns.items()):
        for m in msgs:
            allw.append(f"{by_name}={keys[gi]}: {m}")
    for m in allw[:20]:
        warnings.warn(m, MetareproWarning, stacklevel=2)
    if len(allw) > 20:
        warnings.warn(f"... and {len(allw) - 20} more warnings", MetareproWarning, stacklevel=2)
    return PoolTable(by=by_name, summary=summary, studies=studies, measure=measure, method=method,
                     test=test, level=level, corrections=eff.corrections, excluded=eff.excluded,
                     warnings=allw, convention=name, study_level=study_level)


def _peto_studies(eff, labels, add):
    """Peto's study-level effects ``(O - E)/V``, variance ``1/V`` (shown, and
    counted for Q's df), from the table with ``eff``'s continuity corrections.

    (O - E)/V needs no correction: a table with a zero cell keeps its effect
    with ``add=0`` (as metafor's ``rma.peto``); only tables with V = 0 (no
    events, or only events, in both arms) have none. Rows that compute_effects
    marked "not estimable" for the odds ratio are taken back when Peto can
    estimate them; studies dropped by ``drop00`` stay dropped.
    Returns ``(yi, vi, usable)`` and updates ``eff.excluded`` in place.
    """
    from .effects import peto_log_odds_ratio

    c = eff.counts
    dropped = np.zeros(len(labels), bool)
    kept = []
    for e in eff.excluded:
        if "drop00" in e["reason"]:
            dropped[e["row"]] = True
            kept.append(e)
    hit = np.zeros(len(labels), bool)
    for corr in eff.corrections:
        hit[corr["row"]] = True
    a_, b_, c_, d_ = (c[x] + np.where(hit, add, 0.0) for x in ("ai", "bi", "ci", "di"))
    yi, vi = peto_log_odds_ratio(a_, b_, c_, d_)
    yi = np.where(dropped, np.nan, yi)
    vi = np.where(dropped, np.nan, vi)
    usable = np.isfinite(yi) & np.isfinite(vi)
    for i in np.flatnonzero(~dropped & ~usable):
        kept.append({"row": int(i), "study": labels[i],
                     "reason": "Peto OR not estimable (V = 0: no events, or only events, in both arms)"})
    eff.excluded[:] = sorted(kept, key=lambda e: e["row"])
    return yi, vi, usable


def _mh_cells(eff, conv, add, measure):
    """The 2x2 cells Mantel-Haenszel pools, and how (keyword arguments of
    :func:`metarepro._core.mantel_haenszel`).

    metafor (``rma.mh``): the uncorrected counts of every table, Sato's RD
    variance. RevMan 5 (R meta's ``metabin`` with ``MH.exact = FALSE``): for RR
    and OR the table with ``add`` (0.5) added to every cell of a zero-cell
    study, the studies that are not estimable left out (all cells 0); for RD
    the raw table (weights n1 n2 / N, which need no correction: RevMan prints
    these weights, e.g. CD000478 Analysis 7.1, where meta corrects them), so the
    RD is averaged from the raw counts, with the Greenland-Robins variance.
    """
    c = eff.counts
    if c is None:
        return None
    if conv.mh == "metafor":
        return {"cells": (c["ai"], c["bi"], c["ci"], c["di"]), "kw": {}}
    added = np.zeros(len(c["ai"]))
    if measure != "RD":  # RD needs no correction: RevMan weighs it n1 n2 / N of the raw table
        for corr in eff.corrections:
            added[corr["row"]] = add
    left_out = np.zeros(len(added), bool)
    for e in eff.excluded:
        left_out[e["row"]] = True
    inc = ~left_out
    cells = tuple(np.where(inc, c[x] + added, 0.0) for x in ("ai", "bi", "ci", "di"))
    kw = {"rd_variance": "greenland-robins"}
    if measure == "RR":
        kw["rr_one"] = inc & (c["bi"] == 0) & (c["di"] == 0)
    return {"cells": cells, "kw": kw}


def _fit(yi, vi, usable, codes, G, eff, method, test, level, measure, mh_cells=None):
    """Fit every analysis; returns (fields dict of arrays, per-row weights, warnings by group)."""
    n = len(yi)
    rows = np.flatnonzero(usable)
    seg = _core.Segments(codes[rows], G)
    y, v = yi[rows], vi[rows]
    warns: dict[int, list] = {}
    weights = np.full(n, np.nan)

    def warn(mask, msg):
        for gi in np.flatnonzero(mask):
            warns.setdefault(int(gi), []).append(msg)

    if method in ("MH", "PETO"):
        c = eff.counts
        allseg = _core.Segments(codes, G)
        if method == "MH":
            beta, se, w = _core.mantel_haenszel(allseg, *mh_cells["cells"], measure, **mh_cells["kw"])
            with np.errstate(invalid="ignore"):
                q = seg.sum((y - beta[seg.g]) ** 2 / v)
        else:
            beta, se, q, w = _core.peto(allseg, c["ai"], c["bi"], c["ci"], c["di"])
        weights = w
        kyi = seg.k
        df = kyi - 1
        with np.errstate(invalid="ignore", divide="ignore"):
            q = np.maximum(0.0, q)
            qp = stats.chi2.sf(q, df)
            i2 = np.where(q > 0, np.maximum(0.0, 100 * (q - df) / q), 0.0)
            h2 = q / df
            zc = stats.norm.isf((1 - level / 100) / 2)
            stat = beta / se
            p = 2 * stats.norm.sf(np.abs(stat))
        small = kyi <= 1
        q, qp, i2, h2 = (np.where(small, a, b) for a, b in ((0.0, q), (1.0, qp), (0.0, i2), (1.0, h2)))
        nanG = np.full(G, np.nan)
        out = {"k": allseg.k, "estimate": beta, "se": se, "ci_lower": beta - zc * se, "ci_upper": beta + zc * se,
                   "statistic": stat, "pvalue": p, "df": nanG, "pi_lower": nanG, "pi_upper": nanG,
                   "pi_hts_lower": nanG, "pi_hts_upper": nanG, "tau2": np.zeros(G),
                   "tau2_ci_lower": nanG, "tau2_ci_upper": nanG, "i2": i2, "i2_ci_lower": nanG, "i2_ci_upper": nanG,
                   "h2": h2, "h2_ci_lower": nanG, "h2_ci_upper": nanG, "tau2_ci_lower_censored": np.zeros(G, bool),
                   "tau2_ci_upper_censored": np.zeros(G, bool), "q": q, "q_df": np.maximum(df, 0),
                   "q_pvalue": qp, "converged": np.ones(G, bool)}
        warn(np.isnan(beta), f"{method} estimate does not exist (no events in one arm of every study)")
        return out, weights, warns

    q_mh = None
    if method == "MH-DL":
        allseg = _core.Segments(codes, G)
        beta_mh, _, _ = _core.mantel_haenszel(allseg, *mh_cells["cells"], measure, **mh_cells["kw"])
        tau2, q_mh = _core.tau2_dl_about(seg, y, v, beta_mh)
        tau2 = np.where(np.isfinite(beta_mh), tau2, np.nan)
        conv, fallback = np.ones(G, bool), np.zeros(G, bool)
        warn(~np.isfinite(beta_mh) & (seg.k > 0),
             "MH estimate does not exist (no events in one arm of every study), so neither does MH-DL")
    else:
        tau2, conv, fallback = _core.estimate_tau2(seg, y, v, method)
    common = method == "FE"
    iv, w = _core.inverse_variance(seg, y, v, tau2, test, level)
    weights[rows] = w
    het = _core.heterogeneity(seg, y, v, tau2, common)
    if q_mh is not None:  # RevMan reports Q about the MH estimate
        with np.errstate(invalid="ignore"):
            het["q"] = np.where(seg.k > 1, q_mh, 0.0)
            het["q_pvalue"] = np.where(seg.k > 1, stats.chi2.sf(het["q"], seg.k - 1), 1.0)
    if common:
        nanG = np.full(G, np.nan)
        qp = {"tau2_ci_lower": nanG, "tau2_ci_upper": nanG, "i2_ci_lower": nanG, "i2_ci_upper": nanG,
              "h2_ci_lower": nanG, "h2_ci_upper": nanG, "tau2_ci_lower_censored": np.zeros(G, bool),
              "tau2_ci_upper_censored": np.zeros(G, bool)}
    else:
        qp = _core.q_profile(seg, y, v, tau2, het["vt"], level)
    pi = _core.prediction_interval(iv["estimate"], iv["se"], tau2, iv["crit"], seg.k, level)
    if common:  # as metafor's predict(): no prediction interval without a random effect
        pi = {key: np.full(G, np.nan) for key in pi}
    out = dict(k=seg.k, tau2=tau2, converged=conv, **{k: iv[k] for k in
               ("estimate", "se", "ci_lower", "ci_upper", "statistic", "pvalue", "df")},
               **pi, **qp, **{k: het[k] for k in ("q", "q_df", "q_pvalue", "i2", "h2")})
    out["q_df"] = np.maximum(out["q_df"], 0)
    warn(seg.k == 0, "no study could be pooled (all excluded)")
    warn(seg.k == 1, "k = 1: the estimate is that study's; no heterogeneity can be estimated"
                     + ("; test set to z (as metafor)" if test in T_TESTS else ""))
    if not common:
        warn(seg.k == 2, "k = 2: tau² and the prediction interval are very imprecise")
    warn(fallback, f"{method} Fisher scoring did not converge in {_core.MAXITER} iterations; "
                   "tau² is the root of the score equation found by bracketing")
    warn(~conv & ~fallback, f"{method} root search for tau² did not converge")
    if common and test in T_TESTS:
        warn(np.ones(G, bool), "the Knapp-Hartung test is meant for random-effects models")
    return out, weights, warns


@dataclass(frozen=True)
class SubgroupTable:
    """Subgroups of many analyses pooled as RevMan 5 reports them (:func:`pool_subgroups`).

    Attributes
    ----------
    totals : PoolTable
        One pooled analysis per ``by`` value over all its subgroups (its own tau²);
        the group key is the ``by`` value (``None`` without ``by``).
    subgroups : PoolTable
        One pooled analysis per ``by`` × subgroup (each with its own tau²); its
        summary has the columns ``by`` (when given) and the subgroup column.
    studies : DataFrame
        One row per study: ``by`` (when given), the subgroup, ``study, yi, vi,
        ci_lower, ci_upper``, ``weight_total`` (percent of the analysis's
        total) and ``weight_subgroup`` (percent of its subgroup's total).
    differences : DataFrame
        Per analysis, the test for subgroup differences: ``q_between``,
        ``q_between_df``, ``q_between_pvalue``, ``i2_between``.
    """

    by: str | None
    subgroup: str
    totals: PoolTable
    subgroups: PoolTable
    studies: pd.DataFrame
    differences: pd.DataFrame


def pool_subgroups(frame: pd.DataFrame, measure: str, subgroup: str, *, by: str | None = None,
                   **pool_kw) -> SubgroupTable:
    """Pool every subgroup and every analysis's total, with both kinds of study weight.

    RevMan 5 pools each subgroup on its own (its own tau², never a common
    one: R meta's ``settings.meta("RevMan5")`` sets ``tau.common = FALSE``) and
    the overall total from all studies of the analysis (its own tau²). It
    stores a study's weight as a percent of the overall total when the
    analysis shows one, and of its subgroup's total when it shows subgroup
    totals only; both are returned, so a stored WEIGHT can be compared with
    the one that applies. The test for subgroup differences is Cochran's Q of
    the subgroup estimates with weights ``1/se²`` on (number of subgroups - 1)
    df, and its I² (Deeks & Higgins 2010; Borenstein et al. 2009, chapter 19).

    Two vectorised :func:`pool` calls in all (totals, subgroups), whatever the
    number of analyses.

    Parameters
    ----------
    frame : DataFrame
        The studies of all analyses, one row per study.
    subgroup : str
        Column naming each study's subgroup.
    by : str, optional
        Column naming the analysis (e.g. comparison and outcome); study labels
        must be unique within it.
    **pool_kw
        Passed to :func:`pool` (method, test, level, convention, ...).

    Returns
    -------
    SubgroupTable
    """
    file = frame.attrs.get("source", "<data>")
    for col in (subgroup,) + ((by,) if by else ()):
        if col not in frame.columns:
            raise InputError(f"missing column '{col}'", file=file)
    work = frame.reset_index(drop=True)
    attrs = dict(frame.attrs)
    key = "_analysis" if by is None else by
    if by is None:
        work = work.assign(_analysis=0)
    sub_codes, _ = pd.factorize(pd.MultiIndex.from_arrays([work[key], work[subgroup]]), sort=False)
    work = work.assign(_subgroup_key=sub_codes)
    work.attrs.update(attrs)
    totals = pool(work, measure, by=key, **pool_kw)
    subs = pool(work, measure, by="_subgroup_key", **pool_kw)
    first = work.drop_duplicates("_subgroup_key").set_index("_subgroup_key")
    summ = subs.summary.copy()
    summ.insert(0, subgroup, first.loc[summ["_subgroup_key"], subgroup].to_numpy())
    if by is not None:
        summ.insert(0, by, first.loc[summ["_subgroup_key"], by].to_numpy())
    studies = pd.DataFrame({subgroup: work[subgroup].to_numpy()})
    if by is not None:
        studies.insert(0, by, work[by].to_numpy())
    studies = pd.concat([studies, totals.studies.drop(columns=[key]).reset_index(drop=True)], axis=1)
    studies = studies.rename(columns={"weight": "weight_total"})
    studies["weight_subgroup"] = subs.studies["weight"].to_numpy()
    # test for subgroup differences, per analysis (vectorised over analyses)
    codes, keys = pd.factorize(first.loc[summ["_subgroup_key"], key].to_numpy(), sort=False)
    est, se = summ["estimate"].to_numpy(float), summ["se"].to_numpy(float)
    ok = np.isfinite(est) & np.isfinite(se) & (se > 0)
    seg = _core.Segments(codes[ok], len(keys))
    w = 1 / se[ok] ** 2
    mu = seg.sum(w * est[ok]) / seg.sum(w)
    qb = seg.sum(w * (est[ok] - mu[seg.g]) ** 2)
    dfb = seg.k - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(dfb > 0, stats.chi2.sf(qb, np.maximum(dfb, 1)), np.nan)
        i2 = np.where(qb > 0, np.maximum(0.0, 100 * (qb - dfb) / qb), 0.0)
    diff = pd.DataFrame({key: keys, "q_between": np.where(dfb > 0, qb, np.nan),
                         "q_between_df": np.maximum(dfb, 0).astype(int), "q_between_pvalue": p,
                         "i2_between": np.where(dfb > 0, i2, np.nan)})
    subs = PoolTable(by="_subgroup_key", summary=summ, studies=subs.studies, measure=subs.measure,
                     method=subs.method, test=subs.test, level=subs.level, corrections=subs.corrections,
                     excluded=subs.excluded, warnings=subs.warnings, convention=subs.convention,
                     study_level=subs.study_level)
    if by is None:
        diff = diff.drop(columns=[key])
    return SubgroupTable(by=by, subgroup=subgroup, totals=totals, subgroups=subs, studies=studies,
                         differences=diff)
