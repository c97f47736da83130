"""The two jobs of every method, as plain functions the Snakemake scripts (and tests) call."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from dpbert.evaluation import LatencySettings, evaluate_sweep
from dpbert.latency import describe_device, resolve_device
from dpbert.models import ModelSource
from dpbert.prepare import load_prepared
from dpbert.registry import TrainContext, build_method
from dpbert.runtime import atomic_dir, atomic_write_df
from dpbert.tasks import get_task
from dpbert.training import seed_everything, set_rescue_dir


def train_method(
    *, task: str, method: str, seed: int, method_params: dict[str, Any], training: dict[str, Any],
    model: dict[str, Any], data_path: str, finetuned_dir: str | None, out_dir: str, log: logging.Logger,
) -> None:
    spec = get_task(task)
    impl = build_method(method, method_params, spec)
    prepared = load_prepared(data_path)
    device = resolve_device(training.get("device", "cpu"))
    log.info("training %s on %s, seed %d, device %s, variants %s", method, task, seed, device, impl.variants())
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
        )
        # torch seeds itself from the OS in every new process: new heads, planners and dropout
        # must come from the run's seed, or a rerun (resumed after a kill) trains another model
        seed_everything(seed)
        set_rescue_dir(f"{out_dir}.last-good")  # survives the failed job; the .partial folder does not
        impl.train(ctx)
    log.info("saved %s", out_dir)


def evaluate_method(
    *, task: str, method: str, seed: int, method_params: dict[str, Any], latency: dict[str, Any], profile: str,
    data_path: str, model_dir: str, base_dir: str, sweep_out: str, predictions_out: str, log: logging.Logger,
) -> None:
    spec = get_task(task)
    impl = build_method(method, method_params, spec)
    prepared = load_prepared(data_path)
    device = resolve_device(latency.get("device", "cpu"))
    settings = LatencySettings(**{k: latency[k] for k in ("examples", "warmup", "repeats") if k in latency})
    log.info("sweeping %s on %s: variants %s, %s in %s", method, task, impl.variants(), impl.knob_name, impl.knobs())
    rows, predictions = evaluate_sweep(impl, Path(model_dir), Path(base_dir), prepared.dev_splits(), settings, device, seed)
    backbone = _backbone_description(base_dir)
    for r in rows:
        r.update({"profile": profile, "backbone": backbone, "device": describe_device(device)})
    atomic_write_df(pd.DataFrame(predictions), predictions_out)
    atomic_write_df(pd.DataFrame(rows), sweep_out)
    log.info("wrote %d sweep rows to %s", len(rows), sweep_out)


def _backbone_description(base_dir: str) -> str:
    """What the stage-1 job recorded about its backbone (source, depth, width)."""
    from dpbert.models import read_json

    return read_json(Path(base_dir) / "main" / "method.json").get("backbone", "unknown")
