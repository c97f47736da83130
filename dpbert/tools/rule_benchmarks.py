"""Where a run's time goes: Snakemake's per-job benchmark files plus each job's own phases.json.

A method job's wall time splits into start-up (interpreter and imports, before the job's first
line), training, loading the trained models, scoring the dev sets and timing; the rest is Snakemake's
own wrapper around the script.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

PHASES = ["startup_s", "train_s", "load_s", "score_s", "latency_s", "diagnostics_s"]  # diagnostics: dpbert.reporting.health


def read_benchmarks(paths: list[str], phase_paths: list[str] | None = None) -> pd.DataFrame:
    """One row per job: rule, task, method, seed, wall seconds, peak RSS (MB), and the job's phases
    (matched by task/method/seed; NaN for a job that wrote none)."""
    phases = {}
    for path in phase_paths or []:
        parts = Path(path).parts  # .../runs/{task}/{method}/{seed}/phases.json
        phases[(parts[-4], parts[-3], parts[-2])] = json.loads(Path(path).read_text())
    rows = []
    for path in paths:
        parts = Path(path).parts
        rule, task, method, seed = parts[-4], parts[-3], parts[-2], Path(parts[-1]).stem
        bench = pd.read_csv(path, sep="\t")
        job = phases.get((task, method, seed), {})
        # a warm job's process is a fork of the warm worker: its peak memory is in phases.json, not
        # in Snakemake's benchmark (which measures the job's thin client)
        rss = job.get("peak_rss_mb", float(bench["max_rss"].iloc[0]))
        rows.append({"rule": rule, "task": task, "method": method, "seed": seed,
                     "seconds": float(bench["s"].iloc[0]), "max_rss_mb": float(rss),
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
