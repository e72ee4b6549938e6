"""The per-outcome robustness report and method forensics, as the pipeline runs them.

Reference values: metafor 3.8 on dat.bcg (tests/reference/metafor_diagnostics.json,
made by make_diagnostics.R; each entry records its R call). The robustness report
must give, through the pipeline's path (an Analysis from data/extracted), the
numbers metafor gives for the same questions: dropping a flagged trial is
metafor's leave1out row for that trial; the meta-regression is
rma(mods = ~ ablat, test = "knha"); and so on. Multi-arm handling is checked
against counts worked out by hand in the test.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metarepro import figures
from metarepro.analysis import forensics_table, heterogeneity, likely_method, outcome_frame, reproduction_rows
from metarepro.extracted import Analysis
from metarepro.robustness import robustness

HERE = Path(__file__).parent / "reference"
REF = {e["id"]: e["result"] for e in json.loads((HERE / "metafor_diagnostics.json").read_text())["diagnostics"]}
BCG = pd.read_csv(HERE / "data" / "bcg_mods.csv")
ITER = {"rtol": 1e-7, "atol": 1e-9}  # through an iterative tau2 (see test_diagnostics.py)
CLOSED = {"rtol": 1e-10, "atol": 1e-12}  # closed forms
ITER_A = {"rel": 1e-7, "abs": 1e-9}  # the same, for pytest.approx
CLOSED_A = {"rel": 1e-10, "abs": 1e-12}


def analysis(frame: pd.DataFrame, **spec) -> Analysis:
    """An Analysis as load_analysis builds it (string cells, one outcome)."""
    t = frame.astype(str).assign(outcome="o")
    base = {"analysis": "t", "title": "test", "claim": "c", "measure": "RR",
            "outcomes": [{"name": "o"}], "targets": [], "trials": []}
    base.update(spec)
    return Analysis(name="t", spec=base, table=t, csv_path="t.csv", yaml_path="t.yaml")


@pytest.fixture(scope="module")
def bcg_report():
    an = analysis(BCG, integrity_flags=[{"study": "Aronson 1948", "flag": "retracted"},
                                        {"study": "Ferguson & Simes 1949", "flag": "questioned"}],
                  risk_of_bias=[{"study": "Ferguson & Simes 1949", "judgement": "high"}],
                  subgroup="alloc", moderators=["ablat"])
    return robustness(an, "o", method="REML", test="z", permutations=1000, seed=1234)


def test_integrity_sensitivity_is_metafors_leave1out_row(bcg_report):
    rows = {a["analysis"]: a for a in bcg_report.report["integrity"]["analyses"]}
    loo = REF["bcg_mods/leave1out/RE"]
    retracted = rows["without retracted trials"]
    assert retracted["dropped"] == ["Aronson 1948"] and retracted["k"] == 12
    # natural scale: exp of metafor's leave1out estimate without Aronson 1948 (row 1)
    assert retracted["estimate"] == pytest.approx(math.exp(loo["estimate"][0]), **ITER_A)
    assert retracted["ci_lower"] == pytest.approx(math.exp(loo["ci.lb"][0]), **ITER_A)
    assert retracted["tau2"] == pytest.approx(loo["tau2"][0], **ITER_A)
    both = rows["without retracted or questioned trials"]
    assert both["dropped"] == ["Aronson 1948", "Ferguson & Simes 1949"] and both["k"] == 11
    # the high risk-of-bias set is Ferguson alone: metafor's leave1out row 2
    rob = rows["without trials at high risk of bias"]
    assert rob["estimate"] == pytest.approx(math.exp(loo["estimate"][1]), **ITER_A)
    assert "Integrity sensitivity" in bcg_report.markdown


def test_full_analysis_row_carries_metafors_tau2_and_i2(bcg_report):
    fit = REF["bcg_mods/fit/RE"]
    assert bcg_report.report["tau2"] == pytest.approx(fit["tau2"], **ITER_A)
    assert bcg_report.report["i2"] == pytest.approx(fit["I2"], **ITER_A)
    row = next(line for line in bcg_report.markdown.splitlines() if line.startswith("| all trials |"))
    assert f"| {fit['tau2']:.4f} | {fit['I2']:.1f} |" in row


def test_meta_regression_and_permutation_match_metafor(bcg_report):
    (sec,) = bcg_report.report["meta_regression"]
    z = REF["bcg_mods/mods/~ablat/REML/z"]
    kn = REF["bcg_mods/mods/~ablat/REML/knha"]
    got_z = [c["estimate"] for c in sec["z"]["coefficients"]]
    np.testing.assert_allclose(got_z, z["beta"], **ITER)
    np.testing.assert_allclose([c["pvalue"] for c in sec["knha"]["coefficients"]], kn["pval"], **ITER)
    assert sec["knha"]["qm"] == pytest.approx(kn["QM"], **ITER_A)
    # R's random stream cannot be reproduced: agree within Monte-Carlo error
    p_ref = REF["bcg_mods/permutest/~ablat/knha"]["QMp"]
    p = sec["permutation"]["qm_pvalue"]
    assert abs(p - p_ref) <= 4 * math.sqrt(2 * p_ref * (1 - p_ref) / 1000) + 1 / 1000
    fit = bcg_report.regressions["ablat"]
    assert fit["x"].size == 13


def test_subgroups_match_metafor(bcg_report):
    sg = bcg_report.report["subgroups"]
    ref = REF["bcg_mods/subgroup/alloc/REML/mods"]
    assert sg["qm"] == pytest.approx(ref["QM"], **ITER_A)
    assert sg["qm_pvalue"] == pytest.approx(ref["QMp"], **ITER_A)
    assert len(sg["subgroups"]) == 3


def test_small_study_section_matches_metafor(bcg_report):
    ss = bcg_report.report["small_study"]
    lm = REF["bcg_mods/regtest/RE/lm"]
    assert ss["egger_lm"]["statistic"] == pytest.approx(lm["zval"], **CLOSED_A)
    assert ss["egger_lm"]["df"] == lm["dfs"]
    assert ss["begg"]["tau"] == pytest.approx(REF["bcg_mods/ranktest/RE"]["tau"], **CLOSED_A)
    tf = REF["bcg_mods/trimfill/RE/L0"]
    assert ss["trimfill_L0"]["k0"] == tf["k0"] and ss["trimfill_L0"]["side"] == tf["side"]
    assert ss["trimfill_L0"]["estimate"] == pytest.approx(math.exp(tf["estimate"]), **ITER_A)
    assert ss["caution"] is None  # k = 13: no Handbook caution


def test_influence_and_cumulative_match_metafor(bcg_report):
    inf = REF["bcg_mods/influence/RE"]
    np.testing.assert_allclose(bcg_report.influence["rstudent"], inf["rstudent"], **ITER)
    np.testing.assert_allclose(bcg_report.influence["cook_d"], inf["cook.d"], **ITER)
    cum = REF["bcg_mods/cumul/RE/year"]
    assert list(bcg_report.cumulative["added"]) == cum["slab"]
    np.testing.assert_allclose(bcg_report.cumulative["estimate"], cum["estimate"], **ITER)
    loo = REF["bcg_mods/leave1out/RE"]
    np.testing.assert_allclose(bcg_report.leave_one_out["estimate"], loo["estimate"], **ITER)


def test_single_trial_says_what_is_not_computed():
    one = BCG.iloc[:1]
    rb = robustness(analysis(one, moderators=["ablat"]), "o")
    rep = rb.report
    assert rep["k"] == 1
    assert "at least 3" in rep["small_study"]["not_computed"][0]
    assert "at least 2" in rep["influence"]["not_computed"][0]
    assert "at least 3 studies" in rep["meta_regression"][0]["not_computed"][0]
    assert rb.leave_one_out is None and rb.influence is None and rb.regressions == {}
    # the integrity rows say why there is nothing to drop
    assert all("note" in a for a in rep["integrity"]["analyses"])


def test_small_study_caution_below_ten_trials():
    rb = robustness(analysis(BCG.iloc[:6]), "o")
    assert "13.3.5.4" in rb.report["small_study"]["caution"]
    assert "**Caution:**" in rb.markdown


# ----------------------------------------------------------------------------- multi-arm trials

ARMS = pd.DataFrame({
    "study": ["T", "T", "U"], "comparison": ["high vs low", "mid vs low", "a vs b"],
    "arm_t": ["high", "mid", "a"], "arm_c": ["low", "low", "b"],
    "events_t": [10, 12, 5], "total_t": [100, 101, 50], "events_c": [21, 21, 9], "total_c": [99, 99, 48]})


def test_shared_control_arm_is_split_for_counts():
    an = analysis(ARMS)
    f = outcome_frame(an, "o")
    # 21/99 split in two: 11/50 and 10/49 (whole numbers, larger part first; Handbook 23.3.4)
    assert f["events_c"].tolist()[:2] == [11, 10] and f["total_c"].tolist()[:2] == [50, 49]
    assert f["total_c"].tolist()[2] == 48  # U is untouched
    rep, md = heterogeneity(an, "o")
    assert len(rep["corrections"]) == 2 and "shared control arm split" in md
    assert rep["k"] == 3


def test_shared_control_arm_generic_keeps_first_comparison_and_lists_the_other():
    gen = ARMS[["study", "comparison", "arm_t", "arm_c"]].assign(yi=[-0.7, -0.5, -0.6], vi=[0.1, 0.1, 0.2])
    an = analysis(gen, measure="GEN")
    f = outcome_frame(an, "o")
    assert f["study"].tolist() == ["T", "U"]
    rep, md = heterogeneity(an, "o")
    assert rep["k"] == 2
    (ex,) = rep["excluded"]
    assert ex["study"] == "T (mid vs low)" and "23.3.4" in ex["reason"]
    assert "mid vs low" in md


# ----------------------------------------------------------------------------- method forensics


def test_forensics_names_the_method_behind_a_printed_result():
    """Target: metafor's REML fit of dat.bcg (z test), printed as a paper would,
    RR to 2 decimals: exp(-0.7145) = 0.49 (0.34 to 0.70)."""
    fit = REF["bcg_mods/fit/RE"]
    target = {"outcome": "o", "label": "printed", "estimate": round(math.exp(fit["estimate"]), 2),
              "ci_lower": round(math.exp(fit["ci.lb"]), 2), "ci_upper": round(math.exp(fit["ci.ub"]), 2),
              "model": "random effects", "method": "unknown", "k": 13, "source": "PMID:1", "scale": "ratio"}
    assert (target["estimate"], target["ci_lower"], target["ci_upper"]) == (0.49, 0.34, 0.70)
    an = analysis(BCG, targets=[target])
    ft = forensics_table(an)
    reml = ft[(ft["method"] == "REML") & (ft["test"] == "z")]
    # dat.bcg has no zero cells: every convention that corrects only zero cells is the plain fit
    # (metafor's three, and RevMan 5's)
    plain = reml[reml["zero_cells"].str.contains("zero-cell studies|no correction")]
    assert len(plain) == 4 and plain["matches_estimate"].all() and plain["matches_ci"].all()
    assert set(plain["convention"]) == {"metafor", "revman5"}
    fe = ft[(ft["method"] == "FE")]
    assert not fe["matches_ci"].any()  # FE gives 0.65 (0.60-0.70): must not pass as a match
    words = likely_method(ft, "printed", "o")
    assert words.startswith("reproduced by") and "REML (z" in words
    (row,) = reproduction_rows(an, forensics=ft)
    assert row["likely_method"] == words


def test_forensics_says_when_nothing_reproduces():
    target = {"outcome": "o", "label": "odd", "estimate": 0.11, "ci_lower": 0.10, "ci_upper": 0.12,
              "model": "random effects", "method": "unknown", "k": 13, "source": "PMID:1", "scale": "ratio"}
    ft = forensics_table(analysis(BCG, targets=[target]))
    assert likely_method(ft, "odd", "o").startswith("none of")


# ----------------------------------------------------------------------------- figures


def test_diagnostic_figures_draw_one_mark_per_trial(bcg_report):
    from matplotlib.collections import PathCollection

    k = 13
    fig = figures.leave_one_out_plot(bcg_report.result, bcg_report.leave_one_out, bcg_report.cumulative)
    assert len(fig.axes) == 2
    assert all(sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection)) == k
               for ax in fig.axes)
    fig = figures.influence_plot(bcg_report.influence)
    assert len(fig.axes) == 6
    fig = figures.baujat_plot(bcg_report.baujat)
    assert len(fig.axes[0].texts) == k
    r = bcg_report.regressions["ablat"]
    fig = figures.bubble_plot(r["yi"], r["vi"], r["x"], r["fit"], moderator="ablat", measure="RR")
    (pts,) = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    sizes = pts.get_sizes()
    assert len(sizes) == k
    # circle area proportional to the weight 1/(v + tau2): largest = 600
    w = 1 / (np.asarray(r["vi"]) + r["fit"].tau2)
    np.testing.assert_allclose(sizes, 600 * w / w.max())
    na = figures.not_applicable_figure("k = 1")
    assert "k = 1" in na.axes[0].texts[0].get_text()


EXTRAS = {e["id"]: e["result"] for e in json.loads((HERE / "metafor_extras.json").read_text())["diagnostics"]}


def test_robustness_report_extras_are_metafors():
    """tau² intervals, Henmi-Copas, fail-safe N and BLUPs in the report: metafor's confint(type="PL"),
    confint() of the meta-regression, hc(), fsn() and blup() on the same data (make_extras.R)."""
    an = analysis(BCG, moderators=["ablat"])
    rep = robustness(an, "o", method="REML", test="z").report
    pl = EXTRAS["bcg/tau2_pl/REML/z"]
    assert rep["tau2_ci"]["pl"]["tau2_ci_lower"] == pytest.approx(pl["ci_lower"], rel=1e-5)
    assert rep["tau2_ci"]["pl"]["tau2_ci_upper"] == pytest.approx(pl["ci_upper"], rel=1e-5)
    reg = rep["meta_regression"][0]["tau2_ci"]
    for key, ref in (("qp", "bcg_mods/tau2_qp/REML/z/mods=~ablat"), ("pl", "bcg_mods/tau2_pl/REML/z/mods=~ablat")):
        assert reg[key]["tau2_ci_upper"] == pytest.approx(EXTRAS[ref]["ci_upper"], rel=1e-5)
    hc = EXTRAS["bcg/hc/REML/z"]
    ss = rep["small_study"]
    assert ss["henmi_copas"]["ci_lower_natural"] == pytest.approx(math.exp(hc["ci_lower"]), rel=1e-6)
    for kind in ("Rosenthal", "Orwin", "Rosenberg"):
        assert ss["fail_safe_n"][kind.lower()]["fsn"] == EXTRAS[f"bcg/fsn/type={kind}"]["fsn"]
    blup = EXTRAS["bcg/blup/REML/z"]
    got = [r["pred_natural"] for r in rep["influence"]["blup"]]
    assert got == pytest.approx(np.exp(blup["pred"]), rel=1e-6)
    assert "profile-likelihood CI" in robustness(an, "o", method="REML", test="z").markdown


MV = {c["id"]: c for c in json.loads((HERE / "metafor_multilevel.json").read_text())["cases"]}


def test_shared_control_arm_with_counts_is_modelled_as_main_analysis():
    """Main analysis: metafor's rma.mv(yi, V, random = ~ 1 | id, test = "t") with V from the shared
    arm (make_multilevel.R, case arms_toy/RR/id/REML/t, on this same table); the old split is a
    sensitivity row and equals the heterogeneity report's split fit."""
    r = MV["arms_toy/RR/id/REML/t"]["result"]
    rb = robustness(analysis(ARMS), "o")
    ma = rb.report["multi_arm"]
    assert ma["groups"] == [["T (high vs low)", "T (mid vs low)"]]
    assert ma["covariance"].startswith("from the arm data")
    assert rb.report["estimate"] == pytest.approx(math.exp(r["beta"][0]), rel=1e-5)
    assert rb.report["ci_lower"] == pytest.approx(math.exp(r["ci.lb"][0]), rel=1e-5)
    assert rb.report["ci_upper"] == pytest.approx(math.exp(r["ci.ub"][0]), rel=1e-5)
    assert ma["main"]["qe"] == pytest.approx(r["QE"], rel=1e-10)
    split, first = ma["sensitivity"]
    rep, _ = heterogeneity(analysis(ARMS), "o")
    assert split["estimate"] == pytest.approx(rep["estimate_natural"], rel=1e-12) and split["k"] == 3
    assert first["k"] == 2
    assert rb.markdown.startswith("# Robustness") and "Main model: multilevel model" in rb.markdown
    assert "| sensitivity: control arm split evenly" in rb.markdown


