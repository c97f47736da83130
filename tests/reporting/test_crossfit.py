"""Cross-fitted choice: no choice reads a reporting-fold label, every row has the same search budget."""

import numpy as np
import pandas as pd
import pytest

from dpbert.reporting.crossfit import (
    PointPredictions,
    assign_folds,
    cap_candidates,
    choose_cell_points,
    expand_rows,
    main_points,
    select_rows,
)
from dpbert.run.metrics import glue_metrics

N = 40


def _job(method, points, labels, split="dev", seed=1, task="SST-2", knob_name="entropy", display=None, rng=None):
    """A job's sweep rows and predictions: ``points`` = [(variant, knob, layer_speedup, accuracy on examples)]."""
    rng = rng or np.random.default_rng(0)
    sweep, preds = [], []
    for variant, knob, speedup, acc in points:
        right = rng.random(len(labels)) < acc
        pred = np.where(right, labels, 1 - labels)
        sweep.append({"task": task, "method": method, "display_name": display or method, "seed": seed,
                      "variant": variant, "knob_name": knob_name, "knob": knob, "split": split,
                      "score": glue_metrics("acc", pred, labels)["score"], "layer_speedup": speedup,
                      "latency_speedup": speedup})
        preds += [{"variant": variant, "knob": knob, "split": split, "idx": i, "label": int(y), "pred": int(p)}
                  for i, (y, p) in enumerate(zip(labels, pred))]
    return pd.DataFrame(sweep), pd.DataFrame(preds)


def _labels(n=N, seed=0):
    return np.random.default_rng(seed).integers(0, 2, n)


def test_folds_are_stratified_balanced_and_seeded():
    y = np.array([0] * 30 + [1] * 11)
    folds = assign_folds(y, "SST-2|dev")
    assert set(folds) == {0, 1} and abs((folds == 0).sum() - (folds == 1).sum()) <= 1
    for label in (0, 1):
        share = folds[y == label]
        assert abs((share == 0).sum() - (share == 1).sum()) <= 1  # every label split evenly
    assert np.array_equal(folds, assign_folds(y, "SST-2|dev"))  # a pure function of labels and key
    assert not np.array_equal(folds, assign_folds(y, "RTE|dev"))
    scores = np.linspace(0, 5, 50)
    reg = assign_folds(scores, "STS-B|dev", is_regression=True)
    assert abs(scores[reg == 0].mean() - scores[reg == 1].mean()) < 0.5  # quintile strata


def test_cap_candidates_is_label_free_and_bounded():
    pts = pd.DataFrame({"variant": ["a"] * 9, "knob": np.arange(9.0), "layer_speedup": np.linspace(1.3, 1.9, 9),
                        "score": np.arange(9.0)[::-1]})
    capped = cap_candidates(pts, "layer_speedup", 4)
    assert len(capped) == 4 and list(capped["knob"]) == [0.0, 3.0, 5.0, 8.0]  # spread: slowest to fastest
    assert list(cap_candidates(pts.assign(score=np.arange(9.0)), "layer_speedup", 4)["knob"]) == [0.0, 3.0, 5.0, 8.0]
    assert len(cap_candidates(pts.head(3), "layer_speedup", 4)) == 3


def test_choice_never_reads_a_reporting_fold_label():
    labels = _labels(60)
    sweep, preds = _job("deebert", [("main", k, 1.3 + 0.1 * k, acc) for k, acc in enumerate([.6, .7, .8, .65])],
                        labels, rng=np.random.default_rng(3))
    folds = assign_folds(labels, "SST-2|dev")
    cands = sweep.assign(n_seeds=1)
    base = choose_cell_points(cands, [PointPredictions(preds)], "acc", "dev", folds, "layer_speedup")
    rng = np.random.default_rng(7)
    for _ in range(5):
        for f in (0, 1):  # scramble the labels and predictions of the fold that choice f does not read
            other = np.flatnonzero(folds != f)
            y = labels.copy()
            y[other] = rng.integers(0, 2, len(other))
            p2 = preds.assign(label=y[preds["idx"]])
            hidden = preds["idx"].isin(other)
            p2.loc[hidden, "pred"] = rng.integers(0, 2, int(hidden.sum()))
            again = choose_cell_points(cands, [PointPredictions(p2)], "acc", "dev", folds, "layer_speedup")
            assert again[f]["knob"] == base[f]["knob"]
    # and the check can fail: scrambling the fold a choice does read moves it (for some draw)
    moved = False
    for _ in range(20):
        mine = np.flatnonzero(folds == 0)
        p2 = preds.copy()
        p2.loc[preds["idx"].isin(mine), "pred"] = rng.integers(0, 2, int(preds["idx"].isin(mine).sum()))
        moved |= choose_cell_points(cands, [PointPredictions(p2)], "acc", "dev", folds, "layer_speedup")[0]["knob"] != base[0]["knob"]
    assert moved


def _two_methods(labels):
    many, p1 = _job("deebert", [("main", k, 1.3 + 0.06 * k, .55 + 0.03 * k) for k in range(10)], labels,
                    display="DeeBERT")
    few, p2 = _job("pabee", [("main", k, 1.3 + 0.3 * k, .7) for k in range(2)], labels, knob_name="patience",
                   display="PABEE")
    return pd.concat([many, few]), {("SST-2", "deebert", 1): p1, ("SST-2", "pabee", 1): p2}


