"""Bootstrap standard errors (dpbert.reporting.uncertainty) and their use in Table 1 and the reproduction report."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dpbert.reporting.uncertainty import (
    average_replicates,
    bootstrap_indices,
    bootstrap_scores,
    bootstrap_se,
    cell_replicates,
    combine_replicates,
    standard_error,
    table1_replicates,
)


def _labels_preds(n: int, acc: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    preds = labels.copy()
    wrong = rng.choice(n, round((1 - acc) * n), replace=False)
    preds[wrong] = 1 - preds[wrong]
    return preds, labels


def test_accuracy_se_matches_the_binomial_formula() -> None:
    for n, acc in ((250, 0.8), (500, 0.9), (1000, 0.6)):
        preds, labels = _labels_preds(n, acc)
        se = bootstrap_se("acc", preds, labels, n_boot=2000, key="x")
        expected = 100 * math.sqrt(acc * (1 - acc) / n)
        assert se == pytest.approx(expected, rel=0.1), (n, acc)


def test_deterministic_and_paired_by_key() -> None:
    preds, labels = _labels_preds(300, 0.75)
    a = bootstrap_scores("acc", preds, labels, n_boot=200, key="RTE|dev")
    assert np.array_equal(a, bootstrap_scores("acc", preds, labels, n_boot=200, key="RTE|dev"))
    assert not np.array_equal(a, bootstrap_scores("acc", preds, labels, n_boot=200, key="MRPC|dev"))
    # the resamples depend on the key only: two methods on the same split share them, so the SE of the
    # difference of two identical prediction vectors is 0, and of two close ones small
    assert np.array_equal(bootstrap_indices(300, 200, "RTE|dev"), bootstrap_indices(300, 200, "RTE|dev"))
    other = preds.copy()
    other[:6] = 1 - other[:6]
    b = bootstrap_scores("acc", other, labels, n_boot=200, key="RTE|dev")
    paired = standard_error(a - b)
    unpaired = math.hypot(standard_error(a), standard_error(b))
    assert paired < 0.3 * unpaired
    assert standard_error(a - a) == 0.0


@pytest.mark.parametrize("metric", ["mcc", "acc_f1", "pearson_spearman"])
def test_other_metrics(metric: str) -> None:
    preds, labels = _labels_preds(200, 0.8)
    if metric == "pearson_spearman":
        rng = np.random.default_rng(1)
        labels = rng.uniform(0, 5, 200)
        preds = labels + rng.normal(0, 1, 200)
    reps = bootstrap_scores(metric, preds, labels, n_boot=300, key="k")
    assert reps.shape == (300,) and np.isfinite(reps).all()
    assert 0.5 < standard_error(reps) < 10
    from dpbert.run.metrics import glue_metrics

    full = glue_metrics(metric, preds, labels)["score"]
    assert abs(float(np.mean(reps)) - full) < 3 * standard_error(reps)


@pytest.mark.parametrize("metric", ["acc", "mcc"])
def test_replicates_are_scipys_paired_bootstrap(metric: str) -> None:
    """The replicates are the ordinary paired bootstrap: scipy.stats.bootstrap (paired, one generator seeded as
    the key's) draws the same resamples and scores them alike; the module keeps its own index set so that rows
    scored in separate calls share it (see bootstrap_indices)."""
    from scipy import stats

    from dpbert.reporting.uncertainty import _seed_of
    from dpbert.run.metrics import glue_metrics

    preds, labels = _labels_preds(120, 0.8, seed=3)
    ours = bootstrap_scores(metric, preds, labels, n_boot=150, key="CoLA|dev")
    theirs = stats.bootstrap((preds, labels), lambda p, y: glue_metrics(metric, p, y)["score"], paired=True,
                             vectorized=False, n_resamples=150, method="percentile",
                             rng=np.random.default_rng(_seed_of("CoLA|dev"))).bootstrap_distribution
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)


def test_errors() -> None:
    with pytest.raises(ValueError):
        bootstrap_indices(0, 10)
    with pytest.raises(ValueError):
        bootstrap_scores("acc", [1, 0], [1], n_boot=10)
    with pytest.raises(ValueError):
        combine_replicates([np.zeros(3), np.zeros(4)])


def test_combine_replicates_is_the_linear_combination() -> None:
    a, b = np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])
    assert combine_replicates([a, b]).tolist() == [2.0, 2.0, 2.0]
    assert combine_replicates([a, b], [1.0, -1.0]).tolist() == [-2.0, 0.0, 2.0]


def _preds(variant: str, knob: float, split: str, preds, labels) -> pd.DataFrame:
    return pd.DataFrame({"variant": variant, "knob": knob, "split": split, "idx": range(len(preds)),
                         "label": labels, "pred": preds})


def test_table1_replicates_cells_seeds_and_mnli() -> None:
    p1, labels = _labels_preds(120, 0.8, seed=1)
    p2, _ = _labels_preds(120, 0.8, seed=2)
    shuffled = _preds("t0.25", 0.5, "dev", p1, labels).sample(frac=1.0, random_state=0)  # idx order restored
    predictions = {
        ("RTE", "dpbert", 1): pd.concat([shuffled, _preds("t0.35", 0.5, "dev", 1 - p1, labels)]),
        ("RTE", "dpbert", 2): _preds("t0.25", 0.5, "dev", p2, labels),
        ("MNLI", "bert", 1): pd.concat([_preds("main", 0.0, "dev_matched", p1, labels),
                                        _preds("main", 0.0, "dev_mismatched", p2, labels)]),
    }
    selected = pd.DataFrame([
        {"task": "RTE", "method": "dpbert", "display_name": "DPBERT", "split": "dev", "variant": "t0.25",
         "knob": 0.5, "score": 80.0},
        {"task": "MNLI", "method": "bert", "display_name": "BERT-base", "split": "dev_matched", "variant": "main",
         "knob": 0.0, "score": 80.0},
        {"task": "MNLI", "method": "bert", "display_name": "BERT-base", "split": "dev_mismatched",
         "variant": "main", "knob": 0.0, "score": 80.0},
        {"task": "QNLI", "method": "bert", "display_name": "BERT-base", "split": "dev", "variant": "",
         "knob": np.nan, "score": np.nan},  # no point: no column
    ])
    reps = table1_replicates(selected, predictions, n_boot=400)
    assert sorted(reps.columns) == ["BERT-base|MNLI-m", "BERT-base|MNLI-mm", "DPBERT|RTE"]
    seed1 = bootstrap_scores("acc", p1, labels, n_boot=400, key="RTE|dev")
    seed2 = bootstrap_scores("acc", p2, labels, n_boot=400, key="RTE|dev")
    assert np.allclose(reps["DPBERT|RTE"], np.median(np.stack([seed1, seed2]), axis=0))
    m = average_replicates(reps, "BERT-base", ["MNLI"])
    assert np.allclose(m, (reps["BERT-base|MNLI-m"] + reps["BERT-base|MNLI-mm"]) / 2)
    assert average_replicates(reps, "BERT-base", ["MNLI", "RTE"]) is None
    assert cell_replicates(reps, "DPBERT", "MRPC") is None and cell_replicates(None, "DPBERT", "RTE") is None


def test_table1_standard_errors_from_prediction_files(tmp_path) -> None:
    """What rule table1 does with the jobs' predictions.csv.gz: replicates, a ± on every cell and on avg
    (over the tasks every row covers), and the replicates file the reproduction report reads back."""
    from dpbert.reporting.records import read_replicates
    from dpbert.data.tasks import get_task
    from dpbert.reporting.crossfit import select_rows
    from dpbert.reporting.table1 import (
        pooled_replicates,
        read_job_predictions,
        table1,
        table1_markdown,
        table1_standard_errors,
    )

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    rows, paths, jobs = [], [], []
    for method, display, acc in (("bert", "BERT-base", 0.9), ("deebert", "DeeBERT", 0.85)):
        for task in ("RTE", "MRPC"):
            preds = labels.copy()
            flip = rng.random(200) > acc
            preds[flip] = 1 - preds[flip]
            path = tmp_path / f"{task}-{method}.csv.gz"
            _preds("main", 0.0, "dev", preds, labels).assign(n_executed=12, executed="").to_csv(path, index=False)
            paths.append(str(path))
            jobs.append([task, method, 1])
            rows.append({"task": task, "method": method, "display_name": display, "split": "dev", "variant": "main",
                         "knob_name": "none", "knob": 0.0, "score": 100 * float(np.mean(preds == labels)),
                         "score_min": np.nan, "score_max": np.nan, "n_seeds": 1, "layer_speedup": 1.0,
                         "latency_speedup": 1.0, "in_window": True, "static": False, "note": ""})
    sweep = pd.DataFrame(rows).assign(seed=1)
    selected, specs, pooled = select_rows(sweep, read_job_predictions(paths, jobs), methods=["bert", "deebert"],
                                          lo=1.0, hi=2.0, speedup_col="layer_speedup",
                                          metric_of=lambda t: get_task(t).metric)
    reps = pooled_replicates(pooled, {s.key: s.display_name for s in specs})
    assert sorted(reps.columns) == ["BERT-base|MRPC", "BERT-base|RTE", "DeeBERT|MRPC", "DeeBERT|RTE"]
    # one point a row: the cross-fitted cell is the point's whole-dev score
    assert selected.set_index(["row", "task"]).loc[("deebert", "RTE"), "score"].iloc[0] == pytest.approx(rows[2]["score"])
    table = table1(selected, ["bert", "deebert"], ["MRPC", "RTE"], "layer_speedup", {"profile": "unit"})
    se = table1_standard_errors(table, reps)
    # RTE is accuracy: the bootstrap SE is close to the binomial one
    acc = float(table.set_index("model").at["DeeBERT", "RTE"]) / 100
    assert se[("DeeBERT", "RTE")] == pytest.approx(100 * math.sqrt(acc * (1 - acc) / 200), rel=0.15)
    assert se[("DeeBERT", "avg")] < max(se[("DeeBERT", "RTE")], se[("DeeBERT", "MRPC")])  # averaging two tasks
    md = table1_markdown(table, {"profile": "unit"}, [], se=se)
    assert f"{table.iloc[1]['RTE']:.1f} ±{se[('DeeBERT', 'RTE')]:.1f}" in md
    out = tmp_path / "table1_bootstrap.csv.gz"
    reps.to_csv(out, index=False)
    back = read_replicates(out)
    assert list(back.columns) == list(reps.columns) and np.allclose(back.to_numpy(), reps.to_numpy())
    pd.DataFrame().to_csv(tmp_path / "empty.csv.gz", index=False)
    assert read_replicates(tmp_path / "empty.csv.gz") is None and read_replicates(None) is None
