# metarepro: `snakemake --cores 4` regenerates every pooled estimate, forest plot,
# heterogeneity report and reproduction verdict from data/extracted/.
from snakemake.utils import min_version

min_version("8.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/analyse.smk"
include: "workflow/rules/reproduce.smk"
include: "workflow/rules/site.smk"


rule all:
    input:
        all_outputs(),
