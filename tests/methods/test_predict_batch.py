"""Serving batches: every registered method's ``predict_batch`` against its batch-1 ``predict_one``.

For every method of the registry (a new one is covered the day it registers: ``BUILDERS`` makes a tiny
random model whose exits and skips spread over the layers, and a method without a builder is trained for
a moment on toy data instead), on classification and regression:

* a batch of mixed lengths gives each row the prediction and the executed layers of its example alone on
  at least 99% of the rows (``dpbert.run.batching.agreement``; padding may move the last bits), in both
  modes, and in the fast mode (``exact=False``, serving's) outputs within a small tolerance of batch 1's;
* with ``exact=True`` a batch of equal-length rows gives them exactly (outputs ``torch.equal``, executed
  layers equal);
* in the fast mode every decision (off-ramp, LTE / halting unit, planner) and the head runs once per
  layer on the sub-batch still there, not once per row (the calls of their weights are counted);
* an overriding ``predict_batch`` really batches: each layer is called at most once per batch, with the
  rows that run it, trimmed to the longest of them (so an early-exit batch reaches a later layer with
  fewer rows, and a static batch of 8 calls each layer once, not 8 times).

The knobs are chosen so that rows exit or skip at different layers (checked: else a test could not fail).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import fields

import pytest
import torch

from baselines._early_exit import ExitCriterion, ExitModules, new_ramps
from baselines.berxit import LTE
from baselines.dact_bert import HaltingGate
from baselines.distilbert import init_student
from dpbert.data.tasks import get_task
from dpbert.methods.dpbert import Planners
from dpbert.methods.interface import Method, TrainContext
from dpbert.methods.registry import registered
from dpbert.model.engine import count_layer_calls
from dpbert.model.method_model import MethodModel, save_method_model
from dpbert.model.sources import ModelSource
from dpbert.run.batching import agreement
from tests.conftest import tiny_classifier, toy_split

N = 6  # layers of the tiny backbone
CLS, REG = get_task("MNLI"), get_task("STS-B")
BATCH = 16
OUTPUT_TOL = 1e-3  # |batch output - batch-1 output| of a row on its batch-1 path (rounding; DACT: log-probs ~ -27)
SPLIT = 64  # 4 batches of mixed lengths (6..13 tokens); >= 99% equal allows no difference below 100 rows

pytestmark = pytest.mark.usefixtures("one_thread")


def _classifier(regression: bool, head_state: str, layers: int = N):
    """A tiny random BERT drawn wider than BERT's init (std 0.3, not 0.02), so that its states differ
    between inputs as a trained model's do: with 0.02 every row exits or skips at the same layer."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(5)
    cfg = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, num_labels=1 if regression else 3,
                     initializer_range=0.3)
    cfg.head_state = head_state
    return BertForSequenceClassification(cfg).eval()


def _spread(model: MethodModel, scale: float = 0.6) -> MethodModel:
    """Large random heads, off-ramps and planners: decisions that differ across rows and layers."""
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for module in [*model.extra.modules(), model.classifier.classifier]:
            if isinstance(module, torch.nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=g) * scale)
                module.bias.copy_(torch.randn(module.bias.shape, generator=g) * 0.5)
    return model.eval()


def _exit_model(extra):
    def build(regression: bool, state: str) -> MethodModel:
        c = _classifier(regression, state)
        return _spread(MethodModel(c, extra(c, state)))
    return build


def _dact(regression: bool, state: str) -> MethodModel:
    """Classification halts on confident exits and a small halting product: larger heads, a gate biased to
    halt (on the tiny random backbone the states differ little between inputs)."""
    c = _classifier(regression, state)
    model = MethodModel(c, ExitModules(new_ramps(c, state=state), halting=HaltingGate(32, state=state)))
    _spread(model, 0.6 if regression else 4.0)
    if not regression:
        with torch.no_grad():
            model.extra.halting.gate.bias.fill_(4.0 if state == "cls" else 6.0)
    return model


def _static(layers: int = N, teacher_layers: list[int] | None = None):
    def build(regression: bool, state: str) -> MethodModel:
        c = _classifier(regression, state)
        model = MethodModel(init_student(c, teacher_layers) if teacher_layers else _classifier(regression, state, layers))
        model.reference_depth = N
        return _spread(model)
    return build


