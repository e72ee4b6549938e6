# Figures, one rule per kind and batch: each job draws its kind for every outcome of its
# batch in one process. Which kinds and formats: config.yaml (figures). (A rule's script path
# is read when the job runs, so it names no loop variable.)
for _batch in BATCHES:
    if "forest" in FIGURES:

        rule:
            name:
                f"forest_plot_{_batch}"
            input:
                plan=batch_plan(_batch),
                engine=ENGINE_FINGERPRINT,
            output:
                figures=figure_results(_batch, "forest"),
            params:
                layout=LAYOUT,
                formats=FIGURES["forest"],
                modern=config["modern"],
                level=config["level"],
                common_method=config["common_method"],
            log:
                f"logs/forest_plot/{_batch}.log",
            benchmark:
                f"logs/benchmark/forest_plot/{_batch}.tsv",
            group:
                "batch"
            conda:
                "../envs/metarepro.yaml"
            script:
                "../scripts/forest_plot.py"

    if "funnel" in FIGURES:

        rule:
            name:
                f"funnel_plot_{_batch}"
            input:
                plan=batch_plan(_batch),
                engine=ENGINE_FINGERPRINT,
            output:
                figures=figure_results(_batch, "funnel"),
            params:
                layout=LAYOUT,
                formats=FIGURES["funnel"],
                modern=config["modern"],
                level=config["level"],
                common_method=config["common_method"],
            log:
                f"logs/funnel_plot/{_batch}.log",
            benchmark:
                f"logs/benchmark/funnel_plot/{_batch}.tsv",
            group:
                "batch"
            conda:
                "../envs/metarepro.yaml"
            script:
                "../scripts/funnel_plot.py"

    if DIAGNOSTIC_FIGURES:

        rule:
            name:
                f"diagnostic_plots_{_batch}"
            input:
                plan=batch_plan(_batch),
                engine=ENGINE_FINGERPRINT,
            output:
                figures=figure_results(_batch, *DIAGNOSTIC_FIGURES),
            params:
                layout=LAYOUT,
                kinds=DIAGNOSTIC_FIGURES,
                modern=config["modern"],
                level=config["level"],
                common_method=config["common_method"],
                permutations=config["permutations"],
                seed=config["seed"],
            log:
                f"logs/diagnostic_plots/{_batch}.log",
            benchmark:
                f"logs/benchmark/diagnostic_plots/{_batch}.tsv",
            group:
                "batch"
            conda:
                "../envs/metarepro.yaml"
            script:
                "../scripts/diagnostic_plots.py"
