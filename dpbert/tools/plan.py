"""How long a profile takes on one device and on N: job costs from counts x per-example costs, then a schedule.

    python -m dpbert.tools.plan --configfile workflow/config/paper.yaml --measure --device cuda
    python -m dpbert.tools.plan --configfile workflow/config/paper.yaml --train-ms 5 --forward-ms 8
    python -m dpbert.tools.plan --configfile workflow/config/paper.yaml   # the config's resources.train_ms / forward_ms

The counts are exact for the config: GLUE's split sizes (or the synthetic sizes), each method's
training passes (``Method.training_epochs``), its scoring passes (one per example and variant when
the method scores every knob off one pass, else one per knob) and its timing passes. The per-example
costs are measured on ``--device`` with a BERT-base-shaped model at the config's batch size and
maximum length (every example taken at full length: an upper bound), or given. The schedule puts the
jobs of the DAG (stage-1 BERT-base, then every method, then the GLUE test files) on N identical
devices, longest remaining path first.
"""

from __future__ import annotations

import argparse
import heapq
import time
from pathlib import Path
from typing import Any

from dpbert.run.costs import Job, plan_jobs

CONFIG_COSTS = "from the config (resources.train_ms / forward_ms, what its jobs' runtimes are estimated with)"


def critical_path(jobs: list[Job]) -> dict[str, float]:
    """Longest path from each job to the end of the run (its own time included)."""
    by_name = {j.name: j for j in jobs}
    children: dict[str, list[str]] = {j.name: [] for j in jobs}
    for j in jobs:
        for d in j.deps:
            children[d].append(j.name)
    memo: dict[str, float] = {}

    def tail(name: str) -> float:
        if name not in memo:
            memo[name] = by_name[name].seconds + max((tail(c) for c in children[name]), default=0.0)
        return memo[name]

    return {j.name: tail(j.name) for j in jobs}


