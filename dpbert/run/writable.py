"""Before the first job: every folder the run writes can be written.

Why: a read-only results/ (a checkout owned by someone else, a read-only mount) was found only when
the reporting rules ran, after every model had been trained. The Snakefile's ``onstart`` handler
calls :func:`check_run_folders` once the DAG is built and before any job starts (not on a dry run,
and not in the processes that run single jobs); it creates each folder and a temporary file in it,
and refuses with one paragraph naming the folder and the fix.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from dpbert.run.config_check import ConfigError
from dpbert.run.profiles import figures_dir, results_dir


class NotWritableError(ConfigError):
    """A folder the run writes cannot be created or written (a ConfigError: refused before any job)."""


def run_folders(config: dict[str, Any]) -> list[tuple[str, Path, str]]:
    """(what, folder, fix) for each folder a run of ``config`` writes: its work folder (models,
    records), its results/ and its figures/ folders, relative to the working directory."""
    profile = config["profile"]
    work = Path(config.get("workdir", "work")) / profile
    own = "make it writable (chmod u+w on it and its parents) or run from a copy of the repository you can write to"
    return [
        ("work folder", work, (f"make it writable, or set `workdir:` in the config to a folder you can write "
                               f"(its models and records go to <workdir>/{profile}/)")),
        ("results folder", Path(results_dir(profile)), own),
        ("figures folder", Path(figures_dir(profile)), own),
    ]


def check_writable(folder: Path, what: str, fix: str) -> None:
    """Create ``folder`` (and its parents) and a temporary file in it, then remove the file; an
    OSError either way raises :class:`NotWritableError` naming the folder and ``fix``."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise NotWritableError(
            f"the {what} {folder} cannot be written ({reason}), so this run would train every job and "
            f"then fail to write its outputs; nothing was started. Fix: {fix}."
        ) from exc


def check_run_folders(config: dict[str, Any]) -> None:
    """:func:`check_writable` for every folder of :func:`run_folders`."""
    for what, folder, fix in run_folders(config):
        check_writable(folder, what, fix)
