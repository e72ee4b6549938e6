"""The effect measures of issue 14 against R's metafor 3.8 (tests/reference/metafor_measures.json).

The reference is written by ``Rscript tests/reference/make_measures.R`` (see
tests/reference/README.md): one proportion (PR PLN PLO PAS PFT), incidence rates
(IR IRLN IRS IRFT, IRR IRD), one mean (MN MNLN), change scores (MC SMCC SMCR
ROMC) and correlations (COR UCOR PCOR ZPCOR SPCOR), each pooled with every
method and test on metadat datasets, plus the zero-event conventions of the
count measures. Each case gives metafor's per-study ``escalc`` yi/vi, the
fit, ``weights()``, the Q-profile bounds and, where the measure has a natural
scale, ``predict(fit, transf=...)``.

Tolerances (``np.isclose``: |a - b| <= atol + rtol |b|), as in test_reference_metafor.py:

* CLOSED (rtol 1e-10, atol 1e-12): per-study yi/vi, and every field of FE, DL,
  HS, HE and SJ fits, plus Q, its df and p for all methods - closed forms, only
  rounding differs. UCOR's yi goes through a hypergeometric function (SciPy's
  ``hyp2f1`` here, GSL's in R): still within CLOSED.
* ITER (rtol 1e-6, atol 1e-6): REML, ML, EB, PM tau2 and all that depends on it;
  metafor converged to 1e-12, room for our stopping rule.
* QP (rtol 1e-5, atol 1e-5): Q-profile bounds (root finding on both sides).
  Where metafor's bound sits at its search limit (sign ">"), the engine's
  (a root, found with a widened bracket) is compared with metafor's
  ``confint()`` at ``tau2.max = 1e8`` (``tau2_ci_uncapped``), and the
  ``tau2_ci_*_censored`` flags must match that run's signs.
* The back-transformed values get the tolerance of the value they come from.

Where metafor keeps a study with sampling variance 0 (``to="none"`` on a study
with no events), metarepro excludes it with the reason; the reference then fits
the other studies (``zero_variance_rows``) and the test checks the exclusion.
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
REF = json.loads((HERE / "metafor_measures.json").read_text())
CASES = REF["cases"]
DATA = HERE / "data"

CLOSED = {"rtol": 1e-10, "atol": 1e-12}
ITER = {"rtol": 1e-6, "atol": 1e-6}
QP = {"rtol": 1e-5, "atol": 1e-5}
ITERATIVE = {"REML", "ML", "EB", "PM"}
TAU2_FREE = {"k", "q", "q_df", "q_pvalue"}
QP_FIELDS = {"tau2_ci_lower", "tau2_ci_upper", "i2_ci_lower", "i2_ci_upper", "h2_ci_lower", "h2_ci_upper"}
FIELDS = ["k", "estimate", "se", "ci_lower", "ci_upper", "statistic", "pvalue", "df", "pi_lower", "pi_upper",
          "tau2", "tau2_ci_lower", "tau2_ci_upper", "i2", "i2_ci_lower", "i2_ci_upper", "h2", "h2_ci_lower",
          "h2_ci_upper", "q", "q_df", "q_pvalue"]
RE_METHODS = {"DL", "REML", "PM", "ML", "HS", "SJ", "HE", "EB"}
NEW_MEASURES = ["PR", "PLN", "PLO", "PAS", "PFT", "IR", "IRLN", "IRS", "IRFT", "IRR", "IRD", "MN", "MNLN",
                "MC", "SMCC", "SMCR", "ROMC", "COR", "UCOR", "PCOR", "ZPCOR", "SPCOR"]
IV_METHODS = ["FE", "DL", "REML", "PM", "ML", "HS", "SJ", "HE", "EB"]
_EXACT = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


@cache
def _load(dataset: str) -> pd.DataFrame:
    return pd.read_csv(DATA / f"{dataset}.csv", dtype={"study": str}, **_EXACT)


def _tol(case, field):
    if field in QP_FIELDS:
        return QP
    if case["method"] in ITERATIVE and field not in TAU2_FREE:
        return ITER
    return CLOSED


def _close(got, want, tol) -> bool:
    got = math.nan if got is None else float(got)
    want = math.nan if want is None else float(want)
    if math.isnan(want):
        return math.isnan(got)
    return bool(np.isclose(got, want, **tol))


def _pool(case):
    opts = case["options"]
    kw = {k: opts[k] for k in ("add", "to", "drop00") if k in opts}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return metarepro.pool(_load(case["dataset"]).copy(), measure=case["measure"], method=case["method"],
                              test=case["test"], **kw)


def _diffs(case):
    """(field, ours, metafor, tolerance) of every number compared in ``case``."""
    res = _pool(case)
    d = res.to_dict()
    fit = dict(case["fit"])
    out = []
    flags = fit.get("tau2_ci_flags") or {}
    censored = {"tau2_ci_lower_censored": False, "tau2_ci_upper_censored": False}
    if ">" in (flags.get("lb_sign"), flags.get("ub_sign")):
        wide = case["tau2_ci_uncapped"]
        fit.update({f: wide[f] for f in QP_FIELDS})
        censored = {"tau2_ci_lower_censored": wide["lb_sign"] == ">", "tau2_ci_upper_censored": wide["ub_sign"] == ">"}
    if case["method"] in RE_METHODS:
        out += [(flag, d.get(flag), want, None) for flag, want in censored.items()]
    for field in FIELDS:
        if field not in fit:
            continue
        want = fit[field]
        if field in ("pi_lower", "pi_upper") and want is None and case["method"] == "FE":
            continue  # predict() gives no PI for common-effect models (the engine gives none either)
        out.append((field, d.get(field), want, _tol(case, field)))
    zero = {i - 1 for i in case.get("zero_variance_rows", [])}
    for i, s in enumerate(d["studies"]):
        for field in ("yi", "vi"):
            want = None if i in zero else case["escalc"][field][i]
            out.append((f"{field}[{s['study']}]", s.get(field), want, CLOSED))
        out.append((f"weight[{s['study']}]", s.get("weight"), fit["weights"][i], _tol(case, "weights")))
    nat = res.natural()
    for field, want in (case.get("natural") or {}).items():
        if field == "call":
            continue
        if want is None and field.startswith("pi_") and case["method"] == "FE":
            continue
        out.append((f"{field}_natural", nat.get(f"{field}_natural"), want, _tol(case, field)))
    if zero:
        ex = {e["row"] for e in d["excluded"]}
        out.append(("excluded rows", sorted(ex), sorted(zero), None))
    return out


def _ok(case):
    return not case.get("error")


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_measure_against_metafor(case):
    if case.get("error"):
        pytest.skip(f"metafor error: {case['error']} (the same fit with wider controls is its own case)")
    bad = []
    for field, got, want, tol in _diffs(case):
        if tol is None:
            if got != want:
                bad.append((field, got, want))
        elif not _close(got, want, tol):
            bad.append((field, got, want))
    assert not bad, f"{case['id']}: {len(bad)} mismatches (field, metarepro, metafor): {bad[:12]}"


def test_reference_metadata():
    assert REF["metafor_version"].startswith("3.8")
    assert len({c["id"] for c in CASES}) == len(CASES)
    for c in CASES:
        assert (DATA / f"{c['dataset']}.csv").exists(), c["dataset"]
        assert len(c["escalc"]["yi"]) == len(_load(c["dataset"]))


def test_reference_covers_every_measure_method_and_test():
    # default options (ids without a tag), or metafor's remedy where the default fit failed
    have = {(c["measure"], c["method"], c["test"]) for c in CASES if _ok(c)}
    missing = [(m, meth, t) for m in NEW_MEASURES for meth in IV_METHODS for t in ("z", "knha", "adhoc")
               if (m, meth, t) not in have]
    # every measure with a natural scale has its back-transformation checked
    from metarepro.names import TRANSFORM

    nat = {c["measure"] for c in CASES if c.get("natural")}
    missing += [("natural", m) for m in NEW_MEASURES if m in TRANSFORM and m not in nat]
    # count data: each zero-event convention on data with zero events, and both input forms of partial r
    tags = {(c["family"], c["id"].split("/")[-1]) for c in CASES}
    for fam in ("proportion", "rate", "rate2"):
        for tag in ("add0.25", "toall", "if0all", "none"):
            if (fam, tag) not in tags:
                missing.append(("zero events", fam, tag))
    if ("rate2", "drop00") not in tags:
        missing.append(("zero events", "rate2", "drop00"))
    fams = {c["family"] for c in CASES}
    missing += [("family", f) for f in ("partial_t", "partial_r", "semipartial_r") if f not in fams]
    assert not missing, f"reference lacks: {missing}"


def max_differences() -> dict:
    """Largest |metarepro - metafor| per measure over all cases (for the report)."""
    worst: dict = {}
    for case in CASES:
        if not _ok(case):
            continue
        for field, got, want, tol in _diffs(case):
            if tol is None or got is None or want is None:
                continue
            d = abs(float(got) - float(want))
            key = case["measure"]
            if math.isfinite(d) and d > worst.get(key, (0.0, ""))[0]:
                worst[key] = (d, f"{case['id']} {field}")
    return worst


def test_ucor_by_a_50_digit_series():
    """Olkin-Pratt's r 2F1(1/2, 1/2; (n-2)/2; 1 - r²) for n = 22, r = 0.018, with the
    hypergeometric series summed in 50-digit decimal arithmetic (17,937 terms, written
    out here). metafor 3.8 (GSL's hyperg_2F1) gives 1.0282358... for the factor: GSL is
    off by 1e-4 relative near z = 1 when c - a - b is a whole number, so such cases are
    checked here rather than against metafor."""
    from decimal import Decimal, getcontext

    getcontext().prec = 50
    z, c = 1 - Decimal("0.018") ** 2, Decimal(10)
    term = total = Decimal(1)
    j = 0
    while term > Decimal("1e-40"):
        term = term * (j + Decimal("0.5")) ** 2 * z / ((c + j) * (j + 1))
        total += term
        j += 1
    frame = pd.DataFrame({"study": ["a"], "r": [0.018], "total": [22]})
    res = metarepro.pool(frame, measure="UCOR", method="FE")
    assert res.studies["yi"][0] == pytest.approx(0.018 * float(total), rel=1e-14)
