"""What every workflow script does first and last: log to the rule's log, fix threads, write atomically."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from dpbert.model.writes import writing
from dpbert.run import reproducible


def setup(log_path: str | Path, threads: int) -> logging.Logger:
    """Send stderr (tqdm bars, warnings) and logging to the rule's log; fix torch's thread count; in
    reproducible mode, refuse to run unless the pinned CPU arithmetic is in effect (reproducible.check)."""
    log_file = open(log_path, "a", buffering=1)  # noqa: SIM115 (kept open for the process)
    sys.stderr = log_file
    logging.basicConfig(
        level=logging.INFO, stream=log_file, force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    torch.set_num_threads(max(1, int(threads)))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    log = logging.getLogger("dpbert")
    pinned = reproducible.check()  # before any arithmetic; raises NotReproducible into the log
    log.info("torch %s, %d threads, %s kernels, reproducible CPU arithmetic %s", torch.__version__,
             torch.get_num_threads(), torch.backends.cpu.get_cpu_capability(), "on" if pinned else "off")
    return log


@contextmanager
def atomic_dir(final: str | Path):
    """Yield a temporary folder that becomes ``final`` only if the block finishes."""
    final = Path(final)
    tmp = final.with_name(final.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with writing(tmp, "the output"):
        tmp.write_text(text)
    tmp.replace(path)


def atomic_write_df(df, path: str | Path, **kwargs) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    tmp = path.with_name(path.name.removesuffix(suffix) + ".partial" + suffix)
    with writing(tmp, "the output"):
        df.to_csv(tmp, index=False, **kwargs)
    tmp.replace(path)


@contextmanager
def phase(phases: dict[str, float], name: str):
    """Add the block's wall time to ``phases[name]`` (where a job's time goes, for phases.json)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = phases.get(name, 0.0) + time.perf_counter() - start


def process_age_s() -> float:
    """Seconds since the job's process started: at a job's first line, what interpreter start-up and
    imports cost. A warm job (a fork of the warm server) counts from the start of the process Snakemake
    started for it (the thin client, whose pid the server passes on), so its wall time is the job's."""
    import psutil

    from dpbert.run.warm import CHILD_ENV, CLIENT_PID_ENV

    proc = psutil.Process()
    if os.environ.get(CHILD_ENV) and os.environ.get(CLIENT_PID_ENV):
        try:
            proc = psutil.Process(int(os.environ[CLIENT_PID_ENV]))
        except (ValueError, psutil.Error):
            pass  # the client is gone (killed): the fork's own age is all there is
    return time.time() - proc.create_time()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
