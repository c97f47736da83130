"""Batch-size-1 latency: inputs pre-tokenised, warm-up, fixed threads, device sync, median of repeats.

One measurement = the mean per-example wall time of one pass over a fixed list of examples (so an
adaptive method's cheap and expensive inputs both count); the reported latency is the median of
``repeats`` such passes, and the spread (max - min) / median is kept next to it. Forwards that are
compared (BERT-base and a method's points) are timed in interleaved rounds, never one after the other.
``latency.precision`` (bf16 / fp16) times every forward of those rounds under one ``torch.autocast``; fp32,
the default, enters none (dpbert.model.precision).
"""

from __future__ import annotations

import fcntl
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from dpbert.model.precision import autocast, check_precision


@dataclass
class Latency:
    median_ms: float
    spread: float  # (max - min) / median over repeats
    repeats_ms: list[float]
    threads: int
    device: str

    def as_dict(self) -> dict:
        return asdict(self)


def describe_device(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(torch.device(device))})"
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def resolve_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"the config asks for device '{requested}' but torch sees no CUDA GPU here. Set "
            "`device: cpu` (or `auto`) in the config, or run on a machine with a GPU."
        )
    return requested


def paired_speedup(base: Latency, other: Latency) -> tuple[float, float]:
    """Speed-up of ``other`` over ``base`` timed in the same rounds: the median over rounds of the
    round's ratio, and the spread (max - min) / median of those ratios. A slowdown of the machine
    that lasts a round slows both passes of the round, so it cancels in the ratio."""
    ratios = [b / o for b, o in zip(base.repeats_ms, other.repeats_ms)]
    med = statistics.median(ratios)
    return med, (max(ratios) - min(ratios)) / med


@contextmanager
def timing_lock(path: str | Path | None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` while timing, so two jobs of one machine never time at once
    (``--cores 2``); the OS drops it if the job dies. ``None``: no lock (a cluster, one device per job)."""
    if path is None:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(
    forward: Callable[[dict[str, Tensor]], object],
    examples: Sequence[dict[str, Tensor]],
    *,
    warmup: int,
    repeats: int,
    device: str,
    precision: str = "fp32",
) -> Latency:
    """Time ``forward`` on each example at batch size 1; tokenisation happened before this call."""
    return measure_interleaved([forward], examples, warmup=warmup, repeats=repeats, device=device,
                               precision=precision)[0]


def measure_interleaved(
    forwards: Sequence[Callable[[dict[str, Tensor]], object]],
    examples: Sequence[dict[str, Tensor]],
    *,
    warmup: int,
    repeats: int,
    device: str,
    precision: str = "fp32",
) -> list[Latency]:
    """Time several forwards (BERT-base and a method's sweep points) in rounds. A round is one pass of
    every forward over the examples, interleaved example by example: each example is run by every
    forward in turn (the order rotated from one example to the next) before the next example, so two
    forwards' passes of a round span the same seconds and a burst of load on a shared machine reaches
    them alike. ``paired_speedup`` then compares two forwards round by round. ``precision``: every forward
    (warm-up and rounds) runs inside one autocast at bf16 / fp16, entered before the first; fp32 enters none."""
    check_precision(precision, device, "latency.precision")
    with torch.inference_mode(), autocast(precision, device):
        for forward in forwards:
            for i in range(warmup):
                forward(examples[i % len(examples)])
        _sync(device)
        passes: list[list[float]] = [[] for _ in forwards]
        for _ in range(repeats):
            for k, total in enumerate(_one_round(forwards, examples, device)):
                passes[k].append(1000.0 * total / len(examples))
    threads = torch.get_num_threads()
    medians = [statistics.median(p) for p in passes]
    return [Latency(m, (max(p) - min(p)) / m, p, threads, device) for m, p in zip(medians, passes)]


# Not torch.utils.benchmark.Timer: it times one statement in blocks of repeated runs (and sets its own thread
# count); the pairing here times each forward one call at a time, alternating per example, so a Timer would only wrap
# perf_counter and the device sync below.
def _one_round(
    forwards: Sequence[Callable[[dict[str, Tensor]], object]], examples: Sequence[dict[str, Tensor]], device: str
) -> list[float]:
    """Each forward's total wall time (s) over the examples; each call timed alone, the device synced
    around it; example j starts with forward j mod len(forwards)."""
    totals = [0.0] * len(forwards)
    n = len(forwards)
    for j, example in enumerate(examples):
        for step in range(n):
            k = (j + step) % n
            _sync(device)
            start = time.perf_counter()
            forwards[k](example)
            _sync(device)
            totals[k] += time.perf_counter() - start
    return totals
