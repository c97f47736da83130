"""``Method.overhead_flops`` is what ``predict_one`` really computes besides its layers, family by family.

Each test runs ``predict_one`` of a real tiny model under torch's FLOP counter, at knobs where the example
exits early, runs every layer, or (DPBERT) skips layers, and holds the measured total equal, exactly, to
``example_flops(executed, length, H, I, overhead_flops(...))``. A forgotten off-ramp, LTE unit, halting
gate or planner makes the count fall short of the measurement by that module's matrix product.

The models run their attention "eager" (Hugging Face's BertLayer: two matmuls the counter sees) instead
of the engine's SDPA path, whose CPU kernel the counter does not count; both compute the same products
(tests/model/test_flops.py holds ``layer_flops`` equal to the counter on an eager BertLayer).
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from baselines._early_exit import ExitModules, new_ramps
from baselines.berxit import LTE
from baselines.dact_bert import HaltingGate
from dpbert.data.tasks import get_task
from dpbert.methods.dpbert import Planners
from dpbert.methods.registry import build_method
from dpbert.model.flops import example_flops, head_flops
from dpbert.model.method_model import MethodModel
from tests.conftest import tiny_classifier, toy_split

N, H, INTER = 4, 32, 64  # tiny_classifier's shape
CLS, REG = get_task("SST-2"), get_task("STS-B")

pytestmark = pytest.mark.usefixtures("one_thread")


def _eager(classifier):
    classifier.set_attn_implementation("eager")
    return classifier


def _measured_and_counted(method, model, knob, n_layers=N, examples=3):
    """[(measured FLOPs of predict_one, the analytic count, executed layers)] over a few examples."""
    split = toy_split(examples, regression=method.task.is_regression, seed=5)
    out = []
    for i in range(len(split)):
        example = split.example(i)
        with FlopCounterMode(display=False) as counter:
            pred = method.predict_one(model, example, knob)
        length = example["input_ids"].shape[1]
        overhead = method.overhead_flops(pred.executed, n_layers, H, method.task.num_labels)
        out.append((counter.get_total_flops(), example_flops(pred.executed, length, H, INTER, overhead),
                    pred.executed))
    return out


def _check(method, model, knobs, n_layers=N) -> set[int]:
    """Measured == counted at every knob; returns the numbers of executed layers seen."""
    seen = set()
    for knob in knobs:
        for measured, counted, executed in _measured_and_counted(method, model, knob, n_layers):
            assert measured == counted, (method.name, knob, executed, measured - counted)
            seen.add(len(executed))
    return seen


def test_default_is_bert_s_head():
    method = build_method("bert", None, CLS)
    assert method.overhead_flops([0, 1], N, H, 2) == head_flops(H, 2) == 2 * H * H + 2 * H * 2


@pytest.mark.parametrize("name,knobs,layers", [
    ("bert", [0.0], N),
    ("bert_cut", [1.0, 3.0], N),  # the first k layers of the stage-1 model, then its head
    ("layerdrop", [2.0, 3.0], N),  # k evenly spaced layers
    ("distilbert", [0.0], 2),  # a student of half the layers (from the teacher), BERT's head
    ("bert_truncated", [2.0], 2),  # a k-layer model
])
def test_final_head_only_methods(name, knobs, layers):
    method = build_method(name, None, CLS)
    model = MethodModel(_eager(tiny_classifier(layers=layers))).eval()
    if name == "distilbert":
        model.reference_depth = N
    seen = _check(method, model, knobs)
    assert seen == {int(k) for k in knobs} if name in ("bert_cut", "layerdrop") else {layers}


def _exit_model(name, regression=False, gate_bias=0.0):
    c = _eager(tiny_classifier(num_labels=1 if regression else 2, layers=N))
    extra = {
        "deebert": lambda: ExitModules(new_ramps(c)),
        "berxit": lambda: ExitModules(new_ramps(c), lte=LTE(H)),
        "pabee": lambda: ExitModules(new_ramps(c, own_poolers=False)),
        "dact_bert": lambda: ExitModules(new_ramps(c), halting=HaltingGate(H, gate_bias)),
    }[name]()
    return MethodModel(c, extra).eval()


# knobs that exit at the first possible layer, somewhere between, and never (every layer, BERT's head)
@pytest.mark.parametrize("name,knobs", [
    ("deebert", [1e9, 0.69, -1.0]),  # entropy < S: S huge always exits, S < 0 never
    ("berxit", [1.01, 0.5, -1.0]),  # LTE error < threshold
    ("pabee", [1, 2, 0]),  # patience; 0 never exits
])
def test_early_exit_ramps_counted(name, knobs):
    method = build_method(name, None, CLS)
    seen = _check(method, _exit_model(name), knobs)
    assert min(seen) < N  # an early exit, where an off-ramp answers
    assert N in seen  # and the full path, where BERT's head answers


def test_berxit_regression_ramps_and_lte_counted():
    method = build_method("berxit", None, REG)
    seen = _check(method, _exit_model("berxit", regression=True), [1.01, -1.0])
    assert seen == {1, N}


@pytest.mark.parametrize("gate_bias,expected", [(30.0, {1}), (-30.0, {N})])
def test_dact_halting_gate_counted(gate_bias, expected):
    """gate bias +30: p_1 = 0, halts after layer 1; -30: p_n = 1, runs every layer (test_early_exit.py)."""
    method = build_method("dact_bert", None, CLS)
    assert _check(method, _exit_model("dact_bert", gate_bias=gate_bias), [0.0]) == expected


def test_dact_regression_halting_gate_counted():
    method = build_method("dact_bert", None, REG)
    seen = _check(method, _exit_model("dact_bert", regression=True, gate_bias=0.0), [0.9, 0.0])
    assert 1 in seen and N in seen  # p_1 = 0.5 < 0.9 halts at once; p_n < 0 never


def test_an_exit_s_overhead_grows_with_the_layers_it_passes():
    """One ramp (pooler + classifier, + LTE) per executed layer before the last; the last: BERT's head."""
    dee, berxit = build_method("deebert", None, CLS), build_method("berxit", None, CLS)
    ramp = 2 * H * H + 2 * H * 2
    assert dee.overhead_flops([0, 1], N, H, 2) == 2 * ramp
    assert dee.overhead_flops(list(range(N)), N, H, 2) == (N - 1) * ramp + head_flops(H, 2)
    assert berxit.overhead_flops([0, 1], N, H, 2) == 2 * (ramp + 2 * H)
    assert berxit.overhead_flops(list(range(N)), N, H, 2) == (N - 1) * (ramp + 2 * H) + head_flops(H, 2)


@pytest.mark.parametrize("method_name", ["dpbert", "dpbert_soft"])
def test_dpbert_planners_counted_on_skipped_layers_too(method_name):
    method = build_method(method_name, None, CLS)
    classifier = _eager(tiny_classifier(layers=N))
    planners = Planners(N, H, state="cls")
    with torch.no_grad():  # layers 0 and 2 run, 1 and 3 are skipped, whatever the input
        for i, gate in enumerate(planners.gates):
            gate.weight.zero_()
            gate.bias.fill_(20.0 if i % 2 == 0 else -20.0)
    model = MethodModel(classifier, planners).eval()
    assert _check(method, model, [0.5]) == {2}
    assert _check(method, model, [0.0]) == {N}  # threshold 0: every layer runs
    assert method.overhead_flops([], N, H, 2) == N * 2 * H + head_flops(H, 2)  # every layer skipped
