"""The one training loop: AdamW, linear warm-up/decay, gradient clipping, a tqdm bar, NaN guard.

Every method's stage is ``train_loop(parameters, loss_fn, data, settings)``; a method only says
which parameters move and what the loss of a batch is.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm
from transformers import set_seed

from dpbert.data.encoding import EncodedSplit
from dpbert.model import checkpoint
from dpbert.model.precision import autocast, check_precision, grad_scaler

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    pass


# Where train_loop leaves the last good weights when a loss turns NaN/inf (set per job by the pipeline).
_RESCUE_DIR: Path | None = None


def set_rescue_dir(path: str | Path | None) -> None:
    global _RESCUE_DIR
    _RESCUE_DIR = Path(path) if path is not None else None


def _rescue(modules: list[nn.Module], desc: str, step: int) -> str:
    """Save the modules' weights as they were before the failing step; return a sentence saying where."""
    if _RESCUE_DIR is None or not modules:
        return "No checkpoint was kept (no rescue folder set)."
    _RESCUE_DIR.mkdir(parents=True, exist_ok=True)
    path = _RESCUE_DIR / f"{re.sub(r'[^A-Za-z0-9.=-]+', '_', desc)}_step{step}.pt"
    torch.save([m.state_dict() for m in modules], path)
    return f"The last good weights (before step {step}) are in {path}."


@dataclass
class TrainSettings:
    epochs: float = 3
    batch_size: int = 32
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    group_by_length: bool = False  # batches of similar length (EncodedSplit.batches): less padding, same examples
    precision: str = "fp32"  # training.precision: fp32 (no autocast) | bf16 | fp16 (dpbert.model.precision)

    @classmethod
    def from_dict(cls, d: dict[str, Any], **overrides: Any) -> TrainSettings:
        names = {f.name for f in fields(cls)}
        merged = {k: v for k, v in d.items() if k in names and v is not None}
        merged.update({k: v for k, v in overrides.items() if k in names and v is not None})
        return cls(**merged)

    @classmethod
    def from_training(cls, training: dict[str, Any], **overrides: Any) -> TrainSettings:
        """The settings of a config's ``training`` section: its ``finetune`` values and its ``precision``
        (fp32 when absent), then ``overrides`` (None: keep)."""
        return cls.from_dict(training["finetune"], **{"precision": training.get("precision"), **overrides})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's (every device's) generators: transformers' ``set_seed`` (the
    config's seeds are 0..2**32-1, numpy's range; tests/model/test_training.py holds the streams equal to
    the hand-written seeding it replaced)."""
    set_seed(seed)


def rng_state() -> dict[str, Any]:
    """The state of every generator ``seed_everything`` seeds (Python's, numpy's, torch's CPU and CUDA ones)."""
    import random

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict[str, Any]) -> None:
    """Put every generator back to ``state`` (``rng_state``): what a process continuing another's training
    stream starts from (a chained training job, dpbert.run.job)."""
    import random

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def linear_warmup_factor(step: int, warmup: int, total: int) -> float:
    """The learning-rate factor at ``step``: linear warm-up to 1 over ``warmup`` steps, then linear decay to 0
    at ``total``.

    Not transformers' get_linear_schedule_with_warmup: its warm-up is this one a step behind (its first step
    has lr 0; here lr / warmup), so switching would change every trained model and the committed tables."""
    return (step + 1) / max(1, warmup) if step < warmup else max(0.0, (total - step) / max(1, total - warmup))


