"""The method jobs of a config: one list for the Snakemake DAG (workflow/rules/common.smk) and dpbert.tools.plan."""

from __future__ import annotations

from typing import Any

from dpbert.data.tasks import get_task
from dpbert.methods.registry import get_method


def method_tasks(config: dict[str, Any], method: str) -> list[str]:
    """Tasks a method covers, in config order (DeeBERT has no regression exit, so no STS-B job)."""
    cls = get_method(method)
    return [t for t in config["tasks"] if cls.supports_regression or not get_task(t).is_regression]


def jobs(config: dict[str, Any]) -> list[tuple[str, str, int]]:
    """Every run_method job of the config as (task, method, seed): methods, then tasks, then seeds, in config order."""
    seeds = [int(s) for s in config["seeds"]]
    methods = ["bert"] + [m for m in config["methods"] if m != "bert"]  # BERT-base always runs (check_config)
    if "bert" in config["methods"]:
        methods = list(config["methods"])
    return [(task, method, seed) for method in methods for task in method_tasks(config, method) for seed in seeds]
