"""Per-example batch-1 inference of each method at a fixed knob (6 of 12 layers executed), and the
cost of one layer vs one planner / one exit head alone. Compare medians within one run."""

import pytest
import torch

from dpbert.methods.registry import get_method
from dpbert.model.engine import cls_state
from dpbert.tools import speedup_bench as sb
from dpbert.tools.benchmodels import random_classifier, random_examples


@pytest.fixture(scope="module")
def bert_base():
    clf = random_classifier("bert-base")
    return clf, random_examples(8, clf.config.vocab_size)


def _loop(forward, examples):
    with torch.inference_mode():
        for ex in examples:
            forward(ex)


@pytest.mark.parametrize("case", sb.CASE_ORDER)
@pytest.mark.benchmark(group="method-6-of-12")
def test_method_half_depth(benchmark, bert_base, case):
    clf, examples = bert_base
    method = get_method(case)(None, sb.TASK)
    pinned = method.pinned(clf, 6)
    model, knob = pinned.model, pinned.knob
    assert {len(method.predict_one(model, ex, knob).executed) for ex in examples} == {6}
    benchmark(_loop, lambda ex: method.predict_one(model, ex, knob), examples)


@pytest.fixture(scope="module")
def hidden():
    torch.manual_seed(0)
    return torch.randn(1, 40, 768)


@pytest.mark.benchmark(group="per-layer-cost")
def test_one_layer(benchmark, bert_base, hidden):
    layer = bert_base[0].bert.encoder.layer[0]
    with torch.inference_mode():
        benchmark(layer, hidden, None)


@pytest.mark.benchmark(group="per-layer-cost")
def test_one_planner_decision(benchmark, hidden):
    from dpbert.methods.dpbert import Planners

    planners = Planners(12, 768)
    with torch.inference_mode():
        benchmark(lambda: bool(planners.prob(0, hidden).item() >= 0.5))


def _deebert_decision(clf):
    """DeeBERT's decision at off-ramp 1 as inference runs it (infer_exit, entropy on host floats)."""
    from baselines._early_exit import host_entropy, host_values, infer_exit

    model = get_method("deebert")(None, sb.TASK).pinned(clf, 6).model
    return lambda h: host_entropy(host_values(infer_exit(model, 0, h)[1])) < 0.3


@pytest.mark.benchmark(group="per-layer-cost")
def test_one_offramp_entropy_decision(benchmark, bert_base, hidden):
    """Cache-hot: the same decision over and over (its weights stay in cache)."""
    decide = _deebert_decision(bert_base[0])
    with torch.inference_mode():
        benchmark(decide, hidden)


@pytest.mark.benchmark(group="per-layer-cost")
def test_one_layer_then_offramp_decision(benchmark, bert_base, hidden):
    """What inference pays: a decision right after a layer evicted its weights (minus test_one_layer)."""
    layer = bert_base[0].bert.encoder.layer[0]
    decide = _deebert_decision(bert_base[0])
    with torch.inference_mode():
        benchmark(lambda: decide(layer(hidden, None)))


@pytest.mark.benchmark(group="per-layer-cost")
def test_cls_slice_only(benchmark, hidden):
    benchmark(lambda: cls_state(hidden))
