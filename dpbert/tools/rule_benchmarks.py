"""Where a run's time goes: each job's own record of its phases (training jobs and sweeps).

A job's wall time (``total_s``: from the start of the process Snakemake started for the job,
the warm worker's thin client included, to the job's last line) splits into start-up (interpreter and
imports, before the job's first line), training, loading the trained models, scoring the dev sets and
timing. Snakemake's own ``benchmark:`` files are not used: with the warm worker (dpbert/run/warm.py) the
job runs in a fork of a long-lived server, outside the process they measure.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

PHASES = ["startup_s", "train_s", "load_s", "score_s", "latency_s", "diagnostics_s"]  # diagnostics: dpbert.reporting.health


def read_benchmarks(phase_paths: list[str]) -> pd.DataFrame:
    """One row per job: a training job's (``.../runs/{task}/{method}/{seed}/train/{variant}.json``, rule
    train_variant) or a sweep's (``.../runs/{task}/{method}/{seed}/phases.json``, rule run_method): rule, task, method,
    seed, wall seconds (``total_s``), peak RSS in MB (``peak_rss_mb``: the job process's, a warm job's
    fork included) and the seconds of each phase (NaN for a phase the job did not record)."""
    rows = []
    for path in phase_paths:
        parts = Path(path).parts
        if parts[-2] == "train":  # a training job's: .../runs/{task}/{method}/{seed}/train/{variant}.json
            rule, (task, method, seed) = "train_variant", parts[-5:-2]
        else:  # a sweep's: .../runs/{task}/{method}/{seed}/phases.json
            rule, (task, method, seed) = "run_method", parts[-4:-1]
        job = json.loads(Path(path).read_text())
        missing = [k for k in ("total_s", "peak_rss_mb") if k not in job]
        if missing:
            raise ValueError(f"{path} lacks {', '.join(missing)}: it was written by an older version; rerun the job")
        rows.append({"rule": rule, "task": task, "method": method, "seed": seed,
                     "seconds": float(job["total_s"]), "max_rss_mb": float(job["peak_rss_mb"]),
                     **{p: float(job.get(p, float("nan"))) for p in PHASES}})
    return pd.DataFrame(rows, columns=["rule", "task", "method", "seed", "seconds", "max_rss_mb", *PHASES])


def summarise(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule and method: job count, total and longest wall time, peak memory, total seconds per
    phase; largest first, with each row's share of the run's job time."""
    aggs = {"jobs": ("seconds", "size"), "total_s": ("seconds", "sum"), "max_s": ("seconds", "max"),
            "peak_rss_mb": ("max_rss_mb", "max"), **{p: (p, "sum") for p in PHASES}}
    out = jobs.groupby(["rule", "method"]).agg(**aggs).reset_index().sort_values("total_s", ascending=False)
    out["share"] = out["total_s"] / out["total_s"].sum()
    return out.round(3)
