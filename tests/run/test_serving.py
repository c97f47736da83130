"""The serving benchmark's pieces: operating points read off selected_points.csv, the throughput maths,
the rows of each layer call, and one benchmark of a tiny cut model against BERT-base."""

import math
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from baselines.truncated import BertCut
from dpbert.data.tasks import get_task
from dpbert.methods.bert_base import BertBase
from dpbert.model.method_model import MethodModel
from dpbert.run.batching import agreement
from dpbert.run.config_check import ConfigError
from dpbert.run.serving import (
    BOTH_FOLDS,
    ReusedPasses,
    Served,
    ServingSettings,
    bench_task,
    examples_per_s,
    format_rows_per_layer,
    layer_rows,
    layer_speedup,
    layer_time_share,
    operating_points,
    rows_per_call,
    serving_tasks,
    survival,
)
from tests.conftest import tiny_classifier, toy_split

ROOT = Path(__file__).resolve().parents[2]
SST2 = get_task("SST-2")

pytestmark = pytest.mark.usefixtures("one_thread")


def _line(row, method, fold, variant, knob, split="dev", task="SST-2", name=None):
    return {"task": task, "row": row, "method": method, "display_name": name or row, "split": split,
            "chosen_on": fold, "scored_on": "fold 2" if fold == "fold 1" else "fold 1", "variant": variant,
            "knob_name": "k", "knob": knob, "score": 80.0}


def _selected() -> pd.DataFrame:
    return pd.DataFrame([
        _line("bert", "bert", "fold 1", "main", 0.0), _line("bert", "bert", "fold 2", "main", 0.0),
        _line("bert_truncated:6L", "bert_truncated", "fold 1", "6L", 6.0, name="BERT-6L"),
        _line("bert_truncated:6L", "bert_truncated", "fold 2", "6L", 6.0, name="BERT-6L"),
        _line("pabee", "pabee", "fold 1", "main", 6.0), _line("pabee", "pabee", "fold 2", "main", 7.0),
        _line("dpbert_soft", "dpbert_soft", None, None, None),  # no point in the window
        _line("deebert", "deebert", "fold 1", "main", 0.2, task="CoLA"),
        _line("deebert", "deebert", "fold 1", "main", 0.3, split="dev_mismatched"),
    ])


def test_operating_points_one_per_row_or_one_per_fold_when_the_folds_disagree():
    points = operating_points(_selected(), "SST-2", "dev")
    got = [(p.row, p.display_name, p.variant, p.knob, p.chosen_on) for p in points]
    assert got == [("bert_truncated:6L", "BERT-6L", "6L", 6.0, BOTH_FOLDS),
                   ("pabee", "pabee", "main", 6.0, "fold 1"), ("pabee", "pabee", "main", 7.0, "fold 2")]
    assert points[1].key == ("pabee", "main", 6.0)
    assert operating_points(_selected(), "SST-2", "dev", skip=()) [0].method == "bert"
    assert operating_points(_selected(), "RTE", "dev") == []


def test_operating_points_refuse_a_file_of_another_layout():
    with pytest.raises(ValueError, match="lacks column.*chosen_on.*rerun the table1 rule"):
        operating_points(_selected().drop(columns=["chosen_on"]), "SST-2", "dev")


def test_throughput_speedup_and_survival_maths():
    assert examples_per_s(64, 10.0, 4) == pytest.approx(1600.0)  # 64 examples in 4 x 10 ms
    assert examples_per_s(3, 0.0, 1) == math.inf
    assert layer_speedup(12, [list(range(6)), list(range(12))]) == pytest.approx(12 / 9)
    assert layer_speedup(4, [[], []]) == math.inf
    with pytest.raises(ValueError):
        layer_speedup(12, [])
    assert survival(1.5, 2.0) == 0.75


def test_rows_per_layer_call_per_layer_and_overall():
    calls = {0: [8, 8], 1: [8, 3], 3: [1]}
    assert rows_per_call(calls, 1) == 5.5 and math.isnan(rows_per_call(calls, 2))
    assert rows_per_call(calls) == pytest.approx(28 / 5)
    assert math.isnan(rows_per_call({}))
    assert format_rows_per_layer(calls, 4) == "1:8 2:5.5 3:- 4:1"


