"""Every Table 1 row chosen the same way, on examples it is not scored on (cross-fitting).

Why: a row that is the best of many window points, picked on the dev examples it is then scored on,
is biased upwards, and more so the more points it was picked from. Here every dev split is cut into two
folds (seeded, stratified by label; STS-B by score quintile). Each row's operating point is chosen on
one fold and applied to the other, and the other way round: every example is predicted by a point that
was chosen without its label, and every example still counts. The reported cell is the metric of
those pooled predictions (for a row with one point, exactly its whole-dev score). Every row is chosen
from at most ``max_candidates`` window points, picked without labels (spread evenly over the window's
speed-ups), so no method wins by being searched harder.

Table rows (:func:`expand_rows`): a method is one row, except a method with a ``trained_knob`` (DPBERT:
the rule p_i >= 0.5 it is trained for), whose row keeps only the points at that knob and whose points
at every knob form a second, labelled row ("DPBERT, threshold searched"); and a static method with one
trained model per variant (BERT-kL: BERT-9L, BERT-6L), one row per model. All functions are pure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dpbert.reporting.selection import TOL, aggregate_seeds, default_primary_split
from dpbert.run.metrics import glue_metrics

N_FOLDS = 2
DEFAULT_MAX_CANDIDATES = 4
"""Window points a row may be chosen from (``selection.max_candidates``); a discrete knob may have fewer."""

CHOICE_MODES = ("crossfit", "same_set")
SEARCHED_SUFFIX = ":searched"
REGRESSION_BINS = 5


# --------------------------------------------------------------------------- folds


def _rng(key: str) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha256(f"dpbert-folds|{key}".encode()).hexdigest()[:16], 16))


def strata(labels: np.ndarray, is_regression: bool) -> np.ndarray:
    """The label of each example, or (regression) its score quintile: what the folds are stratified by."""
    y = np.asarray(labels, dtype=float)
    if not is_regression:
        return y
    edges = np.quantile(y, np.linspace(0, 1, REGRESSION_BINS + 1)[1:-1])
    return np.searchsorted(edges, y, side="right").astype(float)


def assign_folds(labels: Sequence[float], key: str, is_regression: bool = False) -> np.ndarray:
    """Fold (0 or 1) of each example, a pure function of the labels and ``key`` (task|split): within each
    stratum a seeded permutation, dealt alternately, the next stratum starting where the last one ended,
    so the two folds differ in size by at most one and hold every label in the same proportion."""
    s = strata(np.asarray(labels), is_regression)
    folds = np.zeros(len(s), dtype=int)
    rng = _rng(key)
    dealt = 0
    for value in np.unique(s):
        members = rng.permutation(np.flatnonzero(s == value))
        folds[members] = (np.arange(len(members)) + dealt) % N_FOLDS
        dealt += len(members)
    return folds


# --------------------------------------------------------------------------- table rows


@dataclass(frozen=True)
class RowSpec:
    key: str  # "dpbert", "dpbert:searched", "bert_truncated:9L"
    method: str
    display_name: str
    static: bool


def expand_rows(sweep: pd.DataFrame, methods: Sequence[str]) -> tuple[pd.DataFrame, list[RowSpec]]:
    """The sweep with a ``row`` column (points of two rows appear twice) and the rows in table order."""
    from dpbert.methods.registry import get_method

    df = sweep.copy()
    df["variant"] = [("" if pd.isna(v) else str(v)) for v in df["variant"]]
    if "display_name" not in df.columns:
        df["display_name"] = df["method"]
    parts: list[pd.DataFrame] = []
    specs: list[RowSpec] = []
    for method in methods:
        sub = df[df["method"] == method]
        if sub.empty:
            continue
        cls = get_method(method)
        display = str(sub["display_name"].iloc[0])
        trained = getattr(cls, "trained_knob", None)
        if trained is not None:
            at_rule = np.isclose(sub["knob"].astype(float), float(trained), rtol=0, atol=TOL)
            parts.append(sub[at_rule].assign(row=method))
            specs.append(RowSpec(method, method, display, cls.static))
            if (~at_rule).any():
                name = f"{display}, threshold searched"
                parts.append(sub.assign(row=method + SEARCHED_SUFFIX, display_name=name))
                specs.append(RowSpec(method + SEARCHED_SUFFIX, method, name, cls.static))
        elif cls.static and sub["display_name"].nunique() > 1:
            for variant in dict.fromkeys(sub["variant"]):
                part = sub[sub["variant"] == variant]
                parts.append(part.assign(row=f"{method}:{variant}"))
                specs.append(RowSpec(f"{method}:{variant}", method, str(part["display_name"].iloc[0]), True))
        else:
            parts.append(sub.assign(row=method))
            specs.append(RowSpec(method, method, display, cls.static))
    out = pd.concat(parts, ignore_index=True) if parts else df.assign(row=df["method"]).iloc[0:0]
    return out, specs


# --------------------------------------------------------------------------- candidates and choice


def cap_candidates(points: pd.DataFrame, speedup_col: str, k: int) -> pd.DataFrame:
    """At most ``k`` of ``points``, chosen without labels: spread evenly from the slowest to the fastest
    (sorted by speed-up, then variant, then knob); all of them when there are no more than ``k``."""
    if k < 1:
        raise ValueError(f"selection.max_candidates must be >= 1, got {k}")
    ordered = points.assign(_s=pd.to_numeric(points[speedup_col], errors="coerce")).sort_values(
        ["_s", "variant", "knob"], kind="mergesort").drop(columns="_s")
    n = len(ordered)
    if n <= k:
        return ordered
    if k == 1:
        return ordered.iloc[[n - 1]]
    return ordered.iloc[sorted({round(j * (n - 1) / (k - 1)) for j in range(k)})]


def _best(candidates: pd.DataFrame, scores: Sequence[float], speedup_col: str) -> int:
    """Position (in ``candidates``) of the best score; ties: higher speed-up, smaller knob, variant name."""
    order = sorted(range(len(candidates)), key=lambda i: (
        -(scores[i] if not pd.isna(scores[i]) else -np.inf),
        -float(candidates[speedup_col].iloc[i]) if not pd.isna(candidates[speedup_col].iloc[i]) else np.inf,
        float(candidates["knob"].iloc[i]) if not pd.isna(candidates["knob"].iloc[i]) else np.inf,
        str(candidates["variant"].iloc[i])))
    return order[0]


class PointPredictions:
    """The per-example predictions of one job, looked up by (variant, knob, split), ordered by idx."""

    def __init__(self, preds: pd.DataFrame):
        df = preds.copy()
        df["variant"] = [("" if pd.isna(v) else str(v)) for v in df["variant"]]
        self._by: dict[tuple[str, float, str], tuple[np.ndarray, np.ndarray]] = {}
        for (variant, knob, split), g in df.groupby(["variant", "knob", "split"], sort=False, dropna=False):
            g = g.sort_values("idx")
            self._by[(variant, round(float(knob), 9), str(split))] = (g["pred"].to_numpy(float), g["label"].to_numpy(float))

    def get(self, variant: str, knob: float, split: str) -> tuple[np.ndarray, np.ndarray] | None:
        return self._by.get((str(variant), round(float(knob), 9), str(split)))


def _score(metric: str, preds: np.ndarray, labels: np.ndarray) -> float:
    return float(glue_metrics(metric, preds, labels)["score"]) if len(preds) else np.nan


@dataclass
class Cell:
    """One (row, task, split) of Table 1: the point each fold chose, and the pooled predictions per seed."""

    choices: list[pd.Series]  # choices[f]: the aggregated sweep row chosen on fold f (same_set: one, on all)
    fold_scores: list[float]  # choices[f]'s score on the other fold(s) of this split (median over seeds)
    pooled: list[pd.DataFrame]  # per seed: idx, label, pred with every example predicted by the other fold's choice
    scores: list[float]  # per seed: the metric of ``pooled``
    n_candidates: int


def folds_of(jobs: Sequence[PointPredictions], point: pd.Series, task: str, split: str, metric: str) -> np.ndarray | None:
    """The folds of a split, from the labels recorded with ``point``'s predictions (None: not recorded)."""
    got = jobs[0].get(point["variant"], point["knob"], split) if jobs else None
    return None if got is None else assign_folds(got[1], f"{task}|{split}", metric == "pearson_spearman")


