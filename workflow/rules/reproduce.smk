# Across analyses: every published target beside its re-pooled and modern estimates.
rule reproduction:
    input:
        tables=verdict_tables,
        engine=ENGINE_FINGERPRINT,
    output:
        csv=report(
            "results/reproduction.csv",
            caption=str(CAPTIONS / "reproduction.rst"),
            category="Reproduction",
        ),
        md="results/reproduction.md",
    params:
        tolerance=config["tolerance"],
        modern=config["modern"],
    log:
        "logs/reproduction.log",
    benchmark:
        "logs/benchmark/reproduction.tsv",
    conda:
        "../envs/metarepro.yaml"
    script:
        "../scripts/reproduction.py"


# The engine's sources (src/metarepro) fingerprinted in one file: every job depends on it, so an
# edited engine re-runs what it computes, and each job's provenance record checksums one file.
rule engine:
    input:
        sources=ENGINE,
    output:
        fingerprint=ENGINE_FINGERPRINT,
    log:
        "logs/engine.log",
    conda:
        "../envs/metarepro.yaml"
    script:
        "../scripts/engine.py"
