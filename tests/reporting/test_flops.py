"""FLOPs per example of the sweep points (dpbert.reporting.flops) and Table 1's speedup_flops."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from dpbert.data.tasks import get_task
from dpbert.methods.registry import build_method
from dpbert.model.flops import head_flops, layer_flops
from dpbert.reporting.flops import (
    FLOPS_COLUMNS,
    BackboneSizes,
    add_flops,
    backbone_sizes,
    dev_lengths,
    executed_layers,
    job_flops,
    point_flops,
    reference_flops,
)
from dpbert.reporting.table1 import table1, table1_markdown
from tests.reporting.frames import table_rows

SIZES = BackboneSizes(n_layers=4, hidden=8, intermediate=16)
SST2, MNLI = get_task("SST-2"), get_task("MNLI")


def _preds(rows: list[tuple[str, float, str, int, str]]) -> pd.DataFrame:
    """(variant, knob, split, idx, executed) rows, as read_predictions reads a job's predictions."""
    return pd.DataFrame(rows, columns=["variant", "knob", "split", "idx", "executed"])


def _layers(n: int) -> str:
    return " ".join(str(j + 1) for j in range(n))


def test_executed_layers_are_one_based_in_the_records():
    assert executed_layers("1 2 5") == [0, 1, 4]
    assert executed_layers("") == [] and executed_layers("nan") == [] and executed_layers(float("nan")) == []


def test_point_flops_by_hand():
    lengths = {"dev": [5, 9]}
    lf = [layer_flops(n, 8, 16) for n in lengths["dev"]]
    head = head_flops(8, 2)
    preds = _preds([("main", 0.0, "dev", 0, _layers(4)), ("main", 0.0, "dev", 1, _layers(4)),
                    ("main", 1.0, "dev", 0, _layers(1)), ("main", 1.0, "dev", 1, _layers(3))])
    bert = build_method("bert", None, SST2)
    out = point_flops(preds, lengths, SIZES, 2, bert.overhead_flops).set_index("knob")
    base = (4 * lf[0] + head + 4 * lf[1] + head) / 2
    assert out.loc[0.0, "flops_per_example"] == pytest.approx(base)
    assert out.loc[0.0, "flops_speedup"] == 1.0  # every layer: BERT-base itself
    point = (1 * lf[0] + head + 3 * lf[1] + head) / 2
    assert out.loc[1.0, "flops_per_example"] == pytest.approx(point)
    assert out.loc[1.0, "base_flops_per_example"] == pytest.approx(base)
    assert out.loc[1.0, "flops_speedup"] == pytest.approx(base / point)
    # an example that skips every layer (DPBERT above every p_i) still pays its planners and head
    dp = build_method("dpbert", None, SST2)
    none = point_flops(_preds([("t0.25", 1.0, "dev", 0, "")]), lengths, SIZES, 2, dp.overhead_flops)
    assert none["flops_per_example"].iloc[0] == 4 * 2 * 8 + head


def test_point_flops_refuses_records_of_another_preparation():
    preds = _preds([("main", 0.0, "dev_matched", 0, "1")])
    with pytest.raises(ValueError, match="dev_matched.*rerun the workflow"):
        point_flops(preds, {"dev": [3]}, SIZES, 2, lambda *a: 0)
    with pytest.raises(ValueError, match="example 3.*1 examples"):
        point_flops(_preds([("main", 0.0, "dev", 3, "1")]), {"dev": [3]}, SIZES, 2, lambda *a: 0)


def test_add_flops_adds_two_columns_and_changes_nothing_else():
    sweep = pd.DataFrame({"task": ["RTE", "RTE", "RTE"], "method": ["bert", "deebert", "deebert"], "seed": [1, 1, 1],
                          "variant": ["main", "main", "main"], "knob": [0.0, 0.1 + 0.2, 0.5],
                          "split": ["dev", "dev", "dev"], "layer_speedup": [1.0, 1.5, 2.0]})
    flops = pd.DataFrame({"task": ["RTE", "RTE"], "method": ["bert", "deebert"], "seed": [1, 1],
                          "variant": ["main", "main"], "knob": [0.0, 0.3], "split": ["dev", "dev"],
                          "flops_per_example": [100.0, 70.0], "flops_speedup": [1.0, 100 / 70]})
    out = add_flops(sweep, flops)
    assert list(out.columns) == list(sweep.columns) + FLOPS_COLUMNS
    pd.testing.assert_frame_equal(out[sweep.columns], sweep)
    assert out["flops_per_example"].tolist()[:2] == [100.0, 70.0]  # 0.1 + 0.2 matches 0.3
    assert np.isnan(out["flops_speedup"].iloc[2])  # no record of that point: empty, not invented
    assert add_flops(sweep, flops.iloc[0:0])[FLOPS_COLUMNS].isna().all().all()


