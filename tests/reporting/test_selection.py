"""Window selection on small hand-made sweeps."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dpbert.reporting.selection import (
    aggregate_seeds,
    mark_window,
    select_all,
    select_in_window,
)


def _row(task: str, method: str, knob: float, split: str, score: float, spd: float,
         seed: int = 0, variant: str = "", display: str | None = None) -> dict:
    return {
        "task": task, "method": method, "display_name": display or method.upper(),
        "seed": seed, "variant": variant, "knob_name": "threshold", "knob": knob,
        "split": split, "score": score, "mean_layers": 12 / spd, "n_layers": 12,
        "layer_speedup": spd, "latency_ms": 10 / spd, "base_latency_ms": 10.0,
        "latency_speedup": spd, "latency_spread": 0.01, "n_examples": 100,
    }


def _points(rows: list[tuple[float, float, float]]) -> pd.DataFrame:
    """(knob, score, speedup) triples for one task/method/split."""
    return pd.DataFrame([_row("RTE", "dpbert", k, "dev", s, v) for k, s, v in rows])


def test_never_picks_outside_point() -> None:
    # the best score (99) is at 1.0x and 2.5x: outside; 70 at 1.5x is inside
    pts = _points([(0.1, 99.0, 1.0), (0.2, 70.0, 1.5), (0.3, 99.0, 2.5), (0.4, 60.0, 1.9)])
    best = select_in_window(pts, 1.30, 1.96, "layer_speedup")
    assert best is not None
    assert best["score"] == 70.0 and best["knob"] == 0.2


def test_inclusive_bounds_with_tolerance() -> None:
    pts = _points([(0.1, 80.0, 1.30), (0.2, 81.0, 1.96 + 5e-10), (0.3, 99.0, 1.96 + 1e-6)])
    best = select_in_window(pts, 1.30, 1.96, "layer_speedup")
    assert best is not None and best["knob"] == 0.2
    only_lo = _points([(0.1, 80.0, 1.30)])
    assert select_in_window(only_lo, 1.30, 1.96, "layer_speedup")["knob"] == 0.1
    just_below = _points([(0.1, 80.0, 1.30 - 1e-6)])
    assert select_in_window(just_below, 1.30, 1.96, "layer_speedup") is None


def test_ties_higher_speedup_then_smaller_knob() -> None:
    pts = _points([(0.5, 80.0, 1.4), (0.6, 80.0, 1.6), (0.7, 79.0, 1.9)])
    assert select_in_window(pts, 1.3, 1.96, "layer_speedup")["knob"] == 0.6
    pts = _points([(0.9, 80.0, 1.5), (0.4, 80.0, 1.5)])
    assert select_in_window(pts, 1.3, 1.96, "layer_speedup")["knob"] == 0.4


def test_empty_and_bad_window() -> None:
    pts = _points([(0.1, 80.0, 1.1), (0.2, 70.0, 2.4)])
    assert select_in_window(pts, 1.30, 1.96, "layer_speedup") is None
    assert select_in_window(pts.iloc[0:0], 1.30, 1.96, "layer_speedup") is None
    with pytest.raises(ValueError):
        select_in_window(pts, 2.0, 1.0, "layer_speedup")
    with pytest.raises(ValueError):
        select_all(pd.DataFrame([_row("RTE", "x", 0.1, "dev", 1.0, 1.5)]), 2.0, 1.0, "layer_speedup")


def test_aggregate_seeds_median_and_spread() -> None:
    rows = [_row("RTE", "dpbert", 0.1, "dev", s, v, seed=i)
            for i, (s, v) in enumerate([(60.0, 1.4), (70.0, 1.5), (65.0, 1.8)])]
    agg = aggregate_seeds(pd.DataFrame(rows))
    assert len(agg) == 1
    r = agg.iloc[0]
    assert r["score"] == 65.0 and r["layer_speedup"] == 1.5
    assert r["score_min"] == 60.0 and r["score_max"] == 70.0 and r["n_seeds"] == 3


def test_aggregate_seeds_handles_nan_variant_from_csv() -> None:
    df = pd.DataFrame([_row("RTE", "bert", np.nan, "dev", 70.0, 1.0)])
    df["variant"] = np.nan
    agg = aggregate_seeds(df)
    assert len(agg) == 1 and agg.iloc[0]["variant"] == ""


def test_mnli_splits_come_from_same_knob_point() -> None:
    rows = [
        # knob 0.1: best on matched (inside window)
        _row("MNLI", "dpbert", 0.1, "dev_matched", 82.0, 1.5),
        _row("MNLI", "dpbert", 0.1, "dev_mismatched", 80.0, 1.5),
        # knob 0.2: better on mismatched but worse on matched -> must not be mixed in
        _row("MNLI", "dpbert", 0.2, "dev_matched", 81.0, 1.6),
        _row("MNLI", "dpbert", 0.2, "dev_mismatched", 83.0, 1.6),
        # knob 0.3: best everywhere but outside
        _row("MNLI", "dpbert", 0.3, "dev_matched", 90.0, 1.1),
        _row("MNLI", "dpbert", 0.3, "dev_mismatched", 90.0, 1.1),
    ]
    sel = select_all(pd.DataFrame(rows), 1.30, 1.96, "layer_speedup")
    assert list(sel["split"]) == ["dev_matched", "dev_mismatched"]
    assert set(sel["knob"]) == {0.1}
    assert list(sel["score"]) == [82.0, 80.0]
    assert sel["in_window"].all()


def test_primary_split_override() -> None:
    rows = [
        _row("MNLI", "dpbert", 0.1, "dev_matched", 82.0, 1.5),
        _row("MNLI", "dpbert", 0.1, "dev_mismatched", 80.0, 1.5),
        _row("MNLI", "dpbert", 0.2, "dev_matched", 81.0, 1.6),
        _row("MNLI", "dpbert", 0.2, "dev_mismatched", 83.0, 1.6),
    ]
    sel = select_all(pd.DataFrame(rows), 1.30, 1.96, "layer_speedup",
                     primary_split_of=lambda t: "dev_mismatched")
    assert set(sel["knob"]) == {0.2}


def test_static_methods_pass_through_and_empty_window_rows() -> None:
    rows = [
        _row("RTE", "bert", np.nan, "dev", 68.0, 1.0, display="BERT-base"),
        _row("RTE", "layerdrop", np.nan, "dev", 65.0, 2.0, display="LayerDrop"),
        _row("RTE", "deebert", 0.1, "dev", 64.0, 1.1, display="DeeBERT"),
        _row("RTE", "deebert", 0.5, "dev", 50.0, 2.2, display="DeeBERT"),
    ]
    sel = select_all(pd.DataFrame(rows), 1.30, 1.96, "layer_speedup",
                     static_methods={"bert", "layerdrop"}).set_index("method")
    assert sel.loc["bert", "score"] == 68.0 and sel.loc["bert", "layer_speedup"] == 1.0
    assert sel.loc["layerdrop", "score"] == 65.0 and bool(sel.loc["layerdrop", "static"])
    assert math.isnan(sel.loc["deebert", "score"])
    assert not bool(sel.loc["deebert", "in_window"])
    assert sel.loc["deebert", "note"] == "no point in window"
    assert sel.loc["deebert", "display_name"] == "DeeBERT"
    # windowed when not named static -> its 2.0x point is outside the window
    sel2 = select_all(pd.DataFrame(rows), 1.30, 1.96, "layer_speedup", static_methods={"bert"}).set_index("method")
    assert math.isnan(sel2.loc["layerdrop", "score"])
    assert sel2.loc["bert", "score"] == 68.0
    # by default the static methods are the registry's (``Method.static``): layerdrop is one
    sel3 = select_all(pd.DataFrame(rows), 1.30, 1.96, "layer_speedup").set_index("method")
    assert sel3.loc["layerdrop", "score"] == 65.0 and bool(sel3.loc["layerdrop", "static"])


def test_select_all_uses_seed_medians() -> None:
    rows = [_row("SST-2", "dpbert", 0.1, "dev", s, v, seed=i)
            for i, (s, v) in enumerate([(90.0, 1.2), (91.0, 1.4), (92.0, 1.5)])]
    sel = select_all(pd.DataFrame(rows), 1.30, 1.96, "latency_speedup")
    r = sel.iloc[0]
    # medians: score 91, speed-up 1.4 (inside) although seed 0 alone is outside
    assert r["score"] == 91.0 and r["latency_speedup"] == 1.4 and r["n_seeds"] == 3
    assert r["score_min"] == 90.0 and r["score_max"] == 92.0


def test_mark_window() -> None:
    df = _points([(0.1, 1.0, 1.29), (0.2, 1.0, 1.30), (0.3, 1.0, 1.96), (0.4, 1.0, 1.97)])
    out = mark_window(df, 1.30, 1.96, "layer_speedup")
    assert list(out["in_window"]) == [False, True, True, False]
    assert "in_window" not in df.columns  # input untouched
