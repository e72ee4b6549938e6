"""Figures: built for every input family, deterministic bytes, one square per pooled study."""

import math

import pandas as pd
import pytest

import metarepro
from metarepro.figures import forest_plot, funnel_plot, save_figure

BIN = pd.DataFrame({"study": ["A", "B", "C", "D"], "events_t": [4, 6, 3, 0], "total_t": [123, 306, 231, 50],
                    "events_c": [11, 29, 11, 0], "total_c": [139, 303, 220, 50], "grp": ["x", "x", "y", "y"]})


def squares(fig):
    from matplotlib.collections import PathCollection

    ax = fig.axes[0]
    return sum(len(c.get_offsets()) for c in ax.collections
               if isinstance(c, PathCollection) and c.get_sizes().size and c.get_sizes().max() > 1)


def test_forest_binary_with_excluded_and_flags():
    res = metarepro.pool(BIN, measure="RR", method="REML", drop00=True)
    fig = forest_plot(res, BIN, common=metarepro.pool(BIN, measure="RR", method="FE", drop00=True),
                      flagged={"B"})
    assert squares(fig) == 3  # D (double zero) is excluded: no square
    texts = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert any("B \u2020" in t for t in texts)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    # study A's label prints exp(yi) by hand: log(4/123) - log(11/139)
    rr = math.exp(math.log(4 / 123) - math.log(11 / 139))
    labels = " ".join(t.get_text() for t in ax.texts) + " ".join(texts)
    assert f"{rr:.2f}" in labels


def test_forest_continuous_generic_and_subgroups():
    cont = pd.DataFrame({"study": list("abc"), "mean_t": [1.0, 2.0, 1.5], "sd_t": [1, 1.2, 0.8],
                         "total_t": [20, 30, 25], "mean_c": [0.5, 1.0, 1.6], "sd_c": [1, 1.1, 0.9],
                         "total_c": [20, 30, 25]})
    fig = forest_plot(metarepro.pool(cont, measure="SMD", method="DL"), cont)
    assert fig.axes[0].get_xscale() == "linear"
    gen = pd.DataFrame({"study": list("abcd"), "estimate": [0.8, 0.9, 0.7, 1.1], "ci_lower": [0.6, 0.7, 0.5, 0.8],
                        "ci_upper": [1.0, 1.2, 0.98, 1.5], "grp": ["x", "x", "y", "y"]})
    sg = metarepro.pool(gen, measure="RR", method="DL", by="grp")
    fig = forest_plot(metarepro.pool(gen, measure="RR", method="DL"), gen, subgroups=sg)
    assert squares(fig) == 4


@pytest.mark.parametrize("ext", ["png", "svg", "pdf"])
def test_save_is_deterministic(tmp_path, ext):
    res = metarepro.pool(BIN, measure="OR", method="PETO")
    a = save_figure(forest_plot(res, BIN), tmp_path / "a" / "f", formats=(ext,))[0]
    b = save_figure(forest_plot(res, BIN), tmp_path / "b" / "f", formats=(ext,))[0]
    assert a.read_bytes() == b.read_bytes()
    c = save_figure(funnel_plot(res, egger={"statistic": 1.0, "pvalue": 0.3}), tmp_path / "c" / "f",
                    formats=(ext,))[0]
    assert c.stat().st_size > 0


def test_forestplot_import_leaves_process_state_alone():
    import subprocess
    import sys

    code = ("import warnings, numpy as np, pandas as pd, metarepro\n"
            "from metarepro.figures import forest_plot\n"
            "f = pd.DataFrame({'study': ['a', 'b'], 'yi': [0.1, 0.3], 'vi': [0.04, 0.09]})\n"
            "n = len(warnings.filters); e = np.geterr()\n"
            "forest_plot(metarepro.pool(f, measure='GEN', method='FE'))\n"
            "assert np.geterr() == e, np.geterr()\n"
            "assert not any(a == 'ignore' and c is Warning and m is None for a, m, c, *_ in warnings.filters)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
