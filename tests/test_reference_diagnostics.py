"""Diagnostics reference (tests/reference/metafor_diagnostics.json, written by
``Rscript tests/reference/make_diagnostics.R``).

metarepro has no diagnostics API yet, so this file checks
1. that the reference is complete (every diagnostic on every dataset), and
2. the parts of it that are pooled fits in disguise, with ``metarepro.pool``:
   leave-one-out rows, cumulative rows, the trim-and-fill refit on the filled
   data, the separate subgroup fits and the Q-between test built from them.

Tolerances as in test_reference_metafor.py: closed forms (FE) rtol 1e-10 /
atol 1e-12; REML (iterative tau2) and everything depending on it rtol 1e-6 /
atol 1e-6.
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

HERE = Path(__file__).parent / "reference"
REF = json.loads((HERE / "metafor_diagnostics.json").read_text())
ENTRIES = {e["id"]: e for e in REF["diagnostics"]}
DATASETS = {d["name"]: d for d in REF["datasets"]}

CLOSED = {"rtol": 1e-10, "atol": 1e-12}
ITER = {"rtol": 1e-6, "atol": 1e-6}
METHOD = {"RE": "REML", "FE": "FE"}


def _tol(model):
    return ITER if model in ("RE", "REML") else CLOSED


# parse the 17-digit numbers to exactly the doubles R wrote: pandas >= 3 does by default,
# older pandas needs float_precision="round_trip" (deprecated in 3)
_EXACT = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


@cache
def _load(name):
    return pd.read_csv(HERE / "data" / f"{name}.csv", dtype={"study": str}, **_EXACT)


def _pool(frame, measure, method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return metarepro.pool(frame.reset_index(drop=True), measure=measure, method=method, test="z")


def _close(got, want, tol):
    got = math.nan if got is None else float(got)
    want = math.nan if want is None else float(want)
    if math.isnan(want):
        return math.isnan(got)
    return bool(np.isclose(got, want, **tol))


def _check(res, want: dict, names: dict, tol, label, bad):
    """Compare PoolResult attributes (names: metafor field -> metarepro field)."""
    for mf, ours in names.items():
        if mf in want and not _close(getattr(res, ours), want[mf], tol):
            bad.append((label, mf, getattr(res, ours), want[mf]))


ROW = {"estimate": "estimate", "se": "se", "zval": "statistic", "pval": "pvalue", "pvals": "pvalue",
       "ci.lb": "ci_lower", "ci.ub": "ci_upper", "Q": "q", "Qp": "q_pvalue", "tau2": "tau2",
       "I2": "i2", "H2": "h2"}
FIT = {"k": "k", "estimate": "estimate", "se": "se", "zval": "statistic", "pval": "pvalue",
       "ci.lb": "ci_lower", "ci.ub": "ci_upper", "tau2": "tau2", "I2": "i2", "H2": "h2",
       "QE": "q", "QEp": "q_pvalue"}

EXPECTED_KINDS = {"fit", "regtest", "ranktest", "trimfill", "leave1out", "influence", "cumul",
                  "metaregression", "subgroup_mods", "subgroup_separate"}


def test_diagnostics_reference_complete():
    assert REF["metafor_version"].startswith("3.8")
    assert len(DATASETS) >= 3 and "bcg_mods" in DATASETS
    for name in DATASETS:
        kinds = {e["kind"] for e in REF["diagnostics"] if e["dataset"] == name}
        assert EXPECTED_KINDS <= kinds, (name, EXPECTED_KINDS - kinds)
        for model in ("RE", "FE"):
            for key in ("regtest/{m}/rma", "regtest/{m}/lm", "ranktest/{m}", "trimfill/{m}/L0",
                        "trimfill/{m}/R0", "leave1out/{m}", "influence/{m}", "cumul/{m}/year"):
                assert f"{name}/{key.format(m=model)}" in ENTRIES, (name, key, model)
    for test in ("z", "knha"):
        assert f"bcg_mods/mods/~ablat/REML/{test}" in ENTRIES
        p = ENTRIES[f"bcg_mods/permutest/~ablat/{test}"]["result"]
        assert p["seed"] == 1234 and p["iter"] == 1000
    inf = ENTRIES["bcg_mods/influence/RE"]["result"]
    for col in ("rstudent", "dffits", "cook.d", "cov.r", "tau2.del", "QE.del", "hat", "weight", "inf"):
        assert len(inf[col]) == DATASETS["bcg_mods"]["k"], col
    assert all("error" not in e for e in REF["diagnostics"])


def _entries(kind):
    return [e for e in REF["diagnostics"] if e["kind"] == kind]


def _ids(es):
    return [e["id"] for e in es]


@pytest.mark.parametrize("entry", _entries("fit"), ids=_ids(_entries("fit")))
def test_fit(entry):
    ds = DATASETS[entry["dataset"]]
    res = _pool(_load(entry["dataset"]), ds["measure"], METHOD[entry["model"]])
    bad = []
    _check(res, entry["result"], FIT, _tol(entry["model"]), "fit", bad)
    assert not bad, bad


def _row(r, i):
    # metafor has no tau2 column for FE models (written as null): nothing to compare there
    return {k: v[i] for k, v in r.items() if k in ROW and not (k == "tau2" and v[i] is None)}


@pytest.mark.parametrize("entry", _entries("leave1out"), ids=_ids(_entries("leave1out")))
def test_leave1out_rows_are_pooled_fits(entry):
    ds = DATASETS[entry["dataset"]]
    frame = _load(entry["dataset"])
    r = entry["result"]
    assert r["slab"] == list(frame.study)
    bad = []
    for i, study in enumerate(r["slab"]):
        res = _pool(frame[frame.study != study], ds["measure"], METHOD[entry["model"]])
        _check(res, _row(r, i), ROW, _tol(entry["model"]), f"-{study}", bad)
    assert not bad, bad[:10]


@pytest.mark.parametrize("entry", _entries("cumul"), ids=_ids(_entries("cumul")))
def test_cumul_rows_are_pooled_fits(entry):
    ds = DATASETS[entry["dataset"]]
    frame = _load(entry["dataset"]).set_index("study", drop=False)
    r = entry["result"]
    # order: by year, ties kept in file order (a stable sort)
    expect = list(frame.sort_values("year", kind="stable").study)
    assert r["slab"] == expect
    bad = []
    for j in range(1, len(expect) + 1):
        res = _pool(frame.loc[expect[:j]], ds["measure"], METHOD[entry["model"]])
        _check(res, _row(r, j - 1), ROW, _tol(entry["model"]), f"first {j}", bad)
    assert not bad, bad[:10]


@pytest.mark.parametrize("entry", _entries("trimfill"), ids=_ids(_entries("trimfill")))
def test_trimfill_refit_on_filled_data(entry):
    r = entry["result"]
    k = DATASETS[entry["dataset"]]["k"]
    assert len(r["yi"]) == k + r["k0"] and sum(r["fill"]) == r["k0"]
    filled = pd.DataFrame({"study": [f"s{i}" for i in range(len(r["yi"]))], "yi": r["yi"], "vi": r["vi"]})
    res = _pool(filled, "GEN", METHOD[entry["model"]])
    bad = []
    _check(res, r, FIT, _tol(entry["model"]), "trimfill refit", bad)
    assert not bad, bad


@pytest.mark.parametrize("entry", _entries("subgroup_separate"), ids=_ids(_entries("subgroup_separate")))
def test_subgroup_separate_fits_and_q_between(entry):
    ds = DATASETS[entry["dataset"]]
    frame = _load(entry["dataset"])
    group = entry["id"].split("/")[2]
    r = entry["result"]
    bad, est, se = [], [], []
    for level, want in zip(r["levels"], r["fits"]):
        res = _pool(frame[frame[group].astype(str) == level], ds["measure"], entry["model"])
        _check(res, want, FIT, _tol(entry["model"]), level, bad)
        est.append(res.estimate)
        se.append(res.se)
    # Q between: Wald test of equal means over the subgroup estimates (FE meta-regression QM)
    w = 1 / np.square(se)
    mu = np.sum(w * est) / np.sum(w)
    qb = float(np.sum(w * np.square(np.array(est) - mu)))
    if not _close(qb, r["Q_between"], _tol(entry["model"])):
        bad.append(("Q_between", qb, r["Q_between"]))
    assert r["Q_between_df"] == len(r["levels"]) - 1
    assert not bad, bad
