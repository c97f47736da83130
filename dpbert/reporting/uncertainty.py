"""Bootstrap standard errors of GLUE scores over dev examples (pure numpy, no torch).

Why: a demo dev set has a few hundred examples, so a score moves by a few points from the draw
of the examples alone; a table cell or a yes/no claim must say how much. The bootstrap resamples
the dev examples with replacement and recomputes the task's metric on each resample; the
standard error is the standard deviation of those replicate scores.

Paired by construction: the resampled indices depend only on ``(key, n, n_boot)`` (``key``
names the dev split, e.g. "MRPC|dev"), never on the predictions, so every method scored on the
same split sees the same resamples, and the replicates of two methods can be subtracted to get
the standard error of their *difference* (their errors on the same examples are correlated:
an unpaired sqrt(se_a^2 + se_b^2) would overstate it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from dpbert.run.metrics import ArrayLike, glue_metrics

__all__ = ["DEFAULT_BOOT", "average_replicates", "bootstrap_indices", "bootstrap_scores", "bootstrap_se",
           "cell_replicates", "combine_replicates", "standard_error", "table1_replicates"]

DEFAULT_BOOT = 1000


def _seed_of(key: str) -> int:
    return int(hashlib.sha256(f"dpbert-bootstrap|{key}".encode()).hexdigest()[:16], 16)


# Not scipy.stats.bootstrap: it pairs only the samples of one call and keeps its resample indices inside, while the
# rows here are scored in separate calls (each Table 1 cell, health's differences) and must share one index set.
def bootstrap_indices(n: int, n_boot: int = DEFAULT_BOOT, key: str = "") -> np.ndarray:
    """(n_boot, n) indices drawn with replacement, a pure function of (n, n_boot, key)."""
    if n < 1:
        raise ValueError(f"cannot bootstrap {n} examples")
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot}")
    return np.random.default_rng(_seed_of(key)).integers(0, n, size=(n_boot, n))


def bootstrap_scores(metric: str, preds: ArrayLike, labels: ArrayLike, *, n_boot: int = DEFAULT_BOOT,
                     key: str = "") -> np.ndarray:
    """Replicate scores (x100, the GLUE headline ``score`` of ``metric``) on ``n_boot`` resamples."""
    p = np.asarray(preds).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if p.shape != y.shape:
        raise ValueError(f"length mismatch: {p.shape[0]} vs {y.shape[0]}")
    idx = bootstrap_indices(len(p), n_boot, key)
    if metric == "acc":  # vectorised: the common case, and 100x faster than the loop
        return 100.0 * (p[idx] == y[idx]).mean(axis=1)
    return np.array([glue_metrics(metric, p[i], y[i])["score"] for i in idx])


def bootstrap_se(metric: str, preds: ArrayLike, labels: ArrayLike, *, n_boot: int = DEFAULT_BOOT,
                 key: str = "") -> float:
    """Bootstrap standard error (x100, same scale as the score) of ``metric`` over the examples."""
    return float(np.std(bootstrap_scores(metric, preds, labels, n_boot=n_boot, key=key), ddof=1))


def combine_replicates(replicates: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Replicates of a weighted sum of scores (e.g. an average over tasks, or a difference of two
    methods): the same linear combination applied replicate by replicate."""
    reps = [np.asarray(r, dtype=float) for r in replicates]
    if not reps:
        raise ValueError("no replicates to combine")
    if len({r.shape for r in reps}) != 1:
        raise ValueError("replicates of different lengths cannot be combined (different n_boot)")
    w = np.full(len(reps), 1.0 / len(reps)) if weights is None else np.asarray(weights, dtype=float)
    return np.tensordot(w, np.stack(reps), axes=1)


# --------------------------------------------------------------------------- Table 1 cells

REPLICATE_SEP = "|"
"""Column names of a replicate frame: "<model>|<table column>" (e.g. "DPBERT|MNLI-m")."""