def makespan(jobs: list[Job], devices: int) -> float:
    """Wall time on ``devices`` identical devices, one job per device at a time, longest remaining path first."""
    tails = critical_path(jobs)
    waiting = {j.name: set(j.deps) for j in jobs}
    seconds = {j.name: j.seconds for j in jobs}
    ready = [(-tails[n], n) for n, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []
    now, free = 0.0, devices
    while ready or running:
        while ready and free:
            _, name = heapq.heappop(ready)
            heapq.heappush(running, (now + seconds[name], name))
            free -= 1
        now, done = heapq.heappop(running)
        free += 1
        for name, deps in waiting.items():
            if done in deps:
                deps.discard(done)
                if not deps:
                    heapq.heappush(ready, (-tails[name], name))
    return now


def measure_costs(device: str, batch_size: int, max_length: int, threads: int) -> tuple[float, float]:
    """Seconds per training example (batch ``batch_size``, full length) and per batch-1 forward, BERT-base shape."""
    import torch

    from dpbert.run.latency import measure
    from dpbert.tools.benchmodels import random_classifier

    torch.set_num_threads(threads)
    model = random_classifier("bert-base").to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(1000, 20000, (batch_size, max_length), device=device)
    labels = torch.zeros(batch_size, dtype=torch.long, device=device)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def step() -> None:
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    model.train()
    step()
    sync()
    start = time.perf_counter()
    steps = 3
    for _ in range(steps):
        step()
    sync()
    train_s = (time.perf_counter() - start) / (steps * batch_size)
    model.eval()
    forward = measure(lambda ex: model(**ex), [{"input_ids": ids[:1]}], warmup=3, repeats=20, device=device)
    return train_s, forward.median_ms / 1000


def render(config: dict[str, Any], jobs: list[Job], train_s: float, forward_s: float, source: str,
           devices: list[int]) -> str:
    total = sum(j.seconds for j in jobs)
    longest = max(critical_path(jobs).values())
    stages: dict[str, int] = {}
    for j in jobs:
        stages[j.stage] = stages.get(j.stage, 0) + 1
    lines = [
        f"Profile `{config['profile']}`: {len(config['tasks'])} tasks x {len(config['seeds'])} seeds x "
        f"{len(config['methods'])} methods; per-example costs {source}: {1000 * train_s:.2f} ms per training "
        f"example, {1000 * forward_s:.2f} ms per batch-1 forward.",
        "",
        "Jobs per stage: " + ", ".join(f"{k} {v}" for k, v in stages.items()) + ".",
        f"Device time in all: {total / 3600:.1f} h: {sum(j.train_passes for j in jobs) / 1e6:.1f} M training "
        f"example-passes ({sum(j.train_passes for j in jobs) * train_s / 3600:.1f} h) and "
        f"{sum(j.forwards for j in jobs) / 1e6:.2f} M batch-1 forwards ({sum(j.forwards for j in jobs) * forward_s / 3600:.1f} h). "
        f"Critical path (stage-1 BERT-base, then the longest method job, then the GLUE test files): {longest / 3600:.1f} h.",
        "",
        "| devices | wall time (h) |",
        "|---|---|",
    ]
    lines += [f"| {n} | {makespan(jobs, n) / 3600:.1f} |" for n in devices]
    top = sorted(jobs, key=lambda j: -j.seconds)[:5]
    lines += ["", "Longest jobs: " + ", ".join(f"{j.name} {j.seconds / 3600:.1f} h" for j in top) + "."]
    return "\n".join(lines)


def plan_from_config(configfile: Path, root: Path, devices: list[int]) -> str:
    """The plan of a profile file at its config's per-example costs (resources.train_ms / forward_ms), as
    ``python -m dpbert.tools.plan --configfile <file>`` prints it; the config resolved as the Snakefile does."""
    from snakemake.utils import validate

    from dpbert.run.profiles import config_dir, resolve_config

    config = resolve_config([configfile], config_dir(root))
    validate(config, str(root / "workflow/schemas/config.schema.yaml"), set_default=True)
    res = config["resources"]
    train_s, forward_s = float(res["train_ms"]) / 1000, float(res["forward_ms"]) / 1000
    return render(config, plan_jobs(config, train_s, forward_s), train_s, forward_s, CONFIG_COSTS, devices)


def main() -> None:
    from snakemake.utils import validate

    from dpbert.run.config_check import ConfigError
    from dpbert.run.profiles import config_dir, resolve_config, workflow_root

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configfile", type=Path, default=Path("workflow/config/paper.yaml"))
    ap.add_argument("--measure", action="store_true", help="measure the per-example costs on --device")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads while measuring")
    ap.add_argument("--train-ms", type=float, help="ms per training example (instead of --measure)")
    ap.add_argument("--forward-ms", type=float, help="ms per batch-1 forward (instead of --measure)")
    ap.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    args = ap.parse_args()
    try:  # the Snakefile's own resolution: a partial file layers over its `base:` profile, or is refused
        root = workflow_root()
        config = resolve_config([args.configfile], config_dir(root))
    except ConfigError as exc:
        ap.exit(2, f"{exc}\n")
    validate(config, str(root / "workflow/schemas/config.schema.yaml"), set_default=True)
    if args.measure:
        ft = config["training"]["finetune"]
        train_s, forward_s = measure_costs(args.device, int(ft["batch_size"]), int(config["model"]["max_length"]),
                                           args.threads)
        from dpbert.run.latency import describe_device

        source = f"measured on {describe_device(args.device)}"
    elif args.train_ms is not None and args.forward_ms is not None:
        train_s, forward_s, source = args.train_ms / 1000, args.forward_ms / 1000, "given (not measured)"
    elif args.train_ms is None and args.forward_ms is None:
        res = config["resources"]
        train_s, forward_s = float(res["train_ms"]) / 1000, float(res["forward_ms"]) / 1000
        source = CONFIG_COSTS
    else:
        ap.error("pass --measure, or both --train-ms and --forward-ms, or neither (the config's resources.train_ms / forward_ms)")
    print(render(config, plan_jobs(config, train_s, forward_s), train_s, forward_s, source, args.devices))


if __name__ == "__main__":
    main()
