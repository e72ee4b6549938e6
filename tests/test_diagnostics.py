"""metarepro.diagnostics and metarepro.metareg against metafor 3.8.

Reference values: tests/reference/metafor_diagnostics.json (make_diagnostics.R) and
tests/reference/metafor_diagnostics_extra.json (make_diagnostics_extra.R); every entry
records the R call that produced it. The few checks without a metafor counterpart
(shared-control splitting, the Handbook caution, method forensics on made-up targets)
assert numbers worked out by hand in the test.

Tolerances (``np.isclose`` rtol / atol), by how the quantity is computed:

* CLOSED, rtol 1e-10 / atol 1e-12: closed forms (FE, DL fits, Egger's lm, Kendall's
  tau and its exact p, trim-and-fill k0 and its SE, hat values, weights, Q).
  Only floating-point rounding differs.
* ITER, rtol 1e-7 / atol 1e-9: anything depending on an iterative tau2 (REML, ML,
  PM, EB: metafor stopped Fisher scoring at threshold 1e-12, we at 1e-13 or a root
  search) and the influence statistics built from k refits. Observed differences
  are <= 1e-10 relative.
* REG, rtol 1e-8 / atol 1e-9: meta-regressions. With ``year`` (~1950-1980) next to
  the intercept X'WX has a condition number near 1e10, so rounding is amplified
  (metafor centres y and inverts by Cholesky, we invert directly); observed
  differences are <= 2e-9 absolute on values of order 1-100.
* Exact permutation tests: the same count of permutations, so equal to 1e-12.
* Approximate permutation tests: R's random stream cannot be reproduced, so our
  p (numpy, fixed seed) and metafor's (set.seed(1234)) are two Monte-Carlo
  estimates of the same p: they must agree within 4 sd of their difference,
  ``4 sqrt(2 p (1-p) / 1000)``, plus 1/1000.
"""

from __future__ import annotations

import json
import math
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import metarepro
from metarepro import diagnostics as dg
from metarepro import forensics as fo
from metarepro import multiarm as ma
from metarepro import small_study as ss
from metarepro.errors import InputError
from metarepro.metareg import meta_regression, model_matrix, permutation_test

HERE = Path(__file__).parent / "reference"
MAIN = json.loads((HERE / "metafor_diagnostics.json").read_text())
EXTRA = json.loads((HERE / "metafor_diagnostics_extra.json").read_text())
REF = {e["id"]: e for e in MAIN["diagnostics"]}
REFX = {e["id"]: e for e in EXTRA["diagnostics"]}
POOLREF = {c["id"]: c for c in json.loads((HERE / "metafor_reference.json").read_text())["cases"]}

CLOSED = {"rtol": 1e-10, "atol": 1e-12}
ITER = {"rtol": 1e-7, "atol": 1e-9}
REG = {"rtol": 1e-8, "atol": 1e-9}
DATASETS = {
    "bcg_mods": "RR",
    "hackshaw1998_mods": "GEN",
    "raudenbush1985_mods": "GEN",
    "molloy2014_mods": "ZCOR",
}
METHOD = {"RE": "REML", "FE": "FE"}
_EXACT = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}

# every reference entry the tests below rely on; a missing one is a failure, not a skip
NEEDED_MAIN = [
    f"{ds}/{kind}/{m}{suffix}"
    for ds in DATASETS
    for m in ("RE", "FE")
    for kind, suffix in (
        ("regtest", "/rma"),
        ("regtest", "/lm"),
        ("ranktest", ""),
        ("trimfill", "/L0"),
        ("trimfill", "/R0"),
        ("leave1out", ""),
        ("influence", ""),
        ("cumul", "/year"),
    )
]
NEEDED_MAIN += [
    "bcg_mods/mods/~ablat/REML/z",
    "bcg_mods/mods/~ablat/REML/knha",
    "bcg_mods/mods/~ablat+year/REML/z",
    "bcg_mods/permutest/~ablat/z",
    "bcg_mods/permutest/~ablat/knha",
    "bcg_mods/subgroup/alloc/REML/mods",
    "bcg_mods/subgroup/alloc/REML/separate",
    "bcg_mods/subgroup/alloc/FE/mods",
    "bcg_mods/subgroup/alloc/FE/separate",
]
NEEDED_EXTRA = [
    f"bcg/mods/~ablat+year/{m}/{t}"
    for m in ("FE", "DL", "HE", "HS", "SJ", "ML", "REML", "PM", "EB")
    for t in ("z", "knha")
] + [
    "bcg6/permutest/~ablat/REML/z",
    "bcg6/permutest/~ablat/REML/knha",
    "bcg9/permutest/int/DL/z",
    "bcg9/permutest/int/REML/knha",
    "bcg/DL/knha/influence",
    "hackshaw/ML/z/influence",
    "curtis/REML/z/ranktest",
    "bcg/DL/z/trimfill/Q0",
    "bcg/DL/z/trimfill/L0/left",
    "bcg/REML/z/baujat",
    "bcg/FE/z/baujat",
    "bcg/MH/OR/leave1out",
    "bcg/MH/OR/cumul/year",
    "bcg/mods/~factor(alloc)/DL/knha",
    "bcg/REML/z/regtest/rma/vi",
    "bcg/REML/z/regtest/lm/vi",
]
NEEDED_POOL = [
    "collins1985a/OR/DL/z/toall",
    "collins1985a/OR/REML/knha/drop00",
    "collins1985a/OR/MH/z",
    "collins1985a/OR/PETO/z",
    "collins1985a/OR/HS/z",
    "normand1999/MD/PM/knha",
]


