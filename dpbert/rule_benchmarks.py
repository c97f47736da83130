"""Summarise Snakemake's per-job benchmark files: where a run's wall time and memory go."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def read_benchmarks(paths: list[str]) -> pd.DataFrame:
    """One row per job: rule, task, method, seed, wall seconds, peak RSS (MB)."""
    rows = []
    for path in paths:
        parts = Path(path).parts
        rule, task, method, seed = parts[-4], parts[-3], parts[-2], Path(parts[-1]).stem
        bench = pd.read_csv(path, sep="\t")
        rows.append({"rule": rule, "task": task, "method": method, "seed": seed,
                     "seconds": float(bench["s"].iloc[0]), "max_rss_mb": float(bench["max_rss"].iloc[0])})
    return pd.DataFrame(rows, columns=["rule", "task", "method", "seed", "seconds", "max_rss_mb"])


def summarise(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule and method: job count, total and longest wall time, peak memory; largest first."""
    out = (jobs.groupby(["rule", "method"])
           .agg(jobs=("seconds", "size"), total_s=("seconds", "sum"), max_s=("seconds", "max"),
                peak_rss_mb=("max_rss_mb", "max"))
           .reset_index().sort_values("total_s", ascending=False))
    out["share"] = out["total_s"] / out["total_s"].sum()
    return out.round(3)
