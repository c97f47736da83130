"""The cost model of a profile's jobs: exact work counts times per-example costs.

The counts are exact for the config: GLUE's split sizes (or the synthetic sizes), each method's
training passes (``Method.training_epochs``), its scoring passes (one per example and variant when
the method scores every knob off one pass, else one per knob) and its timing passes. Used by the
planner (dpbert.tools.plan) and by the DAG's per-job resources (dpbert.run.job_resources).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dpbert.data.tasks import get_task
from dpbert.methods.interface import Method
from dpbert.methods.registry import build_method
from dpbert.run.config_check import ConfigError, backbone_depth
from dpbert.run.jobs import jobs as method_jobs
from dpbert.run.sweep import LatencySettings


@dataclass
class Job:
    name: str
    seconds: float
    deps: list[str] = field(default_factory=list)
    stage: str = ""
    train_passes: float = 0.0  # training example-passes
    forwards: float = 0.0  # batch-1 forwards (scoring, timing, test files)


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


def model_depth(model: dict[str, Any]) -> int | None:
    """The configured backbone's layers (dpbert.run.config_check.backbone_depth); None: unknown."""
    try:
        return backbone_depth(model)[0]
    except ConfigError:  # a local folder that is no model: the config check says so, planning goes on
        return None


def method_passes(method: Method, sizes: dict[str, int], config: dict[str, Any],
                  depth: int | None = None) -> tuple[float, float]:
    """(training example-passes, batch-1 forwards) of one method job: training, scoring, timing.
    ``depth``: the backbone's layers (``Method.backbone_depth``); None: read off ``config["model"]``."""
    task = method.task
    if method.backbone_depth is None:
        method.backbone_depth = depth if depth is not None else model_depth(config["model"])
    train = method.training_epochs(config["training"].get("finetune", {})) * sizes["train"]
    one_pass = method.scores_knobs_in_one_pass()
    variants = method.variants()
    points = sum(len(method.knobs_of(v)) for v in variants)  # every variant's grid (Method.knobs_of)
    dev = sum(sizes[s] for s in task.dev_splits)
    scoring = dev * (len(variants) if one_pass else points)
    per_forward = LatencySettings.from_config(config["latency"]).forwards_per_point(sizes[task.dev_splits[0]])
    timed = 1 + (0 if method.is_reference else points)  # BERT-base + every point
    return train, scoring + timed * per_forward


def plan_jobs(config: dict[str, Any], train_s: float, forward_s: float) -> list[Job]:
    """Every job of the profile's DAG with its estimated seconds and dependencies."""
    jobs: list[Job] = []
    test_jobs: dict[str, Job] = {}
    passes: dict[tuple[str, str], tuple[float, float]] = {}
    depth = model_depth(config["model"])
    for task, name, seed in method_jobs(config):  # the DAG's own list (workflow/rules/common.smk)
        spec = get_task(task)
        sizes = split_sizes(task, config["data"])
        if (task, name) not in passes:
            passes[task, name] = method_passes(build_method(name, config["methods"].get(name), spec), sizes, config,
                                               depth)
            if config["data"].get("with_test"):
                test = test_jobs.setdefault(name, Job(f"glue_test/{name}", 0.0, stage="GLUE test files"))
                n_test = sum(sizes.get(s, 0) for s in spec.test_splits)
                test.seconds += n_test * forward_s
                test.forwards += n_test
        train, forwards = passes[task, name]
        deps = [] if name == "bert" else [f"{task}/bert/{seed}"]
        jobs.append(Job(f"{task}/{name}/{seed}", train * train_s + forwards * forward_s, deps,
                        "stage 1 (BERT-base)" if name == "bert" else "methods", train, forwards))
    everything = [j.name for j in jobs]  # the test files need Table 1, i.e. every sweep
    for test in test_jobs.values():
        test.deps = everything
    return jobs + list(test_jobs.values())