def test_backbone_sizes_and_lengths_from_the_files(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"num_hidden_layers": 6, "hidden_size": 384, "intermediate_size": 1536}))
    assert backbone_sizes(cfg) == BackboneSizes(6, 384, 1536)
    cfg.write_text("{}")
    with pytest.raises(ValueError, match="could not be read.*rerun the workflow"):
        backbone_sizes(cfg)
    data = tmp_path / "MNLI.pt"
    split = {"input_ids": [[2, 5, 3], [2, 5, 6, 7, 3]], "token_type_ids": [[0] * 3, [0] * 5], "labels": [0, 1],
             "is_regression": False}
    torch.save({"task": "MNLI", "splits": {"train": split, "dev_matched": split, "dev_mismatched": split},
                "examples": {}}, data)
    assert dev_lengths(data) == {"dev_matched": [3, 5], "dev_mismatched": [3, 5]}


def test_job_flops_reads_every_job_with_its_method_s_overhead(tmp_path):
    data = tmp_path / "SST-2.pt"
    split = {"input_ids": [[2, 5, 3], [2, 5, 6, 7, 8, 3]], "token_type_ids": [[0] * 3, [0] * 6], "labels": [0, 1],
             "is_regression": False}
    torch.save({"task": "SST-2", "splits": {"train": split, "dev": split}, "examples": {}}, data)
    stage1 = tmp_path / "models" / "SST-2" / "bert" / "1"
    (stage1 / "main" / "backbone").mkdir(parents=True)
    (stage1 / "main" / "backbone" / "config.json").write_text(
        json.dumps({"num_hidden_layers": 4, "hidden_size": 8, "intermediate_size": 16}))
    paths = []
    for method, rows in (("bert", [("main", 0.0, "dev", 0, _layers(4)), ("main", 0.0, "dev", 1, _layers(4))]),
                         ("deebert", [("main", 0.2, "dev", 0, _layers(1)), ("main", 0.2, "dev", 1, _layers(4))])):
        path = tmp_path / f"{method}.csv.gz"
        _preds(rows).assign(label=0, pred=0, n_executed=0).to_csv(path, index=False)
        paths.append(str(path))
    out = job_flops(prediction_paths=paths, jobs=[["SST-2", "bert", 1], ["SST-2", "deebert", 1]],
                    data_paths={"SST-2": str(data)}, stage1_dirs={("SST-2", 1): str(stage1)},
                    method_params={"deebert": {"entropies": [0.2]}}).set_index("method")
    lf = [layer_flops(3, 8, 16), layer_flops(6, 8, 16)]
    head, ramp = head_flops(8, 2), head_flops(8, 2)  # DeeBERT's ramp: its own pooler + classifier
    base = (4 * lf[0] + 4 * lf[1]) / 2 + head
    dee = (1 * lf[0] + ramp + 4 * lf[1] + 3 * ramp + head) / 2
    assert out.loc["bert", "flops_per_example"] == pytest.approx(base)
    assert out.loc["deebert", "flops_per_example"] == pytest.approx(dee)
    assert out.loc["deebert", "flops_speedup"] == pytest.approx(base / dee)
    assert out.loc["deebert", "seed"] == 1 and out.loc["deebert", "task"] == "SST-2"


# --------------------------------------------------------------------------- FLOPs vs layer speed-up


def _speedups(method, lengths, executed, sizes=SIZES, num_labels=2, reference=None):
    """(layer speed-up N / mean executed, FLOPs speed-up) of one point whose examples ran ``executed``."""
    preds = _preds([("main", 0.0, "dev", i, _layers(k)) for i, k in enumerate(executed)])
    out = point_flops(preds, {"dev": lengths}, sizes, num_labels, method.overhead_flops).iloc[0]
    return (reference or sizes.n_layers) / np.mean(executed), float(out["flops_speedup"])


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_a_static_row_s_flops_speedup_is_its_layer_speedup_up_to_the_head_share(k):
    """BERT-kL: (N a + h) / (k a + h) against N / k, a the mean layer cost: the gap is exactly h (N - k) /
    (k (k a + h)), the head both pay, whatever the lengths (every example runs k layers)."""
    lengths = [3, 7, 12, 20]
    layer, flops = _speedups(build_method("bert_truncated", None, SST2), lengths, [k] * len(lengths))
    a = np.mean([layer_flops(n, 8, 16) for n in lengths])
    h = head_flops(8, 2)
    assert layer - flops == pytest.approx(h * (4 - k) / (k * (k * a + h)), rel=1e-9)
    assert flops <= layer
    assert layer - flops <= h / (k * a) * layer  # at most the head's share of the row's own cost