def test_layer_rows_records_the_rows_of_every_layer_call_and_restores_the_engine():
    model = MethodModel(tiny_classifier(layers=4)).eval()
    split = toy_split(5, seed=2)
    batch = split.batch([0, 1, 2])
    with torch.inference_mode(), layer_rows(model) as calls:
        model.engine.run(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], layers=[0, 1, 3])
        model.engine.run(batch["input_ids"][:1], batch["attention_mask"][:1], batch["token_type_ids"][:1], layers=[0])
    assert calls == {0: [3, 1], 1: [3], 3: [3]}
    assert "layer" not in vars(model.engine)  # the class's own method again
    # with seconds: the time inside the layer calls, a part of the pass's own time
    seconds = [0.0]
    start = time.perf_counter()
    with torch.inference_mode(), layer_rows(model, seconds) as calls:
        model.engine.run(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], layers=[0, 1])
    total = time.perf_counter() - start
    assert calls == {0: [3], 1: [3]} and 0 < seconds[0] < total
    assert 0 < layer_time_share(seconds[0], total) < 1 and math.isnan(layer_time_share(0.0, 0.0))
    with layer_rows(object()) as nothing:  # no engine: nothing to record
        pass
    assert nothing == {}


def test_serving_tasks_default_to_the_first_and_refuse_one_the_profile_does_not_run():
    assert serving_tasks({}, ["CoLA", "SST-2"]) == ["CoLA"]
    assert serving_tasks({"tasks": []}, ["CoLA", "SST-2"]) == ["CoLA"]
    assert serving_tasks({"tasks": ["SST-2"]}, ["CoLA", "SST-2"]) == ["SST-2"]
    with pytest.raises(ConfigError, match="serving.tasks names QNLI, which the profile does not run"):
        serving_tasks({"tasks": ["QNLI"]}, ["CoLA"])


def test_serving_settings_defaults_are_the_schemas_and_bad_values_are_refused():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"]["serving"]["properties"]
    defaults = ServingSettings()
    for key, spec in props.items():
        got = getattr(defaults, key)
        assert (list(got) if isinstance(got, tuple) else got) == spec["default"], key
    assert ServingSettings.from_config({"batch_sizes": [2]}).batch_sizes == (2,)
    with pytest.raises(ConfigError, match="serving.orders has 'random'"):
        ServingSettings.from_config({"orders": ["random"]})
    with pytest.raises(ConfigError, match="serving.batch_sizes"):
        ServingSettings.from_config({"batch_sizes": []})
    with pytest.raises(ConfigError, match="serving.batchsize is not a serving setting"):
        ServingSettings.from_config({"batchsize": [1]})


class _Counting(BertCut):
    """BertCut counting its batch calls and its batch-1 calls from outside a batch."""

    def __init__(self, *args):
        super().__init__(*args)
        self.alone = self.batched = 0
        self._in_batch = False

    def predict_one(self, model, example, knob):
        self.alone += not self._in_batch
        return super().predict_one(model, example, knob)

    def predict_batch(self, model, batch, knob, exact=False):
        self.batched += 1
        self._in_batch = True
        try:
            return super().predict_batch(model, batch, knob, exact=exact)
        finally:
            self._in_batch = False


def test_reused_passes_give_the_same_agreement_for_one_pass_per_example():
    method, model, split = _Counting(None, SST2), MethodModel(tiny_classifier(layers=4)).eval(), toy_split(10, seed=4)
    direct = agreement(method, model, split, range(10), 2.0, 4)
    reused = ReusedPasses(method)
    method.alone = method.batched = 0
    for order in (False, True):
        assert agreement(reused, model, split, range(10), 2.0, 4, sort_by_length=order).n == 10
    assert agreement(reused, model, split, range(10), 2.0, 4) == direct
    assert method.alone == 10  # each example alone once, whatever the batch size and order
    assert method.batched == 6  # 3 batches per order; the third call served from the first's passes
    reused.forget_batches()
    agreement(reused, model, split, range(10), 2.0, 4)
    assert method.batched == 9 and method.alone == 10


