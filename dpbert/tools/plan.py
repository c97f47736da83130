"""How long a profile takes on one device and on N: job costs from counts x per-example costs, then a schedule.

    python -m dpbert.tools.plan --configfile workflow/config/paper.yaml --measure --store   # on training.device
    python -m dpbert.tools.plan --configfile workflow/config/paper.yaml --train-ms 5 --forward-ms 8
    python -m dpbert.tools.plan --configfile workflow/config/paper.yaml   # its stored measurement, else resources.train_ms / forward_ms
    python -m dpbert.tools.plan --write-docs docs/clusters.md   # the plan blocks of a page, regenerated

The counts are exact for the config: GLUE's split sizes (or the synthetic sizes), each method's
training passes (``Method.training_epochs``), its scoring passes (one per example and variant when
the method scores every knob off one pass, else one per knob) and its timing passes. The per-example
costs are measured on ``--device`` with a random-weight BERT of the profile's backbone shape at the
config's batch size, maximum length, threads and precisions (every example taken at full length: an
upper bound), or given, or the profile's stored measurement (``--measure --store`` writes it; the DAG's
job resources read it, dpbert.run.costs.profile_costs), else its typed ``resources.train_ms`` /
``forward_ms``, marked assumed. The runtime requests are the DAG's (dpbert.run.job_resources), with the
jobs whose estimate exceeds ``resources.max_runtime`` (they run as several attempts) listed. The schedule puts the
jobs of the DAG (stage-1 BERT-base, then every method, then the GLUE test files) on N identical
devices, longest remaining path first.
"""

from __future__ import annotations

import argparse
import heapq
import re
import statistics
import time
from pathlib import Path
from typing import Any

from dpbert.run.costs import (
    Costs,
    Job,
    costs_file,
    measurement_key,
    plan_jobs,
    profile_costs,
    store_measurement,
)
from dpbert.run.job_resources import JobEstimate


STAGE_ORDER = ["stage 1 (BERT-base)", "training", "sweeps", "GLUE test files"]  # as the plan lists the stages


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


