"""metarepro.multilevel and metarepro.multiarm against metafor 3.8's rma.mv.

The reference values are written by ``tests/reference/make_multilevel.R``
(metafor 3.8-1 on R 4.2.2; the exact R call, the optimiser control and the
versions are stored with every case in ``metafor_multilevel.json``). The inputs
are the CSVs ``tests/reference/data/mv_*.csv`` that R read. Tolerances are
explained in ``tests/reference/README.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metarepro.multiarm import shared_control_covariance
from metarepro.multilevel import fit

HERE = Path(__file__).parent / "reference"
REF = json.loads((HERE / "metafor_multilevel.json").read_text())
CASES = {c["id"]: c for c in REF["cases"]}

# Every case the R script must produce (the grid of make_multilevel.R); a missing one fails below.
METHODS, TESTS = ("REML", "ML"), ("z", "t")
EXPECTED = (
    [f"konstantopoulos2011/{m}/{me}/{t}" for m in ("district", "district_school", "cs", "year")
     for me in METHODS for t in TESTS]
    + [f"konstantopoulos2011/none/EE/{t}" for t in TESTS]
    + [f"berkey1998/{m}/{me}/{t}" for m in ("cs", "hcs", "trial") for me in METHODS for t in TESTS]
    + ["berkey1998/none/EE/z"]
    + [f"{ds}/{ms}/{x}" for ds, mss in (("dogliotti2014", ("OR", "RR", "RD")), ("senn2013", ("MD", "SMD")),
                                         ("senn2013_rom", ("ROM",)))
       for ms in mss for x in [f"id/{me}/{t}" for me in METHODS for t in TESTS]
       + ["study_id/REML/z", "none/EE/z"]]
    + ["arms_toy/RR/id/REML/z", "arms_toy/RR/id/REML/t", "dogliotti2014/OR/id_mods/REML/t"]
)

# closed forms (EE/FE fits, the sampling covariance itself, QE): only rounding differs
CLOSED = {"rtol": 1e-10, "atol": 1e-12}
# variance components are optimised (metafor: nlminb with rel.tol 1e-12, 1e-11 or its default 1e-10,
# see each case's 'control'); metafor's own estimates move by up to ~1e-5 relative between controls,
# and a component at the boundary ends near 0 on the log scale (seen: 2.8e-7 in metafor)
VC = {"rtol": 2e-5, "atol": 5e-7}
# everything that depends on the variance components: coefficients, SEs, tests, fit statistics, weights
DEP = {"rtol": 1e-5, "atol": 1e-6}


def _data(name: str) -> pd.DataFrame:
    return pd.read_csv(HERE / "data" / f"mv_{name}.csv")


def _berkey_V(d: pd.DataFrame) -> np.ndarray:
    """bldiag of each trial's 2x2 (v1i, v2i) block, as the R script builds it."""
    k = len(d)
    V = np.zeros((k, k))
    for idx in d.groupby("trial").groups.values():
        idx = list(idx)
        V[np.ix_(idx, idx)] = d.loc[idx, ["v1i", "v2i"]].to_numpy()
    return V


def _python_fit(case_id: str):
    parts = case_id.split("/")
    ds = parts[0]
    d = _data(ds)
    if ds == "konstantopoulos2011":
        model, method, test = parts[1:]
        d["year_c"] = d["year"] - d["year"].mean()
        random = {"district": "~ 1 | district", "district_school": "~ 1 | district/school",
                  "cs": "~ school | district", "year": "~ 1 | district/school", "none": None}[model]
        mods = d[["year_c"]] if model == "year" else None
        return fit("yi", "vi", d, random=random, mods=mods, method=method, test=test, struct="CS"), None
    if ds == "berkey1998":
        model, method, test = parts[1:]
        random = {"cs": "~ outcome | trial", "hcs": "~ outcome | trial", "trial": "~ 1 | trial", "none": None}[model]
        return fit(d["yi"].to_numpy(), _berkey_V(d), d, random=random, mods=d[["outcome"]], intercept=False,
                   method=method, test=test, struct="HCS" if model == "hcs" else "CS"), None
    measure, model, method, test = parts[1:]
    cov = shared_control_covariance(d, measure)
    d["id"] = np.arange(1, len(d) + 1)
    random = {"id": "~ 1 | id", "id_mods": "~ 1 | id", "study_id": "~ 1 | study/id", "none": None}[model]
    mods = d[["arm_t"]] if model == "id_mods" else None
    return fit(cov.yi, cov.V, d, random=random, mods=mods, method=method, test=test), cov


