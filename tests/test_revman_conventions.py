"""RevMan 5's computing conventions (``convention="revman5"``, method ``"MH-DL"``).

Three kinds of reference, never our own output:

* numbers RevMan 5 computed and stored in a review file (``tests/data/revman``,
  origin in its README): the Fleiss (1993) aspirin review saved by RevMan 5.0.23;
* hand calculations, every formula written out below, following Deeks &
  Higgins (2010) "Statistical algorithms in Review Manager 5" and R meta's
  ``metabin``/``metacont``/``hetcalc`` (the sources are cited in
  ``metarepro.conventions``);
* metafor (``tests/reference/metafor_reference.json``) where the two
  conventions compute the same thing.

Where the conventions differ, both sides are tested: the metafor side by the
reference tests and the "metafor" assertions here, the RevMan side here.
"""

from __future__ import annotations

import csv
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import metarepro
from metarepro.errors import InputError

DATA = Path(__file__).parent / "data" / "revman"
Z95 = stats.norm.ppf(0.975)


# --------------------------------------------------------------------------
# RevMan's stored numbers: Fleiss1993.rm5 (RevMan 5.0.23)
# --------------------------------------------------------------------------

def _fleiss_rm5():
    root = ET.parse(DATA / "Fleiss1993.rm5").getroot()
    names = {s.get("ID"): s.get("NAME") for s in root.iter("STUDY")}
    out = root.find(".//DICH_OUTCOME")
    rows = [dict(d.attrib, study=names[d.get("STUDY_ID")]) for d in out.findall("DICH_DATA")]
    frame = pd.DataFrame({"study": [r["study"] for r in rows],
                          "events_t": [int(r["EVENTS_1"]) for r in rows],
                          "total_t": [int(r["TOTAL_1"]) for r in rows],
                          "events_c": [int(r["EVENTS_2"]) for r in rows],
                          "total_c": [int(r["TOTAL_2"]) for r in rows]})
    return frame, rows, out.attrib


def test_fleiss1993_mh_or_reproduces_revman_stored_numbers():
    frame, rows, total = _fleiss_rm5()
    assert (total["METHOD"], total["EFFECT_MEASURE"], total["RANDOM"]) == ("MH", "OR", "NO")
    res = metarepro.pool(frame, measure="OR", method="MH", convention="revman5",
                         level=float(total["CI_TOTAL"]), study_level=float(total["CI_STUDY"]))
    # RevMan stores doubles: agreement to ~1e-12 relative
    tol = {"rel": 1e-11}
    nat = res.natural()
    assert nat["estimate_natural"] == pytest.approx(float(total["EFFECT_SIZE"]), **tol)
    assert nat["ci_lower_natural"] == pytest.approx(float(total["CI_START"]), **tol)
    assert nat["ci_upper_natural"] == pytest.approx(float(total["CI_END"]), **tol)
    assert res.q == pytest.approx(float(total["CHI2"]), **tol)
    assert res.q_df == int(total["DF"])
    # RevMan's own chi-square tail routine agrees with scipy's to ~6e-7 relative
    assert res.q_pvalue == pytest.approx(float(total["P_CHI2"]), rel=1e-6)
    assert res.i2 == pytest.approx(float(total["I2"]), **tol)
    assert abs(res.statistic) == pytest.approx(float(total["Z"]), **tol)
    assert res.pvalue == pytest.approx(float(total["P_Z"]), rel=1e-9)
    st = res.studies.set_index("study")
    for r in rows:
        s = st.loc[r["study"]]
        assert math.exp(s.yi) == pytest.approx(float(r["EFFECT_SIZE"]), **tol)
        assert math.sqrt(s.vi) == pytest.approx(float(r["SE"]), **tol)
        assert math.exp(s.ci_lower) == pytest.approx(float(r["CI_START"]), **tol)
        assert math.exp(s.ci_upper) == pytest.approx(float(r["CI_END"]), **tol)
        assert s.weight == pytest.approx(float(r["WEIGHT"]), **tol)
        # RevMan's LOG_EFFECT_SIZE is log10
        assert s.yi / math.log(10) == pytest.approx(float(r["LOG_EFFECT_SIZE"]), **tol)


