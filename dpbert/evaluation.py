"""Sweep one trained method over its variants and knob values on the dev set(s), at batch size 1.

Scores: every example of every dev split at batch size 1, all knob values of a variant read off
``Method.predict_knobs`` (one pass per example where the knob only moves the exit). Latency: a fixed
list of dev examples, every (variant, knob) point timed with ``predict_one`` in rounds interleaved
example by example with BERT-base (``latency.reference``: through the engine, or its plain Hugging Face forward), the
denominator of the speed-up, in the same process;
the latency speed-up is the median over rounds of the round's ratio (``paired_speedup``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from dpbert.encoding import EncodedSplit
from dpbert.latency import measure_interleaved, paired_speedup
from dpbert.metrics import glue_metrics
from dpbert.registry import Method, get_method
from dpbert.runtime import phase

log = logging.getLogger(__name__)


@dataclass
class LatencySettings:
    examples: int = 100
    warmup: int = 10
    repeats: int = 3
    reference: str = "engine"  # BERT-base timed through: engine (the methods' code path) | hf (its HF forward)


def predict_split(method: Method, model, split: EncodedSplit, knobs: Sequence[float], device: str):
    """Batch-1 predictions and executed layers of every example of a split: one (preds, executed) per knob."""
    preds: list[list] = [[] for _ in knobs]
    executed: list[list[list[int]]] = [[] for _ in knobs]
    for i in range(len(split)):
        for k, result in enumerate(method.predict_knobs(model, split.example(i, device), knobs)):
            out = result.output.float().cpu()
            preds[k].append(out.view(-1)[0].item() if method.task.is_regression else int(out.argmax().item()))
            executed[k].append(result.executed)
    return list(zip(preds, executed))


def evaluate_sweep(
    method: Method,
    model_dir: Path,
    base_dir: Path,
    dev_splits: dict[str, EncodedSplit],
    latency: LatencySettings,
    device: str,
    seed: int,
    phases: dict[str, float] | None = None,
    lock: Callable[[], AbstractContextManager] = nullcontext,
) -> tuple[list[dict], list[dict]]:
    """Return (sweep rows, per-example prediction rows) for every variant x knob x dev split.

    ``lock`` is held while timing (one timing job at a time on a machine); ``phases`` gets the
    seconds spent loading, scoring and timing."""
    phases = {} if phases is None else phases
    task = method.task
    bert = get_method("bert")(None, task)
    with phase(phases, "load_s"):
        models = {v: method.load(Path(model_dir) / v).to(device) for v in method.variants()}
        # BERT-base's own job times the model it just loaded; every other job loads the stage-1 folder
        base_model = models["main"] if method.is_reference else bert.load(Path(base_dir) / "main").to(device)
    knobs = [float(k) for k in method.knobs()]
    with phase(phases, "score_s"):
        points, predictions = _score(method, models, dev_splits, knobs, device, seed)
    # Latency: BERT-base and every point in interleaved rounds (BERT-base's own row is the base itself).
    primary = dev_splits[task.dev_splits[0]]
    timed = [primary.example(i, device) for i in range(min(latency.examples, len(primary)))]
    timed_points = [] if method.is_reference else [(v, k) for v in models for k in knobs]
    reference = latency.reference
    base_forward = ((lambda ex: bert.hf_forward(base_model, ex)) if reference == "hf"
                    else (lambda ex: bert.predict_one(base_model, ex, 0.0)))
    forwards = [base_forward] + [
        (lambda m, k: (lambda ex: method.predict_one(m, ex, k)))(models[v], k) for v, k in timed_points]
    with lock(), phase(phases, "latency_s"):
        base, *lats = measure_interleaved(forwards, timed, warmup=latency.warmup, repeats=latency.repeats,
                                          device=device)
    log.info("BERT-base latency: %.3f ms (spread %.1f%% over %d repeats)", base.median_ms, 100 * base.spread,
             len(base.repeats_ms))
    timings = {pt: (lat, *paired_speedup(base, lat)) for pt, lat in zip(timed_points, lats)}
    for (v, k), (lat, speedup, speedup_spread) in timings.items():
        log.info("%s %s %s=%g: %.3f ms (spread %.1f%%), latency speed-up %.2f (spread %.1f%%)", method.name, v,
                 method.knob_name, k, lat.median_ms, 100 * lat.spread, speedup, 100 * speedup_spread)
    for r in points:
        lat, speedup, speedup_spread = timings.get((r["variant"], r["knob"]), (base, 1.0, 0.0))  # BERT-base: itself
        r.update({"latency_ms": lat.median_ms, "latency_spread": lat.spread, "base_latency_ms": base.median_ms,
                  "base_latency_spread": base.spread, "latency_speedup": speedup,
                  "latency_speedup_spread": speedup_spread, "latency_reference": reference,
                  "latency_examples": len(timed), "threads": lat.threads})
    return points, predictions


def _score(method: Method, models: dict, dev_splits: dict[str, EncodedSplit], knobs: list[float], device: str,
           seed: int) -> tuple[list[dict], list[dict]]:
    """Sweep rows (without latency) and per-example prediction rows of every variant x knob x split."""
    task = method.task
    points: list[dict] = []
    predictions: list[dict] = []
    for variant, model in models.items():
        n_ref = method.reference_layers(model)
        for split_name, split in dev_splits.items():
            for knob, (preds, executed) in zip(knobs, predict_split(method, model, split, knobs, device)):
                metrics = glue_metrics(task.metric, preds, split.labels)
                mean_layers = sum(len(e) for e in executed) / len(executed)
                points.append({"task": task.name, "method": method.name, "display_name": method.display_name,
                               "seed": seed, "variant": variant, "knob_name": method.knob_name, "knob": knob,
                               "split": split_name, "score": metrics["score"],
                               "metrics": ";".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())),
                               "mean_layers": mean_layers, "n_layers": n_ref,
                               "layer_speedup": n_ref / mean_layers if mean_layers else float("inf"),
                               "n_examples": len(split)})
                predictions += [{"variant": variant, "knob": knob, "split": split_name, "idx": i,
                                 "label": split.labels[i], "pred": p, "n_executed": len(e),
                                 "executed": " ".join(str(j + 1) for j in e)}
                                for i, (p, e) in enumerate(zip(preds, executed))]
    return points, predictions
