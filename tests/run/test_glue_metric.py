"""The GLUE metrics through `evaluate` (dpbert/run/glue_metric, loaded by path) agree with dpbert.run.metrics;
dpbert.run.metrics' scipy correlations agree with the hand-written ones they replaced."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dpbert.run import glue_metric
from dpbert.run import metrics as M

ROOT = Path(__file__).resolve().parents[2]
# config name -> (dpbert.run.metrics kind, {evaluate key: dpbert.run.metrics key}), as dpbert.data.tasks assigns them
CONFIGS = {
    "cola": ("mcc", {"matthews_correlation": "mcc"}),
    "sst2": ("acc", {"accuracy": "accuracy"}),
    "mrpc": ("acc_f1", {"accuracy": "accuracy", "f1": "f1"}),
    "qqp": ("acc_f1", {"accuracy": "accuracy", "f1": "f1"}),
    "stsb": ("pearson_spearman", {"pearson": "pearson", "spearmanr": "spearman"}),
    "mnli": ("acc", {"accuracy": "accuracy"}),
    "qnli": ("acc", {"accuracy": "accuracy"}),
    "rte": ("acc", {"accuracy": "accuracy"}),
}


def random_inputs(config: str, rng: np.random.Generator, n: int):
    if config == "stsb":  # scores on a 0.2 grid: ties, as in STS-B's labels
        return np.round(rng.uniform(0, 5, n) * 5) / 5, np.round(rng.uniform(0, 5, n) * 5) / 5
    k = 3 if config == "mnli" else 2
    y = rng.integers(0, k, n)
    p = np.where(rng.random(n) < 0.7, y, rng.integers(0, k, n))  # better than chance
    return p, y


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    cache = tmp_path_factory.mktemp("evaluate_cache")
    return {c: glue_metric.load(c, cache_dir=str(cache)) for c in CONFIGS}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_evaluate_module_agrees_with_dpbert_metrics(config, loaded):
    kind, keys = CONFIGS[config]
    rng = np.random.default_rng(sum(map(ord, config)))
    for n in (2, 7, 50, 400):
        p, y = random_inputs(config, rng, n)
        got = loaded[config].compute(predictions=p, references=y)
        want = M.glue_metrics(kind, p, y)
        assert set(got) == set(keys)
        for ours, theirs in keys.items():
            assert 100 * got[ours] == pytest.approx(want[theirs], abs=1e-10), (config, n, ours)


def test_evaluate_module_degenerate_cases_follow_dpbert_metrics(loaded):
    stsb, cola, mrpc = loaded["stsb"], loaded["cola"], loaded["mrpc"]
    assert stsb.compute(predictions=[2.0, 2.0, 2.0], references=[1.0, 2.0, 3.0]) == {"pearson": 0.0, "spearmanr": 0.0}
    assert stsb.compute(predictions=[1.0], references=[3.0]) == {"pearson": 0.0, "spearmanr": 0.0}
    assert cola.compute(predictions=[1, 1, 1, 1], references=[0, 1, 0, 1]) == {"matthews_correlation": 0.0}
    assert mrpc.compute(predictions=[0, 0], references=[0, 0]) == {"accuracy": 1.0, "f1": 0.0}


def test_unknown_config_is_named_with_the_valid_ones():
    with pytest.raises(KeyError, match=r"no config 'sst-2': use one of cola, sst2, mrpc"):
        glue_metric.load("sst-2")


def test_the_metric_module_is_packaged(tmp_path):
    """An installed dpbert (a wheel, not this checkout) ships glue_metric.py beside its __init__."""
    src = tmp_path / "src"  # a copy: setuptools writes build/ and *.egg-info beside the sources
    for package in ("dpbert", "baselines"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), str(src)], capture_output=True, text=True, timeout=300, check=False)
    if build.returncode != 0 and "No module named" in build.stderr:
        pytest.skip(f"cannot build a wheel here: {build.stderr.strip().splitlines()[-1]}")
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"dpbert/run/glue_metric/__init__.py", "dpbert/run/glue_metric/glue_metric.py"} <= set(names)


# ---------------------------------------------------------------- the hub's glue metric

def test_agrees_with_the_hubs_glue_metric(loaded):
    from dpbert.data.hub import hub_reachable

    if not hub_reachable():
        pytest.skip("the Hugging Face hub is unreachable: the hub's glue metric cannot be downloaded")
    pytest.importorskip("sklearn")  # the hub's glue metric script imports scikit-learn
    import evaluate

    rng = np.random.default_rng(0)
    for config in CONFIGS:
        hub = evaluate.load("glue", config)
        p, y = random_inputs(config, rng, 300)
        if config == "stsb":  # the hub's metric reads float32 scores; feed it values float32 holds exactly
            p, y = p.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64)
        theirs = hub.compute(predictions=p, references=y)
        ours = loaded[config].compute(predictions=p, references=y)
        assert set(theirs) == set(ours), config
        for key in ours:
            assert ours[key] == pytest.approx(float(theirs[key]), abs=1e-6), (config, key)


# ---------------------------------------------------------------- scipy correlations vs the hand-written ones

def _pearson_by_hand(a: np.ndarray, b: np.ndarray) -> float:
    """dpbert.run.metrics.pearson before it used scipy.stats.pearsonr."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    if a.size < 2:
        return 0.0
    da, db = a - a.mean(), b - b.mean()
    denom = float(np.sqrt(np.dot(da, da) * np.dot(db, db)))
    if denom == 0.0 or not np.isfinite(denom):
        return 0.0
    return float(np.clip(float(np.dot(da, db) / denom), -1.0, 1.0))


def _ranks_by_hand(v: np.ndarray) -> np.ndarray:
    """Average 1-based ranks (the hand-written ranking dpbert.run.metrics.spearman used)."""
    order = np.argsort(v, kind="mergesort")
    sorted_v, ranks, i = v[order], np.empty(v.size), 0
    while i < v.size:
        j = i
        while j + 1 < v.size and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i: j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


@pytest.mark.parametrize("seed", range(5))
def test_scipy_correlations_equal_the_hand_written_ones(seed):
    rng = np.random.default_rng(seed)
    for n in (2, 3, 10, 200, 1500):
        x = rng.normal(size=n)
        y = 0.6 * x + rng.normal(size=n)
        tied_x, tied_y = np.round(x), np.round(y * 2) / 2  # many ties
        for a, b in ((x, y), (tied_x, tied_y), (x, tied_y)):
            assert abs(M.pearson(a, b) - _pearson_by_hand(a, b)) < 1e-12
            assert abs(M.spearman(a, b) - _pearson_by_hand(_ranks_by_hand(a), _ranks_by_hand(b))) < 1e-12
    assert M.pearson([3.0, 3.0, 3.0], [1.0, 2.0, 5.0]) == 0.0 and M.spearman([1.0], [2.0]) == 0.0