# name -> (model builder (regression, state), knobs for classification, knobs for regression)
BUILDERS = {
    "bert": (_static(), [0.0], [0.0]),
    "bert_cut": (_static(), [2.0, 5.0], [3.0]),
    "bert_truncated": (_static(layers=4), [4.0], [4.0]),
    "layerdrop": (_static(), [3.0], [2.0]),
    "distilbert": (_static(teacher_layers=[0, 2, 4]), [0.0], [0.0]),
    "deebert": (_exit_model(lambda c, s: ExitModules(new_ramps(c, state=s))), [0.5, 0.2], []),
    "berxit": (_exit_model(lambda c, s: ExitModules(new_ramps(c, state=s), lte=LTE(32))), [0.3, 0.6], [0.5]),
    "pabee": (_exit_model(lambda c, s: ExitModules(new_ramps(c, own_poolers=False, state=s))), [1.0, 2.0], [1.0, 2.0]),
    "dact_bert": (_dact, [0.0], [0.5, 0.1]),
    "dpbert": (_exit_model(lambda c, s: Planners(N, 32, 0.0, s)), [0.5, 0.3], [0.5]),
    "dpbert_soft": (_exit_model(lambda c, s: Planners(N, 32, 0.0, s)), [0.5], [0.6]),
}

FAST = {"finetune": {"epochs": 1, "batch_size": 16, "lr": 1e-3}}
TINY_SOURCE = ModelSource("small", small={"num_hidden_layers": N, "hidden_size": 32, "num_attention_heads": 2,
                                          "intermediate_size": 64, "max_position_embeddings": 64}, max_length=64)


def trained_tiny(name: str, regression: bool, tmp_path, tokenizer) -> tuple[MethodModel, list[float]]:
    """A method without a builder: trained for a moment on toy data from a tiny stage-1 model, as a job
    would (its first variant, at that variant's knobs)."""
    task = REG if regression else CLS
    method = registered()[name](None, task)
    stage1 = tmp_path / "bert"
    save_method_model(MethodModel(tiny_classifier(num_labels=task.num_labels, layers=N)), tokenizer, stage1 / "main",
                      {"method": "bert"})
    if not method.trains:
        return method.load(stage1 / "main"), method.knobs()
    ctx = TrainContext(task=task, train=toy_split(32, regression), dev=toy_split(16, regression, seed=1),
                       finetuned_dir=stage1 / "main" / "backbone", out_dir=tmp_path / "out", seed=3, settings=FAST,
                       model_source=TINY_SOURCE, device="cpu", log=logging.getLogger("test"))
    ctx.out_dir.mkdir()
    method.train(ctx)
    variant = method.trained_variants(ctx.out_dir)[0]
    return method.load(ctx.out_dir / variant), method.knobs_of(variant)


def _method(name: str, regression: bool, state: str) -> Method:
    cls = registered()[name]
    params = {"state": state} if any(f.name == "state" for f in fields(cls.Params)) else {}
    return cls(params, REG if regression else CLS)


def _setup(name, regression, state, tmp_path, tokenizer):
    cls = registered()[name]
    if regression and not cls.supports_regression:
        pytest.skip(f"{name} has no regression")
    if name in BUILDERS:
        build, cls_knobs, reg_knobs = BUILDERS[name]
        return _method(name, regression, state), build(regression, state), reg_knobs if regression else cls_knobs
    if state != "cls":
        pytest.skip(f"{name} has no builder: trained once, with its defaults")
    model, knobs = trained_tiny(name, regression, tmp_path, tokenizer)
    return _method(name, regression, state), model, knobs


CASES = [(name, reg, state) for name in sorted(registered()) for reg in (False, True) for state in ("cls", "mean")
         if state == "cls" or not reg]
IDS = [f"{n}-{'reg' if r else 'cls'}-{s}" for n, r, s in CASES]
CLS_STATE = [c for c in CASES if c[2] == "cls"]  # the mean-reading states: mixed lengths, where the mask matters
CLS_IDS = [i for c, i in zip(CASES, IDS) if c[2] == "cls"]


