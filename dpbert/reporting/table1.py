"""Table 1: the selected point of every method and task, its Markdown, and the job that writes it.

Why: the reproduced numbers must be read side by side with the paper's, with the same averaging
convention (MNLI counts once as mean(m, mm)) and with honest empty cells. Rows can only be compared
over the same tasks, so ``avg`` is taken over the tasks *every* row covers
(dpbert.reporting.layout.common_tasks, named in the Markdown), and ``covered`` states each row's own
coverage; the Markdown shows each score with its bootstrap standard error over the dev examples
(dpbert.reporting.uncertainty). A reporting job reads run records, never trains or times anything.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from dpbert.methods.registry import static_method_names
from dpbert.reporting.layout import (
    AVG_TASKS_ATTR,
    DEGENERATE_COLUMN,
    DEGENERATE_MARK,
    EMPTY_REASONS_ATTR,
    META_COLUMNS,
    NON_TASK_COLUMNS,
    REASON_UNCOVERED,
    REASON_WINDOW,
    column_of,
    common_tasks,
    markdown_table,
    results_file,
    row_task_scores,
    task_columns,
    tasks_of_table,
)
from dpbert.reporting.records import SPEEDUP_COLUMNS, read_sweeps
from dpbert.reporting.selection import mark_window, select_all
from dpbert.run.runtime import atomic_write_df, atomic_write_text

log = logging.getLogger(__name__)

def _joined(values) -> str:
    return "; ".join(sorted({str(v) for v in values if str(v)}))


def write_table1(
    *, sweep_paths: list[str], tasks: list[str], methods: list[str], selection: dict[str, Any],
    meta: dict[str, Any], table_out: str, markdown_out: str, sweeps_out: str, selected_out: str,
    health_records: dict[str, Any] | None = None, bootstrap_out: str | None = None,
    flops_records: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """``health_records`` (prediction_paths, diagnostics_paths, jobs: see dpbert.reporting.health.load_records):
    mark the cells of a method that is degenerate on a task, with the same verdicts as results/health.csv.
    With ``health_records``' predictions, every cell and every row's avg gets its bootstrap standard error
    over the dev examples (shown in the Markdown); ``bootstrap_out`` (a .csv.gz) keeps the paired
    replicates themselves, one column per "<model>|<column>", for the reproduction report's claims.
    ``flops_records`` (data_paths: task -> prepared data, stage1_dirs: (task, seed) -> stage-1 job folder,
    method_params: the config's ``methods:``), with ``health_records``' predictions: every sweep point's FLOPs
    per example and FLOPs speed-up (dpbert.reporting.flops), in sweeps.csv, selected_points.csv and Table 1's
    ``speedup_flops``; without them those columns are empty."""
    from dpbert.data.tasks import get_task
    from dpbert.reporting.crossfit import DEFAULT_MAX_CANDIDATES, row_points, select_rows

    sweep = with_flops(read_sweeps(sweep_paths), health_records, flops_records)
    lo, hi = selection["window"]
    speedup_col = SPEEDUP_COLUMNS[selection["speedup"]]
    atomic_write_df(mark_window(sweep, lo, hi, speedup_col), sweeps_out)
    max_candidates = int(selection.get("max_candidates", DEFAULT_MAX_CANDIDATES))
    mode = str(selection.get("choose_on", "crossfit"))
    if health_records is not None and health_records.get("prediction_paths"):
        predictions = read_job_predictions(health_records["prediction_paths"], health_records["jobs"])
        selected, specs, pooled = select_rows(sweep, predictions, methods=methods, lo=lo, hi=hi,
                                              speedup_col=speedup_col, metric_of=lambda t: get_task(t).metric,
                                              max_candidates=max_candidates, mode=mode)
    else:  # no per-example predictions: the same-set choice over the sweep's scores (labelled as such)
        selected = select_all(sweep, lo, hi, speedup_col, static_methods=static_method_names(methods))
        selected["row"] = selected["method"]
        selected["chosen_on"] = selected["scored_on"] = "all"
        specs, pooled, mode = None, {}, "same_set"
    atomic_write_df(selected, selected_out)
    full_meta = {
        **meta,
        "backbone": _joined(sweep["backbone"]),
        "device": _joined(sweep["device"]),
        "window": (lo, hi),
        "speedup_col": speedup_col,
    }
    rows = [s.key for s in specs] if specs is not None else list(methods)
    row_methods = [s.method for s in specs] if specs is not None else list(methods)
    table = table1(selected, rows, tasks, speedup_col, full_meta)
    if health_records is not None:
        from dpbert.reporting.health import degenerate_cells, health_from_records

        health = health_from_records(sweep_paths=sweep_paths, methods=methods, selected=row_points(selected),
                                     selection=selection, **health_records)
        table = mark_degenerate(table, rows, degenerate_cells(health), row_methods)
    se = None
    if pooled:
        replicates = pooled_replicates(pooled, {s.key: s.display_name for s in specs})
        se = table1_standard_errors(table, replicates)
        if bootstrap_out is not None:
            atomic_write_df(replicates.round(3), bootstrap_out)
    elif bootstrap_out is not None:
        atomic_write_df(pd.DataFrame(), bootstrap_out)
    notes = [meta.get("profile_note", "")] if meta.get("profile_note") else []
    notes.append(choice_note(mode, max_candidates, full_meta))
    if (selected["method"] == "distilbert").any() and (selected["display_name"] == "DistilBERT").any():
        notes.append("DistilBERT here is the hub's distilbert-base-uncased, timed through its own Hugging Face "
                     "forward while every other row runs the harness's layer loop: its latency speed-up includes the "
                     "difference between the two code paths (its layer speed-up does not).")
    notes.append(
        "speedup is the mean over tasks of the speed-up that selects points "
        f"({selection['speedup']}); speedup_latency is the measured batch-1 latency ratio vs BERT-base "
        "in the same job, speedup_layer is N / mean executed layers, speedup_flops is BERT-base's mean FLOPs per "
        "example over the row's FLOPs on the same dev examples (matrix products at each example's length, the "
        "method's off-ramps, planners and halting units counted; docs/methods.md, \"FLOPs per example\")."
    )
    atomic_write_text(markdown_out, "# Table 1 (dev)\n\n" + table1_markdown(table, full_meta, notes, se=se))
    atomic_write_df(table, table_out)
    log.info("Table 1: %d rows from %d sweep records", len(table), len(sweep))
    return table


def with_flops(sweep: pd.DataFrame, health_records: dict[str, Any] | None,
               flops_records: dict[str, Any] | None) -> pd.DataFrame:
    """``sweep`` with ``flops_per_example`` and ``flops_speedup`` (dpbert.reporting.flops) from the jobs'
    predictions (``health_records``) and ``flops_records``; both columns empty without them."""
    from dpbert.reporting.flops import FLOPS_COLUMNS, POINT_KEYS, add_flops, job_flops

    if not flops_records or not health_records or not health_records.get("prediction_paths"):
        return add_flops(sweep, pd.DataFrame(columns=POINT_KEYS + FLOPS_COLUMNS))
    flops = job_flops(prediction_paths=health_records["prediction_paths"], jobs=health_records["jobs"],
                      data_paths=flops_records["data_paths"], stage1_dirs=flops_records["stage1_dirs"],
                      method_params=flops_records.get("method_params"))
    return add_flops(sweep, flops)


def choice_note(mode: str, max_candidates: int, meta: dict[str, Any]) -> str:
    """How Table 1's points were chosen, for its notes (and Figure 3's, reproduction.md's)."""
    lo, hi = meta.get("window", (1.30, 1.96))
    if mode == "same_set":
        return (f"Points chosen on the same dev examples they are scored on (selection.choose_on: same_set): each "
                f"adaptive row is the best of up to {max_candidates} window points ({float(lo):.2f}–{float(hi):.2f}x), "
                "an optimistic score.")
    return (f"How points were chosen: every dev split is cut into two folds (seeded, stratified by label); each row's "
            f"point in the {float(lo):.2f}–{float(hi):.2f}x window is chosen on one fold and scores the other, and the "
            f"other way round (cross-fitting), from at most {max_candidates} window points per row, picked without "
            "labels; the score is that of the pooled predictions, so no example is both chooser and judge. DPBERT and "
            "DPBERT-soft run the rule they are trained for (p_i ≥ 0.5), the target rate t as the knob; their "
            "'threshold searched' rows also search the threshold. "
            f"{results_file(meta.get('profile', ''), 'selected_points.csv')} lists each fold's choice. ± holds the "
            "chosen points fixed and resamples the dev examples: it does not include the choice's own variance or "
            "the spread over training seeds.")


def read_job_predictions(prediction_paths: list[str], jobs: list) -> dict[tuple[str, str, int], pd.DataFrame]:
    """{(task, method, seed): the job's predictions.csv.gz} (``jobs``: each path's (task, method, seed))."""
    from dpbert.reporting.records import read_predictions

    return {(str(t), str(m), int(sd)): read_predictions(p, ["variant", "knob", "split", "idx", "label", "pred"])
            for (t, m, sd), p in zip(jobs, prediction_paths)}


def pooled_replicates(pooled: dict[tuple[str, str, str], list[pd.DataFrame]], display_of: dict[str, str]) -> pd.DataFrame:
    """Paired bootstrap replicates of every cell, from its cross-fitted predictions (one frame per seed): one
    column per "<display name>|<column>", the same resampled examples in every column of a split."""
    from dpbert.data.tasks import get_task
    from dpbert.reporting.layout import column_of
    from dpbert.reporting.uncertainty import REPLICATE_SEP, point_replicates

    cols = {}
    for (row, task, split), frames in sorted(pooled.items()):
        if frames:
            cols[f"{display_of[row]}{REPLICATE_SEP}{column_of(task, split)}"] = point_replicates(
                get_task(task).metric, frames, task=task, split=split)
    return pd.DataFrame(cols)


def table1_standard_errors(table: pd.DataFrame, replicates: pd.DataFrame) -> dict[tuple[str, str], float]:
    """(model, column) -> bootstrap SE of every Table 1 cell with replicates, and of each row's avg
    (over the table's avg tasks, from the same replicates)."""
    from dpbert.reporting.layout import AVG_TASKS_ATTR, NON_TASK_COLUMNS
    from dpbert.reporting.uncertainty import (
        average_replicates,
        cell_replicates,
        standard_error,
    )

    out: dict[tuple[str, str], float] = {}
    cols = [c for c in table.columns if c not in NON_TASK_COLUMNS and c != "degenerate"]
    avg_tasks = list(table.attrs.get(AVG_TASKS_ATTR, []))
    for model in table["model"].astype(str):
        for c in cols:
            reps = cell_replicates(replicates, model, c)
            if reps is not None:
                out[(model, c)] = standard_error(reps)
        if avg_tasks:
            reps = average_replicates(replicates, model, avg_tasks)
            if reps is not None:
                out[(model, "avg")] = standard_error(reps)
    return out


def table1(
    selected: pd.DataFrame,
    method_order: list[str],
    tasks: list[str],
    speedup_col: str,
    meta: dict[str, Any],
) -> pd.DataFrame:
    """One row per method (Table 1 layout) from :func:`selection.select_all` output.

    speedup = mean over the row's covered, in-window tasks of `speedup_col`
    (a task's speed-up is the mean over its splits). avg = mean over the tasks
    that every row with a score covers (:func:`common_tasks`, kept in
    ``table.attrs["avg_tasks"]``), MNLI once as mean(m, mm): two rows' averages
    are always over the same tasks; ``covered`` = "k/n", the row's own tasks
    with a score out of the configured ones. Empty cells are NaN; the reason for
    each is kept in ``table.attrs["empty_reasons"]`` for :func:`table1_markdown`.
    """
    if speedup_col not in ("layer_speedup", "latency_speedup"):
        raise ValueError(f"speedup_col must be layer_speedup or latency_speedup, got {speedup_col!r}")
    tcols = task_columns(tasks)
    cols = (["model", "speedup", "speedup_latency", "speedup_layer", "speedup_flops"] + tcols
            + ["avg", "covered", "n_seeds"] + META_COLUMNS)
    reasons: dict[str, str] = {}
    spreads: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    key = "row" if "row" in selected.columns else "method"
    for method in method_order:
        sub = selected[selected[key] == method]
        display = str(sub["display_name"].iloc[0]) if len(sub) else method
        row: dict[str, Any] = {"model": display}
        task_scores: list[float] = []
        lat: list[float] = []
        lay: list[float] = []
        flo: list[float] = []
        seeds: list[int] = []
        for task in tasks:
            tsub = sub[sub["task"] == task]
            own_cols = ["MNLI-m", "MNLI-mm"] if task == "MNLI" else [task]
            if tsub.empty:
                for c in own_cols:
                    row[c] = np.nan
                    reasons[f"{display}|{c}"] = REASON_UNCOVERED
                continue
            ok = tsub[tsub["score"].notna()]
            for c in own_cols:
                cell = ok[[column_of(task, s) == c for s in ok["split"]]]
                if cell.empty:
                    row[c] = np.nan
                    covered = any(column_of(task, s) == c for s in tsub["split"])
                    reasons[f"{display}|{c}"] = REASON_WINDOW if covered else REASON_UNCOVERED
                    continue
                r = cell.iloc[0]
                row[c] = float(r["score"])
                seeds.append(int(r["n_seeds"]))
                spreads.append({"model": display, "column": c, "score_min": r.get("score_min", np.nan),
                                "score_max": r.get("score_max", np.nan)})
            if ok.empty:
                continue
            vals = [row[c] for c in own_cols if not pd.isna(row[c])]
            task_scores.append(float(np.mean(vals)))
            lat.append(float(ok["latency_speedup"].astype(float).mean()))
            lay.append(float(ok["layer_speedup"].astype(float).mean()))
            flo.append(float(ok["flops_speedup"].astype(float).mean()) if "flops_speedup" in ok.columns else np.nan)
        row["speedup_latency"] = float(np.nanmean(lat)) if lat and not np.all(np.isnan(lat)) else np.nan
        row["speedup_layer"] = float(np.nanmean(lay)) if lay and not np.all(np.isnan(lay)) else np.nan
        row["speedup_flops"] = float(np.nanmean(flo)) if flo and not np.all(np.isnan(flo)) else np.nan
        row["speedup"] = row["speedup_latency"] if speedup_col == "latency_speedup" else row["speedup_layer"]
        row["n_seeds"] = min(seeds) if seeds else pd.NA
        for k in META_COLUMNS:
            row[k] = meta.get(k, "")
        rows.append(row)
    avg_tasks = common_tasks(pd.DataFrame(rows), tasks)
    for row in rows:
        own = row_task_scores(row, tasks)
        row["covered"] = f"{len(own)}/{len(tasks)}"
        row["avg"] = float(np.mean([own[t] for t in avg_tasks])) if avg_tasks and own else np.nan
    out = pd.DataFrame(rows, columns=cols)
    for c in tcols + ["avg"]:
        out[c] = out[c].astype(float).round(1)
    for c in ("speedup", "speedup_latency", "speedup_layer", "speedup_flops"):
        out[c] = out[c].astype(float).round(2)
    out["n_seeds"] = out["n_seeds"].astype("Int64")
    out.attrs[EMPTY_REASONS_ATTR] = reasons
    out.attrs["spread"] = spreads
    out.attrs[AVG_TASKS_ATTR] = avg_tasks
    return out


def mark_degenerate(table: pd.DataFrame, rows: list[str], cells: dict[tuple[str, str], Any],
                    row_methods: list[str] | None = None) -> pd.DataFrame:
    """Copy of a :func:`table1` table (rows in ``rows`` order: Table 1 row keys) with
    :data:`DEGENERATE_COLUMN`: for each row, its task columns (MNLI: both) whose (task, key) is a key of
    ``cells``, the key being the row's own or its method's (``row_methods``: a "threshold searched" row
    carries its method's verdicts, judged at the method's own point)."""
    out = table.copy()
    out.attrs = dict(table.attrs)
    present = set(out.columns)
    marks = []
    for i, key in enumerate(rows[: len(out)]):
        own = {key, row_methods[i]} if row_methods is not None else {key}
        cols: list[str] = []
        for task, m in cells:
            if m in own:
                cols += [c for c in (["MNLI-m", "MNLI-mm"] if task == "MNLI" else [task]) if c in present]
        marks.append(";".join(c for c in out.columns if c in cols))
    out[DEGENERATE_COLUMN] = marks + [""] * (len(out) - len(marks))
    return out


def table1_spread(table: pd.DataFrame) -> pd.DataFrame:
    """Long (model, column, score_min, score_max) frame recorded by :func:`table1`."""
    return pd.DataFrame(table.attrs.get("spread", []), columns=["model", "column", "score_min", "score_max"])


def _fmt(v: Any, nd: int) -> str:
    return f"{float(v):.{nd}f}"


def table1_markdown(
    table: pd.DataFrame,
    meta: dict[str, Any],
    notes: list[str],
    spread: pd.DataFrame | None = None,
    se: dict[tuple[str, str], float] | None = None,
) -> str:
    """Markdown Table 1 with a provenance header and footnoted empty cells.

    meta keys used: profile, backbone, device, seeds (list or str),
    window ((lo, hi), default (1.30, 1.96)), speedup_col.  `spread` is a long
    frame (model, column, score_min, score_max); None -> :func:`table1_spread`;
    cells show "median (min–max)" where the row's n_seeds > 1. ``se`` maps
    (model, column) -> bootstrap standard error (column: a task column or
    "avg"); such a cell shows "81.2 ±1.4". The avg footnote names the tasks
    avg is over (``table.attrs["avg_tasks"]``).
    """
    lo, hi = meta.get("window", (1.30, 1.96))
    win = f"{float(lo):.2f}–{float(hi):.2f}x"
    sp_col = meta.get("speedup_col", "")
    sp_name = {"latency_speedup": "measured latency speed-up",
               "layer_speedup": "layer-count speed-up (N / mean layers)"}.get(sp_col, str(sp_col) or "unspecified")
    seeds = meta.get("seeds", "")
    if isinstance(seeds, (list, tuple)):
        seeds = ", ".join(str(s) for s in seeds)
    header = (
        f"**Profile:** {meta.get('profile', '')} · **backbone:** {meta.get('backbone', '')} · "
        f"**device:** {meta.get('device', '')} · **seeds:** {seeds} · **window:** {win} · "
        f"**points selected by:** {sp_name}."
    )
    reasons: dict[str, str] = table.attrs.get(EMPTY_REASONS_ATTR, {})
    marks = {REASON_WINDOW: "†", REASON_UNCOVERED: "‡"}
    legend = {
        REASON_WINDOW: f"† no sweep point in the {win} window.",
        REASON_UNCOVERED: "‡ method has no regression exit / does not cover this task.",
    }
    used: set[str] = set()
    if spread is None:
        spread = table1_spread(table)
    spr: dict[tuple[str, str], tuple[float, float]] = {}
    if spread is not None and not spread.empty:
        for _, r in spread.iterrows():
            spr[(str(r["model"]), str(r["column"]))] = (r["score_min"], r["score_max"])

    show = [c for c in table.columns if c not in META_COLUMNS and c != DEGENERATE_COLUMN]
    rows: list[list[str]] = []
    task_cols = [c for c in show if c not in NON_TASK_COLUMNS]
    degenerate_used = False
    se_used = False
    for _, r in table.iterrows():
        model = str(r["model"])
        multi = not pd.isna(r.get("n_seeds", pd.NA)) and int(r["n_seeds"]) > 1
        marked = set(str(r.get(DEGENERATE_COLUMN, "") or "").split(";")) - {"", "nan"}
        cells: list[str] = []
        for c in show:
            v = r[c]
            if c == "model":
                cells.append(model)
            elif pd.isna(v):
                reason = reasons.get(f"{model}|{c}")
                if reason in marks:
                    used.add(reason)
                    cells.append("—" + marks[reason])
                else:
                    cells.append("—")
            elif c in ("speedup", "speedup_latency", "speedup_layer", "speedup_flops"):
                cells.append(_fmt(v, 2) + "x")
            elif c == "n_seeds":
                cells.append(str(int(v)))
            elif c == "covered":
                cells.append(str(v))
            else:
                text = _fmt(v, 1)
                err = (se or {}).get((model, c), np.nan)
                if (c in task_cols or c == "avg") and not pd.isna(err):
                    text += f" ±{float(err):.1f}"
                    se_used = True
                if c in task_cols and multi and (model, c) in spr and not pd.isna(spr[(model, c)][0]):
                    mn, mx = spr[(model, c)]
                    text += f" ({_fmt(mn, 1)}–{_fmt(mx, 1)})"
                cells.append(text)
            if c in marked:
                cells[-1] += DEGENERATE_MARK
                degenerate_used = True
        rows.append(cells)
    foot = [legend[k] for k in (REASON_WINDOW, REASON_UNCOVERED) if k in used]
    if degenerate_used:
        foot.append(f"{DEGENERATE_MARK} the method is degenerate on this task: it is not shown to learn there "
                    "(e.g. planners that ignore the input, an off-ramp or a selected point at the majority class); "
                    f"the reason is in {results_file(meta.get('profile', ''), 'health.md')}.")
    if any(not pd.isna(n) and int(n) > 1 for n in table.get("n_seeds", [])):
        foot.append("Cells with several seeds show median (min–max) over seeds.")
    avg_tasks = table.attrs.get(AVG_TASKS_ATTR)
    if avg_tasks is None:
        avg_tasks = common_tasks(table, tasks_of_table(table))
    all_tasks = tasks_of_table(table)
    if avg_tasks:
        left = [t for t in all_tasks if t not in avg_tasks]
        foot.append(f"avg over {', '.join(avg_tasks)}: the {len(avg_tasks)} of {len(all_tasks)} tasks that every row "
                    "with a score covers, so any two rows' averages are over the same tasks (MNLI once, as "
                    "mean(MNLI-m, MNLI-mm))" + (f"; not in it: {', '.join(left)}" if left else "") + ". covered: "
                    "the tasks a row has a score on.")
    else:
        foot.append("avg: — (no task is covered by every row with a score, so no average compares the rows). "
                    "covered: the tasks a row has a score on.")
    if se_used:
        foot.append("± is the bootstrap standard error of the score over the dev examples (1000 resamples of the "
                    "examples, the same resamples for every row; avg: of the average). reproduction.md judges a "
                    "difference between two rows against its own paired standard error: within noise under 2.")
    body = "\n".join([header, "", *markdown_table(show, rows)])
    # blank line between footnotes so each renders as its own paragraph
    return body + "\n\n" + "\n\n".join(foot + list(notes)) + "\n"
