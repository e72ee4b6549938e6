# Planning: validate the config, find the analyses and their outcomes (metarepro.plan: standard
# library and PyYAML only), check every analysis (cached, so a no-op re-run checks nothing), and
# put the sound ones in batches. Every step rule runs once per batch; the functions below give
# each rule its inputs, outputs and params.
import re
from pathlib import Path

from snakemake.utils import validate

import metarepro
from metarepro.plan import batches, checked, discover, moderators, outcomes_with_data


validate(config, schema="../schemas/config.schema.yaml")

EXTRACTED = Path(config["extracted_dir"])
ANALYSES = config["analyses"] or discover(EXTRACTED)
CAPTIONS = Path(workflow.basedir) / "workflow" / "report"
# Where a step writes: metarepro.steps.Layout, shared with the scripts through params.
LAYOUT = {"analysis": "results/{analysis}/{file}", "outcome": "results/{analysis}/{outcome}/{file}"}
# Figures drawn and their formats (config.yaml); a figure with no format is not drawn.
FIGURES = {kind: list(formats) for kind, formats in config["figures"].items() if formats}
DIAGNOSTIC_FIGURES = [k for k in ("sensitivity", "influence", "baujat", "bubble") if k in FIGURES]


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
ENGINE_FINGERPRINT = "batches/engine.sha256"


def analysis_files(analysis):
    """The YAML and, when per-trial data exist, the CSV of an analysis."""
    csv = EXTRACTED / f"{analysis}.csv"
    return str(EXTRACTED / f"{analysis}.yaml"), (str(csv) if csv.exists() else None)


def _check(yaml, csv):
    from metarepro.steps import check

    return check(yaml, csv)


def _engine_stamp():
    return ";".join(f"{p}:{Path(p).stat().st_size}:{Path(p).stat().st_mtime_ns}" for p in ENGINE)


# A malformed analysis is kept out of the batches: it fails its own job (rule invalid), alone.
PROBLEMS = checked({a: analysis_files(a) for a in ANALYSES}, Path(".snakemake") / "metarepro" / "checks.json",
                   _engine_stamp(), _check)
SOUND = [a for a in ANALYSES if PROBLEMS[a] is None]
MALFORMED = [a for a in ANALYSES if PROBLEMS[a] is not None]
BATCHES = batches(SOUND, config["batch_size"])


def outcomes(analysis):
    return outcomes_with_data(EXTRACTED / f"{analysis}.csv", EXTRACTED / f"{analysis}.yaml")


def analysis_moderators(analysis):
    return moderators(EXTRACTED / f"{analysis}.yaml")


def batch_files(batch):
    """The YAML and CSV files of a batch's analyses."""
    return [f for a in BATCHES[batch] for f in analysis_files(a) if f]


def batch_plan(batch):
    """The plan of a batch (metarepro.steps.plan_batch), read by every step of the batch."""
    return f"batches/{batch}.json"


def batch_forensics(batch):
    """The forensics of a batch in one table, read by its verdicts step."""
    return f"batches/{batch}.forensics.csv"


def result(analysis, file, outcome=None):
    if outcome is None:
        return LAYOUT["analysis"].format(analysis=analysis, file=file)
    return LAYOUT["outcome"].format(analysis=analysis, outcome=outcome, file=file)


def _reported(path, caption, category, **labels):
    return report(path, caption=str(CAPTIONS / f"{caption}.rst"), category=category, labels=labels)


def analysis_results(batch, file):
    """One file per analysis of a batch (pooled.csv, forensics.csv, reproduction.csv)."""
    return [result(a, file) for a in BATCHES[batch]]


def outcome_results(batch, *files):
    """Files per outcome with data of a batch's analyses (heterogeneity, robustness)."""
    out = []
    for a in BATCHES[batch]:
        for o in outcomes(a):
            for f in files:
                path = result(a, f, o)
                if f.endswith(".md"):
                    kind = f.split(".")[0]
                    path = _reported(path, kind, kind.capitalize(), analysis=a, outcome=o)
                out.append(path)
    return out


def figure_results(batch, *kinds):
    """Figure files per outcome with data of a batch's analyses: every configured format of
    each of ``kinds`` (bubble: one per moderator); PNGs are marked for the report."""
    out = []
    for a in BATCHES[batch]:
        for o in outcomes(a):
            for kind in kinds:
                names = [f"bubble_{m}" for m in analysis_moderators(a)] if kind == "bubble" else [kind]
                for name in names:
                    for ext in FIGURES[kind]:
                        path = result(a, f"{name}.{ext}", o)
                        if ext == "png":
                            path = _reported(path, kind, f"{kind.capitalize()} plots", analysis=a, outcome=o,
                                             figure=name)
                        out.append(path)
    return out


def verdict_tables(wildcards):
    """Every analysis's reproduction.csv, for the table across analyses."""
    return [result(a, "reproduction.csv") for a in ANALYSES]


def malformed_inputs(wildcards):
    return [f for f in analysis_files(wildcards.analysis) if f]


# Names a malformed analysis can take (none: a pattern that matches nothing).
MALFORMED_PATTERN = "|".join(re.escape(a) for a in MALFORMED) or "(?!)"


def site_inputs(wildcards):
    """Everything the pages show (the analyses' files and outputs), the engine and the templates."""
    package = Path(next(p for p in ENGINE if p.endswith("__init__.py"))).parent
    files = [ENGINE_FINGERPRINT, *sorted(str(p) for p in (package / "templates").glob("*.html.j2"))]
    for a in SOUND:
        files += [f for f in analysis_files(a) if f]
    return files + [str(f) for f in all_outputs(site=False)]


def all_outputs(site=None):
    """Every file of the run; the reviewer's pages (results/index.html) unless config says no."""
    site = config["site"] if site is None else site
    files = ["results/reproduction.csv", "results/reproduction.md"] + (["results/index.html"] if site else [])
    for b in BATCHES:
        files += analysis_results(b, "pooled.csv") + analysis_results(b, "forensics.csv")
        files += analysis_results(b, "reproduction.csv")
        files += outcome_results(b, "heterogeneity.json", "heterogeneity.md", "robustness.json", "robustness.md")
        files += figure_results(b, *[k for k in ("forest", "funnel") if k in FIGURES], *DIAGNOSTIC_FIGURES)
    files += [result(a, "reproduction.csv") for a in MALFORMED]
    return files
