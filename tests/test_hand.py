"""Values worked out by hand (formulas written in the test), and zero-cell bookkeeping."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import metarepro

TWO = pd.DataFrame({"study": ["A", "B"], "events_t": [4, 6], "total_t": [123, 306],
                    "events_c": [11, 29], "total_c": [139, 303]})


def test_log_rr_and_variance_by_hand():
    res = metarepro.pool(TWO, measure="RR", method="FE")
    st = res.studies
    # study A: log(4/123) - log(11/139); var 1/4 - 1/123 + 1/11 - 1/139
    assert st.yi[0] == pytest.approx(math.log(4 / 123) - math.log(11 / 139), rel=1e-13)
    assert st.vi[0] == pytest.approx(1 / 4 - 1 / 123 + 1 / 11 - 1 / 139, rel=1e-13)
    w = 1 / st.vi
    mu = (w * st.yi).sum() / w.sum()
    assert res.estimate == pytest.approx(mu, rel=1e-13)
    assert res.se == pytest.approx(1 / math.sqrt(w.sum()), rel=1e-13)
    assert res.natural()["estimate_natural"] == pytest.approx(math.exp(mu), rel=1e-13)


def test_dl_by_hand():
    y = np.array([0.5, -0.1, 0.9, 0.2])
    v = np.array([0.04, 0.06, 0.05, 0.02])
    w = 1 / v
    ybar = (w * y).sum() / w.sum()
    q = (w * (y - ybar) ** 2).sum()
    tau2 = max(0.0, (q - 3) / (w.sum() - (w**2).sum() / w.sum()))
    ws = 1 / (v + tau2)
    mu = (ws * y).sum() / ws.sum()
    res = metarepro.pool(pd.DataFrame({"study": list("abcd"), "yi": y, "vi": v}), measure="GEN", method="DL")
    assert res.tau2 == pytest.approx(tau2, rel=1e-12)
    assert res.q == pytest.approx(q, rel=1e-12)
    assert res.estimate == pytest.approx(mu, rel=1e-12)
    # Hartung-Knapp by hand
    hk = metarepro.pool(pd.DataFrame({"study": list("abcd"), "yi": y, "vi": v}), measure="GEN",
                        method="DL", test="knha")
    se_hk = math.sqrt((ws * (y - mu) ** 2).sum() / (3 * ws.sum()))
    assert hk.se == pytest.approx(se_hk, rel=1e-12)
    assert hk.ci_upper == pytest.approx(mu + stats.t.ppf(0.975, 3) * se_hk, rel=1e-12)


def test_dl_tau2_truncated_at_zero():
    # homogeneous data: Q < k-1 so the untruncated DL value would be negative
    frame = pd.DataFrame({"study": list("abc"), "yi": [0.1, 0.11, 0.09], "vi": [0.1, 0.1, 0.1]})
    res = metarepro.pool(frame, measure="GEN", method="DL")
    assert res.tau2 == 0.0 and res.i2 == 0.0


def test_ci_input_recovers_se():
    # RR 0.85 (0.73 to 0.98): SE = (log 0.98 - log 0.73) / (2 * 1.959964)
    frame = pd.DataFrame({"study": ["W"], "estimate": [0.85], "ci_lower": [0.73], "ci_upper": [0.98]})
    res = metarepro.pool(frame, measure="RR", method="FE")
    se = (math.log(0.98) - math.log(0.73)) / (2 * stats.norm.ppf(0.975))
    assert res.se == pytest.approx(se, rel=1e-12)
    assert res.estimate == pytest.approx(math.log(0.85), rel=1e-12)
    assert res.k == 1 and any("k = 1" in w for w in res.warnings)


def test_zero_cells_listed_not_silent():
    frame = pd.DataFrame({"study": ["A", "B", "C"], "events_t": [0, 3, 0], "total_t": [20, 20, 20],
                          "events_c": [2, 5, 0], "total_c": [20, 20, 20]})
    res = metarepro.pool(frame, measure="OR", method="DL")
    assert {c["study"] for c in res.corrections} == {"A", "C"}
    # study A with 0.5 added to every cell: log((0.5*4.5)/(20.5*2.5)), var 1/0.5+1/20.5+1/2.5+1/18.5
    a = res.studies.set_index("study")
    assert a.yi["A"] == pytest.approx(math.log(0.5 * 18.5 / (20.5 * 2.5)), rel=1e-13)
    assert a.vi["A"] == pytest.approx(1 / 0.5 + 1 / 20.5 + 1 / 2.5 + 1 / 18.5, rel=1e-13)
    assert res.k == 3
    revman = metarepro.pool(frame, measure="OR", method="DL", drop00=True)
    assert revman.k == 2 and [e["study"] for e in revman.excluded] == ["C"]
    nocorr = metarepro.pool(frame, measure="OR", method="DL", add=0)
    assert {e["study"] for e in nocorr.excluded} == {"A", "C"} and nocorr.k == 1


def test_grouped_equals_separate():
    frame = pd.DataFrame({"g": ["x"] * 3 + ["y"] * 4, "study": list("abcdefg"),
                          "yi": [0.1, 0.5, 0.3, -0.2, 0.4, 0.9, 0.0],
                          "vi": [0.02, 0.05, 0.03, 0.04, 0.02, 0.08, 0.03]})
    tbl = metarepro.pool(frame, measure="GEN", method="REML", test="knha", by="g")
    for g in ("x", "y"):
        one = metarepro.pool(frame[frame.g == g].reset_index(drop=True), measure="GEN", method="REML",
                             test="knha")
        assert tbl[g].estimate == pytest.approx(one.estimate, abs=1e-12)
        assert tbl[g].tau2_ci_upper == pytest.approx(one.tau2_ci_upper, abs=1e-10)


def test_distribution_functions_equal_scipy_stats():
    """metarepro._dist computes from scipy.special what scipy.stats computes (the
    reference here), to spare the pipeline jobs the import of scipy.stats."""
    from scipy import stats

    from metarepro import _dist

    rng = np.random.default_rng(7)
    x, p, df = rng.normal(size=40) * 3, rng.uniform(1e-9, 1, 40), rng.uniform(0.5, 60, 40)
    pairs = [
        (_dist.norm.cdf(x), stats.norm.cdf(x)), (_dist.norm.sf(x), stats.norm.sf(x)),
        (_dist.norm.isf(p), stats.norm.isf(p)), (_dist.t.sf(x, df), stats.t.sf(x, df)),
        (_dist.t.isf(p, df), stats.t.isf(p, df)), (_dist.t.isf(p, np.inf), stats.t.isf(p, np.inf)),
        (_dist.t.sf(x, np.inf), stats.t.sf(x, np.inf)), (_dist.chi2.cdf(abs(x), df), stats.chi2.cdf(abs(x), df)),
        (_dist.chi2.sf(abs(x), df), stats.chi2.sf(abs(x), df)), (_dist.chi2.isf(p, df), stats.chi2.isf(p, df)),
        (_dist.chi2.ppf(p, df), stats.chi2.ppf(p, df)), (_dist.f.sf(abs(x), df, df + 1), stats.f.sf(abs(x), df, df + 1)),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours, theirs, rtol=1e-13, atol=0)
