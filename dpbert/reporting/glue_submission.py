"""GLUE test-server prediction files at a method's selected point (the paper reports test numbers too).

The server wants one TSV per task, named as below, with columns ``index`` and ``prediction``:
label names for the NLI tasks, 0/1 elsewhere, a float in [0, 5] for STS-B.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from dpbert.data.tasks import TaskSpec, get_task

log = logging.getLogger(__name__)

# test split -> file name expected by the GLUE server
SUBMISSION_FILES = {
    ("CoLA", "test"): "CoLA.tsv", ("SST-2", "test"): "SST-2.tsv", ("MRPC", "test"): "MRPC.tsv",
    ("QQP", "test"): "QQP.tsv", ("STS-B", "test"): "STS-B.tsv", ("QNLI", "test"): "QNLI.tsv",
    ("RTE", "test"): "RTE.tsv", ("MNLI", "test_matched"): "MNLI-m.tsv", ("MNLI", "test_mismatched"): "MNLI-mm.tsv",
}


def submission_frame(spec: TaskSpec, predictions: list[float | int]) -> pd.DataFrame:
    """index/prediction rows in the server's format for one test split."""
    if spec.is_regression:
        values = [min(5.0, max(0.0, float(p))) for p in predictions]
    elif spec.name in ("MNLI", "QNLI", "RTE"):
        values = [spec.label_names[int(p)] for p in predictions]
    else:
        values = [int(p) for p in predictions]
    return pd.DataFrame({"index": range(len(values)), "prediction": values})


def chosen_point(selected: pd.DataFrame, task: str, method: str) -> tuple[str, float] | None:
    """(variant, knob) of the Table 1 cell; None when the method has no point in the window there."""
    from dpbert.reporting.crossfit import main_points

    selected = main_points(selected)
    rows = selected[(selected["task"] == task) & (selected["method"] == method) & selected["score"].notna()]
    if rows.empty:
        return None
    row = rows.iloc[0]
    return str(row["variant"]), float(row["knob"])


def write_submission(method_name: str, tasks: list[str], selected_csv: str, model_dirs: dict[str, str],
                     data_paths: dict[str, str], method_params: dict, out_dir: str, device: str) -> None:
    from dpbert.methods.registry import build_method
    from dpbert.reporting.records import read_csv
    from dpbert.run.prepare import load_prepared
    from dpbert.run.runtime import atomic_dir, atomic_write_df
    from dpbert.run.sweep import predict_split

    selected = read_csv(selected_csv)
    with atomic_dir(out_dir) as tmp:
        for task in tasks:
            spec = get_task(task)
            point = chosen_point(selected, spec.name, method_name)
            if point is None:
                log.warning("%s on %s has no point in the window: no test file written", method_name, task)
                continue
            variant, knob = point
            method = build_method(method_name, method_params, spec)
            model = method.load(method.variant_dir(Path(model_dirs[task]), variant)).to(device)
            prepared = load_prepared(data_paths[task])
            for split in spec.test_splits:
                if split not in prepared.splits:
                    raise ValueError(f"{data_paths[task]} has no {split} split: set data.with_test: true and rerun")
                [(preds, _)] = predict_split(method, model, prepared.splits[split], [knob], device)
                atomic_write_df(submission_frame(spec, preds), tmp / SUBMISSION_FILES[(spec.name, split)], sep="\t")
                log.info("%s %s %s: %d test predictions at %s %s=%g", method_name, task, split, len(preds),
                         variant, method.knob_name, knob)
