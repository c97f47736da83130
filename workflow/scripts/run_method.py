"""Snakemake script: sweep one method's trained variants on one task with one seed, at batch size 1."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821
from dpbert.run.warm import run_job_warm  # noqa: E402

run_job_warm(snakemake.params.warm_worker)  # noqa: F821  (returns in the process that runs the job)

from dpbert.run.job import sweep_job  # noqa: E402
from dpbert.run.runtime import setup  # noqa: E402

sm = snakemake  # noqa: F821
log = setup(sm.log[0], threads=sm.threads)
sweep_job(
    task=sm.wildcards.task,
    method=sm.wildcards.method,
    seed=int(sm.wildcards.seed),
    method_params=sm.params.method_params,
    latency=sm.params.latency,
    profile=sm.params.profile,
    data_path=sm.input.data,
    base_dir=str(Path(sm.input.base).parent) if sm.input.get("base") else None,
    model_dir=sm.params.model_dir,
    sweep_out=sm.output.sweep,
    predictions_out=sm.output.predictions,
    phases_out=sm.output.phases,
    diagnostics_out=sm.output.diagnostics,
    timing_lock_path=sm.params.timing_lock,
    selection=sm.params.selection,
    log=log,
)
