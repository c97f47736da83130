"""Serving throughput: each Table 1 operating point served in padded batches, against BERT-base.

The sweep times every point at batch size 1 (dpbert.run.latency). A server batches its requests, and an
adaptive method's rows then leave the batch at different layers: the layers a row skips are only saved if
the method runs the rows that do take a layer together (``Method.predict_batch``), and a batch whose rows
mostly stop early still pays its slowest row's layers. Here every method's point (the (variant, knob) the
cross-fitted selection chose, ``selected_points.csv``) serves the first ``serving.examples`` examples of
the task's primary dev split at each of ``serving.batch_sizes``, in arrival order (the split's order) and
sorted by length (``dpbert.run.batching.batches_of``), every padded batch built before timing.

BERT-base (the ``latency.reference`` forward: its ``predict_batch``, or the Hugging Face forward) and every
point of a task are timed in the same interleaved rounds (``measure_interleaved``: warm-up, ``repeats``
rounds, batch by batch with the order rotated, the device synchronised around each call, threads fixed);
the throughput speed-up is the median over rounds of the round's ratio (``paired_speedup``). Its
``layer_speedup`` is N / the mean executed layers of the rows served, and ``survival`` =
throughput_speedup / layer_speedup: the share of the layer saving that survives batching (1.0: all of
it). What explains a low survival is recorded next to it: the mean rows per layer call, layer by layer
(a method that runs its rows one at a time shows 1.0 everywhere; one that batches shows the rows still in
the batch at that layer), BERT-base's own mean rows per call, the share of an untimed pass's time spent inside the layer calls
(``layer_time_share``; the rest: embeddings, decisions, heads, gathering sub-batches), and the agreement of the batched
predictions with batch size 1 (``dpbert.run.batching.agreement``). ``serving.exact`` (default false) is
``predict_batch``'s mode for every forward and the agreement (column ``exact``): false runs each decision
and head once per layer on the batch, true on each row alone (docs/methods.md, "Serving batches").
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd

from dpbert.run.config_check import ConfigError

log = logging.getLogger(__name__)

ORDERS = ("arrival", "length")
"""Batch orders: the split's own order (requests as they arrive), or sorted by input length first."""

INPUTS = ("input_ids", "token_type_ids", "attention_mask")
"""What a served batch holds (``EncodedSplit.batch`` without the labels)."""

BOTH_FOLDS = "both folds"
"""``chosen_on`` of a point both folds of the cross-fitted selection chose."""


@dataclass
class ServingSettings:
    """The config's ``serving`` section (defaults: the schema's)."""

    batch_sizes: tuple[int, ...] = (1, 8, 32, 64)
    orders: tuple[str, ...] = ORDERS
    tasks: tuple[str, ...] = ()  # empty: the profile's first task
    examples: int = 256  # the first ones of the primary dev split
    warmup: int = 1  # untimed batches per forward before the rounds
    repeats: int = 3  # timed rounds; the speed-up is the median of the rounds' ratios
    exact: bool = False  # predict_batch's mode: False, decisions and heads once per layer on the batch

    @classmethod
    def from_config(cls, serving: Mapping[str, Any] | None) -> ServingSettings:
        serving = dict(serving or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(serving) - known)
        if unknown:
            raise ConfigError(f"serving.{unknown[0]} is not a serving setting; the keys are {', '.join(sorted(known))}.")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in serving.items()}
        settings = cls(**values)
        bad = [o for o in settings.orders if o not in ORDERS]
        if bad:
            raise ConfigError(f"serving.orders has '{bad[0]}', but a batch order is one of {', '.join(ORDERS)}; "
                              "fix the config entry.")
        if not settings.batch_sizes or min(settings.batch_sizes) < 1:
            raise ConfigError(f"serving.batch_sizes is {list(settings.batch_sizes)}, but it needs at least one "
                              "batch size, each 1 or more; fix the config entry.")
        return settings