def test_reproduction_modern_analysis_is_the_multilevel_model():
    target = {"outcome": "o", "label": "x", "estimate": 0.5, "ci_lower": 0.3, "ci_upper": 0.8, "source": "PMID:1",
              "scale": "ratio", "method": "unknown"}
    (row,) = reproduction_rows(analysis(ARMS, targets=[target]))
    r = MV["arms_toy/RR/id/REML/t"]["result"]
    assert row["modern_estimate"] == pytest.approx(math.exp(r["beta"][0]), rel=1e-5)
    assert "modern re-analysis: multilevel model" in row["reason"]


def test_generic_dose_response_is_a_labelled_sensitivity_analysis():
    """Two generic contrasts of one trial sharing the control arm (Burt 2019's radius numbers), joint
    through the YAML key multi_arm. With rho = 0 the no-intercept common-effect slope is by hand
    sum(w x y) / sum(w x²), x = (dose - 400)/1000 = 3.6, 9.6, w = 1/se², se = CI width / (2 z)."""
    rows = pd.DataFrame({"study": ["Burt", "Burt"], "comparison": ["4000 vs 400", "10000 vs 400"],
                         "arm_c": ["400", "400"], "dose": [4000, 10000], "estimate": [-3.9, -7.5],
                         "ci_lower": [-6.5, -10.1], "ci_upper": [-1.3, -5.0]})
    t = pd.concat([rows.iloc[[0]].assign(outcome="a"), rows.iloc[[1]].assign(outcome="b")]).astype(str)
    spec = {"analysis": "t", "title": "test", "claim": "c", "measure": "MD", "targets": [], "trials": [],
            "outcomes": [{"name": "a"}, {"name": "b"}],
            "multi_arm": [{"outcomes": ["a", "b"], "dose": "dose", "control_dose": 400, "dose_per": 1000}]}
    an = Analysis(name="t", spec=spec, table=t.reset_index(drop=True), csv_path="t.csv", yaml_path="t.yaml")
    rb = robustness(an, "a")
    (joint,) = rb.report["multi_arm"]["joint"]
    assert joint["covariance"].startswith("not built") and joint["main"] is None
    dr = joint["dose_response"]
    assert any("only 1 trial" in b for b in dr["blocked_by"])
    assert any("generic effects" in b for b in dr["blocked_by"])
    assert [a["rho"] for a in dr["assumed"]] == [0.0, 0.5, 0.8]
    z = 1.959963984540054
    se = np.array([5.2, 5.1]) / (2 * z)
    x, y, w = np.array([3.6, 9.6]), np.array([-3.9, -7.5]), 1 / se**2
    assert dr["assumed"][0]["slope"] == pytest.approx(np.sum(w * x * y) / np.sum(w * x * x), rel=1e-12)
    assert dr["assumed"][0]["se"] == pytest.approx(np.sum(w * x * x) ** -0.5, rel=1e-12)
    assert "**Not evidence**" in rb.markdown and "What limits it:" in rb.markdown
    assert rb.report["multi_arm"]["shared_with_outcomes"] == ["b"]


def test_one_trial_heterogeneity_report_says_not_applicable():
    # Burt 2019 radius, 4000 vs 400 IU: -3.9 (-6.5 to -1.3) as printed in the JAMA abstract;
    # one trial pools to itself, and RevMan prints "Heterogeneity: Not applicable".
    one = pd.DataFrame({"study": ["Burt 2019"], "estimate": [-3.9], "ci_lower": [-6.5], "ci_upper": [-1.3]})
    rep, md = heterogeneity(analysis(one, measure="MD"), "o")
    assert rep["k"] == 1
    assert "Not applicable" in md and "-3.900 (-6.500 to -1.300)" in md
    assert "| Q (df" not in md and "| FE | z |" not in md


def test_two_trials_report_no_prediction_interval():
    # the forest plot draws a prediction interval from three trials on; the report says the same
    two = pd.DataFrame({"study": ["A", "B"], "yi": [-0.7, -0.5], "vi": [0.1, 0.1]})
    _, md = heterogeneity(analysis(two, measure="GEN"), "o")
    assert "| prediction interval | | not shown with fewer than three trials |" in md
