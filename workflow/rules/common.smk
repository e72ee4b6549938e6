# Validation first, then the list of analyses and outcomes, read once.
from pathlib import Path

from snakemake.utils import validate

from metarepro.extracted import discover, outcomes_with_data


validate(config, schema="../schemas/config.schema.yaml")

EXTRACTED = Path(config["extracted_dir"])
ANALYSES = config["analyses"] or discover(EXTRACTED)


wildcard_constraints:
    analysis="[a-z0-9][a-z0-9_]*",
    outcome="[A-Za-z0-9][A-Za-z0-9_]*",


def analysis_inputs(wildcards):
    """The YAML, and the CSV when per-trial data exist."""
    files = {"spec": EXTRACTED / f"{wildcards.analysis}.yaml"}
    csv = EXTRACTED / f"{wildcards.analysis}.csv"
    if csv.exists():
        files["table"] = csv
    return files


def outcomes(analysis):
    return outcomes_with_data(EXTRACTED / f"{analysis}.csv", EXTRACTED / f"{analysis}.yaml")


def figure_files(analysis, outcome):
    return [
        f"results/{analysis}/{outcome}/{kind}.{ext}"
        for kind in ("forest", "funnel")
        for ext in ("png", "svg", "pdf")
    ]


def all_outputs():
    files = ["results/reproduction.csv", "results/reproduction.md"]
    for a in ANALYSES:
        files.append(f"results/{a}/pooled.csv")
        for o in outcomes(a):
            files += [
                f"results/{a}/{o}/heterogeneity.md",
                f"results/{a}/{o}/heterogeneity.json",
            ]
            files += figure_files(a, o)
    return files


def per_analysis_reproduction(wildcards):
    return [f"results/{a}/reproduction.csv" for a in ANALYSES]
