"""Sweep one trained method over its variants and knob values on the dev set(s), at batch size 1.

Scores: every example of every dev split at batch size 1, all knob values of a variant (its grid,
``Method.knobs_of``: ``knobs()`` for most methods, BERT-kL's k-layer model its own k) read off
``Method.predict_knobs`` (one pass per example where the knob only moves the exit; a method with
``Method.trace`` has its passes kept for the whole job, window search included). Latency: a fixed
list of dev examples, every (variant, knob) point timed with ``predict_one`` in rounds interleaved
example by example with BERT-base (``latency.reference``: through the engine, or its plain Hugging Face forward), the
denominator of the speed-up, in the same process;
the latency speed-up is the median over rounds of the round's ratio (``paired_speedup``).

Window search (``selection`` given, ``Method.can_refine``): after the grid, ``dpbert.methods.refine.search``
scores new knob values of each variant on the primary dev split, round by round, until
``selection.window`` holds ``selection.min_points_in_window`` points of distinct layer speed-up
(the exact one, whatever ``selection.speedup`` says) or the knob cannot put more there. The new
points whose layer speed-up is inside the window are kept: scored on every dev split, timed and
written like grid points (``refined`` True); those outside are dropped, and so is one that is the
same operating point on the primary split (every prediction and executed path) as a grid point or
a smaller refined knob. Every row records its variant's ``refine_status``; a method that cannot
refine keeps exactly the grid's rows.

Curve beyond the window (``selection.min_points_in_curve`` > 0): Figure 3 draws each method's
accuracy-speed curve, which a grid that stops inside the window (DPBERT's threshold grid is [0.5])
would show as a point or two. So the same search then runs once more for the stretch of speed-ups
just above the window, (window max, ``selection.curve_up_to``], seeded with every point the window
search scored (its points outside the window often suffice), until it holds ``min_points_in_curve``
points of distinct speed-up. Of the new points there, ``min_points_in_curve`` spread from the slowest
to the fastest are kept like refined ones (scored on every split, timed, ``refined`` True); selection
never reads them, being outside the window (a point the curve search finds inside the window is kept
as any refined point is).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from dpbert.data.encoding import EncodedSplit
from dpbert.methods.interface import SCORE_BATCH, Method
from dpbert.methods.refine import (
    MAX_NEW_ONE_PASS,
    MAX_NEW_PER_KNOB,
    SPEEDUP_TOL,
    KnobSpace,
    in_window,
    knob_tolerance,
    search,
)
from dpbert.methods.registry import get_method
from dpbert.run.latency import measure_interleaved, paired_speedup
from dpbert.run.metrics import glue_metrics
from dpbert.run.runtime import phase

log = logging.getLogger(__name__)


@dataclass
class LatencySettings:
    """The timing protocol of a sweep (config section ``latency``; the defaults are the schema's)."""

    examples: int = 100  # timed examples of the primary dev split, per pass
    warmup: int = 10
    repeats: int = 3
    reference: str = "engine"  # BERT-base timed through: engine (the methods' code path) | hf (its HF forward)
    precision: str = "fp32"  # the timed forwards' autocast: fp32 (none) | bf16 | fp16 (dpbert.model.precision)

    @classmethod
    def from_config(cls, latency: dict) -> LatencySettings:
        """The settings of a config's ``latency`` section (its other keys, device and threads, are not timing)."""
        return cls(**{f.name: latency[f.name] for f in fields(cls) if f.name in latency})

    def forwards_per_point(self, n_primary: int) -> int:
        """Batch-1 forwards timing one point costs: the warm-up, then ``repeats`` passes over the timed examples."""
        return self.warmup + self.repeats * min(self.examples, n_primary)


def predict_split(method: Method, model, split: EncodedSplit, knobs: Sequence[float], device: str,
                  traces: list | None = None):
    """Batch-1 predictions and executed layers of every example of a split: one (preds, executed) per knob.

    ``traces``: a list this split's traces are kept in (``Method.trace``) for a method that has them,
    filled on the first call and read by every later one, so a split costs one backbone pass per
    example for the whole job; the examples are traced in unpadded equal-length batches
    (``Method.trace_many``, ``SCORE_BATCH``), which on CPU compute every example bit for bit as batch
    size 1 does. None, or a method without traces: ``predict_knobs``, a pass per example and call."""
    preds: list[list] = [[] for _ in knobs]
    executed: list[list[list[int]]] = [[] for _ in knobs]
    if traces is not None and method.traces_passes():
        missing = list(range(len(traces), len(split)))
        traced: dict[int, Any] = {}
        for chunk in split.equal_length_chunks(missing, SCORE_BATCH):
            traced.update(zip(chunk, method.trace_many(model, [split.example(i, device) for i in chunk])))
        traces.extend(traced[i] for i in missing)
        per_example = method.predict_traced_many(traces[: len(split)], knobs)
    else:
        per_example = (method.predict_knobs(model, split.example(i, device), knobs) for i in range(len(split)))
    for results in per_example:
        for k, result in enumerate(results):
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
    selection: dict[str, Any] | None = None,
    traces: dict[tuple[str, str], list] | None = None,
) -> tuple[list[dict], list[dict]]:
    """Return (sweep rows, per-example prediction rows) for every variant x knob x dev split.

    ``lock`` is held while timing (one timing job at a time on a machine); ``phases`` gets the
    seconds spent loading, scoring (the window search included) and timing. ``selection`` (the
    config's section: ``window``, ``min_points_in_window``) turns on the window search of a refinable
    knob (module docstring); None scores the grid alone. ``traces``: a dict that receives, per (variant,
    split), the examples' traces (``Method.trace``) for a method that has them; scoring reads every knob
    off them, and the caller may reuse them (the health diagnostics read the exit answers)."""
    phases = {} if phases is None else phases
    traces = {} if traces is None else traces
    task = method.task
    bert = get_method("bert")(None, task)
    with phase(phases, "load_s"):
        models = {v: method.load(method.variant_dir(Path(model_dir), v)).to(device)
                  for v in method.trained_variants(Path(model_dir))}
        # BERT-base's own job times the model it just loaded; every other job loads the stage-1 folder
        base_model = models["main"] if method.is_reference else bert.load(Path(base_dir) / "main").to(device)
    knobs = knobs_by_variant(method, models)
    with phase(phases, "score_s"):
        points, predictions = _score(method, models, dev_splits, knobs, device, seed, traces)
        points, predictions, refined, statuses = _refine(method, models, dev_splits, knobs, points, predictions,
                                                         device, seed, selection, traces)
    trained_search = method.training_search_status(Path(model_dir))
    if trained_search is not None:
        statuses = {v: f"{s}; training search: {trained_search}" for v, s in statuses.items()}
    # Latency: BERT-base and every point in interleaved rounds (BERT-base's own row is the base itself).
    primary = dev_splits[task.dev_splits[0]]
    timed = [primary.example(i, device) for i in range(min(latency.examples, len(primary)))]
    timed_points = [] if method.is_reference else [(v, k) for v in models for k in knobs[v] + refined[v]]
    reference = latency.reference
    base_forward = ((lambda ex: bert.hf_forward(base_model, ex)) if reference == "hf"
                    else (lambda ex: bert.predict_one(base_model, ex, 0.0)))
    forwards = [base_forward] + [
        (lambda m, k: (lambda ex: method.predict_one(m, ex, k)))(models[v], k) for v, k in timed_points]
    with lock(), phase(phases, "latency_s"):
        base, *lats = measure_interleaved(forwards, timed, warmup=latency.warmup, repeats=latency.repeats,
                                          device=device, precision=latency.precision)
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
                  "latency_precision": latency.precision,
                  "latency_examples": len(timed), "threads": lat.threads,
                  "refined": r["knob"] in refined[r["variant"]], "refine_status": statuses[r["variant"]]})
    return points, predictions


