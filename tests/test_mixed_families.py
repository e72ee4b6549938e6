"""Rows of one analysis in the form their numbers were printed (issue 11, item 6).

Each row carries its own input family: 2x2 counts where counts were printed, an
estimate with its CI where only that was. Expected values are hand calculations
written out below.
"""

import math
import warnings

import numpy as np
import pandas as pd
import pytest

import metarepro
from metarepro.effects import compute_effects
from metarepro.errors import InputError

Z975 = 1.959963984540054  # qnorm(0.975)


def mixed():
    f = pd.DataFrame({
        "study": ["counts A", "counts B", "printed RR", "zero cell"],
        "events_t": ["10", "20", "", "0"],
        "total_t": ["100", "200", "", "187"],
        "events_c": ["20", "25", "", "1"],
        "total_c": ["100", "210", "", "202"],
        "estimate": ["", "", "0.84", ""],
        "ci_lower": ["", "", "0.72", ""],
        "ci_upper": ["", "", "0.98", ""],
    })
    f.attrs["source"] = "mixed.csv"
    f.attrs["first_line"] = 2
    return f


def test_each_row_uses_its_own_family():
    eff = compute_effects(mixed(), "RR")
    # counts A: log(0.1/0.2), 1/10 - 1/100 + 1/20 - 1/100
    assert eff.yi[0] == pytest.approx(math.log(0.5), abs=1e-14)
    assert eff.vi[0] == pytest.approx(0.13, abs=1e-14)
    # counts B: log((20/200)/(25/210)), 1/20 - 1/200 + 1/25 - 1/210
    assert eff.yi[1] == pytest.approx(math.log(0.1 / (25 / 210)), abs=1e-14)
    assert eff.vi[1] == pytest.approx(1 / 20 - 1 / 200 + 1 / 25 - 1 / 210, abs=1e-14)
    # printed RR 0.84 (0.72-0.98): SE from the CI on the log scale
    assert eff.yi[2] == pytest.approx(math.log(0.84), abs=1e-14)
    assert eff.vi[2] == pytest.approx(((math.log(0.98) - math.log(0.72)) / (2 * Z975)) ** 2, rel=1e-12)
    # zero cell 0/187 vs 1/202: 0.5 added to each cell -> 0.5/188 vs 1.5/203
    assert eff.yi[3] == pytest.approx(math.log((0.5 / 188) / (1.5 / 203)), abs=1e-14)
    assert eff.vi[3] == pytest.approx(1 / 0.5 - 1 / 188 + 1 / 1.5 - 1 / 203, abs=1e-12)
    assert [c["study"] for c in eff.corrections] == ["zero cell"]
    assert eff.family is None
    assert eff.row_family[2] == ("estimate", "ci_lower", "ci_upper")
    assert eff.counts is None  # not every row is a 2x2 table


def test_mixed_table_pools_like_its_generic_equivalent():
    """The pooled result equals pooling the hand-computed yi, vi of every row."""
    eff = compute_effects(mixed(), "RR")
    gen = pd.DataFrame({"study": list("abcd"), "yi": eff.yi, "vi": eff.vi})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = metarepro.pool(mixed(), measure="RR", method="DL")
        b = metarepro.pool(gen, measure="GEN", method="DL")
    assert a.estimate == pytest.approx(b.estimate, abs=1e-14)
    assert a.tau2 == pytest.approx(b.tau2, abs=1e-14)
    assert a.corrections[0]["study"] == "zero cell"


def test_mantel_haenszel_needs_counts_on_every_row():
    with pytest.raises(InputError) as err:
        metarepro.pool(mixed(), measure="RR", method="MH")
    msg = str(err.value)
    assert msg.startswith("mixed.csv, row 4: method MH needs 2x2 counts")
    assert "'printed RR' gives estimate,ci_lower,ci_upper" in msg


def test_a_row_filling_counts_only_in_part_is_an_error():
    f = mixed()
    f.loc[2, "events_t"] = "12"  # counts begun but not finished, estimate and CI given too
    with pytest.raises(InputError) as err:
        compute_effects(f, "RR")
    assert str(err.value).startswith("mixed.csv, row 4, column 'total_t': fills only some of")


def test_a_row_with_no_family_names_its_first_empty_cell():
    f = mixed()
    f.loc[2, "ci_upper"] = ""
    with pytest.raises(InputError, match=r"mixed.csv, row 4, column 'ci_upper': empty cell"):
        compute_effects(f, "RR")


def test_checks_name_the_file_line_of_the_row():
    f = mixed()
    f.loc[1, "events_t"] = "300"
    with pytest.raises(InputError, match=r"row 3, column 'events_t': 300 events > 200 total"):
        compute_effects(f, "RR")


def test_counts_only_table_still_gives_counts():
    f = mixed().iloc[[0, 1, 3]].drop(columns=["estimate", "ci_lower", "ci_upper"]).reset_index(drop=True)
    eff = compute_effects(f, "OR")
    assert eff.family == ("events_t", "total_t", "events_c", "total_c")
    np.testing.assert_array_equal(eff.counts["ai"], [10, 20, 0])
