"""Method health: is each method shown to learn, or did it collapse to something trivial?

A Table 1 cell can look fine while its method never learned: DPBERT's planners may run the same
layers for every input, an early-exit method's off-ramps may answer the majority class, a sweep may
never reach the speed-up window. This module says so, from two kinds of records:

* **per job**, ``diagnostics.json`` (dpbert.run.diagnostics, inside the method job: it needs the
  loaded models): per-layer exit scores of early-exit methods, planner probability spreads;
* **per (task, method)** (this module, a reporting job, pure functions): :func:`build_health` turns the sweep
  records, the per-example predictions, the diagnostics and the selected points into one row with a
  plain verdict, ``ok`` or ``degenerate: <why>`` (rules: :func:`health_reasons`). Table 1 marks the
  cells whose method is degenerate (:func:`degenerate_cells`).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from dpbert.reporting.layout import markdown_table
from dpbert.reporting.records import load_records, read_csv
from dpbert.run.diagnostics import (
    DIAGNOSTIC_EXAMPLES,
    KIND_EXIT,
    KIND_PLANNER,
    KIND_REFERENCE,
    majority_score,
    method_kind,
)

log = logging.getLogger(__name__)

MAJORITY_MARGIN: float = 5.0
"""A score beats the majority class only by this many points of the task's GLUE score (x100 scale:
accuracy points, MCC x100, correlation x100)."""

P_STD_MIN: float = 0.01
"""Planners ignore the input when the std over dev examples of p_i is below this on every layer."""

PATH_MIN_SHARE: float = 0.05
"""A distinct executed path counts when at least this share of dev examples takes it."""

ONE_PATH_SHARE: float = 0.90
"""Planners are static in effect when one executed path takes at least this share of dev examples."""

PLANNING_PATHS: int = 3
"""Planners plan per input at a point where at least this many distinct paths are each taken by
``PATH_MIN_SHARE`` of dev examples (counted at every sweep point in the window, besides the selected one)."""

SKIP_TOL: float = 0.01
"""Slack (in skip-rate units) when asking whether the realised skip rate rises with the target rate t."""

FAR_BELOW_SHARE: float = 0.25
"""A score is far below BERT-base's when it is lower by more than this share of BERT-base's score ..."""

FAR_BELOW_SE: float = 3.0
"""... and by more than this many paired bootstrap standard errors of the difference (where the
per-example predictions give one). Beating the majority class is not enough: on a regression task
the "majority class" is a correlation of 0, which any model that learned a little passes."""

GAP_BOOT: int = 200
"""Bootstrap resamples for the paired standard error of (a method's score - BERT-base's)."""


NO_WINDOW = "no point in window"
"""The reason Table 1 already marks with its own footnote (an empty cell), so not marked again."""


HEALTH_COLUMNS: list[str] = [
    "task", "method", "row", "display_name", "kind", "state", "n_seeds", "n_layers", "metric",
    "bert_score", "majority_score", "selected_point", "selected_score", "beats_majority",
    "n_in_window", "exit_layer_scores", "mid_layer", "mid_exit_score", "mid_exit_beats_majority",
    "p_point", "p_mean", "p_std", "p_std_max", "n_paths", "top_path_share", "zero_layer_share", "n_window_planning", "skip_rates",
    "skip_monotonic", "diag_examples", "gap_se", "far_below_bert", "final_exit_score", "final_far_below_bert", "verdict",
]


# --------------------------------------------------------------------------- per (task, method): pure rules


def distinct_paths(executed: Iterable[str], min_share: float = PATH_MIN_SHARE) -> tuple[int, float]:
    """(number of distinct executed paths each taken by >= ``min_share`` of the examples, the share
    of the most common path); ``executed`` holds one path per example ("1 2 4", "" = none)."""
    paths = [" ".join(str(p).split()) for p in executed]
    if not paths:
        return 0, float("nan")
    counts = Counter(paths)
    n = len(paths)
    return sum(1 for c in counts.values() if c / n >= min_share - 1e-12), max(counts.values()) / n


def skip_monotonic(rates: Mapping[float, float], tol: float = SKIP_TOL) -> bool | None:
    """Whether the realised skip rate rises with the target rate t: never falls by more than ``tol``
    from one t to the next, and ends more than ``tol`` above where it starts. None with < 2 rates."""
    items = sorted((float(t), float(r)) for t, r in rates.items() if not pd.isna(r))
    if len(items) < 2:
        return None
    values = [r for _, r in items]
    steps_ok = all(b >= a - tol for a, b in itertools.pairwise(values))
    return bool(steps_ok and values[-1] > values[0] + tol)


def mid_layer(n_layers: int) -> int:
    """The 1-based layer whose off-ramp must beat the majority class: ceil(N / 2)."""
    return max(1, math.ceil(n_layers / 2))


def beats(score: float, majority: float, margin: float = MAJORITY_MARGIN) -> bool | None:
    if pd.isna(score) or pd.isna(majority):
        return None
    return bool(float(score) > float(majority) + margin)


def far_below(score: float, bert: float, gap_se: float = float("nan")) -> bool | None:
    """Whether ``score`` is far below BERT-base's ``bert``: lower by more than FAR_BELOW_SHARE of |bert|
    and, when the paired standard error ``gap_se`` of the difference is known, by more than FAR_BELOW_SE
    of it. None when either score is missing."""
    if pd.isna(score) or pd.isna(bert):
        return None
    margin = FAR_BELOW_SHARE * abs(float(bert))
    if gap_se is not None and not pd.isna(gap_se):
        margin = max(margin, FAR_BELOW_SE * float(gap_se))
    return bool(float(bert) - float(score) > margin)


def health_reasons(row: Mapping[str, Any]) -> list[str]:
    """Why a health row is degenerate (empty: ok). Rules, in order:

    1. windowed methods (not static, not BERT-base): no sweep point in the speed-up window;
    2. every method: the selected point's score is not above the majority class by MAJORITY_MARGIN;
    3. early exit: the off-ramp at layer ceil(N/2) is not above the majority class by MAJORITY_MARGIN;
    4. planners: p_i's std over dev examples is below P_STD_MIN on every layer;
    5. planners: one executed path takes >= ONE_PATH_SHARE of dev examples at the selected point, or some
       dev example runs no layer at all there;
    6. planners with >= 2 target rates: the realised skip rate does not rise with t (SKIP_TOL);
    7. every method but BERT-base: the selected point is far below BERT-base (:func:`far_below`);
    8. early exit: the last layer's off-ramp (BERT's head) is far below BERT-base (the selected point's
       paired standard error stands in for its own: the same examples).
    A check whose inputs are missing (no diagnostics, no selected point) is not applied.
    """
    reasons: list[str] = []
    kind = row.get("kind")
    if row.get("windowed") and row.get("n_in_window") == 0:
        reasons.append(NO_WINDOW)
    if row.get("beats_majority") is False:
        reasons.append(f"selected point not above majority class ({row['selected_score']:.1f} vs "
                       f"{row['majority_score']:.1f} + {MAJORITY_MARGIN:g})")
    if kind == KIND_EXIT and row.get("mid_exit_beats_majority") is False:
        majority = row.get("diag_majority", row["majority_score"])
        reasons.append(f"off-ramp at layer {row['mid_layer']} at majority class ({row['mid_exit_score']:.1f} vs "
                       f"{majority:.1f} + {MAJORITY_MARGIN:g})")
    if kind == KIND_PLANNER:
        stds = row.get("p_std_values") or []
        if stds and max(stds) < P_STD_MIN:
            reasons.append(f"planners ignore the input (p std < {P_STD_MIN:g} on every layer)")
        share = row.get("top_path_share")
        if share is not None and not pd.isna(share) and share >= ONE_PATH_SHARE - 1e-12:
            reasons.append(f"one executed path for {100 * share:.0f}% of dev examples")
        zero = row.get("zero_layer_share")
        if zero is not None and not pd.isna(zero) and zero > 0:
            reasons.append(f"runs no layer at all for {100 * zero:.1f}% of dev examples")
        if row.get("skip_monotonic") is False:
            reasons.append(f"skip rate does not rise with the target rate ({row['skip_rates']})")
    if kind != KIND_REFERENCE and row.get("far_below_bert") is True:
        reasons.append(f"selected point far below BERT-base ({row['selected_score']:.1f} vs {row['bert_score']:.1f})")
    if kind == KIND_EXIT and row.get("final_far_below_bert") is True:
        reasons.append(f"last layer's off-ramp far below BERT-base ({row['final_exit_score']:.1f} vs "
                       f"{row['bert_score']:.1f})")
    return reasons


def verdict(reasons: Sequence[str]) -> str:
    return "ok" if not reasons else "degenerate: " + "; ".join(reasons)


def verdict_reasons(text: str) -> list[str]:
    """The reasons of a verdict string (inverse of :func:`verdict`)."""
    text = str(text)
    return [] if not text.startswith("degenerate: ") else text.removeprefix("degenerate: ").split("; ")


def _fmt_list(values: Sequence[float] | None, nd: int) -> str:
    return "" if not values else " ".join(f"{float(v):.{nd}f}" for v in values)


def _median_lists(lists: Sequence[Sequence[float]]) -> list[float]:
    lists = [list(x) for x in lists if x]
    if not lists or len({len(x) for x in lists}) != 1:
        return list(lists[0]) if lists else []
    return np.median(np.array(lists, dtype=float), axis=0).tolist()


def health_row(
    *, task: str, method: str, display_name: str, row_key: str | None = None, kind: str, windowed: bool, state: str, metric: str,
    n_layers: int | None, n_seeds: int, majority: float, bert_score: float, selected: Mapping[str, Any] | None,
    n_in_window: int | None, exit_scores: Sequence[float] | None = None, diag_majority: float | None = None,
    p_point: str = "", p_mean: Sequence[float] | None = None, p_std: Sequence[float] | None = None,
    paths: Sequence[str] | None = None, skip_rates: Mapping[float, float] | None = None,
    diag_examples: int | None = None, window_planning: int | None = None, gap_se: float = float("nan"),
) -> dict[str, Any]:
    """One health row from already gathered numbers (pure). ``selected`` is the selected point on
    the primary split (keys variant, knob, score) or None; ``exit_scores`` / ``p_std`` are per layer
    (medians over seeds); ``paths`` the executed paths of the selected point's dev examples;
    ``skip_rates`` t -> realised skip rate at one threshold for every t (:func:`shared_threshold`);
    ``window_planning`` how many of the ``n_in_window`` points have ``PLANNING_PATHS`` paths (shown, not
    a verdict rule: the selected point is the one Table 1 reports); ``gap_se`` the paired bootstrap
    standard error of (selected score - BERT-base's), NaN when unknown."""
    score = float(selected["score"]) if selected is not None and not pd.isna(selected.get("score")) else np.nan
    point = ""
    if selected is not None and not pd.isna(selected.get("score")):
        knob = selected.get("knob")
        point = f"{selected.get('variant', '')}@{float(knob):g}" if not pd.isna(knob) else str(selected.get("variant", ""))
    row: dict[str, Any] = {
        "task": task, "method": method, "row": row_key or method, "display_name": display_name, "kind": kind, "state": state,
        "n_seeds": int(n_seeds), "n_layers": n_layers, "metric": metric, "bert_score": bert_score,
        "majority_score": majority, "selected_point": point, "selected_score": score,
        "beats_majority": beats(score, majority), "n_in_window": n_in_window if kind != KIND_REFERENCE else None,
        "exit_layer_scores": "", "mid_layer": None, "mid_exit_score": np.nan, "mid_exit_beats_majority": None,
        "p_point": "", "p_mean": "", "p_std": "", "p_std_max": np.nan, "n_paths": None,
        "top_path_share": np.nan, "zero_layer_share": np.nan, "n_window_planning": None, "skip_rates": "", "skip_monotonic": None, "diag_examples": diag_examples,
        "windowed": windowed, "p_std_values": [], "gap_se": gap_se,
        "far_below_bert": far_below(score, bert_score, gap_se) if kind != KIND_REFERENCE else None,
        "final_exit_score": np.nan, "final_far_below_bert": None,
    }
    if kind == KIND_EXIT and exit_scores:
        mid = mid_layer(len(exit_scores))
        ref = majority if diag_majority is None or pd.isna(diag_majority) else diag_majority
        row.update({"exit_layer_scores": _fmt_list(exit_scores, 1), "mid_layer": mid,
                    "mid_exit_score": float(exit_scores[mid - 1]),
                    "mid_exit_beats_majority": beats(exit_scores[mid - 1], ref), "diag_majority": ref,
                    "final_exit_score": float(exit_scores[-1]),
                    "final_far_below_bert": far_below(exit_scores[-1], bert_score, gap_se)})
    if kind == KIND_PLANNER:
        if p_std:
            row.update({"p_point": p_point, "p_mean": _fmt_list(p_mean, 3), "p_std": _fmt_list(p_std, 3),
                        "p_std_max": float(max(p_std)), "p_std_values": list(p_std)})
        if paths is not None and len(paths):
            row["n_paths"], row["top_path_share"] = distinct_paths(paths)
            row["zero_layer_share"] = float(np.mean([not " ".join(str(p).split()) for p in paths]))
        row["n_window_planning"] = window_planning
        if skip_rates:
            row["skip_rates"] = " ".join(f"t={t:g}:{r:.2f}" for t, r in sorted(skip_rates.items()))
            row["skip_monotonic"] = skip_monotonic(skip_rates)
    row["verdict"] = verdict(health_reasons(row))
    return row


def degenerate_cells(health: pd.DataFrame) -> dict[tuple[str, str], list[str]]:
    """(task, Table 1 row key) -> the reasons Table 1 marks: a degenerate verdict, less the no-window
    reason (an empty cell that Table 1 already footnotes). The key is the health row's ``row`` (its
    method, for a health frame without one)."""
    out: dict[tuple[str, str], list[str]] = {}
    for _, r in health.iterrows():
        reasons = [x for x in verdict_reasons(r["verdict"]) if x != NO_WINDOW]
        row = r.get("row") if "row" in health.columns else None
        if reasons:
            out[(str(r["task"]), str(row if isinstance(row, str) and row else r["method"]))] = reasons
    return out


# --------------------------------------------------------------------------- gathering the records


def _primary(task: str) -> str:
    from dpbert.data.tasks import get_task

    return get_task(task).dev_splits[0]


def _same_knob(values: pd.Series, knob: float) -> pd.Series:
    return pd.Series(np.isclose(values.astype(float), float(knob), rtol=0, atol=1e-9), index=values.index)


def _selected_row(selected: pd.DataFrame, task: str, method: str, row: str | None = None) -> dict | None:
    sub = selected[(selected["task"] == task) & (selected["method"] == method) & (selected["split"] == _primary(task))]
    if row is not None and "row" in sub.columns:
        sub = sub[sub["row"].astype(str) == row]
    if sub.empty or pd.isna(sub["score"].iloc[0]):
        return None
    return sub.iloc[0].to_dict()


def build_health(
    sweep: pd.DataFrame, selected: pd.DataFrame, predictions: Mapping[tuple[str, str, int], pd.DataFrame],
    diagnostics: Iterable[Mapping[str, Any]], *, methods: Mapping[str, type], window: Sequence[float],
    speedup_col: str,
) -> pd.DataFrame:
    """One health row per (task, Table 1 row) of the sweep records (columns :data:`HEALTH_COLUMNS`):
    per (task, method), and per model of a method with one Table 1 row per model (``selected``'s
    ``row`` column, as :func:`dpbert.reporting.crossfit.row_points` gives it).

    ``predictions`` maps (task, method, seed) to that job's predictions (only BERT-base's, for the
    labels, and the planner methods', for their paths, are read); ``methods`` maps a method name to
    its registered class; ``window`` and ``speedup_col`` are the selection's. Numbers over seeds:
    medians (per layer), paths pooled."""
    from dpbert.data.tasks import get_task
    from dpbert.reporting.selection import aggregate_seeds

    lo, hi = (float(x) for x in window)
    sel = selected.copy()
    sel["variant"] = sel["variant"].fillna("").astype(str)
    agg = aggregate_seeds(sweep)
    diags: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for d in diagnostics:
        diags.setdefault((str(d["task"]), str(d["method"])), []).append(d)
    rows = []
    for (task, method), grp in agg.groupby(["task", "method"], sort=True):
        spec = get_task(task)
        cls = methods[method]
        kind = method_kind(cls)
        prim = grp[grp["split"] == _primary(task)]
        raw = sweep[(sweep["task"] == task) & (sweep["method"] == method)]
        seeds = sorted(raw["seed"].unique())
        labels = _labels(predictions, task, spec.dev_splits[0], seeds)
        majority = majority_score(spec.metric, labels, spec.is_regression) if labels else np.nan
        bert = _selected_row(sel, task, "bert")
        own_rows = [None]
        if "row" in sel.columns:
            keys = sel[(sel["task"] == task) & (sel["method"] == method)]["row"].astype(str).unique().tolist()
            own_rows = keys if len(keys) > 1 else [None]
        for row_key in own_rows:
            rows.append(_health_of(task, method, cls, grp, prim, raw, seeds, predictions, diags, sel, bert, row_key,
                                   spec=spec, kind=kind, majority=majority, lo=lo, hi=hi, speedup_col=speedup_col))
    out = pd.DataFrame(rows)
    out = out.reindex(columns=HEALTH_COLUMNS)
    for col in ("beats_majority", "mid_exit_beats_majority", "skip_monotonic", "far_below_bert", "final_far_below_bert"):
        out[col] = out[col].astype("boolean")
    for col in ("n_in_window", "mid_layer", "n_paths", "n_window_planning", "diag_examples", "n_layers"):
        out[col] = pd.to_numeric(out[col]).astype("Int64")
    return out


def _health_of(task, method, cls, grp, prim, raw, seeds, predictions, diags, sel, bert, row_key, *, spec, kind,
               majority, lo, hi, speedup_col) -> dict[str, Any]:
    """:func:`build_health`'s row for one (task, method) and, for a method with one Table 1 row per
    model, one of its rows (``row_key``; None: the method's one row)."""
    from dpbert.reporting.selection import TOL

    point = _selected_row(sel, task, method, row_key)
    if getattr(cls, "trained_knob", None) is not None:  # Table 1's row: the rule the method is trained for
        prim = prim[np.isclose(prim["knob"].astype(float), float(cls.trained_knob), rtol=0, atol=TOL)]
    s = pd.to_numeric(prim[speedup_col], errors="coerce")
    n_in = int(((s >= lo - TOL) & (s <= hi + TOL) & prim["score"].notna()).sum())
    jd = sorted(diags.get((task, method), []), key=lambda d: d.get("seed", 0))
    state = str(jd[0]["state"]) if jd else "-"
    n_layers = int(raw["n_layers"].max()) if "n_layers" in raw and len(raw) else None
    extra: dict[str, Any] = {}
    if jd:
        extra["diag_examples"] = int(min(d["n_examples"] for d in jd))
    if kind == KIND_EXIT and jd:
        variant = point["variant"] if point else jd[0]["variants"][0]["variant"]
        extra["exit_scores"] = _median_lists([v["exit_scores"] for d in jd for v in d["variants"]
                                              if v["variant"] == variant and v.get("exit_scores")])
        extra["diag_majority"] = float(np.median([d["majority_score"] for d in jd]))
    if kind == KIND_PLANNER:
        inside = prim[(s >= lo - TOL) & (s <= hi + TOL) & prim["score"].notna()]
        extra.update(_planner_extra(jd, point, prim, predictions, task, method, seeds, spec.dev_splits[0],
                                     n_layers, list(zip(inside["variant"], inside["knob"].astype(float)))))
    if kind != KIND_REFERENCE and point is not None and bert is not None:
        extra["gap_se"] = _gap_se(predictions, task, method, seeds, spec, point, bert)
    return health_row(
        task=task, method=method, row_key=row_key,
        display_name=str(point["display_name"]) if row_key and point and "display_name" in point
        else str(grp["display_name"].iloc[0]), kind=kind,
        windowed=not (cls.static or cls.is_reference), state=state, metric=spec.metric, n_layers=n_layers,
        n_seeds=len(seeds), majority=majority, bert_score=float(bert["score"]) if bert else np.nan,
        selected=point, n_in_window=n_in, **extra)


def _point_frames(predictions, task: str, method: str, seeds, split: str, point: Mapping[str, Any]) -> list:
    """Per seed, the prediction rows of ``point`` (its variant and knob) on ``split``."""
    from dpbert.reporting.selection import at_point

    out = []
    for seed in seeds:
        df = predictions.get((task, method, int(seed)))
        if df is not None:
            at = at_point(df[df["split"] == split], point)
            if len(at):
                out.append(at)
    return out


def _gap_se(predictions, task: str, method: str, seeds, spec, point: Mapping[str, Any],
            bert: Mapping[str, Any]) -> float:
    """Paired bootstrap standard error of (the point's score - BERT-base's) on the primary dev split:
    both scored on the same resamples (:func:`dpbert.reporting.uncertainty.point_replicates`). NaN
    without both methods' predictions or with rows that do not pair (other examples)."""
    from dpbert.reporting.uncertainty import point_replicates

    split = spec.dev_splits[0]
    if pd.isna(point.get("knob")) or pd.isna(bert.get("knob")):
        return float("nan")
    ours = _point_frames(predictions, task, method, seeds, split, point)
    base = _point_frames(predictions, task, "bert", sorted({k[2] for k in predictions if k[:2] == (task, "bert")}),
                         split, bert)
    if not ours or not base or any("pred" not in f.columns for f in ours + base) \
            or {len(f) for f in ours} != {len(f) for f in base}:
        return float("nan")
    if set(ours[0]["idx"]) != set(base[0]["idx"]):
        return float("nan")
    kw = {"task": task, "split": split, "n_boot": GAP_BOOT}
    diff = point_replicates(spec.metric, ours, **kw) - point_replicates(spec.metric, base, **kw)
    return float(np.std(diff, ddof=1))


def _labels(predictions, task: str, split: str, seeds: Sequence) -> list:
    """The primary dev split's labels, in example order (BERT-base's job, else any job of the task)."""
    keys = [k for k in predictions if k[0] == task]
    keys.sort(key=lambda k: (k[1] != "bert", k[2]))
    for key in keys:
        df = predictions[key]
        df = df[df["split"] == split]
        if df.empty:
            continue
        first = df.iloc[0]
        one = df[(df["variant"] == first["variant"]) & _same_knob(df["knob"], first["knob"])]
        return one.sort_values("idx")["label"].tolist()
    return []


def shared_threshold(points: pd.DataFrame, knob: float) -> float:
    """The threshold nearest ``knob`` at which every variant was scored (the grid's; the window search
    adds thresholds per variant), so that the skip rates compared across target rates are read at one
    threshold: comparing each variant at its own nearest refined threshold would mix the threshold's
    effect into the target rate's. Without a shared one, ``knob`` itself (each variant at its nearest)."""
    per_variant = [set(np.round(g["knob"].astype(float), 9)) for _, g in points.groupby("variant")]
    shared = sorted(set.intersection(*per_variant)) if per_variant else []
    return min(shared, key=lambda k: abs(k - knob)) if shared else knob


def _pooled_paths(predictions, task: str, method: str, seeds, split: str, variant: str, knob: float) -> list[str]:
    """The executed paths of one sweep point's dev examples, seeds pooled."""
    frames = _point_frames(predictions, task, method, seeds, split, {"variant": variant, "knob": knob})
    return [p for f in frames for p in f["executed"].astype(str)]


def _planner_extra(jd, point, prim: pd.DataFrame, predictions, task: str, method: str, seeds, split: str,
                   n_layers: int | None, in_window: Sequence[tuple[str, float]] = ()) -> dict:
    """A planner method's health numbers: p spread, the selected point's paths, how many of the
    ``in_window`` (variant, knob) points plan per input, and the skip rate per target rate."""
    extra: dict[str, Any] = {}
    # p spread at the selected (variant, threshold); without one, where p varies most (so that "ignores
    # the input" holds for every variant)
    entries: dict[tuple[str, float], list[Mapping]] = {}
    for d in jd:
        for v in d["variants"]:
            for p in v.get("planner", []):
                entries.setdefault((v["variant"], float(p["threshold"])), []).append(p)
    if entries:
        same = [k for k in entries if point is not None and k[0] == point["variant"]]
        if same:  # the selected threshold, or the nearest one scored (a refined sweep point has none of its own)
            key = min(same, key=lambda k: abs(k[1] - float(point["knob"])))
        else:
            key = max(entries, key=lambda k: max(_median_lists([p["p_std"] for p in entries[k]]) or [0.0]))
        extra.update({"p_point": f"{key[0]}@{key[1]:g}",
                      "p_mean": _median_lists([p["p_mean"] for p in entries[key]]),
                      "p_std": _median_lists([p["p_std"] for p in entries[key]])})
    # executed paths of the selected point, seeds pooled
    if point is not None:
        extra["paths"] = _pooled_paths(predictions, task, method, seeds, split, point["variant"], float(point["knob"]))
    # the window's points with PLANNING_PATHS paths (of those whose predictions are there)
    counts = [distinct_paths(found)[0] for v, k in in_window
              if (found := _pooled_paths(predictions, task, method, seeds, split, v, k))]
    if counts:
        extra["window_planning"] = sum(n >= PLANNING_PATHS for n in counts)
    # realised hard skip rate per target rate, at one threshold shared by every variant (nearest the selected one)
    rates: dict[str, float] = {}
    for d in jd:
        rates.update(d.get("target_rates") or {})
    if not rates:  # variant names "t<rate>" (dpbert.methods.dpbert.variant_name)
        for v in prim["variant"].unique():
            try:
                rates[v] = float(str(v).removeprefix("t"))
            except ValueError:
                pass
    if rates and len(prim) and n_layers:
        knob = float(point["knob"]) if point is not None else float(prim["knob"].astype(float).min())
        ours = prim[prim["variant"].isin(list(rates))]
        knob = shared_threshold(ours, knob)
        skip = {}
        for v, pts in ours.groupby("variant"):
            r = pts.iloc[int(np.argmin(np.abs(pts["knob"].astype(float).to_numpy() - knob)))]
            skip[rates[v]] = 1 - float(r["mean_layers"]) / n_layers
        extra["skip_rates"] = skip
    return extra


def health_from_records(*, sweep_paths, prediction_paths, diagnostics_paths, jobs, methods, selected: pd.DataFrame,
                        selection: Mapping[str, Any]) -> pd.DataFrame:
    """:func:`build_health` from the records on disk (what rules table1 and health both call)."""
    from dpbert.methods.registry import get_method
    from dpbert.reporting.records import SPEEDUP_COLUMNS

    sweep, predictions, diagnostics = load_records(sweep_paths=sweep_paths, prediction_paths=prediction_paths,
                                                   diagnostics_paths=diagnostics_paths, jobs=jobs, methods=methods)
    return build_health(sweep, selected, predictions, diagnostics, methods={m: get_method(m) for m in methods},
                        window=selection["window"], speedup_col=SPEEDUP_COLUMNS[selection["speedup"]])


# --------------------------------------------------------------------------- rendering


def _cell(v: Any, nd: int = 1) -> str:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.{nd}f}"
    return str(v) if str(v) else "—"