def knobs_by_variant(method: Method, variants) -> dict[str, list[float]]:
    """The grid of every variant: ``Method.knobs_of`` (``knobs()`` for a method whose variants share it)."""
    return {v: [float(k) for k in method.knobs_of(v)] for v in variants}


def _per_variant(knobs: Mapping[str, Sequence[float]] | Sequence[float], variants) -> dict[str, list[float]]:
    """``knobs`` by variant: a mapping as it is, one list for every variant."""
    if isinstance(knobs, Mapping):
        return {v: [float(k) for k in knobs[v]] for v in variants}
    return {v: [float(k) for k in knobs] for v in variants}


def _score(method: Method, models: dict, dev_splits: dict[str, EncodedSplit],
           knobs: Mapping[str, Sequence[float]] | Sequence[float], device: str,
           seed: int, traces: dict[tuple[str, str], list] | None = None) -> tuple[list[dict], list[dict]]:
    """Sweep rows (without latency) and per-example prediction rows of every variant x knob x split;
    ``knobs``: each variant's grid (``knobs_by_variant``), or one list for all (``traces``: see ``evaluate_sweep``)."""
    traces = {} if traces is None else traces
    grids = _per_variant(knobs, models)
    points: list[dict] = []
    predictions: list[dict] = []
    for variant, model in models.items():
        n_ref = method.reference_layers(model)
        for split_name, split in dev_splits.items():
            scored = predict_split(method, model, split, grids[variant], device,
                                   traces.setdefault((variant, split_name), []))
            for knob, (preds, executed) in zip(grids[variant], scored):
                point, rows = _rows(method, seed, variant, n_ref, split_name, split, knob, preds, executed)
                points.append(point)
                predictions += rows
    return points, predictions


