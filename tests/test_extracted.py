"""The evidence base follows its rules; bad evidence files fail with file, row and column."""

from pathlib import Path

import pytest
import yaml

from metarepro import InputError, io
from metarepro.extracted import DATA_COLUMNS, check_csv, check_spec, discover, load_analysis

ROOT = Path(__file__).resolve().parents[1]
EXTRACTED = ROOT / "data" / "extracted"
ANALYSES = discover(EXTRACTED)


def test_there_is_evidence():
    assert ANALYSES, "data/extracted holds no analysis"


@pytest.mark.parametrize("name", ANALYSES)
def test_analysis_follows_the_rules(name):
    # schema, provenance columns, numbers in quotes, trials present/missing with reasons,
    # targets with sources: all checked by load_analysis, which raises on the first breach
    an = load_analysis(EXTRACTED / f"{name}.csv", EXTRACTED / f"{name}.yaml")
    for t in an.spec["trials"]:
        assert t["status"] in ("present", "missing")
        if t["status"] == "missing":
            assert t.get("reason")
    for t in an.spec["targets"]:
        assert t["source"] and t["source_location"] and t["quote"]
    for f in an.spec.get("integrity_flags") or []:
        assert f["source"]


GOOD_YAML = {
    "analysis": "mini", "title": "Mini", "claim": "c", "measure": "RR",
    "outcomes": [{"name": "hip"}],
    "targets": [{"outcome": "hip", "label": "t", "estimate": 0.7, "ci_lower": 0.5, "ci_upper": 0.9,
                 "source": "10.1000/x", "source_url": "https://example.org", "source_location": "abstract",
                 "quote": "0.70 (0.50-0.90)"}],
    "trials": [{"study": "A", "status": "present"}, {"study": "B", "status": "missing", "reason": "not stored"}],
}
HEAD = "study,year,outcome,events_t,total_t,events_c,total_c,source,source_url,source_location,quote,derived\n"
GOOD_ROW = 'A,2001,hip,4,1176,11,1,10.1000/a,https://example.org/a,Table 2,"4 of 1,176 vs 11 of 1",\n'


def files(tmp_path, spec=None, rows=GOOD_ROW):
    y = tmp_path / "mini.yaml"
    y.write_text(yaml.safe_dump(spec or GOOD_YAML))
    c = tmp_path / "mini.csv"
    c.write_text(HEAD + rows)
    return c, y


def test_good_files_load(tmp_path):
    c, y = files(tmp_path)
    an = load_analysis(c, y)
    assert an.outcomes() == ["hip"] and len(an.rows("hip")) == 1


@pytest.mark.parametrize("row,column,fragment", [
    ('A,2001,hip,4,1176,11,1,,https://example.org/a,Table 2,"4 of 1176 vs 11 of 1",\n', "source", "empty source"),
    ('A,2001,hip,4,1176,11,1,10.1000/a,https://example.org/a,,"4 of 1176 vs 11 of 1",\n', "source_location",
     "empty source_location"),
    ('A,2001,hip,5,1176,11,1,10.1000/a,https://example.org/a,Table 2,"4 of 1176 vs 11 of 1",\n', "events_t",
     "5 does not appear in the quote"),
    ('A,2001,hip,4,1176,11,1,doi:10.1000/a,https://example.org/a,T2,"4 of 1176 vs 11 of 1",\n', "source",
     "not a DOI"),
    ('A,2001,knee,4,1176,11,1,10.1000/a,https://example.org/a,T2,"4 of 1176 vs 11 of 1",\n', "outcome",
     "not one of the YAML's outcomes"),
    ('A,2001,hip,x,1176,11,1,10.1000/a,https://example.org/a,T2,"4 of 1176 vs 11 of 1",\n', "events_t",
     "'x' is not a number"),
])
def test_bad_rows_name_file_row_column(tmp_path, row, column, fragment):
    c, y = files(tmp_path, rows=row)
    with pytest.raises(InputError) as exc:
        load_analysis(c, y)
    err = exc.value
    assert err.file == str(c) and err.row == 2 and err.column == column
    assert fragment in str(err)


