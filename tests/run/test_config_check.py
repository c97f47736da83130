"""Bad config values are refused before any job, each with a short message naming the key, the value
and the fix. The check functions are called directly (fast); two dry runs go through snakemake."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from snakemake.utils import validate

from dpbert.data.tasks import get_task
from dpbert.methods.interface import (
    _REGISTRY,
    PARAM_RULES,
    Method,
    MethodConfigError,
    MethodParams,
    check_params,
    depth_spec,
    make_params,
    not_a_depth,
)
from dpbert.methods.registry import build_method, get_method, registered
from dpbert.run.config_check import (
    ConfigError,
    backbone_depth,
    check_config,
    check_devices,
    check_reporting_tasks,
    check_schema,
    check_small,
    check_vocabulary,
    check_window,
    check_window_reach,
    position_limit,
    reporting_defaults,
)
from tests.conftest import MICRO, with_changes

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
PROFILES = [ROOT / "workflow/config/config.yaml", ROOT / "workflow/config/minilm.yaml",
            ROOT / "workflow/config/paper.yaml", MICRO]


def load(path: Path = MICRO, **changes) -> dict:
    """A profile as snakemake hands it to check_config (schema defaults filled in), with changes."""
    cfg = with_changes(yaml.safe_load(path.read_text()), **changes)
    check_schema(cfg, SCHEMA)
    validate(cfg, str(SCHEMA), set_default=True)
    return cfg


def refused(cfg: dict) -> str:
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    return str(err.value)


def param_error(method: str, **values) -> str:
    with pytest.raises(MethodConfigError) as err:
        check_params(get_method(method).Params, values, method)
    return str(err.value)


# ---------------------------------------------------------------- every profile still passes

@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_every_profile_passes_the_checks(path, monkeypatch, tmp_path):
    cfg = load(path)
    if cfg["data"]["source"] == "glue_tsv":  # the minilm profile's GLUE folder is the user's
        cfg["data"]["source"] = "synthetic"
    if "hub" in (cfg["data"]["source"], cfg["model"]["source"]):  # the paper profile: no network here
        monkeypatch.setattr("dpbert.data.hub.hub_reachable", lambda: True)
    assert "dpbert" in check_config(cfg)


# ---------------------------------------------------------------- selection.window

@pytest.mark.parametrize("window", [[0.01, 100], [0.5, 2.0], [1.3, 60.0], [1.3, float("inf")], [0.99, 1.5]])
def test_window_outside_a_sane_range_is_refused(window):
    with pytest.raises(ConfigError, match=r"selection\.window .*1 <= min <= max <= 50"):
        check_window({"window": window})


def test_sane_windows_pass():
    for window in ([1.30, 1.96], [1.0, 4.0], [1.0, 1.0], [2, 50]):
        check_window({"window": window})
    with pytest.raises(ConfigError, match="minimum is larger than its maximum"):
        check_window({"window": [1.96, 1.30]})


def test_an_empty_curve_beyond_the_window_is_refused():
    with pytest.raises(ConfigError, match="curve_up_to is 1.5.*min_points_in_curve: 0"):
        check_window({"window": [1.30, 1.96], "min_points_in_curve": 2, "curve_up_to": 1.5})
    check_window({"window": [1.30, 1.96], "min_points_in_curve": 0, "curve_up_to": 1.5})  # off: not read


# ---------------------------------------------------------------- knob grids and ranges

def test_dpbert_threshold_on_a_probability_must_lie_in_0_1():
    msg = param_error("dpbert", thresholds=[2])
    assert msg.startswith("methods.dpbert.thresholds has 2") and "[0, 1]" in msg and "infinite speed-up" in msg
    assert "methods.dpbert_soft.thresholds" in param_error("dpbert_soft", thresholds=[0.5, -0.1])
    check_params(get_method("dpbert").Params, {"thresholds": [0, 0.5, 1]}, "dpbert")


def test_target_rates_must_be_non_empty_and_in_0_1():
    msg = param_error("dpbert", target_rates=[])
    assert "methods.dpbert.target_rates is an empty list" in msg and "[0.25, 0.35, 0.45]" in msg
    assert "[0, 1)" in param_error("dpbert", target_rates=[0.3, 1.0])


@pytest.mark.parametrize("method,key", [("bert_truncated", "layers"), ("layerdrop", "kept_layers"),
                                        ("pabee", "patiences"), ("deebert", "entropies"),
                                        ("berxit", "thresholds"), ("dact_bert", "taus"),
                                        ("dact_bert", "regression_thresholds")])
def test_empty_knob_grids_are_refused(method, key):
    assert f"methods.{method}.{key} is an empty list" in param_error(method, **{key: []})


def test_ranges_of_other_parameters():
    assert "methods.layerdrop.p is 1.0, but it must lie in [0, 1)" in param_error("layerdrop", p=1.0)
    assert "(0, inf)" in param_error("dpbert", stage2_lr=0)
    assert "methods.pabee.batch_size is 0" in param_error("pabee", batch_size=0)
    assert "[0, 1]" in param_error("distilbert", alpha=1.5)
    assert "finite" in param_error("dpbert", beta=float("inf"))
    msg = param_error("dpbert", state="pooled")
    assert "methods.dpbert.state is 'pooled'" in msg and "cls, mean" in msg
    assert "did you mean 'greedy'" in param_error("dpbert", baseline="gredy")


# ---------------------------------------------------------------- types from the Params annotations

def test_a_string_where_a_number_belongs_is_refused_with_the_key():
    msg = param_error("dpbert", beta="strong")
    assert msg == "methods.dpbert.beta is 'strong' (a string), but it must be a number; its default is 1.0."
    # YAML 1.1 reads 1e-3 (no decimal point) as a string: say so
    assert "write 1.0e-3" in param_error("dpbert", stage2_lr="1e-3")
    msg = param_error("berxit", thresholds=[0.5, "0.3"])
    assert msg.startswith("methods.berxit.thresholds[1] is '0.3' (a string)") and "a number" in msg
    assert "must be a list of integers" in param_error("bert_truncated", layers=9)


def test_types_int_for_float_is_fine_bool_is_no_number():
    Params = get_method("dpbert").Params
    check_params(Params, {"beta": 20, "stage3_epochs": None, "batch_size": None, "cost_normalized": False}, "dpbert")
    check_params(get_method("distilbert").Params, {"teacher_layers": None, "reference_depth": 6}, "distilbert")
    assert "must be an integer or null" in param_error("dpbert", batch_size=True)
    assert "must be an integer or null" in param_error("dpbert", batch_size=8.0)
    assert "must be a number" in param_error("dpbert", beta=True)
    assert "must be true or false" in param_error("dpbert", cost_normalized=1)
    assert "must be an integer" in param_error("pabee", patiences=[1, 2.5])
    assert "must be a string" in param_error("distilbert", hub_name=3)


@pytest.mark.parametrize("name", sorted(registered()))
def test_every_default_passes_its_own_rules(name):
    """The rules agree with the methods' own defaults: each default, written out in the config, passes."""
    cls = get_method(name)
    defaults = asdict_defaults(cls.Params)
    check_params(cls.Params, defaults, name)
    make_params(cls.Params, defaults, name)


