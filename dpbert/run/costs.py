"""The cost model of a profile's jobs: exact work counts times per-example costs.

The counts are exact for the config: GLUE's split sizes (or the synthetic sizes), each method's
training passes (``Method.training_epochs``), its scoring passes (one per example and variant when
the method scores every knob off one pass, else one per knob) and its timing passes. Used by the
planner (dpbert.tools.plan) and by the DAG's per-job resources (dpbert.run.job_resources).

The per-example costs (``Costs``, ``profile_costs``) are a measurement stored by ``python -m
dpbert.tools.plan --measure --store`` in ``workflow/costs/<training.device>-<training.precision>.json``
(or the file ``resources.costs_file`` names) when it holds one of the profile's model shape, batch size,
maximum length, threads and precisions; else the config's typed ``resources.train_ms`` / ``forward_ms``,
marked as assumed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpbert.data.tasks import get_task
from dpbert.methods.interface import Method
from dpbert.methods.registry import build_method
from dpbert.run.config_check import ConfigError, backbone_depth
from dpbert.run.jobs import jobs as method_jobs
from dpbert.run.jobs import method_impl, training_dependencies
from dpbert.run.sweep import LatencySettings


@dataclass
class Job:
    name: str
    seconds: float
    deps: list[str] = field(default_factory=list)
    stage: str = ""
    train_passes: float = 0.0  # training example-passes
    forwards: float = 0.0  # batch-1 forwards (scoring, timing, test files)


BERT_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "intermediate_size": 3072, "num_attention_heads": 12,
             "vocab_size": 30522, "max_position_embeddings": 512}
MINILM = {"hidden_size": 384, "num_hidden_layers": 6, "intermediate_size": 1536, "num_attention_heads": 12,
          "vocab_size": 30522, "max_position_embeddings": 512}


def backbone_shape(model: dict[str, Any]) -> dict[str, int]:
    """BertConfig sizes of the profile's backbone (a hub model or a folder without config.json: BERT-base's)."""
    source = model.get("source", "small")
    if source == "small":
        shape = {**BERT_BASE, "vocab_size": 30522, **(model.get("small") or {})}  # vocab: BERT's, an upper bound
        return {k: int(shape[k]) for k in BERT_BASE}
    if source == "minilm":
        return dict(MINILM)
    if source == "local":
        config_json = Path(model.get("name", "")) / "config.json"
        if config_json.is_file():
            given = json.loads(config_json.read_text())
            return {k: int(given.get(k, v)) for k, v in BERT_BASE.items()}
    return dict(BERT_BASE)


COSTS_DIR = "workflow/costs"  # the measurement files, relative to the workflow root
STORE_COMMAND = "python -m dpbert.tools.plan --configfile <profile file> --measure --store"


@dataclass(frozen=True)
class Costs:
    """Seconds per full-length training example and per batch-1 forward, and where they come from."""

    train_s: float
    forward_s: float
    source: str  # a phrase for the plan: "measured on ... (file)", "assumed: ..."
    measured: bool = False


def measurement_key(config: dict[str, Any]) -> dict[str, Any]:
    """What a stored measurement must match to stand for a profile's jobs: the backbone's shape, the
    training batch size, the maximum length, the threads and precisions of training and timing."""
    training, latency = config["training"], config["latency"]
    return {"shape": backbone_shape(config["model"]), "batch_size": int(training["finetune"]["batch_size"]),
            "max_length": int(config["model"]["max_length"]), "train_threads": int(training.get("threads", 1)),
            "forward_threads": int(latency.get("threads", 1)),
            "train_precision": str(training.get("precision", "fp32")),
            "forward_precision": str(latency.get("precision", "fp32"))}


def costs_file(config: dict[str, Any], root: str | Path) -> Path:
    """The measurement file of a profile: ``resources.costs_file`` (relative to ``root``, the workflow
    root, or absolute), else ``workflow/costs/<training.device>-<training.precision>.json``."""
    given = config["resources"].get("costs_file")
    if given:
        path = Path(given)
        return path if path.is_absolute() else Path(root) / path
    device = str(config["training"].get("device", "cpu")).split(":")[0]
    return Path(root) / COSTS_DIR / f"{device}-{config['training'].get('precision', 'fp32')}.json"


def read_measurements(path: str | Path) -> list[dict[str, Any]]:
    """The measurements stored in ``path`` (none when it does not exist); a file that is not one is refused."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text())["measurements"]
        if not isinstance(entries, list) or not all(isinstance(e, dict) and "key" in e for e in entries):
            raise ValueError("`measurements` is not a list of entries with a `key`")
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path} is not a cost measurement file ({type(exc).__name__}: {exc}). Delete it and measure again "
            f"(`{STORE_COMMAND}`), or point resources.costs_file at another file.") from None
    return entries


