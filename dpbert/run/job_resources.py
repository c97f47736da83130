"""What each job asks a scheduler for: minutes and MB from dpbert.tools.plan's cost model, per task and method.

The estimate (minutes) = max(resources.method.runtime, ceil(resources.runtime_factor x the job's seconds in
``dpbert.run.costs.plan_jobs`` / 60)), at the profile's per-example costs (``dpbert.run.costs.profile_costs``:
a stored measurement, else the typed ``resources.train_ms`` / ``forward_ms``). runtime = min(estimate,
resources.max_runtime): no job asks for more than the cluster's limit. A training job (one variant of a method)
whose estimate exceeds it trains in several attempts: each trains until its time budget (``training_budget_s``:
its runtime less a slack) is spent, checkpoints and exits (dpbert.model.checkpoint.TimeBudgetReached); the
rule's ``retries`` resubmit it, and the next attempt resumes. ``attempts_needed`` counts them. A sweep job
trains nothing, so it must fit in one attempt.

mem_mb = max(resources.method.mem_mb, ceil(resources.mem_factor x estimate)), the estimate being an
upper bound of the job's host memory: the Python process with torch imported, the task's prepared
data as Python token lists at full length, and the model's training state (weights, gradients, two
AdamW moments, the stage-1 model and one more copy), plus activations when it trains on the CPU.
Estimates, not measurements: the floors are what a job gets when its estimate is smaller.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpbert.run.costs import (
    Costs,
    backbone_shape,
    plan_jobs,
    profile_costs,
    split_sizes,
)

SLACK_MIN_S = 120.0  # of a job's runtime, kept for start-up, loading and saving: at least this ...
SLACK_FRACTION = 0.05  # ... or this share of the runtime
BUDGET_ENV = "DPBERT_TIME_BUDGET_S"  # test hook: a method job's training budget in seconds (from its process start)
BUDGET_EXIT = 75  # a method job's exit status when its attempt spent its time budget (EX_TEMPFAIL: try again)

PROCESS_MB = {"cpu": 1000, "cuda": 3000}  # python + torch + transformers; CUDA's libraries and context on the host
BYTES_PER_TOKEN = 44  # a token id (28 B int + 8 B list slot) and its token type (8 B slot; 0/1 are shared)
STATE_COPIES = 6  # weights, gradients, 2 AdamW moments, the stage-1 (teacher) model, one copy while saving
def param_count(shape: dict[str, int]) -> int:
    h, i, n = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    embeddings = (shape["vocab_size"] + shape["max_position_embeddings"] + 2) * h
    layer = 4 * h * h + 2 * h * i + 9 * h + i
    return embeddings + n * layer + h * h + h  # + pooler


def job_mem_mb(config: dict[str, Any], task: str) -> float:
    """Upper bound of a method job's host memory on ``task``, in MB, before the factor."""
    sizes = split_sizes(task, config["data"])
    length = int(config["model"]["max_length"])
    data = sum(sizes.values()) * length * BYTES_PER_TOKEN
    shape = backbone_shape(config["model"])
    state = param_count(shape) * 4 * STATE_COPIES
    device = str(config["training"].get("device", "cpu"))
    if not device.startswith("cuda"):  # activations kept for the backward pass live in host memory
        batch, h, n = int(config["training"]["finetune"]["batch_size"]), shape["hidden_size"], shape["num_hidden_layers"]
        tokens = batch * length
        state += 4 * n * (tokens * (12 * h + 2 * shape["intermediate_size"])
                          + 3 * batch * shape["num_attention_heads"] * length * length)
    process = PROCESS_MB["cuda" if device.startswith("cuda") else "cpu"]
    return process + (data + state) / 2**20


@dataclass(frozen=True)
class JobEstimate:
    """One job's request and what it rests on (seconds with ``resources.runtime_factor`` applied)."""

    train_s: float  # training
    eval_s: float  # the batch-1 sweep, timing and test files
    estimate: int  # minutes the whole job is estimated to take (the floor applied), before max_runtime
    runtime: int  # minutes asked for: min(estimate, resources.max_runtime)
    mem_mb: int
    attempts: int | None  # attempts the job runs as (1: it fits); None: its sweep alone does not fit in runtime

    @property
    def over_limit(self) -> bool:
        return self.estimate > self.runtime


def slack_s(runtime_min: float) -> float:
    """Seconds of a job's runtime kept free of training and sweeping: start-up, loading, saving."""
    return max(SLACK_MIN_S, SLACK_FRACTION * 60 * runtime_min)


