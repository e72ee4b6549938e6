# One job per analysis: pooling with every method, heterogeneity reports, forest and
# funnel plots for each outcome, and the verdicts on its published targets. One job
# (not one per file) keeps the statistics stack loaded once per analysis; editing an
# analysis's CSV or YAML re-runs only that analysis.
for _analysis in ANALYSES:

    rule:
        name:
            f"analyse_{_analysis}"
        input:
            **analysis_inputs(_analysis),
        output:
            **analysis_outputs(_analysis),
        params:
            outcomes=outcomes(_analysis),
            moderators=analysis_moderators(_analysis),
            tests=config["tests"],
            level=config["level"],
            modern=config["modern"],
            common_method=config["common_method"],
            tolerance=config["tolerance"],
            permutations=config["permutations"],
            seed=config["seed"],
        log:
            f"logs/analyse/{_analysis}.log",
        # Under a cluster profile, the jobs of group "analysis" travel in bundles
        # (workflow/profiles/slurm: group-components analysis=N); a local run ignores groups.
        group:
            "analysis"
        conda:
            "../envs/metarepro.yaml"
        script:
            "../scripts/analyse.py"
