"""Forest and funnel plots of pooled results, and deterministic saving.

Who draws what in :func:`forest_plot`
-------------------------------------
The ``forestplot`` package (0.4) lays out the table: one row per line on a
categorical y axis, the study column with the per-arm data columns as
left-flushed monospace tick labels, the weight and effect columns to the right
of the plot, the bold header row, the subgroup headings (its ``groupvar``), the
study confidence-interval lines, the line of no effect, the x ticks and label.
It has no notion of study weights or pooled estimates, so matplotlib draws on
the same axes what it lacks: squares whose area is proportional to the weight,
the pooled and subtotal diamonds, the prediction interval, arrows where an
interval runs off the axis, the arm headings over the data columns, the table
rules, the heterogeneity and overall-effect lines, and the footnotes.

Three things of ``forestplot`` are worked around here:

* it measures text through ``pyplot.gcf()`` and draws table lines with
  ``pyplot.plot``, i.e. on whatever figure pyplot holds. While it runs, its
  module-level ``plt`` is replaced by a stand-in bound to our own
  :class:`~matplotlib.figure.Figure`, so pyplot's global state is never touched
  (no figure is opened, users' backends are left alone);
* importing it sets ``warnings.filterwarnings("ignore")``, ``np.seterr(all=
  "ignore")`` and an rcParam for the whole process; the import here is wrapped
  so that all three are restored;
* it places the right-hand columns at ``1.05 * xlim[1]`` in data units and pads
  the tick labels by a width measured in pixels but applied in points; the
  columns are re-anchored to the axes edge and the padding set in points, so
  the layout holds for any x range and any output resolution.

The figure is then sized from the measured text: its height follows the number
of rows, its width the table columns around a plot region of fixed width.
"""

from __future__ import annotations

import math
import textwrap
import threading
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Polygon
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator
from matplotlib.transforms import ScaledTranslation, blended_transform_factory

from . import _dist as stats
from . import io, natural
from .formatting import p_equals
from .names import T_TESTS, TEST_LABELS

__all__ = ["baujat_plot", "bubble_plot", "forest_plot", "funnel_plot", "influence_plot", "leave_one_out_plot",
           "not_applicable_figure", "save_figure"]

FONT = 9  # points; nothing on the figures is smaller than FONT - 1
MONO = "DejaVu Sans Mono"  # ships with matplotlib: the same glyphs on every machine
ROW = 0.21  # inches per table row
PLOT_WIDTH = 3.2  # inches of the forest region
LABEL_WRAP = 72  # characters: longer labels of published results wrap (unless the table is wider anyway)
DPI = 150

SQUARE = "#1f4e79"
DIAMOND = "#a11d21"
SUBTOTAL = "#555555"
PUBLISHED = "#1b7837"  # the published result and its re-pooling with the published method
LINE = "0.25"

_COMMON = {"FE": "inverse variance", "MH": "Mantel-Haenszel", "PETO": "Peto"}
_NAMES = {"RR": "Risk ratio", "OR": "Odds ratio", "RD": "Risk difference", "MD": "Mean difference",
          "SMD": "Standardised mean difference", "ROM": "Ratio of means", "ZCOR": "Correlation",
          **dict.fromkeys(("PR", "PLN", "PLO", "PAS", "PFT"), "Proportion"),
          **dict.fromkeys(("IR", "IRLN", "IRS", "IRFT"), "Incidence rate"),
          "IRR": "Incidence rate ratio", "IRD": "Incidence rate difference", "MN": "Mean", "MNLN": "Mean",
          "MC": "Mean change", "SMCC": "Standardised mean change (change-score SD)",
          "SMCR": "Standardised mean change (pre-test SD)", "ROMC": "Ratio of means (post/pre)",
          "COR": "Correlation", "UCOR": "Correlation (unbiased)", "PCOR": "Partial correlation",
          "ZPCOR": "Partial correlation", "SPCOR": "Semi-partial correlation", "GEN": "Effect"}
#: The model scale's name where it is not the natural scale's and not a log ratio.
_MODEL_SCALE = {"ZCOR": "Fisher's z", "ZPCOR": "Fisher's z (partial correlation)", "PLN": "Log proportion",
                "PLO": "Logit proportion", "PAS": "Arcsine proportion", "PFT": "Freeman-Tukey proportion",
                "IRLN": "Log incidence rate", "IRS": "Square-root incidence rate",
                "IRFT": "Freeman-Tukey incidence rate", "MNLN": "Log mean"}
_SHORT = {"RR": "RR", "OR": "OR", "RD": "RD", "MD": "MD", "SMD": "SMD", "ROM": "ROM", "ZCOR": "r",
          **dict.fromkeys(("PR", "PLN", "PLO", "PAS", "PFT"), "Proportion"),
          **dict.fromkeys(("IR", "IRLN", "IRS", "IRFT"), "Rate"), "IRR": "IRR", "IRD": "IRD",
          "MN": "Mean", "MNLN": "Mean", "MC": "MC", "SMCC": "SMCC", "SMCR": "SMCR", "ROMC": "ROM",
          "COR": "r", "UCOR": "r", "PCOR": "r", "ZPCOR": "r", "SPCOR": "sr", "GEN": "Effect"}
_RATIO_STEPS = ((1, 2, 5), (1, 3), (1,))
_LOCK = threading.Lock()


# ----------------------------------------------------------------------------- forestplot


def _forestplot():
    """Import forestplot without letting it change global state."""
    import matplotlib

    with warnings.catch_warnings(), np.errstate(), matplotlib.rc_context():
        import forestplot
        import forestplot.graph_utils
        import forestplot.plot
    return forestplot


class _Pyplot:
    """What forestplot asks of ``matplotlib.pyplot``, bound to one figure."""

    MaxNLocator = MaxNLocator

    def __init__(self, ax):
        self._ax = ax

    def gcf(self):
        return self._ax.figure

    def gca(self):
        return self._ax

    def plot(self, *args, **kwargs):
        return self._ax.plot(*args, **kwargs)

    def __getattr__(self, name):
        raise AttributeError(f"forestplot asked for pyplot.{name}, which metarepro does not provide")


def _run_forestplot(ax, frame, **kwargs):
    fp = _forestplot()
    mods = (fp.graph_utils, fp.plot)
    with _LOCK:
        saved = [m.plt for m in mods]
        try:
            for m in mods:
                m.plt = _Pyplot(ax)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                warnings.filterwarnings("ignore", "set_ticklabels", UserWarning)
                return fp.forestplot(frame, ax=ax, return_df=True, **kwargs)
        finally:
            for m, p in zip(mods, saved):
                m.plt = p


# ----------------------------------------------------------------------------- numbers and text


def _to_natural(measure, size=None):
    """Back-transformation for display (:mod:`metarepro.natural`; PFT/IRFT at the
    studies' harmonic mean size, as metafor's forest plots with ``transf.ipft.hm``)."""
    fn = natural.back(measure)
    if fn is None or (natural.needs_size(measure) and size is None):
        return lambda x: np.asarray(x, float) * 1.0
    return lambda x: fn(np.asarray(x, float), size)


