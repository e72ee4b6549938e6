# Across analyses: every published target beside its re-pooled and modern estimates.
rule reproduction:
    input:
        tables=verdict_tables,
        engine=ENGINE,
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
