# The statistics, one rule per step and batch (common.smk: BATCHES). Each job fits the models
# of all analyses of its batch together (metarepro.batch) and writes one set of files per
# analysis or outcome. A job's outputs are those of its batch's analyses: Snakemake needs them
# listed, so each batch gets its own instance of every step (named <step>_<batch>).
for _batch in BATCHES:

    # The batch's plan (analyses, files, outcomes, moderators): the one input through which
    # every step of the batch depends on the batch's files.
    rule:
        name:
            f"plan_{_batch}"
        input:
            analyses=batch_files(_batch),
        output:
            plan=batch_plan(_batch),
        log:
            f"logs/plan/{_batch}.log",
        group:
            "batch"
        conda:
            "../envs/metarepro.yaml"
        script:
            "../scripts/plan.py"

    rule:
        name:
            f"pool_{_batch}"
        input:
            plan=batch_plan(_batch),
            engine=ENGINE_FINGERPRINT,
        output:
            pooled=analysis_results(_batch, "pooled.csv"),
        params:
            layout=LAYOUT,
            tests=config["tests"],
            level=config["level"],
        log:
            f"logs/pool/{_batch}.log",
        benchmark:
            f"logs/benchmark/pool/{_batch}.tsv",
        group:
            "batch"
        conda:
            "../envs/metarepro.yaml"
        script:
            "../scripts/pool.py"

    rule:
        name:
            f"heterogeneity_{_batch}"
        input:
            plan=batch_plan(_batch),
            engine=ENGINE_FINGERPRINT,
        output:
            reports=outcome_results(_batch, "heterogeneity.json", "heterogeneity.md"),
        params:
            layout=LAYOUT,
            modern=config["modern"],
            level=config["level"],
        log:
            f"logs/heterogeneity/{_batch}.log",
        benchmark:
            f"logs/benchmark/heterogeneity/{_batch}.tsv",
        group:
            "batch"
        conda:
            "../envs/metarepro.yaml"
        script:
            "../scripts/heterogeneity.py"

    rule:
        name:
            f"robustness_{_batch}"
        input:
            plan=batch_plan(_batch),
            engine=ENGINE_FINGERPRINT,
        output:
            reports=outcome_results(_batch, "robustness.json", "robustness.md"),
        params:
            layout=LAYOUT,
            modern=config["modern"],
            level=config["level"],
            permutations=config["permutations"],
            seed=config["seed"],
        log:
            f"logs/robustness/{_batch}.log",
        benchmark:
            f"logs/benchmark/robustness/{_batch}.tsv",
        group:
            "batch"
        conda:
            "../envs/metarepro.yaml"
        script:
            "../scripts/robustness.py"

    rule:
        name:
            f"forensics_{_batch}"
        input:
            plan=batch_plan(_batch),
            engine=ENGINE_FINGERPRINT,
        output:
            tables=analysis_results(_batch, "forensics.csv"),
            batch=batch_forensics(_batch),
        params:
            layout=LAYOUT,
            level=config["level"],
        log:
            f"logs/forensics/{_batch}.log",
        benchmark:
            f"logs/benchmark/forensics/{_batch}.tsv",
        group:
            "batch"
        conda:
            "../envs/metarepro.yaml"
        script:
            "../scripts/forensics.py"

    rule:
        name:
            f"verdicts_{_batch}"
        input:
            plan=batch_plan(_batch),
            engine=ENGINE_FINGERPRINT,
            forensics=batch_forensics(_batch),
        output:
            tables=analysis_results(_batch, "reproduction.csv"),
        params:
            layout=LAYOUT,
            tolerance=config["tolerance"],
            modern=config["modern"],
            level=config["level"],
        log:
            f"logs/verdicts/{_batch}.log",
        benchmark:
            f"logs/benchmark/verdicts/{_batch}.tsv",
        group:
            "batch"
        conda:
            "../envs/metarepro.yaml"
        script:
            "../scripts/verdicts.py"


# A malformed analysis (found by planning's check) fails here, alone, with its one-line message.
rule invalid:
    input:
        malformed_inputs,
    output:
        "results/{analysis}/reproduction.csv",
    log:
        "logs/check/{analysis}.log",
    wildcard_constraints:
        analysis=MALFORMED_PATTERN,
    conda:
        "../envs/metarepro.yaml"
    script:
        "../scripts/check.py"