def test_derived_row_needs_no_quote_match(tmp_path):
    row = ('A,2001,hip,27,1176,11,1,10.1000/a,https://example.org/a,Table 2,"hip 21, other 6 of 1176; 11 of 1",'
           '"events_t = 21 + 6"\n')
    c, y = files(tmp_path, rows=row)
    assert load_analysis(c, y).rows("hip")["events_t"].iloc[0] == "27"


def test_missing_trial_needs_reason(tmp_path):
    spec = dict(GOOD_YAML, trials=[{"study": "A", "status": "present"}, {"study": "B", "status": "missing"}])
    _c, y = files(tmp_path, spec=spec)
    with pytest.raises(InputError) as exc:
        check_spec(y)
    assert "reason" in str(exc.value) and exc.value.column == "trials.1"


def test_target_needs_source(tmp_path):
    t = dict(GOOD_YAML["targets"][0])
    del t["source"]
    _c, y = files(tmp_path, spec=dict(GOOD_YAML, targets=[t]))
    with pytest.raises(InputError) as exc:
        check_spec(y)
    assert "'source' is a required property" in str(exc.value)


def test_unlisted_study_rejected(tmp_path):
    row = GOOD_ROW.replace("A,2001", "Z,2001")
    c, y = files(tmp_path, rows=row)
    with pytest.raises(InputError, match="not listed as present"):
        load_analysis(c, y)


def test_missing_provenance_column(tmp_path):
    c = tmp_path / "x.csv"
    c.write_text("study,outcome,events_t,total_t,events_c,total_c\nA,hip,1,2,1,2\n")
    with pytest.raises(InputError, match="missing column 'source'"):
        check_csv(c)


def test_count_printed_in_words_matches_its_numeral(tmp_path):
    # the Sato 2002 abstract prints its hip counts in words: "eight at the hip", "one hip fracture"
    row = ('A,2001,hip,1,60,8,60,10.1000/a,https://example.org/a,abstract,'
           '"60 received MK-4 and the remaining 60 did not. Ten patients sustained fractures (eight at the hip) '
           'in the untreated group, and One hip fracture occurred among treated patients",\n')
    c, y = files(tmp_path, rows=row)
    assert load_analysis(c, y).rows("hip")["events_c"].iloc[0] == "8"


def test_number_word_must_be_a_whole_word(tmp_path):
    # "eighteen" and "weight" do not print 8; "someone" does not print 1
    row = ('A,2001,hip,1,60,8,60,10.1000/a,https://example.org/a,abstract,'
           '"60 vs 60; eighteen fractures by weight; someone fell",\n')
    c, y = files(tmp_path, rows=row)
    with pytest.raises(InputError) as exc:
        load_analysis(c, y)
    assert exc.value.column == "events_t" and "1 does not appear in the quote" in str(exc.value)


FAMILIES = [set(f) for f in (io.BINARY, io.CONTINUOUS, io.CORRELATION, io.GENERIC_CI, io.GENERIC_VI,
                             io.GENERIC_SEI)]


@pytest.mark.parametrize("name", ANALYSES)
def test_each_row_fills_exactly_one_family(name):
    # counts where counts were printed, an estimate with its CI where only that was: never both,
    # never a family half filled (data/extracted/README.md, rule 2)
    an = load_analysis(EXTRACTED / f"{name}.csv", EXTRACTED / f"{name}.yaml")
    cols = [c for c in DATA_COLUMNS if c in an.table.columns]
    for i, row in an.table.iterrows():
        filled = {c for c in cols if row[c].strip()}
        assert filled in FAMILIES, f"{name}.csv line {i + 2}: filled {sorted(filled)}"
