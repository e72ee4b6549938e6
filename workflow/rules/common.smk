# Validation first, then the analyses and their outcomes, read once (cheaply: metarepro.plan
# needs only the standard library and PyYAML).
from pathlib import Path

from snakemake.utils import validate

import metarepro
from metarepro.plan import discover, moderators, outcomes_with_data


validate(config, schema="../schemas/config.schema.yaml")

EXTRACTED = Path(config["extracted_dir"])
ANALYSES = config["analyses"] or discover(EXTRACTED)
FIGURES = ("forest", "funnel")
# Diagnostic figures, PNG only (one per outcome; bubble plots one per moderator).
DIAGNOSTIC_FIGURES = ("sensitivity", "influence", "baujat")
CAPTIONS = Path(workflow.basedir) / "workflow" / "report"
FORMATS = ("png", "svg", "pdf")


def engine_sources():
    """The engine's source files (src/metarepro): every job depends on them, so that
    editing the engine re-runs what it computes instead of leaving stale results."""
    local = Path(workflow.basedir) / "src" / "metarepro"
    root = local if local.is_dir() else Path(metarepro.__file__).parent
    files = sorted(p for p in root.rglob("*") if p.suffix in (".py", ".json") and "__pycache__" not in p.parts)
    base = Path(workflow.basedir)
    # relative to the repository when run from it (paths in the job records stay machine-independent);
    # absolute when snakemake runs elsewhere (-d/--directory), where relative paths would not exist
    here = Path.cwd().resolve() == base.resolve()
    return [str(p.relative_to(base)) if here and p.is_relative_to(base) else str(p) for p in files]


ENGINE = engine_sources()


def analysis_inputs(analysis):
    """The YAML, the CSV when per-trial data exist, and the engine's sources."""
    files = {"spec": str(EXTRACTED / f"{analysis}.yaml"), "engine": ENGINE}
    csv = EXTRACTED / f"{analysis}.csv"
    if csv.exists():
        files["table"] = str(csv)
    return files


def outcomes(analysis):
    return outcomes_with_data(EXTRACTED / f"{analysis}.csv", EXTRACTED / f"{analysis}.yaml")


def analysis_moderators(analysis):
    return moderators(EXTRACTED / f"{analysis}.yaml")


def _figure(analysis, outcome, kind, ext, caption=None):
    path = f"results/{analysis}/{outcome}/{kind}.{ext}"
    if ext != "png":
        return path
    caption = caption or kind
    return report(
        path,
        caption=str(CAPTIONS / f"{caption}.rst"),
        category=f"{caption.capitalize()} plots",
        labels={"analysis": analysis, "outcome": outcome, "figure": kind},
    )


def analysis_outputs(analysis):
    """Named outputs of one analysis: key '<outcome>__<file>' for per-outcome files."""
    out = {
        "pooled": f"results/{analysis}/pooled.csv",
        "reproduction": f"results/{analysis}/reproduction.csv",
        "forensics": f"results/{analysis}/forensics.csv",
    }
    for o in outcomes(analysis):
        out[f"{o}__heterogeneity_json"] = f"results/{analysis}/{o}/heterogeneity.json"
        out[f"{o}__heterogeneity_md"] = report(
            f"results/{analysis}/{o}/heterogeneity.md",
            caption=str(CAPTIONS / "heterogeneity.rst"),
            category="Heterogeneity",
            labels={"analysis": analysis, "outcome": o},
        )
        for kind in FIGURES:
            for ext in FORMATS:
                out[f"{o}__{kind}_{ext}"] = _figure(analysis, o, kind, ext)
        out[f"{o}__robustness_json"] = f"results/{analysis}/{o}/robustness.json"
        out[f"{o}__robustness_md"] = report(
            f"results/{analysis}/{o}/robustness.md",
            caption=str(CAPTIONS / "robustness.rst"),
            category="Robustness",
            labels={"analysis": analysis, "outcome": o},
        )
        for kind in DIAGNOSTIC_FIGURES:
            out[f"{o}__{kind}_png"] = _figure(analysis, o, kind, "png")
        for m in analysis_moderators(analysis):
            out[f"{o}__bubble_{m}_png"] = _figure(analysis, o, f"bubble_{m}", "png", caption="bubble")
    return out


def all_outputs():
    files = ["results/reproduction.csv", "results/reproduction.md", "results/index.html"]
    for a in ANALYSES:
        files += list(analysis_outputs(a).values())
    return files


def per_analysis_reproduction(wildcards):
    return [f"results/{a}/reproduction.csv" for a in ANALYSES]


def site_inputs(wildcards):
    """Everything the pages show (the analyses' files and outputs), the engine and the templates."""
    package = Path(next(p for p in ENGINE if p.endswith("__init__.py"))).parent
    files = ["results/reproduction.csv", "results/reproduction.md", *ENGINE]
    files += sorted(str(p) for p in (package / "templates").glob("*.html.j2"))
    for a in ANALYSES:
        data = analysis_inputs(a)
        files += [data["spec"], *([data["table"]] if "table" in data else [])]
        files += [str(f) for f in analysis_outputs(a).values()]
    return files
