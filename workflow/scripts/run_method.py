"""Snakemake script: train one method (every variant) on one task with one seed, then sweep it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821
from dpbert.run.warm import run_job_warm  # noqa: E402

run_job_warm(snakemake.params.warm_worker)  # noqa: F821  (returns in the process that runs the job)

from dpbert.model.checkpoint import TimeBudgetReached  # noqa: E402
from dpbert.run.job import run_method  # noqa: E402
from dpbert.run.job_resources import BUDGET_EXIT, job_time_budget_s  # noqa: E402
from dpbert.run.runtime import setup  # noqa: E402

sm = snakemake  # noqa: F821
log = setup(sm.log[0], threads=sm.threads)
try:
    run_method(
        task=sm.wildcards.task,
        method=sm.wildcards.method,
        seed=int(sm.wildcards.seed),
        method_params=sm.params.method_params,
        training=sm.params.training,
        model=sm.params.model,
        latency=sm.params.latency,
        profile=sm.params.profile,
        data_path=sm.input.data,
        base_dir=sm.input.get("base"),
        model_out=sm.output.model,
        sweep_out=sm.output.sweep,
        predictions_out=sm.output.predictions,
        phases_out=sm.output.phases,
        diagnostics_out=sm.output.diagnostics,
        timing_lock_path=sm.params.timing_lock,
        selection=sm.params.selection,
        log=log,
        # outside the job's outputs, which Snakemake deletes when a job fails (dpbert/model/checkpoint.py)
        checkpoint_dir=f"{sm.config['workdir']}/{sm.config['profile']}/checkpoints/{sm.wildcards.task}/{sm.wildcards.method}/{sm.wildcards.seed}",
        checkpoint=sm.config["training"].get("checkpoint", "epoch"),
        # resources.max_runtime: training stops, checkpointed, before the attempt's runtime is spent
        time_budget_s=job_time_budget_s(sm.config, Path(sm.scriptdir).parents[1], sm.wildcards.task,
                                        sm.wildcards.method, sm.resources.runtime),
    )
except TimeBudgetReached as exc:  # one line in the log and on the job's own stderr, then a non-zero exit
    log.error("%s", exc)
    print(exc, file=sys.__stderr__)
    sys.exit(BUDGET_EXIT)
