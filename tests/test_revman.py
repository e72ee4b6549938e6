"""RevMan 5 files and Cochrane data-rows exports: import, reproduction against
RevMan's own stored numbers, and bad input.

Every expected number here was computed by RevMan (stored in the review files
under tests/data/revman/, origin in tests/data/revman/README.md) or is a count
read off those files; none comes from our own output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from metarepro.datarows import read_data_rows
from metarepro.errors import InputError
from metarepro.extracted import load_analysis
from metarepro.importing import write_pair
from metarepro.names import METHODS
from metarepro.review import reproduce
from metarepro.revman import read_rm5

DATA = Path(__file__).parent / "data" / "revman"
FLEISS = DATA / "Fleiss1993.rm5"
ANTIBIOTICS = DATA / "CD000023_antibiotics_sore_throat_StatsData.rm5"
BENZO = DATA / "benzodiazepines_gad_StatsData.rm5"
RM5 = (FLEISS, ANTIBIOTICS, BENZO)
ROWS_ROB = DATA / "CD015066_pub2-data-rows.csv"
ROWS_GIV = DATA / "CD007693_pub3-data-rows.csv"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "metarepro.cli", *map(str, args)], capture_output=True,
                          text=True, check=False)


# ----------------------------------------------------------------------------- reading


def test_fleiss_structure_as_in_the_file():
    r = read_rm5(FLEISS)
    assert [o.label for o in r.outcomes] == ["Analysis 1.1", "Analysis 1.2"]
    a = r.outcomes[0]
    # <DICH_OUTCOME ... EFFECT_MEASURE="OR" METHOD="MH" RANDOM="NO" STUDIES="7">
    assert (a.revman_measure, a.method, a.random, len(a.studies)) == ("OR", "MH", False, 7)
    assert a.favours == ("Favours experimental", "Favours control")
    # <DICH_DATA ... EVENTS_1="49" ... STUDY_ID="STD-MRC_x002d_1" TOTAL_1="615" .../> named MRC-1 (1974)
    s = a.studies[0]
    assert (s.study, s.year, s.data) == ("MRC-1", "1974", {"events_t": "49", "total_t": "615",
                                                         "events_c": "67", "total_c": "624"})
    assert s.published["weight"] == "3.176490004091248"


def test_real_files_counts():
    # counts of <*_OUTCOME>, <*_DATA> and totals (outcomes + <*_SUBGROUP>) in each file (grep of the XML)
    expected = {FLEISS: (2, 12, 2), ANTIBIOTICS: (21, 217, 43), BENZO: (26, 80, 26)}
    for f, (k_out, k_rows, k_tot) in expected.items():
        r = read_rm5(f)
        assert (len(r.outcomes), sum(len(o.studies) for o in r.outcomes),
                sum(len(o.totals) for o in r.outcomes)) == (k_out, k_rows, k_tot), f.name
        assert r.problems == []


# ----------------------------------------------------------------------------- against RevMan's numbers


def test_fleiss_mh_total_and_studies_reproduce():
    rep = reproduce(read_rm5(FLEISS))
    t = rep.targets[0]
    # RevMan: EFFECT_SIZE="0.8968655609130709" CI_START="0.8405144008917793" CI_END="0.9569947088336491"
    assert t["verdict"] == "reproduced"
    assert t["reproduced_estimate"] == pytest.approx(0.8968655609130709, rel=1e-10)
    assert t["reproduced_ci_lower"] == pytest.approx(0.8405144008917793, rel=1e-10)
    assert t["reproduced_ci_upper"] == pytest.approx(0.9569947088336491, rel=1e-10)
    st = rep.studies[rep.studies["outcome"] == "Analysis 1.1"]
    assert len(st) == 7 and st["full_precision"].all() and st["weight_agrees"].all()
    # Analysis 1.2 (SMD): RevMan stored no results (EFFECT_SIZE=""), so nothing to check, and it says so
    t2 = rep.targets[1]
    assert t2["verdict"] == "not_reproducible" and "empty EFFECT_SIZE" in t2["reason"]


def _targets():
    out = []
    for f in RM5:
        for t in reproduce(read_rm5(f)).targets:
            out.append(pytest.param(t, id=f"{f.stem}:{t['target']}"))
    return out


@pytest.mark.parametrize("target", _targets())
def test_every_revman_total_reproduces(target):
    """Every total of every real file, at RevMan's printed precision, or the exact reason."""
    if target["published_estimate"] is None:
        # RevMan stored no result, or printed the total as not estimable (no study has data): ours agrees
        assert "empty EFFECT_SIZE" in target["reason"] or target["verdict"] == "reproduced", target["reason"]
        return
    if "MH-DL" in (target["published_method"] or "") and "MH-DL" not in METHODS:
        pytest.skip("RevMan's M-H random effects needs the engine's MH-DL (branch revman-stats)")
    assert target["verdict"] == "reproduced", target["reason"]


