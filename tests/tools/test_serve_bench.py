"""python -m dpbert.tools.serve_bench: where it reads a finished run (the workflow's layout) and what it refuses.
The benchmark itself: tests/run/test_serving.py; on a built micro run: tests/workflow/test_workflow.py."""

from pathlib import Path

import pytest

from dpbert.tools.serve_bench import main, run_paths
from tests.conftest import MICRO


def test_run_paths_follow_the_workflow_layout(tmp_path):
    config = {"workdir": "work", "profile": "micro", "seeds": [3, 1], "tasks": ["SST-2", "STS-B"],
              "methods": {"bert_cut": {}, "deebert": {}, "pabee": {}}}
    paths = run_paths(config, tmp_path, ["STS-B"])
    work = tmp_path / "work" / "micro"
    assert paths["selected_csv"] == tmp_path / "results/micro/selected_points.csv"
    assert paths["out_csv"] == tmp_path / "results/micro/serving.csv"
    assert paths["figure"] == tmp_path / "figures/micro/serving.png"
    assert paths["data_paths"] == {"STS-B": work / "data/STS-B.pt"} and paths["seed"] == 3
    # BERT-base always; a method that trains nothing reads BERT-base's folder; DeeBERT has no STS-B job
    assert paths["model_dirs"] == {("STS-B", "bert"): work / "models/STS-B/bert/3",
                                   ("STS-B", "bert_cut"): work / "models/STS-B/bert/3",
                                   ("STS-B", "pabee"): work / "models/STS-B/pabee/3"}
    assert run_paths({**config, "profile": "demo"}, Path("."), ["SST-2"])["out_csv"] == Path("results/serving.csv")


def test_a_directory_without_a_finished_run_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--configfile", str(MICRO), "--directory", str(tmp_path)])
    assert exit_.value.code == 2
    assert "selected_points.csv does not exist" in capsys.readouterr().err


def test_a_task_the_profile_does_not_run_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--configfile", str(MICRO), "--directory", str(tmp_path), "--tasks", "QNLI"])
    assert exit_.value.code == 2
    assert "serving.tasks names QNLI" in capsys.readouterr().err
