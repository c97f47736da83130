"""Per-job method diagnostics: what ``diagnostics.json`` holds (needs the loaded models).

Runs inside the method job after scoring (dpbert.run.job). Early-exit methods (an ``exit_signal``
hook): the dev score of every layer's exit answer, from one pass per example. Planner methods (a
``planner_probs`` hook, or ``planner_probs_traced`` off the sweep's traces): per layer, the mean and the spread (std) over dev examples of the planner
probability p_i along the inference path, per variant and threshold. Every method: the state its
decisions read. The health table (dpbert.reporting.health) turns these records into verdicts.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dpbert.run.metrics import glue_metrics

log = logging.getLogger(__name__)

KIND_REFERENCE, KIND_EXIT, KIND_PLANNER, KIND_STATIC = "reference", "exit", "planner", "static"


DIAGNOSTIC_EXAMPLES: int = 500
"""Per-layer diagnostics read at most the first this-many examples of the primary dev split."""


def method_kind(method) -> str:
    """``reference`` (BERT-base), ``exit`` (an ExitCriterion), ``planner`` (has ``planner_probs``) or
    ``static`` (no planner, no off-ramp: one path for every input). Takes a method or its class.
    Read off public hooks only: ``exit_signal`` (early exit), ``planner_probs`` (planners)."""
    cls = method if isinstance(method, type) else type(method)
    if getattr(cls, "is_reference", False):
        return KIND_REFERENCE
    if hasattr(cls, "exit_signal"):  # the early-exit hooks (baselines._early_exit.ExitCriterion)
        return KIND_EXIT
    if hasattr(cls, "planner_probs"):
        return KIND_PLANNER
    return KIND_STATIC


def decision_state(method) -> str:
    """The state a method's decisions read: its ``state`` parameter; ``cls`` for a planner or
    off-ramp method without one (what every decision read before the parameter existed); ``-`` for
    a method that decides nothing."""
    if method_kind(method) not in (KIND_EXIT, KIND_PLANNER):
        return "-"
    state = getattr(method.params, "state", None)
    return str(state) if state else "cls"


def _as_prediction(output, regression: bool):
    out = output.float().cpu()
    return out.view(-1)[0].item() if regression else int(out.argmax().item())


def exit_layer_predictions(method, model, example) -> list:
    """Every layer's exit answer for one example, from one pass (``trace``): the prediction the method
    would make if the example exited after layer 1, 2, ..., N."""
    return _trace_predictions(method, method.trace(model, example))


def _trace_predictions(method, trace) -> list:
    regression = method.task.is_regression
    return [_as_prediction(a, regression) for a in method.exit_answers(trace)]


def exit_layer_scores(method, model, split, device: str, limit: int = DIAGNOSTIC_EXAMPLES,
                      traces: Sequence | None = None) -> list[float]:
    """The task's GLUE score of each layer's exit answer on the first ``limit`` examples of ``split``.
    ``traces``: the sweep's traces of the split's examples (``Method.trace``), read instead of a new
    pass where they cover those examples (the same answers: the trace is that pass)."""
    n = min(limit, len(split))
    if traces is not None and len(traces) >= n:
        per_example = [_trace_predictions(method, t) for t in traces[:n]]
    else:
        per_example = [exit_layer_predictions(method, model, split.example(i, device)) for i in range(n)]
    labels = list(split.labels[:n])
    n_layers = len(per_example[0]) if per_example else 0
    return [glue_metrics(method.task.metric, [p[j] for p in per_example], labels)["score"]
            for j in range(n_layers)]


def planner_spread(method, model, split, threshold: float, device: str,
                   limit: int = DIAGNOSTIC_EXAMPLES, traces: Sequence | None = None) -> dict[str, list[float]]:
    """Per layer, mean and std (over the first ``limit`` examples) of p_i along the hard path at
    ``threshold`` (``method.planner_probs``; ``planner_probs_traced`` off the sweep's ``traces`` of
    the split where they cover those examples)."""
    n = min(limit, len(split))
    if traces is not None and len(traces) >= n and hasattr(method, "planner_probs_traced"):
        per_example = [method.planner_probs_traced(t, threshold) for t in traces[:n]]
    else:
        per_example = [method.planner_probs(model, split.example(i, device), threshold) for i in range(n)]
    probs = np.array(per_example, dtype=float)
    if probs.size == 0:
        return {"p_mean": [], "p_std": []}
    return {"p_mean": probs.mean(0).tolist(), "p_std": probs.std(0).tolist()}


def majority_score(metric: str, labels: Sequence, regression: bool = False) -> float:
    """The task's score of a constant answer: the most frequent label (ties: the smallest), or for
    regression any constant value, whose correlation is undefined and scores 0 (dpbert.run.metrics)."""
    labels = list(labels)
    if not labels:
        return float("nan")
    if regression:
        constant = float(np.mean(labels))
    else:
        counts = Counter(labels)
        top = max(counts.values())
        constant = min(v for v, c in counts.items() if c == top)
    return glue_metrics(metric, [constant] * len(labels), labels)["score"]


def compute_diagnostics(method, models: Mapping[str, Any], split, *, device: str = "cpu",
                        limit: int = DIAGNOSTIC_EXAMPLES, traces: Mapping[str, Sequence] | None = None) -> dict[str, Any]:
    """What ``diagnostics.json`` holds for one job, from its loaded models (variant -> model), the primary
    dev split and the sweep's ``traces`` of it (variant -> per-example traces), if any. Only public hooks:
    ``exit_signal`` / ``final_output`` / ``exit_answers`` (early exit), ``planner_probs`` (planners),
    ``params.state``."""
    traces = traces or {}
    kind = method_kind(method)
    n = min(limit, len(split))
    out: dict[str, Any] = {
        "task": method.task.name, "method": method.name, "kind": kind, "state": decision_state(method),
        "metric": method.task.metric, "n_examples": n, "n_dev": len(split),
        "majority_score": majority_score(method.task.metric, split.labels[:n], method.task.is_regression),
        "variants": [],
    }
    rates = getattr(method.params, "target_rates", None)
    variants = list(models)
    if rates is not None and len(rates) == len(variants):
        out["target_rates"] = {v: float(t) for v, t in zip(variants, rates)}
    for variant, model in models.items():
        entry: dict[str, Any] = {"variant": variant, "n_layers": int(model.n_layers)}
        if kind == KIND_EXIT:
            entry["exit_scores"] = exit_layer_scores(method, model, split, device, limit, traces.get(variant))
        elif kind == KIND_PLANNER:
            entry["planner"] = [{"threshold": float(k),
                                 **planner_spread(method, model, split, float(k), device, limit, traces.get(variant))}
                                for k in method.knobs()]
        out["variants"].append(entry)
    return out


def write_diagnostics(method, split, *, model_dir: str | Path, device: str, seed: int, out_path: str | Path,
                      limit: int = DIAGNOSTIC_EXAMPLES, traces: Mapping[str, Sequence] | None = None) -> dict[str, Any]:
    """Load the job's variants (only for a method with off-ramps or planners), compute, write JSON.
    ``traces``: the sweep's per-example traces of ``split`` by variant, read instead of new passes."""
    from dpbert.run.runtime import atomic_write_text

    kind = method_kind(method)
    models = {}
    if kind in (KIND_EXIT, KIND_PLANNER):
        models = {v: method.load(method.variant_dir(Path(model_dir), v)).to(device)
                  for v in method.trained_variants(Path(model_dir))}
    diag = compute_diagnostics(method, models, split, device=device, limit=limit, traces=traces)
    diag["seed"] = int(seed)
    atomic_write_text(out_path, json.dumps(diag, indent=2))
    log.info("diagnostics of %s on %s (%s, %d examples) written to %s", method.name, method.task.name, kind,
             diag["n_examples"], out_path)
    return diag