def store_measurement(path: str | Path, entry: dict[str, Any]) -> None:
    """Add ``entry`` (with its ``key``) to the file, replacing a measurement of the same key."""
    path = Path(path)
    kept = [e for e in read_measurements(path) if e["key"] != entry["key"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"measurements": [*kept, entry]}, indent=2, sort_keys=True) + "\n"
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    tmp.replace(path)


def profile_costs(config: dict[str, Any], root: str | Path | None) -> Costs:
    """The profile's per-example costs: its stored measurement (``costs_file``) when one matches
    ``measurement_key``, else the typed ``resources.train_ms`` / ``forward_ms``, marked assumed.
    ``root`` None: no file is looked for (the typed costs)."""
    res = config["resources"]
    typed = (float(res["train_ms"]) / 1000, float(res["forward_ms"]) / 1000)
    if root is None and not res.get("costs_file"):
        return Costs(*typed, "assumed (resources.train_ms / forward_ms)")
    path = costs_file(config, root or ".")
    key = measurement_key(config)
    for entry in read_measurements(path):
        if entry["key"] == key:
            where = path.relative_to(root) if root and path.is_relative_to(root) else path
            return Costs(float(entry["train_ms"]) / 1000, float(entry["forward_ms"]) / 1000,
                         f"measured on {entry.get('device', 'an unnamed device')} ({where})", measured=True)
    return Costs(*typed, f"assumed (resources.train_ms / forward_ms; {path.name} holds no measurement of this "
                         f"profile's model, batch, length, threads and precisions: `{STORE_COMMAND}`)")


def split_sizes(task: str, data: dict[str, Any]) -> dict[str, int]:
    """Examples per split as the profile will load them (caps and synthetic sizes applied)."""
    spec = get_task(task)
    if data.get("source", "synthetic") == "synthetic":
        sizes = {"train": int(data.get("synthetic_train", 2000))}
        sizes.update({s: int(data.get("synthetic_dev", 400)) for s in spec.dev_splits})
        if data.get("with_test"):
            sizes.update({s: int(data.get("synthetic_dev", 400)) for s in spec.test_splits})
    else:
        sizes = spec.sizes
    if data.get("max_train"):
        sizes["train"] = min(sizes["train"], int(data["max_train"]))
    if data.get("max_dev"):
        sizes.update({s: min(sizes[s], int(data["max_dev"])) for s in spec.dev_splits})
    return sizes


def full_length_examples(examples: int, config: dict[str, Any]) -> float:
    """What an epoch over ``examples`` training examples costs, in examples of the full ``model.max_length``:
    all of them, or fewer under ``data.max_train_tokens`` (a step's cost grows with its tokens, and an epoch
    holds at most that many)."""
    cap = config["data"].get("max_train_tokens")
    return float(examples) if not cap else min(float(examples), int(cap) / int(config["model"]["max_length"]))


def model_depth(model: dict[str, Any]) -> int | None:
    """The configured backbone's layers (dpbert.run.config_check.backbone_depth); None: unknown."""
    try:
        return backbone_depth(model)[0]
    except ConfigError:  # a local folder that is no model: the config check says so, planning goes on
        return None