def asdict_defaults(cls) -> dict:
    return {f.name: getattr(cls(), f.name) for f in fields(cls)}


def test_choices_repeat_the_method_modules_constants():
    from baselines.distilbert import KINDS
    from dpbert.methods.dpbert import RATE_ESTIMATES, RATE_GRADS
    from dpbert.model.engine import STATE_KINDS

    assert PARAM_RULES["state"][0] == STATE_KINDS
    assert PARAM_RULES["student"][0] == KINDS
    assert PARAM_RULES["rate_estimate"][0] == RATE_ESTIMATES
    assert PARAM_RULES["rate_grad"][0] == RATE_GRADS


def test_a_params_class_may_declare_its_own_rules():
    @dataclass
    class P(MethodParams):
        width: float = 1.0
        grid: list[int] = field(default_factory=lambda: [1])
        p: float = 0.5
        param_rules: ClassVar[dict] = {"width": ("(0, 2]", "a width"), "p": ("[0, 10]", "not a probability here")}

    check_params(P, {"width": 2, "grid": [3], "p": 5.0}, "toy")
    with pytest.raises(MethodConfigError, match=r"methods\.toy\.width is 2\.5, but it must lie in \(0, 2\]: a width"):
        check_params(P, {"width": 2.5}, "toy")


def test_jobs_get_the_same_checks():
    """make_params runs them, so a job building its method refuses what the config check refuses."""
    with pytest.raises(MethodConfigError, match="methods.dpbert.beta is 'strong'"):
        build_method("dpbert", {"beta": "strong"}, get_task("SST-2"))
    assert "methods.dpbert.thresholds has 2" in refused(load(methods={"bert": {}, "dpbert": {"thresholds": [2]}}))


