"""Tests for dpbert.run.prepare: a prepared-data file round-trips, and a truncated one is one paragraph."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from dpbert.data.sources import DataError
from dpbert.run.prepare import load_prepared, prepare_task

ROOT = Path(__file__).resolve().parents[2]
MICRO = yaml.safe_load((ROOT / "tests" / "config" / "micro.yaml").read_text())


@pytest.fixture(scope="module")
def prepared_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepare") / "data" / "SST-2.pt"
    data = {**MICRO["data"], "synthetic_train": 16, "synthetic_dev": 8}
    prepare_task("SST-2", data, MICRO["model"], out, logging.getLogger("test"))
    return out


def test_prepared_file_round_trips(prepared_file: Path) -> None:
    prepared = load_prepared(prepared_file)
    assert prepared.task == "SST-2" and len(prepared.splits["train"]) == 16
    assert len(prepared.dev_splits()["dev"]) == 8 and len(prepared.examples["dev"]) == 8


@pytest.mark.parametrize("keep", [0.5, 0.01])
def test_truncated_prepared_file_is_one_paragraph_naming_it_and_the_fix(prepared_file: Path, tmp_path: Path,
                                                                         keep: float) -> None:
    broken = tmp_path / "SST-2.pt"
    whole = prepared_file.read_bytes()
    broken.write_bytes(whole[: int(len(whole) * keep)])  # what a full disk or a cut-off copy leaves
    with pytest.raises(DataError) as ei:
        load_prepared(broken)
    msg = str(ei.value)
    assert msg.startswith(f"the prepared data file {str(broken)!r} could not be read (")
    assert "truncated or corrupt" in msg and "Fix: delete it and rerun the workflow" in msg
    assert "prepare_data rule" in msg and "\n" not in msg


def test_a_file_that_is_not_prepared_data_is_refused_too(tmp_path: Path) -> None:
    import torch

    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(DataError, match=r"other\.pt.*KeyError: 'task'"):
        load_prepared(other)