@pytest.mark.parametrize("path", RM5, ids=lambda p: p.stem)
def test_every_study_effect_and_weight_reproduces(path):
    st = reproduce(read_rm5(path)).studies
    checked = st[st["effect_agrees"].notna()]
    if "MH-DL" not in METHODS:
        checked = checked[checked["method"] != "MH-DL"]
    bad = checked[~(checked["effect_agrees"].astype(bool) & checked["ci_agrees"].astype(bool)
                    & checked["weight_agrees"].fillna(True).astype(bool))]
    assert bad.empty, bad[["outcome", "study", "ours_estimate", "published_estimate", "ours_weight",
                           "published_weight"]].to_string()


def test_data_rows_measure_method_inferred_and_studies_reproduce():
    r = read_data_rows(ROWS_ROB)
    # the export prints no measure; the printed study effects are mean differences (2 analyses) and
    # risk ratios (Analysis 2.2)
    assert [(o.label, o.revman_measure) for o in r.outcomes] == [
        ("Analysis 1.1", "MD"), ("Analysis 2.1", "MD"), ("Analysis 2.2", "RR")]
    assert all(o.inferred for o in r.outcomes)
    st = reproduce(r).studies
    assert st["effect_agrees"].all() and st["ci_agrees"].all()
    assert st["weight_agrees"].dropna().all()


def test_data_rows_generic_ratio_with_subgroup_weights():
    r = read_data_rows(ROWS_GIV)
    st = reproduce(r).studies
    # 52 study rows, every printed Mean and CI (6 decimals) reproduced from GIV Mean / GIV SE
    assert len(st) == 52 and st["effect_agrees"].all() and st["ci_agrees"].all()
    assert st["weight_agrees"].dropna().all()


def test_data_rows_subgroups_without_totals_have_no_weights_to_check():
    # CD011627.pub3 Analysis 3.1: every subgroup is one comparison, none totalled; RevMan exports
    # "0.000000" as each study's weight. The effects are still checked (Brunner 2012: 9/33 vs 7/31,
    # RR = (9/33)/(7/31) = 1.207792 as printed), the weights are listed as not checked.
    r = read_data_rows(DATA / "CD011627_pub3_analysis3.1-data-rows.csv")
    (out,) = r.outcomes
    assert all("weight" not in s.published for s in out.studies)
    # 9 rows in 8 subgroups (Coyer 2020 and Gaspar 2016 share one); Byers 1995 (0/10 vs 0/10) is not
    # estimable and prints no weight, so its subgroup has no 0 to explain
    assert sum("computed no total" in n for n in out.notes) == 7
    st = reproduce(r).studies
    est = st[st["estimable_published"] == True]
    assert len(est) == 8 and est["weight_agrees"].isna().all() and est["effect_agrees"].all()
    brunner = st[st["study"].str.startswith("Brunner 2012")].iloc[0]
    assert brunner["published_estimate"] == pytest.approx((9 / 33) / (7 / 31), abs=5e-7)


def test_data_rows_all_event_tables_reproduce_revman_weights():
    # CD002042.pub6 Analysis 1.1 (RR, M-H random, 52 studies): DeZern 2016 (59/59 vs 30/30) and
    # Stanworth 2020 (20/20 vs 18/18) have every participant with the event. RevMan prints their
    # RR as 1.000000 and, through tau², every weight to 6 decimals: they reproduce only if the
    # all-event tables enter the MH estimate with RR = 1 (numerator term = weight c n1/N of the
    # corrected table); with the corrected-table RR, tau² is 0.136284 instead of 0.136307.
    r = read_data_rows(DATA / "CD002042_pub6_analysis1.1-data-rows.csv")
    (out,) = r.outcomes
    assert (out.revman_measure, out.method) == ("RR", "MH-DL")
    st = reproduce(r).studies
    assert len(st) == 52 and st["effect_agrees"].all() and st["ci_agrees"].all()
    assert st["weight_agrees"].all(), st.loc[~st["weight_agrees"].astype(bool), ["study", "ours_weight",
                                                                               "published_weight"]]
    dezern = st.set_index("study").loc["DeZern 2016"]
    assert dezern["published_estimate"] == 1.0 and dezern["ours_estimate"] == 1.0


