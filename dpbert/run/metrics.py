"""GLUE metrics computed offline: numpy for accuracy, F1 and MCC, scipy.stats for the correlations.

Why here: the hub's `evaluate` metric scripts are downloaded from the hub, which is
unavailable on offline compute nodes. :mod:`dpbert.run.glue_metric`, the same values as an
`evaluate` module loaded by path, calls the functions below: one implementation.
Why numpy and not scikit-learn's functions (what GLUE's metric calls): the bootstrap scores every
Table 1 cell about 1,000 times and health's paired SEs 200 times more, and scikit-learn's per-call
input checks made that about 100x slower (the demo's Table 1 bootstrap 1.9 s -> 198 s, measured);
tests/run/test_metrics.py checks these against scikit-learn to 1e-9, degenerate cases included.

Degenerate-case convention (documented, tested): when a correlation is
undefined (constant predictions or labels, fewer than 2 points) the value is
0.0 rather than NaN, matching sklearn's ``matthews_corrcoef`` and keeping a
collapsed model's score at "no correlation" instead of poisoning averages.
F1 is the F1 of class 1 against every other label (0.0 without a true positive), as
scikit-learn's ``f1_score(labels=[1], average="micro", zero_division=0)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np
from scipy import stats

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
    """Fraction of exact matches (in [0, 1])."""
    p, y = _pair(preds, labels)
    return float(np.mean(p == y))


def f1_binary(preds: ArrayLike, labels: ArrayLike) -> float:
    """F1 of the positive class 1 (0.0 when there are no true positives)."""
    p, y = _pair(preds, labels)
    tp = float(np.sum((p == 1) & (y == 1)))
    fp = float(np.sum((p == 1) & (y != 1)))
    fn = float(np.sum((p != 1) & (y == 1)))
    denom = 2 * tp + fp + fn
    return 0.0 if denom == 0 or tp == 0 else 2 * tp / denom


def matthews_corrcoef(preds: ArrayLike, labels: ArrayLike) -> float:
    """Multiclass MCC (Gorodkin), equal to the binary formula for 2 classes.

    Returns 0.0 when undefined (e.g. constant predictions), like sklearn.
    """
    p, y = _pair(preds, labels)
    classes = np.union1d(p, y)
    pi = np.searchsorted(classes, p)
    yi = np.searchsorted(classes, y)
    k = classes.size
    cm = np.zeros((k, k), dtype=np.float64)
    np.add.at(cm, (yi, pi), 1.0)
    t_sum = cm.sum(axis=1)  # true occurrences per class
    p_sum = cm.sum(axis=0)  # predicted occurrences per class
    n_correct = np.trace(cm)
    n = cm.sum()
    cov_ytyp = n_correct * n - float(np.dot(t_sum, p_sum))
    cov_ypyp = n * n - float(np.dot(p_sum, p_sum))
    cov_ytyt = n * n - float(np.dot(t_sum, t_sum))
    denom = cov_ytyt * cov_ypyp
    if denom <= 0:
        return 0.0
    return float(cov_ytyp / np.sqrt(denom))


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
