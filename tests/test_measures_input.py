"""Bad input for the measures of issue 14: one line naming file, row, column and problem."""

import pandas as pd
import pytest

import metarepro
from metarepro.cli import main

PROP = "study,events,total\n"
RATE = "study,events,time\n"
RATE2 = "study,events_t,time_t,events_c,time_c\n"
MEAN = "study,mean,sd,total\n"
CHANGE = "study,mean_pre,mean_post,sd_pre,sd_post,r_prepost,total\n"
PART = "study,t,total,predictors\n"
SEMI = "study,t,total,predictors,r2\n"

CASES = [
    ("proportion-above-1", PROP + "A,12,10\n", "PLO", ["row 2", "'events'", "12 events > 10 total", "above 1"]),
    ("negative-events", PROP + "A,-1,10\n", "PR", ["row 2", "'events'", "must be >= 0"]),
    ("fractional-events", PROP + "A,1.5,10\n", "PFT", ["row 2", "'events'", "not a whole number"]),
    ("zero-total", PROP + "A,0,0\n", "PAS", ["row 2", "'total'", "must be > 0"]),
    ("negative-person-time", RATE + "A,3,-100\n", "IR", ["row 2", "'time'", "person-time must be > 0"]),
    ("zero-person-time", RATE2 + "A,3,100,2,0\n", "IRR", ["row 2", "'time_c'", "person-time must be > 0"]),
    ("negative-rate-events", RATE2 + "A,3,100,-2,50\n", "IRD", ["row 2", "'events_c'", "must be >= 0"]),
    ("zero-sd", MEAN + "A,5,0,20\n", "MN", ["row 2", "'sd'", "SD must be > 0"]),
    ("log-mean-negative", MEAN + "A,-5,1,20\n", "MNLN", ["row 2", "'mean'", "must be > 0"]),
    ("prepost-r-outside", CHANGE + "A,1,2,1,1,1.2,20\n", "MC", ["row 2", "'r_prepost'", "outside [-1, 1]"]),
    ("change-too-few", CHANGE + "A,1,2,1,1,0.5,2\n", "SMCC", ["row 2", "'total'", "at least 3 participants"]),
    ("romc-negative-mean", CHANGE + "A,-1,2,1,1,0.5,20\n", "ROMC", ["row 2", "'mean_pre'", "must be > 0"]),
    ("cor-r-is-1", "study,r,total\nA,1,50\n", "COR", ["row 2", "'r'", "strictly between -1 and 1"]),
    ("cor-r-above-1", "study,r,total\nA,1.3,50\n", "UCOR", ["row 2", "'r'", "outside [-1, 1]"]),
    ("ucor-too-few", "study,r,total\nA,0.3,4\n", "UCOR", ["row 2", "'total'", "must be >= 5"]),
    ("pcor-no-df", PART + "A,2.1,10,9\n", "PCOR", ["row 2", "'total'", "no residual degrees of freedom"]),
    ("pcor-negative-predictors", PART + "A,2.1,10,-1\n", "ZPCOR", ["row 2", "'predictors'", "must be >= 0"]),
    ("spcor-r2-above-1", SEMI + "A,2.1,100,3,1.2\n", "SPCOR", ["row 2", "'r2'", "outside [0, 1]"]),
    ("pcor-r-is-minus-1", "study,r,total,predictors\nA,-1,100,3\n", "PCOR",
     ["row 2", "'r'", "strictly between -1 and 1"]),
    ("pft-printed-ci", "study,estimate,ci_lower,ci_upper\nA,0.2,0.1,0.3\n", "PFT",
     ["needs each study's counts"]),
    ("plo-printed-ci-above-1", "study,estimate,ci_lower,ci_upper\nA,0.9,0.8,1.2\n", "PLO",
     ["row 2", "'ci_upper'", "inside (0, 1)"]),
    ("measure-does-not-fit", PROP + "A,1,10\n", "IRR", ["measure IRR does not fit the columns events,total"]),
]


@pytest.mark.parametrize("text,measure,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_one_line_error(tmp_path, capsys, text, measure, fragments):
    path = tmp_path / "data.csv"
    path.write_text(text)
    rc = main(["pool", str(path), "--measure", measure])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert str(path) in err
    for frag in fragments:
        assert frag in err, (frag, err)


def test_corrections_and_exclusions_are_listed():
    # study B has no events: corrected by default (PLO), excluded when no correction is allowed
    frame = pd.DataFrame({"study": ["A", "B", "C"], "events": [3, 0, 5], "total": [10, 12, 20]})
    res = metarepro.pool(frame, measure="PLO", method="FE")
    assert [c["study"] for c in res.corrections] == ["B"]
    assert "added 0.5 to events and non-events (zero cell)" in res.corrections[0]["action"]
    res = metarepro.pool(frame, measure="PLO", method="FE", add=0)
    assert [e["study"] for e in res.excluded] == ["B"] and res.k == 2
    assert "PLO not estimable" in res.excluded[0]["reason"]
    # PFT needs no correction (metafor's add = 0 by default for PAS/PFT)
    res = metarepro.pool(frame, measure="PFT", method="FE")
    assert res.corrections == [] and res.k == 3


def test_printed_interval_of_a_proportion_is_converted_on_the_logit_scale():
    # by hand: logit(0.3) = log(3/7); SE = (logit(0.4) - logit(0.2)) / (2 * 1.959963984540054)
    import math

    frame = pd.DataFrame({"study": ["A"], "estimate": [0.3], "ci_lower": [0.2], "ci_upper": [0.4]})
    res = metarepro.pool(frame, measure="PLO", method="FE")
    lg = lambda p: math.log(p / (1 - p))
    assert res.estimate == pytest.approx(lg(0.3), rel=1e-14)
    assert res.se == pytest.approx((lg(0.4) - lg(0.2)) / (2 * 1.959963984540054), rel=1e-12)
    assert res.natural()["estimate_natural"] == pytest.approx(0.3, rel=1e-14)


def test_analysis_schema_knows_every_measure():
    import json
    from importlib import resources

    from metarepro.names import MEASURES

    schema = json.loads(resources.files("metarepro").joinpath("schemas/analysis.schema.json").read_text())
    assert schema["properties"]["measure"]["enum"] == list(MEASURES)
