"""Snakemake script: train one variant of one method (one of its training jobs) on one task with one seed."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821
from dpbert.run.warm import run_job_warm  # noqa: E402

run_job_warm(snakemake.params.warm_worker)  # noqa: F821  (returns in the process that runs the job)

from dpbert.model.checkpoint import TimeBudgetReached  # noqa: E402
from dpbert.run.job import train_job  # noqa: E402
from dpbert.run.job_resources import BUDGET_EXIT, job_time_budget_s  # noqa: E402
from dpbert.run.runtime import setup  # noqa: E402

sm = snakemake  # noqa: F821
log = setup(sm.log[0], threads=sm.threads)
wc = sm.wildcards
try:
    train_job(
        task=wc.task,
        method=wc.method,
        seed=int(wc.seed),
        variant=wc.variant,
        method_params=sm.params.method_params,
        training=sm.params.training,
        model=sm.params.model,
        latency={"precision": sm.params.latency_precision, "device": sm.config["latency"]["device"]},
        data_path=sm.input.data,
        base_dir=str(Path(sm.input.base).parent) if sm.input.get("base") else None,
        model_dir=str(Path(sm.output.model).parent),
        previous=sm.input.get("previous"),
        phases_out=sm.output.phases,
        selection=sm.params.selection,
        log=log,
        # outside the job's outputs, which Snakemake deletes when a job fails (dpbert/model/checkpoint.py)
        checkpoint_dir=f"{sm.config['workdir']}/{sm.config['profile']}/checkpoints/{wc.task}/{wc.method}/{wc.seed}/{wc.variant}",
        checkpoint=sm.config["training"].get("checkpoint", "epoch"),
        # resources.max_runtime: training stops, checkpointed, before the attempt's runtime is spent
        time_budget_s=job_time_budget_s(sm.config, sm.resources.runtime),
    )
except TimeBudgetReached as exc:  # one line in the log and on the job's own stderr, then a non-zero exit
    log.error("%s", exc)
    print(exc, file=sys.__stderr__)
    sys.exit(BUDGET_EXIT)
