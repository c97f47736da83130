"""Table 2: DPBERT vs DPBERT-soft (the ablation without REINFORCE) at equal speed-up.

Pure functions take the selected points and the sweeps and return a DataFrame / Markdown; the
``write_table2`` job reads the records and writes results/ for the Snakemake rule.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from dpbert.reporting.layout import markdown_table, mean_over
from dpbert.reporting.paper import PAPER_DIR
from dpbert.reporting.records import read_csv
from dpbert.reporting.selection import (
    SELECTED_COLUMNS,
    aggregate_seeds,
    default_primary_split,
)

log = logging.getLogger(__name__)


TOL = 1e-9


TABLE2_TASKS: tuple[str, ...] = ("RTE", "MRPC", "SST-2", "STS-B")


SPEEDUP_NAMES = {"layer_speedup": "layer-count speed-up (N / mean executed layers)",
                 "latency_speedup": "measured batch-1 latency speed-up"}


def match_speedup(points: pd.DataFrame, target_speedup: float, speedup_col: str) -> pd.Series | None:
    """The row of ``points`` whose ``speedup_col`` is closest to ``target_speedup``.

    Ties (within 1e-9): higher score, then smaller knob, then variant name -- deterministic.
    Rows without a speed-up or score are ignored; None when nothing is left or target is NaN.
    """
    if points is None or points.empty or target_speedup is None or pd.isna(target_speedup):
        return None
    pts = points.copy()
    s = pd.to_numeric(pts[speedup_col], errors="coerce")
    pts = pts[s.notna() & pts["score"].notna()]
    if pts.empty:
        return None
    dist = (pd.to_numeric(pts[speedup_col]) - float(target_speedup)).abs()
    pts["_d"] = dist.where(dist > TOL, 0.0).round(9)
    pts["_score"] = -pts["score"].astype(float)
    keys = ["_d", "_score"]
    if "knob" in pts.columns:
        pts["_knob"] = pd.to_numeric(pts["knob"], errors="coerce").fillna(np.inf)
        keys.append("_knob")
    if "variant" in pts.columns:
        pts["_variant"] = pts["variant"].fillna("").astype(str)
        keys.append("_variant")
    best = pts.sort_values(keys, kind="mergesort").iloc[0]
    return best.drop(labels=[k for k in keys])


def _t2_columns(tasks: Sequence[str]) -> list[str]:
    cols = ["model", "source"]
    for t in tasks:
        cols += [t, f"{t} layer_speedup", f"{t} latency_speedup", f"{t} point"]
    return cols + ["avg", "note"]


def _point_name(row: pd.Series) -> str:
    knob = row.get("knob", np.nan)
    knob_s = "" if pd.isna(knob) else f"@{float(knob):g}"
    return f"{row.get('variant', '')}{knob_s}"


def _split_mean(agg_task: pd.DataFrame, point: pd.Series) -> dict[str, float]:
    """Mean over splits of one knob point's score / speed-ups (MNLI: m and mm)."""
    same = agg_task[(agg_task["variant"] == point["variant"])
                    & np.isclose(agg_task["knob"].astype(float), float(point["knob"]), rtol=0, atol=TOL)]
    return {c: float(same[c].astype(float).mean()) if c in same.columns else np.nan
            for c in ("score", "layer_speedup", "latency_speedup")}


