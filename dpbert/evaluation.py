"""Sweep one trained method over its variants and knob values on the dev set(s), at batch size 1.

For each (variant, knob) point: a full pass over every dev split for the score and the executed
layers of each example, then the batch-1 latency on a fixed list of dev examples, with BERT-base's
latency measured in the same process before and after (the denominator of the speed-up).
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from pathlib import Path


from dpbert.encoding import EncodedSplit
from dpbert.latency import Latency, measure
from dpbert.metrics import glue_metrics
from dpbert.registry import Method, get_method

log = logging.getLogger(__name__)


@dataclass
class LatencySettings:
    examples: int = 100
    warmup: int = 10
    repeats: int = 3


def predict_split(method: Method, model, split: EncodedSplit, knob: float, device: str):
    """Batch-1 predictions and executed layers for every example of a split."""
    preds, executed = [], []
    for i in range(len(split)):
        result = method.predict_one(model, split.example(i, device), knob)
        out = result.output.float().cpu()
        preds.append(out.view(-1)[0].item() if method.task.is_regression else int(out.argmax().item()))
        executed.append(result.executed)
    return preds, executed


def pooled(a: Latency, b: Latency) -> Latency:
    """BERT-base timed before and after the method's points: one latency from all repeats."""
    reps = a.repeats_ms + b.repeats_ms
    med = statistics.median(reps)
    return Latency(med, (max(reps) - min(reps)) / med, reps, a.threads, a.device)


def evaluate_sweep(
    method: Method,
    model_dir: Path,
    base_dir: Path,
    dev_splits: dict[str, EncodedSplit],
    latency: LatencySettings,
    device: str,
    seed: int,
) -> tuple[list[dict], list[dict]]:
    """Return (sweep rows, per-example prediction rows) for every variant x knob x dev split."""
    task = method.task
    bert = get_method("bert")(None, task)
    base_model = bert.load(Path(base_dir) / "main").to(device)
    primary = dev_splits[task.dev_splits[0]]
    timed = [primary.example(i, device) for i in range(min(latency.examples, len(primary)))]

    def time_base() -> Latency:
        return measure(lambda ex: bert.predict_one(base_model, ex, 0.0), timed,
                       warmup=latency.warmup, repeats=latency.repeats, device=device)

    base_before = time_base()
    log.info("BERT-base latency before the sweep: %.3f ms (spread %.1f%%)", base_before.median_ms, 100 * base_before.spread)
    points: list[dict] = []
    predictions: list[dict] = []
    for variant in method.variants():
        model = method.load(Path(model_dir) / variant).to(device)
        n_ref = method.reference_layers(model)
        for knob in method.knobs():
            row_base = {"task": task.name, "method": method.name, "display_name": method.display_name,
                        "seed": seed, "variant": variant, "knob_name": method.knob_name, "knob": float(knob)}
            split_rows = []
            for split_name, split in dev_splits.items():
                preds, executed = predict_split(method, model, split, knob, device)
                metrics = glue_metrics(task.metric, preds, split.labels)
                mean_layers = sum(len(e) for e in executed) / len(executed)
                split_rows.append({**row_base, "split": split_name, "score": metrics["score"],
                                   "metrics": ";".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())),
                                   "mean_layers": mean_layers, "n_layers": n_ref,
                                   "layer_speedup": n_ref / mean_layers if mean_layers else float("inf"),
                                   "n_examples": len(split)})
                predictions += [{"variant": variant, "knob": float(knob), "split": split_name, "idx": i,
                                 "label": split.labels[i], "pred": p, "n_executed": len(e),
                                 "executed": " ".join(str(j + 1) for j in e)}
                                for i, (p, e) in enumerate(zip(preds, executed))]
            if method.timed_with_hf_forward:
                lat = None  # the reference itself: its latency is BERT-base's, speed-up exactly 1
            else:
                lat = measure(lambda ex: method.predict_one(model, ex, knob), timed,
                              warmup=latency.warmup, repeats=latency.repeats, device=device)
                log.info("%s %s %s=%g: %.3f ms, layer speed-up %.2f", method.name, variant, method.knob_name,
                         knob, lat.median_ms, split_rows[0]["layer_speedup"])
            for r in split_rows:
                r["_latency"] = lat
            points += split_rows
    base_after = time_base()
    base = pooled(base_before, base_after)
    log.info("BERT-base latency: %.3f ms (spread %.1f%% over %d repeats)", base.median_ms, 100 * base.spread, len(base.repeats_ms))
    for r in points:
        lat = r.pop("_latency") or base
        r.update({"latency_ms": lat.median_ms, "latency_spread": lat.spread, "base_latency_ms": base.median_ms,
                  "base_latency_spread": base.spread, "latency_speedup": base.median_ms / lat.median_ms,
                  "latency_examples": len(timed), "threads": lat.threads})
    return points, predictions
