"""Forest and funnel plots, saved deterministically.

The forest plot's table layout (study labels, per-arm data, weight and effect
columns, right-flushed headers) comes from the ``forestplot`` package, which
places one row per table line on a categorical y axis. It has no notion of
weights or pooled estimates, so matplotlib draws on the same axes what it
lacks: squares whose area is proportional to the study weight, the pooled
diamonds (random effects and common effect), the prediction interval, the line
of no effect, readable ticks on a log axis for ratio measures, the
heterogeneity line and the test for the overall effect, and integrity marks.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Polygon
from matplotlib.ticker import FixedLocator, NullLocator
from scipy import stats

from . import io

_RATIO_TICKS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]
_FONT = 9


def _transform(measure):
    if measure in io.RATIO_MEASURES:
        return np.exp
    if measure == "ZCOR":
        return np.tanh
    return lambda x: np.asarray(x, float)


def _label(measure):
    return {"RR": "Risk ratio", "OR": "Odds ratio", "RD": "Risk difference", "MD": "Mean difference",
            "SMD": "Standardised mean difference (Hedges' g)", "ROM": "Ratio of means",
            "ZCOR": "Correlation", "GEN": "Effect"}[measure]


def _fmt_ci(e, lo, hi, d=2):
    if not np.isfinite(e):
        return ""
    return f"{e:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]"


def _arm_columns(frame):
    if frame is None:
        return [], []
    cols = set(frame.columns)
    if set(io.BINARY) <= cols:
        t = [f"{int(float(a))}/{int(float(b))}" for a, b in zip(frame.events_t, frame.total_t)]
        c = [f"{int(float(a))}/{int(float(b))}" for a, b in zip(frame.events_c, frame.total_c)]
        return [t, c], ["Treatment n/N", "Control n/N"]
    if set(io.CONTINUOUS) <= cols:
        t = [f"{float(m):.3g} ({float(s):.3g}) {int(float(n))}" for m, s, n in zip(frame.mean_t, frame.sd_t, frame.total_t)]
        c = [f"{float(m):.3g} ({float(s):.3g}) {int(float(n))}" for m, s, n in zip(frame.mean_c, frame.sd_c, frame.total_c)]
        return [t, c], ["Treatment mean (SD) n", "Control mean (SD) n"]
    return [], []


def _pooled_label(res):
    if res.method in ("FE", "MH", "PETO"):
        name = {"FE": "inverse variance", "MH": "Mantel-Haenszel", "PETO": "Peto"}[res.method]
        return f"Common effect ({name})"
    test = ", Hartung-Knapp" if res.test == "knha" else ""
    return f"Random effects ({res.method}{test})"


def _study_rows(res, frame, flagged, level):
    f = _transform(res.measure)
    z = stats.norm.isf((1 - level / 100) / 2)
    st = res.studies.reset_index(drop=True)
    arms, arm_heads = _arm_columns(frame)
    excluded = {e["study"]: e["reason"] for e in res.excluded}
    rows = []
    for i, r in st.iterrows():
        lab = str(r.study) + (" \u2020" if r.study in flagged else "")
        ok = np.isfinite(r.yi)
        lo, hi = (r.yi - z * math.sqrt(r.vi), r.yi + z * math.sqrt(r.vi)) if ok else (np.nan, np.nan)
        rows.append({"label": lab, "kind": "study", "est": f(r.yi) if ok else np.nan, "lo": f(lo) if ok else np.nan,
                     "hi": f(hi) if ok else np.nan, "weight": r.weight,
                     "w": f"{r.weight:.1f}%" if ok and np.isfinite(r.weight) else "",
                     "ci": _fmt_ci(f(r.yi), f(lo), f(hi)) if ok else "excluded: " + excluded.get(r.study, "")[:40],
                     **{f"arm{j}": a[i] for j, a in enumerate(arms)}})
    return rows, arm_heads


def _pooled_rows(res, label=None):
    f = _transform(res.measure)
    rows = [{"label": label or _pooled_label(res), "kind": "pooled", "est": float(f(res.estimate)),
             "lo": float(f(res.ci_lower)), "hi": float(f(res.ci_upper)), "weight": np.nan, "w": "100%",
             "ci": _fmt_ci(float(f(res.estimate)), float(f(res.ci_lower)), float(f(res.ci_upper)))}]
    if res.method not in ("FE", "MH", "PETO") and np.isfinite(res.pi_lower):
        rows.append({"label": "  Prediction interval", "kind": "pi", "est": float(f(res.estimate)),
                     "lo": float(f(res.pi_lower)), "hi": float(f(res.pi_upper)), "weight": np.nan, "w": "",
                     "ci": f"[{float(f(res.pi_lower)):.2f}, {float(f(res.pi_upper)):.2f}]"})
    return rows


def _p(p):
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def _het_text(res):
    test = "t" if res.test == "knha" else "z"
    df = f" (df = {res.df:g})" if res.df else ""
    het = (f"Heterogeneity: \u03c4\u00b2 = {res.tau2:.4f}; Q = {res.q:.2f} (df = {res.q_df}, p {_p(res.q_pvalue)}); "
           f"I\u00b2 = {res.i2:.0f}%")
    overall = f"Test for overall effect: {test}{df} = {res.statistic:.2f}, p {_p(res.pvalue)}"
    return het, overall


def _import_forestplot():
    """Import forestplot without letting it change process state: on import it
    installs an "ignore all warnings" filter, silences numpy floating-point
    errors and changes a matplotlib font setting."""
    import warnings

    saved_rc = dict(matplotlib.rcParams)
    saved_err = np.geterr()
    with warnings.catch_warnings():
        import forestplot
    np.seterr(**saved_err)
    matplotlib.rcParams.update(saved_rc)
    return forestplot


def forest_plot(result, frame: pd.DataFrame | None = None, *, common=None, flagged=(), subgroups=None,
                title: str | None = None, effect_label: str | None = None) -> Figure:
    """Forest plot of a pooled result.

    Parameters
    ----------
    result : PoolResult
        The model drawn as the main diamond (usually random effects).
    frame : DataFrame, optional
        The study rows (same order as ``result.studies``) for per-arm columns.
    common : PoolResult, optional
        A common-effect fit drawn as a second diamond.
    flagged : iterable of str
        Study labels with integrity concerns, marked with a dagger.
    subgroups : PoolTable, optional
        Per-subgroup fits (``pool(..., by=column)``): studies grouped under
        headings, each with its subtotal diamond.
    title, effect_label : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    fp = _import_forestplot()
    flagged = set(flagged)
    level = result.level
    ratio = result.measure in io.RATIO_MEASURES
    rows, arm_heads = _study_rows(result, frame, flagged, level)
    if subgroups is not None:
        grouped = []
        col = subgroups.by
        values = frame[col].astype(str).to_numpy() if frame is not None else None
        for g in subgroups.groups():
            grouped.append({"label": f"{col}: {g}", "kind": "heading", "est": np.nan, "lo": np.nan, "hi": np.nan,
                            "weight": np.nan, "w": "", "ci": ""})
            grouped += [r for r, v in zip(rows, values) if v == str(g)]
            sub = subgroups[g]
            grouped += [dict(_pooled_rows(sub, label=f"  Subtotal ({sub.method})")[0], kind="subtotal",
                             w="")]
        rows = grouped
    rows.append({"label": "", "kind": "gap", "est": np.nan, "lo": np.nan, "hi": np.nan, "weight": np.nan,
                 "w": "", "ci": ""})
    rows += _pooled_rows(result)
    if common is not None:
        rows += [dict(r, w="") for r in _pooled_rows(common) if r["kind"] == "pooled"]
    df = pd.DataFrame(rows)
    for j in range(len(arm_heads)):
        df[f"arm{j}"] = df.get(f"arm{j}", "").fillna("") if f"arm{j}" in df else ""
    null = 1.0 if ratio else 0.0
    finite = np.concatenate([df.lo.to_numpy(float), df.hi.to_numpy(float), df.est.to_numpy(float)])
    finite = finite[np.isfinite(finite)]
    if ratio:
        finite = finite[finite > 0]
        lo_x, hi_x = float(min(finite.min(), null)), float(max(finite.max(), null))
    else:
        lo_x, hi_x = float(min(finite.min(), null)), float(max(finite.max(), null))
    # forestplot needs finite numbers on every row: blank rows sit on the null line with no length
    plot_df = df.copy()
    for c in ("est", "lo", "hi"):
        plot_df[c] = plot_df[c].where(np.isfinite(plot_df[c].astype(float)), null)
    blank = ~df.kind.isin(["study"]) | ~np.isfinite(df.est.astype(float))
    plot_df.loc[blank, "lo"] = plot_df.loc[blank, "est"]
    plot_df.loc[blank, "hi"] = plot_df.loc[blank, "est"]
    n = len(df)
    height = 1.6 + 0.32 * (n + 1)
    width = 9.0 if arm_heads else 7.5
    fig = Figure(figsize=(width, height))
    ax = fig.add_subplot()
    # one space per row keeps labels unique for the categorical axis
    plot_df["label"] = [lab + "\u2009" * i for i, lab in enumerate(plot_df.label)]
    annote = [f"arm{j}" for j in range(len(arm_heads))]
    eff = effect_label or _label(result.measure)
    short = {"Risk ratio": "RR", "Odds ratio": "OR"}.get(eff, "Effect")
    fp.forestplot(plot_df, estimate="est", ll="lo", hl="hi", varlabel="label",
                  annote=annote or None, annoteheaders=arm_heads or None, rightannote=["w", "ci"],
                  right_annoteheaders=["Weight", f"{short} [{level:g}% CI]"], logscale=ratio, ax=ax,
                  ci_report=False, xlabel=eff, markersize=0, fontsize=_FONT, flush=True, table=False,
                  xline=null, xlinestyle=":", lw=1.2, linecolor="0.25", variable_header="Study")
    ypos = {i: n - 1 - i for i in range(n)}
    wmax = np.nanmax(df.weight.to_numpy(float)) if np.isfinite(df.weight.to_numpy(float)).any() else 1.0
    for i, r in df.iterrows():
        y = ypos[i]
        if r.kind == "study" and np.isfinite(r.est):
            size = 12 + 160 * (r.weight / wmax)
            ax.scatter([r.est], [y], marker="s", s=size, color="#1f4e79", zorder=3, linewidths=0)
        elif r.kind in ("pooled", "subtotal"):
            color = "#b22222" if r.kind == "pooled" else "#555555"
            ax.add_patch(Polygon([(r.lo, y), (r.est, y + 0.3), (r.hi, y), (r.est, y - 0.3)], closed=True,
                                 color=color, zorder=3))
        elif r.kind == "pi":
            ax.plot([r.lo, r.hi], [y, y], color="#b22222", lw=2.5, solid_capstyle="butt", zorder=2, alpha=0.55)
    ax.set_ylim(-0.8, n + 0.4 if arm_heads else n - 0.2)
    if ratio:
        ticks = [t for t in _RATIO_TICKS if lo_x / 1.5 <= t <= hi_x * 1.5]
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{t:g}" for t in ticks], fontsize=_FONT)
        ax.set_xlim(min(ticks[0], lo_x / 1.1), max(ticks[-1], hi_x * 1.1))
    else:
        pad = 0.05 * (hi_x - lo_x or 1)
        ax.set_xlim(lo_x - pad, hi_x + pad)
        ax.tick_params(axis="x", labelsize=_FONT)
    het, overall = _het_text(result)
    notes = [het, overall]
    if flagged & set(result.studies.study):
        notes.append("\u2020 integrity concern (retracted or questioned trial; see the analysis YAML)")
    # place the notes and the title flush with the study column, just under the x label
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.subplots_adjust(bottom=1.1 / height, top=1 - 0.45 / height)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    left = min(t.get_window_extent(renderer).x0 for t in ax.get_yticklabels() if t.get_text().strip())
    x0 = fig.transFigure.inverted().transform((left, 0))[0]
    y0 = fig.transFigure.inverted().transform((0, ax.xaxis.label.get_window_extent(renderer).y0))[1]
    fig.text(x0, y0 - 0.08 / height, "\n".join(notes), fontsize=_FONT - 0.5, family="monospace",
             va="top", ha="left")
    if title:
        fig.text(x0, 1 - 0.12 / height, title, fontsize=_FONT + 2, va="top", ha="left", weight="bold")
    return fig


