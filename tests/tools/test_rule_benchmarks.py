import json
import re

import pandas as pd
import pytest

from dpbert.tools.rule_benchmarks import read_benchmarks, summarise
from tests.conftest import ROOT


def _phases(path, **seconds):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(seconds))
    return str(path)


def test_summary_adds_up_per_rule_and_method(tmp_path):
    phases = [
        _phases(tmp_path / "runs/SST-2/bert/1/phases.json", startup_s=3.0, train_s=5.0, score_s=1.0,
                total_s=10.0, peak_rss_mb=650),
        _phases(tmp_path / "runs/RTE/bert/1/phases.json", startup_s=2.5, train_s=1.5, latency_s=0.5,
                total_s=5.0, peak_rss_mb=700),
        _phases(tmp_path / "runs/SST-2/pabee/1/phases.json", total_s=5.0, peak_rss_mb=300),
    ]
    jobs = read_benchmarks(phases)
    assert list(jobs["task"]) == ["SST-2", "RTE", "SST-2"] and set(jobs["rule"]) == {"run_method"}
    trained = read_benchmarks([_phases(tmp_path / "runs/SST-2/dpbert/1/train/t0.3.json", train_s=4.0, total_s=6.0,
                                       peak_rss_mb=500)])  # a training job's record
    assert list(trained[["rule", "task", "method", "seed", "train_s"]].iloc[0]) == ["train_variant", "SST-2", "dpbert",
                                                                                     "1", 4.0]
    assert list(jobs["startup_s"].iloc[:2]) == [3.0, 2.5] and jobs["startup_s"].isna().iloc[2]
    assert list(jobs["seconds"]) == [10.0, 5.0, 5.0] and list(jobs["max_rss_mb"]) == [650, 700, 300]
    summary = summarise(jobs)
    bert = summary[summary["method"] == "bert"].iloc[0]
    assert (bert["jobs"], bert["total_s"], bert["max_s"], bert["peak_rss_mb"]) == (2, 15.0, 10.0, 700)
    assert (bert["startup_s"], bert["train_s"], bert["score_s"], bert["latency_s"]) == (5.5, 6.5, 1.0, 0.5)
    assert summary["share"].sum() == 1.0 and bert["share"] == 0.75
    assert isinstance(summary, pd.DataFrame) and summary.iloc[0]["method"] == "bert"


def test_a_record_without_wall_time_or_memory_is_refused(tmp_path):
    old = _phases(tmp_path / "runs/SST-2/bert/1/phases.json", startup_s=3.0, train_s=5.0)
    with pytest.raises(ValueError, match="lacks total_s, peak_rss_mb"):
        read_benchmarks([old])


def test_warm_jobs_declare_no_snakemake_benchmark():
    """A warm job (data and method rules) runs in a fork of the warm server, outside the process
    Snakemake's benchmark measures (it would time the thin client): phases.json is the record."""
    for rules in ("data.smk", "methods.smk"):
        assert not re.search(r"^\s+benchmark:", (ROOT / "workflow" / "rules" / rules).read_text(), re.MULTILINE), rules