def test_reference_cases_present():
    assert MAIN["metafor_version"].startswith("3.8") and EXTRA["metafor_version"].startswith("3.8")
    missing = (
        [i for i in NEEDED_MAIN if i not in REF]
        + [i for i in NEEDED_EXTRA if i not in REFX]
        + [i for i in NEEDED_POOL if i not in POOLREF]
    )
    assert not missing, missing
    errors = [e["id"] for e in EXTRA["diagnostics"] if "error" in e]
    assert not errors, errors
    for e in EXTRA["diagnostics"]:
        assert e["call"] and e["setup"], e["id"]


@cache
def _load(name):
    frame = pd.read_csv(HERE / "data" / f"{name}.csv", dtype={"study": str}, **_EXACT)
    return frame


def _pool(frame, measure, method, test="z"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return metarepro.pool(frame, measure=measure, method=method, test=test)


def _arr(x):
    return np.array([np.nan if v is None else v for v in (x if isinstance(x, list) else [x])], float)


def _close(got, want, tol, what=""):
    got = np.asarray(got, float).ravel()
    want = _arr(want)
    assert got.shape == want.shape, (what, got, want)
    ok = np.isclose(got, want, equal_nan=True, **tol)
    assert ok.all(), (what, got[~ok], want[~ok])


def _tol(method):
    return CLOSED if method in ("FE", "DL", "HS", "HE", "SJ") else ITER


# --------------------------------------------------------------------------
# meta-regression
# --------------------------------------------------------------------------


def _bcg_effects():
    res = _pool(_load("bcg_mods"), "RR", "FE")
    return res.studies["yi"].to_numpy(), res.studies["vi"].to_numpy()


def _check_mods(fit, r, tol):
    c = fit.coefficients
    assert fit.k == r["k"] and list(c["term"]) == [
        n.replace("factor(alloc)", "alloc") for n in r["coef_names"]
    ]
    for ours, theirs in (
        ("estimate", "beta"),
        ("se", "se"),
        ("statistic", "zval"),
        ("pvalue", "pval"),
        ("ci_lower", "ci.lb"),
        ("ci_upper", "ci.ub"),
    ):
        _close(c[ours], r[theirs], tol, ours)
    for ours, theirs in (
        ("qm", "QM"),
        ("qm_pvalue", "QMp"),
        ("tau2", "tau2"),
        ("i2", "I2"),
        ("h2", "H2"),
        ("qe", "QE"),
        ("qe_pvalue", "QEp"),
        ("r2", "R2"),
    ):
        _close(getattr(fit, ours), r[theirs], tol, ours)
    assert list(fit.qm_df) == [None if x is None else int(x) for x in r["QMdf"]]


@pytest.mark.parametrize("method", ["FE", "DL", "HE", "HS", "SJ", "ML", "REML", "PM", "EB"])
@pytest.mark.parametrize("test", ["z", "knha"])
def test_meta_regression_every_estimator(method, test):
    y, v = _bcg_effects()
    fit = meta_regression(y, v, _load("bcg_mods")[["ablat", "year"]], method=method, test=test)
    r = REFX[f"bcg/mods/~ablat+year/{method}/{test}"]["result"]
    _check_mods(fit, r, REG)
    assert fit.df == r["ddf"]


@pytest.mark.parametrize(
    "entry",
    [
        "bcg_mods/mods/~ablat/REML/z",
        "bcg_mods/mods/~ablat/REML/knha",
        "bcg_mods/mods/~ablat+year/REML/knha",
        "hackshaw1998_mods/mods/~year/REML/z",
        "raudenbush1985_mods/mods/~weeks/REML/knha",
        "molloy2014_mods/mods/~meanage/REML/z",
    ],
)
def test_meta_regression_main_reference(entry):
    ds, _, mods, _, test = entry.split("/")
    res = _pool(_load(ds), DATASETS[ds], "FE")
    cols = mods.lstrip("~").split("+")
    fit = meta_regression(res.studies["yi"], res.studies["vi"], _load(ds)[cols], method="REML", test=test)
    _check_mods(fit, REF[entry]["result"], REG)


@pytest.mark.parametrize(
    "entry",
    [
        "hackshaw/mods/~year/DL/z",
        "hackshaw/mods/~year/ML/z",
        "hackshaw/mods/~year/PM/z",
        "bcg/mods/~factor(alloc)/DL/knha",
        "bcg/mods/~factor(alloc)/FE/z",
    ],
)
def test_meta_regression_more(entry):
    ds, _, _mods, method, test = entry.split("/")
    if ds == "bcg":
        y, v = _bcg_effects()
        X = _load("bcg_mods")[["alloc"]]
    else:
        f = _load("hackshaw1998_mods")
        y, v, X = f["yi"], f["vi"], f[["year"]]
    _check_mods(meta_regression(y, v, X, method=method, test=test), REFX[entry]["result"], REG)


def test_model_matrix_codes_factors_like_r():
    X = model_matrix(pd.DataFrame({"g": ["b", "a", "c", "a"], "x": ["1", "2", "3", "4"]}))
    assert list(X.columns) == ["intrcpt", "gb", "gc", "x"]
    assert X["gb"].tolist() == [1, 0, 0, 0] and X["x"].tolist() == [1, 2, 3, 4]


def test_meta_regression_rejects_rank_deficient():
    with pytest.raises(InputError, match="full rank"):
        meta_regression([0.1, 0.2, 0.3, 0.4], [0.1] * 4, pd.DataFrame({"x": [1.0] * 4}))


# --------------------------------------------------------------------------
# permutation tests
# --------------------------------------------------------------------------


@pytest.mark.parametrize("test", ["z", "knha"])
def test_permutation_exact_meta_regression(test):
    # 6 studies, ablat has a tie: 6!/2! = 360 distinct orders <= iter, so metafor is exact
    y, v = _bcg_effects()
    r = permutation_test(y[:6], v[:6], _load("bcg_mods")[["ablat"]][:6], method="REML", test=test, iter=1000)
    want = REFX[f"bcg6/permutest/~ablat/REML/{test}"]["result"]
    assert r.exact and r.iter == want["zval.perm_n"] == 360
    _close(r.pvalues, want["pval"], {"rtol": 0, "atol": 1e-12})
    _close(r.qm_pvalue, want["QMp"], {"rtol": 0, "atol": 1e-12})


@pytest.mark.parametrize("method,test", [("DL", "z"), ("REML", "knha")])
def test_permutation_exact_intercept_only(method, test):
    y, v = _bcg_effects()
    r = permutation_test(y[:9], v[:9], None, method=method, test=test, iter=1000)
    want = REFX[f"bcg9/permutest/int/{method}/{test}"]["result"]
    assert r.exact and r.iter == 512 == want["zval.perm_n"]
    _close(r.pvalues, want["pval"], {"rtol": 0, "atol": 1e-12})


@pytest.mark.parametrize("test", ["z", "knha"])
def test_permutation_approximate_within_monte_carlo_error(test):
    y, v = _bcg_effects()
    fit = meta_regression(y, v, _load("bcg_mods")[["ablat"]], method="REML", test=test)
    r = permutation_test(fit, iter=1000, seed=20240601)
    want = REF[f"bcg_mods/permutest/~ablat/{test}"]["result"]
    assert not r.exact and r.iter == want["iter"] == 1000
    for ours, theirs in zip(list(r.pvalues) + [r.qm_pvalue], want["pval"] + [want["QMp"]]):
        sd = math.sqrt(2 * theirs * (1 - theirs) / 1000)
        assert abs(ours - theirs) <= 4 * sd + 1e-3, (ours, theirs)
    # observed data count as the first permutation: p >= 1/iter
    assert min(r.pvalues) >= 1e-3


# --------------------------------------------------------------------------
# small-study effects
# --------------------------------------------------------------------------


def _main_entries(kind):
    return [(ds, m) for ds in DATASETS for m in ("RE", "FE")]


@pytest.mark.parametrize("ds,model", _main_entries("regtest"))
def test_egger_and_rank_tests(ds, model):
    res = _pool(_load(ds), DATASETS[ds], METHOD[model])
    tol = ITER if model == "RE" else CLOSED
    for kind in ("rma", "lm"):
        r = REF[f"{ds}/regtest/{model}/{kind}"]["result"]
        e = ss.egger_test(res, model=kind)
        t = tol if kind == "rma" else CLOSED
        _close(
            [e.statistic, e.pvalue, e.limit_estimate, e.limit_ci_lower, e.limit_ci_upper],
            [r["zval"], r["pval"], r["est"], r["ci.lb"], r["ci.ub"]],
            t,
            kind,
        )
        _close([e.slope, e.slope_se], [r["fit_coef"][1], r["fit_se"][1]], t, kind)
        assert e.df == r["dfs"]
    r = REF[f"{ds}/ranktest/{model}"]["result"]
    b = ss.begg_test(res)
    _close([b.tau, b.pvalue], [r["tau"], r["pval"]], CLOSED, "ranktest")
    # metafor warned "Cannot compute exact p-value with ties" exactly where we use the normal approximation
    assert b.exact == ("warning" not in REF[f"{ds}/ranktest/{model}"])


@pytest.mark.parametrize("nm", ["bcg/DL/knha", "bcg/DL/z", "hackshaw/ML/z", "hackshaw/PM/z", "curtis/REML/z"])
def test_egger_rank_trimfill_other_methods(nm):
    ds, method, test = nm.split("/")
    frame, measure = {
        "bcg": ("bcg_mods", "RR"),
        "hackshaw": ("hackshaw1998_mods", "GEN"),
        "curtis": ("curtis1998", "MD"),
    }[ds]
    res = _pool(_load(frame), measure, method, test)
    tol = _tol(method)
    for kind in ("rma", "lm"):
        r = REFX[f"{nm}/regtest/{kind}"]["result"]
        e = ss.egger_test(res, model=kind)
        _close(
            [e.statistic, e.pvalue, e.limit_estimate, e.limit_ci_lower, e.limit_ci_upper],
            [r["zval"], r["pval"], r["est"], r["ci.lb"], r["ci.ub"]],
            tol if kind == "rma" else CLOSED,
            kind,
        )
        assert e.df == r["dfs"]
    r = REFX[f"{nm}/ranktest"]["result"]
    b = ss.begg_test(res)
    assert b.exact  # no ties: exact p, also for curtis with k = 102 (metafor passes exact=TRUE)
    _close([b.tau, b.pvalue], [r["tau"], r["pval"]], CLOSED, "ranktest")
    for est in ("L0", "R0"):
        _check_trimfill(
            ss.trim_and_fill(res, estimator=est), REFX[f"{nm}/trimfill/{est}"]["result"], res, tol
        )


def _check_trimfill(tf, r, res, tol):
    assert tf.k0 == r["k0"] and tf.side == r["side"]
    _close(tf.se_k0, r["se.k0"], CLOSED, "se.k0")
    _close(np.nan if tf.p_k0 is None else tf.p_k0, r["p.k0"], CLOSED, "p.k0")
    yi = np.concatenate([res.studies["yi"].to_numpy(), tf.filled["yi"].to_numpy()])
    vi = np.concatenate([res.studies["vi"].to_numpy(), tf.filled["vi"].to_numpy()])
    _close(yi, r["yi"], tol, "filled yi")
    _close(vi, r["vi"], CLOSED, "filled vi")
    fit = tf.result
    assert fit.k == r["k"]
    _close(
        [
            fit.estimate,
            fit.se,
            fit.statistic,
            fit.pvalue,
            fit.ci_lower,
            fit.ci_upper,
            fit.tau2,
            fit.i2,
            fit.h2,
            fit.q,
            fit.q_pvalue,
        ],
        [
            r["estimate"],
            r["se"],
            r["zval"],
            r["pval"],
            r["ci.lb"],
            r["ci.ub"],
            r["tau2"],
            r["I2"],
            r["H2"],
            r["QE"],
            r["QEp"],
        ],
        tol,
        "refit",
    )


@pytest.mark.parametrize("ds,model", _main_entries("trimfill"))
@pytest.mark.parametrize("est", ["L0", "R0"])
def test_trim_and_fill(ds, model, est):
    res = _pool(_load(ds), DATASETS[ds], METHOD[model])
    tf = ss.trim_and_fill(res, estimator=est)
    _check_trimfill(tf, REF[f"{ds}/trimfill/{model}/{est}"]["result"], res, ITER if model == "RE" else CLOSED)


@pytest.mark.parametrize("kind", ["rma", "lm"])
def test_egger_with_variance_predictor(kind):
    r = REFX[f"bcg/REML/z/regtest/{kind}/vi"]["result"]
    e = ss.egger_test(_pool(_load("bcg_mods"), "RR", "REML"), model=kind, predictor="vi")
    _close(
        [e.statistic, e.pvalue, e.limit_estimate, e.limit_ci_lower, e.limit_ci_upper],
        [r["zval"], r["pval"], r["est"], r["ci.lb"], r["ci.ub"]],
        ITER if kind == "rma" else CLOSED,
        kind,
    )


def test_trim_and_fill_q0_and_given_side():
    res = _pool(_load("bcg_mods"), "RR", "DL")
    _check_trimfill(
        ss.trim_and_fill(res, estimator="Q0"), REFX["bcg/DL/z/trimfill/Q0"]["result"], res, CLOSED
    )
    tf = ss.trim_and_fill(res, side="left")
    _check_trimfill(tf, REFX["bcg/DL/z/trimfill/L0/left"]["result"], res, CLOSED)
    assert tf.result is tf.original and tf.filled.empty


def test_small_study_caution():
    assert ss.small_study_caution(10) is None
    text = ss.small_study_caution(9)
    assert text.startswith("k = 9 < 10") and "at least 10 studies" in text and "13.3.5.4" in text
    y, v = _bcg_effects()
    assert ss.egger_test(y[:8], v[:8], method="FE").caution == ss.small_study_caution(8)
    assert ss.egger_test(y, v).caution is None


# --------------------------------------------------------------------------
# influence, leave-one-out, cumulative, Baujat
# --------------------------------------------------------------------------

INF = (
    ("rstudent", "rstudent"),
    ("dffits", "dffits"),
    ("cook_d", "cook.d"),
    ("cov_r", "cov.r"),
    ("tau2_del", "tau2.del"),
    ("qe_del", "QE.del"),
    ("hat", "hat"),
    ("weight", "weight"),
    ("dfbetas", "dfbs"),
)


def _check_influence(inf, r, tol):
    for ours, theirs in INF:
        _close(inf[ours], r[theirs], tol, ours)
    assert list(inf["influential"]) == r["inf"]


@pytest.mark.parametrize("ds,model", _main_entries("influence"))
def test_influence(ds, model):
    res = _pool(_load(ds), DATASETS[ds], METHOD[model])
    r = REF[f"{ds}/influence/{model}"]["result"]
    inf = dg.influence_measures(res)
    assert list(inf["study"]) == r["slab"]
    _check_influence(inf, r, ITER if model == "RE" else CLOSED)


@pytest.mark.parametrize("nm", ["bcg/DL/knha", "bcg/DL/z", "hackshaw/ML/z", "hackshaw/PM/z"])
def test_influence_leave1out_baujat_other_methods(nm):
    ds, method, test = nm.split("/")
    frame, measure = {"bcg": ("bcg_mods", "RR"), "hackshaw": ("hackshaw1998_mods", "GEN")}[ds]
    res = _pool(_load(frame), measure, method, test)
    tol = _tol(method)
    # knha: the Knapp-Hartung factor enters rstudent, dffits, dfbetas and Var(mu)
    _check_influence(dg.influence_measures(res), REFX[f"{nm}/influence"]["result"], ITER)
    _check_l1o(dg.leave_one_out(res), REFX[f"{nm}/leave1out"]["result"], tol)
    b = dg.baujat(res)
    r = REFX[f"{nm}/baujat"]["result"]
    assert list(b["study"]) == r["slab"]
    _close(b["x"], r["x"], tol, "baujat x")
    _close(b["y"], r["y"], ITER, "baujat y")


L1O = (
    ("estimate", "estimate"),
    ("se", "se"),
    ("statistic", "zval"),
    ("pvalue", "pval"),
    ("ci_lower", "ci.lb"),
    ("ci_upper", "ci.ub"),
    ("q", "Q"),
    ("q_pvalue", "Qp"),
    ("tau2", "tau2"),
    ("i2", "I2"),
    ("h2", "H2"),
)


def _check_l1o(tab, r, tol, cols=L1O):
    for ours, theirs in cols:
        if theirs in r and not all(x is None for x in r[theirs]):  # metafor has no tau2 for FE/MH
            _close(tab[ours], r[theirs], tol, ours)


@pytest.mark.parametrize("ds,model", _main_entries("leave1out"))
def test_leave_one_out(ds, model):
    frame = _load(ds)
    res = _pool(frame, DATASETS[ds], METHOD[model])
    r = REF[f"{ds}/leave1out/{model}"]["result"]
    tab = dg.leave_one_out(res)
    assert list(tab["omitted"]) == r["slab"]
    _check_l1o(tab, r, ITER if model == "RE" else CLOSED)
    # the same from the study table
    tab2 = dg.leave_one_out(frame, measure=DATASETS[ds], method=METHOD[model])
    _check_l1o(tab2, r, ITER if model == "RE" else CLOSED)


@pytest.mark.parametrize("ds,model", _main_entries("cumul"))
def test_cumulative(ds, model):
    frame = _load(ds)
    r = REF[f"{ds}/cumul/{model}/year"]["result"]
    tab = dg.cumulative(frame, order="year", measure=DATASETS[ds], method=METHOD[model])
    assert list(tab["added"]) == r["slab"]
    cols = [(o, "pvals" if t == "pval" else t) for o, t in L1O]
    _check_l1o(tab, r, ITER if model == "RE" else CLOSED, cols)
    res = _pool(frame, DATASETS[ds], METHOD[model])
    tab2 = dg.cumulative(res, order=frame["year"].to_numpy())
    assert list(tab2["added"]) == r["slab"]


def test_cumulative_knha():
    r = REFX["bcg/DL/knha/cumul/year"]["result"]
    tab = dg.cumulative(_load("bcg_mods"), order="year", measure="RR", method="DL", test="knha")
    assert list(tab["added"]) == r["slab"]
    _check_l1o(tab, r, CLOSED, [(o, "pvals" if t == "pval" else t) for o, t in L1O])


@pytest.mark.parametrize("method", ["REML", "FE"])
def test_baujat(method):
    r = REFX[f"bcg/{method}/z/baujat"]["result"]
    b = dg.baujat(_pool(_load("bcg_mods"), "RR", method))
    tol = ITER if method == "REML" else CLOSED
    _close(b["x"], r["x"], tol, "x")
    _close(b["y"], r["y"], tol, "y")
    # FE: x is the study's term of Cochran's Q, so the x values add up to Q
    if method == "FE":
        assert math.isclose(b["x"].sum(), REF["bcg_mods/fit/FE"]["result"]["QE"], rel_tol=1e-10)


def test_mantel_haenszel_leave1out_and_cumulative_from_table():
    frame = _load("bcg_mods")
    mh = [c for c in L1O if c[1] != "tau2"]
    _check_l1o(
        dg.leave_one_out(frame, measure="OR", method="MH"), REFX["bcg/MH/OR/leave1out"]["result"], CLOSED, mh
    )
    r = REFX["bcg/MH/OR/cumul/year"]["result"]
    tab = dg.cumulative(frame, order="year", measure="OR", method="MH")
    assert list(tab["added"]) == r["slab"]
    _check_l1o(tab, r, CLOSED, [(o, "pvals" if t == "pval" else t) for o, t in mh])
    with pytest.raises(InputError, match="2x2 table"):
        dg.leave_one_out(_pool(frame, "OR", "MH"))


def test_leave_one_out_is_one_vectorised_pool_call(monkeypatch):
    calls = []
    real = dg.pool

    def counting(*a, **kw):
        calls.append(kw.get("by"))
        return real(*a, **kw)

    from metarepro import _studies

    monkeypatch.setattr(dg, "pool", counting)
    monkeypatch.setattr(_studies, "pool", counting)
    y, v = _bcg_effects()
    dg.leave_one_out(y, v, method="REML")
    dg.cumulative(y, v, order=np.arange(y.size)[::-1], method="REML")
    assert calls == ["_group", "_group"]


# --------------------------------------------------------------------------
# subgroups and integrity sensitivity
# --------------------------------------------------------------------------

SUB = {
    "bcg_mods": "alloc",
    "hackshaw1998_mods": "design",
    "raudenbush1985_mods": "tester",
    "molloy2014_mods": "design",
}


@pytest.mark.parametrize("ds", list(SUB))
@pytest.mark.parametrize("method", ["REML", "FE"])
def test_subgroup_analysis(ds, method):
    g = SUB[ds]
    s = dg.subgroup_analysis(_load(ds), DATASETS[ds], g, method)
    sep = REF[f"{ds}/subgroup/{g}/{method}/separate"]["result"]
    mods = REF[f"{ds}/subgroup/{g}/{method}/mods"]["result"]
    tol = _tol(method)
    assert list(s.subgroups[g]) == sep["levels"]
    for col, key in (("estimate", "estimate"), ("se", "se"), ("tau2", "tau2"), ("q", "QE")):
        _close(s.subgroups[col], [f[key] for f in sep["fits"]], tol, col)
    _close([s.q_between, s.q_between_pvalue], [sep["Q_between"], sep["Q_between_p"]], tol, "Q between")
    assert s.q_between_df == sep["Q_between_df"]
    _close([s.qm, s.qm_pvalue, s.regression.tau2], [mods["QM"], mods["QMp"], mods["tau2"]], tol, "QM")
    assert s.qm_df[0] == mods["QMdf"][0] and s.qm_test == "chisq"
    json.dumps(s.to_dict())


def test_subgroup_knha_is_an_f_test():
    s = dg.subgroup_analysis(_load("bcg_mods"), "RR", "alloc", "DL", "knha")
    r = REFX["bcg/mods/~factor(alloc)/DL/knha"]["result"]
    _close([s.qm, s.qm_pvalue], [r["QM"], r["QMp"]], CLOSED, "QM")
    assert s.qm_test == "F" and list(s.qm_df) == r["QMdf"]


def test_sensitivity_without_matches_metafor_leave1out():
    frame = _load("bcg_mods")
    r = REF["bcg_mods/leave1out/RE"]["result"]
    i = r["slab"].index("TPT Madras 1980")
    s = dg.sensitivity_without(frame, ["TPT Madras 1980"], "RR", "REML")
    _close(
        [s.reduced.estimate, s.reduced.se, s.reduced.tau2, s.reduced.q],
        [r["estimate"][i], r["se"][i], r["tau2"][i], r["Q"][i]],
        ITER,
        "reduced",
    )
    full = REF["bcg_mods/fit/RE"]["result"]
    _close([s.full.estimate, s.full.tau2], [full["estimate"], full["tau2"]], ITER, "full")
    assert s.full.k == 13 and s.reduced.k == 12 and s.dropped == ("TPT Madras 1980",)
    side = s.to_frame().set_index("field")
    assert side.loc["estimate", "difference"] == pytest.approx(r["estimate"][i] - full["estimate"], abs=1e-8)
    assert side.loc["estimate_natural", "reduced"] == pytest.approx(math.exp(r["estimate"][i]), rel=1e-8)
    with pytest.raises(InputError, match="not in the table"):
        dg.sensitivity_without(frame, ["No Such 2000"], "RR")


# --------------------------------------------------------------------------
# method forensics
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case,method,test,conv",
    [
        ("collins1985a/OR/DL/z/toall", "DL", "z", {("all", False)}),
        # for OR, RevMan 5's rule (metarepro.conventions) drops the same studies as drop00
        ("collins1985a/OR/REML/knha/drop00", "REML", "knha", {("only0", True), ("only0", "revman5")}),
        ("collins1985a/OR/HS/z", "HS", "z", {("only0", False)}),
        ("collins1985a/OR/MH/z", "MH", "z", None),
        ("collins1985a/OR/PETO/z", "PETO", "z", None),
    ],
)
def test_method_forensics_finds_metafor_fit(case, method, test, conv):
    fit = POOLREF[case]["fit"]
    target = [math.exp(fit[k]) for k in ("estimate", "ci_lower", "ci_upper")]
    # published to 8 decimals: only a combination equal to metafor's fit (to ~1e-8) matches
    out = fo.method_forensics(_load("collins1985a"), "OR", *target, decimals=8)
    hits = out[out["matches_estimate"] & out["matches_ci"]]
    assert len(hits) and (hits.index == np.arange(len(hits))).all()  # best first
    want = {(method, test)}
    if test == "knha":  # the ad hoc correction changes nothing when s2 >= 1 (metafor's own adhoc fit says)
        twin = POOLREF[case.replace("/knha", "/adhoc")]["fit"]
        if math.isclose(twin["ci_lower"], fit["ci_lower"], rel_tol=1e-12):
            want.add((method, "adhoc"))
    assert set(zip(hits["method"], hits["test"])) == want
    if conv is not None:
        assert set(zip(hits["to"], hits["drop00"])) == conv
    assert hits["max_abs_diff"].max() < 1e-7
    # 12 methods x 6 conventions (5 of metafor's zero-cell variants, RevMan 5's): 9 inverse-variance
    # methods and MH-DL x 3 tests (z, knha, adhoc), MH and Peto x 1
    assert len(out) == (9 + 1) * 3 * 6 + 2 * 6
    assert list(out["convention"].value_counts().sort_index()) == [5 * 32, 32]