def funnel_plot(result, *, egger: dict | None = None, contours: bool = True, title: str | None = None) -> Figure:
    """Funnel plot: effect against standard error (0 at the top), the pooled
    estimate, its pseudo 95% confidence funnel, and contour-enhanced regions of
    significance around the null (p < 0.01, 0.05, 0.10; Peters et al. 2008,
    J Clin Epidemiol 61:991). ``egger`` (``statistic``, ``pvalue``) is printed."""
    st = result.studies.dropna(subset=["yi"])
    se = np.sqrt(st.vi.to_numpy())
    y = st.yi.to_numpy()
    ratio = result.measure in io.RATIO_MEASURES
    fig = Figure(figsize=(6, 5))
    ax = fig.add_subplot()
    top = max(se.max() * 1.1, 1e-9)
    grid = np.linspace(0, top, 50)
    if contours:
        from matplotlib.patches import Patch

        handles = []
        for p, shade, name in ((0.10, "0.93", "0.05 < p < 0.10"), (0.05, "0.85", "0.01 < p < 0.05"),
                               (0.01, "0.75", "p < 0.01")):
            zc = stats.norm.isf(p / 2)
            ax.fill_betweenx(grid, -zc * grid, -1e3 * np.ones_like(grid), color=shade, lw=0)
            ax.fill_betweenx(grid, zc * grid, 1e3 * np.ones_like(grid), color=shade, lw=0)
            handles.append(Patch(color=shade, label=name))
        ax.legend(handles=handles, loc="lower right", fontsize=_FONT - 1, frameon=True,
                  title="significance vs no effect", title_fontsize=_FONT - 1)
    z = stats.norm.isf(0.025)
    ax.plot(result.estimate - z * grid, grid, ls="--", color="0.3", lw=0.8)
    ax.plot(result.estimate + z * grid, grid, ls="--", color="0.3", lw=0.8)
    ax.axvline(result.estimate, color="#b22222", lw=1)
    ax.axvline(0, color="0.2", lw=0.6, ls=":")
    ax.scatter(y, se, color="#1f4e79", s=22, zorder=3)
    span = max(abs(y).max(), abs(result.estimate) + z * top) * 1.15
    ax.set_xlim(-span, span) if not ratio else ax.set_xlim(min(y.min(), result.estimate - z * top) - 0.1,
                                                            max(y.max(), result.estimate + z * top) + 0.1)
    ax.set_ylim(top, 0)
    ax.set_ylabel("Standard error", fontsize=_FONT)
    ax.set_xlabel(("log " if ratio else "") + _label(result.measure).lower()
                  + " (0 = no effect)", fontsize=_FONT)
    ax.tick_params(labelsize=_FONT)
    lines = []
    if egger:
        stat = egger.get("statistic", egger.get("zval"))
        lines.append(f"Egger's test: {'t' if egger.get('df') else 'z'} = {stat:.2f}, p {_p(egger['pvalue'])}")
    if result.k < 10:
        lines.append(f"k = {result.k} < 10: funnel asymmetry tests have low power (Cochrane Handbook 13.3.5.4)")
    if lines:
        ax.set_title("\n".join(lines), fontsize=_FONT - 0.5, loc="left")
    if title:
        fig.suptitle(title, fontsize=_FONT + 1, x=0.01, ha="left")
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, stem, formats=("png", "svg", "pdf")) -> list[Path]:
    """Write ``stem.<format>`` files byte-identical across runs: no dates or
    software strings in the metadata, a fixed SVG hash salt, fixed resolution."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    meta = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None},
            "pdf": {"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None}}
    out = []
    with matplotlib.rc_context({"svg.hashsalt": "metarepro", "svg.fonttype": "path", "pdf.compression": 6}):
        for ext in formats:
            path = stem.with_suffix(f".{ext}")
            fig.savefig(path, format=ext, dpi=150, metadata=meta[ext], bbox_inches="tight",
                        facecolor="white")
            out.append(path)
    return out
