import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir)))

from dpbert.config_check import check_config, ConfigError  # noqa: E402

validate(config, "../schemas/config.schema.yaml", set_default=True)
try:
    METHODS = check_config(config)  # name -> method class, after semantic checks
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

W = f"{config['workdir']}/{config['profile']}"
TASKS = list(config["tasks"])
SEEDS = [int(s) for s in config["seeds"]]


wildcard_constraints:
    task="|".join(t.replace(".", r"\.").replace("-", r"\-") for t in TASKS),
    method="|".join(METHODS),
    seed=r"\d+",


def method_tasks(method):
    """Tasks a method covers (DeeBERT has no regression exit, so no STS-B job)."""
    from dpbert.tasks import get_task

    cls = METHODS[method]
    return [
        t for t in TASKS if cls.supports_regression or not get_task(t).is_regression
    ]


def train_inputs(wc):
    inputs = {"data": f"{W}/data/{wc.task}.pt"}
    if METHODS[wc.method].needs_finetuned:
        inputs["finetuned"] = f"{W}/models/{wc.task}/bert/{wc.seed}"
    return inputs


def all_sweeps():
    return [
        f"{W}/runs/{task}/{method}/{seed}/sweep.csv"
        for method in METHODS
        for task in method_tasks(method)
        for seed in SEEDS
    ]


def all_benchmarks():
    return [
        f"{W}/benchmarks/{rule}/{task}/{method}/{seed}.tsv"
        for rule in ("train", "evaluate")
        for method in METHODS
        for task in method_tasks(method)
        for seed in SEEDS
    ]
