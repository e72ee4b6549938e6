"""Forest and funnel plots (metarepro.figures): built for every input family, one
square per pooled study, the right scale and labels, readable layout, and
byte-identical files. Expected numbers are worked out here by hand from the
counts and means written in this file."""

import dataclasses
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.collections import PathCollection
from matplotlib.patches import Polygon
from matplotlib.text import Text

import metarepro
from metarepro.analysis import PublishedPooled
from metarepro.figures import forest_plot, funnel_plot, save_figure

Z95 = 1.959963984540054

# D has no events in either arm: dropped with drop00=True
BIN = pd.DataFrame({"study": ["A", "B", "C", "D"], "events_t": [4, 6, 3, 0], "total_t": [123, 306, 231, 50],
                    "events_c": [11, 29, 11, 0], "total_c": [139, 303, 220, 50], "grp": ["x", "x", "y", "y"]})
CONT = pd.DataFrame({"study": ["a", "b", "c"], "mean_t": [10.0, 12.0, 11.5], "sd_t": [2.0, 3.0, 2.5],
                     "total_t": [20, 30, 25], "mean_c": [9.0, 12.5, 10.0], "sd_c": [2.0, 2.5, 3.0],
                     "total_c": [22, 28, 25]})
GEN = pd.DataFrame({"study": ["g1", "g2", "g3", "g4"], "yi": [0.1, 0.3, -0.2, 0.5],
                    "vi": [0.04, 0.09, 0.05, 0.2], "grp": ["x", "x", "y", "y"]})


def squares(fig):
    (sq,) = [c for c in fig.axes[0].collections if c.get_gid() == "study-squares"]
    return sq


def drawn_squares(fig):
    return int(np.sum(squares(fig).get_sizes() > 0))


def texts(fig):
    ax = fig.axes[0]
    return [t.get_text() for t in ax.texts] + [t.get_text() for t in ax.get_yticklabels()]


def diamonds(fig):
    return [p for p in fig.axes[0].patches if isinstance(p, Polygon)]


def test_forest_binary_counts_labels_excluded_and_flags():
    res = metarepro.pool(BIN, measure="RR", method="REML", drop00=True)
    fe = metarepro.pool(BIN, measure="RR", method="FE", drop00=True)
    fig = forest_plot(res, BIN, common=fe, flagged={"B"})
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert drawn_squares(fig) == 3  # D is excluded: listed, no square
    all_text = texts(fig)
    # study A by hand: RR = (4/123)/(11/139); var(log RR) = 1/4 - 1/123 + 1/11 - 1/139
    rr = (4 / 123) / (11 / 139)
    se = math.sqrt(1 / 4 - 1 / 123 + 1 / 11 - 1 / 139)
    lo, hi = rr * math.exp(-Z95 * se), rr * math.exp(Z95 * se)
    assert any(f"{rr:.2f} [{lo:.2f}, {hi:.2f}]" in t for t in all_text), all_text
    assert f"{rr:.2f}" == "0.41" and f"{lo:.2f}" == "0.13" and f"{hi:.2f}" == "1.26"
    # the 2x2 counts are printed on the study's row
    (row_a,) = [t for t in all_text if t.startswith("A ")]
    assert row_a.split() == ["A", "4", "123", "11", "139"]
    # the excluded study's row, the flag and its footnote
    assert any("excluded: double-zero study" in t for t in all_text)
    assert any(t.startswith("B \u2020") for t in all_text)
    notes = "\n".join(all_text)
    assert "\u2020 integrity concern" in notes
    assert "Heterogeneity: \u03c4\u00b2 = " in notes and "Test for overall effect: z = " in notes
    # random-effects diamond, common-effect diamond
    assert len(diamonds(fig)) == 2


def test_square_area_is_proportional_to_weight():
    res = metarepro.pool(BIN.iloc[:3], measure="OR", method="FE")
    fig = forest_plot(res, BIN.iloc[:3])
    # inverse-variance weights by hand from the 2x2 tables
    v = np.array([1 / a + 1 / (n - a) + 1 / c + 1 / (m - c)
                  for a, n, c, m in BIN.iloc[:3][["events_t", "total_t", "events_c", "total_c"]].to_numpy()])
    w = (1 / v) / np.sum(1 / v)
    sizes = squares(fig).get_sizes()
    np.testing.assert_allclose(sizes / sizes.max(), w / w.max(), rtol=1e-12)
    assert any(f"{100 * w[0]:.1f}%" in t for t in texts(fig))


