"""Reporting jobs: read the per-run sweep records, never train or time anything."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from dpbert.runtime import atomic_write_df, atomic_write_text
from dpbert.selection import mark_window, select_all
from dpbert.tables import mark_degenerate, table1, table1_markdown

log = logging.getLogger(__name__)

SPEEDUP_COLUMNS = {"layer": "layer_speedup", "latency": "latency_speedup"}


def read_sweeps(paths: list[str]) -> pd.DataFrame:
    frames = [pd.read_csv(p, keep_default_na=False, na_values=[""]) for p in paths]
    sweep = pd.concat(frames, ignore_index=True)
    sweep["variant"] = sweep["variant"].fillna("").astype(str)
    return sweep


def static_method_names(methods: list[str]) -> set[str]:
    from dpbert.registry import get_method

    return {m for m in methods if get_method(m).static}


def _joined(values) -> str:
    return "; ".join(sorted({str(v) for v in values if str(v)}))


def write_table1(
    *, sweep_paths: list[str], tasks: list[str], methods: list[str], selection: dict[str, Any],
    meta: dict[str, Any], table_out: str, markdown_out: str, sweeps_out: str, selected_out: str,
    health_records: dict[str, Any] | None = None, bootstrap_out: str | None = None,
) -> pd.DataFrame:
    """``health_records`` (prediction_paths, diagnostics_paths, jobs: see dpbert.health.load_records):
    mark the cells of a method that is degenerate on a task, with the same verdicts as results/health.csv.
    With ``health_records``' predictions, every cell and every row's avg gets its bootstrap standard error
    over the dev examples (shown in the Markdown); ``bootstrap_out`` (a .csv.gz) keeps the paired
    replicates themselves, one column per "<model>|<column>", for the reproduction report's claims."""
    sweep = read_sweeps(sweep_paths)
    lo, hi = selection["window"]
    speedup_col = SPEEDUP_COLUMNS[selection["speedup"]]
    atomic_write_df(mark_window(sweep, lo, hi, speedup_col), sweeps_out)
    selected = select_all(sweep, lo, hi, speedup_col, static_methods=static_method_names(methods))
    atomic_write_df(selected, selected_out)
    full_meta = {
        **meta,
        "backbone": _joined(sweep["backbone"]),
        "device": _joined(sweep["device"]),
        "window": (lo, hi),
        "speedup_col": speedup_col,
    }
    table = table1(selected, methods, tasks, speedup_col, full_meta)
    if health_records is not None:
        from dpbert.health import degenerate_cells, health_from_records

        health = health_from_records(sweep_paths=sweep_paths, methods=methods, selected=selected,
                                     selection=selection, **health_records)
        table = mark_degenerate(table, methods, degenerate_cells(health))
    se = None
    if health_records is not None and health_records.get("prediction_paths"):
        replicates = read_table1_replicates(selected, health_records["prediction_paths"], health_records["jobs"])
        se = table1_standard_errors(table, replicates)
        if bootstrap_out is not None:
            atomic_write_df(replicates.round(3), bootstrap_out)
    elif bootstrap_out is not None:
        atomic_write_df(pd.DataFrame(), bootstrap_out)
    notes = [meta.get("profile_note", "")] if meta.get("profile_note") else []
    notes.append(
        "speedup is the mean over tasks of the speed-up that selects points "
        f"({selection['speedup']}); speedup_latency is the measured batch-1 latency ratio vs BERT-base "
        "in the same job, speedup_layer is N / mean executed layers."
    )
    atomic_write_text(markdown_out, "# Table 1 (dev)\n\n" + table1_markdown(table, full_meta, notes, se=se))
    atomic_write_df(table, table_out)
    log.info("Table 1: %d rows from %d sweep records", len(table), len(sweep))
    return table


def read_table1_replicates(selected: pd.DataFrame, prediction_paths: list[str], jobs: list) -> pd.DataFrame:
    """:func:`dpbert.uncertainty.table1_replicates` from the jobs' predictions.csv.gz (``jobs``: each
    path's (task, method, seed)); only the jobs of methods with a selected point are read."""
    from dpbert.figures import read_predictions
    from dpbert.uncertainty import table1_replicates

    wanted = set(zip(selected["task"].astype(str), selected["method"].astype(str)))
    predictions = {(str(t), str(m), int(sd)): read_predictions(p)
                   for (t, m, sd), p in zip(jobs, prediction_paths) if (str(t), str(m)) in wanted}
    return table1_replicates(selected, predictions)


def table1_standard_errors(table: pd.DataFrame, replicates: pd.DataFrame) -> dict[tuple[str, str], float]:
    """(model, column) -> bootstrap SE of every Table 1 cell with replicates, and of each row's avg
    (over the table's avg tasks, from the same replicates)."""
    from dpbert.tables import AVG_TASKS_ATTR, NON_TASK_COLUMNS
    from dpbert.uncertainty import average_replicates, cell_replicates, standard_error

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