def serving_tasks(serving: Mapping[str, Any] | None, tasks: Sequence[str]) -> list[str]:
    """The tasks the serving benchmark runs: ``serving.tasks``, or the profile's first task when it is
    empty; a task the profile does not run is refused (it has no models to serve)."""
    named = list((serving or {}).get("tasks") or [])
    if not named:
        return list(tasks[:1])
    unknown = [t for t in named if t not in tasks]
    if unknown:
        raise ConfigError(f"serving.tasks names {', '.join(unknown)}, which the profile does not run (tasks: "
                          f"{', '.join(tasks)}), so there is no model to serve; drop it from serving.tasks or "
                          "add it to tasks.")
    return named


@dataclass(frozen=True)
class OperatingPoint:
    """One Table 1 row's point on one task, as selected_points.csv records it."""

    task: str
    row: str
    method: str
    display_name: str
    variant: str
    knob_name: str
    knob: float
    chosen_on: str  # BOTH_FOLDS, or the fold that chose it when the two folds chose different points

    @property
    def key(self) -> tuple[str, str, float]:
        """What is served: the same (method, variant, knob) under two rows is timed once."""
        return self.method, self.variant, self.knob


def operating_points(selected: pd.DataFrame, task: str, split: str, *, skip: Sequence[str] = ("bert",)
                     ) -> list[OperatingPoint]:
    """Every Table 1 row's point on ``task`` (its ``split`` lines), in the file's order. A row whose two
    folds chose the same (variant, knob) gives one point (``chosen_on`` "both folds"); one whose folds
    differ gives each fold's, labelled with the fold that chose it. Rows without a point (none in the
    window) and the ``skip`` methods (BERT-base, the denominator) give none."""
    need = {"task", "row", "method", "display_name", "split", "chosen_on", "variant", "knob_name", "knob"}
    missing = sorted(need - set(selected.columns))
    if missing:
        raise ValueError(f"selected_points.csv lacks column(s) {', '.join(missing)}: it is not a table1 rule's "
                         "output of this version; rerun the table1 rule.")
    lines = selected[(selected["task"] == task) & (selected["split"] == split) & selected["variant"].notna()
                     & ~selected["method"].isin(list(skip))]
    points: list[OperatingPoint] = []
    for row, group in lines.groupby("row", sort=False):
        chosen = group.drop_duplicates(["variant", "knob"])
        for line in chosen.itertuples(index=False):
            points.append(OperatingPoint(
                task=task, row=str(row), method=str(line.method), display_name=str(line.display_name),
                variant=str(line.variant), knob_name=str(line.knob_name), knob=float(line.knob),
                chosen_on=BOTH_FOLDS if len(chosen) == 1 else str(line.chosen_on)))
    return points


# ----------------------------------------------------------------------------------------- the maths


def examples_per_s(n_examples: int, ms_per_batch: float, n_batches: int) -> float:
    """Throughput of one pass over ``n_examples`` in ``n_batches`` batches of ``ms_per_batch`` on average."""
    seconds = ms_per_batch * n_batches / 1000.0
    return n_examples / seconds if seconds > 0 else math.inf


def layer_speedup(n_layers: int, executed: Sequence[Sequence[int]]) -> float:
    """N / the mean number of layers the served rows executed (rows that ran no layer count 0)."""
    if not executed:
        raise ValueError("layer_speedup of no rows")
    mean = statistics.fmean(len(e) for e in executed)
    return math.inf if mean == 0 else n_layers / mean


def survival(throughput_speedup: float, layer_speedup_: float) -> float:
    """The share of the layer saving that survives batching: throughput speed-up / layer speed-up."""
    return throughput_speedup / layer_speedup_


def rows_per_call(calls: Mapping[int, Sequence[int]], layer: int | None = None) -> float:
    """Mean rows per layer call (the sub-batch a layer ran on): of ``layer`` (0-based), or of every call.
    NaN when that layer (or any) never ran."""
    sizes = calls.get(layer, []) if layer is not None else [s for v in calls.values() for s in v]
    return statistics.fmean(sizes) if sizes else math.nan


def format_rows_per_layer(calls: Mapping[int, Sequence[int]], n_layers: int) -> str:
    """Compact per-layer mean rows per call, 1-based: "1:32 2:32 3:7.5 4:-" ("-": the layer never ran)."""
    parts = []
    for i in range(n_layers):
        mean = rows_per_call(calls, i)
        parts.append(f"{i + 1}:{'-' if math.isnan(mean) else f'{mean:.3g}'}")
    return " ".join(parts)


