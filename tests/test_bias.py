"""Egger's test against metafor's regtest (tests/reference/metafor_diagnostics.json)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import metarepro
from metarepro.bias import egger_test

REF = Path(__file__).parent / "reference"
CASES = [c for c in json.loads((REF / "metafor_diagnostics.json").read_text())["diagnostics"]
         if c["kind"] == "regtest" and (c["result"]["model"] == "lm" or c["model"] == "FE")]
MEASURE = {"bcg_mods": "RR", "molloy2014_mods": "ZCOR"}


def test_cases_present():
    assert {c["dataset"] for c in CASES} >= {"bcg_mods", "hackshaw1998_mods", "raudenbush1985_mods"}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_egger_matches_regtest(case):
    frame = pd.read_csv(REF / "data" / f"{case['dataset']}.csv")
    measure = MEASURE.get(case["dataset"], "GEN")
    st = metarepro.pool(frame, measure=measure, method="FE").studies
    model = "lm" if case["result"]["model"] == "lm" else "fe"
    res = egger_test(st.yi.to_numpy(), st.vi.to_numpy(), model=model)
    r = case["result"]
    # closed-form weighted least squares: agreement to ~1e-10
    assert res.statistic == pytest.approx(r["zval"], rel=1e-9, abs=1e-10)
    assert res.pvalue == pytest.approx(r["pval"], rel=1e-9, abs=1e-12)
    assert res.estimate == pytest.approx(r["est"], rel=1e-9, abs=1e-10)
    assert res.ci_lower == pytest.approx(r["ci.lb"], rel=1e-9, abs=1e-10)
    assert res.ci_upper == pytest.approx(r["ci.ub"], rel=1e-9, abs=1e-10)
    if r["dfs"] is not None:
        assert res.df == r["dfs"]


def test_too_few_studies():
    with pytest.raises(ValueError):
        egger_test(np.array([0.1, 0.2]), np.array([0.1, 0.1]))
