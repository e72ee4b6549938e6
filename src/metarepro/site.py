"""The reviewer's pages: ``results/index.html`` (every published claim beside its
reproduction) and one page per analysis (``results/<analysis>/index.html``).

Static HTML opened from the folder, no server: the index's filters are a few
lines of inline JavaScript, and each analysis page carries its forest and funnel
plots inline (PNG data URIs), so that it reads the same inside
``snakemake --report``; other files (SVG/PDF figures, diagnostic plots, the
Markdown reports) are linked by relative paths.

The pages are rendered from Jinja2 templates (``metarepro/templates/*.html.j2``)
with autoescaping on: every text read from a data file (titles, claims, study
labels, quotes, reasons) is escaped. The Markdown reports are rendered by
markdown-it-py with raw HTML disabled (its ``js-default`` preset), so their text
is escaped too, and links are limited to http(s) and relative ones. Nothing here
computes statistics: the module reads what the pipeline wrote and the evidence
files (:mod:`metarepro.spec`) and lays them out. Output is deterministic (no
dates, stable order).
"""

from __future__ import annotations

import base64
import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, PackageLoader

from .formatting import format_p, p_equals
from .reproduce import VERDICTS, modern_label, reason_summary
from .spec import check_spec

__all__ = ["analysis_page", "index_page", "write_site"]

#: Per-trial data columns shown as printed, in this order (the engine's column families).
DATA_COLUMNS = ("events_t", "total_t", "events_c", "total_c", "mean_t", "sd_t", "mean_c", "sd_c", "r", "total",
                "estimate", "ci_lower", "ci_upper", "yi", "vi", "sei")
#: Diagnostic plots per outcome (PNG), as the pipeline names them, and what they show.
DIAGNOSTICS = (("sensitivity", "Leave-one-out and cumulative meta-analysis"), ("influence", "Influence measures"),
               ("baujat", "Baujat plot"))
#: Rows of the method-forensics table shown before the rest is folded away.
FORENSICS_SHOWN = 8


# ----------------------------------------------------------------------------- small helpers