def choosing_masks(folds: np.ndarray, mode: str) -> list[np.ndarray]:
    """The examples each choice reads: each fold (crossfit), or all of them (same_set)."""
    if mode not in CHOICE_MODES:
        raise ValueError(f"selection.choose_on must be one of {', '.join(CHOICE_MODES)}, not {mode!r}")
    return [np.ones(len(folds), bool)] if mode == "same_set" else [folds == f for f in range(N_FOLDS)]


def choose_cell_points(candidates: pd.DataFrame, jobs: Sequence[PointPredictions], metric: str, primary: str,
                       folds: np.ndarray, speedup_col: str, mode: str = "crossfit") -> list[pd.Series]:
    """The point chosen on each fold of the primary split, reading only that fold's labels (median of the
    fold score over seeds); ``same_set``: one point, chosen on every example (the optimistic old rule)."""
    out = []
    for mask in choosing_masks(folds, mode):
        scores = []
        for _, c in candidates.iterrows():
            per_seed = []
            for job in jobs:
                got = job.get(c["variant"], c["knob"], primary)
                if got is not None:
                    per_seed.append(_score(metric, got[0][mask], got[1][mask]))
            scores.append(float(np.median(per_seed)) if per_seed else np.nan)
        out.append(candidates.iloc[_best(candidates, scores, speedup_col)])
    return out


