"""Scoring a sweep in one walk per example (Method.predict_knobs) must equal predict_one knob by knob.

The early-exit methods and the cut stage-1 model (bert_cut) read every knob off one pass; any difference from the timed,
exiting ``predict_one`` (an output bit, an executed layer) would make the table's scores describe
another model than the latencies. Heads are scaled up so that exits spread over the layers.
"""

import pytest
import torch

from baselines._early_exit import ExitModules, new_ramps
from baselines.berxit import LTE, Berxit
from baselines.dact_bert import DactBert, HaltingGate
from baselines.deebert import DeeBert
from baselines.pabee import Pabee
from baselines.truncated import BertCut
from dpbert.data.tasks import get_task
from dpbert.methods.dpbert import DPBert, DPBertSoft, Planners
from dpbert.model.method_model import MethodModel
from dpbert.run.sweep import predict_split
from tests.conftest import tiny_classifier, toy_split

N = 6
CLS, REG = get_task("MNLI"), get_task("STS-B")


pytestmark = pytest.mark.usefixtures("one_thread")


def _spread_model(name: str, regression: bool) -> MethodModel:
    """A random model whose exit statistics vary across layers and inputs (large head weights)."""
    c = tiny_classifier(num_labels=1 if regression else 3, layers=N, seed=5)
    extra = {
        "deebert": lambda: ExitModules(new_ramps(c)),
        "berxit": lambda: ExitModules(new_ramps(c), lte=LTE(32)),
        "pabee": lambda: ExitModules(new_ramps(c, own_poolers=False)),
        "dact_bert": lambda: ExitModules(new_ramps(c), halting=HaltingGate(32)),
        "bert_cut": lambda: None,
        "dpbert": lambda: Planners(N, c.config.hidden_size, 0.0, "cls"),
        "dpbert_soft": lambda: Planners(N, c.config.hidden_size, 0.0, "mean"),
    }[name]()
    model = MethodModel(c, extra).eval()
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for module in [*([] if extra is None else extra.modules()), c.classifier]:
            if isinstance(module, torch.nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=g) * 0.6)
                module.bias.copy_(torch.randn(module.bias.shape, generator=g) * 0.5)
    return model


CASES = [
    (DeeBert, False, [0.0, 0.2, 0.5, 0.8, 1.0, 1.05, 2.0]),
    (Berxit, False, [0.1, 0.3, 0.5, 0.6, 0.7, 0.9]),
    (Berxit, True, [0.2, 0.5, 0.8]),
    (Pabee, False, [0, 1, 2, 3, 5]),
    (Pabee, True, [0, 1, 2, 3]),
    (DactBert, False, [0.0]),
    (DactBert, True, [0.9, 0.5, 0.3, 0.1, 0.01]),
    (BertCut, False, [6, 5, 3, 1]),
    (DPBert, False, [0.0, 0.3, 0.45, 0.5, 0.55, 0.7, 1.0]),  # shared-prefix walk over thresholds
    (DPBert, True, [0.2, 0.5, 0.8]),
    (DPBertSoft, False, [0.35, 0.5, 0.65]),
]


@pytest.mark.parametrize("cls,regression,knobs", CASES, ids=[f"{c.name}-{'reg' if r else 'cls'}" for c, r, _ in CASES])
def test_one_pass_scoring_equals_predict_one(cls, regression, knobs):
    task = REG if regression else CLS
    method = cls(None, task)
    model = _spread_model(cls.name, regression)
    split = toy_split(24, regression, seed=3)
    depths, split_walks = set(), 0
    for i in range(len(split)):
        ex = split.example(i)
        together = method.predict_knobs(model, ex, knobs)
        assert len(together) == len(knobs)
        split_walks += len({tuple(p.executed) for p in together}) > 1
        for knob, pred in zip(knobs, together):
            alone = method.predict_one(model, ex, knob)
            assert pred.executed == alone.executed, (knob, i)
            assert torch.equal(pred.output, alone.output), (knob, i)
            depths.add(len(alone.executed))
    assert len(depths) >= (2 if cls is not DactBert or regression else 1), depths  # exits really vary
    if cls in (DPBert, DPBertSoft):  # paths really split inside one walk
        assert split_walks >= len(split) // 4, split_walks


def test_predict_split_groups_by_knob():
    method = BertCut(None, CLS)
    model = _spread_model("bert_cut", False)
    split = toy_split(5, seed=1)
    per_knob = predict_split(method, model, split, [6.0, 2.0], "cpu")
    assert [len(preds) for preds, _ in per_knob] == [5, 5]
    assert all(e == [0, 1, 2, 3, 4, 5] for e in per_knob[0][1]) and all(e == [0, 1] for e in per_knob[1][1])


