"""The method jobs of a config: one list for the Snakemake DAG (workflow/rules/common.smk) and dpbert.tools.plan.

Per (task, method, seed): one training job per entry of ``Method.training_jobs`` (a variant, or a method's
search job), then one sweep job (``jobs``). ``training.variant_seeds`` decides whether a training job starts
from the one before it (chained) or stands alone (independent)."""

from __future__ import annotations

from typing import Any

from dpbert.data.tasks import get_task
from dpbert.methods.interface import Method
from dpbert.methods.registry import build_method, get_method

VARIANT_SEEDS = ("chained", "independent")  # training.variant_seeds


def variant_seeds(training: dict[str, Any]) -> str:
    """``training.variant_seeds`` (chained when absent)."""
    mode = str(training.get("variant_seeds", "chained"))
    if mode not in VARIANT_SEEDS:
        raise ValueError(f"training.variant_seeds is '{mode}'; use one of {', '.join(VARIANT_SEEDS)}.")
    return mode


def previous_job(jobs: list[str], variant: str, training: dict[str, Any]) -> str | None:
    """The training job of ``jobs`` (``Method.training_jobs``) whose random generators ``variant``'s job starts
    from: the one before it when chained, None for the first one and for every one when independent."""
    i = jobs.index(variant)
    return jobs[i - 1] if i > 0 and variant_seeds(training) == "chained" else None


def training_dependencies(impl: Method, variant: str, training: dict[str, Any]) -> list[str]:
    """The training jobs (of the same task, method and seed) that ``variant``'s job reads: the one before it
    when chained, and every variant for a search job (``Method.search_job``: it searches from their models)."""
    jobs = impl.training_jobs()
    deps = [d for d in [previous_job(jobs, variant, training)] if d]
    if variant == impl.search_job:
        deps += [v for v in impl.variants() if v not in deps]
    return deps


def method_impl(config: dict[str, Any], task: str, method: str) -> Method:
    """The method's object on ``task`` with the config's parameters (what its jobs build)."""
    return build_method(method, config["methods"].get(method), get_task(task))


def method_tasks(config: dict[str, Any], method: str) -> list[str]:
    """Tasks a method covers, in config order (DeeBERT has no regression exit, so no STS-B job)."""
    cls = get_method(method)
    return [t for t in config["tasks"] if cls.supports_regression or not get_task(t).is_regression]


def jobs(config: dict[str, Any]) -> list[tuple[str, str, int]]:
    """Every sweep job (rule run_method) of the config as (task, method, seed): methods, then tasks, then seeds, in
    config order."""
    seeds = [int(s) for s in config["seeds"]]
    methods = ["bert"] + [m for m in config["methods"] if m != "bert"]  # BERT-base always runs (check_config)
    if "bert" in config["methods"]:
        methods = list(config["methods"])
    return [(task, method, seed) for method in methods for task in method_tasks(config, method) for seed in seeds]