def test_data_rows_split_study_weights_reproduce_revman_web():
    # CD014964.pub2 Analysis 3.3 (MD, IV random, subgroups "Ultrasound preprocedure" and
    # "Ultrasound real-time"): Bhardwaj 2022 is entered in each subgroup (SUBGROUP_ONLY) and, with
    # its two arms combined, for the overall total (OVERALL_ONLY). RevMan prints 1.150162 and
    # 1.480067 for its two subgroup rows: their ratio is the ratio of their inverse variances,
    # computed here by hand from the printed SDs (5.73/9.16 and 2.61/9.16, 50 per arm), and every
    # printed weight of the analysis reproduces to 6 decimals.
    v1 = 5.73**2 / 50 + 9.16**2 / 50
    v2 = 2.61**2 / 50 + 9.16**2 / 50
    assert 1.150162 / 1.480067 == pytest.approx(v2 / v1, abs=1e-5)
    r = read_data_rows(DATA / "CD014964_pub2_analysis3.3-data-rows.csv")
    st = reproduce(r).studies
    assert len(st) == 45 and st["effect_agrees"].all()
    assert st["weight_agrees"].all(), st.loc[~st["weight_agrees"].astype(bool),
                                              ["study", "subgroup", "ours_weight", "published_weight"]]
    b = st[st["study"] == "Bhardwaj 2022"].set_index("subgroup")["ours_weight"]
    assert b["Ultrasound preprocedure"] == pytest.approx(1.150162, abs=5e-7)
    assert b["Ultrasound real-time"] == pytest.approx(1.480067, abs=5e-7)


def test_import_keeps_the_combined_row_of_a_split_study_once(tmp_path):
    # CD014964.pub2 Analysis 3.3: Bhardwaj 2022 has two SUBGROUP_ONLY rows and one OVERALL_ONLY
    # row (45 rows). The pair for the pipeline keeps the combined row only, labelled as such, and
    # lists the two subgroup rows as missing with the reason: nobody is counted twice.
    from metarepro.importing import SPLIT_COMBINED

    src = read_data_rows(DATA / "CD014964_pub2_analysis3.3-data-rows.csv")
    csv_path, yaml_path = write_pair(src, tmp_path)
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    assert len(table) == 43
    b = table[table["study"] == "Bhardwaj 2022"]
    assert len(b) == 1 and b["subgroup"].tolist() == [SPLIT_COMBINED]
    an = load_analysis(csv_path, yaml_path)
    missing = [t for t in an.spec["trials"] if t["status"] == "missing"]
    assert sorted(t["study"] for t in missing) == [
        "Bhardwaj 2022 [Ultrasound preprocedure] (subgroup-only row)",
        "Bhardwaj 2022 [Ultrasound real-time] (subgroup-only row)"]
    assert all("OVERALL_ONLY" in t["reason"] for t in missing)


def test_data_rows_risk_of_bias_imported(tmp_path):
    from metarepro.datarows import risk_of_bias

    rob = risk_of_bias(read_data_rows(ROWS_ROB))
    # the 8 rows print an 'Overall bias (judgement)' for each study and analysis
    assert len(rob) == 8 and {e["judgement"] for e in rob} <= {"low", "some concerns", "high"}
    assert all(e["note"].startswith("Overall bias") for e in rob)


# ----------------------------------------------------------------------------- import


@pytest.mark.parametrize("path", [*RM5, ROWS_ROB, ROWS_GIV], ids=lambda p: p.stem)
def test_import_writes_a_valid_pair(path, tmp_path):
    src = read_rm5(path) if path.suffix == ".rm5" else read_data_rows(path)
    csv_path, yaml_path = write_pair(src, tmp_path)
    an = load_analysis(csv_path, yaml_path)  # schema, provenance rules, trials listed
    assert len(an.outcomes()) == len(src.outcomes)
    shown = sum(1 for o in src.outcomes for t in o.totals if t.subgroup or o.totals_shown)
    assert len(an.spec["targets"]) == shown
    assert len(an.table) == sum(len(o.studies) for o in src.outcomes)