def pool(choices: Sequence[pd.Series], jobs: Sequence[PointPredictions], split: str, folds: np.ndarray,
         metric: str) -> tuple[list[pd.DataFrame], list[float], list[float]]:
    """Per seed, the split's predictions with each example in fold g taken from the point chosen on the other
    fold (one choice: from it), their score, and each choice's score on the fold(s) it did not choose on."""
    pooled, scores = [], []
    fold_scores: list[list[float]] = [[] for _ in choices]
    for job in jobs:
        got = [job.get(c["variant"], c["knob"], split) for c in choices]
        if any(g is None or len(g[0]) != len(folds) for g in got):
            continue
        labels = got[0][1]
        if len(choices) == 1:
            pred = got[0][0]
            fold_scores[0].append(_score(metric, pred, labels))
        else:
            pred = np.empty(len(folds))
            for f in range(N_FOLDS):  # the point chosen on fold f predicts the other fold
                other = folds != f
                pred[other] = got[f][0][other]
                fold_scores[f].append(_score(metric, got[f][0][other], labels[other]))
        pooled.append(pd.DataFrame({"idx": np.arange(len(folds)), "label": labels, "pred": pred}))
        scores.append(_score(metric, pred, labels))
    return pooled, scores, [float(np.median(s)) if s else np.nan for s in fold_scores]


# --------------------------------------------------------------------------- every row


SELECTED_COLUMNS: list[str] = [
    "task", "row", "method", "display_name", "split", "chosen_on", "scored_on", "variant", "knob_name", "knob",
    "threshold", "fold_score", "score", "score_min", "score_max", "n_seeds", "n_candidates", "layer_speedup",
    "latency_speedup", "flops_per_example", "flops_speedup", "in_window", "static", "note",
]


