"""Mixed precision (``training.precision``, ``latency.precision``): fp32 | bf16 | fp16.

fp32 is the default and enters no autocast at all (a ``nullcontext``), so it trains and times bit for bit
as the code did before these keys existed. bf16 and fp16 run the wrapped forwards under ``torch.autocast``;
the parameters (master weights), their gradients and the optimizer state stay float32. fp16 training also
scales the loss (``torch.amp.GradScaler``), bf16 needs no scaling (float32's exponent range).

Checked with torch 2.13 (CPU build): CPU autocast runs bf16 and fp16, and ``GradScaler("cpu")`` exists, so
both are allowed on cpu and cuda (fp16 on a CPU without native half arithmetic is slower than fp32; it is
allowed so that its code path is tested here). Other devices (mps) are refused for anything but fp32.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
AUTOCAST_DEVICES = ("cpu", "cuda")


def check_precision(precision: str, device: str | torch.device, key: str) -> str:
    """``precision`` if it is one of PRECISIONS and runs on ``device``; else a ValueError naming ``key``."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"`{key}: {precision}` is not a precision this harness knows. Set `{key}` to one of "
            f"{', '.join(PRECISIONS)} (fp32, the default, reproduces the committed results bit for bit)."
        )
    kind = torch.device(device).type
    if precision != "fp32" and kind not in AUTOCAST_DEVICES:
        raise ValueError(
            f"`{key}: {precision}` asks for autocast on device '{device}', but mixed precision is only "
            f"supported here on {' and '.join(AUTOCAST_DEVICES)}. Set `{key}: fp32` or run on a cpu or "
            f"cuda device."
        )
    return precision


def autocast(precision: str, device: str | torch.device) -> AbstractContextManager:
    """The context a forward runs in: nothing for fp32, ``torch.autocast`` at bf16 / fp16 otherwise."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=DTYPES[precision])


def grad_scaler(precision: str, device: str | torch.device) -> torch.amp.GradScaler | None:
    """A loss scaler for fp16 training (half's narrow exponent underflows small gradients); None otherwise."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(torch.device(device).type)
