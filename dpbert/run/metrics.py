"""GLUE metrics computed offline: scikit-learn for the classification metrics, scipy.stats for the
correlations.

Why here: the hub's `evaluate` metric scripts are downloaded from the hub, which is
unavailable on offline compute nodes.  These are the library functions GLUE's own metric calls
(sklearn / scipy); the same values as an `evaluate` module, loaded by path:
:mod:`dpbert.run.glue_metric` (which calls the functions below: one implementation).

Degenerate-case convention (documented, tested): when a correlation is
undefined (constant predictions or labels, fewer than 2 points) the value is
0.0 rather than NaN, matching sklearn's ``matthews_corrcoef`` and keeping a
collapsed model's score at "no correlation" instead of poisoning averages.
F1 is the F1 of class 1 against every other label (0.0 without a true positive).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Union

import numpy as np
from scipy import stats
from sklearn import metrics as skm

ArrayLike = Union[Sequence[float], Sequence[int], np.ndarray]

VALID_METRICS: tuple[str, ...] = ("mcc", "acc", "acc_f1", "pearson_spearman")


def _pair(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Flatten both inputs and insist on equal, non-zero length."""
    x = np.asarray(a).reshape(-1)
    y = np.asarray(b).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"length mismatch: {x.shape[0]} vs {y.shape[0]}")
    if x.size == 0:
        raise ValueError("empty inputs")
    return x, y


def accuracy(preds: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of exact matches (in [0, 1]): sklearn's ``accuracy_score``."""
    p, y = _pair(preds, labels)
    return float(skm.accuracy_score(y, p))


def f1_binary(preds: ArrayLike, labels: ArrayLike) -> float:
    """F1 of the positive class 1, every other label negative (0.0 when there are no true positives):
    sklearn's ``f1_score`` over the one label 1 (``average="binary"`` would reject a third label)."""
    p, y = _pair(preds, labels)
    return float(skm.f1_score(y, p, labels=[1], average="micro", zero_division=0.0))


def matthews_corrcoef(preds: ArrayLike, labels: ArrayLike) -> float:
    """Multiclass MCC (Gorodkin), equal to the binary formula for 2 classes: sklearn's
    ``matthews_corrcoef``, 0.0 when undefined (e.g. constant predictions)."""
    p, y = _pair(preds, labels)
    with warnings.catch_warnings():  # one label in both: sklearn warns, then returns the defined 0.0
        warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
        return float(skm.matthews_corrcoef(y, p))


def _correlation(fn, a: np.ndarray, b: np.ndarray) -> float:
    """``fn`` (scipy.stats.pearsonr / spearmanr) on float64; 0.0 when undefined (a constant side or
    < 2 points: scipy warns and returns NaN there), clipped to [-1, 1]."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0
    r = float(fn(a, b).statistic)
    return float(np.clip(r, -1.0, 1.0)) if np.isfinite(r) else 0.0


def pearson(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson r (scipy.stats.pearsonr); 0.0 when undefined (a constant side or < 2 points)."""
    return _correlation(stats.pearsonr, *_pair(x, y))


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman rho (scipy.stats.spearmanr: Pearson of average ranks); 0.0 when undefined."""
    return _correlation(stats.spearmanr, *_pair(x, y))


def glue_metrics(metric: str, preds: ArrayLike, labels: ArrayLike) -> dict[str, float]:
    """All components x100 plus ``score``, the GLUE headline x100.

    mcc -> {mcc, score}; acc -> {accuracy, score};
    acc_f1 -> {accuracy, f1, score=(acc+f1)/2};
    pearson_spearman -> {pearson, spearman, score=(p+s)/2}.
    """
    if metric == "mcc":
        m = 100.0 * matthews_corrcoef(preds, labels)
        return {"mcc": m, "score": m}
    if metric == "acc":
        a = 100.0 * accuracy(preds, labels)
        return {"accuracy": a, "score": a}
    if metric == "acc_f1":
        a = 100.0 * accuracy(preds, labels)
        f = 100.0 * f1_binary(preds, labels)
        return {"accuracy": a, "f1": f, "score": (a + f) / 2.0}
    if metric == "pearson_spearman":
        p = 100.0 * pearson(preds, labels)
        s = 100.0 * spearman(preds, labels)
        return {"pearson": p, "spearman": s, "score": (p + s) / 2.0}
    raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(VALID_METRICS)}")
