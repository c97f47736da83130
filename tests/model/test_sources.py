"""Tests for dpbert.model.sources: a saved model folder with a truncated file is one paragraph naming
the file and the fix (delete the job's folder, rerun), for a method's checkpoint and stage 1 alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from dpbert.model.method_model import MethodModel, load_method_model, save_method_model
from dpbert.model.sources import (
    ModelLoadError,
    job_folder_fix,
    load_classifier,
    save_classifier,
)
from tests.conftest import tiny_classifier


def _truncate(path: Path) -> None:
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # what a full disk or a killed copy leaves


@pytest.mark.parametrize("name", ["model.safetensors", "config.json"])
def test_truncated_stage1_folder_names_the_file_and_the_job_to_rerun(tmp_path, tokenizer, name):
    job = tmp_path / "work" / "demo" / "models" / "SST-2" / "bert" / "1"
    stage1 = job / "main" / "backbone"  # where the BERT-base job keeps the model every method starts from
    save_classifier(tiny_classifier(), tokenizer, stage1)
    load_classifier(stage1)  # whole: it loads
    _truncate(stage1 / name)
    with pytest.raises(ModelLoadError) as ei:
        load_classifier(stage1)
    msg = str(ei.value)
    assert msg.startswith(f"the saved model file {stage1 / name} could not be read (")
    assert "corrupt or truncated" in msg and "\n" not in msg
    assert msg.endswith(f"Fix: delete {job / 'main'} (the output of the train_variant job SST-2/bert/seed 1/main) "
                        "and rerun the workflow; Snakemake reruns that job, which writes it anew.")


@pytest.mark.parametrize("name", ["model.safetensors", "config.json"])
def test_truncated_method_checkpoint_names_the_file(tmp_path, tokenizer, name):
    job = tmp_path / "models" / "RTE" / "layerdrop" / "3"
    save_method_model(MethodModel(tiny_classifier()), tokenizer, job / "keep2", {"method": "layerdrop"})
    _truncate(job / "keep2" / "backbone" / name)
    with pytest.raises(ModelLoadError) as ei:
        load_method_model(job / "keep2")
    msg = str(ei.value)
    assert f"the saved model file {job / 'keep2' / 'backbone' / name} could not be read" in msg
    assert "corrupt or truncated" in msg
    assert f"Fix: delete {job / 'keep2'} (the output of the train_variant job RTE/layerdrop/seed 3/keep2)" in msg


def test_fix_outside_the_workflow_layout_names_the_folder(tmp_path):
    assert job_folder_fix(tmp_path / "mine") == f"Fix: delete {tmp_path / 'mine'} and rerun the job that writes it."