def _rows(method: Method, seed: int, variant: str, n_ref: int, split_name: str, split: EncodedSplit, knob: float,
          preds: list, executed: list[list[int]]) -> tuple[dict, list[dict]]:
    """The sweep row (without latency) and the per-example prediction rows of one point on one split."""
    task = method.task
    metrics = glue_metrics(task.metric, preds, split.labels)
    mean_layers = sum(len(e) for e in executed) / len(executed)
    point = {"task": task.name, "method": method.name, "display_name": method.display_of(variant),
             "seed": seed, "variant": variant, "knob_name": method.knob_name, "knob": knob,
             "split": split_name, "score": metrics["score"],
             "metrics": ";".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())),
             "mean_layers": mean_layers, "n_layers": n_ref,
             "layer_speedup": n_ref / mean_layers if mean_layers else float("inf"),
             "n_examples": len(split)}
    rows = [{"variant": variant, "knob": knob, "split": split_name, "idx": i,
             "label": split.labels[i], "pred": p, "n_executed": len(e),
             "executed": " ".join(str(j + 1) for j in e)}
            for i, (p, e) in enumerate(zip(preds, executed))]
    return point, rows


def _fingerprint(prediction_rows: list[dict]) -> tuple:
    return tuple((p["pred"], p["executed"]) for p in prediction_rows)


def refine_space(method: Method, grid: Sequence[float]) -> KnobSpace:
    """The values the window search may give the method's knob."""
    bounds = None if method.knob_range is None else (float(method.knob_range[0]), float(method.knob_range[1]))
    return KnobSpace(knob_range=bounds, integer=method.knob_integer, tol=knob_tolerance(grid, bounds))


def curve_window(selection: dict[str, Any]) -> tuple[tuple[float, float], int] | None:
    """The stretch of speed-ups beyond the window that Figure 3's curve searches, (window max,
    ``curve_up_to``], and its ``min_points_in_curve``; None when that is 0 (or the stretch is empty).
    Absent keys: no curve (a direct caller's choice; a workflow's config carries the schema's default, 2)
    and ``curve_up_to`` twice the window's max."""
    n = int(selection.get("min_points_in_curve", 0))
    hi = float(selection["window"][1])
    up_to = float(selection.get("curve_up_to", 2 * hi))
    if n <= 0 or up_to <= hi + SPEEDUP_TOL:
        return None
    # the window's own bound is inside the window: start just above it
    return (hi + 2 * SPEEDUP_TOL, up_to), n


def spread(points: Sequence[tuple[float, float]], n: int) -> list[float]:
    """The knobs of ``n`` of (knob, speed-up) ``points`` with distinct speed-ups, evenly spread over
    them from the slowest to the fastest (the smallest knob of a speed-up); all of them when fewer."""
    first: dict[float, float] = {}
    for k, s in sorted(points):
        first.setdefault(round(s, 9), k)
    ordered = [first[s] for s in sorted(first)]
    if len(ordered) <= n:
        return ordered
    if n == 1:
        return [ordered[-1]]
    return [ordered[round(j * (len(ordered) - 1) / (n - 1))] for j in range(n)]


def knobs_per_round(method: Method) -> int:
    """New knobs a search round may score: many where one pass per example reads every knob
    (``predict_knobs`` overridden), few where each knob costs a pass over the split."""
    return MAX_NEW_ONE_PASS if method.scores_knobs_in_one_pass() else MAX_NEW_PER_KNOB