# ---------------------------------------------------------------- layers against the backbone's depth

def test_depths_deeper_than_the_model_are_refused():
    msg = refused(load(methods={"bert": {}, "bert_truncated": {"layers": [5, 2]}}))
    assert msg.startswith("methods.bert_truncated.layers has 5, but the backbone has 4 layers")
    assert "1..4" in msg
    assert "kept_layers has 6" in refused(load(methods={"bert": {}, "layerdrop": {"kept_layers": [6]}}))
    assert "0..3" in refused(load(methods={"bert": {}, "distilbert": {"teacher_layers": [0, 4]}}))
    # a default made for 12 layers on a 4-layer backbone
    assert "(its default; set it for this backbone)" in refused(load(methods={"bert": {}, "bert_truncated": {}}))
    # a patience above the depth only never fires: fine
    check_config(load(methods={"bert": {}, "pabee": {"patiences": [2, 10]}}))


@dataclass
class _DepthParams(MethodParams):
    """A new fixed-depth method's parameters, none declared with depth_field: their names say depth."""
    depth: int = 2
    exit_layer: float = 1.0
    kept_layers: list[int] = field(default_factory=lambda: [1])
    layer_index: int = 0
    lr_per_layer: float = not_a_depth(default=1e-3)  # named like a depth, declared as none


class _FixedDepth(Method):
    name, display_name, knob_name, static, Params = "toy_fixed_depth", "Toy", "depth", True, _DepthParams


@pytest.mark.parametrize("given,expect", [
    ({"depth": 8}, "methods.toy_fixed_depth.depth is 8, but the backbone has 4 layers"),
    ({"exit_layer": 8.0}, "methods.toy_fixed_depth.exit_layer is 8, but the backbone has 4 layers"),
    ({"kept_layers": [2, 5]}, "methods.toy_fixed_depth.kept_layers has 5, but the backbone has 4 layers"),
    ({"depth": 0}, "methods.toy_fixed_depth.depth is 0, but"),
    ({"layer_index": 4}, ("0-based layer indices (a layer index by its name): use values in 0..3, or a "
                          "backbone of at least 5 layers")),
])
def test_a_new_methods_depth_named_parameter_is_checked_whatever_its_type(monkeypatch, given, expect):
    """A plain ``depth: int`` (no depth_field) of 8 on the 4-layer micro model is refused before any job,
    not inside it with torch's IndexError."""
    monkeypatch.setitem(_REGISTRY, _FixedDepth.name, _FixedDepth)
    msg = refused(load(methods={"bert": {}, "toy_fixed_depth": given}))
    assert expect in msg and "(model.small.num_hidden_layers)" in msg, msg
    assert "not_a_depth()" in msg and len(msg.splitlines()) == 1  # one paragraph, with the fix
    check_config(load(methods={"bert": {}, "toy_fixed_depth": {"depth": 4, "kept_layers": [4, 1],
                                                               "layer_index": 3, "lr_per_layer": 50.0}}))


def test_a_depth_default_too_deep_for_the_backbone_is_named_as_the_default(monkeypatch):
    @dataclass
    class P(MethodParams):
        depth: int = 8

    class M(_FixedDepth):
        name, Params = "toy_deep_default", P

    monkeypatch.setitem(_REGISTRY, M.name, M)
    msg = refused(load(methods={"bert": {}, "toy_deep_default": {}}))
    assert msg.startswith("methods.toy_deep_default.depth is 8 (its default; set it for this backbone)"), msg


