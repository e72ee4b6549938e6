rule reproduction:
    input:
        per_analysis_reproduction,
    output:
        csv=report(
            "results/reproduction.csv",
            caption=str(CAPTIONS / "reproduction.rst"),
            category="Reproduction",
        ),
        md="results/reproduction.md",
    params:
        tolerance=config["tolerance"],
    conda:
        "../envs/metarepro.yaml"
    log:
        "logs/reproduction.log",
    script:
        "../scripts/reproduction.py"