def test_forest_continuous_is_linear_with_arm_columns():
    res = metarepro.pool(CONT, measure="MD", method="DL", test="knha")
    fig = forest_plot(res, CONT, common=metarepro.pool(CONT, measure="MD", method="FE"))
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear"
    assert drawn_squares(fig) == 3
    # study a by hand: MD = 10 - 9, var = 2^2/20 + 2^2/22
    md, se = 10.0 - 9.0, math.sqrt(4 / 20 + 4 / 22)
    assert any(f"{md:.2f} [{md - Z95 * se:.2f}, {md + Z95 * se:.2f}]" in t for t in texts(fig))
    (row_a,) = [t for t in texts(fig) if t.startswith("a ")]
    assert row_a.split() == ["a", "10", "2", "20", "9", "2", "22"]
    assert any("Test for overall effect: t = " in t and "(df = 2)" in t for t in texts(fig))
    # no effect is 0 on a linear axis
    lo, hi = ax.get_xlim()
    assert lo < 0 < hi


def test_forest_generic_and_correlation():
    fig = forest_plot(metarepro.pool(GEN, measure="GEN", method="REML"), GEN)
    assert drawn_squares(fig) == 4
    assert any(f"{0.3:.2f} [{0.3 - Z95 * 0.3:.2f}, {0.3 + Z95 * 0.3:.2f}]" in t for t in texts(fig))
    cor = pd.DataFrame({"study": ["r1", "r2", "r3"], "r": [0.5, 0.2, 0.35], "total": [40, 103, 67]})
    fig = forest_plot(metarepro.pool(cor, measure="ZCOR", method="REML"), cor)
    # Fisher's z is back-transformed: r1 prints 0.50, its CI tanh(atanh(0.5) -+ z/sqrt(40 - 3))
    z = math.atanh(0.5)
    lo, hi = math.tanh(z - Z95 / math.sqrt(37)), math.tanh(z + Z95 / math.sqrt(37))
    assert any(f"0.50 [{lo:.2f}, {hi:.2f}]" in t for t in texts(fig))


def test_forest_subgroups():
    res = metarepro.pool(GEN, measure="GEN", method="DL")
    sg = metarepro.pool(GEN, measure="GEN", method="DL", by="grp")
    fig = forest_plot(res, GEN, subgroups=sg, flagged={"g3"})
    assert drawn_squares(fig) == 4
    labels = texts(fig)
    assert "grp: x" in labels and "grp: y" in labels
    assert len(diamonds(fig)) == 3  # two subtotals and the overall estimate
    # subtotal of group x by hand: DL with k = 2
    y, v = np.array([0.1, 0.3]), np.array([0.04, 0.09])
    w = 1 / v
    fe = np.sum(w * y) / np.sum(w)
    q = np.sum(w * (y - fe) ** 2)
    tau2 = max(0.0, (q - 1) / (np.sum(w) - np.sum(w ** 2) / np.sum(w)))
    ws = 1 / (v + tau2)
    est = np.sum(ws * y) / np.sum(ws)
    assert any(t.strip().endswith(f"{est:.2f} [{est - Z95 / math.sqrt(ws.sum()):.2f}, "
                                  f"{est + Z95 / math.sqrt(ws.sum()):.2f}]") for t in labels)
    assert any(t.startswith("Test for subgroup differences") for t in "\n".join(labels).splitlines())
    # rows stay under their heading: g3 and g4 below "grp: y", which is below g1 and g2
    ys = {t.get_text().strip(): t.get_position()[1] for t in fig.axes[0].get_yticklabels()}
    assert ys["grp: x"] > ys["g1"] > ys["g2"] > ys["grp: y"] > ys["g3 \u2020"] > ys["g4"]