@pytest.mark.parametrize("cls", [DPBert, DPBertSoft])
def test_a_path_tree_runs_each_decision_prefix_once(cls):
    """DPBERT's trace keeps the tree of paths between calls: a threshold already walked runs no layer,
    a new one only the layers of its new branches (rebuilt along the executed prefix); every output
    equals predict_one's."""
    from dpbert.model.engine import count_layer_calls

    method = cls(None, CLS)
    model = _spread_model(cls.name, False)
    split = toy_split(12, False, seed=3)
    first, later = [0.3, 0.5], [0.3, 0.45, 0.5, 0.55, 0.7]
    counts, remove = count_layer_calls(model.engine)
    saved = 0
    try:
        for i in range(len(split)):
            ex = split.example(i)
            tree = method.trace(model, ex)
            method.predict_traced(tree, first)
            before = sum(counts)
            again = method.predict_traced(tree, first)
            assert sum(counts) == before  # known paths: no layer runs
            together = method.predict_traced(tree, later)
            new_layers = sum(counts) - before
            fresh = method.predict_knobs(model, ex, later)
            fresh_layers = sum(counts) - before - new_layers
            assert new_layers <= fresh_layers  # never more than a fresh walk's layers
            saved += fresh_layers - new_layers
            for knob, pred, pred_fresh in zip(later, together, fresh):
                alone = method.predict_one(model, ex, knob)
                assert pred.executed == alone.executed == pred_fresh.executed, (knob, i)
                assert torch.equal(pred.output, alone.output), (knob, i)
            for knob, pred in zip(first, again):
                assert torch.equal(pred.output, method.predict_one(model, ex, knob).output)
    finally:
        remove()
    assert saved > 0  # the walked paths were reused


BATCHED = [c for c in CASES if c[0] is not BertCut]


@pytest.mark.parametrize("cls,regression,knobs", BATCHED, ids=[f"{c.name}-{'reg' if r else 'cls'}" for c, r, _ in BATCHED])
def test_equal_length_batches_score_as_batch_one(cls, regression, knobs):
    """The sweep traces the examples of one length as one unpadded batch (``Method.trace_many``) and walks
    DPBERT's trees together (``predict_traced_many``). Every output bit and executed layer must be what
    ``predict_one`` gives the example alone, in a first round of knobs and in a later round that expands
    new branches of the kept trees; and the batching must really share layer calls."""
    from dpbert.methods.interface import SCORE_BATCH
    from dpbert.model.engine import count_layer_calls

    method = cls(None, REG if regression else CLS)
    model = _spread_model(cls.name, regression)
    split = toy_split(40, regression, seed=4)
    chunks = split.equal_length_chunks(list(range(len(split))), SCORE_BATCH)
    assert max(len(c) for c in chunks) > 1 and sorted(i for c in chunks for i in c) == list(range(len(split)))
    counts, remove = count_layer_calls(model.engine)
    try:
        traces: dict[int, object] = {}
        for chunk in chunks:
            traces.update(zip(chunk, method.trace_many(model, [split.example(i) for i in chunk])))
        trace_calls = sum(counts)
        kept = [traces[i] for i in range(len(split))]
        batched_calls = 0
        for round_knobs in (knobs[::2], knobs):
            before = sum(counts)
            together = method.predict_traced_many(kept, round_knobs)
            batched_calls += sum(counts) - before
            for i, predictions in enumerate(together):
                for knob, pred in zip(round_knobs, predictions):
                    alone = method.predict_one(model, split.example(i), knob)
                    assert pred.executed == alone.executed, (knob, i)
                    assert torch.equal(pred.output, alone.output), (knob, i)
        before = sum(counts)
        for i in range(len(split)):
            method.predict_knobs(model, split.example(i), knobs)
        one_by_one = sum(counts) - before
    finally:
        remove()
    if cls in (DPBert, DPBertSoft):  # an empty tree each; the walks batch their new branches
        assert trace_calls == 0 and batched_calls < one_by_one, (batched_calls, one_by_one)
    else:  # the pass is batched: one call per layer and chunk, and the knobs read it off
        assert trace_calls == N * len(chunks) < one_by_one == N * len(split) and batched_calls == 0


def test_predict_split_with_kept_traces_equals_one_by_one():
    """The sweep's path (kept traces, batched) gives the same predictions as scoring example by example."""
    method = DPBert(None, CLS)
    model = _spread_model("dpbert", False)
    split = toy_split(30, seed=6)
    traces: list = []
    for knobs in ([0.5], [0.3, 0.5, 0.7]):
        assert predict_split(method, model, split, knobs, "cpu", traces) == predict_split(method, model, split, knobs, "cpu")
    assert len(traces) == len(split)


def test_stack_examples_refuses_padding_and_mixed_lengths():
    from dpbert.data.encoding import stack_examples

    split = toy_split(20, seed=2)
    a, b = next(c for c in split.equal_length_chunks(list(range(len(split))), 64) if len(c) >= 2)[:2]
    batch = stack_examples([split.example(a), split.example(b)])
    assert batch["input_ids"].shape[0] == 2 and torch.equal(batch["input_ids"][1:], split.example(b)["input_ids"])
    with pytest.raises(ValueError, match="one length"):
        stack_examples([split.example(i) for i in range(len(split))])
    padded = dict(split.example(a), attention_mask=torch.zeros_like(split.example(a)["attention_mask"]))
    with pytest.raises(ValueError, match="unpadded"):
        stack_examples([padded, split.example(b)])