def measure_costs(device: str, batch_size: int, max_length: int, threads: int, shape: dict[str, int] | None = None,
                  precision: str = "fp32", forward_threads: int | None = None,
                  forward_precision: str = "fp32") -> tuple[float, float]:
    """Seconds per training example (batch ``batch_size``, full length, ``threads``, autocast at ``precision``)
    and per batch-1 forward (``forward_threads``, ``forward_precision``) of a random-weight BERT of
    ``shape`` (BertConfig sizes; None: BERT-base's). One CPU thread is timed by its CPU time (``cpu_clock``)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from dpbert.model.precision import autocast
    from dpbert.run.costs import BERT_BASE
    from dpbert.run.latency import measure

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(num_labels=2, **(shape or BERT_BASE))).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    vocab = int((shape or BERT_BASE)["vocab_size"])
    ids = torch.randint(min(1000, vocab - 1), vocab, (batch_size, max_length), device=device)
    labels = torch.zeros(batch_size, dtype=torch.long, device=device)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def step() -> None:
        with autocast(precision, device):
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    model.train()
    step()
    sync()
    clock = cpu_clock(device, threads)
    start = clock()
    steps = 3
    for _ in range(steps):
        step()
    sync()
    train_s = (clock() - start) / (steps * batch_size)
    model.eval()
    torch.set_num_threads(forward_threads or threads)
    if cpu_clock(device, forward_threads or threads) is time.process_time:  # one thread's CPU time per forward
        times = []
        with torch.inference_mode(), autocast(forward_precision, device):
            for i in range(23):
                start = time.process_time()
                model(input_ids=ids[:1])
                if i >= 3:  # after 3 warm-up forwards
                    times.append(time.process_time() - start)
        return train_s, statistics.median(times)
    forward = measure(lambda ex: model(**ex), [{"input_ids": ids[:1]}], warmup=3, repeats=20, device=device,
                      precision=forward_precision)
    return train_s, forward.median_ms / 1000


def cpu_clock(device: str, threads: int):
    """The clock a measurement reads: on a CPU with one thread, the process's CPU time (what the work costs,
    whatever else runs on a shared machine); else wall time (several threads, or a GPU's asynchronous work)."""
    return time.process_time if device == "cpu" and threads == 1 else time.perf_counter


def runtime_lines(config: dict[str, Any], estimates: dict[str, JobEstimate]) -> list[str]:
    """What the jobs ask a scheduler for against ``resources.max_runtime``, and the jobs over it (flagged)."""
    from dpbert.run.job_resources import max_attempts

    res = config["resources"]
    limit = res.get("max_runtime")
    top = max(estimates, key=lambda n: (estimates[n].runtime, estimates[n].estimate))  # the first of the longest
    head = (f"Runtime requests (minutes: {res['runtime_factor']} x the estimate, at least "
            f"resources.method.runtime {res['method']['runtime']}): the largest is {estimates[top].runtime} ({top})")
    if not limit:
        return [f"{head}; no resources.max_runtime, so every job asks for its whole estimate."]
    over = sorted((n for n, e in estimates.items() if e.over_limit), key=lambda n: (-estimates[n].estimate, n))
    lines = [f"{head}, within resources.max_runtime {limit}."]
    if not over:
        return [*lines, "No job's estimate exceeds it: every job runs as one attempt."]
    fits = [n for n in over if estimates[n].attempts]
    allowed = max_attempts(config, estimates)
    named = ", ".join(f"{n} ({estimates[n].estimate} min: {estimates[n].attempts} attempts)" for n in fits[:10])
    more = f", and {len(fits) - 10} more" if len(fits) > 10 else ""
    if fits:
        lines.append(f"{len(fits)} jobs' estimates exceed it: each runs as several attempts (training checkpointed "
                     f"before its time is spent, resubmitted and resumed), up to {allowed} a job "
                     f"(resources.max_attempts{'' if res.get('max_attempts') else ': the most needed + 1'}): "
                     f"{named}{more}.")
    from dpbert.model.checkpoint import parse_interval

    if fits and parse_interval(config["training"].get("checkpoint", "epoch")) is None:
        lines.append("FLAGGED: training.checkpoint is off, so these jobs cannot stop and resume: each would train "
                     "until the scheduler kills it. Turn checkpoints on (epoch, or every N steps).")
    short = [n for n in fits if estimates[n].attempts > allowed]
    if short:
        lines.append(f"FLAGGED: {len(short)} jobs need more attempts than resources.max_attempts {allowed} allows "
                     f"({', '.join(short[:10])}): raise it, or they fail after their last attempt.")
    stuck = [n for n in over if not estimates[n].attempts]
    if stuck:
        lines.append(f"FLAGGED: {len(stuck)} jobs cannot run under this limit ({', '.join(stuck[:10])}): their "
                     "batch-1 sweep (or GLUE test predictions) alone needs more, and only training resumes across "
                     "attempts. Raise resources.max_runtime or shrink the sweep (latency.examples, fewer knobs).")
    return lines


def render(config: dict[str, Any], costs: Costs, devices: list[int],
           estimates: dict[str, JobEstimate] | None = None) -> str:
    """The plan's text at ``costs``; ``estimates``: the jobs' requests (None: ``job_estimates`` at ``costs``)."""
    from dpbert.run.job_resources import job_estimates

    train_s, forward_s = costs.train_s, costs.forward_s
    jobs = plan_jobs(config, train_s, forward_s)
    estimates = estimates if estimates is not None else job_estimates(config, costs=costs)
    total = sum(j.seconds for j in jobs)
    longest = max(critical_path(jobs).values())
    stages: dict[str, int] = {}
    for j in sorted(jobs, key=lambda j: STAGE_ORDER.index(j.stage) if j.stage in STAGE_ORDER else len(STAGE_ORDER)):
        stages[j.stage] = stages.get(j.stage, 0) + 1
    lines = [
        f"Profile `{config['profile']}`: {len(config['tasks'])} tasks x {len(config['seeds'])} seeds x "
        f"{len(config['methods'])} methods; per-example costs {costs.source}: {1000 * train_s:.2f} ms per "
        f"training example, {1000 * forward_s:.2f} ms per batch-1 forward.",
        "",
        "Jobs per stage: " + ", ".join(f"{k} {v}" for k, v in stages.items()) + ".",
        f"Device time in all: {total / 3600:.1f} h: {sum(j.train_passes for j in jobs) / 1e6:.1f} M training "
        f"example-passes ({sum(j.train_passes for j in jobs) * train_s / 3600:.1f} h) and "
        f"{sum(j.forwards for j in jobs) / 1e6:.2f} M batch-1 forwards ({sum(j.forwards for j in jobs) * forward_s / 3600:.1f} h). "
        f"Critical path (stage-1 BERT-base, then the longest chain of a method's training jobs and its sweep, then the "
        f"GLUE test files): {longest / 3600:.1f} h.",
        "",
        "| devices | wall time (h) |",
        "|---|---|",
    ]
    lines += [f"| {n} | {makespan(jobs, n) / 3600:.1f} |" for n in devices]
    lines += ["", *runtime_lines(config, estimates)]
    top = sorted(jobs, key=lambda j: -j.seconds)[:5]
    lines += ["", "Longest jobs: " + ", ".join(f"{j.name} {j.seconds / 3600:.1f} h" for j in top) + "."]
    return "\n".join(lines)


def resolved_config(configfile: Path, root: Path) -> dict[str, Any]:
    """A profile file's config, resolved and validated (defaults filled) as the Snakefile does."""
    from snakemake.utils import validate

    from dpbert.run.profiles import config_dir, resolve_config

    config = resolve_config([configfile], config_dir(root))
    validate(config, str(root / "workflow/schemas/config.schema.yaml"), set_default=True)
    return config


def plan_from_config(configfile: Path, root: Path, devices: list[int]) -> str:
    """The plan of a profile file at its per-example costs (``dpbert.run.costs.profile_costs``: its stored
    measurement, else resources.train_ms / forward_ms), as ``python -m dpbert.tools.plan --configfile <file>``
    prints it; the config resolved as the Snakefile does."""
    config = resolved_config(configfile, root)
    return render(config, profile_costs(config, root), devices)


# docs/clusters.md quotes plans through blocks between these lines; `--write-docs <file>` rewrites them
DOC_BEGIN = re.compile(r"^<!-- plan (?P<file>\S+) begin: generated by `python -m dpbert.tools.plan --write-docs "
                       r"(?P<doc>\S+)`, do not edit -->$", re.MULTILINE)
DOC_END = "<!-- plan end -->"
DOC_DEVICES = [1, 4, 16, 64]


def rewrite_doc(text: str, root: Path) -> str:
    """``text`` with every plan block's body replaced by the plan of the profile file its first line names
    (relative to ``root``), on DOC_DEVICES devices."""
    out, pos = [], 0
    for begin in DOC_BEGIN.finditer(text):
        end = text.find(DOC_END, begin.end())
        if end < 0:
            raise ValueError(f"a plan block opened at character {begin.start()} has no `{DOC_END}` line")
        plan = plan_from_config(root / begin["file"], root, DOC_DEVICES)
        out += [text[pos:begin.end()], "\n```text\n", plan, "\n```\n"]
        pos = end
    return "".join(out) + text[pos:]


def measurement_entry(config: dict[str, Any], device: str, train_s: float, forward_s: float) -> dict[str, Any]:
    """What ``--store`` writes: the key the DAG matches (``dpbert.run.costs.measurement_key``), the costs, and
    where and when they were measured."""
    import datetime

    import torch

    from dpbert.run.latency import describe_device

    torch.set_num_threads(int(config["training"].get("threads", 1)))
    return {"key": measurement_key(config), "train_ms": round(1000 * train_s, 3), "forward_ms": round(1000 * forward_s, 3),
            "device": describe_device(device), "torch": torch.__version__,
            "measured": datetime.date.today().isoformat(),
            "command": f"python -m dpbert.tools.plan --configfile <{config['profile']} profile> --measure --store"}


def main() -> None:
    from dpbert.run.config_check import ConfigError
    from dpbert.run.profiles import workflow_root

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configfile", type=Path, default=Path("workflow/config/paper.yaml"))
    ap.add_argument("--measure", action="store_true", help="measure the per-example costs on --device")
    ap.add_argument("--store", action="store_true", help="with --measure: store the measurement in the profile's "
                    "costs file (resources.costs_file, else workflow/costs/<device>-<precision>.json), which the "
                    "DAG's job resources then read")
    ap.add_argument("--device", default=None, help="device to measure on (default: the profile's training.device)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads while measuring training (default: "
                    "training.threads; the forwards: latency.threads)")
    ap.add_argument("--train-ms", type=float, help="ms per training example (instead of --measure)")
    ap.add_argument("--forward-ms", type=float, help="ms per batch-1 forward (instead of --measure)")
    ap.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    ap.add_argument("--write-docs", type=Path, metavar="DOC", help="rewrite the plan blocks of DOC (e.g. "
                    "docs/clusters.md) from their profiles' plans, and print nothing else")
    args = ap.parse_args()
    try:  # the Snakefile's own resolution: a partial file layers over its `base:` profile, or is refused
        root = workflow_root()
        if args.write_docs:
            doc = args.write_docs
            doc.write_text(rewrite_doc(doc.read_text(encoding="utf-8"), root), encoding="utf-8")
            print(f"rewrote the plan blocks of {doc}")
            return
        config = resolved_config(args.configfile, root)
    except ConfigError as exc:
        ap.exit(2, f"{exc}\n")
    if args.store and not args.measure:
        ap.error("--store stores a measurement: pass --measure with it")
    if args.measure:
        from dpbert.run.costs import backbone_shape
        from dpbert.run.latency import describe_device

        device = args.device or str(config["training"].get("device", "cpu"))
        threads = args.threads or int(config["training"].get("threads", 1))
        train_s, forward_s = measure_costs(
            device, int(config["training"]["finetune"]["batch_size"]), int(config["model"]["max_length"]), threads,
            backbone_shape(config["model"]), str(config["training"].get("precision", "fp32")),
            int(config["latency"].get("threads", 1)), str(config["latency"].get("precision", "fp32")))
        costs = Costs(train_s, forward_s, f"measured now on {describe_device(device)}", measured=True)
        if args.store:
            path = costs_file(config, root)
            store_measurement(path, measurement_entry(config, device, train_s, forward_s))
            print(f"stored in {path}: the DAG's job resources of this profile now read it\n")
    elif args.train_ms is not None and args.forward_ms is not None:
        costs = Costs(args.train_ms / 1000, args.forward_ms / 1000, "given (not measured)")
    elif args.train_ms is None and args.forward_ms is None:
        costs = profile_costs(config, root)
    else:
        ap.error("pass --measure, or both --train-ms and --forward-ms, or neither (the profile's stored "
                 "measurement, else its resources.train_ms / forward_ms)")
    print(render(config, costs, args.devices))


if __name__ == "__main__":
    main()