def test_depth_spec_reads_declarations_then_names():
    specs = {f.name: depth_spec(f) for f in fields(_DepthParams)}
    assert specs == {"depth": (1, 0, "numbers of layers (a depth by its name)"),
                     "exit_layer": (1, 0, "numbers of layers (a depth by its name)"),
                     "kept_layers": (1, 0, "numbers of layers (a depth by its name)"),
                     "layer_index": (0, -1, "0-based layer indices (a layer index by its name)"),
                     "lr_per_layer": None}
    declared = {f.name: depth_spec(f) for f in fields(get_method("distilbert").Params)}
    assert declared["teacher_layers"] == (0, -1, "0-based indices of teacher layers")
    assert declared["reference_depth"] == (1, 0, "numbers of layers (a depth by its name)")
    assert declared["temperature"] is None and declared["hub_name"] is None


def test_backbone_depth_per_source(tmp_path, monkeypatch):
    assert backbone_depth({"source": "small", "small": {"num_hidden_layers": 3}})[0] == 3
    assert backbone_depth({"source": "small", "small": {}})[0] == 12  # BertConfig's default
    assert backbone_depth({"source": "minilm"})[0] == 6  # the package's config.json, or 6 without it
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"num_hidden_layers": 3}))
    assert backbone_depth({"source": "local", "name": str(folder)})[0] == 3
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: None)
    assert backbone_depth({"source": "hub", "name": "bert-base-uncased"})[0] == 12
    assert backbone_depth({"source": "hub", "name": "someone/unknown-model"})[0] is None  # no check
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: str(folder / "config.json"))
    assert backbone_depth({"source": "hub", "name": "bert-base-uncased"})[0] == 3  # the cached config says so


def test_a_local_model_folder_that_does_not_exist_is_refused(tmp_path):
    msg = refused(load(model={"source": "local", "name": str(tmp_path / "nope")}))
    assert f"model.name '{tmp_path / 'nope'}' is not a model folder (it does not exist" in msg
    (tmp_path / "empty").mkdir()
    assert "no config.json there" in refused(load(model={"source": "local", "name": str(tmp_path / "empty")}))


# ---------------------------------------------------------------- model.small

def test_model_small_misspelled_key_suggests_the_closest():
    with pytest.raises(ConfigError, match="model.small has the unknown key 'num_hidden_layer': did you mean "
                                          "'num_hidden_layers'"):
        check_small({"num_hidden_layer": 4, "hidden_size": 32})


def test_model_small_types_and_shapes():
    with pytest.raises(ConfigError, match="model.small.hidden_size is '64', but it must be an integer"):
        check_small({"hidden_size": "64"})
    with pytest.raises(ConfigError, match="vocab_size is set, but the harness sets it"):
        check_small({"vocab_size": 100})
    with pytest.raises(ConfigError, match="not a multiple of num_attention_heads"):
        check_small({"hidden_size": 30, "num_attention_heads": 4})
    with pytest.raises(ConfigError, match="dropout probability"):
        check_small({"hidden_dropout_prob": 1.5})
    assert check_small({"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2,
                        "hidden_dropout_prob": 0}) == 2
    assert "model.small has the unknown key" in refused(load(model__small={"num_layers": 4}))


# ---------------------------------------------------------------- devices

@pytest.mark.parametrize("section", ["training", "latency"])
def test_device_gpu_is_refused_with_the_list(section):
    cfg = {"training": {"device": "cpu"}, "latency": {"device": "cpu"}}
    cfg[section]["device"] = "gpu"
    with pytest.raises(ConfigError) as err:
        check_devices(cfg)
    assert str(err.value).startswith(f"{section}.device is 'gpu', but it must be one of cpu, cuda, cuda:N, auto, mps")
    assert "an NVIDIA GPU is 'cuda'" in str(err.value)
    for ok in ("cpu", "cuda", "cuda:1", "auto", "mps"):
        check_devices({section: {"device": ok}})
    with pytest.raises(ConfigError):
        check_devices({section: {"device": "cuda:x"}})


# ---------------------------------------------------------------- the schema, in a few lines