def _fleiss_csv(outcome):
    with open(DATA / "Fleiss1993_CR.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["Outcome Number"] == str(outcome)]
    return rows[0], rows[1:]


def test_fleiss1993_md_reproduces_revman_csv_export():
    total, rows = _fleiss_csv(2)
    assert (total["Data Type"], total["Statistical Method"], total["Effect Measure"]) == ("CON", "IV", "MD")
    frame = pd.DataFrame({"study": [r["Name"] for r in rows],
                          **{f"{c}_{arm}": [float(r[f"{C} {i}"]) for r in rows]
                             for c, C in (("mean", "Mean"), ("sd", "SD"), ("total", "Total"))
                             for arm, i in (("t", 1), ("c", 2))}})
    res = metarepro.pool(frame, measure="MD", method="FE", convention="revman5")
    # the CSV export prints 8 significant digits
    tol = {"rel": 1e-7, "abs": 1e-8}
    assert res.estimate == pytest.approx(float(total["Effect Estimate"]), **tol)
    assert res.ci_lower == pytest.approx(float(total["CI Start"]), **tol)
    assert res.ci_upper == pytest.approx(float(total["CI End"]), **tol)
    assert res.q == pytest.approx(float(total["Q"]), **tol)
    assert res.i2 == pytest.approx(float(total["I²(Q)"]), **tol)
    assert abs(res.statistic) == pytest.approx(float(total["Z"]), **tol)
    st = res.studies.set_index("study")
    for r in rows:
        s = st.loc[r["Name"]]
        assert s.yi == pytest.approx(float(r["Effect Estimate"]), **tol)
        assert math.sqrt(s.vi) == pytest.approx(float(r["SE"]), **tol)
        assert s.ci_lower == pytest.approx(float(r["CI Start"]), **tol)
        assert s.weight == pytest.approx(float(r["Weight"]), **tol)


# --------------------------------------------------------------------------
# zero cells, double zeros, all-event tables: by hand
# --------------------------------------------------------------------------

ZERO = pd.DataFrame({
    "study": ["single0", "plain", "double0", "allevents"],
    "events_t": [0, 6, 0, 15], "total_t": [20, 30, 12, 15],
    "events_c": [3, 10, 0, 14], "total_c": [21, 30, 10, 14]})


def test_revman5_rr_zero_cell_study_by_hand():
    res = metarepro.pool(ZERO, measure="RR", method="FE", convention="revman5")
    st = res.studies.set_index("study")
    # single0: 0.5 added to each cell -> a=0.5, n1=21, c=3.5, n2=22
    assert st.yi["single0"] == pytest.approx(math.log(0.5 / 21) - math.log(3.5 / 22), rel=1e-13)
    assert st.vi["single0"] == pytest.approx(1 / 0.5 - 1 / 21 + 1 / 3.5 - 1 / 22, rel=1e-13)
    # double0 is not estimable for RR (excluded, listed); allevents is kept for RR with
    # RR = 15/15 / (14/14) = 1 from the raw counts and the variance of the corrected table
    # a=15.5, n1=16, c=14.5, n2=15. RevMan prints exactly this: CD002042 (pub6) Analysis 1.1,
    # DeZern 2016, 59/59 vs 30/30: RR 1.000000 (0.950573 to 1.051997), and
    # exp(1.959964 * sqrt(1/59.5 - 1/60 + 1/30.5 - 1/31)) = 1.051997.
    assert [e["study"] for e in res.excluded] == ["double0"]
    assert "not estimable" in res.excluded[0]["reason"]
    assert st.yi["allevents"] == 0.0
    assert st.vi["allevents"] == pytest.approx(1 / 15.5 - 1 / 16 + 1 / 14.5 - 1 / 15, rel=1e-13)
    dezern = pd.DataFrame({"study": ["DeZern 2016"], "events_t": [59], "total_t": [59],
                           "events_c": [30], "total_c": [30]})
    one = metarepro.pool(dezern, measure="RR", method="FE", convention="revman5").studies.iloc[0]
    assert math.exp(one.yi) == 1.0
    half = 1.959963984540054 * math.sqrt(one.vi)
    assert math.exp(-half) == pytest.approx(0.950573, abs=5e-7)
    assert math.exp(half) == pytest.approx(1.051997, abs=5e-7)
    assert {c["study"] for c in res.corrections} == {"single0", "allevents"}
    assert res.k == 3
    # metafor's escalc keeps the double-zero study (corrected) for the IV model
    mf = metarepro.pool(ZERO, measure="RR", method="FE")
    assert mf.k == 4 and mf.excluded == []


def test_revman5_or_excludes_double_zero_and_all_event_tables():
    res = metarepro.pool(ZERO, measure="OR", method="DL", convention="revman5")
    assert sorted(e["study"] for e in res.excluded) == ["allevents", "double0"]
    assert all("OR not estimable" in e["reason"] for e in res.excluded)
    st = res.studies.set_index("study")
    # single0: log((0.5 * 18.5) / (20.5 * 3.5)), Woolf variance of the corrected cells
    assert st.yi["single0"] == pytest.approx(math.log(0.5 * 18.5 / (20.5 * 3.5)), rel=1e-13)
    assert st.vi["single0"] == pytest.approx(1 / 0.5 + 1 / 20.5 + 1 / 3.5 + 1 / 18.5, rel=1e-13)
    assert res.k == 2


def test_revman5_rd_from_raw_counts_variance_from_corrected_table():
    res = metarepro.pool(ZERO, measure="RD", method="FE", convention="revman5")
    st = res.studies.set_index("study")
    assert res.excluded == [] and res.k == 4  # RD keeps double-zero and all-event studies
    # single0: RD = 0/20 - 3/21; variance (a+.5)(b+.5)/(n1+1)^3 + (c+.5)(d+.5)/(n2+1)^3
    assert st.yi["single0"] == pytest.approx(0 / 20 - 3 / 21, rel=1e-13)
    assert st.vi["single0"] == pytest.approx(0.5 * 20.5 / 21**3 + 3.5 * 18.5 / 22**3, rel=1e-13)
    # double0: RD = 0 exactly, variance 0.5*12.5/13^3 + 0.5*10.5/11^3
    assert st.yi["double0"] == 0.0
    assert st.vi["double0"] == pytest.approx(0.5 * 12.5 / 13**3 + 0.5 * 10.5 / 11**3, rel=1e-13)
    # plain (no zero cell): p(1-p)/n, as metafor
    assert st.vi["plain"] == pytest.approx(0.2 * 0.8 / 30 + (1 / 3) * (2 / 3) / 30, rel=1e-13)
    # metafor: RD of the corrected table, 0.5/21 - 3.5/22
    mf = metarepro.pool(ZERO, measure="RD", method="FE").studies.set_index("study")
    assert mf.yi["single0"] == pytest.approx(0.5 / 21 - 3.5 / 22, rel=1e-13)


# --------------------------------------------------------------------------
# Mantel-Haenszel with a zero cell: RevMan's corrected table vs rma.mh's raw counts
# --------------------------------------------------------------------------

MH3 = pd.DataFrame({"study": ["A", "B", "C"], "events_t": [0, 4, 9], "total_t": [25, 40, 60],
                    "events_c": [4, 8, 15], "total_c": [25, 42, 58]})


def _mh_or(a, b, c, d):
    n = a + b + c + d
    return sum(a * d / n) / sum(b * c / n)


def test_mh_or_zero_cell_revman5_vs_metafor_by_hand():
    a, b = MH3.events_t.to_numpy(float), (MH3.total_t - MH3.events_t).to_numpy(float)
    c, d = MH3.events_c.to_numpy(float), (MH3.total_c - MH3.events_c).to_numpy(float)
    # metafor rma.mh: raw counts; study A has ad/n = 0 and weight bc/n = 25*4/50 = 2
    mf = metarepro.pool(MH3, measure="OR", method="MH")
    assert mf.estimate == pytest.approx(math.log(_mh_or(a, b, c, d)), rel=1e-13)
    assert mf.studies.weight[0] == pytest.approx(100 * (25 * 4 / 50) / sum(b * c / (a + b + c + d)), rel=1e-13)
    # RevMan 5: 0.5 added to every cell of study A -> a=.5, b=25.5, c=4.5, d=21.5, N=52
    a2, b2, c2, d2 = a.copy(), b.copy(), c.copy(), d.copy()
    for x in (a2, b2, c2, d2):
        x[0] += 0.5
    rm = metarepro.pool(MH3, measure="OR", method="MH", convention="revman5")
    assert rm.estimate == pytest.approx(math.log(_mh_or(a2, b2, c2, d2)), rel=1e-13)
    w = b2 * c2 / (a2 + b2 + c2 + d2)
    assert rm.studies.weight[0] == pytest.approx(100 * (25.5 * 4.5 / 52) / w.sum(), rel=1e-13)
    assert rm.estimate != pytest.approx(mf.estimate, rel=1e-6)


def test_mh_rr_weight_of_corrected_table_by_hand():
    rm = metarepro.pool(MH3, measure="RR", method="MH", convention="revman5")
    # MH RR weight c n1 / N on the corrected table of study A: 4.5 * 26 / 52
    w = np.array([4.5 * 26 / 52, 8 * 40 / 82, 15 * 60 / 118])
    assert rm.studies.weight.to_numpy() == pytest.approx(100 * w / w.sum(), rel=1e-13)
    r_ = np.array([0.5 * 26 / 52, 4 * 42 / 82, 9 * 58 / 118])  # a n2 / N
    assert rm.estimate == pytest.approx(math.log(r_.sum() / w.sum()), rel=1e-13)


def test_mh_rd_revman5_greenland_robins_variance_by_hand():
    rm = metarepro.pool(MH3, measure="RD", method="MH", convention="revman5")
    # RD needs no continuity correction: weights n1 n2 / N of the raw table (A: 25*25/50) and RDs
    # of the raw counts (Deeks & Higgins 2010). RevMan prints these weights: CD000478 (pub5)
    # Analysis 7.1, AZA versus placebo: Hawthorne 1992 2/38 vs 0/39, Sood 2000 3/25 vs 0/25,
    # Sood 2002 0/17 vs 0/18 weigh 47.535042, 30.872117 and 21.592841 (%), which are
    # 38*39/77, 25*25/50 and 17*18/35 as percent of their sum (checked below); the corrected
    # tables (n + 1) would give 47.03, 30.96 and 22.01.
    wp = np.array([38 * 39 / 77, 25 * 25 / 50, 17 * 18 / 35])
    assert 100 * wp / wp.sum() == pytest.approx([47.535042, 30.872117, 21.592841], abs=5e-7)
    aza = pd.DataFrame({"study": ["Hawthorne 1992", "Sood 2000", "Sood 2002"], "events_t": [2, 3, 0],
                        "total_t": [38, 25, 17], "events_c": [0, 0, 0], "total_c": [39, 25, 18]})
    got = metarepro.pool(aza, measure="RD", method="MH", convention="revman5").studies["weight"]
    assert got.to_numpy() == pytest.approx([47.535042, 30.872117, 21.592841], abs=5e-7)
    n1 = np.array([25.0, 40, 60])
    n2 = np.array([25.0, 42, 58])
    n = n1 + n2
    w = n1 * n2 / n
    rd = np.array([0 / 25 - 4 / 25, 4 / 40 - 8 / 42, 9 / 60 - 15 / 58])
    assert rm.estimate == pytest.approx((w * rd).sum() / w.sum(), rel=1e-13)
    # Greenland & Robins (1985): sum (a b n2^3 + c d n1^3) / (n1 n2 N^2) / (sum w)^2, raw cells
    a = np.array([0.0, 4, 9])
    b = n1 - a
    c = np.array([4.0, 8, 15])
    d = n2 - c
    p = ((a * b * n2**3 + c * d * n1**3) / (n1 * n2 * n**2)).sum()
    assert rm.se == pytest.approx(math.sqrt(p / w.sum() ** 2), rel=1e-13)


# --------------------------------------------------------------------------
# MH-DL (RevMan's "M-H, Random") by hand
# --------------------------------------------------------------------------

def test_mh_dl_by_hand_three_tables():
    a, b = MH3.events_t.to_numpy(float), (MH3.total_t - MH3.events_t).to_numpy(float)
    c, d = MH3.events_c.to_numpy(float), (MH3.total_c - MH3.events_c).to_numpy(float)
    a[0], b[0], c[0], d[0] = a[0] + 0.5, b[0] + 0.5, c[0] + 0.5, d[0] + 0.5  # zero-cell study A
    mh = math.log(_mh_or(a, b, c, d))
    y = np.log(a * d / (b * c))
    v = 1 / a + 1 / b + 1 / c + 1 / d
    w = 1 / v
    q = (w * (y - mh) ** 2).sum()  # Q about the MH estimate, inverse-variance weights
    tau2 = max(0.0, (q - 2) / (w.sum() - (w**2).sum() / w.sum()))
    ws = 1 / (v + tau2)
    mu = (ws * y).sum() / ws.sum()
    se = 1 / math.sqrt(ws.sum())
    res = metarepro.pool(MH3, measure="OR", method="MH-DL", convention="revman5")
    assert res.q == pytest.approx(q, rel=1e-12)
    assert res.tau2 == pytest.approx(tau2, rel=1e-12)
    assert res.estimate == pytest.approx(mu, rel=1e-12)
    assert res.se == pytest.approx(se, rel=1e-12)
    assert res.ci_upper == pytest.approx(mu + Z95 * se, rel=1e-12)
    assert res.i2 == pytest.approx(max(0.0, 100 * (q - 2) / q), rel=1e-10)
    assert res.studies.weight.to_numpy() == pytest.approx(100 * ws / ws.sum(), rel=1e-12)
    # plain DL would take Q about the inverse-variance estimate instead
    dl = metarepro.pool(MH3, measure="OR", method="DL", convention="revman5")
    ybar = (w * y).sum() / w.sum()
    assert dl.q == pytest.approx((w * (y - ybar) ** 2).sum(), rel=1e-12)
    assert dl.q != pytest.approx(q, rel=1e-6)


def test_mh_dl_heterogeneous_tables_by_hand():
    # tables chosen so that Q about MH exceeds its df (tau2 > 0)
    frame = pd.DataFrame({"study": ["a", "b", "c"], "events_t": [2, 30, 12], "total_t": [50, 60, 45],
                          "events_c": [10, 20, 30], "total_c": [50, 60, 45]})
    a, c = frame.events_t.to_numpy(float), frame.events_c.to_numpy(float)
    b, d = frame.total_t.to_numpy(float) - a, frame.total_c.to_numpy(float) - c
    n1, n2 = a + b, c + d
    n = n1 + n2
    mh = math.log((a * n2 / n).sum() / (c * n1 / n).sum())  # MH RR
    y = np.log(a / n1) - np.log(c / n2)
    v = 1 / a - 1 / n1 + 1 / c - 1 / n2
    w = 1 / v
    q = (w * (y - mh) ** 2).sum()
    tau2 = (q - 2) / (w.sum() - (w**2).sum() / w.sum())
    assert tau2 > 0
    ws = 1 / (v + tau2)
    res = metarepro.pool(frame, measure="RR", method="MH-DL", convention="revman5")
    assert res.tau2 == pytest.approx(tau2, rel=1e-12)
    assert res.estimate == pytest.approx((ws * y).sum() / ws.sum(), rel=1e-12)
    # without zero cells the metafor convention gives the same numbers
    mf = metarepro.pool(frame, measure="RR", method="MH-DL")
    assert mf.tau2 == pytest.approx(tau2, rel=1e-12)


def test_mh_dl_vectorised_over_analyses_matches_single_fits():
    both = pd.concat([MH3.assign(outcome="x"),
                      MH3.assign(outcome="y", study=MH3.study + "2", events_t=[3, 9, 20])], ignore_index=True)
    tab = metarepro.pool(both, measure="OR", method="MH-DL", convention="revman5", by="outcome")
    one = metarepro.pool(MH3, measure="OR", method="MH-DL", convention="revman5")
    assert tab["x"].estimate == pytest.approx(one.estimate, rel=1e-13)
    assert tab["x"].tau2 == pytest.approx(one.tau2, rel=1e-13, abs=1e-15)
    assert tab.summary.shape[0] == 2


# --------------------------------------------------------------------------
# Peto: raw O - E and V, no correction
# --------------------------------------------------------------------------

def test_revman5_peto_study_effects_from_raw_counts():
    res = metarepro.pool(ZERO, measure="OR", method="PETO", convention="revman5")
    st = res.studies.set_index("study")
    # single0: a=0, n1=20, c=3, n2=21, N=41, events 3, non-events 38
    e = 3 * 20 / 41
    v = 3 * 38 * 20 * 21 / (41**2 * 40)
    assert st.yi["single0"] == pytest.approx((0 - e) / v, rel=1e-13)
    assert st.vi["single0"] == pytest.approx(1 / v, rel=1e-13)
    assert res.corrections == []
    assert sorted(e["study"] for e in res.excluded) == ["allevents", "double0"]
    # metafor's rma.peto shows the corrected table's Peto OR for the zero-cell study
    mf = metarepro.pool(ZERO, measure="OR", method="PETO")
    assert [c["study"] for c in mf.corrections] == ["single0"]
    a, b, c, d = 0.5, 20.5, 3.5, 18.5  # the corrected table
    e2 = (a + c) * (a + b) / 43  # N = 21 + 22
    v2 = (a + c) * (b + d) * (a + b) * (c + d) / (43**2 * 42)
    assert mf.studies.set_index("study").yi["single0"] == pytest.approx((a - e2) / v2, rel=1e-13)
    # the pooled Peto estimate uses the raw counts under both conventions
    assert mf.estimate == pytest.approx(res.estimate, rel=1e-13)


# --------------------------------------------------------------------------
# SMD: RevMan 5's Hedges' adjusted g
# --------------------------------------------------------------------------

DAVIS = pd.DataFrame({"study": ["Davis", "Florell"], "mean_t": [5.0, 4.9], "sd_t": [4.7, 1.71],
                      "total_t": [13, 30], "mean_c": [6.5, 6.1], "sd_c": [3.8, 2.3], "total_c": [13, 50]})


def test_smd_revman5_by_hand():
    res = metarepro.pool(DAVIS, measure="SMD", method="FE", convention="revman5")
    # Davis: N = 26, pooled SD sqrt((12*4.7^2 + 12*3.8^2)/24), J = 1 - 3/(4*26 - 9)
    s = math.sqrt((12 * 4.7**2 + 12 * 3.8**2) / 24)
    g = (1 - 3 / 95) * (5.0 - 6.5) / s
    v = 26 / (13 * 13) + g**2 / (2 * (26 - 3.94))
    assert res.studies.yi[0] == pytest.approx(g, rel=1e-13)
    assert res.studies.vi[0] == pytest.approx(v, rel=1e-13)
    # metafor: exact J = Gamma(12) / (sqrt(12) Gamma(11.5)), variance 1/13 + 1/13 + g^2/(2*26)
    mf = metarepro.pool(DAVIS, measure="SMD", method="FE")
    j = math.exp(math.lgamma(12) - 0.5 * math.log(12) - math.lgamma(11.5))
    ge = j * (5.0 - 6.5) / s
    assert mf.studies.yi[0] == pytest.approx(ge, rel=1e-13)
    assert mf.studies.vi[0] == pytest.approx(2 / 13 + ge**2 / 52, rel=1e-13)
    # the SMD piece on its own
    own = metarepro.pool(DAVIS, measure="SMD", method="FE", smd="revman5")
    assert own.studies.yi[0] == pytest.approx(g, rel=1e-13)
    assert own.convention == "metafor (smd=revman5)"


# --------------------------------------------------------------------------
# not estimable is not an error under revman5; impossible data still is
# --------------------------------------------------------------------------

def test_sd_zero_not_estimable_under_revman5_error_under_metafor():
    frame = DAVIS.assign(sd_c=[3.8, 0.0])
    res = metarepro.pool(frame, measure="MD", method="FE", convention="revman5")
    assert res.k == 1
    assert res.excluded == [{"row": 1, "study": "Florell", "reason": "not estimable (SD = 0)"}]
    assert np.isnan(res.studies.yi[1]) and np.isnan(res.studies.weight[1])
    with pytest.raises(InputError, match="SD must be > 0"):
        metarepro.pool(frame, measure="MD", method="FE")
    with pytest.raises(InputError, match="SD must be > 0"):
        metarepro.pool(DAVIS.assign(sd_c=[3.8, -1.0]), measure="MD", method="FE", convention="revman5")


def test_zero_participants_and_zero_se_not_estimable_under_revman5():
    bin_ = ZERO.assign(total_t=[20, 0, 12, 15], events_t=[0, 0, 0, 15])
    res = metarepro.pool(bin_, measure="RR", method="MH", convention="revman5")
    assert {e["study"]: e["reason"] for e in res.excluded}["plain"] == "not estimable (a group with 0 participants)"
    with pytest.raises(InputError, match="total must be > 0"):
        metarepro.pool(bin_, measure="RR", method="MH")
    gen = pd.DataFrame({"study": ["a", "b", "c"], "yi": [0.1, 0.2, 0.3], "sei": [0.1, 0.0, 0.2]})
    res = metarepro.pool(gen, measure="GEN", method="FE", convention="revman5")
    assert res.k == 2 and res.excluded[0]["study"] == "b"
    with pytest.raises(InputError):
        metarepro.pool(gen, measure="GEN", method="FE")
    # RevMan 5's SMD needs N >= 3 (at N = 3 it is 0, see the Morrison 2020 test below); N = 2 has
    # no pooled SD (N - 2 = 0 degrees of freedom)
    few = DAVIS.assign(total_t=[1, 30], total_c=[1, 50])
    res = metarepro.pool(few, measure="SMD", method="FE", convention="revman5")
    assert res.k == 1 and "at least 3" in res.excluded[0]["reason"]


def test_impossible_counts_stay_errors_under_revman5():
    with pytest.raises(InputError, match="events > "):
        metarepro.pool(ZERO.assign(events_t=[0, 31, 0, 15]), measure="RR", method="MH", convention="revman5")
    with pytest.raises(InputError, match="negative count"):
        metarepro.pool(ZERO.assign(events_c=[3, -1, 0, 14]), measure="RR", method="MH", convention="revman5")


# --------------------------------------------------------------------------
# study and total CI levels (RevMan's CI_STUDY / CI_TOTAL)
# --------------------------------------------------------------------------

def test_study_level_separate_from_total_level():
    res = metarepro.pool(DAVIS, measure="MD", method="FE", study_level=99, level=95)
    z99 = stats.norm.ppf(0.995)
    y, v = -1.5, 4.7**2 / 13 + 3.8**2 / 13
    assert res.studies.ci_lower[0] == pytest.approx(y - z99 * math.sqrt(v), rel=1e-13)
    assert res.ci_upper == pytest.approx(res.estimate + Z95 * res.se, rel=1e-13)
    assert res.to_dict()["study_level"] == 99


def test_unknown_convention_pieces_are_one_line_errors():
    with pytest.raises(InputError, match="unknown convention 'revman'"):
        metarepro.pool(DAVIS, measure="MD", convention="revman")
    with pytest.raises(InputError, match="unknown smd='hedges'"):
        metarepro.pool(DAVIS, measure="SMD", smd="hedges")
    with pytest.raises(InputError, match="needs measure RR, OR or RD"):
        metarepro.pool(DAVIS, measure="MD", method="MH-DL")


# --------------------------------------------------------------------------
# metafor, where the two conventions compute the same thing
# --------------------------------------------------------------------------

REF_DIR = Path(__file__).parent / "reference"
REF = __import__("json").loads((REF_DIR / "metafor_reference.json").read_text())
# pandas < 3 needs round_trip to read R's %.17g doubles exactly
_EXACT = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


def _ref_data(name):
    return pd.read_csv(REF_DIR / "data" / f"{name}.csv", dtype={"study": str}, **_EXACT)


def _same_under_revman5(case) -> bool:
    """Cases metafor computes as RevMan 5 does: not SMD (RevMan's J differs),
    not the MH risk difference (RevMan's Greenland-Robins variance, metafor's
    Sato variance); for 2x2 data, no zero cell (then the zero-cell rules, RevMan's MH cells,
    RD and Peto are all metafor's), or RR/OR by inverse variance with
    double-zero studies dropped (``drop00=TRUE``) and no all-event study."""
    if case.get("error") or case["measure"] == "SMD" or (case["measure"], case["method"]) == ("RD", "MH"):
        return False
    f = _ref_data(case["dataset"])
    if "events_t" not in f:
        return case["options"] == {"add": 0.5, "to": "only0", "drop00": False}
    a, b = f.events_t, f.total_t - f.events_t
    c, d = f.events_c, f.total_c - f.events_c
    if not ((a == 0) | (b == 0) | (c == 0) | (d == 0)).any():
        return case["options"]["add"] == 0.5 and case["options"]["to"] == "only0"
    return (case["measure"] in ("RR", "OR") and case["method"] not in ("MH", "PETO")
            and case["options"] == {"add": 0.5, "to": "only0", "drop00": True}
            and not ((b == 0) & (d == 0)).any())


SAME = [c for c in REF["cases"] if _same_under_revman5(c)]


def test_enough_cases_coincide():
    kinds = {(c["measure"], c["method"]) for c in SAME}
    assert len(SAME) > 300
    for need in [("RR", "MH"), ("OR", "MH"), ("RD", "FE"), ("OR", "PETO"), ("OR", "DL"), ("MD", "REML"),
                 ("GEN", "DL")]:
        assert need in kinds, need
    assert any(c["options"]["drop00"] for c in SAME)  # zero-cell data too


@pytest.mark.parametrize("case", SAME, ids=[c["id"] for c in SAME])
def test_revman5_equals_metafor_where_conventions_coincide(case):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = metarepro.pool(_ref_data(case["dataset"]), measure=case["measure"], method=case["method"],
                             test=case["test"], convention="revman5")
    fit = case["fit"]
    # closed forms to 1e-10; iterative tau2 (REML/ML/PM/EB) to 1e-6, as tests/test_reference_metafor.py
    tol = {"rtol": 1e-6, "atol": 1e-6} if case["method"] in ("REML", "ML", "PM", "EB") else \
        {"rtol": 1e-10, "atol": 1e-12}
    for field in ("k", "estimate", "se", "ci_lower", "ci_upper", "tau2", "q", "i2"):
        want = fit.get(field)
        if want is not None:
            assert np.isclose(getattr(res, field), want, **tol), (field, getattr(res, field), want)
    ok = np.array([y is not None for y in case["escalc"]["yi"]])
    assert np.allclose(res.studies.yi.to_numpy()[ok], np.array(case["escalc"]["yi"], dtype=float)[ok],
                       rtol=1e-10, atol=1e-12)
    assert np.allclose(res.studies.weight.to_numpy()[ok], np.array(fit["weights"], dtype=float)[ok], **tol)


def test_smd_differs_from_metafor_on_both_sides():
    case = next(c for c in REF["cases"] if c["id"].startswith("normand1999/SMD/FE/z"))
    frame = _ref_data("normand1999")
    mf = metarepro.pool(frame, measure="SMD", method="FE")
    rm = metarepro.pool(frame, measure="SMD", method="FE", convention="revman5")
    assert np.allclose(mf.studies.yi, case["escalc"]["yi"], rtol=1e-10)  # metafor side
    n1, n2 = frame.total_t.to_numpy(float), frame.total_c.to_numpy(float)
    n = n1 + n2
    sdp = np.sqrt(((n1 - 1) * frame.sd_t**2 + (n2 - 1) * frame.sd_c**2) / (n - 2))
    g = (1 - 3 / (4 * n - 9)) * (frame.mean_t - frame.mean_c) / sdp  # RevMan side, by hand
    assert np.allclose(rm.studies.yi, g, rtol=1e-13)
    assert np.allclose(rm.studies.vi, n / (n1 * n2) + g**2 / (2 * (n - 3.94)), rtol=1e-13)
    assert not np.allclose(rm.studies.vi, mf.studies.vi, rtol=1e-6)


# --------------------------------------------------------------------------
# method forensics identifies RevMan's M-H, Random
# --------------------------------------------------------------------------

def test_forensics_identifies_mh_dl_from_hand_computed_result():
    from metarepro.forensics import method_forensics

    frame = pd.DataFrame({"study": list("abcd"), "events_t": [0, 30, 12, 5], "total_t": [40, 60, 45, 30],
                          "events_c": [6, 20, 30, 4], "total_c": [40, 60, 45, 30]})
    # RevMan's M-H, Random by hand: study a gets 0.5 in every cell
    a = np.array([0.5, 30, 12, 5])
    n1 = np.array([41.0, 60, 45, 30])
    c = np.array([6.5, 20, 30, 4])
    n2 = np.array([41.0, 60, 45, 30])
    n = n1 + n2
    mh = math.log((a * n2 / n).sum() / (c * n1 / n).sum())
    y = np.log(a / n1) - np.log(c / n2)
    v = 1 / a - 1 / n1 + 1 / c - 1 / n2
    w = 1 / v
    q = (w * (y - mh) ** 2).sum()
    tau2 = max(0.0, (q - 3) / (w.sum() - (w**2).sum() / w.sum()))
    ws = 1 / (v + tau2)
    mu, se = (ws * y).sum() / ws.sum(), 1 / math.sqrt(ws.sum())
    printed = [round(math.exp(x), 2) for x in (mu, mu - Z95 * se, mu + Z95 * se)]
    out = method_forensics(frame, "RR", *printed, decimals=2)
    both = out[out.matches_estimate & out.matches_ci]
    assert set(both.method) == {"MH-DL"}
    assert ("MH-DL", "z", "revman5") in set(zip(both.method, both.test, both.convention))
    assert {"metafor", "revman5"} <= set(out.convention)


# --------------------------------------------------------------------------
# YAML: convention at analysis level and per target
# --------------------------------------------------------------------------

def test_yaml_convention_and_mh_random_target(tmp_path):
    from metarepro.analysis import forensics_table, pooled_table, reproduction_rows
    from metarepro.extracted import load_analysis
    from metarepro.reproduce import published_method

    assert published_method({"method": "MH", "model": "random effects"})[0] == "MH-DL"
    assert published_method({"method": "MH", "model": "fixed effect"})[0] == "MH"
    # MH3 under RevMan 5, M-H, Random: by hand in test_mh_dl_by_hand_three_tables; here the
    # printed numbers are that hand calculation rounded to 2 decimals
    a = np.array([0.5, 4, 9])
    b = np.array([25.5, 36, 51])
    c = np.array([4.5, 8, 15])
    d = np.array([21.5, 34, 43])
    mh = math.log(_mh_or(a, b, c, d))
    y, v = np.log(a * d / (b * c)), 1 / a + 1 / b + 1 / c + 1 / d
    w = 1 / v
    tau2 = max(0.0, ((w * (y - mh) ** 2).sum() - 2) / (w.sum() - (w**2).sum() / w.sum()))
    ws = 1 / (v + tau2)
    mu, se = (ws * y).sum() / ws.sum(), 1 / math.sqrt(ws.sum())
    est, lo, hi = (round(math.exp(x), 2) for x in (mu, mu - Z95 * se, mu + Z95 * se))
    (tmp_path / "r.yaml").write_text(f"""analysis: r
title: R
claim: a claim
measure: OR
convention: revman5
outcomes: [{{name: death}}]
targets:
  - {{outcome: death, label: T, estimate: {est}, ci_lower: {lo}, ci_upper: {hi}, model: random effects,
     method: MH, source: 10.1000/x, source_location: analysis 1.1, quote: "{est} [{lo}, {hi}]"}}
  - {{outcome: death, label: M, estimate: {est}, ci_lower: {lo}, ci_upper: {hi}, model: random effects,
     method: MH, convention: metafor, source: 10.1000/x, source_location: analysis 1.1, quote: "x"}}
trials: [{{study: A, status: present}}, {{study: B, status: present}}, {{study: C, status: present}}]
""")
    head = "study,outcome,events_t,total_t,events_c,total_c,source,source_url,source_location,quote,derived\n"
    body = "".join(f"{r.study},death,{r.events_t},{r.total_t},{r.events_c},{r.total_c},10.1000/y,"
                   f"https://example.org,table 1,\"{r.events_t}/{r.total_t} vs {r.events_c}/{r.total_c}\",\n"
                   for r in MH3.itertuples())
    (tmp_path / "r.csv").write_text(head + body)
    an = load_analysis(tmp_path / "r.csv", tmp_path / "r.yaml")
    rows = {r["target"]: r for r in reproduction_rows(an)}
    assert rows["T"]["method"] == "MH-DL (z, revman5)"
    assert rows["T"]["reproduced_estimate"] == pytest.approx(math.exp(mu), rel=1e-12)
    assert rows["T"]["verdict"] == "reproduced"
    assert rows["M"]["method"] == "MH-DL (z)"
    pooled = pooled_table(an)
    assert set(pooled["convention"]) == {"revman5"} and "MH-DL" in set(pooled["method"])
    fx = forensics_table(an)
    assert {"metafor", "revman5"} <= set(fx["convention"])


# --------------------------------------------------------------------------
# subgroups: tau² per subgroup, weights of the total or of the subgroup
# --------------------------------------------------------------------------

def test_pool_subgroups_weights_and_test_for_differences_by_hand():
    from metarepro.pooling import pool_subgroups

    y = np.array([0.1, 0.3, -0.2, 0.5, 0.6])
    v = np.array([0.04, 0.09, 0.05, 0.02, 0.08])
    sg = np.array(["x", "x", "x", "y", "y"])
    frame = pd.DataFrame({"study": list("abcde"), "yi": y, "vi": v, "sg": sg})
    res = pool_subgroups(frame, "GEN", "sg", method="FE")
    w = 1 / v
    assert res.studies.weight_total.to_numpy() == pytest.approx(100 * w / w.sum(), rel=1e-13)
    wx, wy = w[:3], w[3:]
    assert res.studies.weight_subgroup.to_numpy() == pytest.approx(
        np.r_[100 * wx / wx.sum(), 100 * wy / wy.sum()], rel=1e-13)
    mx, my = (wx * y[:3]).sum() / wx.sum(), (wy * y[3:]).sum() / wy.sum()
    assert res.subgroups.summary.set_index("sg").estimate.to_dict() == pytest.approx({"x": mx, "y": my})
    # Q between: subgroup estimates with weights 1/se² = sum of their study weights
    m = (wx.sum() * mx + wy.sum() * my) / (wx.sum() + wy.sum())
    qb = wx.sum() * (mx - m) ** 2 + wy.sum() * (my - m) ** 2
    d = res.differences.iloc[0]
    assert d.q_between == pytest.approx(qb, rel=1e-12) and d.q_between_df == 1
    assert d.q_between_pvalue == pytest.approx(stats.chi2.sf(qb, 1), rel=1e-10)
    assert d.i2_between == pytest.approx(max(0, 100 * (qb - 1) / qb), rel=1e-10)
    assert res.totals.summary.estimate[0] == pytest.approx((w * y).sum() / w.sum(), rel=1e-13)


def test_pool_subgroups_vectorised_over_analyses_and_per_subgroup_tau2():
    from metarepro.pooling import pool_subgroups

    f = _ref_data("bcg").assign(sg=["a", "b"] * 6 + ["a"])
    two = pd.concat([f.assign(outcome="o1"), f.assign(outcome="o2", events_t=f.events_t + 1)],
                    ignore_index=True)
    res = pool_subgroups(two, "RR", "sg", by="outcome", method="MH-DL", convention="revman5")
    one = pool_subgroups(f, "RR", "sg", method="MH-DL", convention="revman5")
    s1 = res.subgroups.summary[res.subgroups.summary.outcome == "o1"].reset_index(drop=True)
    assert s1.tau2.to_numpy() == pytest.approx(one.subgroups.summary.tau2.to_numpy(), rel=1e-12)
    # each subgroup has its own tau², as a separate pool of its studies
    only_a = metarepro.pool(f[f.sg == "a"], measure="RR", method="MH-DL", convention="revman5")
    assert one.subgroups.summary.set_index("sg").tau2["a"] == pytest.approx(only_a.tau2, rel=1e-12)
    st = res.studies
    assert st.groupby("outcome").weight_total.sum().to_numpy() == pytest.approx([100, 100])
    assert st.groupby(["outcome", "sg"]).weight_subgroup.sum().to_numpy() == pytest.approx([100] * 4)
    assert list(res.differences.outcome) == ["o1", "o2"]


# --------------------------------------------------------------------------
# MH-DL under metafor's convention against metafor's pieces (tests/reference/make_mhdl.R)
# --------------------------------------------------------------------------

MHDL = __import__("json").loads((REF_DIR / "metafor_mhdl.json").read_text())


def test_mhdl_reference_is_complete():
    assert MHDL["metafor_version"].startswith("3.8")
    ids = {c["id"] for c in MHDL["cases"]}
    assert len(ids) == 6 * 3 * 3  # 6 datasets (4 with zero cells) x RR/OR/RD x z/knha/adhoc


@pytest.mark.parametrize("case", MHDL["cases"], ids=[c["id"] for c in MHDL["cases"]])
def test_mh_dl_metafor_convention_against_metafor(case):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = metarepro.pool(_ref_data(case["dataset"]), measure=case["measure"], method="MH-DL",
                             test=case["test"])
    fit = case["fit"]
    # closed forms: rounding only (as CLOSED in tests/test_reference_metafor.py)
    tol = {"rtol": 1e-10, "atol": 1e-12}
    for field in ("k", "q", "q_df", "tau2", "estimate", "se", "ci_lower", "ci_upper", "pvalue",
                  "pi_lower", "pi_upper"):
        assert np.isclose(getattr(res, field), fit[field], **tol), (field, getattr(res, field), fit[field])
    want = np.array([np.nan if x is None else x for x in fit["weights"]], float)
    assert np.allclose(res.studies.weight.to_numpy(), want, equal_nan=True, **tol)
    yi = np.array([np.nan if x is None else x for x in case["escalc"]["yi"]], float)
    assert np.allclose(res.studies.yi.to_numpy(), yi, equal_nan=True, **tol)


def test_revman5_smd_with_three_participants_is_zero_as_revman_prints():
    # CD015331 (pub2) Analysis 1.56, Morrison 2020 (MAPS): -10.77 (SD 3.36, n 2) vs -11.04
    # (SD 2.99, n 1); RevMan prints SMD 0.000000 (-2.400456 to 2.400456): J = 1 - 3/(4*3 - 9) = 0
    # and variance 3/(2*1) = 1.5, so the CI is 0 -+ 1.959964 * sqrt(1.5) = -+2.400456.
    one = pd.DataFrame({"study": ["Morrison 2020"], "mean_t": [-10.77], "sd_t": [3.36], "total_t": [2],
                        "mean_c": [-11.04], "sd_c": [2.99], "total_c": [1]})
    st = metarepro.pool(one, measure="SMD", method="FE", convention="revman5").studies.iloc[0]
    assert st.yi == 0.0 and st.vi == pytest.approx(1.5, rel=1e-13)
    assert st.ci_upper == pytest.approx(2.400456, abs=5e-7)
    # metafor's exact correction needs N - 2 >= 2: not estimable (an error under metafor's convention)
    with pytest.raises(metarepro.InputError, match="at least 4 participants"):
        metarepro.pool(one, measure="SMD", method="FE")


def test_revman5_mh_rr_all_event_table_enters_with_rr_one_by_hand():
    # Two tables: an all-event one (10/10 vs 5/5) and an ordinary one (3/20 vs 6/20). RevMan 5
    # corrects the first (a = 10.5, b = 0.5, c = 5.5, d = 0.5; n1 = 11, n2 = 6, N = 17)
    # and, as its printed weights require (CD002042 Analysis 1.1), lets it enter the MH estimate
    # with its displayed RR of 1: numerator term = denominator term = c n1 / N = 5.5 * 11 / 17.
    t = pd.DataFrame({"study": ["all", "plain"], "events_t": [10, 3], "total_t": [10, 20],
                      "events_c": [5, 6], "total_c": [5, 20]})
    res = metarepro.pool(t, measure="RR", method="MH", convention="revman5")
    s_all = 5.5 * 11 / 17
    r_plain, s_plain = 3 * 20 / 40, 6 * 20 / 40
    assert res.estimate == pytest.approx(math.log((s_all + r_plain) / (s_all + s_plain)), rel=1e-13)
    # the corrected table's own term a n2 / N = 10.5 * 6 / 17 would give a different estimate
    assert abs(res.estimate - math.log((10.5 * 6 / 17 + r_plain) / (s_all + s_plain))) > 1e-3
