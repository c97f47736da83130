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
    health_records: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """``health_records`` (prediction_paths, diagnostics_paths, jobs: see dpbert.health.load_records):
    mark the cells of a method that is degenerate on a task, with the same verdicts as results/health.csv."""
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
    notes = [meta.get("profile_note", "")] if meta.get("profile_note") else []
    notes.append(
        "speedup is the mean over tasks of the speed-up that selects points "
        f"({selection['speedup']}); speedup_latency is the measured batch-1 latency ratio vs BERT-base "
        "in the same job, speedup_layer is N / mean executed layers."
    )
    atomic_write_text(markdown_out, "# Table 1 (dev)\n\n" + table1_markdown(table, full_meta, notes))
    atomic_write_df(table, table_out)
    log.info("Table 1: %d rows from %d sweep records", len(table), len(sweep))
    return table
