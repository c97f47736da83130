"""Snakemake script: train one method (every variant) on one task with one seed."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from dpbert.pipeline import train_method  # noqa: E402
from dpbert.runtime import setup  # noqa: E402

sm = snakemake  # noqa: F821
log = setup(sm.log[0], threads=sm.threads)
train_method(
    task=sm.wildcards.task,
    method=sm.wildcards.method,
    seed=int(sm.wildcards.seed),
    method_params=sm.params.method_params,
    training=sm.params.training,
    model=sm.params.model,
    data_path=sm.input.data,
    finetuned_dir=sm.input.get("finetuned"),
    out_dir=sm.output[0],
    log=log,
)
