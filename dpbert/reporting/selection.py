"""Pick one operating point per (task, method) inside the paper's speed-up window.

Why: the paper compares methods at roughly matched speed-up (1.30-1.96x).
Every method is swept over its knob; here we aggregate seeds and choose, per
(task, method), the best-scoring knob point whose speed-up lies inside the
window.  Selection happens on one *primary* split (MNLI: dev_matched) and the
chosen knob point's scores are then reported for all splits, so MNLI-m and
MNLI-mm always come from the same operating point.  All functions are pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

TOL: float = 1e-9
"""Float tolerance on the window bounds (bounds are inclusive)."""

GROUP_KEYS: list[str] = ["task", "method", "variant", "knob_name", "knob", "split"]
"""One aggregated knob point per split."""

POINT_KEYS: list[str] = ["variant", "knob_name", "knob"]
"""What identifies a knob point across the splits of one task/method."""

SELECTED_COLUMNS: list[str] = [
    "task", "method", "display_name", "split", "variant", "knob_name", "knob",
    "score", "score_min", "score_max", "n_seeds", "layer_speedup",
    "latency_speedup", "flops_per_example", "flops_speedup", "in_window", "static", "note",
]


_MEDIAN_COLS = ["score", "layer_speedup", "latency_speedup", "mean_layers",
                "latency_ms", "base_latency_ms", "latency_spread", "flops_per_example", "flops_speedup"]


def _normalise(sweep: pd.DataFrame) -> pd.DataFrame:
    """Make `variant` a plain string (CSV round-trips turn "" into NaN)."""
    df = sweep.copy()
    for col in ("variant", "knob_name"):
        if col not in df.columns:
            df[col] = ""
        df[col] = [("" if pd.isna(v) else str(v)) for v in df[col]]
    if "display_name" not in df.columns:
        df["display_name"] = df["method"]
    return df


def aggregate_seeds(sweep: pd.DataFrame) -> pd.DataFrame:
    """Median over seeds per knob point and split (robust to one bad seed).

    Adds score_min / score_max / n_seeds so tables can show the spread.
    Other numeric sweep columns present (mean_layers, latency_ms, ...) are
    median-aggregated too; display_name is carried along.
    """
    df = _normalise(sweep)
    med_cols = [c for c in _MEDIAN_COLS if c in df.columns]
    g = df.groupby(GROUP_KEYS, dropna=False, sort=True)
    out = g[med_cols].median()
    out["score_min"] = g["score"].min()
    out["score_max"] = g["score"].max()
    out["n_seeds"] = g["seed"].nunique() if "seed" in df.columns else g.size()
    out["display_name"] = g["display_name"].first()
    out = out.reset_index()
    out["n_seeds"] = out["n_seeds"].astype(int)
    return out


def select_in_window(
    points: pd.DataFrame, lo: float, hi: float, speedup_col: str
) -> pd.Series | None:
    """Best-scoring row with lo <= speed-up <= hi (inclusive, +-1e-9).

    `points` must hold ONE task/method/split.  Ties: higher speed-up wins,
    then smaller knob (then variant name) so the choice is deterministic.
    Returns None when no point is inside; never returns an outside point.
    """
    if lo > hi:
        raise ValueError(f"window lower bound {lo} > upper bound {hi}")
    if points.empty:
        return None
    s = pd.to_numeric(points[speedup_col], errors="coerce")
    inside = points[(s >= lo - TOL) & (s <= hi + TOL) & points["score"].notna()]
    if inside.empty:
        return None
    sort_cols = ["score", speedup_col, "knob"]
    asc = [False, False, True]
    if "variant" in inside.columns:
        sort_cols.append("variant")
        asc.append(True)
    best = inside.sort_values(sort_cols, ascending=asc, kind="mergesort", na_position="last")
    return best.iloc[0]


def default_primary_split(splits: Iterable[str]) -> str:
    """"dev" if present, else "dev_matched", else the first in sorted order."""
    ss = sorted(set(splits))
    if not ss:
        raise ValueError("no splits")
    for pref in ("dev", "dev_matched"):
        if pref in ss:
            return pref
    return ss[0]


def _best_any(points: pd.DataFrame, speedup_col: str) -> pd.Series | None:
    """Static methods: take their (normally single) point as it is."""
    pts = points.copy()
    if pts.empty:
        return None
    pts["_s"] = pts["score"].fillna(-np.inf)
    pts = pts.sort_values(["_s", speedup_col, "knob", "variant"],
                          ascending=[False, False, True, True], kind="mergesort")
    return pts.iloc[0].drop(labels="_s")


def select_all(
    sweep: pd.DataFrame,
    lo: float,
    hi: float,
    speedup_col: str,
    primary_split_of: Callable[[str], str] | None = None,
    static_methods: Iterable[str] | None = None,
) -> pd.DataFrame:
    """One operating point per (task, method), reported on all its splits.

    Selection is done on the primary split (``primary_split_of(task)`` or
    :func:`default_primary_split`).  Methods in `static_methods` are not
    windowed: their point is reported as is (in_window=True, static=True,
    note "static baseline (not windowed)").  A windowed (task, method) with no
    point inside gives one row per split with score NaN, in_window=False and
    note "no point in window".  Columns: :data:`SELECTED_COLUMNS`.
    """
    if lo > hi:
        raise ValueError(f"window lower bound {lo} > upper bound {hi}")
    if static_methods is None:  # the registry's static methods
        from dpbert.methods.registry import static_method_names

        static_methods = static_method_names()
    static = set(static_methods)
    agg = aggregate_seeds(sweep)
    rows: list[dict] = []
    for (task, method), grp in agg.groupby(["task", "method"], sort=True):
        splits = sorted(grp["split"].unique())
        primary = primary_split_of(task) if primary_split_of else default_primary_split(splits)
        prim = grp[grp["split"] == primary]
        display = str(grp["display_name"].iloc[0])
        is_static = method in static
        choice = _best_any(prim, speedup_col) if is_static else select_in_window(prim, lo, hi, speedup_col)
        if choice is None:
            for sp in splits:
                rows.append({
                    "task": task, "method": method, "display_name": display, "split": sp,
                    "variant": "", "knob_name": "", "knob": np.nan, "score": np.nan,
                    "score_min": np.nan, "score_max": np.nan, "n_seeds": 0,
                    "layer_speedup": np.nan, "latency_speedup": np.nan,
                    "flops_per_example": np.nan, "flops_speedup": np.nan,
                    "in_window": False, "static": is_static,
                    "note": "no point in window" if not is_static else f"no point on split {primary}",
                })
            continue
        same = grp[(grp["variant"] == choice["variant"]) & (grp["knob_name"] == choice["knob_name"])]
        same = same[np.isclose(same["knob"].astype(float), float(choice["knob"]), rtol=0, atol=TOL)
                    | (same["knob"].isna() & pd.isna(choice["knob"]))]
        for _, r in same.sort_values("split").iterrows():
            rows.append({
                "task": task, "method": method, "display_name": r["display_name"],
                "split": r["split"], "variant": r["variant"], "knob_name": r["knob_name"],
                "knob": r["knob"], "score": r["score"], "score_min": r["score_min"],
                "score_max": r["score_max"], "n_seeds": int(r["n_seeds"]),
                "layer_speedup": r.get("layer_speedup", np.nan),
                "latency_speedup": r.get("latency_speedup", np.nan),
                "flops_per_example": r.get("flops_per_example", np.nan),
                "flops_speedup": r.get("flops_speedup", np.nan),
                "in_window": True, "static": is_static,
                "note": "static baseline (not windowed)" if is_static else "",
            })
    out = pd.DataFrame(rows, columns=SELECTED_COLUMNS)
    out["in_window"] = out["in_window"].astype(bool)
    out["static"] = out["static"].astype(bool)
    return out.reset_index(drop=True)


def mark_window(sweep: pd.DataFrame, lo: float, hi: float, speedup_col: str) -> pd.DataFrame:
    """Copy of `sweep` with a bool ``in_window`` column (for Figure 3's CSV)."""
    if lo > hi:
        raise ValueError(f"window lower bound {lo} > upper bound {hi}")
    df = sweep.copy()
    s = pd.to_numeric(df[speedup_col], errors="coerce")
    df["in_window"] = ((s >= lo - TOL) & (s <= hi + TOL)).fillna(False).astype(bool)
    return df


def selected_point(selected: pd.DataFrame, task: str, method: str = "dpbert") -> pd.Series | None:
    """The (task, method) row of selected_points.csv on its primary split; None if none/NaN."""
    sub = selected[(selected["task"] == task) & (selected["method"] == method)]
    if sub.empty:
        return None
    sub = sub[sub["split"] == default_primary_split(sub["split"])]
    if sub.empty or pd.isna(sub["score"].iloc[0]) or pd.isna(sub["knob"].iloc[0]):
        return None
    return sub.iloc[0]


def at_point(preds: pd.DataFrame, point: pd.Series) -> pd.DataFrame:
    """Prediction rows of one operating point (variant and knob of a selected_points row)."""
    variant = preds["variant"].fillna("").astype(str)
    knob = preds["knob"].astype(float)
    return preds[(variant == str(point["variant"])) & np.isclose(knob, float(point["knob"]), rtol=0, atol=1e-9)]
