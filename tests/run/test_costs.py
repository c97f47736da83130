"""Per-example costs: a stored measurement replaces the typed ones (which stay the marked fallback), the
token cap in the counts, and the minilm profile's predicted job times against its measured ones."""

from __future__ import annotations

import json

import pytest
from snakemake.utils import validate

from dpbert.run.config_check import ConfigError
from dpbert.run.costs import (
    costs_file,
    full_length_examples,
    measurement_key,
    plan_jobs,
    profile_costs,
    read_measurements,
    store_measurement,
)
from dpbert.run.job_resources import job_resources
from dpbert.run.profiles import config_dir, resolve_config
from tests.conftest import MICRO, ROOT

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


def _config(path=MICRO, **resources):
    cfg = resolve_config([path], config_dir(ROOT))
    cfg["resources"] = {**cfg.get("resources", {}), **resources}
    validate(cfg, str(SCHEMA), set_default=True)
    return cfg


def test_a_stored_measurement_of_the_profile_replaces_its_typed_costs(tmp_path):
    path = tmp_path / "costs.json"
    cfg = _config(costs_file=str(path), train_ms=1.0, forward_ms=1.0)
    typed = profile_costs(cfg, ROOT)
    assert not typed.measured and typed.source.startswith("assumed (resources.train_ms / forward_ms;")
    assert (typed.train_s, typed.forward_s) == (0.001, 0.001)
    before = job_resources(cfg, ROOT)
    store_measurement(path, {"key": measurement_key(cfg), "train_ms": 500000.0, "forward_ms": 2.0, "device": "cpu (test)"})
    measured = profile_costs(cfg, ROOT)
    assert measured.measured and (measured.train_s, measured.forward_s) == (500.0, 0.002)
    assert measured.source == f"measured on cpu (test) ({path})"
    after = job_resources(cfg, ROOT)  # the DAG's requests follow the measurement
    assert after["SST-2/bert/1/main"]["runtime"] > before["SST-2/bert/1/main"]["runtime"]
    # another batch size is another measurement: the typed costs again, marked
    other = _config(costs_file=str(path), train_ms=1.0, forward_ms=1.0)
    other["training"]["finetune"]["batch_size"] = 8
    assert profile_costs(other, ROOT) == typed
    store_measurement(path, {"key": measurement_key(cfg), "train_ms": 7.0, "forward_ms": 2.0})  # replaces, not adds
    assert [e["train_ms"] for e in read_measurements(path)] == [7.0]


def test_the_default_file_is_per_device_and_precision():
    cfg = _config()
    assert costs_file(cfg, ROOT) == ROOT / "workflow/costs/cpu-fp32.json"
    cfg["training"]["precision"] = "bf16"
    assert costs_file(cfg, ROOT) == ROOT / "workflow/costs/cpu-bf16.json"
    paper = _config(ROOT / "workflow/config/paper.yaml")
    assert costs_file(paper, ROOT) == ROOT / "workflow/costs/cuda-fp32.json"


def test_a_file_that_is_no_measurement_is_refused_naming_it(tmp_path):
    path = tmp_path / "costs.json"
    path.write_text(json.dumps({"train_ms": 3}))
    with pytest.raises(ConfigError, match=f"{path} is not a cost measurement file"):
        profile_costs(_config(costs_file=str(path)), ROOT)


def test_the_token_cap_bounds_an_epochs_full_length_examples():
    cfg = _config()
    assert full_length_examples(100, cfg) == 100.0  # no cap: every example at full length
    cfg["data"]["max_train_tokens"] = 480
    assert full_length_examples(100, cfg) == 480 / cfg["model"]["max_length"]  # 10 examples of 48 tokens
    assert full_length_examples(5, cfg) == 5.0


def test_the_minilm_profile_reads_the_committed_measurement_of_this_cpu():
    cfg = _config(ROOT / "workflow/config/minilm.yaml")
    costs = profile_costs(cfg, ROOT)
    assert costs.measured and costs.source.endswith("(workflow/costs/cpu-fp32.json)"), costs
    entry = next(e for e in read_measurements(ROOT / "workflow/costs/cpu-fp32.json") if e["key"] == measurement_key(cfg))
    assert entry["key"]["shape"]["num_hidden_layers"] == 6 and entry["key"]["shape"]["hidden_size"] == 384
    assert (costs.train_s, costs.forward_s) == (entry["train_ms"] / 1000, entry["forward_ms"] / 1000)
    # the DAG's estimates use it, no longer the typed costs (every minilm job's request is the 90-minute floor)
    from dpbert.run.job_resources import job_estimates

    assert job_estimates(cfg, ROOT)["CoLA/bert/1/main"].train_s == pytest.approx(
        job_estimates(cfg)["CoLA/bert/1/main"].train_s * costs.train_s / (cfg["resources"]["train_ms"] / 1000))


def test_minilm_predicted_job_times_are_within_2x_of_the_measured_ones():
    """The cost model at the committed measurement against the minilm run's own job times (total_s of each
    job's phases.json, copied into tests/run/minilm_phases.json; each was one job that trained every variant
    of a method, then swept it): every (task, method, seed), its training jobs and sweep together, and every
    task's jobs together."""
    cfg = _config(ROOT / "workflow/config/minilm.yaml")
    costs = profile_costs(cfg, ROOT)
    measured = json.loads((ROOT / "tests/run/minilm_phases.json").read_text())["jobs"]
    predicted: dict[str, float] = {}
    for j in plan_jobs(cfg, costs.train_s, costs.forward_s):  # "<task>/<method>/<seed>[/<variant>]"
        run = "/".join(j.name.split("/")[:3])
        predicted[run] = predicted.get(run, 0.0) + j.seconds
    assert set(measured) <= set(predicted) and len(measured) == 30
    ratios = {name: predicted[name] / m["total_s"] for name, m in measured.items()}
    assert all(0.5 <= r <= 2.0 for r in ratios.values()), {n: round(r, 2) for n, r in ratios.items()}
    for task in {name.split("/")[0] for name in measured}:
        mine = [n for n in measured if n.startswith(f"{task}/")]
        ratio = sum(predicted[n] for n in mine) / sum(measured[n]["total_s"] for n in mine)
        assert 0.5 <= ratio <= 2.0, (task, ratio)