def train_loop(
    params: Iterable[nn.Parameter] | list[dict],
    loss_fn: Callable[[dict[str, Tensor], int], Tensor],
    data: EncodedSplit,
    settings: TrainSettings,
    *,
    seed: int,
    desc: str,
    device: str | torch.device = "cpu",
    modules: Iterable[nn.Module] = (),
    extra_state: dict[str, Any] | None = None,
) -> list[float]:
    """Run ``settings.epochs`` epochs of ``loss_fn`` over ``data``; returns the per-step losses.

    ``modules`` hold what trains (their state is checkpointed, dpbert.model.checkpoint); ``extra_state``: objects
    the loss function changes between steps (a torch.Generator, a list), checkpointed with it.

    ``settings.precision``: fp32 calls ``loss_fn`` as it is; bf16 / fp16 call it (the forward and the loss)
    under ``torch.autocast`` on ``device``, the backward and the optimizer outside it, the parameters float32;
    fp16 scales the loss with a ``torch.amp.GradScaler`` (unscaled before the gradient clipping)."""
    check_precision(settings.precision, device, "training.precision")
    seed_everything(seed)
    params = list(params)
    flat = [p for g in params for p in (g["params"] if isinstance(g, dict) else [g])]
    # fused: one kernel for all parameters instead of a Python loop over ~200 tensors (9% of a demo step)
    fused = bool(flat) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in flat)
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay, fused=fused)
    steps_per_epoch = math.ceil(len(data) / settings.batch_size)
    total = max(1, int(round(settings.epochs * steps_per_epoch)))
    warmup = int(settings.warmup_ratio * total)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: linear_warmup_factor(s, warmup, total))
    scaler = grad_scaler(settings.precision, device)  # None unless fp16
    modules = list(modules)
    for m in modules:
        m.train()
    losses: list[float] = []
    step = 0
    stage = checkpoint.next_stage()  # None unless the job checkpoints (dpbert.run.job)
    covered = {id(p) for m in modules for p in m.parameters()}
    loose = [p for p in flat if id(p) not in covered]  # trained parameters outside ``modules``
    extra = dict(extra_state or {})
    if stage is not None:
        fingerprint = _fingerprint(desc, total, steps_per_epoch, len(data), seed, settings, flat, modules)
        saved = stage.load(fingerprint)
        if saved is not None:
            for m, state in zip(modules, saved["modules"], strict=True):
                m.load_state_dict(state)
            with torch.no_grad():
                for p, value in zip(loose, saved["loose"], strict=True):
                    p.copy_(value)
            checkpoint.set_rng_state(saved["rng"])
            checkpoint.set_extra_state(extra, saved["extra"])
            if saved["done"]:
                for m in modules:
                    m.eval()
                log.info("%s: finished before the restart; its final state is loaded from %s", desc, stage.path)
                return list(saved["losses"])
            optimizer.load_state_dict(saved["optimizer"])
            schedule.load_state_dict(saved["scheduler"])
            if scaler is not None:
                scaler.load_state_dict(saved["scaler"])
            losses, step = list(saved["losses"]), int(saved["step"])
            log.info("%s: resuming at step %d of %d from %s", desc, step, total, stage.path)

    def state(done: bool) -> dict[str, Any]:
        out = {"fingerprint": fingerprint, "done": done, "step": step, "losses": losses,
               "modules": [m.state_dict() for m in modules], "loose": [p.detach() for p in loose],
               "rng": checkpoint.rng_state(device), "extra": checkpoint.extra_state(extra)}
        if not done:
            out.update(optimizer=optimizer.state_dict(), scheduler=schedule.state_dict())
            if scaler is not None:
                out["scaler"] = scaler.state_dict()
        return out

    bar = tqdm(total=total, initial=step, desc=desc, mininterval=2.0, ascii=True)
    epoch, skip = divmod(step, steps_per_epoch)  # an epoch is steps_per_epoch batches, the last one may stop early
    saved_at = step  # the step the stage's checkpoint on disk holds (0: none, or nothing trained yet)
    last = checkpoint._now()
    while step < total:
        order = data.batches(settings.batch_size, shuffle=True, seed=seed + epoch, device=device,
                             group_by_length=settings.group_by_length)
        for batch in itertools.islice(order, skip, None):
            if stage is not None and stage.job.out_of_time():  # the attempt's time budget (checkpoint module)
                bar.close()
                if step > saved_at:
                    stage.save(state(done=False))
                raise stage.stop(desc, step, total)
            with autocast(settings.precision, device):  # fp32: a nullcontext, no autocast
                loss = loss_fn(batch, step)
            if not torch.isfinite(loss):
                bar.close()
                kept = _rescue(modules, desc, step)
                raise NonFiniteLossError(
                    f"{desc}: the training loss became {loss.item()} at step {step} of {total} "
                    f"(lr {settings.lr}). Lower the learning rate or check the data; the job was stopped "
                    f"and nothing from it was saved as finished. {kept}"
                )
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(flat, settings.max_grad_norm)
                optimizer.step()
            else:  # fp16: scaled backward; clip the true gradients; a step with inf/NaN gradients is skipped
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(flat, settings.max_grad_norm)
                scaler.step(optimizer)
                scaler.update()
            schedule.step()
            losses.append(loss.item())
            step += 1
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
            if stage is not None:
                stage.job.record_step(checkpoint._now() - last)
                if stage.due(step, total, steps_per_epoch):
                    stage.save(state(done=False))
                    saved_at = step
                stage.after_step(step)
                last = checkpoint._now()
            if step >= total:
                break
        epoch, skip = epoch + 1, 0
    bar.close()
    if stage is not None:
        stage.save(state(done=True))
    for m in modules:
        m.eval()
    tail = losses[-max(1, len(losses) // 10) :]
    log.info("%s: %d steps, final loss %.4f", desc, total, float(np.mean(tail)))
    return losses


def _fingerprint(desc: str, total: int, steps_per_epoch: int, examples: int, seed: int, settings: TrainSettings,
                 flat: list[nn.Parameter], modules: list[nn.Module]) -> dict[str, Any]:
    """What a stage's checkpoint must match to be resumed: its place in the job, steps, parameter shapes."""
    layout = hashlib.sha256(repr([[(k, tuple(v.shape)) for k, v in m.state_dict().items()] for m in modules]).encode())
    return {"desc": desc, "total": total, "steps_per_epoch": steps_per_epoch, "examples": examples, "seed": seed,
            "settings": settings.as_dict(), "params": [list(p.shape) for p in flat], "modules": layout.hexdigest()}


def task_loss(logits: Tensor, labels: Tensor, is_regression: bool, reduction: str = "mean") -> Tensor:
    """Cross-entropy for classification, MSE for STS-B regression (L_task)."""
    if is_regression:
        return nn.functional.mse_loss(logits.view(-1), labels.view(-1).float(), reduction=reduction)
    return nn.functional.cross_entropy(logits, labels.view(-1), reduction=reduction)