def _pooled_natural(res) -> dict:
    """Estimate, CI and PI of a fit on the natural scale."""
    nat = res.natural()
    if nat:
        get = {n: nat.get(f"{n}_natural") for n in ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper")}
        return {n: (np.nan if v is None else float(v)) for n, v in get.items()}
    return {n: float(getattr(res, n)) for n in ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper")}


def _num(x, d=2):
    return f"{x:.{d}f}" if np.isfinite(x) else "NA"


def _tau2(t):
    return f"{t:.4f}" if (t == 0 or t >= 1e-4) else f"{t:.2e}"


def _is_common(res):
    return res.method in _COMMON


def _model_label(res):
    """'Random effects (REML, Hartung-Knapp)': the method and the test are read from the result."""
    if _is_common(res):
        return f"Common effect ({_COMMON[res.method]})"
    test = "" if res.test == "z" else TEST_LABELS.get(res.test, res.test)  # z: the default, not named
    return f"Random effects ({res.method}{', ' + test if test else ''})"


def _het_line(res):
    tau2 = "" if _is_common(res) else f"\u03c4\u00b2 = {_tau2(res.tau2)}; "
    return (f"Heterogeneity: {tau2}Q = {res.q:.2f} (df = {res.q_df}, {p_equals(res.q_pvalue)}); "
            f"I\u00b2 = {res.i2:.0f}%")


def _test_line(res, what="Test for overall effect"):
    if res.test in T_TESTS and res.df:
        stat = f"t = {_num(res.statistic)} (df = {res.df:g})"
    else:
        stat = f"z = {_num(res.statistic)}"
    return f"{what}: {stat}, {p_equals(res.pvalue)}"


def _short_reason(reason):
    """'double-zero study (no events in either arm); dropped (drop00)' -> 'double-zero study'."""
    return reason.split(";")[0].split(" (")[0].strip()


def _arm_table(frame):
    """Per-arm columns: (super headings, column headings, {study: [cells]})."""
    if frame is None or "study" not in frame.columns:
        return [], [], {}
    cols = set(frame.columns)
    keys = frame["study"].astype(str).str.strip()

    def fmt(v, whole=False):
        try:
            v = float(v)
        except (TypeError, ValueError):
            return ""
        if not np.isfinite(v):
            return ""
        return f"{v:.0f}" if whole or v.is_integer() else f"{v:.4g}"

    if set(io.BINARY) <= cols:
        heads = ["Events", "Total", "Events", "Total"]
        names = ("events_t", "total_t", "events_c", "total_c")
        supers = [("Treatment", 0, 2), ("Control", 2, 4)]
        whole = True
    elif set(io.CONTINUOUS) <= cols:
        heads = ["Mean", "SD", "Total", "Mean", "SD", "Total"]
        names = ("mean_t", "sd_t", "total_t", "mean_c", "sd_c", "total_c")
        supers = [("Treatment", 0, 3), ("Control", 3, 6)]
        whole = False
    elif set(io.CORRELATION) <= cols:
        heads, names, supers, whole = ["N"], ("total",), [], True
    else:
        return [], [], {}
    cells = {}
    for i, key in enumerate(keys):
        cells[key] = [fmt(frame[n].iloc[i], whole and n.startswith(("events", "total"))) for n in names]
    return supers, heads, cells


def _xrange(values, null, ratio):
    """Axis limits and ticks covering the values (ratio: natural values, log axis)."""
    v = np.asarray([x for x in values if np.isfinite(x) and (x > 0 or not ratio)], float)
    if v.size == 0:  # nothing estimable: an axis around no effect
        v = np.array([null / 2, null * 2] if ratio else [null - 1, null + 1])
    if ratio:
        lo, hi = max(min(v.min(), null), 0.01), min(max(v.max(), null), 100.0)
        for steps in _RATIO_STEPS:
            cand = sorted(s * 10.0 ** e for e in range(-3, 4) for s in steps)
            t_lo = max([c for c in cand if c <= lo * 1.0001], default=cand[0])
            t_hi = min([c for c in cand if c >= hi / 1.0001], default=cand[-1])
            ticks = [c for c in cand if t_lo <= c <= t_hi]
            if len(ticks) <= 8:
                break
        if len(ticks) < 3:  # a narrow range: finer ticks
            cand = [0.5, 0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0]
            t_lo = max([c for c in cand if c <= lo], default=lo)
            t_hi = min([c for c in cand if c >= hi], default=hi)
            ticks = [c for c in cand if t_lo <= c <= t_hi]
        return (ticks[0], ticks[-1]), ticks
    lo, hi = min(v.min(), null), max(v.max(), null)
    if hi - lo <= 0:
        lo, hi = lo - 1, hi + 1
    ticks = list(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi))
    ticks = [t for t in ticks if t >= lo - (ticks[1] - ticks[0]) + 1e-12 and t <= hi + (ticks[1] - ticks[0]) - 1e-12]
    return (ticks[0], ticks[-1]), ticks


def _core_range(rows, ratio):
    """The values the axis must show, with study intervals trimmed so one
    imprecise study cannot squeeze all others (trimmed ones get arrows)."""
    pooled = [v for r in rows if r["kind"] != "study" for v in (r["lo"], r["hi"], r["est"])]
    ests = [r["est"] for r in rows if r["kind"] == "study"]
    core = np.asarray([v for v in pooled + ests if np.isfinite(v) and (v > 0 or not ratio)], float)
    ends = np.asarray([v for r in rows if r["kind"] == "study" for v in (r["lo"], r["hi"])
                       if np.isfinite(v) and (v > 0 or not ratio)], float)
    if core.size == 0:
        return ends
    if ratio:
        c, e = np.log(core), np.log(ends) if ends.size else np.array([])
    else:
        c, e = core, ends
    width = max(c.max() - c.min(), 1e-9)
    e = np.clip(e, c.min() - 1.5 * width - (1.0 if ratio else 0), c.max() + 1.5 * width + (1.0 if ratio else 0))
    allv = np.concatenate([c, e])
    return np.exp(allv) if ratio else allv


# ----------------------------------------------------------------------------- rows


def _row(kind, label, est=np.nan, lo=np.nan, hi=np.nan, weight=np.nan, wtext="", etext="", cells=None,
         group=None, res=None):
    return {"kind": kind, "label": label, "est": est, "lo": lo, "hi": hi, "weight": weight, "wtext": wtext,
            "etext": etext, "cells": cells, "group": group, "res": res}


def _effect_text(est, lo, hi, widths):
    a, b, c = (_num(x) for x in (est, lo, hi))
    return f"{a:>{widths[0]}} [{b:>{widths[1]}}, {c:>{widths[2]}}]"


def _study_rows(result, flagged, cells, ncells):
    f = _to_natural(result.measure, result.natural_size)
    z = stats.norm.isf((1 - result.level / 100) / 2)
    reasons = {str(e.get("study")): e.get("reason", "") for e in result.excluded}
    rows = []
    for r in result.studies.itertuples(index=False):
        key = str(r.study)
        label = key + (" \u2020" if key in flagged else "")
        arm = cells.get(key, [""] * ncells)
        if np.isfinite(r.yi) and np.isfinite(r.vi):
            se = math.sqrt(r.vi)
            rows.append(_row("study", label, float(f(r.yi)), float(f(r.yi - z * se)), float(f(r.yi + z * se)),
                             weight=float(r.weight), cells=arm, group=key))
        else:
            why = _short_reason(reasons.get(key, "not estimable"))
            rows.append(_row("excluded", label, cells=arm, etext=f"excluded: {why}", group=key))
    return rows


#: Fewest trials for which a prediction interval is drawn: with fewer, the between-trial variance
#: rests on one or no degree of freedom, and the interval of Higgins, Thompson and Spiegelhalter
#: (t on k - 2 df) is not defined (Riley, Higgins and Deeks 2011, BMJ 342:d549; IntHout et al. 2016,
#: BMJ Open 6:e010247).
PI_MIN_K = 3


def pi_omitted(res) -> str | None:
    """Why a fit's prediction interval is not drawn (None: it is drawn).

    Not for a common-effect model (it has no between-trial variance), not below
    :data:`PI_MIN_K` trials, and not where the engine could not compute it.
    """
    if _is_common(res):
        return "a common-effect model has no between-trial variance"
    if res.k < PI_MIN_K:
        return (f"k = {res.k}; it needs at least {PI_MIN_K} trials to mean anything "
                "(Riley et al. 2011)")
    n = _pooled_natural(res)
    if not (np.isfinite(n["pi_lower"]) and np.isfinite(n["pi_upper"])):
        return "not estimable"
    return None


def _pooled_rows(res, label=None, kind="pooled", wtext="100.0%"):
    n = _pooled_natural(res)
    rows = [_row(kind, label or _model_label(res), n["estimate"], n["ci_lower"], n["ci_upper"], wtext=wtext,
                 res=res)]
    if kind == "pooled" and pi_omitted(res) is None:
        rows.append(_row("pi", "Prediction interval", n["estimate"], n["pi_lower"], n["pi_upper"],
                         etext=f"[{_num(n['pi_lower'])}, {_num(n['pi_upper'])}]"))
    return rows


def _printed(x, d):
    return "" if x is None or not np.isfinite(float(x)) else f"{float(x):.{d}f}"


def _published_rows(published):
    """For each published result: its trials re-pooled with the published method (filled
    diamond), then the result as printed (hollow diamond), one under the other."""
    rows = []
    for p in published:
        if p.repooled is not None:
            n = _pooled_natural(p.repooled)
            rows.append(_row("repooled", p.repooled_label, n["estimate"], n["ci_lower"], n["ci_upper"],
                             res=p.repooled))
        nan = float("nan")
        lo = nan if p.ci_lower is None else float(p.ci_lower)
        hi = nan if p.ci_upper is None else float(p.ci_upper)
        r = _row("published", f"Published: {p.label}" + (f" ({p.method})" if p.method else ""),
                 float(p.estimate), lo, hi)
        r["parts"] = (f"Published: {p.label}", p.method or "")
        r["printed"] = tuple(_printed(x, p.decimals) for x in (p.estimate, p.ci_lower, p.ci_upper))
        rows.append(r)
    return rows


def _subgroup_rows(rows, subgroups):
    """Study rows under subgroup headings, each group closed by its subtotal."""
    by = subgroups.by
    st = subgroups.studies
    group_of = dict(zip(st["study"].astype(str), st[by]))
    out = []
    for g in subgroups.groups():
        name = f"{by}: {g}"
        members = [dict(r, group=name) for r in rows if str(group_of.get(r["group"], object())) == str(g)]
        sub = subgroups[g]
        w = sum(r["weight"] for r in members if r["kind"] == "study" and np.isfinite(r["weight"]))
        # The group's name in every subtotal label: labels stay unique (the table needs that) and read alike.
        label = f"Subtotal, {g} ({sub.method}), I\u00b2 = {sub.i2:.0f}%"
        out += members
        out += [dict(r, group=name) for r in _pooled_rows(sub, label=label, kind="subtotal", wtext=f"{w:.1f}%")]
    return out


def _subgroup_test(subgroups):
    s = subgroups.summary
    est, se = s["estimate"].to_numpy(float), s["se"].to_numpy(float)
    ok = np.isfinite(est) & np.isfinite(se) & (se > 0)
    if ok.sum() < 2:
        return None
    w = 1 / se[ok] ** 2
    mean = np.sum(w * est[ok]) / np.sum(w)
    q = float(np.sum(w * (est[ok] - mean) ** 2))
    df = int(ok.sum() - 1)
    return f"Test for subgroup differences: Q = {q:.2f} (df = {df}, {p_equals(stats.chi2.sf(q, df))})"


def _notes(result, common, subgroups, flagged_shown, published=()):
    if result.k == 1:
        notes = [("One study: nothing is pooled, so no model, no heterogeneity and no prediction interval "
                  "(the study is shown as it is)")]
    else:
        notes = [_het_line(result), _test_line(result)]
        why = pi_omitted(result)
        if why and not _is_common(result):
            notes.append(f"No prediction interval: {why}")
    if common is not None and result.k != 1:
        notes.append(_test_line(common, f"Test for overall effect, {_model_label(common).lower()}"))
    if subgroups is not None:
        t = _subgroup_test(subgroups)
        if t:
            notes.append(t)
    if flagged_shown:
        notes.append("\u2020 integrity concern (e.g. retracted or questioned trial)")
    by_reason = {}
    for e in result.excluded:
        by_reason.setdefault(e.get("reason", ""), []).append(str(e.get("study")))
    for reason, who in by_reason.items():
        notes.append(f"Excluded ({reason}): {_some(who)}")
    by_action = {}
    for c in result.corrections:
        by_action.setdefault(c.get("action", ""), []).append(str(c.get("study")))
    for action, who in by_action.items():
        notes.append(f"Continuity correction ({action}): {_some(who)}")
    notes += [p.note for p in published if getattr(p, "note", None)]
    return notes


def _wrap(text, width_px: float, renderer) -> None:
    """Break a Text's words over lines so that it is at most ``width_px`` wide (a word longer
    than the width stays whole). Measured with the renderer, so it holds for any font."""
    words = text.get_text().split()
    if not words or text.get_window_extent(renderer).width <= width_px:
        return
    lines, cur = [], words[0]
    for w in words[1:]:
        text.set_text(f"{cur} {w}")
        if text.get_window_extent(renderer).width > width_px:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}"
    text.set_text("\n".join(lines + [cur]))


