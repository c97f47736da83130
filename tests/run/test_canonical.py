"""The canonical config: equal configs give equal reprs (what Snakemake compares as a job's params)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dpbert.methods.registry import registered
from dpbert.run.canonical import (
    as_declared,
    canonical_config,
    param_numbers,
    schema_numbers,
    sorted_keys,
)
from dpbert.run.profiles import config_dir, resolve_config
from tests.conftest import MICRO

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
SECTIONS = ("data", "model", "training", "latency", "selection", "resources")


def reversed_keys(value):
    """``value`` with every mapping's keys in reverse order (lists kept): a reordered config file."""
    if isinstance(value, dict):
        return {k: reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


def methods_of(config):
    known = registered()
    return {name: known[name] for name in config["methods"]}


def micro():
    return resolve_config([MICRO], config_dir(ROOT))


def test_sorted_keys_sorts_every_mapping_but_keeps_lists_and_the_methods_order():
    given = {"b": {"z": 1, "a": [{"y": 2, "x": 3}]}, "methods": {"pabee": {"state": "mean", "head_lr": 0.1},
                                                                 "bert": {}}, "a": [3, 1, 2]}
    out = sorted_keys(given)
    assert list(out) == ["a", "b", "methods"]
    assert list(out["b"]) == ["a", "z"] and list(out["b"]["a"][0]) == ["x", "y"]
    assert out["a"] == [3, 1, 2]  # a list's order is meaningful (tasks, a grid): kept
    assert list(out["methods"]) == ["pabee", "bert"]  # Table 1's row order
    assert list(out["methods"]["pabee"]) == ["head_lr", "state"]  # a method's own parameters sorted
    assert list(given["b"]) == ["z", "a"]  # the input is untouched


def test_reordered_sections_give_the_same_repr_section_by_section():
    config = micro()
    canonical = canonical_config(config, SCHEMA, methods_of(config))
    reordered = canonical_config(reversed_keys(config), SCHEMA, methods_of(config))
    for section in SECTIONS:
        if section in config:
            assert repr(reordered[section]) == repr(canonical[section]), section
    for name in config["methods"]:
        assert repr(reordered["methods"][name]) == repr(canonical["methods"][name]), name
    # and the mappings were reordered indeed: without the canonical form the reprs differ
    assert repr(reversed_keys(config)["data"]) != repr(config["data"])
    assert repr(reversed_keys(config)["methods"]["dpbert"]) != repr(config["methods"]["dpbert"])
    # reversing methods: changes its order (the row order), nothing inside a method
    assert list(reordered["methods"]) == list(reversed(list(config["methods"])))


def test_numbers_take_the_type_the_schema_declares():
    schema = {"type": "object", "properties": {
        "lr": {"type": "number"}, "n": {"type": "integer"}, "window": {"type": "array", "items": {"type": "number"}},
        "maybe": {"anyOf": [{"type": "number"}, {"type": "null"}]}, "flag": {"type": "boolean"},
        "free": {"type": "object", "additionalProperties": {"type": "number"}}}}
    out = schema_numbers({"lr": 1, "n": 128.0, "window": [1, 4.0], "maybe": 2, "flag": True, "free": {"x": 3},
                          "other": 5}, schema)
    assert out == {"lr": 1.0, "n": 128, "window": [1.0, 4.0], "maybe": 2.0, "flag": True, "free": {"x": 3.0},
                   "other": 5}
    assert [type(v) for v in (out["lr"], out["n"], out["maybe"], out["other"])] == [float, int, float, int]
    assert schema_numbers({"n": 1.5}, schema)["n"] == 1.5  # a fraction is never cut (the schema check refuses it)


def test_as_declared_leaves_bools_strings_and_ambiguous_types_alone():
    assert as_declared(True, True, False) is True
    assert as_declared("1e-5", True, False) == "1e-5"
    assert type(as_declared(3, True, True)) is int and type(as_declared(3.0, True, True)) is float


def test_method_numbers_take_their_params_annotation():
    dpbert = registered()["dpbert"].Params
    out = param_numbers({"stage2_epochs": 1, "stage3_epochs": 2, "target_rates": [0, 0.3], "state": "cls",
                         "unknown_key": 4}, dpbert)
    assert repr(out) == repr({"stage2_epochs": 1.0, "stage3_epochs": 2.0, "target_rates": [0.0, 0.3],
                              "state": "cls", "unknown_key": 4})
    pabee = registered()["pabee"].Params
    assert type(param_numbers({"patiences": [1, 2]}, pabee)["patiences"][0]) is int  # list[int] stays int


def test_spellings_of_one_number_give_one_repr(tmp_path):
    """epochs 1 / 1.0, lr 0.001 / 1.0e-3, a window of ints or floats, a method's float field 1 / 1.0, and
    --config's text "1e-3" (read by coerce_overrides) all give the canonical config the same repr."""
    plain = micro()
    spelled = yaml.safe_load(MICRO.read_text())
    spelled["training"]["finetune"].update(epochs=1.0, lr=1.0e-3)
    spelled["selection"]["window"] = [1, 4]
    spelled["methods"]["dpbert"] = {**spelled["methods"]["dpbert"], "stage2_epochs": 1.0, "stage3_epochs": 1.0}
    path = tmp_path / "spelled.yaml"
    path.write_text(yaml.safe_dump(spelled, sort_keys=False))
    other = resolve_config([path], config_dir(ROOT))
    overridden = resolve_config([MICRO], config_dir(ROOT), {"training": {"finetune": {"lr": "1e-3"}}})
    assert overridden["training"]["finetune"]["lr"] == 1e-3
    ours = canonical_config(plain, SCHEMA, methods_of(plain))
    assert repr(canonical_config(other, SCHEMA, methods_of(other))) == repr(ours)
    assert repr(canonical_config(overridden, SCHEMA, methods_of(overridden))) == repr(ours)
    assert repr(other) != repr(plain)  # the spellings differ before


@pytest.mark.parametrize("profile", ["micro", "demo", "minilm", "paper"])
def test_canonical_form_is_stable_and_keeps_each_jobs_resources(profile):
    from snakemake.utils import validate

    from dpbert.run.job_resources import job_resources
    from dpbert.run.profiles import profile_files

    config = resolve_config([profile_files(config_dir(ROOT))[profile]], config_dir(ROOT))
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    canonical = canonical_config(config, SCHEMA, methods_of(config))
    assert canonical == config  # the same values (1 == 1.0), only the spelling and the order change
    assert repr(canonical_config(canonical, SCHEMA, methods_of(config))) == repr(canonical)
    assert job_resources(canonical) == job_resources(config)