def select_rows(sweep: pd.DataFrame, predictions: Mapping[tuple[str, str, int], pd.DataFrame], *,
                methods: Sequence[str], lo: float, hi: float, speedup_col: str, metric_of, dev_splits_of=None,
                max_candidates: int = DEFAULT_MAX_CANDIDATES, mode: str = "crossfit",
                ) -> tuple[pd.DataFrame, list[RowSpec], dict[tuple[str, str, str], list[pd.DataFrame]]]:
    """(selected points, rows in table order, pooled predictions per (row, task, split): one frame per seed).

    ``predictions``: {(task, method, seed): the job's predictions.csv.gz}; ``metric_of(task)``: the task's
    GLUE metric. selected points: one line per (task, row, split, choosing fold): the fold that chose the
    point (``chosen_on``), the fold it is scored on, its variant / knob (``threshold``: DPBERT's), its score
    on that fold (``fold_score``), and the cell's cross-fitted ``score`` (the same on both lines)."""
    if lo > hi:
        raise ValueError(f"window lower bound {lo} > upper bound {hi}")
    expanded, specs = expand_rows(sweep, methods)
    agg = aggregate_seeds(expanded.drop(columns=["method"]).rename(columns={"row": "method"}))
    agg = agg.rename(columns={"method": "row"})
    spec_of = {s.key: s for s in specs}
    rows: list[dict] = []
    pooled_out: dict[tuple[str, str, str], list[pd.DataFrame]] = {}
    for (task, row), grp in agg.groupby(["task", "row"], sort=True):
        spec = spec_of[row]
        splits = sorted(grp["split"].unique())
        primary = default_primary_split(splits)
        jobs = [PointPredictions(p) for (t, m, _s), p in sorted(predictions.items(), key=lambda kv: str(kv[0]))
                if t == task and m == spec.method]
        prim = grp[grp["split"] == primary]
        sp = pd.to_numeric(prim[speedup_col], errors="coerce")
        inside = prim if spec.static else prim[(sp >= lo - TOL) & (sp <= hi + TOL)]
        inside = inside[inside["score"].notna()]
        base = {"task": task, "row": row, "method": spec.method, "display_name": spec.display_name,
                "static": spec.static}
        if inside.empty or not jobs:
            why = ("no predictions recorded" if not jobs else
                   "no point in window" if not spec.static else f"no point on split {primary}")
            for split in splits:
                rows.append({**base, "split": split, "chosen_on": "", "scored_on": "", "variant": "", "knob_name": "",
                             "knob": np.nan, "threshold": np.nan, "fold_score": np.nan, "score": np.nan,
                             "score_min": np.nan, "score_max": np.nan, "n_seeds": 0, "n_candidates": 0,
                             "layer_speedup": np.nan, "latency_speedup": np.nan, "flops_per_example": np.nan,
                             "flops_speedup": np.nan, "in_window": False, "note": why})
            continue
        candidates = cap_candidates(inside, speedup_col, max_candidates)
        metric = metric_of(task)
        prim_folds = folds_of(jobs, candidates.iloc[0], task, primary, metric)
        choices = choose_cell_points(candidates, jobs, metric, primary, prim_folds, speedup_col, mode)
        for split in splits:
            folds = folds_of(jobs, choices[0], task, split, metric)
            if folds is None:
                continue
            pooled, scores, fold_scores = pool(choices, jobs, split, folds, metric)
            pooled_out[(row, task, split)] = pooled
            for f, c in enumerate(choices):
                at_split = grp[(grp["split"] == split) & (grp["variant"] == c["variant"])
                               & np.isclose(grp["knob"].astype(float), float(c["knob"]), rtol=0, atol=TOL)]
                point = at_split.iloc[0] if len(at_split) else c
                chosen_on = "all" if len(choices) == 1 else f"fold {f + 1}"
                scored_on = "all" if len(choices) == 1 else f"fold {N_FOLDS - f}"
                rows.append({**base, "split": split, "chosen_on": chosen_on, "scored_on": scored_on,
                             "variant": c["variant"], "knob_name": c["knob_name"], "knob": c["knob"],
                             "threshold": c["knob"] if c["knob_name"] == "threshold" else np.nan,
                             "fold_score": fold_scores[f],
                             "score": float(np.median(scores)) if scores else np.nan,
                             "score_min": float(np.min(scores)) if scores else np.nan,
                             "score_max": float(np.max(scores)) if scores else np.nan,
                             "n_seeds": len(scores), "n_candidates": len(candidates),
                             "layer_speedup": point.get("layer_speedup", np.nan),
                             "latency_speedup": point.get("latency_speedup", np.nan),
                             "flops_per_example": point.get("flops_per_example", np.nan),
                             "flops_speedup": point.get("flops_speedup", np.nan),
                             "in_window": True, "note": "static baseline (not windowed)" if spec.static else ""})
    out = pd.DataFrame(rows, columns=SELECTED_COLUMNS)
    out["in_window"] = out["in_window"].astype(bool)
    out["static"] = out["static"].astype(bool)
    return out.reset_index(drop=True), specs, pooled_out