def table2(
    selected: pd.DataFrame,
    sweeps: pd.DataFrame,
    tasks: Sequence[str] = TABLE2_TASKS,
    speedup_col: str = "layer_speedup",
    paper: pd.DataFrame | None = None,
    predictions: Mapping[tuple[str, str, int], pd.DataFrame] | None = None,
    window: tuple[float, float] | None = None,
    mode: str = "crossfit",
) -> pd.DataFrame:
    """DPBERT vs DPBERT-soft at equal speed-up, per task.

    With ``predictions`` (the jobs' predictions.csv.gz by (task, method, seed)) and ``window``: both at the
    rule they are trained for, every pair of their window points within ``crossfit.MATCH_TOL`` in speed-up
    a candidate, the pair chosen on one fold and scored on the other (``crossfit.matched_pair_cells``): the
    same rule and the same choice for both. Without: DPBERT at its Table 1 point, DPBERT-soft at its point
    closest in ``speedup_col`` (the paper's way, which favours DPBERT).

    Rows: ("DPBERT", "ours"), ("DPBERT-soft", "ours") and, when ``paper`` is given (the paper's
    table2_ablation.csv), ("DPBERT", "paper"), ("DPBERT-soft", "paper").  Per task: score
    (median over seeds; MNLI = mean over its splits), both speed-ups and the knob point
    ("t0.25@0.5").  Matching is on the task's primary split.  ``avg`` is over the tasks every row
    with a score has (``attrs["avg_tasks"]``), the paper's rows included, so rows compare; ``note``
    says what is missing and why.  The paper states no speed-up numbers for
    Table 2 ("the same for both methods"), so its speed-up cells are NaN.
    """
    cols = _t2_columns(tasks)
    selected = selected.reindex(columns=list(dict.fromkeys([*SELECTED_COLUMNS, *selected.columns])))
    agg = aggregate_seeds(sweeps) if len(sweeps) else pd.DataFrame(
        columns=["task", "method", "variant", "knob", "split", "score", "layer_speedup", "latency_speedup"])
    ours = {"DPBERT": {"model": "DPBERT", "source": "ours"},
            "DPBERT-soft": {"model": "DPBERT-soft", "source": "ours"}}
    notes: dict[str, list[str]] = {"DPBERT": [], "DPBERT-soft": []}
    has = {m: bool((sweeps["method"] == m).any()) if len(sweeps) else False for m in ("dpbert", "dpbert_soft")}
    if not has["dpbert"]:
        notes["DPBERT"].append("DPBERT not run in this profile")
    if not has["dpbert_soft"]:
        notes["DPBERT-soft"].append("DPBERT-soft not run in this profile")
    for t in tasks:
        for row in ours.values():
            row.update({t: np.nan, f"{t} layer_speedup": np.nan, f"{t} latency_speedup": np.nan, f"{t} point": ""})
        tagg = agg[agg["task"] == t]
        if tagg.empty:
            if has["dpbert"] or has["dpbert_soft"]:
                notes["DPBERT"].append(f"{t} not run")
            continue
        split = default_primary_split(tagg["split"])
        if predictions is not None and window is not None:
            _matched_row(ours, notes, tagg, t, split, predictions, window, speedup_col, has, mode)
            continue
        sel = selected[(selected["task"] == t) & (selected["method"] == "dpbert") & (selected["split"] == split)]
        if sel.empty or pd.isna(sel["score"].iloc[0]):
            if has["dpbert"] and (tagg["method"] == "dpbert").any():
                notes["DPBERT"].append(f"{t}: no point in window")
            continue
        dp = sel.iloc[0]
        vals = _split_mean(tagg[tagg["method"] == "dpbert"], dp)
        ours["DPBERT"].update({t: vals["score"], f"{t} layer_speedup": vals["layer_speedup"],
                               f"{t} latency_speedup": vals["latency_speedup"], f"{t} point": _point_name(dp)})
        soft = tagg[(tagg["method"] == "dpbert_soft") & (tagg["split"] == split)]
        # the same inference rule as DPBERT's Table 1 point (the threshold both are trained for)
        soft = soft[np.isclose(soft["knob"].astype(float), float(dp["knob"]), rtol=0, atol=1e-9)]
        if soft.empty:
            if has["dpbert_soft"]:
                notes["DPBERT-soft"].append(f"{t} not run")
            continue
        m = match_speedup(soft, float(dp[speedup_col]), speedup_col)
        if m is None:
            notes["DPBERT-soft"].append(f"{t}: no point with a speed-up")
            continue
        vals = _split_mean(tagg[tagg["method"] == "dpbert_soft"], m)
        ours["DPBERT-soft"].update({t: vals["score"], f"{t} layer_speedup": vals["layer_speedup"],
                                    f"{t} latency_speedup": vals["latency_speedup"], f"{t} point": _point_name(m)})
    rows = []
    for name, row in ours.items():
        scores = [row[t] for t in tasks if not pd.isna(row[t])]
        row["avg"] = float(np.mean(scores)) if scores else np.nan
        row["note"] = "; ".join(notes[name])
        rows.append(row)
    if paper is not None:
        for _, p in paper.iterrows():
            row = {"model": str(p["model"]), "source": "paper"}
            for t in tasks:
                row.update({t: float(p[t]) if t in p.index and not pd.isna(p[t]) else np.nan,
                            f"{t} layer_speedup": np.nan, f"{t} latency_speedup": np.nan, f"{t} point": ""})
            scores = [row[t] for t in tasks if not pd.isna(row[t])]
            row["avg"] = float(np.mean(scores)) if scores else np.nan
            row["note"] = "as printed; speed-up 'the same for both methods' (not stated)"
            rows.append(row)
    # every row's avg over the same tasks: those every row with a score has (ours and the paper's)
    covered = [{t for t in tasks if not pd.isna(r[t])} for r in rows]
    covered = [c for c in covered if c]
    common = [t for t in tasks if covered and all(t in c for c in covered)]
    for r in rows:
        r["avg"] = mean_over({t: r[t] for t in common if not pd.isna(r[t])}, common)
    out = pd.DataFrame(rows, columns=cols)
    out.attrs["avg_tasks"] = common
    return out


