import json

import pandas as pd

from dpbert.tools.rule_benchmarks import read_benchmarks, summarise


def _bench(path, seconds, rss):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\n" f"{seconds}\t0:00:01\t{rss}\t1\n")
    return str(path)


def _phases(path, **seconds):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(seconds))
    return str(path)


def test_summary_adds_up_per_rule_and_method(tmp_path):
    paths = [
        _bench(tmp_path / "bench/run_method/SST-2/bert/1.tsv", 10.0, 500),
        _bench(tmp_path / "bench/run_method/RTE/bert/1.tsv", 5.0, 700),
        _bench(tmp_path / "bench/run_method/SST-2/pabee/1.tsv", 5.0, 300),
    ]
    phases = [
        _phases(tmp_path / "runs/SST-2/bert/1/phases.json", startup_s=3.0, train_s=5.0, score_s=1.0, peak_rss_mb=650),
        _phases(tmp_path / "runs/RTE/bert/1/phases.json", startup_s=2.5, train_s=1.5, latency_s=0.5),
    ]
    jobs = read_benchmarks(paths, phases)
    assert list(jobs["task"]) == ["SST-2", "RTE", "SST-2"] and set(jobs["rule"]) == {"run_method"}
    assert list(jobs["startup_s"].iloc[:2]) == [3.0, 2.5] and jobs["startup_s"].isna().iloc[2]
    assert list(jobs["max_rss_mb"]) == [650, 700, 300]  # the job's own peak when it recorded one
    summary = summarise(jobs)
    bert = summary[summary["method"] == "bert"].iloc[0]
    assert (bert["jobs"], bert["total_s"], bert["max_s"], bert["peak_rss_mb"]) == (2, 15.0, 10.0, 700)
    assert (bert["startup_s"], bert["train_s"], bert["score_s"], bert["latency_s"]) == (5.5, 6.5, 1.0, 0.5)
    assert summary["share"].sum() == 1.0 and bert["share"] == 0.75
    assert isinstance(summary, pd.DataFrame) and summary.iloc[0]["method"] == "bert"