def test_method_forensics_continuous_and_rounding():
    fit = POOLREF["normand1999/MD/PM/knha"]["fit"]
    est, lo, hi = (round(fit[k], 1) for k in ("estimate", "ci_lower", "ci_upper"))
    out = fo.method_forensics(_load("normand1999"), "MD", est, lo, hi, decimals=1)
    assert set(out["zero_cells"]) == {"not applicable"} and len(out) == 9 * 3
    row = out[(out["method"] == "PM") & (out["test"] == "knha")].iloc[0]
    assert row["matches_estimate"] and row["matches_ci"]
    # hand check of the rounding rule: a value matches when it is within half a unit of the last decimal
    assert row["max_abs_diff"] <= 0.05 + 1e-9
    assert out.iloc[0]["matches_estimate"] and out.iloc[0]["matches_ci"]


# --------------------------------------------------------------------------
# multi-arm trials (hand calculation: Cochrane Handbook 23.3.4)
# --------------------------------------------------------------------------


def test_split_shared_control_binary():
    frame = pd.DataFrame(
        {
            "study": ["Burt 2019", "Burt 2019", "Other 2000"],
            "comparison": ["4000 vs 400", "10000 vs 400", "A vs B"],
            "arm_c": ["400 IU", "400 IU", "B"],
            "events_t": [10, 12, 5],
            "total_t": [100, 102, 50],
            "events_c": [21, 21, 7],
            "total_c": [109, 109, 48],
        }
    )
    out, corr = ma.split_shared_control(frame)
    # 109 = 55 + 54 and 21 = 11 + 10: whole numbers, the larger part first, sums kept
    assert out["total_c"].tolist() == [55, 54, 48] and out["events_c"].tolist() == [11, 10, 7]
    assert out["events_t"].tolist() == [10, 12, 5] and out["total_t"].tolist() == [100, 102, 50]
    assert out["study"].tolist() == ["Burt 2019 (4000 vs 400)", "Burt 2019 (10000 vs 400)", "Other 2000"]
    assert [c["row"] for c in corr] == [0, 1] and all(c["shared_by"] == 2 for c in corr)
    assert "total_c 109 -> 55" in corr[0]["action"] and "events_c 21 -> 10" in corr[1]["action"]
    assert frame["total_c"].tolist() == [109, 109, 48]  # input untouched
    res = _pool(out, "RR", "FE")
    assert res.k == 3


