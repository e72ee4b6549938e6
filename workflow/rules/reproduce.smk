rule reproduction:
    input:
        tables=per_analysis_reproduction,
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
    conda:
        "../envs/metarepro.yaml"
    log:
        "logs/reproduction.log",
    script:
        "../scripts/reproduction.py"