def health_markdown(health: pd.DataFrame, meta: Mapping[str, Any]) -> str:
    """results/health.md: the verdicts, the numbers behind them, and the rules."""
    lo, hi = (float(x) for x in meta.get("window", (1.30, 1.96)))
    head = (f"**Profile:** {meta.get('profile', '')} · **seeds:** {meta.get('seeds', '')} · "
            f"**window:** {lo:.2f}–{hi:.2f}x · **margin over the majority class:** {MAJORITY_MARGIN:g} points")
    cols = [("task", "task"), ("display_name", "model"), ("kind", "kind"), ("state", "state"),
            ("bert_score", "BERT-base"), ("majority_score", "majority"), ("selected_point", "point"),
            ("selected_score", "score"), ("n_in_window", "in window"), ("mid_exit_score", "mid off-ramp"),
            ("p_std_max", "max p std"), ("n_paths", "paths ≥5%"), ("n_window_planning", f"window points, ≥{PLANNING_PATHS} paths"),
            ("skip_monotonic", "skip ↑ t"),
            ("verdict", "verdict")]
    lines = ["# Method health (dev)", "", head, ""]
    def shown(r, c: str) -> str:
        if c == "n_window_planning" and not pd.isna(r[c]):
            return f"{int(r[c])} of {int(r['n_in_window'])}"
        return _cell(r[c], 3 if c == "p_std_max" else 1)

    lines += markdown_table([c[1] for c in cols], [[shown(r, c) for c, _ in cols] for _, r in health.iterrows()])
    detail = health[(health["exit_layer_scores"].fillna("") != "") | (health["p_std"].fillna("") != "")
                    | (health["skip_rates"].fillna("") != "")]
    if len(detail):
        lines += ["", "## Per layer", ""]
        lines += markdown_table(
            ["task", "model", "off-ramp score per layer", "p at", "p mean per layer", "p std per layer",
             "skip rate per t"],
            [[_cell(r[c]) for c in ("task", "display_name", "exit_layer_scores", "p_point", "p_mean", "p_std",
                                    "skip_rates")] for _, r in detail.iterrows()])
    rules = [
        f"1. a windowed method (not static, not BERT-base) has no sweep point in the {lo:.2f}–{hi:.2f}x window;",
        (f"2. the selected point's dev score is not above the majority-class score by {MAJORITY_MARGIN:g} points "
         "(majority class: the dev labels' most frequent class scored with the task's metric; STS-B: a "
         "constant prediction, correlation 0);"),
        f"3. early exit: the off-ramp at layer ceil(N/2) does not beat the majority class by {MAJORITY_MARGIN:g} points;",
        f"4. planners: the std over dev examples of p_i is below {P_STD_MIN:g} on every layer (they ignore the input);",
        f"5. planners: one executed path takes ≥ {100 * ONE_PATH_SHARE:.0f}% of dev examples at the selected point, or some "
        "dev example runs no layer at all there;",
        f"6. planners with ≥ 2 target rates: the realised hard skip rate does not rise with t (slack {SKIP_TOL:g});",
        (f"7. every method but BERT-base: the selected point's score is below BERT-base's by more than "
         f"{100 * FAR_BELOW_SHARE:.0f}% of BERT-base's score and by more than {FAR_BELOW_SE:g} paired bootstrap standard "
         "errors of the difference (the same dev examples; on a regression task a correlation far above 0 "
         "can still be far below BERT-base);"),
        ("8. early exit: the last layer's off-ramp (BERT's head after every layer ran) is below BERT-base by as "
         "much (the selected point's paired standard error standing in for its own): the model did not learn the task."),
    ]
    lines += ["", "## Verdict rules", "",
              "A method counts as working on a task only when it is shown to learn. `degenerate: <why>` when:", "",
              *rules, "",
              (f"`window points, ≥{PLANNING_PATHS} paths` (planners, shown, not a rule): of the points in the window, "
               f"how many have at least {PLANNING_PATHS} executed paths each taken by ≥ {100 * PATH_MIN_SHARE:.0f}% of "
               "dev examples; the selected point (`paths ≥5%`) is the best-scoring one of them, the one Table 1 reports."),
              "",
              (f"Per-layer numbers read at most the first {DIAGNOSTIC_EXAMPLES} primary-dev examples "
               "(`diag_examples`); over seeds they are medians, paths are pooled. A check whose inputs are missing "
               "is not applied. Columns: docs/methods.md, \"Method health\".")]
    return "\n".join(lines) + "\n"


def write_health(*, sweep_paths, prediction_paths, diagnostics_paths, jobs, methods, selected_path: str,
                 selection: Mapping[str, Any], meta: Mapping[str, Any], csv_out: str, markdown_out: str) -> pd.DataFrame:
    from dpbert.run.runtime import atomic_write_df, atomic_write_text

    from dpbert.reporting.crossfit import row_points

    selected = row_points(read_csv(selected_path))
    for col in ("variant", "knob_name"):
        selected[col] = selected[col].fillna("").astype(str)
    health = health_from_records(sweep_paths=sweep_paths, prediction_paths=prediction_paths,
                                 diagnostics_paths=diagnostics_paths, jobs=jobs, methods=methods,
                                 selected=selected, selection=selection)
    atomic_write_df(health, csv_out)
    seeds = meta.get("seeds", "")
    atomic_write_text(markdown_out, health_markdown(health, {**meta, "window": selection["window"],
                                                             "seeds": ", ".join(map(str, seeds)) if isinstance(seeds, list) else seeds}))
    log.info("health: %d rows, %d degenerate", len(health), int((health["verdict"] != "ok").sum()))
    return health