def method_passes(method: Method, sizes: dict[str, int], config: dict[str, Any],
                  depth: int | None = None) -> tuple[float, float]:
    """(training example-passes, batch-1 forwards) of one method on one task and seed: its training jobs, then
    its sweep's scoring and timing.
    ``depth``: the backbone's layers (``Method.backbone_depth``); None: read off ``config["model"]``."""
    task = method.task
    if method.backbone_depth is None:
        method.backbone_depth = depth if depth is not None else model_depth(config["model"])
    train = method.training_epochs(config["training"].get("finetune", {})) * full_length_examples(
        sizes["train"], config)
    one_pass = method.scores_knobs_in_one_pass()
    variants = method.variants()
    points = sum(len(method.knobs_of(v)) for v in variants)  # every variant's grid (Method.knobs_of)
    dev = sum(sizes[s] for s in task.dev_splits)
    scoring = dev * (len(variants) if one_pass else points)
    per_forward = LatencySettings.from_config(config["latency"]).forwards_per_point(sizes[task.dev_splits[0]])
    timed = 1 + (0 if method.is_reference else points)  # BERT-base + every point
    return train, scoring + timed * per_forward


def job_passes(config: dict[str, Any], task: str, method: str) -> tuple[float, float]:
    """(training example-passes, batch-1 forwards) of ``method`` on ``task``: all its training jobs, its sweep."""
    impl = build_method(method, config["methods"].get(method), get_task(task))
    return method_passes(impl, split_sizes(task, config["data"]), config, model_depth(config["model"]))


def plan_jobs(config: dict[str, Any], train_s: float, forward_s: float) -> list[Job]:
    """Every job of the profile's DAG with its estimated seconds and dependencies: per (task, method, seed) one
    training job per ``Method.training_jobs`` entry ("<task>/<method>/<seed>/<variant>": its share of the
    method's training, ``Method.job_training_epochs``), then the sweep job ("<task>/<method>/<seed>": scoring
    and timing); then the GLUE test files ("glue_test/<method>")."""
    jobs: list[Job] = []
    test_jobs: dict[str, Job] = {}
    plans: dict[tuple[str, str], tuple[dict[str, float], dict[str, list[str]], float]] = {}
    depth = model_depth(config["model"])
    finetune = config["training"].get("finetune", {})
    for task, name, seed in method_jobs(config):  # the DAG's own list (workflow/rules/common.smk)
        spec = get_task(task)
        sizes = split_sizes(task, config["data"])
        if (task, name) not in plans:
            impl = method_impl(config, task, name)
            _, forwards = method_passes(impl, sizes, config, depth)
            examples = full_length_examples(sizes["train"], config)
            plans[task, name] = (
                {v: impl.job_training_epochs(finetune, v) * examples for v in impl.training_jobs()},
                {v: training_dependencies(impl, v, config["training"]) for v in impl.training_jobs()},
                forwards,
            )
            if config["data"].get("with_test"):
                test = test_jobs.setdefault(name, Job(f"glue_test/{name}", 0.0, stage="GLUE test files"))
                n_test = sum(sizes.get(s, 0) for s in spec.test_splits)
                test.seconds += n_test * forward_s
                test.forwards += n_test
        trains, deps, forwards = plans[task, name]
        job = f"{task}/{name}/{seed}"
        stage1 = [] if name == "bert" else [f"{task}/bert/{seed}/main"]
        for variant, passes in trains.items():
            jobs.append(Job(f"{job}/{variant}", passes * train_s, stage1 + [f"{job}/{d}" for d in deps[variant]],
                            "stage 1 (BERT-base)" if name == "bert" else "training", passes, 0.0))
        jobs.append(Job(job, forwards * forward_s, [f"{job}/{v}" for v in trains] + stage1, "sweeps", 0.0, forwards))
    everything = [j.name for j in jobs if j.stage == "sweeps"]  # the test files need Table 1, i.e. every sweep
    for test in test_jobs.values():
        test.deps = everything
    return jobs + list(test_jobs.values())
