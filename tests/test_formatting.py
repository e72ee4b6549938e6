"""p-values as readers see them (metarepro.formatting): hand-chosen cases at the
edges of the rule "three decimals, '< 0.001' below 0.001"."""

import math

import pytest

from metarepro.formatting import format_p, p_equals


@pytest.mark.parametrize(("p", "cell", "text"), [
    (0.0, "< 0.001", "p < 0.001"),
    (1e-12, "< 0.001", "p < 0.001"),
    (0.00095, "< 0.001", "p < 0.001"),   # rounds to 0.001, but is below it
    (0.001, "0.001", "p = 0.001"),       # the floor itself is printed
    (0.0464, "0.046", "p = 0.046"),
    (0.0495, "0.050", "p = 0.050"),      # trailing zero kept: three decimals always
    (0.5, "0.500", "p = 0.500"),
    (1.0, "1.000", "p = 1.000"),
    (math.nan, "NA", "p = NA"),
    (None, "NA", "p = NA"),
], ids=["zero", "tiny", "just-below-floor", "floor", "0.046", "0.050", "half", "one", "nan", "none"])
def test_p_values(p, cell, text):
    assert format_p(p) == cell
    assert p_equals(p) == text