@contextmanager
def layer_rows(model, seconds: list[float] | None = None) -> Iterator[dict[int, list[int]]]:
    """Record the rows of every layer call of ``model`` (a MethodModel: every layer runs through
    ``model.engine.layer``) while the block runs: {0-based layer: [rows of each call]}; with ``seconds``
    (a one-item list), add the wall time spent inside the layer calls to ``seconds[0]`` (on a GPU each call
    synchronised). A model without an engine records nothing."""
    calls: dict[int, list[int]] = {}
    engine = getattr(model, "engine", None)
    if engine is None:
        yield calls
        return
    original = engine.layer

    def counted(i, hidden, mask):
        calls.setdefault(int(i), []).append(int(hidden.shape[0]))
        if seconds is None:
            return original(i, hidden, mask)
        start = time.perf_counter()
        out = original(i, hidden, mask)
        _sync(out)
        seconds[0] += time.perf_counter() - start
        return out

    engine.layer = counted  # an instance attribute over the class's method; removed below
    try:
        yield calls
    finally:
        del engine.layer


def _sync(tensor) -> None:
    """Wait for a GPU tensor's kernels (timing a CUDA call without it measures the launch only)."""
    if getattr(tensor, "is_cuda", False):
        import torch

        torch.cuda.synchronize(tensor.device)


def layer_time_share(in_layers_s: float, total_s: float) -> float:
    """The share of a pass's time spent inside its layer calls; the rest is the embeddings, the decisions
    (off-ramps, planners, halting units), the heads and the gathering / trimming of sub-batches. NaN for
    an empty pass."""
    return in_layers_s / total_s if total_s > 0 else math.nan


# ----------------------------------------------------------------------------------------- the bench


class ReusedPasses:
    """``method`` as ``dpbert.run.batching.agreement`` sees it: ``predict_batch`` answers a batch the
    benchmark's untimed pass already served (same rows, same knob) with that pass's predictions, and
    ``predict_one`` runs each example once per knob for the whole benchmark. The
    comparison is the same; what it costs is one batch-1 pass per example and point, not one per batch
    size and order."""

    def __init__(self, method):
        self._method = method
        self._batches: dict[tuple, list] = {}
        self._alone: dict[tuple, Any] = {}

    def __getattr__(self, name):
        return getattr(self._method, name)

    @staticmethod
    def _key(tensors, knob: float, exact: bool = False) -> tuple:
        return (float(knob), bool(exact)) + tuple((tuple(t.shape), t.cpu().numpy().tobytes()) for t in tensors)

    def forget_batches(self) -> None:
        """Drop the served batches (a new batch size or order serves its own, counted afresh)."""
        self._batches.clear()

    def predict_batch(self, model, batch, knob: float, exact: bool = False):
        key = self._key((batch["input_ids"], batch["attention_mask"]), knob, exact)
        if key not in self._batches:
            self._batches[key] = self._method.predict_batch(model, batch, knob, exact=exact)
        return self._batches[key]

    def predict_one(self, model, example, knob: float):
        key = self._key((example["input_ids"],), knob)
        if key not in self._alone:
            self._alone[key] = self._method.predict_one(model, example, knob)
        return self._alone[key]


@dataclass
class Served:
    """A forward to time and what it serves: a method's model at one knob, or BERT-base."""

    name: str
    method: Any  # a Method
    model: Any
    knob: float
    n_layers: int
    exact: bool = False  # predict_batch's mode (serving.exact)

    def forward(self, batch):
        return self.method.predict_batch(self.model, batch, self.knob, exact=self.exact)


