"""Resumable training: every ``train_loop`` of a job checkpoints, and a rerun of a killed job resumes.

A job (one task, method and seed; ``dpbert.run.job``) trains through one or more ``train_loop``
calls (BERT-base one; DeeBERT one on top of stage 1; DPBERT two per target rate). Inside
``resumable(...)`` the k-th call of the job owns the file ``stage<k>.pt`` in the job's checkpoint
folder, ``<workdir>/<profile>/checkpoints/<task>/<method>/<seed>/<key>/``, outside the job's declared
outputs (Snakemake deletes those when a job fails). The file holds, at every epoch's end (or every N
steps, ``training.checkpoint``), the modules' weights, the optimizer and scheduler, the RNG states
(torch, CUDA, Python ``random``, NumPy), any extra state the method passes (LayerDrop's generator), the
losses so far and the position in the epoch's data order; when the stage ends it is replaced by the
stage's final weights and RNG state only. A rerun replays the method's ``train`` from the start:
finished stages load their final state instead of training, the interrupted one continues at the
saved step, and the final weights are bit-identical to an uninterrupted run's (tests/model/test_checkpoint.py).

``<key>`` is a hash of everything that decides the weights: task, method, seed, the method's
parameters, the ``training`` and ``model`` sections (but not ``training.checkpoint`` itself), the
prepared data file, the stage-1 model a method starts from, and the source of this training code and
of the method's module. A changed config therefore never resumes from another config's checkpoint;
the other folder is named in the log and removed with the rest once the job succeeds. A checkpoint
that cannot be read, or that was written by a different stage, stops the job with an error that names
the file and the fix, and the file is left where it is.

A time budget (``resumable(..., deadline=)``, a ``time.monotonic()`` instant: a cluster's time limit less
a reserve, dpbert.run.job_resources) ends an attempt cleanly: before each step the loop asks whether one
more step (the longest of this attempt so far) and a checkpoint still fit; if not, it saves the stage where
it is (mid-epoch too) and raises ``TimeBudgetReached``, whose one line says where it stopped. Every attempt
makes at least one step, so a job always gets closer to its end. The job then exits non-zero without its
outputs, and the next attempt (Snakemake's ``retries``) resumes exactly as after a kill.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dpbert.model.writes import writing

log = logging.getLogger(__name__)

FORMAT = 1
INTERVALS = "epoch, off, or a number of steps (an integer >= 1)"
# Test hook: "<stage>:<step>" kills this process (SIGKILL) right after step <step> of its stage <stage> (the
# 0-based checkpointed train_loop call of the process, over all its training jobs) and after any checkpoint
# of that step was written.
KILL_ENV = "DPBERT_KILL_AFTER_STEP"
_STAGES_STARTED = [0]  # checkpointed train_loop calls of this process so far (the kill hook's count)


class CheckpointError(RuntimeError):
    pass


class TimeBudgetReached(RuntimeError):
    """An attempt spent its time budget: its stage is checkpointed, the next attempt resumes it."""

    def __init__(self, message: str, stage: int, step: int):
        super().__init__(message)
        self.stage, self.step = stage, step


def _now() -> float:
    return time.monotonic()


def parse_interval(value: Any) -> str | int | None:
    """``training.checkpoint``: "epoch", an integer N >= 1 (every N steps), or "off" / false (None)."""
    if value is None or value is False or (isinstance(value, str) and value.lower() == "off"):
        return None
    if isinstance(value, str) and value.lower() == "epoch":
        return "epoch"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(f"training.checkpoint is {value!r}; use {INTERVALS}.")


def _digest_file(h, path: Path) -> None:
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


def job_key(payload: dict[str, Any], files: list[str | Path | None]) -> str:
    """Short hash of the job's settings (JSON) and of the bytes of ``files`` (a folder: every file in it)."""
    h = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode())
    for item in files:
        if item is None:
            continue
        item = Path(item)
        paths = sorted(p for p in item.rglob("*") if p.is_file()) if item.is_dir() else [item]
        for p in paths:
            h.update(str(p.relative_to(item) if item.is_dir() else p.name).encode())
            _digest_file(h, p)
    return h.hexdigest()[:16]


