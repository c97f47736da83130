# DPBERT reproduction workflow. Default: the embedded demo profile (workflow/config/config.yaml).
#   snakemake --cores 1 results/table1.csv
#   snakemake --cores 1 results/paper/table1.csv --configfile workflow/config/paper.yaml
import os
import sys

from snakemake.utils import min_version

min_version("9.0")


# The embedded default (demo), unless --configfile names a complete profile, or a partial file with
# `base: <profile>` layered over that profile; a partial file without one is refused, never mixed
# with the demo's (dpbert/run/profiles.py). Profiles other than demo write results/<profile>/, figures/<profile>/.
sys.path.insert(0, workflow.basedir)
from dpbert.run.config_check import ConfigError
from dpbert.run.profiles import config_dir, resolve_config

try:
    _resolved = resolve_config(
        workflow.config_settings.configfiles,
        config_dir(workflow.basedir),
        workflow.config_settings.config,
    )
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
config.clear()
config.update(_resolved)


# `snakemake --report report.html`: Tables 1-3 (table1.md: scores ± SE, § degenerate), method health, Figures 3-4
# and the reproduction report, each with a caption built from the config (workflow/report/)
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/methods.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/submission.smk"
include: "workflow/rules/serving.smk"
include: "workflow/rules/docs.smk"


rule all:
    default_target: True
    input:
        f"{R}/table1.csv",
        f"{R}/table2.csv",
        f"{R}/table3.csv",
        f"{F}/figure3.png",
        f"{F}/figure4.png",
        f"{R}/reproduction.md",
        f"{R}/health.csv",
        f"{R}/health.md",
        # serving throughput at batch sizes 1..64 vs BERT-base (runs the models; retrains nothing)
        f"{R}/serving.csv",
        f"{F}/serving.png",
        # the stamp: commit, config hash and sha256 of every file above
        f"{R}/manifest.json",
        # GLUE test-server files, when the profile loads test splits (the paper profile does)
        [f"{R}/glue_test/{m}" for m in METHODS] if config["data"]["with_test"] else [],


# Jobs that only read records (tables, health, figures, reports) run on the submitting machine, never
# as SLURM jobs on the GPU partition; only data preparation, training/timing and the GLUE test-set
# predictions (which run the models) are submitted (tests/workflow/test_cluster.py checks the split).
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
    manifest,