def _some(names, n=6):
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


# ----------------------------------------------------------------------------- forest plot


def forest_plot(result, frame: pd.DataFrame | None = None, *, common=None, flagged=(), subgroups=None,
                title: str | None = None, effect_label: str | None = None, published=(),
                favours: tuple[str, str] | None = None, notes=()) -> Figure:
    """Forest plot of a pooled result.

    Parameters
    ----------
    result : PoolResult
        The model drawn as the main diamond (usually random effects) and whose
        weights the squares and the weight column show.
    frame : DataFrame, optional
        The study table that was pooled; its per-arm data (events and totals,
        or mean, SD and n, or n of a correlation) are printed beside each study,
        matched by the ``study`` label.
    common : PoolResult, optional
        A common-effect fit of the same studies, drawn as a second (open) diamond.
    flagged : iterable of str
        Study labels with an integrity concern (retracted, questioned), marked
        with a dagger and a footnote.
    subgroups : PoolTable, optional
        ``pool(..., by=column)`` of the same studies: the studies are grouped
        under headings, each group closed by its subtotal diamond, and the
        test for subgroup differences (Q between the subgroup estimates) is
        printed. Weights stay those of ``result``.
    title, effect_label : str, optional
        Title over the table (wrapped to the figure's width); x-axis label
        (default: the measure's name).
    published : sequence, optional
        Published pooled results of the same trials, each with ``label`` (the
        paper), ``method`` (its model as printed), ``estimate``, ``ci_lower``,
        ``ci_upper`` (natural scale, as printed), ``decimals`` (printed
        precision), ``repooled`` (a PoolResult of the trials with the
        published method, or None), ``repooled_label`` and ``note`` (a
        footnote or None), e.g.
        :class:`metarepro.analysis.PublishedPooled`. Each is drawn under the
        model rows: the re-pooled result as a filled diamond and, directly
        under it, the published one as a hollow diamond (same colour), so
        that agreement is seen.
    favours : (str, str), optional
        Labels printed under the axis, left and right of the line of no
        effect (e.g. ``("Favours Ca + D", "Favours control")``).
    notes : sequence of str, optional
        Further footnotes (e.g. which published results are not drawn, and why).

    Returns
    -------
    matplotlib.figure.Figure
        Not attached to pyplot; save it with :func:`save_figure`.

    Notes
    -----
    Study intervals are ``yi ± z sqrt(vi)`` at ``result.level``; square areas
    are proportional to the weights; excluded studies are listed with the
    reason and no square. Ratio measures are drawn on a log axis and printed
    back-transformed (``exp``), correlations as ``tanh`` of Fisher's z.

    With one study nothing is pooled: no model row, no prediction interval
    (the study is shown, as RevMan and metafor do). The prediction interval
    is drawn only from :data:`PI_MIN_K` trials on (:func:`pi_omitted` says
    why not, in a footnote).
    """
    flagged = {str(s) for s in flagged}
    measure = result.measure
    ratio = measure in io.RATIO_MEASURES
    null = 1.0 if ratio else 0.0
    supers, heads, cells = _arm_table(frame)
    rows = _study_rows(result, flagged, cells, len(heads))
    flagged_shown = any(str(s) in flagged for s in result.studies["study"])

    pooled = [] if result.k == 1 else _pooled_rows(result)
    if common is not None and result.k != 1:
        pooled += _pooled_rows(common, kind="common", wtext="")
    pooled += _published_rows(published)
    if subgroups is not None:
        rows = _subgroup_rows(rows, subgroups)
        pooled = [dict(r, group="") for r in pooled]
    else:
        pooled = [_row("spacer", "")] + pooled
    rows = rows + pooled

    # ---- text columns, right-justified numbers in monospace
    for r in rows:
        if r["kind"] in ("study", "pooled", "subtotal") and np.isfinite(r["weight"]):
            r["wtext"] = f"{r['weight']:.1f}%"
    drawn = [r for r in rows if r["kind"] in ("study", "pooled", "subtotal", "common", "repooled")]
    shown = drawn + [r for r in rows if r["kind"] == "published"]
    widths = [max([len(r["printed"][j] if "printed" in r else _num(r[k])) for r in shown] or [4])
              for j, k in enumerate(("est", "lo", "hi"))]
    for r in drawn:
        r["etext"] = _effect_text(r["est"], r["lo"], r["hi"], widths)
        if r["kind"] != "study" and not np.isfinite(r["est"]):
            r["etext"], r["wtext"] = "not estimable", ""
    for r in rows:  # the published numbers as printed (their own decimals)
        if r["kind"] == "published":
            a, b, c = r["printed"]
            r["etext"] = (f"{a:>{widths[0]}} [{b:>{widths[1]}}, {c:>{widths[2]}}]" if b and c
                          else f"{a:>{widths[0]}} (CI not printed)")
    for r in rows:  # the prediction interval's brackets under the confidence intervals'
        if r["kind"] == "pi":
            r["etext"] = " " * (widths[0] + 1) + _effect_text(np.nan, r["lo"], r["hi"], widths)[widths[0] + 1:]
    eff_head = f"{_SHORT[measure]} [{result.level:g}% CI]"
    ww = max([len(r["wtext"]) for r in rows] + [len("Weight")])
    for r in rows:
        r["wtext"] = r["wtext"].rjust(ww)
    cw = [max([len(h)] + [len(r["cells"][j]) for r in rows if r["cells"]]) for j, h in enumerate(heads)]
    for r in rows:
        c = r["cells"] or [""] * len(heads)
        for j in range(len(heads)):
            r[f"a{j}"] = c[j].rjust(cw[j])

    # ---- x axis
    core = _core_range(rows, ratio)
    (x0, x1), ticks = _xrange(list(core), null, ratio)

    # Rows without per-arm data (model, re-pooled and published rows) may run on into the empty arm
    # columns: forestplot gets a short stand-in and the full label is set after it laid out the table.
    base = max([len(r["label"]) for r in rows if r["kind"] in ("study", "excluded")] + [len("Study")])
    room = base + sum(w + 2 for w in cw)
    # a published label longer than that (or than LABEL_WRAP characters) continues on rows below it
    limit = max(room, LABEL_WRAP)
    wrapped = []
    for r in rows:
        if r["kind"] == "published" and len(r["label"]) > limit:  # the method moves whole to the next line
            head, method = r["parts"]
            first, *more = textwrap.wrap(head, limit - 2) + ([method] if method else [])
            wrapped.append(dict(r, label=first))
            wrapped += [dict(_row("continued", "  " + line, group=r["group"]),
                             **{f"a{j}": " " * cw[j] for j in range(len(heads))}) for line in more]
        else:
            wrapped.append(r)
    rows = wrapped
    seen = set()
    for r in rows:  # forestplot keys rows by their label: repeated ones get trailing spaces (not seen)
        while r["kind"] != "spacer" and r["label"] in seen:
            r["label"] += " "
        seen.add(r["label"])
    overflow = {}
    for i, r in enumerate(rows):
        if r["kind"] not in ("study", "excluded", "spacer") and cw and room >= len(r["label"]) > room - sum(
                w + 2 for w in cw):
            overflow[i] = r["label"]
    table = pd.DataFrame({
        "label": [f"~{i}~" if i in overflow else r["label"] for i, r in enumerate(rows)],
        "est": [r["est"] if r["kind"] == "study" else np.nan for r in rows],
        "lo": [r["lo"] if r["kind"] == "study" else np.nan for r in rows],
        "hi": [r["hi"] if r["kind"] == "study" else np.nan for r in rows],
        "w": [r["wtext"] for r in rows],
        "eff": [r["etext"] for r in rows],
        **{f"a{j}": [r[f"a{j}"] for r in rows] for j in range(len(heads))},
    })
    if not np.isfinite(table["est"]).any():  # forestplot needs one finite interval (no study estimable)
        table.loc[0, ["est", "lo", "hi"]] = null
    if subgroups is not None:
        table["grp"] = [r["group"] for r in rows]
    # forestplot keys the categorical y axis by the whole left-hand text of a row
    table["row"] = np.arange(len(rows))

    fig = Figure(figsize=(8, 2 + ROW * len(rows)), dpi=DPI)  # text measured as it is rendered
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.5, 0.2, 0.3, 0.7))
    xlabel = effect_label or (_NAMES[measure] + (" (log scale)" if ratio else ""))
    out, ax = _run_forestplot(
        ax, table, estimate="est", ll="lo", hl="hi", varlabel="label", logscale=ratio,
        annote=[f"a{j}" for j in range(len(heads))] or None,
        annoteheaders=[h.rjust(cw[j]) for j, h in enumerate(heads)] or None,
        rightannote=["w", "eff"], right_annoteheaders=["Weight".rjust(ww), eff_head],
        groupvar="grp" if subgroups is not None else None, variable_header="Study",
        ci_report=False, form_ci_report=False, capitalize=None, flush=True, table=False,
        xlim=(x0, x1), xticks=ticks, xticklabels=[f"{t:g}" for t in ticks], xtick_size=FONT,
        xlabel=xlabel, xlabel_size=FONT, xlabel_fontweight="normal",
        fontsize=FONT, fontfamily=MONO, grouplab_size=FONT, grouplab_fontweight="bold",
        markersize=0, markeralpha=0, lw=1.0, linecolor=LINE,
        xline=null, xlinestyle=(0, (2, 2)), xlinecolor="0.35", xlinewidth=0.8,
    )
    # y position of every input row: forestplot returns the rows bottom-up
    ypos = {int(k): i for i, k in enumerate(out["row"]) if pd.notna(k)}
    if overflow:
        fmt = ax.yaxis.get_major_formatter()
        ylocs = list(ax.get_yticks())
        for i, label in overflow.items():
            j = ylocs.index(ypos[i])
            text = fmt.seq[j]
            at = text.index(f"~{i}~")  # after forestplot's indent (rows under subgroup headings)
            fmt.seq[j] = text[:at] + label + text[at + len(label):]
    nrows = len(out)  # with the header row (and subgroup headings)
    header_y = nrows - 1
    has_super = bool(supers)
    top = header_y + (1 if has_super else 0)
    ax.set_ylim(-0.7, top + 0.6)
    ax.set_xlim(x0, x1)
    if ratio:
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.tick_params(axis="x", labelsize=FONT, length=3)
    ax.spines["bottom"].set_bounds(x0, x1)

    # ---- squares (area proportional to weight), arrows for clipped intervals
    studies = [(i, r) for i, r in enumerate(rows) if r["kind"] == "study"]
    wmax = max([r["weight"] for _, r in studies if np.isfinite(r["weight"])] or [1.0])
    smax = (0.62 * ROW * 72) ** 2  # area in pt^2 of the heaviest study's square
    xs = [r["est"] for _, r in studies]  # off the axis: clipped, the arrow shows the way
    ys = [ypos[i] for i, _ in studies]
    ss = [smax * (r["weight"] / wmax if np.isfinite(r["weight"]) else 0.0) for _, r in studies]
    ax.scatter(xs, ys, s=ss, marker="s", color=SQUARE, linewidths=0, zorder=3, gid="study-squares")
    for i, r in studies:
        if r["lo"] < x0:
            ax.plot([x0], [ypos[i]], marker="<", ms=4, color=LINE, clip_on=False, zorder=3)
        if r["hi"] > x1:
            ax.plot([x1], [ypos[i]], marker=">", ms=4, color=LINE, clip_on=False, zorder=3)

    # ---- diamonds and the prediction interval
    h = 0.34
    for i, r in enumerate(rows):
        if r["kind"] == "published" and np.isfinite(r["est"]) and not (np.isfinite(r["lo"])
                                                                        and np.isfinite(r["hi"])):
            ax.plot([r["est"]], [ypos[i]], marker="D", ms=7, mfc="white", mec=PUBLISHED, mew=1.4, zorder=3,
                    gid="published-diamond")
        elif r["kind"] in ("published", "repooled") and np.isfinite(r["est"]):
            lo, hi = max(r["lo"], x0), min(r["hi"], x1)
            y = ypos[i]
            pts = [(lo, y), (r["est"], y + h), (hi, y), (r["est"], y - h)]
            hollow = r["kind"] == "published"
            ax.add_patch(Polygon(pts, closed=True, facecolor="white" if hollow else PUBLISHED,
                                 edgecolor=PUBLISHED, lw=1.4 if hollow else 0.0, zorder=3,
                                 gid=f"{r['kind']}-diamond"))
        elif r["kind"] in ("pooled", "subtotal", "common") and np.isfinite(r["est"]):
            lo, hi = max(r["lo"], x0), min(r["hi"], x1)
            y = ypos[i]
            pts = [(lo, y), (r["est"], y + h), (hi, y), (r["est"], y - h)]
            if r["kind"] == "common":
                ax.add_patch(Polygon(pts, closed=True, facecolor="white", edgecolor=DIAMOND, lw=1.2, zorder=3))
            else:
                ax.add_patch(Polygon(pts, closed=True, color=DIAMOND if r["kind"] == "pooled" else SUBTOTAL,
                                     zorder=3, gid="pooled-diamond" if r["kind"] == "pooled" else None))
        elif r["kind"] == "pi" and np.isfinite(r["lo"]):
            y = ypos[i]
            lo, hi = max(r["lo"], x0), min(r["hi"], x1)
            ax.plot([lo, hi], [y, y], color=DIAMOND, lw=1.2, zorder=3, solid_capstyle="butt",
                    gid="prediction-interval")
            ax.plot([lo, hi], [y, y], ls="none", marker="|", ms=6, mew=1.2, color=DIAMOND, zorder=3)

    # ---- measure the text forestplot placed, then fix its units and anchors (each text is measured
    # on its own: a full draw of the figure costs more than all the measuring together)
    renderer = fig.canvas.get_renderer()
    px2pt = 72.0 / fig.dpi
    ax.tick_params(axis="y", length=0)  # no hidden tick length in the label offset
    labels = [t for t in ax.get_yticklabels() if t.get_text()]
    left_w = max(t.get_window_extent(renderer).width for t in labels) * px2pt
    pad = left_w + 12.0  # points from the first text column to the plot
    ax.yaxis.set_tick_params(pad=pad)
    right_off = 10.0
    trans_right = blended_transform_factory(ax.transAxes, ax.transData) + ScaledTranslation(
        right_off / 72, 0, fig.dpi_scale_trans)
    right = list(ax.texts)
    for t in right:
        t.set_text(t.get_text().rstrip())
        t.set_x(1.0)
        t.set_transform(trans_right)
    for t in labels + right:  # study labels are text, not mathtext ('$' stays '$')
        t.set_parse_math(False)
    right_w = max([t.get_window_extent(renderer).width for t in right] + [0]) * px2pt
    text_left = ax.get_yaxis_text1_transform(pad)[0]  # where the tick labels start

    # ---- arm headings over the data columns: the same monospace grid as the labels
    if supers:
        head = max(labels, key=lambda t: t.get_position()[1]).get_text()
        col0 = len(head) - sum(w + 2 for w in cw)
        line = [" "] * len(head)
        for name, a, b in supers:
            start = col0 + sum(w + 2 for w in cw[:a]) + 2
            end = start + sum(w + 2 for w in cw[a:b]) - 2
            c = start + max(0, (end - start - len(name)) // 2)
            line[c:c + len(name)] = list(name)
        ax.text(0, header_y + 0.9, "".join(line).rstrip(), transform=text_left, ha="left", va="center",
                fontsize=FONT, fontweight="bold", family=MONO)

    # ---- trailing blanks of the left-flushed labels (rows without arm data) draw nothing but cost a glyph
    # each in every format: dropped once the layout is measured
    fmt = ax.yaxis.get_major_formatter()
    fmt.seq = [text.rstrip() for text in fmt.seq]

    # ---- "Favours ..." under the axis, either side of no effect; the axis label moves below them
    if favours:
        below_ticks = -(3 + 3.5 + FONT * 1.25 + 2) / 72
        for text, ha, side in ((favours[0], "right", -1), (favours[1], "left", 1)):
            ax.text(null, 0, f"\u2190 {text}" if side < 0 else f"{text} \u2192", ha=ha, va="top",
                    fontsize=FONT - 0.5, color="0.2", parse_math=False, gid="favours",
                    transform=blended_transform_factory(ax.transData, ax.transAxes)
                    + ScaledTranslation(side * 4 / 72, below_ticks, fig.dpi_scale_trans))
        ax.xaxis.labelpad = 4 + FONT * 1.25 + 4

    # ---- notes under the axis, title above, both flush with the study column
    notes = _notes(result, common, subgroups, flagged_shown, published) + list(notes)
    ax.xaxis.get_tightbbox(renderer)  # places the axis label under the tick labels
    xl = ax.xaxis.label.get_window_extent(renderer)
    below = (ax.get_window_extent(renderer).y0 - xl.y0) * px2pt + 8
    note = ax.text(0, 0, "\n".join(notes), fontsize=FONT - 0.5, va="top", ha="left", linespacing=1.4,
                   transform=ax.transAxes + ScaledTranslation(-pad / 72, -below / 72, fig.dpi_scale_trans),
                   parse_math=False)
    ttl = None
    if title:
        ttl = ax.text(0, 1, title, fontsize=FONT + 1.5, fontweight="bold", va="bottom", ha="left",
                      transform=ax.transAxes + ScaledTranslation(-pad / 72, 4 / 72, fig.dpi_scale_trans),
                      parse_math=False)

    # ---- size the figure to its content
    nb = note.get_window_extent(renderer)
    margin = 0.12
    left_in = pad / 72 + margin
    right_in = (right_off + right_w) / 72 + margin
    width_in = left_in + PLOT_WIDTH + right_in
    width_in = max(width_in, left_in - pad / 72 + nb.width * px2pt / 72 + margin)
    top_in = margin
    if ttl is not None:  # the title wraps to the table's width instead of widening the figure
        _wrap(ttl, (width_in - (left_in - pad / 72) - margin) * fig.dpi, renderer)
        tb = ttl.get_window_extent(renderer)
        top_in += tb.height * px2pt / 72 + 0.08
    ylo, yhi = ax.get_ylim()
    plot_h = ROW * (yhi - ylo)
    bottom_in = (below + nb.height * px2pt) / 72 + margin
    height_in = plot_h + bottom_in + top_in
    fig.set_size_inches(width_in, height_in)
    ax.set_position((left_in / width_in, bottom_in / height_in, PLOT_WIDTH / width_in, plot_h / height_in))

    # ---- table rules, from the study column to the end of the effect column
    rule_x = [margin - 0.04, left_in + PLOT_WIDTH + (right_off + right_w) / 72 + 0.04]
    rule_t = blended_transform_factory(fig.dpi_scale_trans, ax.transData)
    ax.add_line(Line2D(rule_x, [header_y - 0.5] * 2, lw=0.8, color="0.2", clip_on=False, transform=rule_t))
    pooled_ys = [ypos[i] for i, r in enumerate(rows)
                 if r["kind"] in ("spacer", "pooled", "pi", "common", "repooled", "published", "continued")]
    if pooled_ys:
        y = max(pooled_ys) + (0.5 if subgroups is not None else 0.15)
        ax.add_line(Line2D(rule_x, [y, y], lw=0.6, color="0.2", clip_on=False, transform=rule_t))
    return fig


# ----------------------------------------------------------------------------- funnel plot


#: Fewest studies for which a funnel plot is drawn; below it the pipeline draws a placeholder that says
#: why (one or two points show no asymmetry, and Egger's and Begg's tests need three studies too).
FUNNEL_MIN_K = 3


def funnel_plot(result, *, egger: dict | None = None, contours: bool = True, title: str | None = None) -> Figure:
    """Funnel plot: study effects (model scale) against their standard errors.

    The y axis is inverted (SE 0 at the top). Drawn are the pooled estimate,
    its pseudo 95% confidence funnel (estimate ± 1.96 SE), the line of no
    effect and, with ``contours``, the contour-enhanced regions where a study
    would differ from no effect at p < 0.01, 0.05 and 0.10 (Peters et al.
    2008, J Clin Epidemiol 61:991-996). Ratio measures are drawn on the log
    scale with ticks labelled as ratios; correlations as Fisher's z.

    Parameters
    ----------
    result : PoolResult
    egger : dict, optional
        ``statistic`` and ``pvalue`` (and ``df`` for a t test) of Egger's
        test, printed over the plot.
    contours : bool
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    st = result.studies.dropna(subset=["yi", "vi"])
    y = st["yi"].to_numpy(float)
    se = np.sqrt(st["vi"].to_numpy(float))
    ratio = result.measure in io.RATIO_MEASURES
    fig = Figure(figsize=(6.8, 4.8), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    top = float(se.max()) * 1.08 if se.size else 1.0
    grid = np.array([0.0, top])
    z95 = stats.norm.isf(0.025)
    est = result.estimate if np.isfinite(result.estimate) else 0.0
    center = 0.0 if contours else est
    half = max(np.abs(y - center).max() if y.size else 0.0, abs(est - center) + z95 * top,
               (stats.norm.isf(0.005) * top) if contours else 0.0) * 1.05
    handles = []
    if contours:
        shades = ((0.10, "0.94", "0.05 \u2264 p < 0.10"), (0.05, "0.87", "0.01 \u2264 p < 0.05"),
                  (0.01, "0.79", "p < 0.01"))
        for p, shade, label in shades:
            zc = stats.norm.isf(p / 2)
            for sign in (-1, 1):
                ax.fill_betweenx(grid, sign * zc * grid, sign * 10 * half, color=shade, lw=0, zorder=0)
            handles.append(Patch(facecolor=shade, edgecolor="0.6", lw=0.5, label=label))
        handles.append(Patch(facecolor="white", edgecolor="0.6", lw=0.5, label="p \u2265 0.10"))
    ax.plot(est + np.array([-1, 0, 1]) * z95 * top, [top, 0, top], color="0.3", lw=0.8, ls="--", zorder=1)
    ax.axvline(est, color=DIAMOND, lw=1.1, zorder=1)
    ax.axvline(0.0, color="0.2", lw=0.7, ls=":", zorder=1)
    ax.scatter(y, se, s=26, color=SQUARE, edgecolors="white", linewidths=0.5, zorder=3, gid="funnel-points")
    handles += [Line2D([], [], color=DIAMOND, lw=1.1, label="pooled estimate"),
                Line2D([], [], color="0.3", lw=0.8, ls="--", label="pseudo 95% CI"),
                Line2D([], [], color="0.2", lw=0.7, ls=":", label="no effect")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=FONT - 1,
              frameon=False, title="Contours: study vs no effect" if contours else None,
              title_fontsize=FONT - 1, alignment="left")
    ax.set_xlim(center - half, center + half)
    ax.set_ylim(top, 0)
    ax.set_ylabel("Standard error", fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    if ratio:
        lo, hi = ax.get_xlim()
        (_, _), ticks = _xrange([math.exp(lo), math.exp(hi)], 1.0, True)
        ticks = [t for t in ticks if lo <= math.log(t) <= hi]
        ax.xaxis.set_major_locator(FixedLocator([math.log(t) for t in ticks]))
        ax.set_xticklabels([f"{t:g}" for t in ticks])
        ax.set_xlabel(f"{_NAMES[result.measure]} (log scale)", fontsize=FONT)
    elif result.measure in _MODEL_SCALE:
        ax.set_xlabel(_MODEL_SCALE[result.measure], fontsize=FONT)
    else:
        ax.set_xlabel(_NAMES[result.measure], fontsize=FONT)
    nat = _pooled_natural(result)["estimate"]
    lines = [f"{_model_label(result)}: {_SHORT[result.measure]} = {_num(nat)}, k = {result.k}"]
    if egger:
        stat = float(egger.get("statistic", np.nan))
        df = egger.get("df")
        kind, dft = ("t", f" (df = {df:g})") if df else ("z", "")
        lines.append(f"Egger's test: {kind} = {stat:.2f}{dft}, {p_equals(egger.get('pvalue'))}")
    if result.k < 10:
        lines.append(f"k = {result.k} < 10: funnel asymmetry tests have little power")
    ax.set_title("\n".join(lines), fontsize=FONT - 0.5, loc="left", linespacing=1.35)
    if title:
        _suptitle(fig, title)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- diagnostics


def _suptitle(fig, title: str) -> None:
    """The figure's title, flush left and wrapped to the figure's width (never cut at the edge)."""
    t = fig.suptitle(title, fontsize=FONT + 1.5, x=0.02, ha="left", fontweight="bold", parse_math=False)
    _wrap(t, fig.get_figwidth() * fig.dpi * 0.96, fig.canvas.get_renderer())


def _new_figure(w, h):
    fig = Figure(figsize=(w, h), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _finish(fig, title):
    if title:
        _suptitle(fig, title)
    for ax in fig.axes:
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.tick_params(labelsize=FONT)
    fig.tight_layout()
    return fig


def not_applicable_figure(reason: str, title: str | None = None) -> Figure:
    """A small figure that says why a plot could not be drawn (e.g. k = 1), so
    every declared output exists and the reader is told why it is empty."""
    fig = _new_figure(6.0, 1.6)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.0, 0.5, f"Not drawn: {reason}", fontsize=FONT, va="center", ha="left", wrap=True)
    if title:
        _suptitle(fig, title)
    return fig


def _set_effect_axis(ax, measure, axis="x"):
    """Ratio measures on the log scale with ticks labelled as ratios."""
    if measure not in io.RATIO_MEASURES:
        label = _MODEL_SCALE.get(measure, _NAMES[measure])
        (ax.set_xlabel if axis == "x" else ax.set_ylabel)(label, fontsize=FONT)
        return
    lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
    (_, _), ticks = _xrange([math.exp(lo), math.exp(hi)], 1.0, True)
    ticks = [t for t in ticks if lo <= math.log(t) <= hi]
    if len(ticks) < 3:  # a narrow range: evenly spaced round ratios instead
        ticks = [t for t in MaxNLocator(nbins=5).tick_values(math.exp(lo), math.exp(hi))
                 if t > 0 and lo <= math.log(t) <= hi]
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(FixedLocator([math.log(t) for t in ticks]))
    (ax.set_xticklabels if axis == "x" else ax.set_yticklabels)([f"{t:g}" for t in ticks])
    (ax.set_xlabel if axis == "x" else ax.set_ylabel)(f"{_NAMES[measure]} (log scale)", fontsize=FONT)


def _interval_panel(ax, labels, est, lo, hi, full, measure, heading):
    n = len(labels)
    yy = np.arange(n)[::-1].astype(float)
    ax.hlines(yy, lo, hi, color=LINE, lw=1.0)
    ax.scatter(est, yy, marker="s", s=22, color=SQUARE, zorder=3)
    ax.axvline(full.estimate, color=DIAMOND, lw=1.0, label="all studies")
    ax.axvspan(full.ci_lower, full.ci_upper, color=DIAMOND, alpha=0.10, lw=0)
    null = 0.0
    ax.axvline(null, color="0.2", lw=0.7, ls=":")
    ax.set_yticks(yy)
    ax.set_yticklabels(labels, fontsize=FONT)
    ax.set_ylim(-0.7, n - 0.3)
    finite = np.concatenate([np.asarray(lo, float), np.asarray(hi, float), [null, full.ci_lower, full.ci_upper]])
    finite = finite[np.isfinite(finite)]
    pad = 0.06 * (finite.max() - finite.min() or 1.0)
    ax.set_xlim(finite.min() - pad, finite.max() + pad)
    _set_effect_axis(ax, measure)
    ax.set_title(heading, fontsize=FONT, loc="left")


def leave_one_out_plot(result, loo: pd.DataFrame, cumulative: pd.DataFrame | None = None,
                       title: str | None = None) -> Figure:
    """Leave-one-out estimates (each study omitted in turn) and, when given, the
    cumulative meta-analysis by year, against the estimate of all studies
    (line, with its CI shaded), as metafor's ``forest(leave1out())`` and
    ``forest(cumul())``. Ratio measures on the log scale."""
    panels = [("Leave one out: omitting", loo, "omitted")]
    if cumulative is not None and len(cumulative):
        panels.append(("Cumulative by year: adding", cumulative, "added"))
    n = max(len(p[1]) for p in panels)
    fig = _new_figure(4.6 * len(panels) + 1.2, 1.3 + ROW * 1.6 * n)
    for j, (heading, df, col) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), j + 1)
        _interval_panel(ax, [str(x) for x in df[col]], df["estimate"].to_numpy(float),
                        df["ci_lower"].to_numpy(float), df["ci_upper"].to_numpy(float), result, result.measure,
                        heading)
    return _finish(fig, title)


def influence_plot(infl: pd.DataFrame, title: str | None = None) -> Figure:
    """Influence measures per study, as metafor's ``plot(influence())``:
    externally standardised residuals, DFFITS, Cook's distance, covariance
    ratio, hat values and weights, with metafor's cut-offs dashed and
    influential studies (by its criteria) in red."""
    k = len(infl)
    panels = (("rstudent", "Studentized residual", (-1.96, 1.96)), ("dffits", "DFFITS", None),
              ("cook_d", "Cook's distance", None), ("cov_r", "Covariance ratio", (1.0,)),
              ("hat", "Hat value", None), ("weight", "Weight (%)", None))
    fig = _new_figure(9.0, 5.6 + 0.06 * max(len(str(s)) for s in infl["study"]))
    x = np.arange(1, k + 1)
    flag = infl["influential"].to_numpy(bool)
    for j, (col, name, refs) in enumerate(panels):
        ax = fig.add_subplot(2, 3, j + 1)
        y = infl[col].to_numpy(float)
        ax.plot(x, y, color="0.6", lw=0.7, zorder=1)
        ax.scatter(x[~flag], y[~flag], s=18, color=SQUARE, zorder=3)
        ax.scatter(x[flag], y[flag], s=24, color=DIAMOND, zorder=4)
        if col == "dffits":
            refs = (3 * math.sqrt(1 / max(k - 1, 1)),)
        elif col == "hat":
            refs = (3 / k,)
        for r in refs or ():
            ax.axhline(r, color="0.4", lw=0.7, ls="--")
        ax.set_title(name, fontsize=FONT, loc="left")
        ax.set_xticks(x)
        ax.set_xlim(0.5, k + 0.5)
        if j >= 3:
            ax.set_xticklabels([str(s) for s in infl["study"]], rotation=60, ha="right", fontsize=FONT - 1)
        else:
            ax.set_xticklabels([])
    return _finish(fig, title)


def baujat_plot(bj: pd.DataFrame, title: str | None = None) -> Figure:
    """Baujat plot (Baujat et al. 2002, Stat Med 21:2641): each study's
    contribution to Cochran's Q (x) against its influence on the pooled
    result (y), as metafor's ``baujat()``; studies far right or high are the
    ones that drive heterogeneity or the estimate."""
    fig = _new_figure(6.4, 4.8)
    ax = fig.add_subplot()
    x, y = bj["x"].to_numpy(float), bj["y"].to_numpy(float)
    ax.scatter(x, y, s=24, color=SQUARE, zorder=3)
    for xi, yi, lab in zip(x, y, bj["study"].astype(str)):
        ax.annotate(lab, (xi, yi), xytext=(4, 3), textcoords="offset points", fontsize=FONT - 1)
    ax.set_xlabel("Contribution to overall heterogeneity (Q)", fontsize=FONT)
    ax.set_ylabel("Influence on overall result", fontsize=FONT)
    ax.margins(0.15)
    return _finish(fig, title)


def bubble_plot(yi, vi, x, fit, *, moderator: str, measure: str, labels=None,
                title: str | None = None) -> Figure:
    """Bubble plot of a meta-regression on one numeric moderator, as metafor's
    ``regplot()``: studies as circles with area proportional to their weight in
    the fitted model (``1 / (v_i + tau²)``), the fitted line and its confidence
    band. Ratio measures are drawn on the log scale."""
    yi, vi, x = (np.asarray(a, float) for a in (yi, vi, x))
    coefs = fit.coefficients
    b0, b1 = coefs["estimate"].to_numpy(float)[:2]
    V = np.asarray(fit.vcov, float)[:2, :2]
    grid = np.linspace(x.min(), x.max(), 101)
    G = np.column_stack([np.ones_like(grid), grid])
    pred = G @ np.array([b0, b1])
    se = np.sqrt(np.einsum("ij,jk,ik->i", G, V, G))
    crit = stats.t.isf((1 - fit.level / 100) / 2, fit.df) if fit.test in T_TESTS else stats.norm.isf(
        (1 - fit.level / 100) / 2)
    w = 1 / (vi + fit.tau2)
    size = 600 * w / w.max()
    fig = _new_figure(6.4, 4.6)
    ax = fig.add_subplot()
    ax.fill_between(grid, pred - crit * se, pred + crit * se, color=DIAMOND, alpha=0.12, lw=0)
    ax.plot(grid, pred, color=DIAMOND, lw=1.2)
    ax.scatter(x, yi, s=size, facecolors="none", edgecolors=SQUARE, linewidths=1.0, zorder=3)
    ax.axhline(0.0, color="0.2", lw=0.7, ls=":")
    if labels is not None:
        for xi, yv, lab in zip(x, yi, labels):
            ax.annotate(str(lab), (xi, yv), xytext=(5, 4), textcoords="offset points", fontsize=FONT - 2)
    ax.set_xlabel(moderator, fontsize=FONT)
    ax.margins(0.08)
    _set_effect_axis(ax, measure, axis="y")
    p = fit.coefficients["pvalue"].to_numpy(float)[1]
    kind = "t" if fit.test in T_TESTS else "z"
    ax.set_title(f"slope {b1:.4g} per unit ({fit.level:g}% band, {kind} test {p_equals(p)}); k = {fit.k}, "
                 f"residual \u03c4\u00b2 = {fit.tau2:.4g}", fontsize=FONT - 0.5, loc="left")
    return _finish(fig, title)


# ----------------------------------------------------------------------------- saving


_META = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None},
}


def save_figure(fig: Figure, stem, formats=("png", "svg", "pdf")) -> list[Path]:
    """Write ``stem.<format>`` for each format, byte-identical across runs.

    No dates or software names in the metadata, a fixed SVG hash salt and
    fixed resolution (150 dpi); rendered through the Agg, SVG and PDF
    canvases directly, whatever backend pyplot uses.

    Returns
    -------
    list of Path
        The files written, in the order of ``formats``.
    """
    import matplotlib

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    rc = {"svg.hashsalt": "metarepro", "svg.fonttype": "path", "pdf.fonttype": 3}
    with matplotlib.rc_context(rc):
        for ext in formats:
            if ext not in _META:
                raise ValueError(f"unknown figure format '{ext}' (choose png, svg or pdf)")
            path = stem.parent / f"{stem.name}.{ext}"
            fig.savefig(path, format=ext, dpi=DPI, metadata=_META[ext], facecolor="white")
            out.append(path)
    return out
