"""Hand-checked GLUE metric values (arithmetic in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dpbert.run import metrics as M

# preds  = [1, 1, 0, 0, 1]
# labels = [1, 0, 0, 0, 1]
# TP = 2 (idx 0, 4), FP = 1 (idx 1), TN = 2 (idx 2, 3), FN = 0
PREDS = [1, 1, 0, 0, 1]
LABELS = [1, 0, 0, 0, 1]


def test_accuracy() -> None:
    # 4 of 5 match -> 0.8
    assert M.accuracy(PREDS, LABELS) == pytest.approx(0.8)


def test_f1_binary() -> None:
    # F1 = 2TP / (2TP + FP + FN) = 4 / (4 + 1 + 0) = 0.8
    assert M.f1_binary(PREDS, LABELS) == pytest.approx(0.8)
    # no positive predicted and none true -> 0.0 (no true positives)
    assert M.f1_binary([0, 0], [0, 0]) == 0.0


def test_mcc_binary() -> None:
    # (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))
    # = (2*2 - 1*0) / sqrt(3*2*3*2) = 4 / 6
    assert M.matthews_corrcoef(PREDS, LABELS) == pytest.approx(4 / 6)
    # perfect / perfectly inverted
    assert M.matthews_corrcoef([0, 1, 0, 1], [0, 1, 0, 1]) == pytest.approx(1.0)
    assert M.matthews_corrcoef([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)


def test_mcc_constant_predictions_is_zero() -> None:
    # all-ones predictions: (TN+FN) = 0 -> denominator 0 -> defined as 0.0
    assert M.matthews_corrcoef([1, 1, 1, 1], [0, 1, 0, 1]) == 0.0
    assert M.matthews_corrcoef([1, 1], [1, 1]) == 0.0


def test_pearson() -> None:
    # x = [1,2,3], y = [1,2,4]; means 2 and 7/3
    # dx = [-1,0,1], dy = [-4/3,-1/3,5/3]
    # sum dx*dy = 4/3 + 5/3 = 3; sum dx^2 = 2; sum dy^2 = 42/9
    # r = 3 / sqrt(2 * 42/9) = 9 / sqrt(84)
    assert M.pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(9 / math.sqrt(84))


def test_pearson_constant_is_zero_not_nan() -> None:
    # constant x -> sum dx^2 = 0 -> r undefined -> documented as 0.0
    r = M.pearson([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    assert r == 0.0 and not math.isnan(r)
    assert M.spearman([5, 5, 5], [1, 2, 3]) == 0.0


def test_spearman_monotone() -> None:
    # ranks identical -> rho = 1
    assert M.spearman([1, 2, 3], [1, 2, 4]) == pytest.approx(1.0)
    assert M.spearman([1, 2, 3], [10, 5, 0]) == pytest.approx(-1.0)


def test_spearman_ties_average_ranks() -> None:
    # x = [1,2,2,3] -> ranks [1, 2.5, 2.5, 4]; y = [1,2,3,4] -> [1,2,3,4]
    # both means 2.5; dx = [-1.5,0,0,1.5], dy = [-1.5,-0.5,0.5,1.5]
    # sum dx*dy = 2.25 + 2.25 = 4.5; sum dx^2 = 4.5; sum dy^2 = 5
    # rho = 4.5 / sqrt(4.5 * 5) = 4.5 / sqrt(22.5)
    assert M.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(22.5))


def test_spearman_matches_scipy_on_random_ties() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=50)
    y = rng.integers(0, 5, size=50)
    assert M.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)


def test_glue_metrics_components_and_headline() -> None:
    r = M.glue_metrics("mcc", PREDS, LABELS)
    assert r == pytest.approx({"mcc": 400 / 6, "score": 400 / 6})
    r = M.glue_metrics("acc", PREDS, LABELS)
    assert r == pytest.approx({"accuracy": 80.0, "score": 80.0})
    # acc 80, F1 80 -> mean 80
    r = M.glue_metrics("acc_f1", PREDS, LABELS)
    assert r == pytest.approx({"accuracy": 80.0, "f1": 80.0, "score": 80.0})
    # acc_f1 where they differ: preds [1,1,1,0], labels [1,0,1,0]
    # acc = 3/4 = 75; TP=2, FP=1, FN=0 -> F1 = 4/5 = 80; score = 77.5
    r = M.glue_metrics("acc_f1", [1, 1, 1, 0], [1, 0, 1, 0])
    assert r["accuracy"] == pytest.approx(75.0)
    assert r["f1"] == pytest.approx(80.0)
    assert r["score"] == pytest.approx(77.5)
    # pearson 9/sqrt(84) ~ 0.98198, spearman 1.0 -> score = (98.198 + 100) / 2
    r = M.glue_metrics("pearson_spearman", [1, 2, 3], [1, 2, 4])
    p = 100 * 9 / math.sqrt(84)
    assert r["pearson"] == pytest.approx(p)
    assert r["spearman"] == pytest.approx(100.0)
    assert r["score"] == pytest.approx((p + 100.0) / 2)


def test_glue_metrics_constant_regression_is_zero() -> None:
    r = M.glue_metrics("pearson_spearman", [3.0, 3.0, 3.0], [1.0, 2.0, 3.0])
    assert r == {"pearson": 0.0, "spearman": 0.0, "score": 0.0}


def test_glue_metrics_unknown_metric_names_valid_ones() -> None:
    with pytest.raises(ValueError) as e:
        M.glue_metrics("f1", [1], [1])
    for name in ("mcc", "acc", "acc_f1", "pearson_spearman"):
        assert name in str(e.value)


def test_length_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        M.accuracy([1, 0], [1])


# ---------------------------------------------------------------- the formulas against scikit-learn

DEGENERATE = [  # (preds, labels): constant sides, one example, no class 1, a third label, float labels
    ([1, 1, 1, 1], [0, 1, 0, 1]), ([0, 0], [0, 0]), ([1, 1], [1, 1]), ([1, 1], [0, 0]), ([0, 0], [1, 1]),
    ([1], [0]), ([0], [0]), ([2, 2, 0], [0, 2, 2]), ([0, 1, 2], [2, 1, 0]), ([0, 2], [2, 2]), ([1.0, 0.0], [1, 1]),
]


def test_metrics_equal_scikit_learns() -> None:
    """The numpy formulas (fast enough for the bootstrap) give scikit-learn's values, GLUE's own metric."""
    import warnings

    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(7)
    cases = list(DEGENERATE)
    for _ in range(400):
        n, k = int(rng.integers(1, 60)), int(rng.integers(1, 4))
        y = rng.integers(0, k, n)
        p = np.where(rng.random(n) < 0.6, y, rng.integers(0, k, n))
        cases.append((p.astype(float), y.astype(float)) if rng.random() < 0.3 else (p, y))  # crossfit passes floats
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns on a single label, then returns 0
        for p, y in cases:
            assert abs(M.accuracy(p, y) - skm.accuracy_score(y, p)) < 1e-9, (p, y)
            assert abs(M.f1_binary(p, y) - skm.f1_score(y, p, labels=[1], average="micro", zero_division=0.0)) < 1e-9, (p, y)
            assert abs(M.matthews_corrcoef(p, y) - skm.matthews_corrcoef(y, p)) < 1e-9, (p, y)


def test_degenerate_conventions_hold_without_warnings() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning in a job's log from a degenerate case
        assert M.matthews_corrcoef([1, 1, 1, 1], [0, 1, 0, 1]) == 0.0  # constant predictions
        assert M.matthews_corrcoef([0, 0, 0], [0, 0, 0]) == 0.0  # one label in both
        assert M.f1_binary([0, 0], [0, 0]) == 0.0  # no class 1 anywhere
        assert M.f1_binary([2, 1, 0], [1, 1, 2]) == pytest.approx(2 / 3)  # TP 1, FN 1, FP 0: label 2 is negative
        assert M.glue_metrics("mcc", [0, 0, 0], [0, 1, 1]) == {"mcc": 0.0, "score": 0.0}
        assert M.glue_metrics("pearson_spearman", [3.0, 3.0, 3.0], [1.0, 2.0, 3.0])["score"] == 0.0
        assert M.glue_metrics("acc_f1", [0, 0], [1, 1]) == {"accuracy": 0.0, "f1": 0.0, "score": 0.0}
