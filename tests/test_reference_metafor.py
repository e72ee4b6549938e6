"""metarepro.pool against R's metafor 3.8 (tests/reference/metafor_reference.json).

The reference is written by ``Rscript tests/reference/make_reference.R`` (see
tests/reference/README.md). Each case names a CSV in tests/reference/data, the
measure, method, test and zero-cell options; the test pools that CSV with
metarepro and compares every field metafor reported.

Tolerances (``np.isclose``: |a - b| <= atol + rtol * |b|):

* CLOSED - values that are closed forms of the data: the per-study yi/vi, and
  every field of FE, MH, PETO, DL, HS, HE and SJ fits, plus Q, its df and p
  for all methods. metafor and numpy do the same arithmetic in a different
  order, so only rounding differs: rtol 1e-10, atol 1e-12.
* ITER - tau2 of REML, ML, EB (Fisher scoring) and PM (root of the generalised
  Q), and everything computed from it (estimate, se, CI, statistic, p-value,
  prediction intervals, I2, H2, weights). metafor was run with
  threshold = tol = 1e-12, so its tau2 is converged far below this; the
  tolerance leaves room for our own stopping rule: rtol 1e-6, atol 1e-6.
* QP - Q-profile bounds of tau2, I2, H2 (confint(), uniroot with tol 1e-12),
  found by root finding on both sides: rtol 1e-5, atol 1e-5 (I2 in percent).
  A bound at metafor's search limit tau2.max = max(100, 10 tau2) (flag sign
  ">") is that limit, not a root. The engine widens its bracket until it holds
  the root, so there it is compared with metafor's confint() run with
  tau2.max = 1e8 (``tau2_ci_uncapped``), and its ``tau2_ci_*_censored`` flags
  must be False (True only where even that run prints ">").

Where metafor reports null (NA, not applicable, or an error) the engine must
give NaN/None, with one exception: metafor's predict() drops the prediction
interval of common-effect models (FE/MH/PETO); since tau2 = 0 the interval is
the CI, so the engine may give either NaN or the CI there.
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
REF_PATH = HERE / "metafor_reference.json"
DATA = HERE / "data"

REF = json.loads(REF_PATH.read_text())
CASES = REF["cases"]

CLOSED = {"rtol": 1e-10, "atol": 1e-12}
ITER = {"rtol": 1e-6, "atol": 1e-6}
QP = {"rtol": 1e-5, "atol": 1e-5}

ITERATIVE = {"REML", "ML", "EB", "PM"}
COMMON = {"FE", "MH", "PETO"}
RE_METHODS = ["DL", "REML", "PM", "ML", "HS", "SJ", "HE", "EB"]
IV_METHODS = ["FE"] + RE_METHODS
MEASURES = ["RR", "OR", "RD", "MD", "SMD", "ROM", "ZCOR", "GEN"]
TESTS = ["z", "knha", "adhoc"]

# fields that do not involve tau2 (closed forms for every method)
TAU2_FREE = {"k", "q", "q_df", "q_pvalue"}
QP_FIELDS = {"tau2_ci_lower", "tau2_ci_upper", "i2_ci_lower", "i2_ci_upper", "h2_ci_lower", "h2_ci_upper"}
SCALAR_FIELDS = ["k", "estimate", "se", "ci_lower", "ci_upper", "statistic", "pvalue", "df",
                 "pi_lower", "pi_upper", "pi_hts_lower", "pi_hts_upper", "tau2",
                 "tau2_ci_lower", "tau2_ci_upper", "i2", "i2_ci_lower", "i2_ci_upper",
                 "h2", "h2_ci_lower", "h2_ci_upper", "q", "q_df", "q_pvalue"]


# parse the 17-digit numbers to exactly the doubles R wrote: pandas >= 3 does by default,
# older pandas needs float_precision="round_trip" (deprecated in 3)
_EXACT = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


@cache
def _load(dataset: str) -> pd.DataFrame:
    return pd.read_csv(DATA / f"{dataset}.csv", dtype={"study": str}, **_EXACT)


def _tol(case: dict, field: str) -> dict:
    if field in QP_FIELDS:
        return QP
    if case["method"] in ITERATIVE and field not in TAU2_FREE:
        return ITER
    return CLOSED


def _num(x) -> float:
    if x is None:
        return math.nan
    return float(x)


def _close(got, want, tol) -> bool:
    got, want = _num(got), _num(want)
    if math.isnan(want):
        return math.isnan(got)
    return bool(np.isclose(got, want, **tol))


def _pool(case: dict):
    frame = _load(case["dataset"]).copy()
    opts = case["options"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return metarepro.pool(frame, measure=case["measure"], method=case["method"], test=case["test"],
                              level=95, add=opts["add"], to=opts["to"], drop00=opts["drop00"])


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_against_metafor(case):
    if case.get("error"):
        # metafor itself failed (e.g. PM root above tau2.max); the same fit with a wider
        # bracket is a separate case (".../tau2max") and is compared there.
        pytest.skip(f"metafor error: {case['error']}")
    res = _pool(case)
    d = res.to_dict()
    fit = dict(case["fit"])
    bad = []
    censored = {"tau2_ci_lower_censored": False, "tau2_ci_upper_censored": False}
    flags = fit.get("tau2_ci_flags") or {}
    if ">" in (flags.get("lb_sign"), flags.get("ub_sign")):
        wide = case["tau2_ci_uncapped"]
        fit.update({f: wide[f] for f in QP_FIELDS})
        censored = {"tau2_ci_lower_censored": wide["lb_sign"] == ">",
                    "tau2_ci_upper_censored": wide["ub_sign"] == ">"}
    if case["method"] in RE_METHODS:
        for flag, want in censored.items():
            if d.get(flag) is not want:
                bad.append((flag, d.get(flag), want))

    for field in SCALAR_FIELDS:
        if field not in fit:
            continue
        want, got = fit[field], d.get(field)
        if field == "df" and want is None:
            # z test: no degrees of freedom
            if got is not None and not (isinstance(got, float) and math.isnan(got)):
                bad.append((field, got, want))
            continue
        if field in ("pi_lower", "pi_upper") and want is None and case["method"] in COMMON:
            ci = fit["ci_lower" if field == "pi_lower" else "ci_upper"]
            if _close(got, None, CLOSED) or _close(got, ci, _tol(case, "ci_lower")):
                continue
        if not _close(got, want, _tol(case, field)):
            bad.append((field, got, want))

    if d.get("converged") is not True:
        bad.append(("converged", d.get("converged"), True))

    # per study: labels in file order, metafor's escalc yi/vi and weights(fit)
    studies = d["studies"]
    labels = list(_load(case["dataset"])["study"].astype(str).str.strip())
    if [s["study"] for s in studies] != labels:
        bad.append(("study order", [s["study"] for s in studies], labels))
    else:
        for i, s in enumerate(studies):
            for field, want in (("yi", case["escalc"]["yi"][i]), ("vi", case["escalc"]["vi"][i])):
                if not _close(s.get(field), want, CLOSED):
                    bad.append((f"{field}[{s['study']}]", s.get(field), want))
            want_w = fit["weights"][i]
            if not _close(s.get("weight"), want_w, _tol(case, "weights")):
                bad.append((f"weight[{s['study']}]", s.get("weight"), want_w))

    assert not bad, f"{case['id']}: {len(bad)} mismatches (field, metarepro, metafor): {bad[:12]}"


# --------------------------------------------------------------------------
# the reference itself is complete
# --------------------------------------------------------------------------

def _ok(c):
    return not c.get("error")


def _k(c):
    return len(_load(c["dataset"]))


def test_reference_metadata():
    assert REF["metafor_version"].startswith("3.8")
    assert "threshold=1e-12" in REF["controls"]["rma"]
    assert len({c["id"] for c in CASES}) == len(CASES)
    for c in CASES:
        assert (DATA / f"{c['dataset']}.csv").exists(), c["dataset"]
        assert len(c["escalc"]["yi"]) == len(c["escalc"]["vi"]) == len(c["fit"]["weights"]) == _k(c)


def test_reference_covers_every_combination():
    default = {"add": 0.5, "to": "only0", "drop00": False}
    have = {(c["measure"], c["method"], c["test"]) for c in CASES
            if _ok(c) and c["options"] == default and _k(c) > 2}
    missing = [(m, meth, t) for m in MEASURES for meth in IV_METHODS for t in TESTS
               if (m, meth, t) not in have]
    # more than one dataset per binary, continuous and generic measure
    per = {}
    for c in CASES:
        if _ok(c) and c["options"] == default and _k(c) > 2 and c["method"] == "REML":
            per.setdefault(c["measure"], set()).add(c["dataset"])
    missing += [("datasets", m, len(per.get(m, ()))) for m in MEASURES if len(per.get(m, ())) < 2]

    mh = {(c["measure"], c["method"]) for c in CASES if _ok(c) and c["method"] in ("MH", "PETO")}
    missing += [x for x in [("RR", "MH"), ("OR", "MH"), ("RD", "MH"), ("OR", "PETO")] if x not in mh]

    # zero-cell conventions: defaults and add=0.25, to="all", drop00=TRUE, on data with a
    # single-zero and a double-zero study
    def zero_kinds(c):
        f = _load(c["dataset"])
        if "events_t" not in f:
            return set()
        a, n1, cc, n2 = f.events_t, f.total_t, f.events_c, f.total_c
        single = ((a == 0) | (cc == 0) | (a == n1) | (cc == n2)) & ~((a == 0) & (cc == 0))
        double = ((a == 0) & (cc == 0)) | ((a == n1) & (cc == n2))
        return ({"single"} if single.any() else set()) | ({"double"} if double.any() else set())

    for measure in ("RR", "OR", "RD"):
        for label, opt in [("default", default),
                           ("add=0.25", {"add": 0.25, "to": "only0", "drop00": False}),
                           ("to=all", {"add": 0.5, "to": "all", "drop00": False}),
                           ("drop00", {"add": 0.5, "to": "only0", "drop00": True})]:
            for method in ("FE", "REML"):
                found = [c for c in CASES if _ok(c) and c["measure"] == measure and c["method"] == method
                         and c["options"] == opt and zero_kinds(c) == {"single", "double"}]
                if not found:
                    missing.append(("zero cells", measure, method, label))
        for method in (["MH", "PETO"] if measure == "OR" else ["MH"]):
            opts = [c["options"] for c in CASES if _ok(c) and c["measure"] == measure
                    and c["method"] == method and "double" in zero_kinds(c)]
            if not any(o["drop00"] for o in opts) or not any(not o["drop00"] for o in opts):
                missing.append(("zero cells", measure, method, "drop00 TRUE and FALSE"))

    # k = 1 and k = 2 for every method
    for k in (1, 2):
        ks = {(c["method"], c["test"]) for c in CASES if _k(c) == k}
        missing += [("k", k, meth, t) for meth in IV_METHODS for t in TESTS if (meth, t) not in ks]
        missing += [("k", k, meth) for meth in ("MH", "PETO") if (meth, "z") not in ks]

    # Q-profile bounds beyond metafor's search limit, with the wide-bracket run to compare with
    wide = [c for c in CASES if _ok(c) and ">" in ((c["fit"].get("tau2_ci_flags") or {}).get("ub_sign", ""),)]
    if not wide or not all("tau2_ci_uncapped" in c for c in wide):
        missing.append(("Q-profile upper bound beyond tau2.max, with tau2_ci_uncapped", len(wide)))
    if "normand1999/MD/HS/z" not in {c["id"] for c in wide}:
        missing.append(("Q-profile", "normand1999/MD/HS/z (issue 11)"))
    # Peto and MH without continuity correction on single-zero tables
    for m in ("PETO", "MH"):
        if not any(_ok(c) and c["method"] == m and c["options"]["add"] == 0 and c["dataset"] == "peto_zero"
                   for c in CASES):
            missing.append(("add = 0", m, "peto_zero"))

    assert not missing, f"reference lacks: {missing}"