def _env() -> Environment:
    env = Environment(loader=PackageLoader("metarepro", "templates"), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(num=_num, p=format_p)
    env.globals.update(source_href=source_href, safe_url=safe_url, printed=printed)
    return env


def _num(x, d: int = 2) -> str:
    """A number for a table cell ('' for missing)."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return ""
    return f"{x:.{d}f}" if math.isfinite(x) else ""


def _float(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def printed(target: dict) -> str:
    """A YAML target's estimate and CI at its printed precision ('0.70 (0.56 to 0.87)')."""
    from .reproduce import decimals_of

    d = decimals_of(target)
    est = _num(target.get("estimate"), d)
    if target.get("ci_lower") is None or target.get("ci_upper") is None:
        return est
    return f"{est} ({_num(target['ci_lower'], d)} to {_num(target['ci_upper'], d)})"


def source_href(source) -> str | None:
    """A link for a source as the YAML and CSV write it: a DOI, ``PMID:n`` or ``PMCn``."""
    s = str(source or "").strip()
    if s.startswith("10."):
        return "https://doi.org/" + quote(s, safe="/:;()._-")
    if s.upper().startswith("PMID:"):
        n = s.split(":", 1)[1].strip()
        return f"https://pubmed.ncbi.nlm.nih.gov/{n}/" if n.isdigit() else None
    if s.upper().startswith("PMC") and s[3:].isdigit():
        return f"https://pmc.ncbi.nlm.nih.gov/articles/{s.upper()}/"
    return None


def safe_url(url) -> str | None:
    """The URL if it is http(s), else None (a data file cannot put ``javascript:`` in a link)."""
    u = str(url or "").strip()
    return u if u.lower().startswith(("http://", "https://")) else None


def _markdown(text: str) -> str:
    """Markdown report as HTML, raw HTML escaped (markdown-it-py, CommonMark with tables)."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("js-default")  # html=False: '<script>' in a label is printed, not run
    return md.render(text)


def _data_uri(path: Path) -> str | None:
    if not path.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


# ----------------------------------------------------------------------------- what a page shows


@dataclass
class Target:
    """One row of reproduction.csv, ready to print."""

    row: dict
    summary: str
    page: str  # link to the analysis page, relative to the page showing the row
    as_printed: str | None = None  # the published numbers at their printed precision (from the YAML)

    def __getattr__(self, name):  # the CSV's columns as attributes (t.verdict, t.reason, ...)
        if name.startswith("__") or name == "row":
            raise AttributeError(name)
        try:
            return self.row[name]
        except KeyError:
            raise AttributeError(name) from None

    def interval(self, prefix: str) -> str:
        if prefix == "published" and self.as_printed is not None:
            return self.as_printed
        est = _float(self.row.get(f"{prefix}_estimate"))
        if est is None:
            return ""
        lo, hi = _float(self.row.get(f"{prefix}_ci_lower")), _float(self.row.get(f"{prefix}_ci_upper"))
        ci = f" ({_num(lo)} to {_num(hi)})" if lo is not None and hi is not None else ""
        return f"{_num(est)}{ci}"

    @property
    def prediction(self) -> str:
        lo, hi = _float(self.row.get("modern_pi_lower")), _float(self.row.get("modern_pi_upper"))
        return f"[{_num(lo)} to {_num(hi)}]" if lo is not None and hi is not None else ""

    @property
    def k(self) -> str:
        kp = _float(self.row.get("k_published"))
        return f"{int(float(self.row.get('k_used') or 0))} / {int(kp) if kp is not None else '?'}"


@dataclass
class Outcome:
    name: str
    description: str
    forest: str | None = None  # data URI
    funnel: str | None = None
    files: list = field(default_factory=list)  # (label, relative path)
    diagnostics: list = field(default_factory=list)  # (title, relative path)
    heterogeneity: str | None = None  # HTML
    heterogeneity_summary: str = ""
    robustness: str | None = None
    targets: list = field(default_factory=list)


def _targets(rows: list[dict], page_of, specs: dict) -> list[Target]:
    """Rows of reproduction.csv with their one-sentence reason and, where the analysis's YAML is
    given (``specs``: name -> spec), the published numbers as printed."""
    printed_of = {(a, t["outcome"], t["label"]): printed(t) for a, spec in specs.items() for t in spec["targets"]}
    return [Target(r, reason_summary(r.get("verdict", ""), r.get("reason", "")), page_of(r["analysis"]),
                   printed_of.get((r["analysis"], r["outcome"], r["target"])))
            for r in rows]


def _heterogeneity_summary(report: dict) -> str:
    parts = [f"k = {report.get('k')}"]
    if report.get("k", 0) and report["k"] > 1:
        i2, tau2 = _float(report.get("i2")), _float(report.get("tau2"))
        if i2 is not None:
            parts.append(f"I\u00b2 = {i2:.0f}%")
        if tau2 is not None:
            parts.append(f"\u03c4\u00b2 = {tau2:.4f}")
        if report.get("q") is not None:
            parts.append(f"Q = {_num(report.get('q'))} (df = {report.get('q_df')}, {p_equals(report.get('q_pvalue'))})")
    return "; ".join(parts)


def _outcome(results: Path, analysis: str, spec_outcome: dict, targets: list[Target]) -> Outcome:
    name = spec_outcome["name"]
    d = results / analysis / name
    o = Outcome(name=name, description=spec_outcome.get("description") or "", targets=targets)
    if not d.is_dir():
        return o
    o.forest, o.funnel = _data_uri(d / "forest.png"), _data_uri(d / "funnel.png")
    for kind in ("forest", "funnel"):
        for ext in ("svg", "pdf", "png"):
            if (d / f"{kind}.{ext}").is_file():
                o.files.append((f"{kind} plot ({ext.upper()})", f"{name}/{kind}.{ext}"))
    for kind, title in DIAGNOSTICS:
        if (d / f"{kind}.png").is_file():
            o.diagnostics.append((title, f"{name}/{kind}.png"))
    for p in sorted(d.glob("bubble_*.png")):
        o.diagnostics.append((f"Meta-regression on {p.stem[len('bubble_'):]}", f"{name}/{p.name}"))
    if (d / "heterogeneity.md").is_file():
        o.heterogeneity = _markdown((d / "heterogeneity.md").read_text(encoding="utf-8"))
        o.files.append(("heterogeneity report (Markdown)", f"{name}/heterogeneity.md"))
    if (d / "heterogeneity.json").is_file():
        o.heterogeneity_summary = _heterogeneity_summary(json.loads((d / "heterogeneity.json").read_text()))
        o.files.append(("heterogeneity report (JSON)", f"{name}/heterogeneity.json"))
    if (d / "robustness.md").is_file():
        o.robustness = _markdown((d / "robustness.md").read_text(encoding="utf-8"))
        o.files.append(("robustness report (Markdown)", f"{name}/robustness.md"))
    if (d / "robustness.json").is_file():
        o.files.append(("robustness report (JSON)", f"{name}/robustness.json"))
    return o


def _forensics(rows: list[dict]) -> list[dict]:
    """Forensics rows grouped by target (file order: best match first within a target)."""
    blocks: dict[tuple, list] = {}
    for r in rows:
        blocks.setdefault((r["outcome"], r["target"]), []).append(r)
    return [{"outcome": o, "target": t, "rows": rs} for (o, t), rs in blocks.items()]


def _trial_rows(csv_path: Path, subgroup: str | None) -> tuple[list[str], list[dict]]:
    rows = _read_csv(csv_path)
    if not rows:
        return [], []
    data = [c for c in DATA_COLUMNS if c in rows[0]]
    extra = [c for c in ("comparison", subgroup) if c and c in rows[0]]
    return data + extra, rows


# ----------------------------------------------------------------------------- pages


def index_page(table: list[dict], analyses: list[dict], modern=("REML", "adhoc"), specs: dict | None = None) -> str:
    """``results/index.html``: every target of reproduction.csv, in its order.

    Parameters
    ----------
    table : list of dict
        The rows of ``results/reproduction.csv`` (as text).
    analyses : list of dict
        ``name``, ``title`` and ``claim`` of every analysis (in the order shown; the filter's
        choices). Rows of analyses not listed are not shown.
    modern : (str, str)
        Method and test of the modern re-analysis (config.yaml ``modern``).
    specs : dict, optional
        The analyses' YAMLs by name: published numbers are then shown at their printed precision.
    """
    targets = _targets(table, lambda a: f"{a}/index.html", specs or {})
    counts = {v: sum(t.verdict == v for t in targets) for v in VERDICTS}
    return _env().get_template("index.html.j2").render(
        targets=targets, analyses=analyses, verdicts=VERDICTS, counts=counts, modern=modern_label(modern))


def analysis_page(results: Path, extracted: Path, analysis: str, table: list[dict], modern=("REML", "adhoc")) -> str:
    """``results/<analysis>/index.html``: the analysis's targets with the whole reasons, per
    outcome the forest and funnel plots, the heterogeneity and robustness reports and the
    diagnostic plots, the method forensics, missing trials, integrity flags and the
    provenance of every number (targets and per-trial rows)."""
    results, extracted = Path(results), Path(extracted)
    spec = check_spec(extracted / f"{analysis}.yaml")
    rows = [r for r in table if r["analysis"] == analysis]
    targets = _targets(rows, lambda a: "index.html", {analysis: spec})
    outcomes = [_outcome(results, analysis, o, [t for t in targets if t.outcome == o["name"]])
                for o in spec["outcomes"]]
    columns, trial_rows = _trial_rows(extracted / f"{analysis}.csv", spec.get("subgroup"))
    missing = [t for t in spec.get("trials") or [] if t.get("status") == "missing"]
    spec_targets = {(t["outcome"], t["label"]): t for t in spec["targets"]}
    return _env().get_template("analysis.html.j2").render(
        spec=spec, analysis=analysis, targets=targets, outcomes=outcomes,
        forensics=_forensics(_read_csv(results / analysis / "forensics.csv")), forensics_shown=FORENSICS_SHOWN,
        missing=missing, flags=spec.get("integrity_flags") or [], risk=spec.get("risk_of_bias") or [],
        spec_targets=spec_targets, columns=columns, trial_rows=trial_rows, modern=modern_label(modern),
        has_csv=(extracted / f"{analysis}.csv").is_file())


def write_site(results: str | Path, extracted: str | Path, analyses: list[str], modern=("REML", "adhoc"),
               index: str | Path | None = None) -> list[Path]:
    """Write ``index.html`` and ``<analysis>/index.html`` for every analysis under ``results``.

    Returns
    -------
    list of Path
        The pages written (index first).
    """
    from .scripting import write_text

    results, extracted = Path(results), Path(extracted)
    table = _read_csv(results / "reproduction.csv")
    specs = {a: check_spec(extracted / f"{a}.yaml") for a in analyses}
    names = [{"name": a, "title": specs[a]["title"], "claim": specs[a]["claim"]} for a in analyses]
    out = [Path(index) if index else results / "index.html"]
    write_text(out[0], index_page(table, names, modern, specs))
    for a in analyses:
        page = results / a / "index.html"
        write_text(page, analysis_page(results, extracted, a, table, modern))
        out.append(page)
    return out