def _paths(method, model, split, knob) -> set[tuple[int, ...]]:
    """The distinct executed-layer lists of the split's rows (one batch: agreement has held them to batch 1's)."""
    return {tuple(p.executed) for p in method.predict_batch(model, split.batch(list(range(len(split)))), knob)}


@pytest.mark.parametrize("exact", [False, True], ids=["fast", "exact"])
@pytest.mark.parametrize("name,regression,state", CASES, ids=IDS)
def test_mixed_lengths_agree_with_batch_one(name, regression, state, exact, tmp_path, tokenizer):
    method, model, knobs = _setup(name, regression, state, tmp_path, tokenizer)
    split = toy_split(SPLIT, regression, seed=3)
    assert len({len(ids) for ids in split.input_ids}) >= 5  # really mixed lengths
    paths: set[tuple[int, ...]] = set()
    for knob in knobs:
        a = agreement(method, model, split, range(len(split)), knob, BATCH, exact=exact)
        assert a.share_equal >= 0.99, (f"{name} at {knob:g}: {a.prediction_differences} predictions and "
                                       f"{a.layer_differences} executed-layer lists of {a.n} rows differ from batch "
                                       f"size 1 (largest output difference {a.max_abs_output_diff:.3g})")
        if a.layer_differences == 0:  # every row on its batch-1 path: the outputs differ by rounding only
            assert a.max_abs_output_diff < OUTPUT_TOL, (name, knob, a)
        paths |= _paths(method, model, split, knob)
    if not method.static and name != "bert_cut":
        assert len(paths) >= 2, f"{name}: every row runs the layers {paths}; pick knobs or a builder that spread them"