@dataclass
class Job:
    folder: Path  # <seed>/<key>/
    interval: str | int
    calls: int = 0  # train_loop calls so far in this job
    save_s: list[float] = field(default_factory=list)  # seconds per checkpoint written
    deadline: float | None = None  # time.monotonic() by which the attempt must have saved and stopped training
    steps: int = 0  # steps trained in this attempt (every stage)
    step_s: float = 0.0  # the longest of them, in seconds

    def next_stage(self) -> Stage:
        stage = Stage(self, self.calls)
        self.calls += 1
        return stage

    def record_step(self, seconds: float) -> None:
        self.steps += 1
        self.step_s = max(self.step_s, seconds)

    def out_of_time(self) -> bool:
        """Whether one more step and a checkpoint would end past the deadline (never before this attempt's
        first step: every attempt trains at least one)."""
        if self.deadline is None or self.steps == 0:
            return False
        return _now() + self.step_s + max(self.save_s, default=0.0) > self.deadline


_JOB: Job | None = None


@contextmanager
def resumable(root: str | Path | None, key: str, interval: Any, logger: logging.Logger | None = None,
              deadline: float | None = None) -> Iterator[Job | None]:
    """Checkpoint every ``train_loop`` run inside the block under ``root/key`` (nothing when ``root`` is
    None or the interval is off). Checkpoints of other keys in ``root`` are named in the log, not read.
    ``deadline``: the attempt's time budget as a ``time.monotonic()`` instant (module docstring)."""
    global _JOB
    logger = logger or log
    every = parse_interval(interval)
    if root is None or every is None:
        if deadline is not None:
            logger.warning("the job has a time budget but no checkpoints (training.checkpoint is off): it cannot "
                           "stop and resume, so it trains to the end or until the scheduler kills it")
        yield None
        return
    root = Path(root)
    others = sorted(p.name for p in root.glob("*") if p.is_dir() and p.name != key) if root.is_dir() else []
    if others:
        logger.warning("ignoring checkpoints in %s/{%s}: written for another config or code version (this "
                       "job's key is %s); they are removed when this job succeeds", root, ",".join(others), key)
    folder = root / key
    if folder.is_dir() and any(folder.glob("stage*.pt")):
        logger.info("resuming from the checkpoints in %s", folder)
    folder.mkdir(parents=True, exist_ok=True)
    _JOB = Job(folder, every, deadline=deadline)
    try:
        yield _JOB
    finally:
        if _JOB.save_s:
            logger.info("%d checkpoints written, %.3f s each on average", len(_JOB.save_s), float(np.mean(_JOB.save_s)))
        _JOB = None


def next_stage() -> Stage | None:
    """The checkpoint of the next ``train_loop`` call of the current job (None outside ``resumable``)."""
    return _JOB.next_stage() if _JOB is not None else None


def clear(root: str | Path | None, logger: logging.Logger | None = None) -> None:
    """Remove a finished job's checkpoint folder (every key) and its empty parents up to ``checkpoints/``."""
    if root is None:
        return
    root = Path(root)
    if root.is_dir():
        shutil.rmtree(root)
        (logger or log).info("job finished: removed its checkpoints in %s", root)
    parents = list(root.parents)[:4]  # <seed>/<method>/<task>/checkpoints, when empty; never above checkpoints/
    if any(p.name == "checkpoints" for p in parents):
        for parent in parents:
            try:
                parent.rmdir()
            except OSError:
                break
            if parent.name == "checkpoints":
                break


def rng_state(device: torch.device | str) -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.device(device).type == "cuda" else None,
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None:
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))


def extra_state(objects: dict[str, Any]) -> dict[str, Any]:
    """State of the objects a loss function carries between steps: torch Generators and lists."""
    out: dict[str, Any] = {}
    for name, obj in objects.items():
        if isinstance(obj, torch.Generator):
            out[name] = obj.get_state()
        elif isinstance(obj, list):
            out[name] = list(obj)
        else:
            raise TypeError(f"train_loop extra_state '{name}': a {type(obj).__name__} cannot be checkpointed "
                            "(torch.Generator or list)")
    return out


