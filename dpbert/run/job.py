"""The jobs of every (task, method, seed): one per training job of the method, then the sweep at batch size 1.

Each of a method's training jobs (``Method.training_jobs``: a variant such as one DPBERT target rate or one
DACT-BERT tau, or DACT-BERT's tau search) is a job of its own (``train_job``) writing its folder
``<model dir>/<variant>``; the sweep job (``sweep_job``) reads every variant. ``run_method`` runs them all in
this one process, in order (tests, tools). ``training.variant_seeds``: ``chained`` (the default) starts each
training job's random generators where the job before it left them (``RNG_FILE`` in that job's folder), so a
variant is bit for bit the model of one process training every variant in turn; ``independent`` seeds every
training job from the run's seed alone, so a cluster trains them side by side.

``phases.json`` records where a job's time went: start-up (about 4 s of CPU a process on the project's
machines, unless the job is a fork of the warm worker), training, loading, scoring and latency, and whether
the job ran warm.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
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
from dpbert.model.sources import ModelLoadError, ModelSource, job_folder_fix
from dpbert.model.training import (
    rng_state,
    seed_everything,
    set_rescue_dir,
    set_rng_state,
)
from dpbert.model.writes import writing
from dpbert.run.jobs import previous_job
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

POINTER_FILE = "method.json"  # what a method that trains nothing leaves in its model folder (run_method)
RNG_FILE = "rng_state.pt"  # a training job's generators when it ended, where the next chained job starts


def start_job(task: str, method: str, method_params: dict[str, Any], data_path: str, latency: dict[str, Any],
              training: dict[str, Any] | None = None) -> tuple[Method, dict[str, float], Any]:
    """A job's first steps: the method on the task, its precisions checked (``training``'s and ``latency``'s,
    before any training, so that a latency.precision the device cannot run wastes none), the start-up
    recorded, the prepared data loaded. Returns (method, phases, prepared data)."""
    impl = build_method(method, method_params, get_task(task))  # imports every method, torch, transformers
    if training is not None:
        check_precision(training.get("precision", "fp32"), resolve_device(training.get("device", "cpu")),
                        "training.precision")
    check_precision(latency.get("precision", "fp32"), resolve_device(latency.get("device", "cpu")),
                    "latency.precision")
    import transformers.models.bert.modeling_bert  # noqa: F401  (so that start-up counts all the imports)

    phases = {"startup_s": process_age_s(), "warm": float(bool(os.environ.get(CHILD_ENV)))}
    return impl, phases, load_prepared(data_path)


def run_method(
    *, task: str, method: str, seed: int, method_params: dict[str, Any], training: dict[str, Any],
    model: dict[str, Any], latency: dict[str, Any], profile: str, data_path: str, base_dir: str | None,
    model_out: str, sweep_out: str, predictions_out: str, phases_out: str, timing_lock_path: str | None,
    log: logging.Logger, diagnostics_out: str | None = None, selection: dict[str, Any] | None = None,
    checkpoint_dir: str | None = None, checkpoint: Any = "epoch", time_budget_s: float | None = None,
) -> None:
    """Every training job of the method in this one process, in order (each variant's folder in ``model_out``,
    atomically: ``train_variant_into``), then its sweep: what the workflow runs as ``train_job`` per variant and
    ``sweep_job``, for tests and tools. ``base_dir`` is the stage-1 BERT-base folder
    (None for BERT-base itself, whose own folder is then the base). ``diagnostics_out``: where the
    method-health diagnostics go (dpbert.reporting.health: per-layer off-ramp scores, planner spread).
    ``selection``: the config's section, for the sweep's window search (dpbert.run.sweep).
    ``checkpoint_dir``: the job's checkpoint folder outside its outputs (None: no checkpoints), written
    every ``checkpoint`` (``training.checkpoint``) and removed when the job succeeds (dpbert.model.checkpoint).
    ``time_budget_s``: seconds from the start of the job's process by which training must have checkpointed
    and stopped (dpbert.run.job_resources.job_time_budget_s; None: no budget); past it the training loop raises
    ``dpbert.model.checkpoint.TimeBudgetReached`` and no output is written, and a rerun resumes."""
    impl, phases, prepared = start_job(task, method, method_params, data_path, latency, training)
    with phase(phases, "train_s"):
        if impl.trains:
            deadline = None if time_budget_s is None else time.monotonic() - process_age_s() + time_budget_s
            with atomic_dir(model_out) as tmp:  # nothing of an interrupted run looks finished
                for variant in impl.training_jobs():
                    previous = previous_job(impl.training_jobs(), variant, training)
                    train_variant_into(impl, prepared, variant=variant, seed=seed, method_params=method_params,
                                       training=training, model=model, data_path=data_path, base_dir=base_dir,
                                       model_dir=str(tmp), previous=previous and str(tmp / previous), log=log,
                                       selection=selection, checkpoint=checkpoint,
                                       checkpoint_dir=checkpoint_dir and str(Path(checkpoint_dir) / variant),
                                       deadline=deadline, rescue_dir=f"{model_out}.last-good")
        else:
            with atomic_dir(model_out) as tmp:
                (tmp / POINTER_FILE).write_text(json.dumps(
                    {"method": method, "trains": False, "weights": str(base_dir)}, indent=2))
            log.info("%s trains nothing: it runs the stage-1 model in %s", method, base_dir)
    sweep_and_record(impl, prepared, seed=seed, latency=latency, profile=profile,
                     model_dir=model_out if impl.trains else base_dir, base_dir=base_dir or model_out,
                     sweep_out=sweep_out, predictions_out=predictions_out, phases_out=phases_out,
                     diagnostics_out=diagnostics_out, timing_lock_path=timing_lock_path, phases=phases, log=log,
                     selection=selection)
    checkpoints.clear(checkpoint_dir, log)  # every output is written: the job is done


def sweep_job(
    *, task: str, method: str, seed: int, method_params: dict[str, Any], latency: dict[str, Any], profile: str,
    data_path: str, base_dir: str | None, model_dir: str, sweep_out: str, predictions_out: str, phases_out: str,
    timing_lock_path: str | None, log: logging.Logger, diagnostics_out: str | None = None,
    selection: dict[str, Any] | None = None,
) -> None:
    """The sweep job of (task, method, seed): every variant its training jobs saved under ``model_dir`` (the
    stage-1 folder ``base_dir`` for a method that trains nothing; None for BERT-base itself), scored and timed
    at batch size 1 against BERT-base (``run_method``'s sweep)."""
    impl, phases, prepared = start_job(task, method, method_params, data_path, latency)
    sweep_and_record(impl, prepared, seed=seed, latency=latency, profile=profile,
                     model_dir=model_dir if impl.trains else base_dir, base_dir=base_dir or model_dir,
                     sweep_out=sweep_out, predictions_out=predictions_out, phases_out=phases_out,
                     diagnostics_out=diagnostics_out, timing_lock_path=timing_lock_path, phases=phases, log=log,
                     selection=selection)


def sweep_and_record(
    impl: Method, prepared, *, seed: int, latency: dict[str, Any], profile: str, model_dir: str, base_dir: str,
    sweep_out: str, predictions_out: str, phases_out: str, diagnostics_out: str | None,
    timing_lock_path: str | None, phases: dict[str, float], log: logging.Logger,
    selection: dict[str, Any] | None,
) -> None:
    """The sweep (``evaluate_method``), the health diagnostics from its traces, then ``phases.json``."""
    traces: dict[tuple[str, str], list] = {}  # the sweep's per-example passes, which the diagnostics reuse
    evaluate_method(impl, prepared, seed=seed, latency=latency, profile=profile, model_dir=model_dir,
                    base_dir=base_dir, sweep_out=sweep_out, predictions_out=predictions_out,
                    timing_lock_path=timing_lock_path, phases=phases, log=log, selection=selection, traces=traces)
    if diagnostics_out:
        from dpbert.run.diagnostics import write_diagnostics

        with phase(phases, "diagnostics_s"):
            write_diagnostics(impl, prepared.splits[impl.task.dev_splits[0]], model_dir=model_dir,
                              device=resolve_device(latency.get("device", "cpu")), seed=seed, out_path=diagnostics_out,
                              traces={v: t for (v, split), t in traces.items() if split == impl.task.dev_splits[0]})
    write_phases(phases, phases_out, log)


def write_phases(phases: dict[str, float], phases_out: str, log: logging.Logger) -> None:
    """``phases.json``: the job's seconds per phase, its wall time and peak memory."""
    phases["total_s"] = process_age_s()
    phases["peak_rss_mb"] = peak_rss_mb()  # the job's own (Snakemake's benchmark sees a warm job's client only)
    atomic_write_text(phases_out, json.dumps({k: round(v, 3) for k, v in phases.items()}, indent=2))
    log.info("phases: %s", ", ".join(f"{k} {v:.1f}" for k, v in phases.items()))


def train_job(
    *, task: str, method: str, seed: int, variant: str, method_params: dict[str, Any], training: dict[str, Any],
    model: dict[str, Any], latency: dict[str, Any], data_path: str, base_dir: str | None, model_dir: str,
    phases_out: str, log: logging.Logger, previous: str | None = None, selection: dict[str, Any] | None = None,
    checkpoint_dir: str | None = None, checkpoint: Any = "epoch", time_budget_s: float | None = None,
) -> None:
    """One training job: ``variant`` (one of ``Method.training_jobs``) into ``model_dir / variant``. ``previous``:
    the folder of the training job before it when chained (``training.variant_seeds``); ``base_dir``, the stage-1
    folder (None for BERT-base itself). Checkpoints and ``time_budget_s`` as ``run_method``'s."""
    impl, phases, prepared = start_job(task, method, method_params, data_path, latency, training)
    deadline = None if time_budget_s is None else time.monotonic() - process_age_s() + time_budget_s
    with phase(phases, "train_s"):
        train_variant_into(impl, prepared, variant=variant, seed=seed, method_params=method_params,
                           training=training, model=model, data_path=data_path, base_dir=base_dir,
                           model_dir=model_dir, previous=previous, log=log, selection=selection,
                           checkpoint_dir=checkpoint_dir, checkpoint=checkpoint, deadline=deadline)
    write_phases(phases, phases_out, log)
    checkpoints.clear(checkpoint_dir, log)  # its outputs are written: the job is done


def train_variant_into(
    impl: Method, prepared, *, variant: str, seed: int, method_params: dict[str, Any], training: dict[str, Any],
    model: dict[str, Any], data_path: str, base_dir: str | None, model_dir: str, previous: str | Path | None,
    log: logging.Logger, selection: dict[str, Any] | None, checkpoint_dir: str | None, checkpoint: Any,
    deadline: float | None, rescue_dir: str | None = None,
) -> None:
    """Train ``variant`` into ``model_dir / variant``, atomically: the method writes into a staging folder,
    renamed into place when it has saved exactly that variant. Its generators start from the run's seed, or
    (``previous``) where the job before it left them; they are saved (``RNG_FILE``) for a job after it."""
    if variant not in impl.training_jobs():
        raise ValueError(f"{impl.name} has no training job '{variant}'; its jobs are {impl.training_jobs()}")
    spec = impl.task
    device = resolve_device(training.get("device", "cpu"))
    finetuned_dir = base_dir if impl.needs_finetuned else None
    final = Path(model_dir) / variant
    log.info("training %s %s on %s, seed %d, device %s", impl.name, variant, spec.name, seed, device)
    staging = Path(model_dir) / f".{variant}.training"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        ctx = TrainContext(
            task=spec,
            train=prepared.splits["train"],
            dev=prepared.splits[spec.dev_splits[0]],
            finetuned_dir=Path(finetuned_dir) / "main" / "backbone" if finetuned_dir else None,
            out_dir=staging,
            seed=seed,
            settings=training,
            model_source=ModelSource.from_config(model),
            device=device,
            log=log,
            selection=selection if variant == impl.search_job else None,  # what a search job searches in
            variants_dir=Path(model_dir),
        )
        key = (checkpoints.method_job_key(impl, seed=seed, method_params=method_params, training=training,
                                          model=model, data_path=data_path, base_dir=finetuned_dir,
                                          variant=variant, previous=previous)
               if checkpoint_dir and checkpoints.parse_interval(checkpoint) else "")
        # torch seeds itself from the OS in every new process: new heads, planners and dropout must come from
        # the run's seed (or the job before it), or a rerun (resumed after a kill) trains another model
        if previous is None:
            seed_everything(seed)
        else:
            set_rng_state(read_rng_state(Path(previous)))
        set_rescue_dir(rescue_dir or f"{final}.last-good")  # survives the failed job; the staging folder does not
        with checkpoints.resumable(checkpoint_dir, key, checkpoint, log, deadline=deadline):
            impl.train_variant(ctx, variant)
        written = sorted(p.name for p in staging.iterdir())
        if written != [variant]:
            raise RuntimeError(f"{impl.name}.train_variant(ctx, '{variant}') saved {written} in its output folder; "
                               f"a training job saves exactly its own folder, ctx.out_dir / '{variant}'")
        if variant != impl.training_jobs()[-1]:  # a job after it may continue from these generators
            with writing(staging / variant / RNG_FILE, "the training job's random generator state"):
                torch.save(rng_state(), staging / variant / RNG_FILE)
        if final.exists():
            shutil.rmtree(final)
        (staging / variant).rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("saved %s", final)


def read_rng_state(folder: Path) -> dict[str, Any]:
    """The generators a training job left in its folder (``RNG_FILE``), or one paragraph naming it and the fix."""
    path = folder / RNG_FILE
    try:
        return torch.load(path, weights_only=False)
    except Exception as exc:  # noqa: BLE001  (missing, truncated or not a state: torch raises many kinds)
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise ModelLoadError(
            f"the random generator state {path} could not be read ({reason}): a chained training job starts "
            f"where the job before it ended (training.variant_seeds: chained), and that job's folder lacks it or "
            f"it is corrupt. {job_folder_fix(folder)}") from None


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
