"""metarepro.multilevel / metarepro.multiarm: hand calculations, reductions to rma(), inputs, CLI.

The agreement with metafor's rma.mv is in test_reference_multilevel.py; here the
values come from hand calculations written out in each test, or from metafor's
rma() (tests/reference/metafor_reference.json), which the model must reproduce when
no two estimates are dependent.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metarepro import cli
from metarepro.errors import InputError
from metarepro.multiarm import (
    assumed_correlation_covariance,
    shared_arm_groups,
    shared_control_covariance,
)
from metarepro.multilevel import fit, parse_random, pool_mv

REF = Path(__file__).parent / "reference"


def _uni_case(case_id):
    for line in (REF / "metafor_reference.json").read_text().splitlines():
        if f'"id":"{case_id}"' in line:
            return json.loads(line.rstrip(","))
    raise KeyError(case_id)


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_independent_estimates_reduce_to_rma(method):
    """With diagonal V and one random effect per estimate the model is rma(yi, vi) (metafor
    reference of tests/reference/metafor_reference.json, bcg, RR)."""
    case = _uni_case(f"bcg/RR/{method}/z")
    d = pd.read_csv(REF / "data" / "bcg.csv")
    res = pool_mv(d, "RR", method=method)
    f = case["fit"]
    assert res.covariance == "no shared arms: V is diagonal"
    np.testing.assert_allclose(res.sigma2[0], f["tau2"], rtol=1e-6)
    for ours, ref in ((res.estimate, f["estimate"]), (res.se, f["se"]), (res.ci_lower, f["ci_lower"]),
                      (res.pi_lower, f["pi_lower"]), (res.pi_upper, f["pi_upper"])):
        np.testing.assert_allclose(ours, ref, rtol=1e-6)
    np.testing.assert_allclose(res.qe, f["q"], rtol=1e-10)


def test_two_correlated_estimates_gls_by_hand():
    """y = (1, 2), V = [[1, .5], [.5, 1]]: the GLS mean is 1.5 by symmetry and its variance
    (1' V^-1 1)^-1 = ((1 - .5) * 2 / (1 - .25))^-1 = 0.75; QE = r' V^-1 r with r = (-.5, .5):
    (.25 + .25 - 2 * .5 * (-.25)) / .75 = 1."""
    res = fit([1.0, 2.0], [[1.0, 0.5], [0.5, 1.0]], method="EE")
    assert res.estimate == pytest.approx(1.5, abs=1e-14)
    assert res.se == pytest.approx(math.sqrt(0.75), abs=1e-14)
    assert res.qe == pytest.approx(1.0, abs=1e-14)
    assert res.qe_df == 1


def _three_arm_counts():
    # one trial, control arm 10/100 shared by two arms (20/100, 5/100); one two-arm trial
    return pd.DataFrame({"study": ["T1", "T1", "T2"], "comparison": ["A vs C", "B vs C", "A vs C"],
                         "arm_c": ["C", "C", "C"], "events_t": [20, 5, 30], "total_t": [100, 100, 120],
                         "events_c": [10, 10, 25], "total_c": [100, 100, 118]})


@pytest.mark.parametrize("measure,cov", [
    ("RR", 1 / 10 - 1 / 100),      # var of log(p_c): 1/c - 1/n_c
    ("OR", 1 / 10 + 1 / 90),       # var of logit(p_c): 1/c + 1/d
    ("RD", 0.1 * 0.9 / 100),       # var of p_c: p_c (1 - p_c) / n_c
])
def test_shared_control_covariance_counts_by_hand(measure, cov):
    c = shared_control_covariance(_three_arm_counts(), measure)
    assert c.groups == [(0, 1)]
    assert c.modelled
    assert c.V[0, 1] == pytest.approx(cov, rel=1e-14) and c.V[1, 0] == c.V[0, 1]
    assert c.V[0, 2] == 0 and c.V[1, 2] == 0
    np.testing.assert_allclose(np.diag(c.V), c.vi)


def test_shared_control_zero_cell_uses_corrected_control_cells():
    """Arm B has 0 events: escalc adds 1/2 to its four cells (control 10.5/101), arm A's row is
    uncorrected (10/100): cov = sqrt((1/10 + 1/90) (1/10.5 + 1/90.5)) for the log OR."""
    d = _three_arm_counts()
    d.loc[1, "events_t"] = 0
    c = shared_control_covariance(d, "OR")
    assert c.V[0, 1] == pytest.approx(math.sqrt((1 / 10 + 1 / 90) * (1 / 10.5 + 1 / 90.5)), rel=1e-14)


def test_shared_control_covariance_means_by_hand():
    d = pd.DataFrame({"study": ["T1", "T1"], "arm_c": ["P", "P"], "mean_t": [5.0, 6.0], "sd_t": [2.0, 3.0],
                      "total_t": [40, 30], "mean_c": [4.0, 4.0], "sd_c": [2.5, 2.5], "total_c": [50, 50]})
    assert shared_control_covariance(d, "MD").V[0, 1] == pytest.approx(2.5**2 / 50, rel=1e-14)
    assert shared_control_covariance(d, "ROM").V[0, 1] == pytest.approx(2.5**2 / (50 * 16), rel=1e-14)
    smd = shared_control_covariance(d, "SMD")
    g1, g2 = smd.yi
    # 1/n_c + g1 g2 / (2 N), N = 50 + 40 + 30 (every arm of the trial)
    assert smd.V[0, 1] == pytest.approx(1 / 50 + g1 * g2 / (2 * 120), rel=1e-14)


def test_generic_effects_cannot_be_modelled():
    d = pd.DataFrame({"study": ["Burt", "Burt"], "comparison": ["4000 vs 400", "10000 vs 400"],
                      "arm_c": ["400", "400"], "estimate": [-3.9, -7.5], "ci_lower": [-6.5, -10.1],
                      "ci_upper": [-1.3, -5.0]})
    c = shared_control_covariance(d, "MD")
    assert not c.modelled and "cannot be built" in c.reason
    with pytest.raises(InputError, match="share a control arm .*assumed_rho"):
        pool_mv(d, "MD", method="EE")
    # with an assumed correlation: V_12 = rho sd_1 sd_2 (sd from the CI: width / (2 * 1.959964))
    res = pool_mv(d, "MD", method="EE", assumed_rho=0.5)
    assert res.covariance.startswith("assumed correlation rho = 0.5")
    sd = np.array([5.2, 5.1]) / (2 * 1.959963984540054)
    np.testing.assert_allclose(res.V[0, 1], 0.5 * sd[0] * sd[1], rtol=1e-12)
    assert res.shared_arms == [("Burt (4000 vs 400)", "Burt (10000 vs 400)")]


def test_assumed_correlation_bounds():
    V = assumed_correlation_covariance([1.0, 4.0, 9.0], [(0, 2)], 0.8)
    assert V[0, 2] == pytest.approx(0.8 * 3) and V[0, 1] == 0
    with pytest.raises(InputError, match="between -1 and 1"):
        assumed_correlation_covariance([1.0, 1.0], [(0, 1)], 1.0)


def test_disagreeing_control_arm_is_an_error():
    d = _three_arm_counts()
    d.attrs["source"] = "trials.csv"
    d.loc[1, "total_c"] = 99
    with pytest.raises(InputError, match=r"trials.csv, row .*column 'total_c'.*disagree"):
        shared_control_covariance(d, "RR")


def test_groups_ignore_blank_arms():
    d = pd.DataFrame({"study": ["a", "a", "b", "b"], "arm_c": ["x", "x", "", None]})
    assert shared_arm_groups(d) == [(0, 1)]


@pytest.mark.parametrize("formula,problem", [
    ("1 | study", "is not of the form"),
    ("~ a | b/c", "one outer factor"),
])
def test_bad_random_formula(formula, problem):
    with pytest.raises(InputError, match=problem):
        parse_random(formula)


def test_input_errors():
    d = pd.DataFrame({"s": ["a", "b", "c"], "yi": [0.1, 0.2, 0.3], "vi": [0.1, 0.1, 0.1]})
    with pytest.raises(InputError, match="missing column 'study'"):
        fit("yi", "vi", d, random="~ 1 | study")
    with pytest.raises(InputError, match="estimate 2 must be finite and > 0"):
        fit([0.1, 0.2], [0.1, -1.0])
    with pytest.raises(InputError, match="V is 2 x 2, not 3 x 3"):
        fit([0.1, 0.2, 0.3], np.eye(2))
    with pytest.raises(InputError, match="unknown method 'DL'"):
        fit("yi", "vi", d, method="DL")
    with pytest.raises(InputError, match="unknown test 'knha'"):
        fit("yi", "vi", d, test="knha")


def test_single_level_factor_is_fixed_at_zero():
    d = pd.DataFrame({"g": ["x"] * 3, "i": [1, 2, 3], "yi": [0.1, 0.5, 0.3], "vi": [0.1, 0.2, 0.1]})
    res = fit("yi", "vi", d, random=["~ 1 | g", "~ 1 | i"])
    assert res.sigma2[0] == 0 and res.parms == 2
    assert any("single-level factor 'g'" in w for w in res.warnings)


def test_cli_pool_mv(tmp_path, capsys):
    f = tmp_path / "t.csv"
    _three_arm_counts().to_csv(f, index=False)
    assert cli.main(["pool-mv", str(f), "--measure", "OR", "--method", "EE", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["covariance"] == "from the arm data (Gleser & Olkin 2009)"
    assert out["shared_arms"] == [["T1 (A vs C)", "T1 (B vs C)"]]
    assert {"estimate", "se", "qe", "loglik", "aic", "sigma2", "estimate_natural", "studies"} <= set(out)
    assert cli.main(["pool-mv", str(f), "--measure", "OR", "--random", "~ 1 | study/comparison"]) == 0
    assert "sigma^2 (study/comparison" in capsys.readouterr().out
    g = tmp_path / "g.csv"
    pd.DataFrame({"study": ["a", "a"], "arm_c": ["c", "c"], "yi": [0.1, 0.2], "vi": [0.1, 0.1]}).to_csv(g, index=False)
    assert cli.main(["pool-mv", str(g), "--measure", "GEN"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "assumed_rho" in err


def test_yaml_multi_arm_names_existing_outcomes(tmp_path):
    from metarepro.spec import check_spec

    src = Path(__file__).parents[1] / "data" / "extracted" / "vitd_dose_bmd.yaml"
    text = src.read_text(encoding="utf-8").replace("  - radius_vbmd_10000_vs_400\n  dose:", "  - nope\n  dose:", 1)
    bad = tmp_path / "vitd_dose_bmd.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=r"column 'multi_arm.0.outcomes'.*'nope' is not one of the outcomes"):
        check_spec(bad)


def test_cli_dose_slope_through_zero_by_hand(tmp_path, capsys):
    """Burt 2019's radius contrasts on the dose difference to the 400 IU arm, assumed rho = 0:
    slope = sum(w x y) / sum(w x²) with w = 1/se², se = CI width / (2 z)."""
    f = tmp_path / "d.csv"
    f.write_text("study,comparison,arm_c,dose,estimate,ci_lower,ci_upper\n"
                 "Burt,4000 vs 400,400,3600,-3.9,-6.5,-1.3\nBurt,10000 vs 400,400,9600,-7.5,-10.1,-5.0\n")
    assert cli.main(["pool-mv", str(f), "--measure", "MD", "--mods", "dose", "--no-intercept", "--method", "EE",
                     "--assumed-rho", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    w = 1 / (np.array([5.2, 5.1]) / (2 * 1.959963984540054)) ** 2
    x, y = np.array([3600.0, 9600.0]), np.array([-3.9, -7.5])
    (coef,) = out["coefficients"]
    assert coef["term"] == "dose"
    assert coef["estimate"] == pytest.approx(np.sum(w * x * y) / np.sum(w * x * x), rel=1e-12)
    assert out["warnings"] == []


def test_mixed_families_model_what_the_arm_data_allow():
    """Trial T1 printed counts (modelled from its control arm), trial T2 only an estimate with its CI
    for two comparisons sharing an arm (not modelled; with assumed_rho only that group gets
    rho sd_i sd_j)."""
    d = pd.DataFrame({"study": ["T1", "T1", "T2", "T2"], "comparison": ["A", "B", "A", "B"],
                      "arm_c": ["C", "C", "C", "C"], "events_t": [20, 5, None, None],
                      "total_t": [100, 100, None, None], "events_c": [10, 10, None, None],
                      "total_c": [100, 100, None, None], "estimate": [None, None, 0.8, 0.6],
                      "ci_lower": [None, None, 0.5, 0.4], "ci_upper": [None, None, 1.28, 0.9]})
    c = shared_control_covariance(d, "RR")
    assert not c.modelled and c.unmodelled == [(2, 3)] and "some of the comparisons" in c.reason
    assert c.V[0, 1] == pytest.approx(1 / 10 - 1 / 100, rel=1e-14) and c.V[2, 3] == 0
    res = pool_mv(d, "RR", method="EE", assumed_rho=0.5)
    assert res.V[0, 1] == pytest.approx(1 / 10 - 1 / 100, rel=1e-14)
    assert res.V[2, 3] == pytest.approx(0.5 * math.sqrt(c.vi[2] * c.vi[3]), rel=1e-14)
    assert "from the arm data elsewhere" in res.covariance