def test_no_method_gets_a_larger_search_budget():
    labels = _labels()
    sweep, preds = _two_methods(labels)
    for k in (1, 3, 4):
        sel, _, _ = select_rows(sweep, preds, methods=["deebert", "pabee"], lo=1.3, hi=1.96,
                                speedup_col="layer_speedup", metric_of=lambda t: "acc", max_candidates=k)
        assert sel["n_candidates"].max() <= k
        assert set(sel.loc[sel["method"] == "deebert", "n_candidates"]) == {k}


def test_crossfit_cell_pools_each_fold_from_the_other_folds_choice():
    labels = _labels()
    sweep, preds = _two_methods(labels)
    sel, specs, pooled = select_rows(sweep, preds, methods=["deebert", "pabee"], lo=1.3, hi=1.96,
                                     speedup_col="layer_speedup", metric_of=lambda t: "acc")
    dee = sel[sel["row"] == "deebert"]
    assert list(dee["chosen_on"]) == ["fold 1", "fold 2"] and list(dee["scored_on"]) == ["fold 2", "fold 1"]
    folds = assign_folds(labels, "SST-2|dev")
    by = PointPredictions(preds[("SST-2", "deebert", 1)])
    expected = np.empty(len(labels))
    for f, (_, r) in enumerate(dee.iterrows()):
        expected[folds != f] = by.get(r["variant"], r["knob"], "dev")[0][folds != f]
    assert np.array_equal(pooled[("deebert", "SST-2", "dev")][0]["pred"].to_numpy(), expected)
    assert dee["score"].iloc[0] == pytest.approx(glue_metrics("acc", expected, labels)["score"])
    same, _, _ = select_rows(sweep, preds, methods=["deebert", "pabee"], lo=1.3, hi=1.96,
                             speedup_col="layer_speedup", metric_of=lambda t: "acc", mode="same_set")
    best = sweep[(sweep["method"] == "deebert")]
    assert set(same["chosen_on"]) == {"all"}
    # same_set picks the best of its (capped) candidates on all examples: never below the cross-fitted cell
    assert same.loc[same["row"] == "deebert", "score"].iloc[0] >= dee["score"].iloc[0] - 1e-9
    assert same.loc[same["row"] == "deebert", "score"].iloc[0] <= best["score"].max() + 1e-9


def test_rows_dpbert_at_its_trained_rule_and_one_row_per_static_model():
    labels = _labels()
    dp, p_dp = _job("dpbert", [("t0.25", 0.5, 1.35, .7), ("t0.45", 0.5, 1.6, .65), ("t0.25", 0.8, 1.7, .9)],
                    labels, knob_name="threshold", display="DPBERT")
    kl = pd.concat([_job("bert_truncated", [(v, k, 12 / k, .6)], labels, knob_name="layers", display=f"BERT-{v}")[0]
                    for v, k in (("9L", 9.0), ("6L", 6.0))])
    expanded, specs = expand_rows(pd.concat([dp, kl]), ["bert_truncated", "dpbert"])
    assert [s.key for s in specs] == ["bert_truncated:9L", "bert_truncated:6L", "dpbert", "dpbert:searched"]
    assert [s.display_name for s in specs] == ["BERT-9L", "BERT-6L", "DPBERT", "DPBERT, threshold searched"]
    assert set(expanded.loc[expanded["row"] == "dpbert", "knob"]) == {0.5}
    sel, _, _ = select_rows(dp, {("SST-2", "dpbert", 1): p_dp}, methods=["dpbert"], lo=1.3, hi=1.96,
                            speedup_col="layer_speedup", metric_of=lambda t: "acc")
    assert set(sel.loc[sel["row"] == "dpbert", "threshold"]) == {0.5}
    assert len(main_points(sel)) == 1 and main_points(sel)["row"].iloc[0] == "dpbert"


def test_table2_pairs_are_matched_in_speedup_and_chosen_like_table1_cells():
    from dpbert.reporting.crossfit import matched_pair_cells
    from dpbert.reporting.selection import aggregate_seeds

    labels = _labels(60)
    a, pa = _job("dpbert", [("t0.25", 0.5, 1.35, .8), ("t0.45", 0.5, 1.8, .7)], labels, knob_name="threshold")
    b, pb = _job("dpbert_soft", [("t0.25", 0.5, 1.4, .6), ("t0.45", 0.5, 2.2, .9)], labels, knob_name="threshold")
    a_pts, b_pts = aggregate_seeds(a), aggregate_seeds(b)
    cells = matched_pair_cells(a_pts, b_pts, [PointPredictions(pa)], [PointPredictions(pb)], metric="acc",
                               task="SST-2", splits=["dev"], speedup_col="layer_speedup")
    assert cells["n_pairs"] == 1  # 1.35 vs 1.4 only: 1.8 vs 2.2 is 0.4x apart
    assert [c["variant"] for c in cells["a"]["choices"]] == ["t0.25", "t0.25"]
    assert [c["variant"] for c in cells["b"]["choices"]] == ["t0.25", "t0.25"]
    assert cells["a"]["scores"]["dev"] == pytest.approx(a_pts["score"].iloc[0])  # one pair: the whole-dev score
    assert matched_pair_cells(a_pts.iloc[[1]], b_pts.iloc[[1]], [PointPredictions(pa)], [PointPredictions(pb)],
                              metric="acc", task="SST-2", splits=["dev"], speedup_col="layer_speedup") is None
