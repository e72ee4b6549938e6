"""Batch fitting (metarepro.batch) gives what each analysis's own calls give, byte for byte.

The numbers compared are our own on both sides on purpose: this checks that fitting
many analyses with one vectorised pool(by=) call per method changes nothing; the
numbers themselves are checked against metafor in test_reference_*.
"""

import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from metarepro import analysis as A
from metarepro.batch import Fit, drive, drive_many, fit_alone, fit_many
from metarepro.errors import InputError
from metarepro.extracted import load_analysis
from metarepro.plan import discover, outcomes_with_data
from metarepro.scripting import dumps, write_csv

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from replicate import replicate


@pytest.fixture(scope="module")
def analyses(tmp_path_factory):
    d = tmp_path_factory.mktemp("rep")
    replicate(14, d, ROOT / "data" / "extracted")  # every bundled analysis twice
    return [load_analysis(d / f"{n}.csv", d / f"{n}.yaml") for n in discover(d) if (d / f"{n}.csv").exists()]


def text(frame, tmp_path):
    write_csv(frame, tmp_path / "t.csv")
    return (tmp_path / "t.csv").read_text()


def test_pooled_tables(analyses, tmp_path):
    many = drive_many(A.pooled_table_fits(a) for a in analyses)
    for a, m in zip(analyses, many):
        assert text(m, tmp_path) == text(A.pooled_table(a), tmp_path), a.name


def test_heterogeneity_reports(analyses):
    pairs = [(a, o) for a in analyses for o in outcomes_with_data(a.csv_path, a.yaml_path)]
    many = drive_many(A.heterogeneity_fits(a, o) for a, o in pairs)
    for (a, o), (rep, md) in zip(pairs, many):
        alone = A.heterogeneity(a, o)
        assert dumps(rep) == dumps(alone[0]) and md == alone[1], (a.name, o)


def test_forensics_and_verdicts(analyses, tmp_path):
    forensics = drive_many(A.forensics_table_fits(a) for a in analyses)
    verdicts = drive_many(A.reproduction_rows_fits(a, forensics=f) for a, f in zip(analyses, forensics))
    for a, f, v in zip(analyses, forensics, verdicts):
        alone = A.forensics_table(a)
        assert text(f, tmp_path) == text(alone, tmp_path), a.name
        assert text(pd.DataFrame(v), tmp_path) == text(pd.DataFrame(A.reproduction_rows(a, forensics=alone)),
                                                        tmp_path), a.name


def test_bad_table_fails_alone():
    """Two good tables and a bad one with the same columns and options: the bad one gets its
    own error (its row and column), the good ones their results."""
    good = pd.DataFrame({"study": ["a", "b", "c"], "events_t": ["4", "6", "3"], "total_t": ["123", "306", "231"],
                         "events_c": ["11", "29", "11"], "total_c": ["139", "303", "220"]})
    bad = good.copy()
    bad.loc[1, "events_t"] = "400"
    reqs = [Fit.of(good, measure="RR", method="DL"), Fit.of(bad, measure="RR", method="DL"),
            Fit.of(good.copy(), measure="RR", method="DL")]
    out = fit_many(reqs)
    assert isinstance(out[1], InputError) and str(out[1]) == str(fit_alone(reqs[1]))
    assert "events_t" in str(out[1])
    assert out[0].estimate == out[2].estimate == drive(iter_one(good)).estimate


def iter_one(frame):
    (res,) = yield [Fit.of(frame, measure="RR", method="DL")]
    return res


def test_failing_conversation_does_not_stop_the_others(analyses):
    bad = analyses[0].table.copy()
    col = next(c for c in ("events_t", "mean_t", "estimate") if c in bad.columns and bad[c].str.strip().ne("").any())
    row = int(bad.index[bad[col].str.strip().ne("")][0])
    bad.loc[row, col] = "oops"
    broken = type(analyses[0])(name="broken", spec=analyses[0].spec, table=bad, csv_path="broken.csv",
                               yaml_path="broken.yaml")
    out = drive_many(A.pooled_table_fits(a) for a in [broken, *analyses[1:3]])
    assert isinstance(out[0], InputError) and "'oops' is not a number" in str(out[0])
    assert all(isinstance(x, pd.DataFrame) for x in out[1:])


def test_replicate_names_match_files(tmp_path):
    names = replicate(9, tmp_path, ROOT / "data" / "extracted")
    assert len(names) == 9 and sorted(p.stem for p in tmp_path.glob("*.yaml")) == sorted(names)
    shutil.rmtree(tmp_path)


def test_batches_are_stable():
    from metarepro.plan import batches

    names = [f"a{i:03d}" for i in range(40)]
    b = batches(names, 10)
    assert len(b) == 4 and sorted(n for v in b.values() for n in v) == names  # 40 at 10 each: 4 batches (a power of two)
    grown = batches(names + ["new"], 11)  # 41 at 11 each: still 4 batches, only the new one's batch changes
    changed = [k for k in grown if grown[k] != b.get(k)]
    assert len(changed) == 1 and "new" in grown[changed[0]]
    assert batches(names, 1000) == {"b0": names}


def test_checks_are_cached(tmp_path):
    from metarepro.plan import checked

    (tmp_path / "a.yaml").write_text("x")
    (tmp_path / "b.yaml").write_text("y")
    seen = []

    def check(yaml, csv):
        seen.append(yaml)
        return "bad" if yaml.endswith("b.yaml") else None

    pairs = {n: (str(tmp_path / f"{n}.yaml"), None) for n in ("a", "b")}
    cache = tmp_path / "cache.json"
    assert checked(pairs, cache, "engine", check) == {"a": None, "b": "bad"}
    assert checked(pairs, cache, "engine", check) == {"a": None, "b": "bad"} and len(seen) == 2
    (tmp_path / "b.yaml").write_text("changed")
    checked(pairs, cache, "engine", check)
    assert seen[2:] == [pairs["b"][0]]  # only the edited file is checked again
    checked(pairs, cache, "engine edited", check)
    assert len(seen) == 5  # an edited engine checks everything again