def bench_task(
    *, task: str, points: Sequence[OperatingPoint], served: Mapping[tuple[str, str, float], Served], base: Served,
    base_forward: Callable, split, settings: ServingSettings, device: str, precision: str = "fp32",
    lock: Callable[[], AbstractContextManager] = nullcontext,
) -> list[dict]:
    """Serve every point of one task and BERT-base at every batch size and order; one row per point,
    batch size and order (module docstring). ``served``: each point's ``Served`` by ``OperatingPoint.key``.
    ``precision`` (``latency.precision``): the timed rounds, the untimed pass and the agreement all run in it."""
    import torch

    from dpbert.model.precision import autocast
    from dpbert.run.batching import agreement, batches_of
    from dpbert.run.latency import measure_interleaved, paired_speedup

    n = min(settings.examples, len(split))
    indices = list(range(n))
    keys = list(dict.fromkeys(p.key for p in points))
    reused = {k: ReusedPasses(served[k].method) for k in keys}
    spent = {"untimed pass": 0.0, "timed rounds": 0.0, "agreement": 0.0}
    rows = []
    for order in settings.orders:
        for batch_size in settings.batch_sizes:
            groups = batches_of(split, indices, batch_size, sort_by_length=order == "length")
            batches = [{k: v for k, v in split.batch(idx, device).items() if k in INPUTS} for idx in groups]
            diag = {}  # untimed: what each forward executes, and its rows per layer call
            start = time.perf_counter()
            with torch.inference_mode(), autocast(precision, device):  # the timed forwards' arithmetic
                in_layers, begun = [0.0], time.perf_counter()
                with layer_rows(base.model, in_layers) as calls:
                    predictions = [p for b in batches for p in base.forward(b)]
                    _sync(predictions[-1].output)
                diag[None] = ([p.executed for p in predictions], calls,
                              layer_time_share(in_layers[0], time.perf_counter() - begun))
                for key in keys:
                    reused[key].forget_batches()
                    in_layers, begun = [0.0], time.perf_counter()
                    with layer_rows(served[key].model, in_layers) as calls:
                        predictions = [p for b in batches
                                       for p in reused[key].predict_batch(served[key].model, b, key[2],
                                                                          exact=served[key].exact)]
                        _sync(predictions[-1].output)
                    diag[key] = ([p.executed for p in predictions], calls,
                                 layer_time_share(in_layers[0], time.perf_counter() - begun))
            spent["untimed pass"] += time.perf_counter() - start
            forwards = [base_forward] + [served[k].forward for k in keys]
            start = time.perf_counter()
            with lock():
                base_lat, *lats = measure_interleaved(forwards, batches, warmup=settings.warmup,
                                                      repeats=settings.repeats, device=device, precision=precision)
            spent["timed rounds"] += time.perf_counter() - start
            base_eps = examples_per_s(n, base_lat.median_ms, len(batches))
            by_key = dict(zip(keys, lats))
            start = time.perf_counter()
            with autocast(precision, device):  # batch size 1 in the arithmetic the batches ran in
                agree = {k: agreement(reused[k], served[k].model, split, indices, k[2], batch_size,
                                      sort_by_length=order == "length", exact=served[k].exact, device=device)
                         for k in keys}
            spent["agreement"] += time.perf_counter() - start
            for p in points:
                lat, s = by_key[p.key], served[p.key]
                speedup, speedup_spread = paired_speedup(base_lat, lat)
                executed, calls, share = diag[p.key]
                lsp = layer_speedup(s.n_layers, executed)
                a = agree[p.key]
                rows.append({
                    "task": task, "row": p.row, "method": p.method, "display_name": p.display_name,
                    "variant": p.variant, "knob_name": p.knob_name, "knob": p.knob, "chosen_on": p.chosen_on,
                    "batch_size": batch_size, "order": order, "exact": s.exact, "n_examples": n,
                    "n_batches": len(batches),
                    "examples_per_s": examples_per_s(n, lat.median_ms, len(batches)),
                    "base_examples_per_s": base_eps, "throughput_speedup": speedup,
                    "throughput_speedup_spread": speedup_spread, "layer_speedup": lsp,
                    "survival": survival(speedup, lsp),
                    "mean_layers": statistics.fmean(len(e) for e in executed),
                    "rows_per_layer_call": format_rows_per_layer(calls, s.n_layers),
                    "mean_rows_per_call": rows_per_call(calls),
                    "base_mean_rows_per_call": rows_per_call(diag[None][1]),
                    "layer_time_share": share, "base_layer_time_share": diag[None][2],
                    "prediction_differences": a.prediction_differences, "layer_differences": a.layer_differences,
                    "agreement_n": a.n, "max_abs_output_diff": a.max_abs_output_diff,
                    "threads": lat.threads, "repeats": settings.repeats,
                })
    log.info("%s: %s", task, ", ".join(f"{k} {v:.1f} s" for k, v in spent.items()))
    return rows


