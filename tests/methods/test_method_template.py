"""The template test of a new method: copy this file to tests/baselines/test_<your method>.py, put your
method's config entry in CASES (its registered name and the parameters of its `methods:` entry), and run
`PYTHONPATH=$PWD python -m pytest -q tests/baselines/test_<your method>.py` (seconds on one core).

On the micro profile (tests/config/micro.yaml: a 4-layer BERT, 64 training and 24 dev synthetic SST-2
examples) it checks what a full run would need of the method:

1. the config check, which runs before any job, accepts `methods: {bert: {}, <name>: <params>}` (the
   parameters' types and ranges, and every depth against the backbone's 4 layers);
2. ``dpbert.run.job.run_method`` (the method's training jobs, one per variant, as the workflow's
   train_variant rule runs them, then its sweep, the run_method rule, in one process) trains the
   method from the stage-1 BERT-base model and sweeps it: one sweep row per variant and knob value,
   executed layers inside the backbone, the layer speed-up 4 / mean executed layers, a static method
   one depth for every input;
3. ``predict_knobs`` (what the sweep scores with) equals ``predict_one`` (what latency times), knob by
   knob, bit for bit.

The three cases below are the kinds of method there are: one that trains and runs a fixed depth
(static), one that trains and exits per input, one that trains nothing (it runs the stage-1 model).
"""

from __future__ import annotations

import copy
import logging
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from snakemake.utils import validate

from dpbert.data.tasks import get_task
from dpbert.methods.registry import build_method, get_method
from dpbert.run.config_check import check_config, check_schema
from dpbert.run.job import run_method
from dpbert.run.prepare import load_prepared, prepare_task

ROOT = Path(__file__).resolve().parents[2]
MICRO = yaml.safe_load((ROOT / "tests" / "config" / "micro.yaml").read_text())
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
TASK = "SST-2"
LOG = logging.getLogger("template")

# Your method: (registered name, its `methods:` entry in the config).
CASES = [
    ("layerdrop", {"kept_layers": [2]}),   # static: trains, then runs a fixed depth
    ("pabee", {"patiences": [1, 2]}),      # adaptive: trains off-ramps, exits per input
    ("bert_cut", {"layers": [3, 2]}),      # trains nothing: runs the stage-1 model's first k layers
]


def micro_config(name: str, params: dict) -> dict:
    """The micro profile with BERT-base and this method only, as the Snakefile hands it to the checks."""
    cfg = copy.deepcopy(MICRO)
    cfg["methods"], cfg["tasks"] = {"bert": {}, name: params}, [TASK]
    check_schema(cfg, SCHEMA)
    validate(cfg, str(SCHEMA), set_default=True)
    return cfg


def job(cfg: dict, name: str, out: Path, base: Path | None) -> Path:
    """A method's training jobs and sweep (``run_method``), as the workflow's jobs run them; its output folder."""
    selection = {k: cfg["selection"][k] for k in ("window", "min_points_in_window", "min_points_in_curve",
                                                  "curve_up_to") if k in cfg["selection"]}
    run_method(task=TASK, method=name, seed=1, method_params=cfg["methods"][name], training=cfg["training"],
               model=cfg["model"], latency=cfg["latency"], profile=cfg["profile"], data_path=str(out.parent / "data.pt"),
               base_dir=str(base) if base else None, model_out=str(out / "model"), sweep_out=str(out / "sweep.csv"),
               predictions_out=str(out / "predictions.csv.gz"), phases_out=str(out / "phases.json"),
               diagnostics_out=str(out / "diagnostics.json"), timing_lock_path=None, selection=selection, log=LOG)
    return out


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    """The micro SST-2 data and BERT-base's job: the stage-1 model every method starts from."""
    root = tmp_path_factory.mktemp("template")
    cfg = micro_config("bert", {})
    prepare_task(TASK, cfg["data"], cfg["model"], root / "data.pt", LOG)
    return job(cfg, "bert", root / "bert", None) / "model"


@pytest.mark.parametrize("name,params", CASES, ids=[c[0] for c in CASES])
def test_method_passes_the_config_check_trains_and_sweeps_on_micro(name, params, stage1):
    check_method(name, params, stage1)


def check_method(name: str, params: dict, stage1: Path) -> None:
    cfg = micro_config(name, params)
    assert list(check_config(cfg)) == ["bert", name]  # 1. refused here, not inside a job
    out = job(cfg, name, stage1.parent.parent / name, stage1)  # 2. train, then sweep
    method = build_method(name, params, get_task(TASK))
    sweep = pd.read_csv(out / "sweep.csv")
    n_layers = cfg["model"]["small"]["num_hidden_layers"]
    model_dir = out / "model" if method.trains else stage1
    for variant in method.trained_variants(model_dir):
        rows = sweep[(sweep["variant"] == variant) & ~sweep["refined"].astype(bool)]  # the grid, not the search
        assert sorted(rows["knob"].unique()) == sorted(float(k) for k in method.knobs_of(variant)), variant
    assert sweep["mean_layers"].between(1, n_layers).all() and (sweep["n_layers"] == n_layers).all()
    assert ((sweep["layer_speedup"] - n_layers / sweep["mean_layers"]).abs() < 1e-9).all()
    preds = pd.read_csv(out / "predictions.csv.gz", keep_default_na=False)
    layers = preds["executed"].astype(str).str.split(" ").explode().astype(int)
    assert layers.between(1, n_layers).all()  # 1-based executed layers, inside the backbone
    if method.static:  # one depth for every input
        assert (preds.groupby(["variant", "knob"])["executed"].nunique() == 1).all()

    # 3. the sweep's one pass per example gives what latency's predict_one gives, knob by knob
    split = load_prepared(str(out.parent / "data.pt")).splits[get_task(TASK).dev_splits[0]]
    for variant in method.trained_variants(model_dir):
        model = method.load(model_dir / variant)
        knobs = method.knobs_of(variant)
        for i in range(3):
            example = split.example(i)
            for one, many in zip((method.predict_one(model, example, k) for k in knobs),
                                 method.predict_knobs(model, example, knobs)):
                assert torch.equal(one.output, many.output) and one.executed == many.executed
    assert get_method(name) is type(method)


def test_the_guides_fixed_depth_example_runs(stage1, monkeypatch):
    """docs/architecture.md's whole fixed-depth method (not a file of the project) passes this template,
    and its depth is refused before any job where the backbone is shallower."""
    from dpbert.methods.interface import _REGISTRY
    from dpbert.run.config_check import ConfigError

    guide = (ROOT / "docs" / "architecture.md").read_text()
    section = guide[guide.index("## Adding a method"):]
    code = section[section.index("```python\n") + len("```python\n"):]
    code = code[:code.index("```\n")]
    assert len([ln for ln in code.splitlines() if ln.strip()]) <= 30
    module = types.ModuleType("guide_first_k")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # dataclasses look their module up there
    exec(compile(code, "docs/architecture.md", "exec"), module.__dict__)  # noqa: S102  (the project's own docs)
    cls = _REGISTRY.pop("first_k")  # registered by the example: undone after the test
    monkeypatch.setitem(_REGISTRY, "first_k", cls)
    check_method("first_k", {"depth": 2}, stage1)
    with pytest.raises(ConfigError, match=r"methods\.first_k\.depth is 8, but the backbone has 4 layers"):
        check_config(micro_config("first_k", {"depth": 8}))