def row_points(selected: pd.DataFrame) -> pd.DataFrame:
    """One line per (task, row, split): each Table 1 row's own point (not the "threshold searched" rows),
    chosen on the first fold: what the health checks judge, one verdict per row (BERT-9L and BERT-6L
    are judged apart)."""
    if "row" not in selected.columns:
        return selected
    sel = selected[~selected["row"].astype(str).str.endswith(SEARCHED_SUFFIX)]
    return sel.drop_duplicates(["task", "row", "split"], keep="first").reset_index(drop=True)


def main_points(selected: pd.DataFrame) -> pd.DataFrame:
    """One line per (task, method, split): the method's own row (:func:`row_points`; for a method with
    one row per model, its first): what Table 3 and Figures 3-4 read as the method's operating point."""
    if "row" not in selected.columns:
        return selected
    sel = row_points(selected)
    first_row = sel.groupby("method", sort=False)["row"].transform("first")
    sel = sel[sel["row"] == first_row]
    return sel.drop_duplicates(["task", "method", "split"], keep="first").reset_index(drop=True)


# --------------------------------------------------------------------------- Table 2: matched pairs

MATCH_TOL = 0.10
"""Table 2's two variants are compared at speed-ups within this many x of each other."""


def matched_pair_cells(a_points: pd.DataFrame, b_points: pd.DataFrame, a_jobs: Sequence[PointPredictions],
                       b_jobs: Sequence[PointPredictions], *, metric: str, task: str, splits: Sequence[str],
                       speedup_col: str, tol: float = MATCH_TOL, mode: str = "crossfit") -> dict | None:
    """Two variants (Table 2: DPBERT, DPBERT-soft) compared the same way: the candidates are every pair of
    their primary-split points (aggregated sweep rows, already at the same rule and in the window) whose
    speed-ups are within ``tol``; on each fold the pair with the best mean fold score of the two is chosen,
    and each variant's cell pools the other fold's choice, as Table 1's cells do. Returns per variant
    ("a", "b") and split: score, speed-ups (mean of the two chosen points') and the points; None: no pair."""
    pairs = [(i, j) for i in range(len(a_points)) for j in range(len(b_points))
             if abs(float(a_points[speedup_col].iloc[i]) - float(b_points[speedup_col].iloc[j])) <= tol + TOL]
    if not pairs or not a_jobs or not b_jobs:
        return None
    primary = splits[0]
    folds = folds_of(a_jobs, a_points.iloc[0], task, primary, metric)
    if folds is None:
        return None

    def fold_score(points, jobs, i, mask):
        per_seed = [_score(metric, g[0][mask], g[1][mask]) for job in jobs
                    if (g := job.get(points["variant"].iloc[i], points["knob"].iloc[i], primary)) is not None]
        return float(np.median(per_seed)) if per_seed else np.nan

    chosen = []
    for mask in choosing_masks(folds, mode):
        value = [np.nanmean([fold_score(a_points, a_jobs, i, mask), fold_score(b_points, b_jobs, j, mask)])
                 for i, j in pairs]
        # ties: the faster pair, then the first listed
        best = max(range(len(pairs)), key=lambda p: (value[p] if not pd.isna(value[p]) else -np.inf,
                                                     float(a_points[speedup_col].iloc[pairs[p][0]])))
        chosen.append(pairs[best])
    out: dict = {"n_pairs": len(pairs)}
    for side, points, jobs, idx in (("a", a_points, a_jobs, 0), ("b", b_points, b_jobs, 1)):
        choices = [points.iloc[pair[idx]] for pair in chosen]
        per_split = {}
        for split in splits:
            split_folds = folds_of(jobs, choices[0], task, split, metric)
            if split_folds is None:
                continue
            _, scores, _ = pool(choices, jobs, split, split_folds, metric)
            per_split[split] = float(np.median(scores)) if scores else np.nan
        out[side] = {"scores": per_split, "choices": choices,
                     "layer_speedup": float(np.mean([c.get("layer_speedup", np.nan) for c in choices])),
                     "latency_speedup": float(np.mean([c.get("latency_speedup", np.nan) for c in choices]))}
    return out
