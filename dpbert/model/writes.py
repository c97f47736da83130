"""A write that fails for lack of room ends its job with one paragraph naming the file and the fix.

A full disk, a used-up quota or a file-size limit (``ulimit -f``, a cluster's per-job limit) surface in
three shapes: ``OSError`` with errno ENOSPC / EDQUOT / EFBIG (Python's own writes: CSV, JSON, text),
safetensors' ``SafetensorError`` ("I/O error: File too large (os error 27)") and torch.save's
``RuntimeError`` from its C++ writer ("basic_ios::clear: iostream error", "unexpected pos ...",
"PytorchStreamWriter failed writing file"), none of which names the file. ``writing(path, what)``
around a write turns each into :class:`WriteFailedError`. Every output of this project is written under
a ``.partial`` name first (dpbert.run.runtime.atomic_*, checkpoints, prepared data), so a failed write
never leaves a file that looks finished, and finished jobs keep their records.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REASONS = {
    errno.ENOSPC: "the file system holding it is full",
    errno.EDQUOT: "the disk quota of this user is used up",
    errno.EFBIG: "a file-size limit stops it (`ulimit -f`, or a cluster's limit per job)",
}
# what torch.save's and safetensors' writers say when a write of theirs fails (they name no errno)
_STREAM_SIGNS = ("iostream error", "unexpected pos", "PytorchStreamWriter failed", "file write failed")
_OS_ERROR_IN_TEXT = re.compile(r"os error (\d+)")


class WriteFailedError(OSError):
    """A job's output could not be written for lack of room; the message is the whole story."""


def room_reason(exc: BaseException) -> str | None:
    """Why ``exc`` is a write that ran out of room (REASONS' words), or None if it is some other error."""
    if isinstance(exc, OSError) and exc.errno in REASONS:
        return REASONS[exc.errno]
    text = str(exc)
    if (found := _OS_ERROR_IN_TEXT.search(text)) and int(found.group(1)) in REASONS:
        return REASONS[int(found.group(1))]
    if isinstance(exc, RuntimeError) and any(sign in text for sign in _STREAM_SIGNS):
        return "the file system holding it is full or a file-size limit (`ulimit -f`) stops it"
    return None


def failure_message(path: str | Path, what: str, reason: str, detail: str) -> str:
    folder = Path(path).parent
    return (f"Writing {what} {str(path)!r} failed: {reason} ({detail.strip().splitlines()[0][:160]}). "
            f"Free space where it goes (`df -h {folder}`), or raise the limit, then rerun the same command: "
            "the jobs that finished keep their records, a partly written file is never taken for a finished "
            "one (it is written under a .partial name first), and a training job resumes from its last "
            "checkpoint.")


@contextmanager
def writing(path: str | Path, what: str) -> Iterator[None]:
    """Run a write of ``what`` to ``path``; a failure for lack of room becomes one paragraph naming both."""
    try:
        yield
    except WriteFailedError:
        raise
    except Exception as exc:  # OSError, RuntimeError (torch.save), SafetensorError (its own Exception)
        reason = room_reason(exc)
        if reason is None:
            raise
        raise WriteFailedError(failure_message(path, what, reason, str(exc) or type(exc).__name__)) from None
