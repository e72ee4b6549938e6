rule forest:
    input:
        unpack(analysis_inputs),
    output:
        png=report(
            "results/{analysis}/{outcome}/forest.png",
            caption="../report/forest.rst",
            category="Forest plots",
            labels={"analysis": "{analysis}", "outcome": "{outcome}"},
        ),
        svg="results/{analysis}/{outcome}/forest.svg",
        pdf="results/{analysis}/{outcome}/forest.pdf",
    params:
        level=config["level"],
        modern=config["modern"],
        common_method=config["common_method"],
    conda:
        "../envs/metarepro.yaml"
    log:
        "logs/forest/{analysis}_{outcome}.log",
    script:
        "../scripts/forest.py"


rule funnel:
    input:
        unpack(analysis_inputs),
    output:
        png=report(
            "results/{analysis}/{outcome}/funnel.png",
            caption="../report/funnel.rst",
            category="Funnel plots",
            labels={"analysis": "{analysis}", "outcome": "{outcome}"},
        ),
        svg="results/{analysis}/{outcome}/funnel.svg",
        pdf="results/{analysis}/{outcome}/funnel.pdf",
    params:
        level=config["level"],
        modern=config["modern"],
    conda:
        "../envs/metarepro.yaml"
    log:
        "logs/funnel/{analysis}_{outcome}.log",
    script:
        "../scripts/funnel.py"
