"""Tests for dpbert.run.writable: a folder the run cannot write is refused before the first job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dpbert.run import writable
from dpbert.run.config_check import ConfigError
from dpbert.run.writable import (
    NotWritableError,
    check_run_folders,
    check_writable,
    run_folders,
)
from tests.conftest import MICRO

ROOT = Path(__file__).resolve().parents[2]
AS_ROOT = os.geteuid() == 0  # root ignores permission bits: there the denial is simulated


def _deny_writes_in(monkeypatch, folder: Path) -> None:
    """What a read-only folder does to a non-root user: creating a file in it fails with EACCES."""
    real = writable.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == folder.resolve():
            raise PermissionError(13, "Permission denied", str(Path(dir) / ".write-check-x"))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(writable.tempfile, "mkstemp", mkstemp)


def test_read_only_folder_is_refused_naming_it_and_the_fix(tmp_path, monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    results.chmod(0o500)
    if AS_ROOT:
        _deny_writes_in(monkeypatch, results)
    try:
        with pytest.raises(NotWritableError) as ei:
            check_writable(results, "results folder", "make it writable")
    finally:
        results.chmod(0o700)
    msg = str(ei.value)
    assert isinstance(ei.value, ConfigError) and "\n" not in msg
    assert msg.startswith(f"the results folder {results} cannot be written (PermissionError: [Errno 13]")
    assert msg.endswith("nothing was started. Fix: make it writable.")
    assert list(results.iterdir()) == []


def test_folder_that_cannot_be_created_is_refused(tmp_path):
    (tmp_path / "work").write_text("a file where the work folder goes")  # refused even as root
    with pytest.raises(NotWritableError, match=r"the work folder .*work/micro cannot be written \(NotADirectoryError"):
        check_writable(tmp_path / "work" / "micro", "work folder", "set workdir")


def test_writable_folders_are_created_and_left_empty(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_run_folders({"profile": "micro", "workdir": "scratch"})
    assert [str(f) for _, f, _ in run_folders({"profile": "micro", "workdir": "scratch"})] == [
        "scratch/micro", "results/micro", "figures/micro"]
    for folder in ["scratch/micro", "results/micro", "figures/micro"]:
        assert (tmp_path / folder).is_dir() and list((tmp_path / folder).iterdir()) == []
    assert [str(f) for _, f, _ in run_folders({"profile": "demo"})] == ["work/demo", "results", "figures"]


def test_workflow_refuses_before_the_first_job_but_a_dry_run_does_not(tmp_path):
    results = tmp_path / "results"
    if AS_ROOT:  # a link into /proc, where nothing can be created, root included
        results.symlink_to("/proc/dpbert-no-results-here")
    else:
        results.mkdir(mode=0o500)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(MICRO), "--cores", "1"]
    try:
        dry = subprocess.run([*cmd, "-n"], capture_output=True, text=True, timeout=300, check=False)
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    finally:
        if not AS_ROOT:
            results.chmod(0o700)
    assert dry.returncode == 0, dry.stdout[-2000:]
    assert run.returncode != 0
    out = run.stdout + run.stderr
    assert "the results folder results/micro cannot be written (" in out and "Fix: make it writable" in out
    assert (tmp_path / "work" / "micro").is_dir()  # checked first, and created
    assert not (tmp_path / "work" / "micro" / "data").exists()  # no job ran