@pytest.mark.parametrize("name", sorted(registered()))
def test_a_mean_state_reads_each_row_on_its_own_tokens(name, tmp_path, tokenizer):
    """With the token mean as the state (BERT's head, off-ramps, halting gate, planners), a padded row's
    output is its example's alone up to rounding: padding never enters a mean (an argmax hides that)."""
    method, model, knobs = _setup(name, False, "mean", tmp_path, tokenizer)
    split = toy_split(BATCH, seed=3)
    assert len({len(ids) for ids in split.input_ids}) >= 4
    got = method.predict_batch(model, split.batch(list(range(BATCH))), knobs[0])
    alone = [method.predict_one(model, split.example(i), knobs[0]) for i in range(BATCH)]
    same_path = [(g, a) for g, a in zip(got, alone) if g.executed == a.executed]
    assert len(same_path) >= BATCH - 1
    for g, a in same_path:
        torch.testing.assert_close(g.output, a.output, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,regression,state", CLS_STATE, ids=CLS_IDS)
def test_equal_lengths_are_exact(name, regression, state, tmp_path, tokenizer):
    """``exact=True``: every decision and the head read each row alone, so equal-length rows are batch 1's."""
    method, model, knobs = _setup(name, regression, state, tmp_path, tokenizer)
    split = toy_split(SPLIT, regression, seed=3)
    groups = [g for g in split.equal_length_chunks(list(range(len(split))), BATCH) if len(g) >= 4]
    assert len(groups) >= 3
    depths_in_a_batch = 0
    for knob in knobs:
        for idx in groups:
            got = method.predict_batch(model, split.batch(idx), knob, exact=True)
            alone = [method.predict_one(model, split.example(i), knob) for i in idx]
            for i, g, a in zip(idx, got, alone):
                assert g.executed == a.executed, (name, knob, i)
                assert torch.equal(g.output, a.output), (name, knob, i, g.output, a.output)
            depths_in_a_batch += len({tuple(a.executed) for a in alone}) > 1
    if not method.static and name != "bert_cut":
        assert depths_in_a_batch, f"{name}: no equal-length batch whose rows run different layers"


def _overrides(name: str) -> bool:
    return registered()[name].predict_batch is not Method.predict_batch


@pytest.mark.parametrize("name,regression,state", CLS_STATE, ids=CLS_IDS)
def test_predict_batch_runs_rows_together(name, regression, state, tmp_path, tokenizer, monkeypatch):
    """Each layer at most once per batch, with exactly the rows that run it, trimmed to their longest row."""
    if not _overrides(name):
        pytest.skip(f"{name} serves batches one row at a time (Method.predict_batch's default)")
    method, model, knobs = _setup(name, regression, state, tmp_path, tokenizer)
    split = toy_split(SPLIT, regression, seed=3)
    idx = list(range(BATCH))
    lengths = [len(split.input_ids[i]) for i in idx]
    calls: list[tuple[int, int, int]] = []
    layer = model.engine.layer

    def recorded(i, hidden, mask):
        calls.append((i, hidden.shape[0], hidden.shape[1]))
        return layer(i, hidden, mask)

    monkeypatch.setattr(model.engine, "layer", recorded)
    for knob in knobs:
        calls.clear()
        got = method.predict_batch(model, split.batch(idx), knob)
        for i, rows, width in calls:
            ran = [r for r, p in enumerate(got) if i in p.executed]
            assert rows == len(ran) and width == max(lengths[r] for r in ran), (name, knob, i, rows, width)
        assert [i for i, _, _ in calls] == sorted({i for p in got for i in p.executed}), calls


def _decision_weights(model: MethodModel) -> set[int]:
    """The weights of every decision unit (off-ramps, LTE, halting gate, planners) and of BERT's head."""
    modules = [*model.extra.modules(), model.classifier.classifier]
    return {id(m.weight) for m in modules if isinstance(m, torch.nn.Linear)}


@pytest.mark.parametrize("name,regression,state", CLS_STATE, ids=CLS_IDS)
def test_fast_decisions_and_head_run_once_per_layer(name, regression, state, tmp_path, tokenizer, monkeypatch):
    """``exact=False``: every decision unit and the head is applied once per layer to the sub-batch still
    there (each unit's weight in at most one product per layer: at most N per batch), covering the same
    row decisions the exact mode takes one row at a time (one product per row: many more)."""
    if not _overrides(name):
        pytest.skip(f"{name} serves batches one row at a time (Method.predict_batch's default)")
    method, model, knobs = _setup(name, regression, state, tmp_path, tokenizer)
    batch = toy_split(SPLIT, regression, seed=3).batch(list(range(BATCH)))
    weights = _decision_weights(model)
    calls: list[tuple[int, int]] = []  # (weight, rows of the product)
    linear = torch.nn.functional.linear

    def counted(x, weight, bias=None):
        if id(weight) in weights:
            calls.append((id(weight), x.shape[0]))
        return linear(x, weight, bias)

    monkeypatch.setattr(torch.nn.functional, "linear", counted)
    for knob in knobs:
        runs = {}
        for exact in (False, True):
            calls.clear()
            got = method.predict_batch(model, batch, knob, exact=exact)
            runs[exact] = (list(calls), [p.executed for p in got])
        (fast, fast_paths), (exact_calls, exact_paths) = runs[False], runs[True]
        per_weight = Counter(w for w, _ in fast)
        assert fast and max(per_weight.values()) <= model.n_layers, (name, knob, per_weight)
        assert all(rows == 1 for _, rows in exact_calls) and len(exact_calls) > len(fast), (name, knob)
        if fast_paths == exact_paths:  # the same decisions taken: the fast products cover the same rows
            assert sum(rows for _, rows in fast) == len(exact_calls), (name, knob)


@pytest.mark.parametrize("name", sorted(n for n, cls in registered().items() if cls.static))
def test_a_static_batch_calls_each_layer_once(name, tmp_path, tokenizer):
    method, model, knobs = _setup(name, False, "cls", tmp_path, tokenizer)
    split = toy_split(SPLIT, seed=3)
    idx = next(g for g in split.equal_length_chunks(list(range(len(split))), 8) if len(g) == 8)
    counts, remove = count_layer_calls(model.engine)
    try:
        got = method.predict_batch(model, split.batch(idx), knobs[0])
    finally:
        remove()
    executed = got[0].executed
    assert all(p.executed == executed for p in got)
    assert counts == [1 if i in executed else 0 for i in range(len(counts))], counts


@pytest.mark.parametrize("name", sorted(n for n, cls in registered().items() if issubclass(cls, ExitCriterion)))
def test_an_early_exit_batch_reaches_later_layers_with_fewer_rows(name, tmp_path, tokenizer, monkeypatch):
    method, model, knobs = _setup(name, False, "cls", tmp_path, tokenizer)
    split = toy_split(SPLIT, seed=3)
    batch = split.batch(list(range(BATCH)))
    rows_at: dict[int, int] = {}
    layer = model.engine.layer

    def recorded(i, hidden, mask):
        rows_at[i] = hidden.shape[0]
        return layer(i, hidden, mask)

    monkeypatch.setattr(model.engine, "layer", recorded)
    method.predict_batch(model, batch, knobs[0])
    seen = [rows_at[i] for i in sorted(rows_at)]
    assert seen == sorted(seen, reverse=True) and seen[0] == BATCH and seen[-1] < BATCH, rows_at


def test_a_row_that_leaves_keeps_its_state_and_the_rest_are_trimmed():
    """engine.run_rows by hand: the longest row leaves after layer 0, so layer 1 runs the others at their
    own width; each row's state is the one its example alone reaches."""
    model = MethodModel(_classifier(False, "cls")).eval()
    split = toy_split(SPLIT, seed=3)
    by_length = sorted(range(len(split)), key=lambda i: -len(split.input_ids[i]))
    longest = len(split.input_ids[by_length[0]])
    idx = [by_length[0], *[i for i in by_length if len(split.input_ids[i]) < longest][:2]]  # one longest row, first
    batch = split.batch(idx)
    widths: list[tuple[int, int]] = []
    layer = model.engine.layer

    def recorded(i, hidden, mask):
        widths.append((i, hidden.shape[1]))
        return layer(i, hidden, mask)

    model.engine.layer = recorded
    with torch.inference_mode():
        out = model.engine.run_rows(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                                    layers=[0, 1], leave=lambda i, h, m, rows: [r == 0 for r in rows])
        del model.engine.layer
        lengths = [len(split.input_ids[i]) for i in idx]
        assert out.executed == [[0], [0, 1], [0, 1]]
        assert widths == [(0, lengths[0]), (1, max(lengths[1:]))] and lengths[0] > max(lengths[1:])
        for row, i in enumerate(idx):
            ex = split.example(i)
            alone = model.engine.run(ex["input_ids"], ex["attention_mask"], ex["token_type_ids"], layers=out.executed[row])
            assert out.states[row].shape == alone.hidden.shape
            torch.testing.assert_close(out.states[row], alone.hidden, rtol=1e-5, atol=1e-5)


def test_a_method_without_builder_is_trained_and_compared(tmp_path, tokenizer):
    """The path a newly registered method takes (no builder): trained on toy data, then compared."""
    model, knobs = trained_tiny("layerdrop", False, tmp_path, tokenizer)
    method = registered()["layerdrop"](None, CLS)
    split = toy_split(32, seed=3)
    a = agreement(method, model, split, range(len(split)), knobs[0], 8)
    assert a.n == 32 and a.share_equal >= 0.99, a


def test_the_hub_distilbert_student_serves_a_batch_in_one_forward():
    """``student: hub`` (no engine): its own Hugging Face forward on the padded batch, every layer for every row."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    from baselines.distilbert import HubStudent

    torch.manual_seed(0)
    cfg = DistilBertConfig(vocab_size=60, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64,
                           num_labels=3, initializer_range=0.3)
    model = HubStudent(DistilBertForSequenceClassification(cfg), reference_depth=N).eval()
    method = registered()["distilbert"]({"student": "hub"}, CLS)
    split = toy_split(32, seed=3)
    calls = []
    handle = model.hf.register_forward_hook(lambda *_: calls.append(1))
    got = method.predict_batch(model, split.batch(list(range(8))), 0.0)
    handle.remove()
    assert len(calls) == 1 and all(p.executed == [0, 1] for p in got)
    a = agreement(method, model, split, range(len(split)), 0.0, 8)
    assert a.share_equal >= 0.99 and a.max_abs_output_diff < 1e-4, a


def test_run_rows_refuses_a_left_padded_batch():
    model = MethodModel(_classifier(False, "cls")).eval()
    batch = toy_split(4, seed=3).batch([0, 1, 2, 3])
    mask = batch["attention_mask"].flip(1)  # left padding
    assert not torch.equal(mask, batch["attention_mask"])
    with pytest.raises(ValueError, match="right-padded"):
        model.engine.run_rows(batch["input_ids"], mask, batch["token_type_ids"])