def _matched_row(ours, notes, tagg, task, primary, predictions, window, speedup_col, has, mode) -> None:
    """Fill both variants' cells of one task from the cross-fitted matched pair (see ``table2``)."""
    from dpbert.data.tasks import get_task
    from dpbert.methods.registry import get_method
    from dpbert.reporting.crossfit import MATCH_TOL, PointPredictions, matched_pair_cells

    lo, hi = window
    points = {}
    for m in ("dpbert", "dpbert_soft"):
        rule = get_method(m).trained_knob
        pts = tagg[(tagg["method"] == m) & (tagg["split"] == primary)]
        sp = pd.to_numeric(pts[speedup_col], errors="coerce")
        points[m] = pts[np.isclose(pts["knob"].astype(float), float(rule), rtol=0, atol=TOL)
                        & (sp >= lo - TOL) & (sp <= hi + TOL) & pts["score"].notna()]
    if points["dpbert"].empty or points["dpbert_soft"].empty:
        for m, name in (("dpbert", "DPBERT"), ("dpbert_soft", "DPBERT-soft")):
            if has[m] and points[m].empty:
                notes[name].append(f"{task}: no point in window")
        return
    jobs = {m: [PointPredictions(p) for (t, mm, _s), p in sorted(predictions.items(), key=lambda kv: str(kv[0]))
                if t == task and mm == m] for m in points}
    splits = [primary] + sorted(s for s in tagg["split"].unique() if s != primary)
    cells = matched_pair_cells(points["dpbert"], points["dpbert_soft"], jobs["dpbert"], jobs["dpbert_soft"],
                               metric=get_task(task).metric, task=task, splits=splits, speedup_col=speedup_col,
                               mode=mode)
    if cells is None:
        notes["DPBERT-soft"].append(f"{task}: no pair of points within {MATCH_TOL:.2f}x in speed-up")
        return
    for side, name in (("a", "DPBERT"), ("b", "DPBERT-soft")):
        c = cells[side]
        ours[name].update({task: float(np.mean(list(c["scores"].values()))),
                           f"{task} layer_speedup": c["layer_speedup"], f"{task} latency_speedup": c["latency_speedup"],
                           f"{task} point": " / ".join(_point_name(p) for p in c["choices"])})


def fmt(v: Any, nd: int = 1, suffix: str = "") -> str:
    return "—" if v is None or pd.isna(v) else f"{float(v):.{nd}f}{suffix}"


