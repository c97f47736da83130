# DPBERT reproduction workflow. Default: the embedded demo profile (workflow/config/config.yaml).
#   snakemake --cores 1 results/table1.csv
#   snakemake --cores 1 results/table1.csv --configfile workflow/config/paper.yaml
from snakemake.utils import min_version

min_version("9.0")


configfile: "workflow/config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        "results/table1.csv",
