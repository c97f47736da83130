import logging

import pandas as pd

from dpbert.data.tasks import get_task
from dpbert.model.method_model import MethodModel, save_method_model
from dpbert.model.sources import ModelSource, load_tokenizer
from dpbert.reporting.glue_submission import (
    chosen_point,
    submission_frame,
    write_submission,
)
from dpbert.run.prepare import prepare_task
from tests.conftest import tiny_classifier

SMALL = {"source": "small", "max_length": 48, "small": {"num_hidden_layers": 2, "hidden_size": 32,
                                                         "num_attention_heads": 2, "intermediate_size": 64}}


def test_submission_format_per_task():
    mnli = submission_frame(get_task("MNLI"), [0, 2, 1])
    assert list(mnli.columns) == ["index", "prediction"]
    assert list(mnli["prediction"]) == ["entailment", "contradiction", "neutral"]
    assert list(submission_frame(get_task("RTE"), [1])["prediction"]) == ["not_entailment"]
    assert list(submission_frame(get_task("STS-B"), [-0.5, 2.25, 7.0])["prediction"]) == [0.0, 2.25, 5.0]
    assert list(submission_frame(get_task("SST-2"), [1, 0])["prediction"]) == [1, 0]


def test_chosen_point_skips_empty_cells():
    selected = pd.DataFrame({"task": ["SST-2", "RTE"], "method": ["dpbert"] * 2, "variant": ["t0.25", ""],
                             "knob": [0.5, float("nan")], "score": [80.0, float("nan")]})
    assert chosen_point(selected, "SST-2", "dpbert") == ("t0.25", 0.5)
    assert chosen_point(selected, "RTE", "dpbert") is None


def test_writes_one_file_per_test_split(tmp_path):
    data = {"source": "synthetic", "synthetic_train": 16, "synthetic_dev": 8, "with_test": True}
    log = logging.getLogger("test")
    for task in ("SST-2", "MNLI"):
        prepare_task(task, data, SMALL, tmp_path / f"{task}.pt", log)
        spec = get_task(task)
        clf = tiny_classifier(num_labels=spec.num_labels, layers=2)
        clf.resize_token_embeddings(len(load_tokenizer(ModelSource.from_config(SMALL))))
        save_method_model(MethodModel(clf), load_tokenizer(ModelSource.from_config(SMALL)),
                          tmp_path / "models" / task / "main", {"method": "bert"})
    selected = tmp_path / "selected.csv"
    pd.DataFrame({"task": ["SST-2", "MNLI"], "method": ["bert"] * 2, "variant": ["main"] * 2,
                  "knob": [0.0, 0.0], "score": [1.0, 1.0]}).to_csv(selected, index=False)
    out = tmp_path / "glue_test"
    write_submission("bert", ["SST-2", "MNLI"], str(selected),
                     {t: str(tmp_path / "models" / t) for t in ("SST-2", "MNLI")},
                     {t: str(tmp_path / f"{t}.pt") for t in ("SST-2", "MNLI")}, {}, str(out), "cpu")
    assert sorted(p.name for p in out.iterdir()) == ["MNLI-m.tsv", "MNLI-mm.tsv", "SST-2.tsv"]
    mnli = pd.read_csv(out / "MNLI-m.tsv", sep="\t")
    assert len(mnli) == 8 and set(mnli["prediction"]) <= {"entailment", "neutral", "contradiction"}
