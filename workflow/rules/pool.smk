rule pool:
    input:
        unpack(analysis_inputs),
    output:
        pooled="results/{analysis}/pooled.csv",
        reproduction="results/{analysis}/reproduction.csv",
    params:
        tests=config["tests"],
        level=config["level"],
        modern=config["modern"],
        tolerance=config["tolerance"],
    conda:
        "../envs/metarepro.yaml"
    log:
        "logs/pool/{analysis}.log",
    script:
        "../scripts/pool.py"


rule heterogeneity:
    input:
        unpack(analysis_inputs),
    output:
        json="results/{analysis}/{outcome}/heterogeneity.json",
        md=report(
            "results/{analysis}/{outcome}/heterogeneity.md",
            caption="../report/heterogeneity.rst",
            category="Heterogeneity",
            labels={"analysis": "{analysis}", "outcome": "{outcome}"},
        ),
    params:
        level=config["level"],
        modern=config["modern"],
    conda:
        "../envs/metarepro.yaml"
    log:
        "logs/heterogeneity/{analysis}_{outcome}.log",
    script:
        "../scripts/heterogeneity.py"
