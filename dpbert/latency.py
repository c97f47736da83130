"""Batch-size-1 latency: inputs pre-tokenised, warm-up, fixed threads, device sync, median of repeats.

One measurement = the mean per-example wall time of one pass over a fixed list of examples (so an
adaptive method's cheap and expensive inputs both count); the reported latency is the median of
``repeats`` such passes, and the spread (max - min) / median is kept next to it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor


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
) -> Latency:
    """Time ``forward`` on each example at batch size 1; tokenisation happened before this call."""
    with torch.inference_mode():
        for i in range(warmup):
            forward(examples[i % len(examples)])
        _sync(device)
        per_repeat: list[float] = []
        for _ in range(repeats):
            total = 0.0
            for example in examples:
                _sync(device)
                start = time.perf_counter()
                forward(example)
                _sync(device)
                total += time.perf_counter() - start
            per_repeat.append(1000.0 * total / len(examples))
    med = statistics.median(per_repeat)
    return Latency(med, (max(per_repeat) - min(per_repeat)) / med, per_repeat, torch.get_num_threads(), device)
