"""The pipeline's steps, each for a batch of analyses.

One function per step (pool, heterogeneity, robustness, forensics, verdicts,
forest plots, funnel plots, diagnostic plots): it reads the analyses of a batch,
computes with the library (:mod:`metarepro.analysis`, :mod:`metarepro.robustness`,
:mod:`metarepro.figures`) and writes one set of files per analysis (or outcome)
where ``layout`` says. The fits of the statistics steps go through
:func:`metarepro.batch.drive_many`, so a batch costs about as many engine calls as
one analysis; figures are drawn one after the other in the same process, so the
imports are paid once per batch.

:func:`check` is what planning runs on each analysis before it is put in a batch,
so that a malformed analysis never takes its batch down.

Nothing here knows about a workflow engine: a step gets plain lists and
strings (see :class:`Entry` and :class:`Layout`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

log = logging.getLogger("metarepro")

#: Figures the pipeline can draw, and the formats each may be written in.
FIGURE_FORMATS = {"forest": ("png", "svg", "pdf"), "funnel": ("png", "svg", "pdf"),
                  "sensitivity": ("png",), "influence": ("png",), "baujat": ("png",), "bubble": ("png",)}
#: Figures drawn by :func:`diagnostic_plots` (from the robustness work).
DIAGNOSTIC_FIGURES = ("sensitivity", "influence", "baujat", "bubble")


@dataclass(frozen=True)
class Entry:
    """One analysis of a batch: its files and what planning found in them."""

    name: str
    yaml: str
    csv: str | None = None
    outcomes: tuple = ()
    moderators: tuple = ()

    @classmethod
    def of(cls, d: dict) -> Entry:
        return cls(name=d["name"], yaml=d["yaml"], csv=d.get("csv"), outcomes=tuple(d.get("outcomes") or ()),
                   moderators=tuple(d.get("moderators") or ()))


@dataclass(frozen=True)
class Layout:
    """Where the files of an analysis go: ``analysis`` and ``outcome`` are format
    strings with the fields ``{analysis}``, ``{outcome}`` and ``{file}``."""

    analysis: str = "results/{analysis}/{file}"
    outcome: str = "results/{analysis}/{outcome}/{file}"

    def of(self, analysis: str, file: str, outcome: str | None = None) -> Path:
        if outcome is None:
            return Path(self.analysis.format(analysis=analysis, file=file))
        return Path(self.outcome.format(analysis=analysis, outcome=outcome, file=file))


def _entries(entries) -> list[Entry]:
    """Entries given as a list, or as the path of a batch plan (:func:`plan_batch`)."""
    if isinstance(entries, (str, Path)):
        import json

        entries = json.loads(Path(entries).read_text(encoding="utf-8"))["analyses"]
    return [e if isinstance(e, Entry) else Entry.of(e) for e in entries]


def plan_batch(files, path) -> None:
    """Write the plan of a batch (JSON): for each analysis (its ``.yaml`` among
    ``files``, with its ``.csv`` where one is among them) the outcomes that have
    rows and the moderators. Light (standard library and PyYAML): every step of the
    batch reads it, so that a step's record holds one input, not the batch's files."""
    import json

    from .plan import moderators, outcomes_with_data
    from .scripting import write_text

    files = [str(f) for f in files]
    csvs = {Path(f).stem: f for f in files if f.endswith(".csv")}
    out = []
    for y in sorted((f for f in files if f.endswith(".yaml")), key=lambda f: Path(f).stem):
        name = Path(y).stem
        csv = csvs.get(name)
        out.append({"name": name, "yaml": y, "csv": csv,
                    "outcomes": outcomes_with_data(csv, y) if csv else [], "moderators": moderators(y)})
    write_text(path, json.dumps({"analyses": out}, indent=1, sort_keys=True) + "\n")


def _layout(layout) -> Layout:
    return layout if isinstance(layout, Layout) else Layout(**layout)


def _load(entries: list[Entry]) -> list:
    """The analyses of a batch, loaded and checked (an analysis without a CSV has
    an empty table: its targets only)."""
    from .extracted import load_analysis

    return [load_analysis(e.csv or Path(e.yaml).with_suffix(".csv"), e.yaml) for e in entries]


def _raise_first(results) -> None:
    """Raise the first error of a batch's results (planning keeps malformed analyses
    out of batches, so this is an error no check foresaw)."""
    for r in results:
        if isinstance(r, InputError):
            raise r


# ----------------------------------------------------------------------------- planning


def problem(yaml: str, csv: str | None = None) -> InputError | None:
    """Everything that can make an analysis fail, checked without fitting: the YAML
    (schema and rules), the CSV (provenance, numbers) and every outcome's study
    effects. Returns the first problem found, or None."""
    from .analysis import outcome_frame
    from .effects import compute_effects

    try:
        an = _load([Entry(name=Path(yaml).stem, yaml=yaml, csv=csv)])[0]
        present = set(an.table["outcome"])
        for o in an.outcomes():
            if o not in present:
                continue
            frame = outcome_frame(an, o)
            if len(frame):
                compute_effects(frame, an.measure_of(o))
    except InputError as err:
        return err
    return None


def check(yaml: str, csv: str | None = None) -> str | None:
    """The one-line message of :func:`problem`, or None for a sound analysis."""
    err = problem(yaml, csv)
    return None if err is None else err.one_line()


# ----------------------------------------------------------------------------- statistics


def pool(entries, layout, *, tests=("z", "knha", "adhoc"), level: float = 95) -> None:
    """``pooled.csv`` of every analysis: every outcome × method × test."""
    from .analysis import pooled_table_fits
    from .batch import drive_many
    from .scripting import write_csv

    entries, layout = _entries(entries), _layout(layout)
    analyses = _load(entries)
    tables = drive_many(pooled_table_fits(an, tests=tuple(tests), level=level) for an in analyses)
    _raise_first(tables)
    for an, table in zip(analyses, tables):
        write_csv(table, layout.of(an.name, "pooled.csv"))
        log.info("%s: %d models", an.name, len(table))


def heterogeneity(entries, layout, *, method: str = "REML", test: str = "adhoc", level: float = 95) -> None:
    """``heterogeneity.json`` and ``.md`` of every outcome with data."""
    from .analysis import heterogeneity_fits
    from .batch import drive_many
    from .scripting import dumps, write_text

    entries, layout = _entries(entries), _layout(layout)
    analyses = _load(entries)
    pairs = [(an, o) for an, e in zip(analyses, entries) for o in e.outcomes]
    reports = drive_many(heterogeneity_fits(an, o, method=method, test=test, level=level) for an, o in pairs)
    _raise_first(reports)
    for (an, o), (report, md) in zip(pairs, reports):
        write_text(layout.of(an.name, "heterogeneity.json", o), dumps(report))
        write_text(layout.of(an.name, "heterogeneity.md", o), md)
        log.info("%s / %s: k = %d", an.name, o, report["k"])


def forensics(entries, layout, batch_table, *, level: float = 95) -> None:
    """``forensics.csv`` of every analysis: every method × tau² estimator × test ×
    zero-cell convention for each published target with data; and all of them in
    ``batch_table`` (what :func:`verdicts` reads)."""
    import pandas as pd

    from .analysis import forensics_table_fits
    from .batch import drive_many
    from .names import FORENSICS_COLUMNS
    from .scripting import write_csv

    entries, layout = _entries(entries), _layout(layout)
    analyses = _load(entries)
    tables = drive_many(forensics_table_fits(an, level=level) for an in analyses)
    _raise_first(tables)
    for an, table in zip(analyses, tables):
        write_csv(table, layout.of(an.name, "forensics.csv"))
        log.info("%s: %d combinations", an.name, len(table))
    parts = [t for t in tables if len(t)]
    write_csv(pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(FORENSICS_COLUMNS)),
              batch_table)


def verdicts(entries, layout, forensics_table, *, tolerance: float = 0.10, level: float = 95,
             modern=None) -> None:
    """``reproduction.csv`` of every analysis: each published target beside the re-pooled
    and the modern estimates, with the verdict and (from the batch's forensics table) the likely method."""
    import pandas as pd

    from .analysis import reproduction_rows_fits
    from .batch import drive_many
    from .names import REPRODUCTION_COLUMNS
    from .scripting import write_csv

    entries, layout = _entries(entries), _layout(layout)
    modern = modern or {"method": "REML", "test": "adhoc"}
    analyses = _load(entries)
    every = pd.read_csv(forensics_table)
    found = [every[every["analysis"] == an.name].reset_index(drop=True) if len(an.table) else None
             for an in analyses]
    rows = drive_many(reproduction_rows_fits(an, tolerance=tolerance, level=level,
                                             modern=(modern["method"], modern["test"]), forensics=f)
                      for an, f in zip(analyses, found))
    _raise_first(rows)
    for an, r in zip(analyses, rows):
        write_csv(pd.DataFrame(r, columns=list(REPRODUCTION_COLUMNS)), layout.of(an.name, "reproduction.csv"))
        log.info("%s: %d targets", an.name, len(r))


def robustness(entries, layout, *, method: str = "REML", test: str = "adhoc", level: float = 95,
               permutations: int = 1000, seed: int = 1234) -> None:
    """``robustness.json`` and ``.md`` of every outcome with data (one outcome at a time:
    :func:`metarepro.robustness.robustness` is not batched)."""
    from .robustness import robustness as robustness_of
    from .scripting import dumps, write_text

    entries, layout = _entries(entries), _layout(layout)
    for an, e in zip(_load(entries), entries):
        for o in e.outcomes:
            rb = robustness_of(an, o, method=method, test=test, level=level, permutations=permutations, seed=seed)
            write_text(layout.of(an.name, "robustness.json", o), dumps(rb.report))
            write_text(layout.of(an.name, "robustness.md", o), rb.markdown)
            log.info("%s / %s: k = %d", an.name, o, rb.result.k)


# ----------------------------------------------------------------------------- figures


def _save(fig, layout: Layout, analysis: str, outcome: str, kind: str, formats) -> None:
    from . import figures

    stem = layout.of(analysis, kind, outcome)
    figures.save_figure(fig, stem, formats=tuple(formats))
    fig.clear()


def _inputs(an, o, modern, level, common_method):
    from .analysis import figure_inputs

    return figure_inputs(an, o, modern=modern, level=level, common_method=common_method)


def forest_plots(entries, layout, *, formats=("png", "svg", "pdf"), modern=None, level: float = 95,
                 common_method: str = "FE") -> None:
    """``forest.<format>`` of every outcome with data."""
    from . import figures

    entries, layout = _entries(entries), _layout(layout)
    for an, e in zip(_load(entries), entries):
        for o in e.outcomes:
            fi = _inputs(an, o, modern, level, common_method)
            fig = figures.forest_plot(fi.result, fi.frame, common=fi.common, flagged=fi.flagged,
                                      subgroups=fi.subgroups, title=fi.title, published=fi.published,
                                      favours=fi.favours, notes=[f"Not drawn: {why}" for why in fi.not_drawn])
            _save(fig, layout, an.name, o, "forest", formats)


def funnel_plots(entries, layout, *, formats=("png", "svg", "pdf"), modern=None, level: float = 95,
                 common_method: str = "FE") -> None:
    """``funnel.<format>`` of every outcome with data (a placeholder that says why
    below three trials)."""
    from . import figures

    entries, layout = _entries(entries), _layout(layout)
    for an, e in zip(_load(entries), entries):
        for o in e.outcomes:
            fi = _inputs(an, o, modern, level, common_method)
            k = fi.result.k
            fig = (figures.funnel_plot(fi.result, egger=fi.egger, title=fi.title) if k >= figures.FUNNEL_MIN_K
                   else figures.not_applicable_figure(f"k = {k}; a funnel plot needs at least "
                                                      f"{figures.FUNNEL_MIN_K} trials", fi.title))
            _save(fig, layout, an.name, o, "funnel", formats)


def diagnostic_plots(entries, layout, *, kinds=DIAGNOSTIC_FIGURES, modern=None, level: float = 95,
                     common_method: str = "FE", permutations: int = 1000, seed: int = 1234) -> None:
    """``sensitivity.png`` (leave-one-out and cumulative), ``influence.png``,
    ``baujat.png`` and ``bubble_<moderator>.png`` of every outcome with data, those of
    ``kinds`` only; each a placeholder that says why where it cannot be drawn."""
    from . import figures
    from .robustness import robustness as robustness_of

    entries, layout = _entries(entries), _layout(layout)
    modern = modern or {"method": "REML", "test": "adhoc"}
    for an, e in zip(_load(entries), entries):
        for o in e.outcomes:
            fi = _inputs(an, o, modern, level, common_method)
            rb = robustness_of(an, o, method=modern["method"], test=modern["test"], level=level,
                               permutations=permutations, seed=seed)
            for kind in ("sensitivity", "influence", "baujat"):
                if kind in kinds:
                    _save(_diagnostic_figure(kind, rb, fi.result.k, fi.title), layout, an.name, o, kind, ("png",))
            if "bubble" not in kinds:
                continue
            sections = {s["moderator"]: s for s in rb.report["meta_regression"]}
            for m in e.moderators:
                fit = rb.regressions.get(m)
                if fit is None:
                    why = "; ".join(sections.get(m, {}).get("not_computed", ["no fit"]))
                    fig = figures.not_applicable_figure(why, fi.title)
                else:
                    fig = figures.bubble_plot(fit["yi"], fit["vi"], fit["x"], fit["fit"], moderator=m,
                                              measure=rb.result.measure, labels=fit["study"], title=fi.title)
                _save(fig, layout, an.name, o, f"bubble_{m}", ("png",))


def _diagnostic_figure(kind: str, rb, k: int, title: str):
    """A sensitivity, influence or Baujat plot from a robustness report, or a
    placeholder that says why it cannot be drawn."""
    from . import figures

    if kind == "sensitivity":
        if rb.leave_one_out is None:
            return figures.not_applicable_figure(f"k = {k}; leave-one-out needs at least 2 trials", title)
        return figures.leave_one_out_plot(rb.result, rb.leave_one_out, rb.cumulative, title=title)
    if kind == "influence":
        if rb.influence is None:
            return figures.not_applicable_figure(f"k = {k}; influence diagnostics need at least 3 trials", title)
        return figures.influence_plot(rb.influence, title=title)
    if rb.baujat is None:
        return figures.not_applicable_figure(f"k = {k}; a Baujat plot needs at least 2 trials", title)
    return figures.baujat_plot(rb.baujat, title=title)


# ----------------------------------------------------------------------------- across analyses


def reproduction(tables, csv_path, md_path, *, tolerance: float = 0.10, modern=None) -> None:
    """``reproduction.csv`` and ``.md`` across analyses, from each analysis's table."""
    import pandas as pd

    from .reproduce import modern_label, reproduction_markdown
    from .scripting import write_csv, write_text

    modern = modern or {"method": "REML", "test": "adhoc"}
    parts = [pd.read_csv(p) for p in tables]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    write_csv(table, csv_path)
    words = modern_label((modern["method"], modern["test"]))
    write_text(md_path, reproduction_markdown(table, tolerance, modern=words))
