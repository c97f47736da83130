"""The one reader of run records: sweeps, per-example predictions, diagnostics, bootstrap replicates.

Every method job writes ``sweep.csv`` (one row per variant x knob x dev split), ``predictions.csv.gz``
(one row per example of each of those points) and ``diagnostics.json``; Table 1 writes its bootstrap
replicates. Reporting modules read them only through these functions, so a column's type (``variant``
and ``executed`` as strings, an empty ``knob`` as NaN) is decided once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd


SPEEDUP_COLUMNS = {"layer": "layer_speedup", "latency": "latency_speedup"}
"""``selection.speedup`` -> the sweep column it selects on."""

PREDICTION_COLUMNS: list[str] = ["variant", "knob", "split", "idx", "label", "pred", "executed"]
"""What the health table reads of the predictions (``read_predictions(path, PREDICTION_COLUMNS)``)."""


def read_sweeps(paths: list[str]) -> pd.DataFrame:
    frames = [pd.read_csv(p, keep_default_na=False, na_values=[""]) for p in paths]
    sweep = pd.concat(frames, ignore_index=True)
    sweep["variant"] = sweep["variant"].fillna("").astype(str)
    return sweep


def read_csv(path: str | Path) -> pd.DataFrame:
    """A reporting job's CSV (selected points, sweeps.csv): empty cells NaN, ``variant`` / ``knob_name`` strings."""
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    for col in ("variant", "knob_name"):
        if col in df.columns:
            df[col] = df[col].fillna("").astype(str)
    return df


def read_predictions(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A job's per-example predictions (all columns, or only ``columns``): ``variant``, ``split`` and
    ``executed`` (the executed layers, "0;1;5") as strings; an empty knob, prediction or label NaN."""
    df = pd.read_csv(path, usecols=list(columns) if columns is not None else None, keep_default_na=False,
                     na_values={"knob": [""], "pred": [""], "label": [""]},
                     dtype={"variant": str, "executed": str, "split": str})
    for col in ("executed", "variant"):
        if col in df.columns:
            df[col] = df[col].astype(str)
    return df


def load_records(*, sweep_paths: Sequence[str], prediction_paths: Sequence[str], diagnostics_paths: Sequence[str],
                 jobs: Sequence[Sequence], methods: Iterable[str]):
    """(sweep, predictions by (task, method, seed), diagnostics) of every job; ``jobs`` lists each job's
    (task, method, seed) in the order of ``prediction_paths``: every job's (:func:`build_health`
    pairs each method's selected point with BERT-base's, and reads the planners' paths)."""
    from dpbert.reporting.records import read_sweeps

    names = set(methods)
    sweep = read_sweeps(list(sweep_paths))
    predictions = {}
    for (task, method, seed), path in zip(jobs, prediction_paths):
        if str(method) in names:
            predictions[(str(task), str(method), int(seed))] = read_predictions(path, PREDICTION_COLUMNS)
    diagnostics = [json.loads(Path(p).read_text()) for p in diagnostics_paths]
    return sweep, predictions, diagnostics


def read_replicates(path: str | Path | None) -> pd.DataFrame | None:
    """Table 1's bootstrap replicates (rule table1), or None when there is no file or it has no columns."""
    if path is None or not Path(path).is_file():
        return None
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return None
    return df if len(df.columns) else None