@pytest.mark.parametrize("change,expect", [
    ({"trainig": {"device": "cpu"}}, "config key trainig is unknown: did you mean 'training'?"),
    ({"selection": {"windw": [1, 2]}}, "config key selection.windw is unknown: did you mean 'window'?"),
    ({"training": {"finetune": {"lr": "abc"}}}, "config key training.finetune.lr is 'abc', but it must be a number."),
    ({"training": {"finetune": {"lr": "5e-4"}}}, "write 5.0e-4"),
    ({"selection": {"speedup": "latncy"}}, "must be one of 'layer', 'latency' (did you mean latency?)"),
    ({"seeds": [1, -2]}, "config key seeds[1] is -2, but it must be >= 0."),
    ({"seeds": [2**32]}, "config key seeds[0] is 4294967296, but it must be <= 4294967295."),
    ({"tasks": []}, "config key tasks is [], but it must have at least 1 item(s)."),
    ({"methods": {"dpbert": 3}}, "config key methods.dpbert is 3, but it must be a mapping"),
    ({"training": {"precision": "bfl16"}}, "must be one of 'fp32', 'bf16', 'fp16' (did you mean bf16?)"),
    ({"latency": {"precision": "half"}}, "config key latency.precision is 'half', but it must be one of 'fp32'"),
])
def test_schema_errors_are_a_few_lines_naming_the_key(change, expect):
    cfg = yaml.safe_load(MICRO.read_text())
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            merged = copy.deepcopy(cfg[key])
            for k, v in value.items():
                merged[k] = {**merged[k], **v} if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
            cfg[key] = merged
        else:
            cfg[key] = value
    with pytest.raises(ConfigError) as err:
        check_schema(cfg, SCHEMA)
    msg = str(err.value)
    assert expect in msg and len(msg.splitlines()) <= 4, msg


# ---------------------------------------------------------------- through snakemake (a few seconds each)

def dry_run(tmp_path: Path, cfg: dict) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
                             str(tmp_path), "-n", "--configfile", str(path)],
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    return result.stdout + result.stderr


def test_dry_run_refuses_a_string_parameter_before_any_job(tmp_path):
    cfg = yaml.safe_load(MICRO.read_text())
    cfg["methods"]["dpbert"] = {**cfg["methods"]["dpbert"], "beta": "strong"}
    out = dry_run(tmp_path, cfg)
    assert "methods.dpbert.beta is 'strong' (a string), but it must be a number" in out, out[-2000:]
    assert "Traceback" not in out and "rule " not in out


def test_dry_run_schema_error_is_short(tmp_path):
    cfg = yaml.safe_load(MICRO.read_text())
    cfg["trainig"] = cfg.pop("training")  # snakemake's own message: 900 lines (the schema and the config)
    out = dry_run(tmp_path, cfg)
    assert "config key trainig is unknown: did you mean 'training'?" in out, out[-2000:]
    assert len(out.strip().splitlines()) < 15, out


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_precision_defaults_to_fp32_in_every_profile(path):
    cfg = load(path)
    assert cfg["training"]["precision"] == cfg["latency"]["precision"] == "fp32"


# ---------------------------------------------------------------- fail before the queue (issue 31, item 7)

def test_a_window_above_the_backbones_reach_is_refused():
    msg = refused(load(selection__window=[4.5, 6.0]))  # micro: 4 layers, so at most 4x
    assert "selection.window is [4.5, 6], but the backbone has 4 layers (model.small.num_hidden_layers)" in msg
    assert "at most 4x" in msg and "Lower the window's minimum to at most 4" in msg
    check_window_reach([4.0, 6.0], 4, "x")  # 4x is reachable: every example leaves after one layer
    with pytest.raises(ConfigError, match=r"\[1.3, 1.96\], but the backbone has 1 layers"):
        check_window_reach([1.3, 1.96], 1, "x")