def test_cli_import_and_reproduce(tmp_path):
    r = _cli("import", FLEISS, "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "fleiss1993.yaml").exists() and (tmp_path / "fleiss1993.csv").exists()
    r = _cli("reproduce", FLEISS, "--json")
    assert r.returncode == 0, r.stderr
    import json

    from metarepro.names import REPRODUCTION_COLUMNS

    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(rows) == 2 and all(list(x) == list(REPRODUCTION_COLUMNS) for x in rows)
    r = _cli("reproduce", FLEISS)
    assert "Analysis 1.1 total: RevMan 0.90 [0.84, 0.96], ours 0.90 [0.84, 0.96], k 7/7: reproduced" in r.stdout
    assert r.stdout.splitlines()[-1].startswith("Summary: totals 1/1 reproduced; study effects 7/7")


# ----------------------------------------------------------------------------- bad input


def _variant(tmp_path, old, new, name="bad.rm5"):
    text = FLEISS.read_text(encoding="latin-1")
    assert old in text
    p = tmp_path / name
    p.write_text(text.replace(old, new, 1), encoding="latin-1")
    return p


def test_malformed_xml_is_one_line(tmp_path):
    p = _variant(tmp_path, "</DICH_OUTCOME>", "</DICH_OUTCOM>")
    with pytest.raises(InputError, match=r"bad\.rm5, row \d+: is not well-formed XML"):
        read_rm5(p)
    r = _cli("reproduce", p)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_not_a_revman_file(tmp_path):
    p = tmp_path / "x.rm5"
    p.write_text("<?xml version='1.0'?><html><body/></html>")
    with pytest.raises(InputError, match="not a RevMan 5 review: the XML root is <html>"):
        read_rm5(p)
    q = tmp_path / "rows.csv"
    q.write_text("study,events_t\nA,1\n")
    r = _cli("reproduce", q)
    assert r.returncode == 2 and "not a Cochrane data-rows export: missing column(s) Analysis group" in r.stderr


def test_entity_expansion_is_refused(tmp_path):
    p = tmp_path / "bomb.rm5"
    p.write_text('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]>'
                 "<COCHRANE_REVIEW>&b;</COCHRANE_REVIEW>")
    with pytest.raises(InputError, match="forbidden construct"):
        read_rm5(p)


def test_unsupported_outcome_type_listed_others_kept(tmp_path):
    p = _variant(tmp_path, "<CONT_OUTCOME", "<OTHER_OUTCOME")
    p.write_text(p.read_text(encoding="latin-1").replace("</CONT_OUTCOME>", "</OTHER_OUTCOME>"),
                 encoding="latin-1")
    r = read_rm5(p)
    assert [o.label for o in r.outcomes] == ["Analysis 1.1"]
    assert r.problems == [("bad.rm5, Analysis 1.2 ('Mental Health Treatment versus Control'): not imported: "
                          "data type 'other data' (free text/tables, nothing to pool)")]
    rep = reproduce(r)
    assert rep.targets[0]["verdict"] == "reproduced"
    assert rep.problems == r.problems


def test_impossible_counts_listed_study_dropped_others_kept(tmp_path):
    p = _variant(tmp_path, 'EVENTS_1="49"', 'EVENTS_1="649"')
    r = read_rm5(p)
    assert r.problems == [("bad.rm5, Analysis 1.1 ('Aspirin for Preventing Death after Myocardial Infarction'), "
                          "study 'MRC-1': events_t = 649 exceed total_t = 615; the study is not imported, the "
                          "rest of the analysis is")]
    assert len(r.outcomes[0].studies) == 6
    _, yaml_path = write_pair(r, tmp_path)
    assert "MRC-1 (not imported)" in yaml_path.read_text()
    rep = reproduce(r)
    # RevMan pooled 7 studies; 6 are left, so the total is judged partial, never silently 'reproduced'
    assert rep.targets[0]["k_used"] == 6 and rep.targets[0]["verdict"] == "partial"


def test_imported_outcome_heads_its_figures_with_the_analysis_name(tmp_path):
    """The file prints "Aspirin for Preventing Death after Myocardial Infarction" as the name of
    Analysis 1.1; the imported YAML carries it as the outcome's title, and the forest plot's
    heading uses it instead of the outcome key."""
    from metarepro.analysis import figure_inputs

    csv_path, yaml_path = write_pair(read_rm5(FLEISS), tmp_path)
    an = load_analysis(csv_path, yaml_path)
    first = an.outcomes()[0]
    assert an.spec["outcomes"][0]["title"] == "Analysis 1.1: Aspirin for Preventing Death after Myocardial Infarction"
    fi = figure_inputs(an, first)
    assert fi.title.endswith(": Analysis 1.1: Aspirin for Preventing Death after Myocardial Infarction")