def split_key(task: str, split: str) -> str:
    """The resampling key of a dev split: the same for every method scored on it (paired replicates)."""
    return f"{task}|{split}"


def point_replicates(metric: str, preds_by_seed: Sequence, *, task: str, split: str,
                     n_boot: int = DEFAULT_BOOT) -> np.ndarray:
    """Replicates of one table cell: per seed, the point's predictions (a frame with idx, label, pred, rows
    of one split), each scored on the split's shared resamples; the cell is the median over seeds, so is
    each replicate."""
    reps = []
    for preds in preds_by_seed:
        p = preds.sort_values("idx")
        reps.append(bootstrap_scores(metric, p["pred"].to_numpy(), p["label"].to_numpy(), n_boot=n_boot,
                                     key=split_key(task, split)))
    if not reps:
        raise ValueError(f"no predictions for {task}/{split}")
    return np.median(np.stack(reps), axis=0)


def table1_replicates(selected, predictions, *, n_boot: int = DEFAULT_BOOT):
    """Bootstrap replicates of every Table 1 cell: a frame with one column per "<display name>|<column>"
    and ``n_boot`` rows, paired across methods (the same resampled examples in every column of a split).

    ``selected``: :func:`dpbert.reporting.selection.select_all` output (one operating point per task, method and
    split). ``predictions``: {(task, method, seed): prediction frame of the job} (predictions.csv.gz:
    variant, knob, split, idx, label, pred). Cells without a point (no score) have no column."""
    import pandas as pd

    from dpbert.data.tasks import get_task
    from dpbert.reporting.layout import column_of

    cols: dict[str, np.ndarray] = {}
    for _, r in selected.iterrows():
        if pd.isna(r["score"]) or pd.isna(r["knob"]):
            continue
        task, method, split = str(r["task"]), str(r["method"]), str(r["split"])
        frames = []
        for (t, m, _seed), preds in sorted(predictions.items(), key=lambda kv: str(kv[0])):
            if t != task or m != method:
                continue
            variant = preds["variant"].fillna("").astype(str)
            sub = preds[(variant == str(r["variant"] if not pd.isna(r["variant"]) else ""))
                        & np.isclose(preds["knob"].astype(float), float(r["knob"]), rtol=0, atol=1e-9)
                        & (preds["split"].astype(str) == split)]
            if len(sub):
                frames.append(sub)
        if not frames:
            continue
        name = f"{r['display_name']}{REPLICATE_SEP}{column_of(task, split)}"
        cols[name] = point_replicates(get_task(task).metric, frames, task=task, split=split, n_boot=n_boot)
    return pd.DataFrame(cols)


def cell_replicates(replicates, model: str, column: str) -> np.ndarray | None:
    """The replicates of one cell, or None when the frame has none for it."""
    name = f"{model}{REPLICATE_SEP}{column}"
    if replicates is None or name not in getattr(replicates, "columns", ()):
        return None
    return replicates[name].to_numpy(dtype=float)


def task_replicates(replicates, model: str, task: str) -> np.ndarray | None:
    """Replicates of a row's score on one task as the tables count it (MNLI: mean of MNLI-m and MNLI-mm)."""
    parts = [cell_replicates(replicates, model, c) for c in (["MNLI-m", "MNLI-mm"] if task == "MNLI" else [task])]
    if any(p is None for p in parts):
        return None
    return combine_replicates(parts)


def average_replicates(replicates, model: str, tasks: Sequence[str]) -> np.ndarray | None:
    """Replicates of a row's average over ``tasks`` (MNLI once); None if a task has no replicates."""
    parts = [task_replicates(replicates, model, t) for t in tasks]
    if not parts or any(p is None for p in parts):
        return None
    return combine_replicates(parts)


def standard_error(reps: np.ndarray | None) -> float:
    return float("nan") if reps is None or len(reps) < 2 else float(np.std(reps, ddof=1))