def test_forest_is_sized_to_rows_and_readable():
    small = forest_plot(metarepro.pool(GEN, measure="GEN", method="REML"), GEN)
    many = pd.DataFrame({"study": [f"s{i}" for i in range(30)], "yi": np.linspace(-0.5, 0.5, 30),
                         "vi": np.full(30, 0.05)})
    big = forest_plot(metarepro.pool(many, measure="GEN", method="REML"), many)
    assert big.get_size_inches()[1] > small.get_size_inches()[1] + 20 * 0.2
    for fig in (small, big):
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        ax = fig.axes[0]
        shown = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
        assert min(t.get_fontsize() for t in shown) >= 8
        box = ax.get_window_extent(r)
        left = [t.get_window_extent(r) for t in ax.get_yticklabels() if t.get_text().strip()]
        right = [t.get_window_extent(r) for t in ax.texts if t.get_position()[0] == 1.0]
        assert max(b.x1 for b in left) < box.x0  # study table left of the plot
        assert min(b.x0 for b in right) > box.x1  # weight and effect columns right of it
        fb = fig.bbox
        for t in shown:  # nothing cut off at the figure's edges
            b = t.get_window_extent(r)
            assert b.x0 >= fb.x0 - 1 and b.x1 <= fb.x1 + 1 and b.y0 >= fb.y0 - 1 and b.y1 <= fb.y1 + 1, t
        # rows do not overlap: consecutive table rows are at least one font height apart
        ys = sorted(b.y0 for b in left)
        assert min(np.diff(ys)) >= max(b.height for b in left) * 0.95


def test_funnel():
    res = metarepro.pool(BIN, measure="OR", method="DL", drop00=True)
    fig = funnel_plot(res, egger={"statistic": 1.234, "pvalue": 0.0456}, title="t")
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    assert lo > hi == 0  # SE 0 at the top
    (pts,) = [c for c in ax.collections if isinstance(c, PathCollection) and c.get_gid() == "funnel-points"]
    assert len(pts.get_offsets()) == 3
    # points are (log OR, SE) by hand for study A
    a = (math.log(4 * 128 / (119 * 11)), math.sqrt(1 / 4 + 1 / 119 + 1 / 11 + 1 / 128))
    np.testing.assert_allclose(pts.get_offsets()[0], a, rtol=1e-12)
    assert "Egger's test: z = 1.23, p = 0.046" in ax.get_title(loc="left")
    assert funnel_plot(res, contours=False).axes[0].get_legend() is not None


def test_no_global_state_touched():
    import matplotlib
    import matplotlib.pyplot as plt

    res = metarepro.pool(BIN, measure="RR", method="REML", drop00=True)
    before = (list(warnings.filters), np.geterr(), list(matplotlib.rcParams["font.monospace"]), plt.get_fignums())
    forest_plot(res, BIN)
    funnel_plot(res)
    after = (list(warnings.filters), np.geterr(), list(matplotlib.rcParams["font.monospace"]), plt.get_fignums())
    assert before == after


@pytest.mark.parametrize("ext", ["png", "svg", "pdf"])
def test_save_is_deterministic(tmp_path, ext):
    res = metarepro.pool(BIN, measure="OR", method="PETO")
    sg = metarepro.pool(BIN, measure="OR", method="PETO", by="grp")
    written = []
    for run in ("a", "b"):
        files = save_figure(forest_plot(res, BIN, subgroups=sg, flagged={"A"}, title="T"),
                            tmp_path / run / "forest", formats=(ext,))
        files += save_figure(funnel_plot(res, egger={"statistic": 1.0, "pvalue": 0.3}),
                             tmp_path / run / "funnel", formats=(ext,))
        written.append(files)
    for a, b in zip(*written):
        assert a.name == b.name and a.suffix == f".{ext}"
        assert a.read_bytes() == b.read_bytes(), a.name


