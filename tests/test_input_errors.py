"""Bad input: one line naming file, row, column and problem; exit status 2; no traceback."""

import subprocess
import sys

import pandas as pd
import pytest

import metarepro
from metarepro import InputError
from metarepro.cli import main

BIN = "study,events_t,total_t,events_c,total_c\n"
CONT = "study,mean_t,sd_t,total_t,mean_c,sd_c,total_c\n"


def write(tmp_path, text, name="data.csv", raw=False):
    p = tmp_path / name
    p.write_bytes(text if raw else text.encode())
    return str(p)


CASES = [
    # (id, csv text, measure, expected fragments)
    ("misspelt-column", "study,event_t,total_t,events_c,total_c\nA,1,10,2,10\n", "RR",
     ["missing column 'events_t'", "event_t"]),
    ("non-numeric", BIN + "A,1,10,2,10\nB,x,10,2,10\n", "RR", ["row 3", "'events_t'", "'x' is not a number"]),
    ("empty-cell", BIN + "A,1,10,2,10\nB,,10,2,10\n", "OR", ["row 3", "'events_t'", "empty cell"]),
    ("events-gt-total", BIN + "A,12,10,2,10\n", "RR", ["row 2", "'events_t'", "12 events > 10 total"]),
    ("fractional-count", BIN + "A,1.5,10,2,10\n", "RR", ["row 2", "'events_t'", "not a whole number"]),
    ("zero-total", BIN + "A,0,0,2,10\n", "RR", ["row 2", "'total_t'", "must be > 0"]),
    ("negative-total", BIN + "A,0,-4,2,10\n", "RD", ["row 2", "'total_t'", "must be > 0"]),
    ("zero-sd", CONT + "A,1,0,10,2,1,10\n", "MD", ["row 2", "'sd_t'", "SD must be > 0"]),
    ("negative-variance", "study,yi,vi\nA,0.1,-0.2\n", "GEN", ["row 2", "'vi'", "variance must be > 0"]),
    ("zero-se", "study,yi,sei\nA,0.1,0\n", "GEN", ["row 2", "'sei'", "standard error must be > 0"]),
    ("r-outside", "study,r,total\nA,1.2,50\n", "ZCOR", ["row 2", "'r'", "outside [-1, 1]"]),
    ("ci-excludes-estimate", "study,estimate,ci_lower,ci_upper\nA,0.5,0.6,0.9\n", "RR",
     ["row 2", "'estimate'", "outside its interval"]),
    ("ci-reversed", "study,estimate,ci_lower,ci_upper\nA,0.7,0.9,0.6\n", "RR",
     ["row 2", "'ci_lower'", "reversed"]),
    ("ratio-not-positive", "study,estimate,ci_lower,ci_upper\nA,0,0,0.6\n", "OR",
     ["row 2", "must be > 0"]),
    ("duplicate-labels", BIN + "A,1,10,2,10\nA,2,10,2,10\n", "RR", ["row 3", "'study'", "duplicate study label 'A'"]),
    ("measure-does-not-fit", CONT + "A,1,1,10,2,1,10\n", "RR", ["measure RR does not fit"]),
    ("header-only", BIN, "RR", ["no rows"]),
    ("empty-file", "", "RR", ["is empty"]),
    ("rom-negative-mean", CONT + "A,-1,1,10,2,1,10\n", "ROM", ["row 2", "'mean_t'", "must be > 0"]),
]


@pytest.mark.parametrize("text,measure,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cli_one_line_error(tmp_path, capsys, text, measure, fragments):
    path = write(tmp_path, text)
    rc = main(["pool", path, "--measure", measure])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert path in err
    for frag in fragments:
        assert frag in err, (frag, err)


def test_missing_file(capsys):
    assert main(["pool", "/nonexistent/x.csv", "--measure", "RR"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and err.count("\n") == 1


def test_unknown_measure_is_one_line():
    proc = subprocess.run([sys.executable, "-m", "metarepro.cli", "pool", "x.csv", "--measure", "HR"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "invalid choice: 'HR'" in proc.stderr


def test_spreadsheet_bom_and_crlf(tmp_path):
    # a table as a spreadsheet saves it: UTF-8 BOM and Windows line endings
    raw = "\ufeffstudy,yi,vi\r\nA,0.1,0.04\r\nB,0.3,0.09\r\n".encode()
    frame = metarepro.read_table(write(tmp_path, raw, raw=True))
    assert list(frame.columns) == ["study", "yi", "vi"]
    res = metarepro.pool(frame, measure="GEN", method="FE")
    # hand calculation: (0.1/0.04 + 0.3/0.09) / (1/0.04 + 1/0.09)
    assert res.estimate == pytest.approx((0.1 / 0.04 + 0.3 / 0.09) / (1 / 0.04 + 1 / 0.09), rel=1e-12)


def test_api_raises_input_error_with_row():
    frame = pd.DataFrame({"study": ["a", "b"], "events_t": [1, 30], "total_t": [10, 20],
                          "events_c": [1, 2], "total_c": [10, 20]})
    with pytest.raises(InputError) as exc:
        metarepro.pool(frame, measure="RR")
    assert exc.value.column == "events_t" and exc.value.row == 1


def test_unknown_options():
    frame = pd.DataFrame({"study": ["a"], "yi": [0.1], "vi": [0.1]})
    for kw, frag in (({"method": "XX"}, "unknown method"), ({"test": "t"}, "unknown test"),
                     ({"level": 120}, "level")):
        with pytest.raises(InputError, match=frag):
            metarepro.pool(frame, measure="GEN", **kw)
    with pytest.raises(InputError, match="needs 2x2 counts"):
        metarepro.pool(frame, measure="OR", method="PETO")
    with pytest.raises(InputError, match="missing column 'grp'"):
        metarepro.pool(frame, measure="GEN", by="grp")


def test_check_command(tmp_path, capsys):
    y = tmp_path / "bad.yaml"
    y.write_text("analysis: bad\ntitle: t\n")
    assert main(["check", str(y)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a required property" in err and str(y) in err
    # given the CSV, the YAML beside it is checked (not the CSV parsed as YAML)
    (tmp_path / "bad.csv").write_text("study,outcome\n")
    assert main(["check", str(tmp_path / "bad.csv")]) == 2
    err = capsys.readouterr().err
    assert "is a required property" in err and str(y) in err and "valid YAML" not in err
