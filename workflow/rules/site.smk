# The reviewer's pages: results/index.html (every published claim beside its reproduction) and one
# page per analysis, read from everything the other rules wrote (metarepro.site).


rule site:
    input:
        site_inputs,
    output:
        index=report(
            "results/index.html",
            caption=str(CAPTIONS / "site.rst"),
            category="Reviewer pages",
            labels={"page": "all claims"},
        ),
        pages=[
            report(
                f"results/{a}/index.html",
                caption=str(CAPTIONS / "site.rst"),
                category="Reviewer pages",
                labels={"page": a},
            )
            for a in ANALYSES
        ],
    params:
        extracted=config["extracted_dir"],
        analyses=ANALYSES,
        modern=config["modern"],
    log:
        "logs/site.log",
    conda:
        "../envs/metarepro.yaml"
    script:
        "../scripts/site.py"