def test_bench_task_serves_a_cut_model_against_bert_base():
    clf = tiny_classifier(layers=4)
    bert, cut = BertBase(None, SST2), BertCut(None, SST2)
    base_model, cut_model = MethodModel(clf).eval(), MethodModel(clf).eval()
    split = toy_split(9, seed=6)
    points = operating_points(pd.DataFrame([_line("bert_cut", "bert_cut", "fold 1", "main", 2.0),
                                            _line("bert_cut", "bert_cut", "fold 2", "main", 2.0)]), "SST-2", "dev")
    base = Served("bert", bert, base_model, 0.0, 4)
    served = {points[0].key: Served("bert_cut", cut, cut_model, 2.0, 4)}
    settings = ServingSettings(batch_sizes=(1, 4), orders=("arrival", "length"), examples=8, warmup=1, repeats=2)
    rows = bench_task(task="SST-2", points=points, served=served, base=base, base_forward=base.forward, split=split,
                      settings=settings, device="cpu")
    assert [(r["order"], r["batch_size"], r["n_batches"]) for r in rows] == [
        ("arrival", 1, 8), ("arrival", 4, 2), ("length", 1, 8), ("length", 4, 2)]
    for r in rows:
        assert r["n_examples"] == 8 and r["chosen_on"] == BOTH_FOLDS and r["display_name"] == "bert_cut"
        assert r["layer_speedup"] == 2.0 and r["mean_layers"] == 2.0
        assert r["survival"] == pytest.approx(r["throughput_speedup"] / 2.0)
        assert r["examples_per_s"] > 0 and r["base_examples_per_s"] > 0
        # BertCut runs its batch's rows together: the batch's rows in each layer call, the cut layers never
        b = r["batch_size"]
        assert r["rows_per_layer_call"] == f"1:{b} 2:{b} 3:- 4:-" and r["mean_rows_per_call"] == b
        assert 0 < r["layer_time_share"] < 1 and 0 < r["base_layer_time_share"] < 1
        assert r["exact"] is False  # serving.exact's default: the fast path
        assert (r["prediction_differences"], r["layer_differences"], r["agreement_n"]) == (0, 0, 8)
        assert r["threads"] == 1 and r["repeats"] == 2


def test_bench_task_runs_every_pass_in_the_timed_precision():
    """latency.precision bf16: the untimed pass and the agreement run under the same autocast as the rounds."""
    from dpbert.run import serving as serving_module

    clf = tiny_classifier(layers=4)
    bert, cut = BertBase(None, SST2), BertCut(None, SST2)
    model = MethodModel(clf).eval()
    points = operating_points(pd.DataFrame([_line("bert_cut", "bert_cut", "fold 1", "main", 3.0)]), "SST-2", "dev")
    dtypes = []
    real = serving_module.layer_rows

    def spy(model, seconds=None):
        dtypes.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return real(model, seconds)

    serving_module.layer_rows = spy
    try:
        rows = bench_task(task="SST-2", points=points, served={points[0].key: Served("bert_cut", cut, model, 3.0, 4)},
                          base=Served("bert", bert, model, 0.0, 4), base_forward=lambda b: bert.predict_batch(model, b, 0.0),
                          split=toy_split(6, seed=1), settings=ServingSettings(batch_sizes=(3,), orders=("length",),
                                                                               examples=6, warmup=0, repeats=1),
                          device="cpu", precision="bf16")
    finally:
        serving_module.layer_rows = real
    assert dtypes == [torch.bfloat16, torch.bfloat16]  # BERT-base's untimed pass, then the point's
    assert [(r["batch_size"], r["layer_speedup"], r["agreement_n"]) for r in rows] == [(3, 4 / 3, 6)]


class _Modes(BertCut):
    """BertCut recording the mode of every predict_batch call."""

    def __init__(self, *args):
        super().__init__(*args)
        self.modes: list[bool] = []

    def predict_batch(self, model, batch, knob, exact=False):
        self.modes.append(exact)
        return super().predict_batch(model, batch, knob, exact=exact)


@pytest.mark.parametrize("exact", [False, True])
def test_serving_exact_reaches_every_served_forward_and_the_agreement(exact):
    """serving.exact: the mode of BERT-base's and every point's predict_batch (untimed pass, timed rounds,
    agreement) and the rows' ``exact`` column; the default is the fast mode."""
    assert ServingSettings.from_config({}).exact is False
    assert ServingSettings.from_config({"exact": True}).exact is True
    model = MethodModel(tiny_classifier(layers=4)).eval()
    bert, cut = _Modes(None, SST2), _Modes(None, SST2)
    points = operating_points(pd.DataFrame([_line("bert_cut", "bert_cut", "fold 1", "main", 2.0)]), "SST-2", "dev")
    base = Served("bert", bert, model, 4.0, 4, exact)
    rows = bench_task(task="SST-2", points=points, served={points[0].key: Served("bert_cut", cut, model, 2.0, 4, exact)},
                      base=base, base_forward=base.forward, split=toy_split(6, seed=1),
                      settings=ServingSettings(batch_sizes=(3,), orders=("arrival",), examples=6, warmup=0,
                                               repeats=1, exact=exact), device="cpu")
    assert [r["exact"] for r in rows] == [exact]
    assert bert.modes and cut.modes and set(bert.modes) == set(cut.modes) == {exact}
