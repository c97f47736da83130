"""Method health: the pure verdict rules, the majority-class score, the per-job diagnostics on a tiny
model, and Table 1's marks of a degenerate method's cells."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch

from baselines._early_exit import ExitModules, new_ramps
from baselines.deebert import DeeBert
from dpbert.data.tasks import get_task
from dpbert.methods.registry import get_method
from dpbert.model.method_model import MethodModel
from dpbert.reporting.health import (
    HEALTH_COLUMNS,
    MAJORITY_MARGIN,
    NO_WINDOW,
    build_health,
    degenerate_cells,
    distinct_paths,
    health_markdown,
    health_row,
    mid_layer,
    skip_monotonic,
    verdict_reasons,
)
from dpbert.reporting.layout import DEGENERATE_COLUMN
from dpbert.reporting.table1 import mark_degenerate, table1, table1_markdown
from dpbert.run.diagnostics import (
    KIND_EXIT,
    KIND_PLANNER,
    KIND_REFERENCE,
    KIND_STATIC,
    compute_diagnostics,
    decision_state,
    exit_layer_predictions,
    majority_score,
    method_kind,
)
from tests.conftest import tiny_classifier, toy_split
from tests.reporting.frames import table_rows

pytestmark = pytest.mark.usefixtures("one_thread")

SST2 = get_task("SST-2")
N = 4


# --------------------------------------------------------------------------- majority class


def test_majority_score_uses_each_tasks_metric():
    assert majority_score("acc", [0, 1, 1, 1]) == pytest.approx(75.0)
    assert majority_score("mcc", [0, 1, 1, 0, 1]) == 0.0  # CoLA: a constant answer has MCC 0
    # MRPC: majority class 1 -> accuracy 2/3, F1 of class 1 = 2*2 / (2*2 + 1) = 0.8
    assert majority_score("acc_f1", [1, 1, 0]) == pytest.approx((200 / 3 + 80.0) / 2)
    assert majority_score("acc_f1", [0, 0, 1]) == pytest.approx((200 / 3 + 0.0) / 2)  # F1 0 without positives
    assert majority_score("pearson_spearman", [0.5, 3.0, 4.2], regression=True) == 0.0  # STS-B: undefined -> 0
    assert majority_score("acc", [2, 0, 2, 0, 1]) == pytest.approx(40.0)  # a tie: the smallest label
    assert math.isnan(majority_score("acc", []))


# --------------------------------------------------------------------------- paths and skip rates


def test_distinct_paths_counts_paths_above_the_share():
    paths = ["1 2 3 4"] * 90 + ["1 3"] * 6 + ["2 4"] * 4
    assert distinct_paths(paths) == (2, 0.9)  # "2 4" has 4% < 5%
    assert distinct_paths(["1 2", "1  2", "1 2"]) == (1, 1.0)  # the same path however it is spaced
    assert distinct_paths(["", "", "1"]) == (2, pytest.approx(2 / 3))  # "" = every layer skipped
    n, share = distinct_paths([])
    assert n == 0 and math.isnan(share)


def test_skip_monotonic():
    assert skip_monotonic({0.25: 0.20, 0.35: 0.30, 0.45: 0.41}) is True
    assert skip_monotonic({0.45: 0.41, 0.25: 0.20, 0.35: 0.30}) is True  # order of the mapping does not matter
    assert skip_monotonic({0.25: 0.20, 0.35: 0.195, 0.45: 0.40}) is True  # a dip within SKIP_TOL
    assert skip_monotonic({0.25: 0.30, 0.35: 0.10, 0.45: 0.40}) is False
    assert skip_monotonic({0.25: 0.0, 0.35: 0.0, 0.45: 0.0}) is False  # flat: t does not move it
    assert skip_monotonic({0.3: 0.2}) is None
    assert mid_layer(12) == 6 and mid_layer(6) == 3 and mid_layer(4) == 2 and mid_layer(5) == 3


# --------------------------------------------------------------------------- verdicts


def _row(kind=KIND_PLANNER, windowed=True, **kw):
    base = dict(task="SST-2", method="dpbert", display_name="DPBERT", kind=kind, windowed=windowed, state="cls",
                metric="acc", n_layers=4, n_seeds=1, majority=50.0, bert_score=90.0,
                selected={"variant": "t0.3", "knob": 0.5, "score": 88.0}, n_in_window=3)
    base.update(kw)
    return health_row(**base)


def test_verdict_ok_for_a_learning_planner():
    r = _row(p_std=[0.1, 0.2, 0.05, 0.3], p_mean=[0.9, 0.5, 0.4, 0.6],
             paths=["1 2 3 4"] * 50 + ["1 3"] * 30 + ["2"] * 20, skip_rates={0.25: 0.2, 0.35: 0.3, 0.45: 0.4})
    assert r["verdict"] == "ok", r["verdict"]
    assert r["n_paths"] == 3 and r["skip_monotonic"] is True and r["beats_majority"] is True
    assert r["p_std_max"] == pytest.approx(0.3) and r["p_std"] == "0.100 0.200 0.050 0.300"
    assert r["selected_point"] == "t0.3@0.5" and r["skip_rates"] == "t=0.25:0.20 t=0.35:0.30 t=0.45:0.40"


def test_verdict_planners_that_ignore_the_input():
    r = _row(p_std=[0.001, 0.0, 0.009, 0.002], paths=["1 2 3 4"] * 100)
    reasons = verdict_reasons(r["verdict"])
    assert "planners ignore the input (p std < 0.01 on every layer)" in reasons
    assert "one executed path for 100% of dev examples" in reasons
    assert r["verdict"].startswith("degenerate: ")


def test_verdict_skip_rate_that_does_not_follow_t():
    r = _row(p_std=[0.2] * 4, paths=["1 2"] * 50 + ["3 4"] * 50, skip_rates={0.25: 0.5, 0.35: 0.2, 0.45: 0.1})
    assert verdict_reasons(r["verdict"]) == [("skip rate does not rise with the target rate "
                                              "(t=0.25:0.50 t=0.35:0.20 t=0.45:0.10)")]


def test_verdict_no_point_in_window_and_majority():
    r = _row(selected=None, n_in_window=0)
    assert verdict_reasons(r["verdict"]) == [NO_WINDOW] and r["beats_majority"] is None
    r = _row(selected={"variant": "t0.3", "knob": 0.5, "score": 50.0 + MAJORITY_MARGIN},  # not *above* the margin
             bert_score=60.0)
    assert verdict_reasons(r["verdict"]) == [f"selected point not above majority class (55.0 vs 50.0 + {MAJORITY_MARGIN:g})"]
    # a static method is not windowed: no point inside is not a reason
    r = _row(kind=KIND_STATIC, windowed=False, method="layerdrop", n_in_window=0,
             selected={"variant": "main", "knob": 6.0, "score": 80.0})
    assert r["verdict"] == "ok" and r["n_in_window"] == 0
    bert = _row(kind=KIND_REFERENCE, windowed=False, method="bert", selected={"variant": "main", "knob": 0.0,
                                                                           "score": 52.0})
    assert verdict_reasons(bert["verdict"])[0].startswith("selected point not above majority class")
    assert bert["n_in_window"] is None


def test_verdict_off_ramp_at_majority():
    r = _row(kind=KIND_EXIT, method="deebert", exit_scores=[50.0, 52.0, 80.0, 90.0], diag_majority=50.0)
    assert r["mid_layer"] == 2 and r["mid_exit_score"] == 52.0 and r["mid_exit_beats_majority"] is False
    assert verdict_reasons(r["verdict"]) == [f"off-ramp at layer 2 at majority class (52.0 vs 50.0 + {MAJORITY_MARGIN:g})"]
    ok = _row(kind=KIND_EXIT, method="deebert", exit_scores=[50.0, 70.0, 80.0, 90.0])
    assert ok["verdict"] == "ok" and ok["exit_layer_scores"] == "50.0 70.0 80.0 90.0"


def test_degenerate_cells_leave_the_window_reason_to_table1():
    rows = pd.DataFrame([
        {"task": "SST-2", "method": "dpbert", "verdict": "degenerate: no point in window"},
        {"task": "MNLI", "method": "dpbert", "verdict": "degenerate: no point in window; planners ignore the input"},
        {"task": "SST-2", "method": "deebert", "verdict": "ok"},
    ])
    assert degenerate_cells(rows) == {("MNLI", "dpbert"): ["planners ignore the input"]}


def test_method_kinds_and_states():
    assert method_kind(get_method("bert")) == KIND_REFERENCE
    assert method_kind(get_method("deebert")) == method_kind(get_method("pabee")) == KIND_EXIT
    assert method_kind(get_method("layerdrop")) == method_kind(get_method("bert_truncated")) == KIND_STATIC
    assert method_kind(get_method("bert_cut")) == KIND_STATIC
    assert decision_state(get_method("bert_truncated")(None, SST2)) == "-"
    assert decision_state(DeeBert(None, SST2)) == "cls"
    dp = get_method("dpbert")
    if hasattr(dp, "planner_probs"):
        assert method_kind(dp) == KIND_PLANNER


# --------------------------------------------------------------------------- per-job diagnostics


def _deebert_model() -> MethodModel:
    c = tiny_classifier(num_labels=2, layers=N)
    return MethodModel(c, ExitModules(new_ramps(c))).eval()


def _constant_heads(model: MethodModel, classes: list[int]) -> None:
    """Exit j (off-ramps, then BERT's own head) answers class ``classes[j]`` whatever the input."""
    heads = list(model.extra.ramps.classifiers) + [model.classifier.classifier]
    with torch.no_grad():
        for lin, c in zip(heads, classes):
            lin.weight.zero_()
            lin.bias.zero_()
            lin.bias[c] = 10.0


def test_exit_diagnostics_score_every_layer():
    method, model, split = DeeBert(None, SST2), _deebert_model(), toy_split(30, seed=2)
    _constant_heads(model, [0, 1, 0, 1])
    diag = compute_diagnostics(method, {"main": model}, split, limit=20)
    labels = split.labels[:20]
    acc1 = 100 * np.mean(np.array(labels) == 1)
    assert diag["kind"] == KIND_EXIT and diag["n_examples"] == 20 and diag["n_dev"] == 30
    assert diag["variants"][0]["exit_scores"] == pytest.approx([100 - acc1, acc1, 100 - acc1, acc1])
    assert diag["majority_score"] == pytest.approx(max(acc1, 100 - acc1))
    assert diag["state"] == "cls"


def test_exit_diagnostics_read_the_sweeps_traces_without_a_new_pass():
    """The job hands the sweep's traces to the diagnostics: the same scores, and no layer runs again."""
    from dpbert.model.engine import count_layer_calls

    method, model, split = DeeBert(None, SST2), _deebert_model(), toy_split(30, seed=2)
    with torch.no_grad():  # answers that vary with the input, so that the scores test something
        for lin in list(model.extra.ramps.classifiers) + [model.classifier.classifier]:
            lin.weight.mul_(40.0)
    fresh = compute_diagnostics(method, {"main": model}, split, limit=20)
    traces = [method.trace(model, split.example(i)) for i in range(len(split))]
    counts, remove = count_layer_calls(model.engine)
    try:
        traced = compute_diagnostics(method, {"main": model}, split, limit=20, traces={"main": traces})
    finally:
        remove()
    assert traced == fresh and sum(counts) == 0
    assert len(set(fresh["variants"][0]["exit_scores"])) > 1
    short = compute_diagnostics(method, {"main": model}, split, limit=20, traces={"main": traces[:5]})
    assert short == fresh  # traces that cover too few examples: a new pass


def test_exit_layer_predictions_match_predict_knobs():
    """Layer 1's answer is what a knob that exits at once predicts; layer N's, a knob that never exits."""
    method, model, split = DeeBert(None, SST2), _deebert_model(), toy_split(8, seed=3)
    for i in range(len(split)):
        ex = split.example(i)
        per_layer = exit_layer_predictions(method, model, ex)
        first, last = method.predict_knobs(model, ex, [1e9, -1.0])
        assert len(per_layer) == N and len(first.executed) == 1 and len(last.executed) == N
        assert per_layer[0] == int(first.output.argmax()) and per_layer[-1] == int(last.output.argmax())


@dataclass
class _FakeParams:
    state: str = "mean"


class _FakePlanner:
    """The planner_probs contract: p_i before each layer along the hard path at the threshold."""

    name, display_name, is_reference, static = "fake_planner", "Fake", False, False

    def __init__(self, task):
        self.task, self.params = task, _FakeParams()

    def knobs(self):
        return [0.5]

    def planner_probs(self, model, example, threshold):
        n = example["input_ids"].shape[1]
        return [0.9, 0.2 + 0.01 * n, 0.7, 0.6]  # layer 2 depends on the input's length, the others do not


class _FakeModel:
    n_layers = N


def test_planner_diagnostics_on_a_fake_method():
    method, split = _FakePlanner(SST2), toy_split(20, seed=4)
    diag = compute_diagnostics(method, {"t0.3": _FakeModel()}, split)
    assert diag["kind"] == KIND_PLANNER and diag["state"] == "mean"
    entry = diag["variants"][0]["planner"][0]
    lengths = np.array([len(x) for x in split.input_ids])
    assert entry["threshold"] == 0.5
    assert entry["p_mean"] == pytest.approx([0.9, float(np.mean(0.2 + 0.01 * lengths)), 0.7, 0.6])
    assert entry["p_std"] == pytest.approx([0.0, float(np.std(0.01 * lengths)), 0.0, 0.0], abs=1e-12)


def test_dpbert_planner_probs_on_a_tiny_model():
    dp = get_method("dpbert")
    if not hasattr(dp, "planner_probs"):
        pytest.skip("DPBERT has no planner_probs hook yet")
    from dpbert.methods.dpbert import Planners

    method = dp(None, SST2)
    c = tiny_classifier(num_labels=2, layers=N)
    model = MethodModel(c, Planners(N, 32, 2.0)).eval()
    diag = compute_diagnostics(method, {"t0.25": model}, toy_split(12, seed=5))
    entry = diag["variants"][0]["planner"][0]
    assert len(entry["p_mean"]) == N and all(0 < p < 1 for p in entry["p_mean"])
    with torch.no_grad():  # planners that read nothing of the input: p std 0 on every layer
        for gate in model.extra.gates:
            gate.weight.zero_()
    flat = compute_diagnostics(method, {"t0.25": model}, toy_split(12, seed=5))["variants"][0]["planner"][0]
    assert max(flat["p_std"]) == pytest.approx(0.0, abs=1e-7)


# --------------------------------------------------------------------------- records -> rows -> Table 1


def _records():
    """BERT-base, DeeBERT and DPBERT on SST-2, one seed: sweep, selected points, predictions, diagnostics."""
    labels = [0] * 6 + [1] * 4  # majority 60.0
    sweep, preds = [], {}

    def point(method, variant, knob, score, mean_layers):
        sweep.append({"task": "SST-2", "method": method, "display_name": method.upper(), "seed": 1,
                      "variant": variant, "knob_name": "k", "knob": knob, "split": "dev", "score": score,
                      "mean_layers": mean_layers, "n_layers": 4, "layer_speedup": 4 / mean_layers,
                      "latency_speedup": 4 / mean_layers})

    point("bert", "main", 0.0, 90.0, 4.0)
    point("deebert", "main", 0.1, 85.0, 3.0)
    point("deebert", "main", 0.5, 70.0, 2.0)
    for v, ml in (("t0.25", 3.0), ("t0.35", 2.4)):
        point("dpbert", v, 0.5, 80.0 if v == "t0.25" else 75.0, ml)
    preds[("SST-2", "bert", 1)] = pd.DataFrame({"variant": "main", "knob": 0.0, "split": "dev", "idx": range(10),
                                                "label": labels, "executed": "1 2 3 4"})
    dp_rows = []
    for v in ("t0.25", "t0.35"):
        dp_rows += [{"variant": v, "knob": 0.5, "split": "dev", "idx": i, "label": labels[i],
                     "executed": "1 2 3" if v == "t0.25" else "1 3"} for i in range(10)]
    preds[("SST-2", "dpbert", 1)] = pd.DataFrame(dp_rows)
    diags = [
        {"task": "SST-2", "method": "bert", "seed": 1, "state": "-", "n_examples": 10, "variants": [],
         "majority_score": 60.0},
        {"task": "SST-2", "method": "deebert", "seed": 1, "state": "cls", "n_examples": 10, "majority_score": 60.0,
         "variants": [{"variant": "main", "exit_scores": [60.0, 61.0, 80.0, 90.0]}]},
        {"task": "SST-2", "method": "dpbert", "seed": 1, "state": "cls", "n_examples": 10, "majority_score": 60.0,
         "target_rates": {"t0.25": 0.25, "t0.35": 0.35},
         "variants": [{"variant": v, "planner": [{"threshold": 0.5, "p_mean": [0.9, 0.5, 0.6, 0.2],
                                                   "p_std": [0.0, 0.001, 0.0, 0.0]}]} for v in ("t0.25", "t0.35")]},
    ]
    return pd.DataFrame(sweep), preds, diags


class _PlannerClass:
    is_reference, static = False, False

    def planner_probs(self, model, example, threshold):  # pragma: no cover - the kind is all that is read
        return []


def test_build_health_from_records_and_table1_marks():
    from dpbert.reporting.selection import select_all

    sweep, preds, diags = _records()
    selected = select_all(sweep, 1.3, 1.96, "layer_speedup")
    methods = {"bert": get_method("bert"), "deebert": get_method("deebert"), "dpbert": _PlannerClass}
    health = build_health(sweep, selected, preds, diags, methods=methods, window=(1.3, 1.96),
                          speedup_col="layer_speedup")
    assert list(health.columns) == HEALTH_COLUMNS and len(health) == 3
    rows = health.set_index("method")
    assert rows.loc["bert", "verdict"] == "ok" and rows.loc["bert", "majority_score"] == 60.0
    assert (health["bert_score"] == 90.0).all()
    dee = rows.loc["deebert"]  # 1.33x (85.0) and 2.0x points: one inside
    assert dee["n_in_window"] == 1 and dee["selected_score"] == 85.0 and dee["mid_exit_score"] == 61.0
    assert dee["verdict"] == f"degenerate: off-ramp at layer 2 at majority class (61.0 vs 60.0 + {MAJORITY_MARGIN:g})"
    dp = rows.loc["dpbert"]  # t0.25: 1.33x, t0.35: 1.67x -> t0.25@0.5 (80.0) selected
    assert dp["selected_point"] == "t0.25@0.5" and dp["n_paths"] == 1 and dp["top_path_share"] == 1.0
    assert dp["skip_rates"] == "t=0.25:0.25 t=0.35:0.40" and bool(dp["skip_monotonic"])
    assert dp["p_point"] == "t0.25@0.5" and dp["p_std_max"] == pytest.approx(0.001)
    assert verdict_reasons(dp["verdict"]) == ["planners ignore the input (p std < 0.01 on every layer)",
                                              "one executed path for 100% of dev examples"]
    md = health_markdown(health, {"profile": "test", "seeds": "1", "window": (1.3, 1.96)})
    assert "## Verdict rules" in md and "off-ramp at layer 2" in md and "60.0 61.0 80.0 90.0" in md

    # Table 1: the degenerate methods' cells carry the mark, the numbers stay numbers
    order = ["bert", "deebert", "dpbert"]
    table = table1(selected, order, ["SST-2"], "layer_speedup", {"profile": "test"})
    marked = mark_degenerate(table, order, degenerate_cells(health))
    assert list(marked[DEGENERATE_COLUMN]) == ["", "SST-2", "SST-2"]
    pd.testing.assert_frame_equal(marked.drop(columns=DEGENERATE_COLUMN), table)
    assert marked["SST-2"].dtype == float
    md1 = table1_markdown(marked, {"profile": "test"}, [])
    cells = [c for row in table_rows(md1) for c in row]
    assert "85.0§" in cells and "80.0§" in cells and "90.0" in cells
    assert "§ the method is degenerate on this task" in md1 and DEGENERATE_COLUMN not in table_rows(md1)[0]
    assert "§" not in table1_markdown(table, {"profile": "test"}, [])


def test_mark_degenerate_covers_both_mnli_columns():
    selected = pd.DataFrame([
        {"task": "MNLI", "method": "dpbert", "display_name": "DPBERT", "split": s, "variant": "t0.3", "knob": 0.5,
         "score": 70.0, "score_min": 70.0, "score_max": 70.0, "n_seeds": 1, "layer_speedup": 1.5,
         "latency_speedup": 1.4, "in_window": True, "static": False, "note": ""}
        for s in ("dev_matched", "dev_mismatched")])
    table = table1(selected, ["dpbert"], ["MNLI", "SST-2"], "layer_speedup", {})
    marked = mark_degenerate(table, ["dpbert"], {("MNLI", "dpbert"): ["x"]})
    assert marked[DEGENERATE_COLUMN].iloc[0] == "MNLI-m;MNLI-mm"


def test_a_refined_selected_threshold_reads_the_nearest_scored_one():
    """A window-search point (a threshold of one variant only) is selected: p spread from that variant's
    nearest threshold with diagnostics; skip rates at the threshold every variant shares (0.5), not at
    t0.25's own refined 0.55 (which would mix the threshold's effect into the target rate's)."""
    from dpbert.reporting.selection import select_all

    sweep, preds, diags = _records()
    extra = sweep[(sweep["method"] == "dpbert") & (sweep["variant"] == "t0.25")].copy()
    extra["knob"], extra["score"], extra["mean_layers"] = 0.55, 95.0, 2.8
    extra["layer_speedup"] = extra["latency_speedup"] = 4 / 2.8
    sweep = pd.concat([sweep, extra], ignore_index=True)
    preds[("SST-2", "dpbert", 1)] = pd.concat([preds[("SST-2", "dpbert", 1)], pd.DataFrame(
        [{"variant": "t0.25", "knob": 0.55, "split": "dev", "idx": i, "label": 0, "executed": "1 2" if i % 2 else "3"}
         for i in range(10)])], ignore_index=True)
    selected = select_all(sweep, 1.3, 1.96, "layer_speedup")
    methods = {"bert": get_method("bert"), "deebert": get_method("deebert"), "dpbert": _PlannerClass}
    dp = build_health(sweep, selected, preds, diags, methods=methods, window=(1.3, 1.96),
                      speedup_col="layer_speedup").set_index("method").loc["dpbert"]
    assert dp["selected_point"] == "t0.25@0.55" and dp["p_point"] == "t0.25@0.5"
    assert dp["n_paths"] == 2 and dp["top_path_share"] == 0.5
    assert dp["skip_rates"] == "t=0.25:0.25 t=0.35:0.40"


def test_shared_threshold_reads_every_target_rate_at_one_threshold():
    """Grid thresholds 0.5 and 0.7 are shared; 0.62 and 0.66 are refined for one variant each."""
    from dpbert.reporting.health import shared_threshold

    pts = pd.DataFrame({"variant": ["a", "a", "a", "b", "b", "b"], "knob": [0.5, 0.62, 0.7, 0.5, 0.66, 0.7]})
    assert shared_threshold(pts, 0.62) == 0.7 and shared_threshold(pts, 0.55) == 0.5
    assert shared_threshold(pts, 0.7) == 0.7
    assert shared_threshold(pts[pts["knob"] != 0.7].assign(knob=[0.5, 0.62, 0.51, 0.66]), 0.6) == 0.6  # none shared


def test_dpbert_planner_diagnostics_read_the_sweeps_path_trees():
    """The planner spread off the sweep's path trees equals planner_probs' fresh passes, and runs no
    layer where the sweep already took the threshold's path."""
    from dpbert.methods.dpbert import Planners
    from dpbert.model.engine import count_layer_calls

    method = get_method("dpbert")({"state": "mean"}, SST2)
    c = tiny_classifier(num_labels=2, layers=N, seed=3)
    planners = Planners(N, 32, 0.0, "mean")
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():  # planners that depend on the input
        for gate in planners.gates:
            gate.weight.copy_(torch.randn(gate.weight.shape, generator=g) * 0.6)
    model = MethodModel(c, planners).eval()
    split = toy_split(16, seed=5)
    fresh = compute_diagnostics(method, {"t0.25": model}, split)
    trees = [method.trace(model, split.example(i)) for i in range(len(split))]
    for t in trees:
        method.predict_traced(t, [0.5])  # what the sweep's grid does
    counts, remove = count_layer_calls(model.engine)
    try:
        traced = compute_diagnostics(method, {"t0.25": model}, split, traces={"t0.25": trees})
    finally:
        remove()
    assert traced == fresh and sum(counts) == 0
    assert max(traced["variants"][0]["planner"][0]["p_std"]) > 0.01


def test_health_counts_the_window_points_where_planners_plan():
    """Besides the selected point's paths: how many points in the window have >= 3 paths of >= 5%."""
    from dpbert.reporting.selection import select_all

    sweep, preds, diags = _records()
    extra = {"task": "SST-2", "method": "dpbert", "display_name": "DPBERT", "seed": 1, "variant": "t0.35",
             "knob_name": "k", "knob": 0.6, "split": "dev", "score": 70.0, "mean_layers": 2.2, "n_layers": 4,
             "layer_speedup": 4 / 2.2, "latency_speedup": 4 / 2.2}
    sweep = pd.concat([sweep, pd.DataFrame([extra])], ignore_index=True)
    labels = [0] * 6 + [1] * 4
    paths = ["1"] * 4 + ["1 2"] * 3 + ["2 3"] * 3  # 3 paths of 30-40% each
    preds[("SST-2", "dpbert", 1)] = pd.concat([preds[("SST-2", "dpbert", 1)], pd.DataFrame(
        {"variant": "t0.35", "knob": 0.6, "split": "dev", "idx": range(10), "label": labels, "executed": paths})])
    selected = select_all(sweep, 1.3, 1.96, "layer_speedup")
    methods = {"bert": get_method("bert"), "deebert": get_method("deebert"), "dpbert": _PlannerClass}
    health = build_health(sweep, selected, preds, diags, methods=methods, window=(1.3, 1.96),
                          speedup_col="layer_speedup")
    dp = health.set_index("method").loc["dpbert"]
    assert dp["n_in_window"] == 3 and dp["n_window_planning"] == 1 and dp["n_paths"] == 1  # selected: t0.25@0.5
    assert pd.isna(health.set_index("method").loc["deebert", "n_window_planning"])
    md = health_markdown(health, {"profile": "test", "seeds": "1", "window": (1.3, 1.96)})
    assert "1 of 3" in [c for row in table_rows(md) for c in row] and "window points, ≥3 paths" in table_rows(md)[0]


def test_planner_rules_one_path_for_90_percent_or_no_layer_at_all():
    """A planner that sends >= 90% of the inputs down one path is static in effect, and one that runs no layer
    for some input answers it from the embeddings: both are marked, each saying which."""
    from dpbert.reporting.health import ONE_PATH_SHARE, health_reasons

    base = {"kind": KIND_PLANNER, "windowed": True, "n_in_window": 3, "beats_majority": True}
    assert ONE_PATH_SHARE == 0.90
    assert health_reasons({**base, "top_path_share": 0.89, "zero_layer_share": 0.0}) == []
    assert health_reasons({**base, "top_path_share": 0.90}) == ["one executed path for 90% of dev examples"]
    assert health_reasons({**base, "top_path_share": 0.5, "zero_layer_share": 0.02}) == [
        "runs no layer at all for 2.0% of dev examples"]


def test_each_model_of_a_one_row_per_model_method_is_judged_apart():
    """BERT-kL has one Table 1 row per model: a 2-layer model at the majority class must not mark the
    3-layer model's cell (it did when health kept one row per method); a "threshold searched" row takes
    its method's verdicts."""
    sweep, preds, diags = _records()
    sweep = pd.concat([sweep, pd.DataFrame([
        {"task": "SST-2", "method": "bert_truncated", "display_name": f"BERT-{k}L", "seed": 1, "variant": f"{k}L",
         "knob_name": "layers", "knob": float(k), "split": "dev", "score": score, "mean_layers": float(k),
         "n_layers": 4, "layer_speedup": 4 / k, "latency_speedup": 4 / k}
        for k, score in ((3, 88.0), (2, 60.0))])], ignore_index=True)
    selected = pd.DataFrame([
        {"task": "SST-2", "row": row, "method": method, "display_name": name, "split": "dev", "variant": variant,
         "knob": knob, "score": score}
        for row, method, name, variant, knob, score in (
            ("bert", "bert", "BERT-base", "main", 0.0, 90.0),
            ("bert_truncated:3L", "bert_truncated", "BERT-3L", "3L", 3.0, 88.0),
            ("bert_truncated:2L", "bert_truncated", "BERT-2L", "2L", 2.0, 60.0),
            ("dpbert", "dpbert", "DPBERT", "t0.25", 0.5, 80.0))])
    methods = {"bert": get_method("bert"), "bert_truncated": get_method("bert_truncated"), "dpbert": _PlannerClass,
               "deebert": get_method("deebert")}
    health = build_health(sweep, selected, preds, diags, methods=methods, window=(1.3, 1.96),
                          speedup_col="layer_speedup")
    kl = health[health["method"] == "bert_truncated"].set_index("row")
    assert list(kl.index) == ["bert_truncated:3L", "bert_truncated:2L"]
    assert list(kl["display_name"]) == ["BERT-3L", "BERT-2L"] and list(kl["selected_score"]) == [88.0, 60.0]
    assert kl.loc["bert_truncated:3L", "verdict"] == "ok" and kl.loc["bert_truncated:2L", "verdict"] != "ok"
    cells = degenerate_cells(health)
    assert ("SST-2", "bert_truncated:2L") in cells and ("SST-2", "bert_truncated:3L") not in cells
    rows = ["bert", "bert_truncated:3L", "bert_truncated:2L", "dpbert", "dpbert:searched"]
    row_methods = ["bert", "bert_truncated", "bert_truncated", "dpbert", "dpbert"]
    table = pd.DataFrame({"model": rows, "SST-2": [90.0, 88.0, 60.0, 80.0, 82.0]})
    marked = mark_degenerate(table, rows, cells, row_methods)
    assert list(marked[DEGENERATE_COLUMN]) == ["", "", "SST-2", "SST-2", "SST-2"]


def test_far_below_bert_base_needs_a_quarter_and_three_paired_se():
    from dpbert.reporting.health import far_below

    assert far_below(21.1, 83.0) is True and far_below(79.5, 83.0) is False
    assert far_below(16.4, 22.7) is True  # 6.3 below, a quarter is 5.7
    assert far_below(16.4, 22.7, gap_se=4.0) is False  # ... but within 3 paired SE (12.0)
    assert far_below(60.0, 83.0, gap_se=10.0) is False and far_below(float("nan"), 83.0) is None


def test_health_marks_a_regression_method_that_never_learned_the_task():
    """The failure recorded on real-text regression (STS-B-shaped, minilm): BERT-base 83, PABEE's off-ramps
    17-22 at every layer, its selected point 21 at 1.36x, LayerDrop 26. A correlation far above 0 passed the
    majority-class rule; measured against BERT-base on the same examples it is marked, with the reason."""
    rng = np.random.default_rng(0)
    n = 120
    labels = rng.uniform(0, 5, n)
    sweep, preds = [], {}

    def job(method, variant, knob, preds_of_example, mean_layers):
        pred = np.asarray(preds_of_example)
        from dpbert.run.metrics import glue_metrics

        score = glue_metrics("pearson_spearman", pred, labels)["score"]
        sweep.append({"task": "STS-B", "method": method, "display_name": method, "seed": 1, "variant": variant,
                      "knob_name": "k", "knob": knob, "split": "dev", "score": score, "mean_layers": mean_layers,
                      "n_layers": 6, "layer_speedup": 6 / mean_layers, "latency_speedup": 6 / mean_layers})
        preds[("STS-B", method, 1)] = pd.DataFrame({"variant": variant, "knob": knob, "split": "dev", "idx": range(n),
                                                    "label": labels, "pred": pred, "executed": "1 2 3"})
        return score

    bert = job("bert", "main", 0.0, labels + rng.normal(0, 0.8, n), 6.0)
    weak = 0.2 * labels + rng.normal(0, 1.5, n)  # learned a little: a correlation well above 0
    pabee = job("pabee", "main", 2.0, weak, 4.4)
    layerdrop = job("layerdrop", "main", 3.0, weak + rng.normal(0, 0.3, n), 3.0)
    assert bert > 80 and 10 < pabee < 40 and 10 < layerdrop < 40
    sweep = pd.DataFrame(sweep)
    diags = [{"task": "STS-B", "method": "pabee", "seed": 1, "state": "mean", "n_examples": n, "majority_score": 0.0,
              "variants": [{"variant": "main", "exit_scores": [16.9, 19.2, 21.2, 21.7, 21.7, 19.5]}]}]
    selected = pd.DataFrame([{"task": "STS-B", "method": m, "display_name": m, "split": "dev", "variant": "main",
                              "knob": k, "score": s} for m, k, s in (("bert", 0.0, bert), ("pabee", 2.0, pabee),
                                                                     ("layerdrop", 3.0, layerdrop))])
    methods = {m: get_method(m) for m in ("bert", "pabee", "layerdrop")}
    health = build_health(sweep, selected, preds, diags, methods=methods, window=(1.3, 1.96),
                          speedup_col="layer_speedup").set_index("method")
    assert health.loc["bert", "verdict"] == "ok"
    for m in ("pabee", "layerdrop"):
        assert bool(health.loc[m, "beats_majority"])  # what let them pass before
        assert 0 < health.loc[m, "gap_se"] < 10 and bool(health.loc[m, "far_below_bert"])
        assert "selected point far below BERT-base" in health.loc[m, "verdict"]
    assert "last layer's off-ramp far below BERT-base (19.5 vs" in health.loc["pabee", "verdict"]
    assert ("STS-B", "pabee") in degenerate_cells(health.reset_index())