def test_split_shared_control_three_arms_continuous():
    frame = pd.DataFrame(
        {
            "study": ["T"] * 3,
            "arm_t": ["a", "b", "c"],
            "arm_c": ["ctl"] * 3,
            "mean_t": [1.0, 2.0, 3.0],
            "sd_t": [1.0, 1.0, 1.0],
            "total_t": [20, 20, 20],
            "mean_c": [0.5] * 3,
            "sd_c": [1.2] * 3,
            "total_c": [31] * 3,
        }
    )
    out, corr = ma.split_shared_control(frame)
    assert out["total_c"].tolist() == [11, 10, 10]  # 31 = 11 + 10 + 10
    assert out["mean_c"].tolist() == [0.5] * 3 and out["sd_c"].tolist() == [1.2] * 3
    assert out["study"].tolist() == ["T (a)", "T (b)", "T (c)"] and len(corr) == 3


def test_split_shared_control_generic_is_reported_not_split():
    frame = pd.DataFrame(
        {
            "study": ["T", "T"],
            "arm_c": ["ctl", "ctl"],
            "comparison": ["x", "y"],
            "yi": [0.1, 0.2],
            "vi": [0.01, 0.02],
        }
    )
    out, corr = ma.split_shared_control(frame)
    assert out["yi"].tolist() == [0.1, 0.2] and all(c["action"].startswith("not split") for c in corr)


