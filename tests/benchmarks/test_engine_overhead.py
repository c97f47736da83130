"""Engine vs Hugging Face forward at full depth, and the per-decision overhead of planners/exits.

Ratios are what matter (these machines are shared and noisy): compare the groups' medians from one run.
"""

import pytest
import torch

from dpbert.data.tasks import get_task
from dpbert.methods.dpbert import DPBert, Planners
from dpbert.model.method_model import MethodModel
from dpbert.tools.benchmodels import random_classifier, random_examples


def _run_all(forward, examples):
    with torch.inference_mode():
        for ex in examples:
            forward(ex)


@pytest.fixture(scope="module", params=["bert-base", "demo"])
def setup(request):
    shape = request.param
    clf = random_classifier(shape)
    examples = random_examples(16 if shape == "bert-base" else 64, clf.config.vocab_size)
    return shape, clf, examples


@pytest.mark.benchmark(group="full-depth")
def test_hf_forward(benchmark, setup):
    shape, clf, examples = setup
    benchmark.extra_info["shape"] = shape
    benchmark(_run_all, lambda ex: clf(**ex).logits, examples)


@pytest.mark.benchmark(group="full-depth")
def test_engine_forward(benchmark, setup):
    shape, clf, examples = setup
    model = MethodModel(clf)
    benchmark.extra_info["shape"] = shape

    def forward(ex):
        out = model.engine.run(ex["input_ids"], ex["attention_mask"], ex["token_type_ids"])
        return model.final_head(out.hidden)

    benchmark(_run_all, forward, examples)


@pytest.mark.benchmark(group="full-depth")
def test_dpbert_planners_execute_all(benchmark, setup):
    """DPBERT with every planner saying 'run': the planners' own cost at full depth."""
    shape, clf, examples = setup
    model = MethodModel(clf, Planners(clf.config.num_hidden_layers, clf.config.hidden_size, init_bias=10.0)).eval()
    method = DPBert(None, get_task("SST-2"))
    benchmark.extra_info["shape"] = shape
    benchmark(_run_all, lambda ex: method.predict_one(model, ex, 0.5), examples)