def training_budget_s(runtime_min: float, eval_s: float) -> float:
    """Seconds an attempt of a job with ``runtime_min`` minutes may train: the rest is the slack and the
    job's estimated sweep (``eval_s``), which a finishing attempt still runs."""
    return 60 * runtime_min - slack_s(runtime_min) - eval_s


def attempts_needed(train_s: float, eval_s: float, estimate_min: int, runtime_min: int) -> int | None:
    """How many attempts a job runs as: 1 when its whole estimate is asked for, else one per training
    budget (``training_budget_s``) its training fills; None when its sweep leaves no budget to train."""
    if estimate_min <= runtime_min:
        return 1
    budget = training_budget_s(runtime_min, eval_s)
    if budget <= 0:
        return None
    return max(1, math.ceil(train_s / budget))


def job_estimates(config: dict[str, Any], root: str | Path | None = None,
                  costs: Costs | None = None) -> dict[str, JobEstimate]:
    """Every job's ``JobEstimate`` by name (a training job "<task>/<method>/<seed>/<variant>", a sweep
    "<task>/<method>/<seed>", "glue_test/<method>"; ``dpbert.run.costs.plan_jobs``) at ``costs``
    (None: ``profile_costs(config, root)``)."""
    res = config["resources"]
    costs = costs or profile_costs(config, root)
    floor, factor, limit = res["method"], float(res["runtime_factor"]), res.get("max_runtime")
    jobs = plan_jobs(config, costs.train_s, costs.forward_s)
    mem = {task: job_mem_mb(config, task) for task in config["tasks"]}
    out: dict[str, JobEstimate] = {}
    for job in jobs:
        if job.name.startswith("glue_test/"):
            method = job.name.split("/", 1)[1]
            tasks = [t for t in config["tasks"] if f"{t}/{method}/{int(config['seeds'][0])}" in out]
            mem_estimate = max(mem[t] for t in tasks) if tasks else 0.0
        else:
            mem_estimate = mem[job.name.split("/")[0]]
        train_s, eval_s = factor * job.train_passes * costs.train_s, factor * job.forwards * costs.forward_s
        estimate = max(int(floor["runtime"]), math.ceil(factor * job.seconds / 60))
        runtime = min(estimate, int(limit)) if limit else estimate
        attempts = attempts_needed(train_s, eval_s, estimate, runtime)
        if not job.train_passes and attempts != 1:
            attempts = None  # a sweep or the test files: it trains nothing, so it cannot be split into attempts
        out[job.name] = JobEstimate(train_s, eval_s, estimate, runtime,
                                    max(int(floor["mem_mb"]), math.ceil(float(res["mem_factor"]) * mem_estimate)),
                                    attempts)
    return out


def job_resources(config: dict[str, Any], root: str | Path | None = None,
                  costs: Costs | None = None) -> dict[str, dict[str, int]]:
    """{job name (as ``job_estimates``): {"runtime": minutes, "mem_mb": MB}}."""
    return {name: {"runtime": e.runtime, "mem_mb": e.mem_mb}
            for name, e in job_estimates(config, root, costs).items()}


def max_attempts(config: dict[str, Any], estimates: Mapping[str, JobEstimate]) -> int | None:
    """Attempts a training job may run as (the rule's ``retries`` + 1): ``resources.max_attempts``, else the
    most any job needs plus one (a node failure); None without ``resources.max_runtime`` (the executor's
    own ``--retries`` then)."""
    res = config["resources"]
    if not res.get("max_runtime"):
        return None
    if res.get("max_attempts"):
        return int(res["max_attempts"])
    return 1 + max((e.attempts for e in estimates.values() if e.attempts), default=1)


def job_time_budget_s(config: dict[str, Any], runtime_min: float, env: Mapping[str, str] = os.environ) -> float | None:
    """Seconds a training job may train from the start of its process before it checkpoints and ends the
    attempt: ``DPBERT_TIME_BUDGET_S`` when set (a test hook: SLURM's minutes are too coarse for a test), else
    ``training_budget_s`` of its runtime when ``resources.max_runtime`` is set (a training job sweeps nothing),
    else None (no budget)."""
    if env.get(BUDGET_ENV):
        return float(env[BUDGET_ENV])
    if not config["resources"].get("max_runtime"):
        return None
    return training_budget_s(float(runtime_min), 0.0)
