"""Verdicts on hand-made cases (the arithmetic is written in each test)."""

import math

from metarepro.reproduce import decimals_of, judge, published_method

T = {"estimate": 0.85, "ci_lower": 0.73, "ci_upper": 0.98}


def test_reproduced_at_printed_precision():
    ours = {"estimate": 0.8512, "ci_lower": 0.7349, "ci_upper": 0.9751}  # rounds to 0.85, 0.73, 0.98
    v = judge(T, ours, ratio=True, k_used=8, k_published=8, missing=[])
    assert v.verdict == "reproduced"


def test_close_within_tolerance():
    # log(0.86) - log(0.85) = 0.0117; CI width log(0.98/0.73) = 0.2945 -> 4% of the width
    ours = {"estimate": 0.86, "ci_lower": 0.74, "ci_upper": 0.99}
    v = judge(T, ours, ratio=True, k_used=8, k_published=8, missing=[])
    assert v.verdict == "close"
    assert math.log(0.99 / 0.98) / math.log(0.98 / 0.73) < 0.10


def test_discrepant():
    ours = {"estimate": 0.95, "ci_lower": 0.80, "ci_upper": 1.12}
    assert judge(T, ours, ratio=True, k_used=8, k_published=8, missing=[]).verdict == "discrepant"


def test_partial_and_not_reproducible():
    ours = {"estimate": 0.85, "ci_lower": 0.73, "ci_upper": 0.98}
    v = judge(T, ours, ratio=True, k_used=6, k_published=8, missing=["X (not stored)"])
    assert v.verdict == "partial" and "6 of 8" in v.reason and "X (not stored)" in v.reason
    v = judge(T, {}, ratio=True, k_used=0, k_published=8, missing=["all (figure only)"])
    assert v.verdict == "not_reproducible"


def test_precision_and_method():
    assert decimals_of({"estimate": 0.7, "ci_lower": 0.56, "ci_upper": 0.87}) == 2
    assert decimals_of({"estimate": 2.38, "ci_lower": 0.93, "ci_upper": 3.83, "decimals": 3}) == 3
    assert published_method({"method": "Peto"})[0] == "PETO"
    assert published_method({"model": "fixed effect"})[0] == "FE"
    assert published_method({"model": "random effects"})[0] == "DL"


def test_single_row_restating_the_target_is_called_circular(tmp_path):
    # One trial given as its own published difference -3.9 (-6.5 to -1.3), read in the same paper as the
    # target: re-pooling can only give the printed numbers back, and the reason must say so. A second
    # trial from another source makes the same target an ordinary check.
    from metarepro.analysis import reproduction_rows
    from metarepro.extracted import load_analysis

    (tmp_path / "a.yaml").write_text("""analysis: a
title: A
claim: a claim
measure: MD
outcomes: [{name: bmd}]
targets:
  - {outcome: bmd, label: T, estimate: -3.9, ci_lower: -6.5, ci_upper: -1.3, scale: identity, k: 1,
     source: 10.1000/same, source_location: abstract, quote: "-3.9 (-6.5 to -1.3)"}
trials: [{study: S1, status: present}]
""")
    head = "study,outcome,estimate,ci_lower,ci_upper,source,source_url,source_location,quote,derived\n"
    (tmp_path / "a.csv").write_text(head + 'S1,bmd,-3.9,-6.5,-1.3,10.1000/same,https://example.org,abstract,'
                                           '"-3.9 (-6.5 to -1.3)",\n')
    [row] = reproduction_rows(load_analysis(tmp_path / "a.csv", tmp_path / "a.yaml"))
    assert row["verdict"] == "reproduced" and "circular" in row["reason"]
    (tmp_path / "a.csv").write_text(head + 'S1,bmd,-3.9,-6.5,-1.3,10.1000/other,https://example.org,abstract,'
                                           '"-3.9 (-6.5 to -1.3)",\n')
    [row] = reproduction_rows(load_analysis(tmp_path / "a.csv", tmp_path / "a.yaml"))
    assert "circular" not in row["reason"]


def test_targets_only_path_writes_what_the_full_path_writes(tmp_path):
    # An analysis without per-trial data is judged by a light path (no numpy/pandas/scipy); it must give
    # the same rows, and the same bytes on disk, as the full path through load_analysis.
    from pathlib import Path

    import pandas as pd

    from metarepro.analysis import REPRODUCTION_COLUMNS, reproduction_rows
    from metarepro.extracted import load_analysis
    from metarepro.reproduce import targets_only_rows
    from metarepro.scripting import write_csv, write_records
    from metarepro.spec import check_spec

    checked = 0
    for yaml_path in sorted(Path(__file__).resolve().parents[1].glob("data/extracted/*.yaml")):
        if yaml_path.with_suffix(".csv").exists():
            continue
        checked += 1
        light = targets_only_rows(check_spec(yaml_path))
        full = reproduction_rows(load_analysis(tmp_path / "absent.csv", yaml_path))
        assert light == full, yaml_path.name
        write_records(tmp_path / "a.csv", REPRODUCTION_COLUMNS, light)
        write_csv(pd.DataFrame(full, columns=list(REPRODUCTION_COLUMNS)), tmp_path / "b.csv")
        assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes(), yaml_path.name
    assert checked >= 2  # the bundled targets-only analyses (soy, vitamin D BMD, calcium BMD)


def test_reason_summary_keeps_the_comparison_and_drops_the_long_parts():
    from metarepro.reproduce import CONTRAST_REASON, reason_summary

    partial = ("5 of 8 trials readable; re-pooled result differs (estimate 0.69 vs 0.70); missing: Larsen 2004 "
               "(no hip count; the full text is not stored); Salovaara 2010 (no hip result); method: published "
               "model 'random effects', method 'unknown': assumed DerSimonian-Laird")
    assert reason_summary("partial", partial) == \
        "5 of 8 trials readable; re-pooled result differs (estimate 0.69 vs 0.70)."
    close = ("within 10% of the printed CI width but not at 2 decimals (estimate 0.86 vs 0.85; largest difference "
             "4% of the CI width); method: as published (DL)")  # the '; ' inside parentheses is not a break
    assert reason_summary("close", close) == ("Within 10% of the printed CI width but not at 2 decimals "
                                              "(estimate 0.86 vs 0.85; largest difference 4% of the CI width).")
    circular = ("all printed numbers match at 1 decimals (estimate -3.9 vs -3.9); method: as published (DL); "
                "circular: the only row is the published result itself (same source, estimate and CI), so ...")
    assert reason_summary("reproduced", circular) == ("All printed numbers match at 1 decimals (estimate -3.9 vs "
                                                      "-3.9); circular: the only row is the published result "
                                                      "itself.")
    assert reason_summary("not_reproducible", "no per-trial data readable: A (figure only); B (not stored)") == \
        "No per-trial data readable."
    assert reason_summary("not_reproducible", CONTRAST_REASON).endswith("; shown for contrast.")
    assert reason_summary("reproduced", "") == ""