def _refine(method: Method, models: dict, dev_splits: dict[str, EncodedSplit],
            knobs: Mapping[str, Sequence[float]] | Sequence[float],
            points: list[dict], predictions: list[dict], device: str, seed: int,
            selection: dict[str, Any] | None, traces: dict[tuple[str, str], list] | None = None) -> tuple[list[dict], list[dict], dict[str, list[float]], dict[str, str]]:
    """The window search of every variant (module docstring), each from its own grid (``knobs``: by
    variant, or one list for all). Returns the sweep rows and prediction rows with the kept refined
    points inserted after their (variant, split)'s grid points, the kept knobs per variant, and the
    search status per variant."""
    kept: dict[str, list[float]] = {v: [] for v in models}
    traces = {} if traces is None else traces
    if selection is None:
        return points, predictions, kept, {v: "off: no selection settings" for v in models}
    if not method.can_refine():
        why = f": {method.knob_name} is searched on {method.refinable_tasks} tasks only" if method.refinable else ""
        return points, predictions, kept, {v: f"not refinable{why}" for v in models}
    task = method.task
    window = (float(selection["window"][0]), float(selection["window"][1]))
    min_points = int(selection.get("min_points_in_window", 3))
    primary_name = task.dev_splits[0]
    primary = dev_splits[primary_name]
    grids = _per_variant(knobs, models)
    statuses: dict[str, str] = {}
    extra: dict[tuple[str, str], list[tuple[dict, list[dict]]]] = {}  # (variant, split) -> kept rows
    curve = curve_window(selection)
    stretch, n_curve = curve if curve is not None else (None, 0)
    for variant, model in models.items():
        n_ref = method.reference_layers(model)
        space = refine_space(method, grids[variant])
        scored: dict[float, tuple[dict, list[dict]]] = {}  # every new point (those kept: below)

        def score(new: list[float], model=model, n_ref=n_ref, variant=variant, scored=scored) -> list[float]:
            out = []
            scored_now = predict_split(method, model, primary, new, device, traces.setdefault((variant, primary_name), []))
            for knob, (preds, executed) in zip(new, scored_now):
                point, rows = _rows(method, seed, variant, n_ref, primary_name, primary, knob, preds, executed)
                scored[knob] = (point, rows)
                out.append(point["layer_speedup"])
            return out

        grid = {r["knob"]: r["layer_speedup"] for r in points if r["variant"] == variant and r["split"] == primary_name}
        result = search(grid, score, window, min_points, space, max_new=knobs_per_round(method))
        statuses[variant] = result.status
        if stretch is not None:
            more = search(result.points, score, stretch, n_curve, space, max_new=knobs_per_round(method))
            statuses[variant] += f"; curve to {stretch[1]:g}x: {more.status}"
        n_new = len(scored)
        # only points inside the window, and up to min_points_in_curve spread over the curve's stretch
        # beyond it, are kept (scored on every split and timed); the rest are dropped
        beyond = [] if stretch is None else spread(
            [(k, pt["layer_speedup"]) for k, (pt, _) in scored.items()
             if k not in grid and in_window(pt["layer_speedup"], stretch)], n_curve)
        for k in [k for k, (pt, _) in scored.items()
                  if not in_window(pt["layer_speedup"], window) and k not in beyond]:
            del scored[k]
        # kept: inside the window, and not the same operating point on the primary split (every prediction
        # and executed path equal) as a grid point or a smaller refined knob, which selection would prefer
        by_knob: dict[float, list[dict]] = {}
        for p in predictions:
            if p["variant"] == variant and p["split"] == primary_name:
                by_knob.setdefault(p["knob"], []).append(p)
        seen = {_fingerprint(rows) for rows in by_knob.values()}
        for k in sorted(k for k in scored if k not in grid):
            fingerprint = _fingerprint(scored[k][1])
            if fingerprint not in seen:
                seen.add(fingerprint)
                kept[variant].append(k)
        log.info("%s %s: window search of %s scored %d new values, kept %s: %s", method.name, variant,
                 method.knob_name, n_new, [f"{k:g}" for k in kept[variant]], statuses[variant])
        for split_name, split in dev_splits.items():
            if split_name == primary_name:
                extra[(variant, split_name)] = [scored[k] for k in kept[variant]]
            elif kept[variant]:
                extra[(variant, split_name)] = [
                    _rows(method, seed, variant, n_ref, split_name, split, k, preds, executed)
                    for k, (preds, executed) in zip(kept[variant], predict_split(
                        method, model, split, kept[variant], device, traces.setdefault((variant, split_name), [])))]
    new_points: list[dict] = []
    new_predictions: list[dict] = []
    for variant in models:
        for split_name in dev_splits:
            new_points += [r for r in points if r["variant"] == variant and r["split"] == split_name]
            new_predictions += [r for r in predictions if r["variant"] == variant and r["split"] == split_name]
            for point, rows in extra.get((variant, split_name), []):
                new_points.append(point)
                new_predictions += rows
    return new_points, new_predictions, kept, statuses
