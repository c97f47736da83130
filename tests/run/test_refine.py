"""The window search (dpbert.methods.refine) on synthetic speed-up curves, and wired into the sweep.

The pure search must reach the window on monotone and non-monotone curves, call a step a jump (with
the two knobs that bracket it), and call a curve that never reaches the window unreachable. The
sweep must add refined points inside the window (scored on every dev split, timed, with prediction
rows) for a refinable knob, and leave the rows of a non-refinable one exactly as the grid gives them.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from dpbert.data.tasks import get_task
from dpbert.methods.interface import Method, Prediction
from dpbert.methods.refine import (
    MAX_NEW_PER_KNOB,
    KnobSpace,
    distinct_in_window,
    in_window,
    knob_tolerance,
    propose,
    search,
)
from dpbert.methods.registry import get_method
from dpbert.run import sweep as evaluation
from dpbert.run.sweep import LatencySettings, evaluate_sweep
from tests.conftest import tiny_classifier, toy_split

WINDOW = (1.30, 1.96)
UNIT = KnobSpace(knob_range=(0.0, 1.0), tol=knob_tolerance([], (0.0, 1.0)))


def run(curve, grid, space=UNIT, min_points=3, **kw):
    calls: list[list[float]] = []

    def score(knobs):
        calls.append(list(knobs))
        return [curve(k) for k in knobs]

    result = search({k: curve(k) for k in grid}, score, WINDOW, min_points, space, **kw)
    return result, calls


# ---------------------------------------------------------------- the pure search


@pytest.mark.parametrize("max_new", [12, MAX_NEW_PER_KNOB])
@pytest.mark.parametrize("curve", [
    lambda k: 1 + 3 * k,  # linear; the grid's points straddle the window
    lambda k: math.exp(10 * k),  # convex: linear interpolation undershoots
    lambda k: 12 / (12 - 11 * k ** 3) if k < 1 else math.inf,  # N / 0 layers at the end of the range
], ids=["linear", "convex", "to-infinity"])
def test_monotone_curves_reach_the_window(curve, max_new):
    grid = [0.0, 0.5, 1.0]
    assert distinct_in_window({k: curve(k) for k in grid}, WINDOW) == 0
    result, calls = run(curve, grid, max_new=max_new)
    assert result.status.startswith("ok: ") and result.rounds >= 1, result.status
    assert distinct_in_window(result.points, WINDOW) >= 3
    assert sum(in_window(result.points[k], WINDOW) for k in result.new) >= 3  # the new knobs did it
    assert all(0.0 <= k <= 1.0 for k in result.new) and not set(result.new) & set(grid)
    assert all(len(c) <= max_new for c in calls)
    assert result.status == f"ok: {distinct_in_window(result.points, WINDOW)} points in window"


def test_one_grid_point_extends_towards_the_window_within_the_range():
    """DPBERT's default grid is one threshold: the search scores the range's ends and goes on from there."""
    curve = lambda k: 1 + 2 * k ** 2
    result, calls = run(curve, [0.5], max_new=MAX_NEW_PER_KNOB)
    assert 1.0 in calls[0] and 0.0 in calls[0]  # no trend yet from one point: both ends
    assert result.status.startswith("ok: ") and distinct_in_window(result.points, WINDOW) >= 3


def test_non_monotone_curve_is_searched_sanely():
    curve = lambda k: 1 + 3.5 * math.sin(math.pi * k) ** 2  # (up to 4.5 at 0.5, back to 1 at 1)
    result, _ = run(curve, [0.0, 0.5, 1.0])
    assert result.status.startswith("ok: ")
    inside = [k for k in result.new if in_window(result.points[k], WINDOW)]
    assert any(k < 0.5 for k in inside) and any(k > 0.5 for k in inside)  # both flanks were searched


def test_a_step_is_reported_as_a_jump_between_two_adjacent_knobs():
    edge = 0.31234
    curve = lambda k: 1.12 if k < edge else 2.40
    result, _ = run(curve, [i / 10 for i in range(11)])
    assert result.status.startswith("jump: speed-up jumps from 1.12 to 2.40 between knob "), result.status
    below = max(k for k, s in result.points.items() if s < 1.3)
    above = min(k for k, s in result.points.items() if s > 1.96)
    assert below < edge <= above and above - below < 2 * UNIT.tol  # narrowed to the tolerance
    assert distinct_in_window(result.points, WINDOW) == 0


def test_a_jump_with_some_points_inside_says_how_many():
    curve = lambda k: 1.0 if k < 0.3 else (1.5 if k < 0.6 else 3.0)  # (one plateau inside)
    result, _ = run(curve, [0.0, 0.45, 1.0])
    assert result.status.startswith("jump: speed-up jumps from 1.50 to 3.00 between knob "), result.status
    assert result.status.endswith(" (1 of 3 points in window)")
    a, b = (float(x) for x in result.status.split("between knob ")[1].split(" (")[0].split(" and "))
    assert a < 0.6 <= b and b - a < 2 * UNIT.tol


def test_a_curve_that_never_reaches_the_window_is_unreachable():
    curve = lambda k: 1 + 0.05 * k
    result, _ = run(curve, [0.0, 0.5])
    assert result.status == "unreachable: max speed-up 1.05 over the knob range [0, 1]"
    assert 1.0 in result.new  # it did look at the end of the range the trend points to
    assert 0.0 not in result.new


def test_a_curve_above_the_window_is_unreachable_from_the_low_side():
    curve = lambda k: 2.5 + k
    result, _ = run(curve, [0.5, 1.0])
    assert result.status == "unreachable: min speed-up 2.50 over the knob range [0, 1]"


def test_without_a_knob_range_the_search_stays_inside_the_grid():
    curve = lambda k: 1 + 0.1 * k
    space = KnobSpace(knob_range=None, tol=knob_tolerance([0.2, 0.8], None))
    result, calls = run(curve, [0.2, 0.8], space=space)
    assert calls == [] and result.status == "unreachable: max speed-up 1.08 over the knob grid [0.2, 0.8]"


def test_integer_knobs_fill_the_grid_gaps_only():
    curve = lambda p: 12 / (p + 1.5)  # (PABEE-like: more patience, fewer exits)
    result, _ = run(curve, [2.0, 8.0], space=KnobSpace(integer=True))
    assert result.status.startswith("ok: ") and all(k.is_integer() and 2 < k < 8 for k in result.new)
    gapless, calls = run(curve, [4.0, 5.0, 6.0], space=KnobSpace(integer=True), min_points=5)
    assert calls == [] and not gapless.new
    # adjacent integers: the patience cannot take a value between 5 (1.85x) and 6 (1.60x)
    assert gapless.status == "jump: speed-up jumps from 1.85 to 1.60 between knob 5 and 6 (2 of 5 points in window)"


def test_integer_step_is_a_jump_between_adjacent_integers():
    curve = lambda p: 1.0 if p >= 5 else 2.5
    result, _ = run(curve, [2.0, 8.0], space=KnobSpace(integer=True))
    assert result.status == "jump: speed-up jumps from 2.50 to 1.00 between knob 4 and 5", result.status


def test_points_that_cannot_spread_are_exhausted():
    points = {0.0: 1.0, 0.5: 1.3, 1.0: 1.3}  # one speed-up inside, on the window's edge, flat after it
    knobs, status = propose(points, WINDOW, 2, UNIT)
    assert knobs == [] and status.startswith("exhausted: 1 of 2 points in window"), status


def test_enough_points_already_ends_the_search_without_scoring():
    result, calls = run(lambda k: 1.3 + 0.5 * k, [0.0, 0.5, 1.0])
    assert calls == [] and result.status == "ok: 3 points in window" and result.rounds == 0


def test_rounds_are_capped():
    result, calls = run(lambda k: 1.12 if k < 0.31234 else 2.40, [0.0, 1.0], max_rounds=1)
    assert len(calls) == 1 and result.status == "max rounds: 0 of 3 points in window after 1 rounds"


def test_distinct_speedups_count_once():
    assert distinct_in_window({0.1: 1.5, 0.2: 1.5, 0.3: 1.5 + 1e-12, 0.4: 1.7, 0.5: 3.0, 0.6: math.inf}, WINDOW) == 2


# ---------------------------------------------------------------- the methods' declarations


def test_methods_declare_their_refinable_knobs():
    cls_task, reg_task = get_task("SST-2"), get_task("STS-B")
    for name in ["deebert", "berxit", "dpbert", "dpbert_soft"]:
        method = get_method(name)(None, cls_task)
        assert method.can_refine() and method.knob_range is not None, name
        lo, hi = method.knob_range
        assert lo <= min(method.knobs()) and max(method.knobs()) <= hi, name
    assert get_method("pabee").knob_integer and get_method("pabee").knob_range is None
    dact = get_method("dact_bert")  # classification's knob is a dummy: its trade-off is tau, a trained variant
    assert not dact(None, cls_task).can_refine() and dact(None, reg_task).can_refine()
    assert evaluation._refine(dact(None, cls_task), {"tau0.001": None}, {}, [0.0], [], [], "cpu", 1, SELECTION)[3] == {
        "tau0.001": "not refinable: halt_threshold is searched on regression tasks only"}
    for name in ["bert", "bert_truncated", "layerdrop", "distilbert"]:
        assert not get_method(name)(None, cls_task).can_refine(), name


# ---------------------------------------------------------------- wired into the sweep

N = 12


class FakeExit(Method):
    """A stand-in exit method: example i runs round(N * (1 - knob) ** (1 + u_i)) layers (at least 1), so
    the layer speed-up rises smoothly from 1x (knob 0) to 12x (knob 1); the grid misses the window."""

    name = "fake_exit"
    display_name = "Fake exit"
    knob_name = "threshold"
    needs_finetuned = False
    refinable = True
    knob_range = (0.0, 1.0)

    def knobs(self) -> list[float]:
        return [0.0, 1.0]

    def load(self, folder: Path):
        return torch.nn.Identity()

    def reference_layers(self, model) -> int:
        return N

    def predict_one(self, model, example, knob: float) -> Prediction:
        u = (int(example["input_ids"].sum()) % 97) / 97
        depth = max(1, round(N * (1 - knob) ** (1 + u)))
        return Prediction(torch.tensor([float(depth % 2), 0.5, 0.25]), list(range(depth)))


class FakeGrid(FakeExit):
    refinable = False


class FakePlateau(FakeExit):
    """Every example runs round(N * (1 - knob)) layers: whole knob intervals are one operating point."""

    def predict_one(self, model, example, knob: float) -> Prediction:
        depth = max(1, round(N * (1 - knob)))
        return Prediction(torch.tensor([float(depth % 2), 0.5, 0.25]), list(range(depth)))


class FakeOnePass(FakeExit):
    """FakeExit reading every knob off one pass per example (``predict_knobs``), as the early-exit
    methods do; ``passes`` counts the passes."""

    passes: list[int] = []

    def predict_knobs(self, model, example, knobs):
        FakeOnePass.passes.append(1)
        return [FakeExit.predict_one(self, model, example, k) for k in knobs]


class FakeTraced(FakeOnePass):
    """FakeOnePass whose pass is a trace the sweep keeps (``Method.trace``)."""

    def trace(self, model, example):
        FakeOnePass.passes.append(1)
        return example

    def predict_traced(self, trace, knobs):
        return [FakeExit.predict_one(self, None, trace, k) for k in knobs]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    from dpbert.model.method_model import MethodModel, save_method_model
    from dpbert.model.sources import word_level_tokenizer

    folder = tmp_path_factory.mktemp("bert")
    tok = word_level_tokenizer([f"w{i}" for i in range(55)], 64)
    save_method_model(MethodModel(tiny_classifier(num_labels=3)), tok, folder / "main", {"method": "bert"})
    return folder


SPLITS = {"dev_matched": toy_split(20, seed=1), "dev_mismatched": toy_split(12, seed=2)}
SELECTION = {"window": list(WINDOW), "speedup": "layer", "min_points_in_window": 3}
LATENCY_COLUMNS = {"latency_ms", "latency_spread", "base_latency_ms", "base_latency_spread", "latency_speedup",
                   "latency_speedup_spread", "threads"}


def sweep(cls, base_dir, monkeypatch, selection):
    timed = []
    real = evaluation.measure_interleaved

    def counting(forwards, examples, **kw):
        timed.append(len(forwards))
        return real(forwards, examples, **kw)

    monkeypatch.setattr(evaluation, "measure_interleaved", counting)
    method = cls(None, get_task("MNLI"))
    rows, preds = evaluate_sweep(method, base_dir, base_dir, SPLITS, LatencySettings(examples=2, warmup=0, repeats=1),
                                 "cpu", seed=1, selection=selection)
    return rows, preds, timed[0] - 1  # points timed besides BERT-base


def strip(rows):
    return [{k: v for k, v in r.items() if k not in LATENCY_COLUMNS | {"refined", "refine_status"}} for r in rows]


@pytest.mark.usefixtures("one_thread")
def test_sweep_adds_refined_points_inside_the_window(base_dir, monkeypatch):
    rows, preds, n_timed = sweep(FakeExit, base_dir, monkeypatch, SELECTION)
    grid = [r for r in rows if not r["refined"]]
    refined = [r for r in rows if r["refined"]]
    assert sorted({r["knob"] for r in grid}) == [0.0, 1.0]
    assert not any(in_window(r["layer_speedup"], WINDOW) for r in grid if r["split"] == "dev_matched")
    primary = [r for r in refined if r["split"] == "dev_matched"]
    assert len({round(r["layer_speedup"], 9) for r in primary}) >= 3  # stopping after the grid fails here
    assert all(in_window(r["layer_speedup"], WINDOW) for r in primary)  # those outside were dropped
    knobs = sorted(r["knob"] for r in primary)
    assert sorted(r["knob"] for r in refined if r["split"] == "dev_mismatched") == knobs  # same points, every split
    assert n_timed == 2 + len(knobs)  # grid and kept refined points timed, nothing else
    assert all(r["latency_ms"] > 0 for r in refined)
    assert {r["refine_status"] for r in rows} == {f"ok: {len(knobs)} points in window"}
    for r in refined:  # prediction rows as for a grid point, consistent with the row
        mine = [p for p in preds if p["knob"] == r["knob"] and p["split"] == r["split"]]
        assert len(mine) == r["n_examples"] == len(SPLITS[r["split"]])
        assert sum(p["n_executed"] for p in mine) / len(mine) == pytest.approx(r["mean_layers"])
    assert len(preds) == len(rows) // 2 * (20 + 12)


CURVE = (1.96, 4.0)


@pytest.mark.usefixtures("one_thread")
def test_sweep_extends_the_curve_beyond_the_window(base_dir, monkeypatch):
    """Figure 3's curve: with min_points_in_curve, points of distinct speed-up in (1.96, 4.0] are kept
    too (scored on every split, timed); without it (the test above) every kept point is inside the window."""
    plain, _, _ = sweep(FakeExit, base_dir, monkeypatch, SELECTION)
    selection = {**SELECTION, "min_points_in_curve": 2, "curve_up_to": CURVE[1]}
    rows, preds, n_timed = sweep(FakeExit, base_dir, monkeypatch, selection)
    primary = [r for r in rows if r["refined"] and r["split"] == "dev_matched"]
    beyond = [r for r in primary if not in_window(r["layer_speedup"], WINDOW)]
    assert len({round(r["layer_speedup"], 9) for r in beyond}) == 2  # dropping them (the old sweep) fails here
    assert all(CURVE[0] < r["layer_speedup"] <= CURVE[1] for r in beyond)  # nothing faster than curve_up_to
    # the window's own points are still there, and the curve's points are on every split and timed
    assert {r["knob"] for r in plain if r["refined"]} <= {r["knob"] for r in primary}
    knobs = sorted(r["knob"] for r in primary)
    assert sorted(r["knob"] for r in rows if r["refined"] and r["split"] == "dev_mismatched") == knobs
    assert n_timed == 2 + len(knobs)
    assert len(preds) == len(rows) // 2 * (20 + 12)
    (status,) = {r["refine_status"] for r in rows}  # the window search's, then the curve's
    assert re.fullmatch(r"ok: \d+ points in window; curve to 4x: ok: \d+ points in window", status)
    assert evaluation.curve_window({**selection, "min_points_in_curve": 0}) is None


@pytest.mark.usefixtures("one_thread")
def test_a_traced_method_passes_each_example_once_for_grid_window_and_curve(base_dir, monkeypatch):
    """A method with traces (the early-exit methods) runs its backbone once per example and split for
    the whole sweep: the grid, every round of the window search and of the curve's, the kept points'
    other splits. Rescoring per round (the search's knobs one call each) traces the primary split again."""
    selection = {**SELECTION, "min_points_in_curve": 2, "curve_up_to": CURVE[1]}
    FakeOnePass.passes.clear()
    plain, plain_preds, _ = sweep(FakeOnePass, base_dir, monkeypatch, selection)
    untraced = len(FakeOnePass.passes)
    assert untraced > 2 * (20 + 12)  # without traces the search's rounds pass over the primary split again
    FakeOnePass.passes.clear()
    traces: dict = {}
    rows, preds = evaluate_sweep(FakeTraced(None, get_task("MNLI")), base_dir, base_dir, SPLITS,
                                 LatencySettings(examples=2, warmup=0, repeats=1), "cpu", seed=1,
                                 selection=selection, traces=traces)
    assert len(FakeOnePass.passes) == 20 + 12  # one trace per example and split
    assert sorted(traces) == [("main", "dev_matched"), ("main", "dev_mismatched")]
    assert [len(traces[k]) for k in sorted(traces)] == [20, 12]
    assert strip(rows) == strip(plain) and preds == plain_preds  # the same points, the same predictions


def test_curve_points_are_spread_from_slowest_to_fastest():
    pts = [(0.5, 2.0), (0.6, 2.5), (0.55, 2.0), (0.7, 3.0), (0.8, 3.5), (0.9, 3.9)]
    assert evaluation.spread(pts, 2) == [0.5, 0.9]  # the smallest knob of a speed-up
    assert evaluation.spread(pts, 3) == [0.5, 0.7, 0.9]
    assert evaluation.spread(pts, 1) == [0.9]
    assert evaluation.spread(pts[:2], 5) == [0.5, 0.6]


@pytest.mark.usefixtures("one_thread")
def test_sweep_of_a_non_refinable_knob_keeps_the_grid_rows(base_dir, monkeypatch):
    plain, plain_preds, plain_timed = sweep(FakeGrid, base_dir, monkeypatch, None)
    rows, preds, n_timed = sweep(FakeGrid, base_dir, monkeypatch, SELECTION)
    assert strip(rows) == strip(plain) and preds == plain_preds and n_timed == plain_timed == 2
    assert [r["knob"] for r in rows] == [0.0, 1.0, 0.0, 1.0]  # grid order, per split
    assert all(r["refined"] is False and r["refine_status"] == "not refinable" for r in rows)
    assert {r["refine_status"] for r in plain} == {"off: no selection settings"}
    # the refinable twin scores the same grid rows, refined rows come after them
    refinable, refinable_preds, _ = sweep(FakeExit, base_dir, monkeypatch, SELECTION)
    assert strip([r for r in refinable if not r["refined"]]) == strip(rows)
    assert [p for p in refinable_preds if p["knob"] in (0.0, 1.0)] == preds


@pytest.mark.usefixtures("one_thread")
def test_sweep_keeps_one_refined_knob_per_operating_point(base_dir, monkeypatch):
    rows, _preds, n_timed = sweep(FakePlateau, base_dir, monkeypatch, SELECTION)
    primary = [r for r in rows if r["refined"] and r["split"] == "dev_matched"]
    # 7, 8 and 9 of 12 layers are the window's operating points (1.71x, 1.50x, 1.33x): one knob each
    assert sorted(r["mean_layers"] for r in primary) == [7.0, 8.0, 9.0]
    assert n_timed == 2 + 3 and rows[0]["refine_status"] == "ok: 3 points in window"


def test_one_knob_a_round_aims_at_the_middle_of_the_window():
    """max_new = 1 (each knob a training run): the one proposal is where the line between the ends puts
    the middle of the window part they span (1.63 on a line from 1.0 at 0 to 2.26 at 1: knob 0.5),
    not the lower edge that a many-knob round starts from."""
    space = KnobSpace(knob_range=(0.0, 1.0), tol=1e-3)
    one, status = propose({0.0: 1.0, 1.0: 2.26}, (1.30, 1.96), 3, space, max_new=1)
    assert status == "" and one == [pytest.approx(0.5)]
    many, _ = propose({0.0: 1.0, 1.0: 2.26}, (1.30, 1.96), 3, space, max_new=6)
    assert min(many) < 0.4
