"""The single-level extras on the command line: ``metarepro pool ... --extras`` and
``metarepro regress``, checked against the metafor 3.8 values of
tests/reference/metafor_extras.json (same data, same models; tolerances as
test_reference_extras.py)."""

import json
from pathlib import Path

import pytest

from metarepro.cli import main

HERE = Path(__file__).parent / "reference"
REF = {e["id"]: e["result"] for e in json.loads((HERE / "metafor_extras.json").read_text())["diagnostics"]}
ITER = {"rel": 1e-6, "abs": 1e-6}


def _json_lines(capsys, argv):
    assert main(argv) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_pool_extras_json_agree_with_metafor(capsys):
    (d,) = _json_lines(capsys, ["pool", str(HERE / "data" / "bcg.csv"), "--measure", "RR", "--method", "REML",
                                "--extras", "--json"])
    ex = d["extras"]
    pl = REF["bcg/tau2_pl/REML/z"]
    assert ex["tau2_pl"]["tau2_ci_lower"] == pytest.approx(pl["ci_lower"], rel=1e-5)
    assert ex["tau2_pl"]["tau2_ci_upper"] == pytest.approx(pl["ci_upper"], rel=1e-5)
    hc = REF["bcg/hc/REML/z"]
    assert ex["henmi_copas"]["ci_lower"] == pytest.approx(hc["ci_lower"], rel=1e-6)
    assert ex["henmi_copas"]["ci_upper"] == pytest.approx(hc["ci_upper"], rel=1e-6)
    for kind, key in (("rosenthal", "type=Rosenthal"), ("orwin", "type=Orwin"), ("rosenberg", "type=Rosenberg")):
        assert ex["fail_safe_n"][kind]["fsn"] == REF[f"bcg/fsn/{key}"]["fsn"]
    blup = REF["bcg/blup/REML/z"]
    assert [b["pred"] for b in ex["blup"]] == pytest.approx(blup["pred"], **ITER)
    ranef = REF["bcg/ranef/REML/z"]
    assert [b["pi_upper"] for b in ex["ranef"]] == pytest.approx(ranef["pi_upper"], **ITER)


def test_pool_extras_say_why_profile_likelihood_is_missing(capsys):
    (d,) = _json_lines(capsys, ["pool", str(HERE / "data" / "bcg.csv"), "--measure", "RR", "--method", "DL",
                                "--extras", "--json"])
    assert "needs method ML or REML" in d["extras"]["tau2_pl"]["not_computed"]


def test_regress_json_agrees_with_metafor(capsys):
    (d,) = _json_lines(capsys, ["regress", str(HERE / "data" / "bcg_mods.csv"), "--measure", "RR",
                                "--mods", "ablat,year,alloc", "--test", "knha", "--btt", "ablat,year",
                                "--btt", "allocrandom,allocsystematic", "--json"])
    want = REF["bcg_mods/anova_btt/REML/knha/mods=~ablat+year+alloc/btt=2,3"]
    assert d["tests"][0]["statistic"] == pytest.approx(want["statistic"], **ITER)
    assert d["tests"][0]["df"] == [2, 8]
    want = REF["bcg_mods/anova_btt/REML/knha/mods=~ablat+year+alloc/btt=4,5"]
    assert d["tests"][1]["pvalue"] == pytest.approx(want["pvalue"], **ITER)
    qp = REF["bcg_mods/tau2_qp/REML/z/mods=~ablat+year+alloc"]
    assert d["tau2_qp"]["tau2_ci_upper"] == pytest.approx(qp["ci_upper"], rel=1e-5)
    pl = REF["bcg_mods/tau2_pl/REML/z/mods=~ablat+year+alloc"]
    assert d["tau2_pl"]["tau2_ci_lower"] == pytest.approx(pl["ci_lower"], rel=1e-5)
    blup = REF["bcg_mods/blup/REML/knha/mods=~ablat+year+alloc"]
    assert [b["pi_lower"] for b in d["blup"]] == pytest.approx(blup["pi_lower"], **ITER)


def test_regress_errors_are_one_line(tmp_path, capsys):
    rc = main(["regress", str(HERE / "data" / "bcg_mods.csv"), "--measure", "RR", "--mods", "latitude"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "missing moderator column 'latitude'" in err
    rc = main(["regress", str(HERE / "data" / "bcg_mods.csv"), "--measure", "RR", "--mods", "ablat",
               "--btt", "year"])
    err = capsys.readouterr().err
    assert rc == 2 and "no coefficient 'year' in the model" in err
