"""Snakemake script: sweep one trained method at batch size 1 (scores, layers, latency)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from dpbert.pipeline import evaluate_method  # noqa: E402
from dpbert.runtime import setup  # noqa: E402

sm = snakemake  # noqa: F821
log = setup(sm.log[0], threads=sm.params.latency["threads"])
evaluate_method(
    task=sm.wildcards.task,
    method=sm.wildcards.method,
    seed=int(sm.wildcards.seed),
    method_params=sm.params.method_params,
    latency=sm.params.latency,
    profile=sm.params.profile,
    data_path=sm.input.data,
    model_dir=sm.input.model,
    base_dir=sm.input.base,
    sweep_out=sm.output.sweep,
    predictions_out=sm.output.predictions,
    log=log,
)
