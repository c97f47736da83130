"""The job of every (task, method, seed): train the method, then sweep it at batch size 1.

One process does both, so a run pays the start-up of Python, torch and transformers (about 4 s of
CPU a process on the project's machines, unless the job is a fork of the warm worker) once per method
instead of twice. ``phases.json`` records where the job's time went: start-up, training, loading,
scoring and latency, and whether the job ran warm.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from dpbert.data.tasks import get_task
from dpbert.methods.interface import Method, TrainContext
from dpbert.methods.registry import build_method
from dpbert.model import checkpoint as checkpoints
from dpbert.model.precision import check_precision
from dpbert.model.sources import ModelSource
from dpbert.model.training import seed_everything, set_rescue_dir
from dpbert.run.latency import describe_device, resolve_device, timing_lock
from dpbert.run.prepare import load_prepared
from dpbert.run.runtime import (
    atomic_dir,
    atomic_write_df,
    atomic_write_text,
    peak_rss_mb,
    phase,
    process_age_s,
)
from dpbert.run.sweep import LatencySettings, evaluate_sweep
from dpbert.run.warm import CHILD_ENV

POINTER_FILE = "method.json"  # what a method that trains nothing leaves in its model folder


def run_method(
    *, task: str, method: str, seed: int, method_params: dict[str, Any], training: dict[str, Any],
    model: dict[str, Any], latency: dict[str, Any], profile: str, data_path: str, base_dir: str | None,
    model_out: str, sweep_out: str, predictions_out: str, phases_out: str, timing_lock_path: str | None,
    log: logging.Logger, diagnostics_out: str | None = None, selection: dict[str, Any] | None = None,
    checkpoint_dir: str | None = None, checkpoint: Any = "epoch", time_budget_s: float | None = None,
) -> None:
    """Train (into ``model_out``, atomically), then sweep; ``base_dir`` is the stage-1 BERT-base folder
    (None for BERT-base itself, whose own folder is then the base). ``diagnostics_out``: where the
    method-health diagnostics go (dpbert.reporting.health: per-layer off-ramp scores, planner spread).
    ``selection``: the config's section, for the sweep's window search (dpbert.run.sweep).
    ``checkpoint_dir``: the job's checkpoint folder outside its outputs (None: no checkpoints), written
    every ``checkpoint`` (``training.checkpoint``) and removed when the job succeeds (dpbert.model.checkpoint).
    ``time_budget_s``: seconds from the start of the job's process by which training must have checkpointed
    and stopped (dpbert.run.job_resources.job_time_budget_s; None: no budget); past it the training loop raises
    ``dpbert.model.checkpoint.TimeBudgetReached`` and no output is written, and a rerun resumes."""
    impl = build_method(method, method_params, get_task(task))  # imports every method, torch, transformers
    # both precisions before any training, so that a latency.precision the device cannot run wastes no training
    check_precision(training.get("precision", "fp32"), resolve_device(training.get("device", "cpu")),
                    "training.precision")
    check_precision(latency.get("precision", "fp32"), resolve_device(latency.get("device", "cpu")),
                    "latency.precision")
    import transformers.models.bert.modeling_bert  # noqa: F401  (so that start-up counts all the imports)

    phases = {"startup_s": process_age_s(), "warm": float(bool(os.environ.get(CHILD_ENV)))}
    prepared = load_prepared(data_path)
    with phase(phases, "train_s"):
        if impl.trains:
            finetuned_dir = base_dir if impl.needs_finetuned else None
            key = (checkpoints.method_job_key(impl, seed=seed, method_params=method_params, training=training,
                                              model=model, data_path=data_path, base_dir=finetuned_dir)
                   if checkpoint_dir and checkpoints.parse_interval(checkpoint) else "")
            deadline = None if time_budget_s is None else time.monotonic() - process_age_s() + time_budget_s
            with checkpoints.resumable(checkpoint_dir, key, checkpoint, log, deadline=deadline):
                train_method(impl, prepared, seed=seed, training=training, model=model,
                             finetuned_dir=finetuned_dir, out_dir=model_out, log=log, selection=selection)
        else:
            with atomic_dir(model_out) as tmp:
                (tmp / POINTER_FILE).write_text(json.dumps(
                    {"method": method, "trains": False, "weights": str(base_dir)}, indent=2))
            log.info("%s trains nothing: it runs the stage-1 model in %s", method, base_dir)
    traces: dict[tuple[str, str], list] = {}  # the sweep's per-example passes, which the diagnostics reuse
    evaluate_method(impl, prepared, seed=seed, latency=latency, profile=profile,
                    model_dir=model_out if impl.trains else base_dir, base_dir=base_dir or model_out,
                    sweep_out=sweep_out, predictions_out=predictions_out, timing_lock_path=timing_lock_path,
                    phases=phases, log=log, selection=selection, traces=traces)
    if diagnostics_out:
        from dpbert.run.diagnostics import write_diagnostics

        with phase(phases, "diagnostics_s"):
            write_diagnostics(impl, prepared.splits[impl.task.dev_splits[0]],
                              model_dir=model_out if impl.trains else base_dir,
                              device=resolve_device(latency.get("device", "cpu")), seed=seed, out_path=diagnostics_out,
                              traces={v: t for (v, split), t in traces.items() if split == impl.task.dev_splits[0]})
    phases["total_s"] = process_age_s()
    phases["peak_rss_mb"] = peak_rss_mb()  # the job's own (Snakemake's benchmark sees a warm job's client only)
    atomic_write_text(phases_out, json.dumps({k: round(v, 3) for k, v in phases.items()}, indent=2))
    checkpoints.clear(checkpoint_dir, log)  # every output is written: the job is done
    log.info("phases: %s", ", ".join(f"{k} {v:.1f}" for k, v in phases.items()))


def train_method(
    impl: Method, prepared, *, seed: int, training: dict[str, Any], model: dict[str, Any],
    finetuned_dir: str | None, out_dir: str, log: logging.Logger, selection: dict[str, Any] | None = None,
) -> None:
    spec = impl.task
    device = resolve_device(training.get("device", "cpu"))
    log.info("training %s on %s, seed %d, device %s, variants %s", impl.name, spec.name, seed, device, impl.variants())
    with atomic_dir(out_dir) as tmp:
        ctx = TrainContext(
            task=spec,
            train=prepared.splits["train"],
            dev=prepared.splits[spec.dev_splits[0]],
            finetuned_dir=Path(finetuned_dir) / "main" / "backbone" if finetuned_dir else None,
            out_dir=tmp,
            seed=seed,
            settings=training,
            model_source=ModelSource.from_config(model),
            device=device,
            log=log,
            selection=selection,
        )
        # torch seeds itself from the OS in every new process: new heads, planners and dropout
        # must come from the run's seed, or a rerun (resumed after a kill) trains another model
        seed_everything(seed)
        set_rescue_dir(f"{out_dir}.last-good")  # survives the failed job; the .partial folder does not
        impl.train(ctx)
    log.info("saved %s", out_dir)


def evaluate_method(
    impl: Method, prepared, *, seed: int, latency: dict[str, Any], profile: str, model_dir: str, base_dir: str,
    sweep_out: str, predictions_out: str, timing_lock_path: str | None, phases: dict[str, float],
    log: logging.Logger, selection: dict[str, Any] | None = None, traces: dict[tuple[str, str], list] | None = None,
) -> None:
    """Sweep the trained method and write its rows and predictions; ``traces`` receives the sweep's
    per-example traces (``dpbert.run.sweep.evaluate_sweep``)."""
    device = resolve_device(latency.get("device", "cpu"))
    torch.set_num_threads(int(latency.get("threads", 1)))  # scoring and timing at the protocol's thread count
    settings = LatencySettings.from_config(latency)
    log.info("sweeping %s on %s: variants %s, %s in %s", impl.name, impl.task.name, impl.variants(),
             impl.knob_name, impl.knobs())
    rows, predictions = evaluate_sweep(impl, Path(model_dir), Path(base_dir), prepared.dev_splits(), settings,
                                       device, seed, phases=phases, lock=lambda: timing_lock(timing_lock_path),
                                       selection=selection, traces=traces)
    backbone = _backbone_description(base_dir)
    for r in rows:
        r.update({"profile": profile, "backbone": backbone, "device": describe_device(device)})
    atomic_write_df(pd.DataFrame(predictions), predictions_out)
    atomic_write_df(pd.DataFrame(rows), sweep_out)
    log.info("wrote %d sweep rows to %s", len(rows), sweep_out)


def _backbone_description(base_dir: str) -> str:
    """What the stage-1 job recorded about its backbone (source, depth, width)."""
    from dpbert.model.sources import read_json

    return read_json(Path(base_dir) / "main" / "method.json").get("backbone", "unknown")
