# DPBERT reproduction workflow. Default: the embedded demo profile (workflow/config/config.yaml).
#   snakemake --cores 1 results/table1.csv
#   snakemake --cores 1 results/table1.csv --configfile workflow/config/paper.yaml
import os

from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless the user names a profile with --configfile: profiles are complete
# configs, never merged into the demo's (a paper run must not inherit demo learning rates).
if not workflow.config_settings.configfiles:

    configfile: os.path.join(workflow.basedir, "workflow", "config", "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/methods.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/submission.smk"


rule all:
    default_target: True
    input:
        "results/table1.csv",
        "results/table2.csv",
        "results/table3.csv",
        "figures/figure3.png",
        "figures/figure4.png",
        "results/reproduction.md",
        "results/health.csv",
        "results/health.md",
        # GLUE test-server files, when the profile loads test splits (the paper profile does)
        [f"results/glue_test/{m}" for m in METHODS]
        if config["data"]["with_test"]
        else [],


# Jobs that only read records (tables, health, figures, reports) run on the submitting machine, never
# as SLURM jobs on the GPU partition; only data preparation, training/timing and the GLUE test-set
# predictions (which run the models) are submitted (tests/test_cluster.py checks the split).
localrules:
    all,
    table1,
    health,
    rule_benchmarks,
    table2,
    table3,
    figure3,
    figure4,
    reproduction,
