import pandas as pd

from dpbert.rule_benchmarks import read_benchmarks, summarise


def _bench(path, seconds, rss):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\n" f"{seconds}\t0:00:01\t{rss}\t1\n")
    return str(path)


def test_summary_adds_up_per_rule_and_method(tmp_path):
    paths = [
        _bench(tmp_path / "train/SST-2/bert/1.tsv", 10.0, 500),
        _bench(tmp_path / "train/RTE/bert/1.tsv", 5.0, 700),
        _bench(tmp_path / "evaluate/SST-2/bert/1.tsv", 5.0, 300),
    ]
    jobs = read_benchmarks(paths)
    assert list(jobs["task"]) == ["SST-2", "RTE", "SST-2"] and set(jobs["rule"]) == {"train", "evaluate"}
    summary = summarise(jobs)
    train = summary[summary["rule"] == "train"].iloc[0]
    assert (train["jobs"], train["total_s"], train["max_s"], train["peak_rss_mb"]) == (2, 15.0, 10.0, 700)
    assert summary["share"].sum() == 1.0 and train["share"] == 0.75
    assert isinstance(summary, pd.DataFrame) and summary.iloc[0]["rule"] == "train"
