"""What each job asks a scheduler for: minutes and MB from dpbert.tools.plan's cost model, per task and method.

runtime (minutes) = max(resources.method.runtime, ceil(resources.runtime_factor x the job's seconds in
``dpbert.tools.plan.plan_jobs`` / 60)), at the profile's per-example costs ``resources.train_ms`` and
``resources.forward_ms`` (assumed, or measured with ``python -m dpbert.tools.plan --measure``).

mem_mb = max(resources.method.mem_mb, ceil(resources.mem_factor x estimate)), the estimate being an
upper bound of the job's host memory: the Python process with torch imported, the task's prepared
data as Python token lists at full length, and the model's training state (weights, gradients, two
AdamW moments, the stage-1 model and one more copy), plus activations when it trains on the CPU.
Estimates, not measurements: the floors are what a job gets when its estimate is smaller.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from dpbert.run.costs import plan_jobs, split_sizes

PROCESS_MB = {"cpu": 1000, "cuda": 3000}  # python + torch + transformers; CUDA's libraries and context on the host
BYTES_PER_TOKEN = 44  # a token id (28 B int + 8 B list slot) and its token type (8 B slot; 0/1 are shared)
STATE_COPIES = 6  # weights, gradients, 2 AdamW moments, the stage-1 (teacher) model, one copy while saving
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


def job_resources(config: dict[str, Any]) -> dict[str, dict[str, int]]:
    """{job name ("<task>/<method>/<seed>", "glue_test/<method>"): {"runtime": minutes, "mem_mb": MB}}."""
    res = config["resources"]
    floor = res["method"]
    jobs = plan_jobs(config, float(res["train_ms"]) / 1000, float(res["forward_ms"]) / 1000)
    mem = {task: job_mem_mb(config, task) for task in config["tasks"]}
    out: dict[str, dict[str, int]] = {}
    for job in jobs:
        if job.name.startswith("glue_test/"):
            method = job.name.split("/", 1)[1]
            tasks = [t for t in config["tasks"] if f"{t}/{method}/{int(config['seeds'][0])}" in out]
            estimate = max(mem[t] for t in tasks) if tasks else 0.0
        else:
            estimate = mem[job.name.split("/")[0]]
        out[job.name] = {
            "runtime": max(int(floor["runtime"]), math.ceil(float(res["runtime_factor"]) * job.seconds / 60)),
            "mem_mb": max(int(floor["mem_mb"]), math.ceil(float(res["mem_factor"]) * estimate)),
        }
    return out