def test_every_case_is_in_the_reference():
    missing = [i for i in EXPECTED if i not in CASES]
    failed = [i for i in EXPECTED if i in CASES and "result" not in CASES[i]]
    assert not missing, f"cases missing from metafor_multilevel.json: {missing}"
    assert not failed, f"metafor failed on: {failed}"
    assert REF["metafor_version"].startswith("3.8")


def _close(ours, ref, tol, what):
    ref = np.asarray([np.nan if x is None else x for x in np.atleast_1d(ref)], float)
    ours = np.atleast_1d(np.asarray(ours, float))
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs {ref.shape}"
    np.testing.assert_allclose(ours, ref, err_msg=what, equal_nan=True, **tol)


@pytest.mark.parametrize("case_id", EXPECTED)
def test_rma_mv(case_id):
    case = CASES[case_id]
    r = case["result"]
    res, cov = _python_fit(case_id)
    random_fit = "/EE/" not in case_id
    tol = DEP if random_fit else CLOSED
    if cov is not None:  # the covariance of comparisons sharing a control arm (hand-built in R)
        k = len(cov.yi)
        _close(cov.yi, case["escalc"]["yi"], CLOSED, "escalc yi")
        _close(cov.vi, case["escalc"]["vi"], CLOSED, "escalc vi")
        _close(cov.V.ravel(), case["escalc"]["V"], CLOSED, "V")
        assert k == r["k"]
    assert res.k == r["k"] and res.p == r["p"] and res.parms == r["parms"]
    assert list(res.coefficients["term"]) == r["coef_names"]
    c = res.coefficients
    _close(c["estimate"], r["beta"], tol, "beta")
    _close(c["se"], r["se"], tol, "se")
    _close(c["statistic"], r["zval"], tol, "z/t value")
    _close(c["pvalue"], r["pval"], tol, "p")
    _close(c["ci_lower"], r["ci.lb"], tol, "ci.lb")
    _close(c["ci_upper"], r["ci.ub"], tol, "ci.ub")
    _close([np.nan if x is None else x for x in c["df"]], r["ddf"], CLOSED, "ddf")
    _close(res.qm, r["QM"], tol, "QM")
    _close([np.nan if x is None else x for x in res.qm_df], r["QMdf"], CLOSED, "QMdf")
    _close(res.qm_pvalue, r["QMp"], tol, "QMp")
    _close(res.qe, r["QE"], CLOSED, "QE")
    _close(res.qe_pvalue, r["QEp"], CLOSED, "QEp")
    if r["sigma2"] != [None]:
        _close(res.sigma2, r["sigma2"], VC, "sigma2")
        assert list(res.sigma2_names) == r["s.names"]
        assert list(res.sigma2_levels) == r["s.nlevels"]
    else:
        assert res.sigma2 == ()
    if r["tau2"] != [None]:
        _close(res.tau2, r["tau2"], VC, "tau2")
        _close(res.rho, r["rho"], VC, "rho")
    else:
        assert res.tau2 == () and res.rho == ()
    # our optimum is at least as high as metafor's (the differences above are its stopping rule)
    if random_fit:
        m = "REML" if res.method == "REML" else "ML"
        assert res.fit_stats[m]["ll"] >= r[f"fit.stats.{m}"][0] - 1e-9
    fs_names = ["ll", "dev", "AIC", "BIC", "AICc"]
    for col in ("ML", "REML"):
        _close([res.fit_stats[col][n] for n in fs_names], r[f"fit.stats.{col}"], tol, f"fit stats {col}")
    _close(res.weights, r["weights"], tol, "weights")
    if "pred" in r:
        p = r["pred"]
        _close([res.estimate, res.se, res.ci_lower, res.ci_upper], [p["pred"], p["se"], p["ci.lb"], p["ci.ub"]],
               tol, "predict")
        if random_fit and res.struct != "HCS":
            _close([res.pi_lower, res.pi_upper], [p["pi.lb"], p["pi.ub"]], tol, "prediction interval")