# --------------------------------------------------------------------------
# output objects
# --------------------------------------------------------------------------


def test_results_serialise():
    y, v = _bcg_effects()
    res = _pool(_load("bcg_mods"), "RR", "REML")
    for obj in (
        ss.egger_test(res),
        ss.begg_test(res),
        ss.trim_and_fill(res),
        meta_regression(y, v, _load("bcg_mods")[["ablat"]]),
        permutation_test(y[:6], v[:6], _load("bcg_mods")[["ablat"]][:6]),
        dg.sensitivity_without(_load("bcg_mods"), ["Aronson 1948"], "RR"),
    ):
        json.dumps(obj.to_dict())


def test_egger_lm_equals_statsmodels_wls():
    """Egger's original test is a weighted least-squares regression of y on its SE
    with weights 1/v (Egger et al. 1997): statsmodels' WLS computes it independently."""
    import statsmodels.api as sm

    frame = pd.read_csv(HERE / "data" / "bcg_mods.csv")
    st = metarepro.pool(frame, measure="RR", method="FE").studies
    fit = sm.WLS(st.yi.to_numpy(), sm.add_constant(np.sqrt(st.vi.to_numpy())), weights=1 / st.vi.to_numpy()).fit()
    got = ss.egger_test(st.yi.to_numpy(), st.vi.to_numpy(), model="lm")
    assert got.statistic == pytest.approx(fit.tvalues[1], rel=1e-10)
    assert got.pvalue == pytest.approx(fit.pvalues[1], rel=1e-10)
    assert got.limit_estimate == pytest.approx(fit.params[0], rel=1e-10)
    assert got.df == fit.df_resid
