"""FLOPs per example of every sweep point, and its FLOPs speed-up over BERT-base on the same examples.

Why: a latency speed-up depends on the machine, a layer speed-up ignores what a method computes besides
its layers (off-ramps, planners, halting units) and that a long example's layers cost more than a short
one's. FLOPs per example count both, machine-free: each example at its own length
(``dpbert.model.flops``: the matrix products of every executed layer, plus ``Method.overhead_flops``, what
the method's own modules compute for it), averaged over the examples a point scored. BERT-base's FLOPs
on the same examples (all N layers and its head) divided by the point's is its ``flops_speedup``.

Read from the records alone (no model is loaded, nothing retrains): each job's ``predictions.csv.gz``
(the layers every example executed at every point), the task's prepared data (each dev example's length)
and the stage-1 model's config (N, hidden and intermediate sizes). All functions but the readers are pure.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dpbert.model.flops import head_flops, layer_flops
from dpbert.reporting.records import read_predictions

FLOPS_COLUMNS: list[str] = ["flops_per_example", "flops_speedup"]
"""The columns this module adds to sweeps.csv and selected_points.csv."""

POINT_KEYS: list[str] = ["task", "method", "seed", "variant", "knob", "split"]
"""One sweep point of one job, as sweeps.csv and the flops frame key it."""

KNOB_DIGITS = 9  # knobs match at this many decimals (as crossfit.PointPredictions matches them)


@dataclass(frozen=True)
class BackboneSizes:
    """What a layer's FLOPs depend on besides the length: the stage-1 model's N layers, H and I."""

    n_layers: int
    hidden: int
    intermediate: int


def backbone_sizes(config_path: str | Path) -> BackboneSizes:
    """The sizes of a Hugging Face ``config.json`` (the stage-1 BERT-base's ``main/backbone/config.json``)."""
    path = Path(config_path)
    try:
        cfg = json.loads(path.read_text())
        return BackboneSizes(int(cfg["num_hidden_layers"]), int(cfg["hidden_size"]), int(cfg["intermediate_size"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"the backbone config {path} could not be read for the FLOPs per example ({exc}); it is "
                         "the stage-1 BERT-base model's: delete that job's model folder and rerun the workflow "
                         "to rebuild it.") from exc


def stage1_config(model_dir: str | Path) -> Path:
    """The config of a stage-1 BERT-base job folder (``work/<profile>/models/<task>/bert/<seed>``)."""
    return Path(model_dir) / "main" / "backbone" / "config.json"


def dev_lengths(prepared_path: str | Path) -> dict[str, list[int]]:
    """Each dev split's example lengths in tokens (index = the predictions' ``idx``), from the prepared data."""
    from dpbert.run.prepare import load_prepared

    prepared = load_prepared(prepared_path)
    return {name: [len(ids) for ids in split.input_ids] for name, split in prepared.dev_splits().items()}


def executed_layers(text: str) -> list[int]:
    """The 0-based layers of a predictions row's ``executed`` ("1 2 5", 1-based; "" or "nan": none)."""
    text = "" if text is None or (isinstance(text, float) and np.isnan(text)) else str(text)
    return [int(j) - 1 for j in text.split() if j != "nan"]


def reference_flops(lengths: Sequence[int], sizes: BackboneSizes, num_labels: int) -> np.ndarray:
    """BERT-base's FLOPs on each example: all N layers at its length, then its head."""
    head = head_flops(sizes.hidden, num_labels)
    return np.array([sizes.n_layers * layer_flops(n, sizes.hidden, sizes.intermediate) + head for n in lengths],
                    dtype=float)


OverheadFn = Callable[[list[int], int, int, int], int]
"""``Method.overhead_flops``: (executed, n_layers, hidden, num_labels) -> FLOPs."""


def point_flops(predictions: pd.DataFrame, lengths: Mapping[str, Sequence[int]], sizes: BackboneSizes,
                num_labels: int, overhead: OverheadFn) -> pd.DataFrame:
    """Per (variant, knob, split) of one job's predictions: ``flops_per_example`` (mean over the point's
    examples of every executed layer at the example's length plus ``overhead(executed, ...)``),
    ``base_flops_per_example`` (BERT-base's mean on the same examples) and ``flops_speedup`` (their ratio)."""
    missing = sorted(set(predictions["split"].astype(str)) - set(lengths))
    if missing:
        raise ValueError(f"the predictions name dev split(s) {', '.join(missing)} that the prepared data has no "
                         f"lengths for (it has {', '.join(sorted(lengths)) or 'none'}): the data file and the "
                         "runs are of different preparations; rerun the workflow so both are rebuilt.")
    cached: dict[str, tuple[int, int]] = {}  # executed text -> (layers run, overhead)

    def cost(text: str) -> tuple[int, int]:
        if text not in cached:
            layers = executed_layers(text)
            cached[text] = (len(layers), int(overhead(layers, sizes.n_layers, sizes.hidden, num_labels)))
        return cached[text]

    rows = []
    df = predictions.assign(variant=predictions["variant"].fillna("").astype(str),
                            _knob=predictions["knob"].astype(float).round(KNOB_DIGITS))
    per_layer = {split: np.array([layer_flops(n, sizes.hidden, sizes.intermediate) for n in ls], dtype=float)
                 for split, ls in lengths.items()}
    base = {split: reference_flops(ls, sizes, num_labels) for split, ls in lengths.items()}
    for (variant, knob, split), g in df.groupby(["variant", "_knob", "split"], sort=True, dropna=False):
        idx = g["idx"].to_numpy(int)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(per_layer[split])):
            raise ValueError(f"the predictions of split {split} name example {idx.max()}, but the prepared data "
                             f"has {len(per_layer[split])} examples there: rerun the workflow so both are rebuilt.")
        costs = [cost(t) for t in g["executed"].astype(str)]
        n_run = np.array([c[0] for c in costs], dtype=float)
        extra = np.array([c[1] for c in costs], dtype=float)
        flops = float(np.mean(n_run * per_layer[split][idx] + extra)) if len(idx) else np.nan
        reference = float(np.mean(base[split][idx])) if len(idx) else np.nan
        rows.append({"variant": variant, "knob": knob, "split": split, "flops_per_example": flops,
                     "base_flops_per_example": reference,
                     "flops_speedup": reference / flops if flops and flops > 0 else np.nan})
    return pd.DataFrame(rows, columns=["variant", "knob", "split", "flops_per_example", "base_flops_per_example",
                                       "flops_speedup"])


def add_flops(sweep: pd.DataFrame, flops: pd.DataFrame) -> pd.DataFrame:
    """``sweep`` with :data:`FLOPS_COLUMNS` from ``flops`` (keyed by :data:`POINT_KEYS`); NaN where a point
    has none. Every existing column and row is kept as it is."""
    out = sweep.copy()
    if flops.empty:
        for c in FLOPS_COLUMNS:
            out[c] = np.nan
        return out
    key = out.assign(variant=out["variant"].fillna("").astype(str), seed=out["seed"].astype(int),
                     knob=out["knob"].astype(float).round(KNOB_DIGITS))[POINT_KEYS]
    right = flops.assign(variant=flops["variant"].fillna("").astype(str), seed=flops["seed"].astype(int),
                         knob=flops["knob"].astype(float).round(KNOB_DIGITS))
    right = right.drop_duplicates(POINT_KEYS)[POINT_KEYS + FLOPS_COLUMNS]
    merged = key.merge(right, on=POINT_KEYS, how="left")
    for c in FLOPS_COLUMNS:
        out[c] = merged[c].to_numpy()
    return out


def job_flops(*, prediction_paths: Sequence[str], jobs: Sequence[Sequence], data_paths: Mapping[str, str],
              stage1_dirs: Mapping[tuple[str, int], str], method_params: Mapping[str, dict] | None = None,
              ) -> pd.DataFrame:
    """:func:`point_flops` of every job (``jobs``: each prediction path's (task, method, seed)), with
    task, method and seed; ``data_paths``: task -> prepared data; ``stage1_dirs``: (task, seed) -> the
    stage-1 BERT-base job folder; ``method_params``: the config's ``methods:`` (what each method is built
    with to ask its ``overhead_flops``)."""
    from dpbert.data.tasks import get_task
    from dpbert.methods.registry import build_method

    lengths: dict[str, dict[str, list[int]]] = {}
    sizes: dict[tuple[str, int], BackboneSizes] = {}
    frames = []
    for (task, method, seed), path in zip(jobs, prediction_paths):
        task, method, seed = str(task), str(method), int(seed)
        if task not in data_paths or (task, seed) not in stage1_dirs:
            continue
        if task not in lengths:
            lengths[task] = dev_lengths(data_paths[task])
        if (task, seed) not in sizes:
            sizes[(task, seed)] = backbone_sizes(stage1_config(stage1_dirs[(task, seed)]))
        spec = get_task(task)
        impl = build_method(method, (method_params or {}).get(method), spec)
        preds = read_predictions(path, ["variant", "knob", "split", "idx", "executed"])
        frames.append(point_flops(preds, lengths[task], sizes[(task, seed)], spec.num_labels,
                                  impl.overhead_flops).assign(task=task, method=method, seed=seed))
    if not frames:
        return pd.DataFrame(columns=POINT_KEYS + FLOPS_COLUMNS)
    return pd.concat(frames, ignore_index=True)