def table2_markdown(t2: pd.DataFrame, tasks: Sequence[str], meta: Mapping[str, Any]) -> str:
    sp = meta.get("speedup_col", "layer_speedup")
    lines = [
        "# Table 2: DPBERT vs DPBERT-soft at equal speed-up (dev)", "",
        (f"**Profile:** {meta.get('profile', '')} · " + (
            f"both at the rule they are trained for (p_i ≥ 0.5); every pair of their window points whose "
            f"speed-ups ({SPEEDUP_NAMES.get(sp, sp)}) differ by at most {meta['match_tol']:.2f}x is a candidate; the pair is "
            "chosen on one fold of the dev examples (the best mean of the two scores) and scored on the other, "
            "and the other way round, as Table 1's cells are. Cells: score [layer speed-up / latency speed-up, "
            "mean of the two folds' points] {the points chosen on fold 1 / fold 2 = target rate @ threshold}."
            if meta.get("match_tol") is not None else
            f"DPBERT at its Table 1 point; DPBERT-soft at its point whose {SPEEDUP_NAMES.get(sp, sp)} is closest "
            "to DPBERT's on the same task (ties: higher score). Cells: score [layer speed-up / latency speed-up] "
            "{point = target rate @ threshold}.")), "",
    ]
    rows = []
    for _, r in t2.iterrows():
        cells = []
        for t in tasks:
            if pd.isna(r[t]):
                cells.append("—")
            elif r["source"] == "paper":
                cells.append(fmt(r[t]))
            else:
                cells.append(f"{fmt(r[t])} [{fmt(r[f'{t} layer_speedup'], 2, 'x')} / "
                             f"{fmt(r[f'{t} latency_speedup'], 2, 'x')}] {{{r[f'{t} point']}}}")
        rows.append([str(r["model"]), str(r["source"]), *cells, fmt(r["avg"])])
    lines += markdown_table(["model", "source", *tasks, "avg"], rows)
    notes = [f"- {r['model']} ({r['source']}): {r['note']}" for _, r in t2.iterrows() if str(r["note"] or "")]
    avg_tasks = t2.attrs.get("avg_tasks")
    if avg_tasks is not None:
        notes.append(f"- avg: over {', '.join(avg_tasks)}, the tasks every row with a score has (the paper's "
                     "averages recomputed over them)." if avg_tasks else "- avg: — (no task every row has).")
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def write_table2(*, selected_path: str, sweeps_path: str, tasks: Sequence[str], speedup: str,
                 meta: Mapping[str, Any], out_csv: str, out_md: str, paper_path: str | None = None,
                 prediction_paths: Sequence[str] | None = None, jobs: Sequence | None = None,
                 selection: Mapping[str, Any] | None = None) -> pd.DataFrame:
    from dpbert.reporting.records import SPEEDUP_COLUMNS
    from dpbert.run.runtime import atomic_write_df, atomic_write_text

    sp = SPEEDUP_COLUMNS[speedup]
    paper = pd.read_csv(paper_path or PAPER_DIR / "table2_ablation.csv")
    from dpbert.reporting.crossfit import main_points

    from dpbert.reporting.crossfit import MATCH_TOL
    from dpbert.reporting.records import read_predictions

    predictions = None
    if prediction_paths:
        predictions = {(str(t), str(m), int(s)): read_predictions(p, ["variant", "knob", "split", "idx", "label", "pred"])
                       for (t, m, s), p in zip(jobs, prediction_paths)}
    window = tuple(selection["window"]) if selection else None
    mode = str((selection or {}).get("choose_on", "crossfit"))
    t2 = table2(main_points(read_csv(selected_path)), read_csv(sweeps_path), tasks=list(tasks), speedup_col=sp,
                paper=paper, predictions=predictions, window=window, mode=mode)
    atomic_write_df(t2, out_csv)
    atomic_write_text(out_md, table2_markdown(t2, list(tasks), {**meta, "speedup_col": sp,
                                                               "match_tol": MATCH_TOL if predictions else None}))
    log.info("Table 2 written (%d rows)", len(t2))
    return t2
