"""Property tests: invariances any correct meta-analysis must have."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

import metarepro

METHODS = ["FE", "DL", "REML", "PM", "ML", "HS", "SJ", "HE", "EB"]

studies = st.lists(
    st.tuples(st.floats(-3, 3, allow_nan=False), st.floats(0.005, 2.0, allow_nan=False)),
    min_size=2, max_size=12)


def frame_of(rows):
    y, v = zip(*rows)
    return pd.DataFrame({"study": [f"s{i}" for i in range(len(rows))], "yi": y, "vi": v})


@settings(max_examples=40, deadline=None)
@given(studies, st.sampled_from(METHODS), st.sampled_from(["z", "knha"]), st.randoms())
def test_order_does_not_matter(rows, method, test, rnd):
    f = frame_of(rows)
    g = f.sample(frac=1.0, random_state=rnd.randint(0, 10**6)).reset_index(drop=True)
    a = metarepro.pool(f, measure="GEN", method=method, test=test)
    b = metarepro.pool(g, measure="GEN", method=method, test=test)
    for name in ("estimate", "se", "tau2", "q", "i2", "ci_lower", "pi_upper"):
        x, y = getattr(a, name), getattr(b, name)
        assert np.isclose(x, y, rtol=1e-7, atol=1e-9, equal_nan=True), (name, x, y)


@settings(max_examples=40, deadline=None)
@given(studies, st.sampled_from(METHODS))
def test_tau2_nonnegative_and_no_nan(rows, method):
    res = metarepro.pool(frame_of(rows), measure="GEN", method=method)
    assert res.tau2 >= 0 and res.i2 >= 0
    names = ["estimate", "se", "ci_lower", "ci_upper", "q", "pvalue"]
    if method != "FE":  # common-effect models have no prediction interval (as metafor)
        names += ["pi_lower", "pi_upper"]
    for name in names:
        assert np.isfinite(getattr(res, name)), name
    if method in ("PM", "EB"):
        # the Q-profile interval inverts the Paule-Mandel equation, so it contains the PM
        # estimate (other estimators can fall outside it)
        assert res.tau2_ci_lower - 1e-8 <= res.tau2 <= res.tau2_ci_upper + 1e-8 or res.tau2_ci_upper == 0


@settings(max_examples=30, deadline=None)
@given(studies, st.sampled_from(METHODS), st.floats(0.1, 10), st.floats(-5, 5))
def test_affine_change_of_scale(rows, method, c, shift):
    # y -> c*y + shift, v -> c^2 v: the estimate moves the same way, tau2 scales by c^2
    f = frame_of(rows)
    g = f.assign(yi=c * f.yi + shift, vi=c * c * f.vi)
    a = metarepro.pool(f, measure="GEN", method=method)
    b = metarepro.pool(g, measure="GEN", method=method)
    assert np.isclose(b.estimate, c * a.estimate + shift, rtol=1e-6, atol=1e-6 * c)
    assert np.isclose(b.se, c * a.se, rtol=1e-6, atol=1e-8)
    assert np.isclose(b.tau2, c * c * a.tau2, rtol=1e-5, atol=1e-8 * c * c)
    assert np.isclose(b.i2, a.i2, rtol=1e-6, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5, 5).map(float), min_size=1, max_size=30))
def test_ordinal_ranks_are_scipys(values):
    # trim-and-fill ranks |y - mu| with ties broken by order (R's ties.method="first"); the
    # reference is scipy.stats.rankdata(method="ordinal"), imported only here.
    from scipy.stats import rankdata

    from metarepro.small_study import _ordinal_ranks

    x = np.asarray(values)
    assert np.array_equal(_ordinal_ranks(x), rankdata(x, method="ordinal"))


@settings(max_examples=40, deadline=None)
@given(studies, st.sampled_from(METHODS[1:]))
def test_adhoc_interval_never_narrower_than_z(rows, method):
    """Knapp & Hartung's (2003) ad hoc correction: the scale factor is at least 1 and the
    t quantile exceeds the normal one, so the interval always contains the Wald z interval."""
    f = frame_of(rows)
    z = metarepro.pool(f, measure="GEN", method=method, test="z")
    ad = metarepro.pool(f, measure="GEN", method=method, test="adhoc")
    assert ad.se >= z.se * (1 - 1e-12)
    assert ad.ci_lower <= z.ci_lower + 1e-12 and ad.ci_upper >= z.ci_upper - 1e-12


@settings(max_examples=40, deadline=None)
@given(studies)
def test_q_profile_bounds_are_roots(rows):
    """Every Q-profile bound that is not 0 and not flagged as censored solves the
    generalised Q equation Q(tau2) = chi2 quantile (Viechtbauer 2007)."""
    from scipy import stats

    f = frame_of(rows)
    res = metarepro.pool(f, measure="GEN", method="REML")
    y, v = f["yi"].to_numpy(), f["vi"].to_numpy()

    def q(t):
        w = 1 / (v + t)
        mu = (w * y).sum() / w.sum()
        return (w * (y - mu) ** 2).sum()

    df = len(y) - 1
    for b, crit, flag in ((res.tau2_ci_lower, stats.chi2.isf(0.025, df), res.tau2_ci_lower_censored),
                          (res.tau2_ci_upper, stats.chi2.ppf(0.025, df), res.tau2_ci_upper_censored)):
        assert not flag
        if b > 0:
            assert np.isclose(q(b), crit, rtol=1e-6), (b, q(b), crit)
