# metarepro: `snakemake --cores 4` regenerates every pooled estimate, forest plot,
# heterogeneity report and reproduction verdict from data/extracted/, one rule per step,
# each run for batches of analyses (workflow/rules/common.smk).
from snakemake.utils import min_version

min_version("8.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/statistics.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/reproduce.smk"
include: "workflow/rules/site.smk"


rule all:
    input:
        all_outputs(),