def test_save_all_formats(tmp_path):
    fig = forest_plot(metarepro.pool(GEN, measure="GEN", method="FE"), GEN)
    files = save_figure(fig, tmp_path / "x" / "plot")
    assert [f.name for f in files] == ["plot.png", "plot.svg", "plot.pdf"]
    assert files[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in files[1].read_bytes()[:500]
    assert files[2].read_bytes()[:5] == b"%PDF-"
    with pytest.raises(ValueError):
        save_figure(fig, tmp_path / "y", formats=("gif",))


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
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


# ----------------------------------------------------------------------------- for reviewers (issue 13)

ROOT = Path(__file__).resolve().parents[1]
EXTRACTED = ROOT / "data" / "extracted"


def gid_patches(fig, gid):
    return [p for p in fig.axes[0].patches if p.get_gid() == gid]


def row_of(fig, text):
    """y of the table row whose label starts with ``text``."""
    (y,) = [t.get_position()[1] for t in fig.axes[0].get_yticklabels() if t.get_text().startswith(text)]
    return y


def test_published_diamond_comes_from_the_yaml_target_under_its_repooling():
    """Vitamin K2, hip: Cockayne 2006 printed a Peto OR 0.23 (0.12 to 0.47) for 7 trials; one of them
    (Sato 2002, 1/60 vs 8/60) is in the CSV. The published diamond is drawn where the YAML target
    puts it (read here from the YAML, not from our output), directly under the Peto re-pooling."""
    from metarepro.analysis import figure_inputs
    from metarepro.extracted import load_analysis

    spec = yaml.safe_load((EXTRACTED / "vitk2_fractures.yaml").read_text())
    (target,) = [t for t in spec["targets"] if t["outcome"] == "hip_fracture" and t.get("trial_set") != "other"]
    an = load_analysis(EXTRACTED / "vitk2_fractures.csv", EXTRACTED / "vitk2_fractures.yaml")
    fi = figure_inputs(an, "hip_fracture")
    fig = forest_plot(fi.result, fi.frame, common=fi.common, flagged=fi.flagged, published=fi.published,
                      favours=fi.favours)
    (pub,) = gid_patches(fig, "published-diamond")
    (rep,) = gid_patches(fig, "repooled-diamond")
    xs = sorted({round(x, 12) for x, _ in pub.get_xy()})
    np.testing.assert_allclose(xs, sorted([target["ci_lower"], target["estimate"], target["ci_upper"]]))
    assert pub.get_facecolor()[:3] == (1.0, 1.0, 1.0)  # hollow
    y_pub, y_rep = np.mean(pub.get_xy()[:4, 1]), np.mean(rep.get_xy()[:4, 1])
    assert y_rep - y_pub == pytest.approx(1.0)  # the next row down
    assert y_pub == row_of(fig, f"Published: {target['label']}")
    # Peto OR of Sato 2002 by hand: O - E = 1 - 60 * 9 / 120 = -3.5,
    # V = 60 * 60 * 9 * 111 / (120^2 * 119) = 2.09874; log OR = (O - E) / V, SE = 1 / sqrt(V)
    v = 60 * 60 * 9 * 111 / (120 ** 2 * 119)
    lor, se = -3.5 / v, 1 / math.sqrt(v)
    np.testing.assert_allclose(sorted({x for x, _ in rep.get_xy()}),
                               np.exp([lor - Z95 * se, lor, lor + Z95 * se]), rtol=1e-9)
    shown = "\n".join(texts(fig))
    assert f"{math.exp(lor):.2f} [{math.exp(lor - Z95 * se):.2f}, {math.exp(lor + Z95 * se):.2f}]" == \
        "0.19 [0.05, 0.73]"
    assert "0.19 [0.05, 0.73]" in shown and "0.23 [0.12, 0.47]" in shown
    assert "Re-pooled as published (PETO), k = 1 of 7" in shown


def test_published_numbers_print_as_printed():
    res = metarepro.pool(GEN, measure="GEN", method="REML")
    pub = PublishedPooled(label="Paper 2020", method="random effects", estimate=0.2, ci_lower=-0.1,
                          ci_upper=0.5, decimals=1, repooled=metarepro.pool(GEN, measure="GEN", method="DL"),
                          repooled_label="Re-pooled as published (DL), k = 4")
    fig = forest_plot(res, GEN, published=[pub])
    (line,) = [t for t in texts(fig) if t.strip().startswith("0.2 [")]
    assert " ".join(line.split()).replace("[ ", "[") == "0.2 [-0.1, 0.5]"  # one decimal, as printed
    assert row_of(fig, "Re-pooled as published (DL)") - row_of(fig, "Published: Paper 2020 (random effects)") == 1


def test_one_study_has_no_model_and_no_prediction_interval():
    one = GEN.iloc[:1]
    res = metarepro.pool(one, measure="GEN", method="REML", test="knha")
    fig = forest_plot(res, one, common=metarepro.pool(one, measure="GEN", method="FE"))
    shown = "\n".join(texts(fig))
    assert "Random effects" not in shown and "Common effect" not in shown and "REML" not in shown
    assert "Hartung-Knapp" not in shown and "Prediction interval" not in shown
    assert not [ln for ln in fig.axes[0].lines if ln.get_gid() == "prediction-interval"]
    assert diamonds(fig) == []
    assert "One study: nothing is pooled" in shown
    assert drawn_squares(fig) == 1


@pytest.mark.parametrize(("k", "drawn"), [(2, False), (3, True)])
def test_prediction_interval_only_from_three_trials(k, drawn):
    res = metarepro.pool(GEN.iloc[:k], measure="GEN", method="REML")
    fig = forest_plot(res, GEN.iloc[:k])
    pi = [ln for ln in fig.axes[0].lines if ln.get_gid() == "prediction-interval"]
    shown = "\n".join(texts(fig))
    assert bool(pi) is drawn
    assert ("No prediction interval: k = 2; it needs at least 3 trials" in shown) is not drawn


def test_model_label_is_read_from_the_result():
    res = metarepro.pool(GEN, measure="GEN", method="REML", test="knha")
    assert "Random effects (REML, Hartung-Knapp)" in texts(forest_plot(res, GEN))
    assert "Random effects (REML)" in texts(forest_plot(dataclasses.replace(res, test="z"), GEN))
    adhoc = metarepro.pool(GEN, measure="GEN", method="PM", test="adhoc")
    assert "Random effects (PM, Hartung-Knapp, ad hoc correction)" in texts(forest_plot(adhoc, GEN))
    assert "Random effects (REML, newtest)" in texts(forest_plot(dataclasses.replace(res, test="newtest"), GEN))


def test_favours_labels_under_the_axis_either_side_of_no_effect():
    res = metarepro.pool(BIN.iloc[:3], measure="RR", method="REML")
    fig = forest_plot(res, BIN.iloc[:3], favours=("Favours Ca + D", "Favours control"))
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    ax = fig.axes[0]
    left, right = sorted((t for t in ax.texts if t.get_gid() == "favours"), key=lambda t: t.get_position()[0])
    assert "Favours Ca + D" in left.get_text() and "Favours control" in right.get_text()
    null_px = ax.transData.transform((1.0, 0))[0]
    assert left.get_window_extent(r).x1 < null_px < right.get_window_extent(r).x0
    ticks = max(t.get_window_extent(r).y0 for t in ax.get_xticklabels() if t.get_text())
    label = ax.xaxis.label.get_window_extent(r)
    assert label.y1 <= left.get_window_extent(r).y0 < left.get_window_extent(r).y1 <= ticks


def test_long_titles_wrap_inside_the_figure():
    title = "A very long analysis title " * 6 + "that ends here"
    res = metarepro.pool(BIN, measure="OR", method="DL", drop00=True)
    for fig in (forest_plot(res, BIN, title=title), funnel_plot(res, title=title)):
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        (t,) = [t for t in fig.findobj(Text) if "that ends here" in t.get_text()]
        assert "\n" in t.get_text()
        assert t.get_window_extent(r).x1 <= fig.bbox.x1
        assert " ".join(t.get_text().split()) == " ".join(title.split())


def test_a_published_result_on_another_scale_is_not_drawn_and_the_figure_says_why(tmp_path):
    """Cockayne's hip OR given as an RR: it cannot sit on the outcome's OR axis."""
    import shutil

    from metarepro.analysis import figure_inputs
    from metarepro.extracted import load_analysis

    spec = yaml.safe_load((EXTRACTED / "vitk2_fractures.yaml").read_text(encoding="utf-8"))
    for t in spec["targets"]:
        if t["outcome"] == "hip_fracture":
            t["measure"] = "RR"
    (tmp_path / "vitk2_fractures.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    shutil.copy2(EXTRACTED / "vitk2_fractures.csv", tmp_path / "vitk2_fractures.csv")
    an = load_analysis(tmp_path / "vitk2_fractures.csv", tmp_path / "vitk2_fractures.yaml")
    fi = figure_inputs(an, "hip_fracture")
    assert fi.published == ()
    assert fi.not_drawn == ("Cockayne 2006, 7 Japanese trials: published as RR, not OR",)
    fig = forest_plot(fi.result, fi.frame, published=fi.published, notes=[f"Not drawn: {w}" for w in fi.not_drawn])
    assert not gid_patches(fig, "published-diamond")
    assert any("Not drawn: Cockayne 2006, 7 Japanese trials: published as RR, not OR" in t for t in texts(fig))