def set_extra_state(objects: dict[str, Any], state: dict[str, Any]) -> None:
    for name, obj in objects.items():
        if isinstance(obj, torch.Generator):
            obj.set_state(state[name])
        else:
            obj[:] = state[name]


class Stage:
    """One ``train_loop`` call's checkpoint file."""

    def __init__(self, job: Job, index: int):
        self.job, self.index = job, index
        self.path = job.folder / f"stage{index}.pt"
        self._kill_at = self._parse_kill(_STAGES_STARTED[0])
        _STAGES_STARTED[0] += 1

    @staticmethod
    def _parse_kill(index: int) -> int | None:
        spec = os.environ.get(KILL_ENV, "")
        if not spec:
            return None
        stage, _, step = spec.partition(":")
        return int(step) if int(stage) == index else None

    def due(self, step: int, total: int, steps_per_epoch: int) -> bool:
        """Write a mid-stage checkpoint after ``step`` (the stage's end always writes its final one)."""
        if step >= total:
            return False
        every = self.job.interval
        return step % steps_per_epoch == 0 if every == "epoch" else step % every == 0

    def load(self, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        fix = (f"Delete {self.path} to train this stage again from its start (the earlier stages' checkpoints "
               f"are kept), or delete {self.job.folder} to retrain the job from scratch.")
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or state.get("format") != FORMAT:
                raise ValueError(f"not a format-{FORMAT} training checkpoint")
        except Exception as exc:  # noqa: BLE001 (any unreadable file gets the same advice)
            raise CheckpointError(
                f"the training checkpoint {self.path} cannot be read ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200] if str(exc) else 'no detail'}); it is truncated, corrupt or from "
                f"another version of this code. {fix}"
            ) from None
        if state.get("fingerprint") != fingerprint:
            raise CheckpointError(
                f"the training checkpoint {self.path} was written by another stage of training "
                f"({state.get('fingerprint', {}).get('desc')!r}, not {fingerprint['desc']!r}, or with other "
                f"step counts or parameter shapes), although the job's config is the same. {fix}"
            )
        return state

    def save(self, state: dict[str, Any]) -> None:
        start = time.perf_counter()
        tmp = self.path.with_name(self.path.name + ".partial")
        with writing(tmp, "the training checkpoint"):
            torch.save({"format": FORMAT, **state}, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        tmp.replace(self.path)
        self.job.save_s.append(time.perf_counter() - start)

    def stop(self, desc: str, step: int, total: int) -> TimeBudgetReached:
        """The error that ends an attempt at ``step`` (the stage's checkpoint already written)."""
        where = f"after step {step} of {total} of stage {self.index} ({desc})"
        kept = f"checkpoint saved in {self.path}" if step else f"checkpoints of the earlier stages kept in {self.job.folder}"
        return TimeBudgetReached(f"time budget reached {where}; {kept}, the next attempt resumes", self.index, step)

    def after_step(self, step: int) -> None:
        if self._kill_at is not None and step == self._kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


def method_job_key(impl: Any, *, seed: int, method_params: dict[str, Any], training: dict[str, Any],
                   model: dict[str, Any], data_path: str | Path, base_dir: str | Path | None,
                   variant: str | None = None, previous: str | Path | None = None) -> str:
    """``<key>`` of a method job: its settings, its input files and the code that trains it (module docstring).
    ``variant``: the training job's variant (``Method.training_jobs``); ``previous``: the folder of the training
    job it follows when chained (``training.variant_seeds``), an input too."""
    import dataclasses
    import inspect

    payload = {
        "task": impl.task.name, "method": impl.name, "seed": seed, "method_params": method_params,
        "params": dataclasses.asdict(impl.params) if dataclasses.is_dataclass(impl.params) else repr(impl.params),
        "training": {k: v for k, v in training.items() if k != "checkpoint"}, "model": model,
        **({"variant": variant} if variant is not None else {}),
    }
    code = [Path(__file__), Path(__file__).with_name("training.py"), Path(inspect.getsourcefile(type(impl)))]
    return job_key(payload, [data_path, base_dir, *([previous] if previous else []), *code])