def test_reporting_tasks_the_profile_does_not_run_are_refused():
    check_config(load(reporting={"figure3_tasks": ["SST-2", "QNLI"]}))  # the paper's list: taken as the default
    msg = refused(load(reporting={"figure3_tasks": ["SST-2", "sst2", "RTE"]}))
    assert msg.startswith("reporting.figure3_tasks is [\"SST-2\", \"sst2\", \"RTE\"], but sst2, RTE are not in "
                          "tasks (SST-2, STS-B)")
    assert "sst2: did you mean SST-2?" in msg and "remove reporting.figure3_tasks" in msg
    assert "reporting.table2_tasks" in refused(load(reporting={"table2_tasks": ["MRPC"]}))
    # the schema's defaults (the paper's tasks) stand for those the profile runs: micro runs neither QNLI nor RTE
    check_reporting_tasks({"table2_tasks": ["RTE", "MRPC", "SST-2", "STS-B"], "figure3_tasks": ["SST-2", "QNLI"]},
                          ["SST-2"], reporting_defaults())
    assert reporting_defaults()["figure3_tasks"] == ["SST-2", "QNLI"]
    check_config(load(reporting={"figure3_tasks": ["STS-B"], "table2_tasks": ["SST-2", "STS-B"]}))


def test_the_reporting_defaults_are_not_refused_after_the_schema_fills_them():
    cfg = load(tasks=["STS-B"], methods={"bert": {}})
    assert cfg["reporting"]["figure3_tasks"] == ["SST-2", "QNLI"]
    check_config(cfg)


def test_a_method_with_no_task_it_covers_is_refused():
    msg = refused(load(tasks=["STS-B"], methods={"bert": {}, "deebert": {}}))
    assert msg.startswith("methods.deebert covers no task of this profile: tasks is [STS-B]")
    assert "supports_regression is False" in msg and "remove methods.deebert" in msg
    assert "(CoLA, MNLI, SST-2, QNLI, MRPC, QQP, RTE)" in msg
    check_config(load(tasks=["STS-B", "RTE"], methods={"bert": {}, "deebert": {}}))  # RTE is a job


def test_max_length_above_the_position_embeddings_is_refused():
    msg = refused(load(model__max_length=128))  # micro: max_position_embeddings 64
    assert msg.startswith("model.max_length is 128, but the backbone has 64 position embeddings "
                          "(model.small.max_position_embeddings)")
    assert "at most 64" in msg and "raise model.small.max_position_embeddings" in msg
    small = {"num_hidden_layers": 4, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
    assert "has 512 position embeddings (BertConfig's default" in refused(
        load(model={"source": "small", "max_length": 1024, "small": small}))
    assert "512 position embeddings (all-MiniLM-L6-v2)" in refused(load(model={"source": "minilm", "max_length": 600}))
    check_config(load(model={"source": "minilm", "max_length": 512}))


def test_position_limit_per_source(tmp_path, monkeypatch):
    assert position_limit({"source": "small", "small": {"max_position_embeddings": 64}})[0] == 64
    assert position_limit({"source": "small", "small": {}})[0] == 512
    assert position_limit({"source": "minilm"})[0] == 512
    (tmp_path / "config.json").write_text(json.dumps({"num_hidden_layers": 3, "max_position_embeddings": 256}))
    assert position_limit({"source": "local", "name": str(tmp_path)})[0] == 256
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: None)
    assert position_limit({"source": "hub", "name": "bert-base-uncased"})[0] is None  # not cached: no check
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: str(tmp_path / "config.json"))
    assert position_limit({"source": "hub", "name": "bert-base-uncased"}) == (
        256, "the cached config of bert-base-uncased")


def test_real_glue_text_with_the_small_models_vocabulary_is_refused(tmp_path):
    glue = tmp_path / "glue"
    for task in ("SST-2", "STS-B"):
        (glue / task).mkdir(parents=True)
        for split in ("train.tsv", "dev.tsv"):
            (glue / task / split).write_text("sentence\tlabel\nfine words\t1\n")
    msg = refused(load(data={"source": "glue_tsv", "data_dir": str(glue)}))
    assert msg.startswith("data.source is glue_tsv (real GLUE text), but model.source is small")
    assert "[UNK]" in msg and "model.source: minilm" in msg
    check_vocabulary("synthetic", "small")
    check_vocabulary("glue_tsv", "minilm")
    with pytest.raises(ConfigError, match="data.source is hub"):
        check_vocabulary("hub", "small")
