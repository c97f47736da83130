"""'Add a baseline' is one module plus one config entry: prove it with a throwaway method."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

# The whole baseline a researcher writes (counted in the README): first two layers, then BERT's head.
THROWAWAY = '''
from dataclasses import dataclass
from dpbert.model.method_model import MethodModel, load_method_model, save_method_model
from dpbert.model.sources import load_classifier
from dpbert.methods.interface import Method, MethodParams, Prediction, register


@dataclass
class Params(MethodParams):
    layers: int = 2


@register
class FirstLayers(Method):
    name, display_name, knob_name, static, Params = "first_layers", "First-2L", "layers", True, Params

    def knobs(self):
        return [float(self.params.layers)]

    def train(self, ctx):
        classifier, tokenizer = load_classifier(ctx.finetuned_dir)
        save_method_model(MethodModel(classifier), tokenizer, ctx.out_dir / "main", {"method": self.name})

    def load(self, folder):
        return load_method_model(folder)[0]

    def predict_one(self, model, ex, knob):
        out = model.engine.run(ex["input_ids"], ex["attention_mask"], ex["token_type_ids"], layers=range(int(knob)))
        return Prediction(model.final_head(out.hidden)[0], out.executed)
'''


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory):
    """A copy of the project with one new module in baselines/ and a config naming it."""
    root = tmp_path_factory.mktemp("project")
    for name in ("Snakefile", "environment.yml", "workflow", "dpbert", "baselines"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    (root / "baselines" / "first_layers.py").write_text(THROWAWAY)
    cfg = yaml.safe_load((ROOT / "tests" / "config" / "micro.yaml").read_text())
    cfg["methods"] = {"bert": {}, "first_layers": {}}
    cfg["tasks"] = ["SST-2"]
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    return root


def _snakemake(root: Path, *args: str):
    # PYTHONPATH: the copy's packages win over an editable install of the original
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(root / "Snakefile"), "--directory", str(root), *args,
           "--configfile", str(root / "config.yaml")]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def test_new_module_needs_no_edit_elsewhere(project_copy):
    changed = subprocess.run(["git", "status", "--porcelain", "--", "Snakefile", "workflow", "dpbert"],
                             cwd=ROOT, capture_output=True, text=True).stdout
    assert "first_layers" not in changed  # nothing of it lives in the real tree
    lines = [ln for ln in THROWAWAY.strip().splitlines() if ln.strip()]
    assert len(lines) < 30


def test_new_baseline_jobs_appear_in_the_dry_run(project_copy):
    result = _snakemake(project_copy, "results/micro/table1.csv", "-n")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "models/SST-2/first_layers/1" in result.stdout
    assert "runs/SST-2/first_layers/1/sweep.csv" in result.stdout


@pytest.mark.e2e
def test_new_baseline_gets_a_row_in_table1(project_copy):
    result = _snakemake(project_copy, "results/micro/table1.csv", "--cores", "2")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    table = pd.read_csv(project_copy / "results/micro" / "table1.csv")
    row = table[table["model"] == "First-2L"].iloc[0]
    assert row["speedup_layer"] == 2.0  # 4 layers in the micro model, 2 executed
    assert 0 <= row["SST-2"] <= 100
