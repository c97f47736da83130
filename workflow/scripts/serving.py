"""Snakemake script: the serving benchmark (serving.csv, serving.png) from a finished run's records."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821
from dpbert.run.warm import run_job_warm

run_job_warm(snakemake.params.warm_worker)  # noqa: F821  (returns in the process that runs the job)

from dpbert.reporting.figures import serving_figure
from dpbert.run.runtime import setup
from dpbert.run.serving import run_serving

sm = snakemake  # noqa: F821
setup(sm.log[0], threads=sm.threads)
tasks = list(sm.params.tasks)
df = run_serving(
    tasks=tasks,
    selected_csv=sm.input.selected,
    data_paths=dict(zip(tasks, sm.input.data)),
    model_dirs={tuple(key.split("|")): path for key, path in zip(sm.params.model_keys, sm.params.model_dirs)},
    method_params=sm.params.method_params,
    serving=sm.params.serving,
    latency=sm.params.latency,
    profile=sm.params.profile,
    seed=int(sm.params.seed),
    out_csv=sm.output.csv,
    timing_lock_path=sm.params.timing_lock,
)
serving_figure(df, sm.output.png)