def run_serving(
    *, tasks: Sequence[str], selected_csv: str | Path, data_paths: Mapping[str, str | Path],
    model_dirs: Mapping[tuple[str, str], str | Path], method_params: Mapping[str, dict], serving: Mapping | None,
    latency: Mapping[str, Any], profile: str, seed: int, out_csv: str | Path,
    timing_lock_path: str | Path | None = None,
) -> pd.DataFrame:
    """The serving benchmark of ``tasks`` from a finished run's records, written to ``out_csv``.

    ``model_dirs``: (task, method) -> the folder of the method's variants for ``seed`` (BERT-base's for a
    method that trains nothing); (task, "bert") is BERT-base's. ``latency``: the config's section (device,
    threads, precision, reference); ``serving``: its ``serving`` section."""
    import torch

    from dpbert.data.tasks import get_task
    from dpbert.methods.registry import build_method, get_method
    from dpbert.run.latency import describe_device, resolve_device, timing_lock
    from dpbert.run.prepare import load_prepared
    from dpbert.run.runtime import atomic_write_df

    settings = ServingSettings.from_config(serving)
    device = resolve_device(str(latency.get("device", "cpu")))
    torch.set_num_threads(int(latency.get("threads", 1)))
    reference = str(latency.get("reference", "engine"))
    selected = pd.read_csv(selected_csv)
    rows: list[dict] = []
    for task in tasks:
        spec = get_task(task)
        split_name = spec.dev_splits[0]
        split = load_prepared(data_paths[task]).splits[split_name]
        points = operating_points(selected, spec.name, split_name)
        if not points:
            log.warning("%s: selected_points.csv has no operating point on %s: nothing served", task, split_name)
            continue
        bert = get_method("bert")(None, spec)
        base_model = bert.load(Path(model_dirs[(task, "bert")]) / "main").to(device)
        base = Served("bert", bert, base_model, 0.0, bert.reference_layers(base_model), settings.exact)
        # latency.reference: BERT-base through the engine (its predict_batch) or its plain Hugging Face forward
        base_forward = ((lambda b, m=base_model: m.classifier(**b).logits) if reference == "hf"
                        else base.forward)
        served: dict[tuple[str, str, float], Served] = {}
        models: dict[tuple[str, str], Any] = {}
        for p in points:
            if p.key in served:
                continue
            if (task, p.method) not in model_dirs:
                raise ValueError(f"selected_points.csv has a {p.display_name} point on {task}, but no model folder "
                                 f"of method '{p.method}' was given; is the method in the profile's methods?")
            method = build_method(p.method, method_params.get(p.method, {}), spec)
            if (p.method, p.variant) not in models:
                models[(p.method, p.variant)] = method.load(
                    method.variant_dir(Path(model_dirs[(task, p.method)]), p.variant)).to(device)
            model = models[(p.method, p.variant)]
            served[p.key] = Served(p.row, method, model, p.knob, method.reference_layers(model), settings.exact)
        log.info("serving %s (%s, %d examples): %d points x batch sizes %s x orders %s on %s", task, split_name,
                 min(settings.examples, len(split)), len(served), list(settings.batch_sizes), list(settings.orders),
                 device)
        task_rows = bench_task(task=task, points=points, served=served, base=base, base_forward=base_forward,
                               split=split, settings=settings, device=device,
                               precision=str(latency.get("precision", "fp32")),
                               lock=lambda: timing_lock(timing_lock_path))
        for r in task_rows:
            r.update({"split": split_name, "seed": seed, "reference": reference, "profile": profile,
                      "device": describe_device(device)})
        rows += task_rows
    df = pd.DataFrame(rows)
    atomic_write_df(df, out_csv)
    log.info("wrote %d serving rows to %s", len(df), out_csv)
    return df