@pytest.mark.parametrize("name", ["deebert", "berxit", "pabee", "dact_bert"])
def test_an_early_exit_s_flops_speedup_is_below_its_layer_speedup_by_its_ramps(name):
    """At one length, an early exit's FLOPs speed-up is its layer speed-up divided by what its ramps (and
    LTE unit or halting gate) add beyond BERT's head: (1 + overhead / (m a)) / (1 + h / (N a)) exactly."""
    method = build_method(name, None, SST2)
    executed = [1, 1, 2, 3, 4, 4]
    length = 9
    layer, flops = _speedups(method, [length] * len(executed), executed)
    a, h, n = layer_flops(length, 8, 16), head_flops(8, 2), 4
    overhead = np.mean([method.overhead_flops(list(range(k)), n, 8, 2) for k in executed])
    m = np.mean(executed)
    assert layer / flops == pytest.approx((1 + overhead / (m * a)) / (1 + h / (n * a)), rel=1e-12)
    assert flops < layer
    assert overhead > h  # more than BERT's head: a ramp per executed layer (the test above would miss none)


def test_dpbert_s_flops_speedup_pays_its_planners_even_on_skipped_layers():
    method = build_method("dpbert", None, SST2)
    layer, flops = _speedups(method, [9, 9], [2, 2])
    a, h = layer_flops(9, 8, 16), head_flops(8, 2)
    assert flops == pytest.approx((4 * a + h) / (2 * a + 4 * 2 * 8 + h))
    assert flops < layer


def test_with_varying_lengths_the_two_speedups_part_by_where_the_long_examples_exit():
    """Layers of a long example cost more: exiting early on the long ones saves more FLOPs than layers
    (FLOPs speed-up above the layer one), on the short ones less. What the layer speed-up cannot see."""
    method = build_method("deebert", None, SST2)
    long_early = _speedups(method, [4, 40], [4, 1])
    short_early = _speedups(method, [4, 40], [1, 4])
    assert long_early[0] == short_early[0]  # the same layers on average
    assert long_early[1] > long_early[0] and short_early[1] < short_early[0]


def test_reference_flops_is_bert_base_on_each_example():
    assert reference_flops([3, 5], SIZES, 3).tolist() == [4 * layer_flops(n, 8, 16) + head_flops(8, 3) for n in (3, 5)]


# --------------------------------------------------------------------------- Table 1


def _selected(method, display, flops_speedups: dict[str, float], lay=1.5):
    rows = []
    for task, fs in flops_speedups.items():
        for split in (("dev_matched", "dev_mismatched") if task == "MNLI" else ("dev",)):
            rows.append({"task": task, "method": method, "display_name": display, "split": split, "variant": "",
                         "knob_name": "t", "knob": 0.1, "score": 80.0, "score_min": 80.0, "score_max": 80.0,
                         "n_seeds": 1, "layer_speedup": lay, "latency_speedup": 1.4, "flops_per_example": 1e6,
                         "flops_speedup": fs, "in_window": True, "static": False, "note": ""})
    return rows


def test_table1_speedup_flops_is_the_mean_over_tasks_next_to_speedup_layer():
    sel = pd.DataFrame(_selected("deebert", "DeeBERT", {"RTE": 1.4, "MNLI": 1.7}))
    meta = {"profile": "unit", "backbone": "b", "device": "cpu", "seeds": [1], "speedup_col": "layer_speedup"}
    t = table1(sel, ["deebert"], ["MNLI", "RTE"], "layer_speedup", meta)
    cols = list(t.columns)
    assert cols.index("speedup_flops") == cols.index("speedup_layer") + 1
    assert t.iloc[0]["speedup_flops"] == pytest.approx(1.55)
    header, row = table_rows(table1_markdown(t, meta, []))[:2]
    assert row[header.index("speedup_layer"):header.index("speedup_flops") + 1] == ["1.50x", "1.55x"]
    # no FLOPs recorded (records without data or configs): the column is there, empty
    t2 = table1(sel.drop(columns=FLOPS_COLUMNS), ["deebert"], ["MNLI", "RTE"], "layer_speedup", meta)
    assert np.isnan(t2.iloc[0]["speedup_flops"])
