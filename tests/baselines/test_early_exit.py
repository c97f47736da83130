"""DeeBERT, BERxiT, PABEE and DACT-BERT on a tiny 4-layer BERT: exits, no wasted layers, round trips."""

import json
import logging
import math

import pytest
import torch

from baselines._early_exit import (
    ExitModules,
    all_exits,
    exit_logits_from_pooled,
    exit_pooled,
    host_argmax,
    host_entropy,
    host_sigmoid,
    host_values,
    infer_exit,
    new_ramps,
)
from baselines.berxit import LTE, Berxit, lte_loss, lte_targets
from baselines.dact_bert import (
    VARIANTS_FILE,
    DactBert,
    HaltingGate,
    accumulate,
    accumulate_host,
    cannot_be_overtaken,
    variant_name,
)
from baselines.deebert import DeeBert
from baselines.pabee import Pabee, weighted_loss
from dpbert.data.tasks import get_task
from dpbert.methods.interface import TrainContext
from dpbert.model.engine import count_layer_calls
from dpbert.model.method_model import META_FILE, MethodModel
from dpbert.model.sources import ModelSource, load_classifier, save_classifier
from tests.conftest import tiny_classifier, toy_split

FAST = {"finetune": {"epochs": 1, "batch_size": 16, "lr": 1e-3}}
N = 4
# The backbone BERxiT and PABEE train from (they start from the pretrained model, not stage 1): tiny_classifier's shape
TINY_SOURCE = ModelSource("small", small={"num_hidden_layers": N, "hidden_size": 32, "num_attention_heads": 2,
                                          "intermediate_size": 64, "max_position_embeddings": 64}, max_length=64)
CLS, REG = get_task("SST-2"), get_task("STS-B")


pytestmark = pytest.mark.usefixtures("one_thread")


def _ctx(tmp_path, tokenizer, regression=False):
    base = tmp_path / "bert" / "main"
    save_classifier(tiny_classifier(num_labels=1 if regression else 2, layers=N), tokenizer, base)
    return TrainContext(task=REG if regression else CLS, train=toy_split(64, regression),
                        dev=toy_split(24, regression, seed=1), finetuned_dir=base, out_dir=tmp_path / "out",
                        seed=3, settings=FAST, model_source=TINY_SOURCE, device="cpu", log=logging.getLogger("test"))


def _model(name: str, regression=False, gate_bias=0.0) -> MethodModel:
    c = tiny_classifier(num_labels=1 if regression else 2, layers=N)
    extra = {
        "deebert": lambda: ExitModules(new_ramps(c)),
        "berxit": lambda: ExitModules(new_ramps(c), lte=LTE(32)),
        "pabee": lambda: ExitModules(new_ramps(c, own_poolers=False)),
        "dact_bert": lambda: ExitModules(new_ramps(c), halting=HaltingGate(32, gate_bias)),
    }[name]()
    return MethodModel(c, extra).eval()


METHODS = {"deebert": DeeBert, "berxit": Berxit, "pabee": Pabee, "dact_bert": DactBert}


def _predict(method, model, example, knob):
    counts, remove = count_layer_calls(model.engine)
    try:
        pred = method.predict_one(model, example, knob)
    finally:
        remove()
    return pred, counts


def _full_final(model, ex):
    with torch.inference_mode():
        out = model.engine.run(ex["input_ids"], ex["attention_mask"], ex["token_type_ids"])
        return model.final_head(out.hidden)[0]


def _same_prediction_everywhere(model):
    """Every exit (off-ramps and BERT's head) predicts class 0 whatever the input."""
    heads = list(model.extra.ramps.classifiers) + [model.classifier.classifier]
    with torch.no_grad():
        for lin in heads:
            lin.weight.zero_()
            lin.bias.copy_(torch.tensor([3.0, 0.0]))


# (1) a criterion that always fires exits at the first possible layer; later layers never run
@pytest.mark.parametrize("name,knob,first", [
    ("deebert", 1e9, [0]), ("berxit", 1.01, [0]), ("pabee", 1, [0, 1]), ("dact_bert", 0.0, [0])])
def test_forced_exit_at_first_possible_layer(name, knob, first):
    model = _model(name, gate_bias=30.0)  # DACT: sigmoid(30) = 1 -> h_1 = 0 -> p_1 = 0
    if name == "pabee":
        _same_prediction_everywhere(model)  # patience 1: layers 1 and 2 agree -> exit after layer 2
    method = METHODS[name](None, CLS)
    for i in range(5):
        pred, counts = _predict(method, model, toy_split(5, seed=2).example(i), knob)
        assert pred.executed == first
        assert counts == [1 if j in first else 0 for j in range(N)]
        assert pred.output.shape == (2,)


# (2) a criterion that never fires runs every layer and equals BERT's head on the full model
@pytest.mark.parametrize("name,knob", [("deebert", -1.0), ("berxit", -1.0), ("pabee", N + 1), ("pabee", 0),
                                       ("dact_bert", 0.0)])
def test_never_firing_criterion_equals_final_layer(name, knob):
    model = _model(name, gate_bias=-30.0)  # DACT: h_n = 1 exactly in fp32 -> p_n = 1 -> a_N = y_N
    method = METHODS[name](None, CLS)
    split = toy_split(6, seed=4)
    for i in range(len(split)):
        ex = split.example(i)
        pred, counts = _predict(method, model, ex, knob)
        assert pred.executed == list(range(N)) and counts == [1] * N
        final = _full_final(model, ex)
        if name == "dact_bert":  # output is log(a_N) and a_N = softmax(y_N) of BERT's head
            torch.testing.assert_close(pred.output.exp(), torch.softmax(final, -1))
        else:
            torch.testing.assert_close(pred.output, final, rtol=0, atol=0)


def test_dact_regression_forced_and_never():
    method = DactBert(None, REG)
    ex = toy_split(3, regression=True).example(0)
    fast = _model("dact_bert", regression=True, gate_bias=30.0)
    pred, counts = _predict(method, fast, ex, 0.5)
    assert pred.executed == [0] and counts == [1, 0, 0, 0] and pred.output.shape == (1,)
    slow = _model("dact_bert", regression=True, gate_bias=-30.0)
    pred, counts = _predict(method, slow, ex, 0.5)
    assert counts == [1] * N
    torch.testing.assert_close(pred.output, _full_final(slow, ex), rtol=0, atol=0)


# (3) train() runs, saves; load() twice gives identical outputs and executed layers
@pytest.mark.parametrize("name,regression", [
    ("deebert", False), ("berxit", False), ("pabee", False), ("dact_bert", False),
    ("berxit", True), ("pabee", True), ("dact_bert", True)])
def test_train_save_load_round_trip(tmp_path, tokenizer, name, regression):
    ctx = _ctx(tmp_path, tokenizer, regression)
    params = {"taus": [5e-3]} if name == "dact_bert" else None
    method = METHODS[name](params, ctx.task)
    ctx.out_dir.mkdir()
    method.train(ctx)
    record = ["search"] if name == "dact_bert" else []  # its search job's folder: the taus it trained (no search:
    assert sorted(p.name for p in ctx.out_dir.iterdir()) == sorted(method.variants() + record)  # no selection)
    if name == "dact_bert":
        assert sorted(p.name for p in (ctx.out_dir / "search").iterdir()) == [VARIANTS_FILE]
    assert method.trained_variants(ctx.out_dir) == method.variants()
    folder = ctx.out_dir / method.variants()[0]
    first, second = method.load(folder), method.load(folder)
    fresh = new_ramps(load_classifier(ctx.finetuned_dir)[0], own_poolers=name != "pabee")
    assert any(not torch.equal(a, b) for a, b in zip(fresh.parameters(), first.extra.ramps.parameters()))
    for knob in method.knobs()[:3]:
        for i in range(len(ctx.dev)):
            ex = ctx.dev.example(i)
            a, b = method.predict_one(first, ex, knob), method.predict_one(second, ex, knob)
            torch.testing.assert_close(a.output, b.output, rtol=0, atol=0)
            assert a.executed == b.executed and 1 <= len(a.executed) <= N
            assert a.output.shape == ((1,) if regression else (2,))


# (4) DeeBERT stage 2 leaves backbone and final classifier bit-identical, moves only the off-ramps
def test_deebert_stage2_freezes_backbone(tmp_path, tokenizer):
    ctx = _ctx(tmp_path, tokenizer)
    method = DeeBert({"lr": 1e-2}, ctx.task)
    classifier, _ = load_classifier(ctx.finetuned_dir)
    model = MethodModel(classifier, ExitModules(new_ramps(classifier)))
    before = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    ramps_before = [p.clone() for p in model.extra.parameters()]
    method.stage2(model, ctx)
    after = model.classifier.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(a, b) for a, b in zip(ramps_before, model.extra.parameters()))
    assert all(p.requires_grad for p in model.classifier.parameters())
    # and the saved model's backbone is the stage-1 model, bit for bit
    ctx.out_dir.mkdir()
    method.train(ctx)
    saved = method.load(ctx.out_dir / "main").classifier.state_dict()
    stage1 = load_classifier(ctx.finetuned_dir)[0].state_dict()
    assert all(torch.equal(stage1[k], saved[k]) for k in stage1)


# (5) regression support is declared honestly, and predict_one works on STS-B-like data
def test_regression_support(tmp_path, tokenizer):
    assert DeeBert.supports_regression is False
    assert all(METHODS[n].supports_regression for n in ("berxit", "pabee", "dact_bert"))
    with pytest.raises(ValueError, match="regression"):
        DeeBert(None, REG).train(_ctx(tmp_path, tokenizer, regression=True))
    split = toy_split(4, regression=True)
    for name in ("berxit", "pabee", "dact_bert"):
        method, model = METHODS[name](None, REG), _model(name, regression=True)
        for knob in method.knobs():
            pred = method.predict_one(model, split.example(0), knob)
            assert pred.output.shape == (1,) and 1 <= len(pred.executed) <= N


def test_pabee_regression_tolerance_counts_small_changes():
    model = _model("pabee", regression=True)
    heads = list(model.extra.ramps.classifiers) + [model.classifier.classifier]
    with torch.no_grad():
        for j, lin in enumerate(heads):  # outputs 0.0, 0.05, 0.10, 0.15: each change 0.05 < 0.1
            lin.weight.zero_()
            lin.bias.fill_(0.05 * j)
    ex = toy_split(1, regression=True).example(0)
    assert Pabee({"regression_tolerance": 0.1}, REG).predict_one(model, ex, 2).executed == [0, 1, 2]
    assert Pabee({"regression_tolerance": 0.01}, REG).predict_one(model, ex, 2).executed == list(range(N))


def test_helpers_by_hand():
    assert host_entropy([0.0, 0.0]) == pytest.approx(math.log(2))
    assert host_entropy([100.0, 0.0]) == pytest.approx(0.0, abs=1e-6)
    # DACT: a_1 = y_1 (p_0 = 1); a_2 = y_2 p_1 + a_1 (1 - p_1)
    y1, y2 = torch.tensor([[0.8, 0.2]]), torch.tensor([[0.2, 0.8]])
    a1 = accumulate(y1, torch.zeros(1, 2), torch.ones(1))
    a2 = accumulate(y2, a1, torch.tensor([0.25]))
    torch.testing.assert_close(a2, torch.tensor([[0.65, 0.35]]))
    # 0.65 * 0.75^1 - 0.35 - 0.25 * 1 < 0 (can still flip); with p = 0.05 it cannot
    a = a2[0].tolist()
    assert not cannot_be_overtaken(a, 0.25, 1) and cannot_be_overtaken(a, 0.05, 1)
    # LTE targets are the exit's error; PABEE weights layer i by i / sum i
    assert lte_targets(torch.tensor([[2.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 0]), False).tolist() == [0.0, 1.0]
    assert lte_targets(torch.tensor([[1.0]]), torch.tensor([3.0]), True).item() == pytest.approx(math.tanh(2.0))
    losses = [torch.zeros(1, 1), torch.ones(1, 1)]  # regression MSE vs 0: L_1 = 0, L_2 = 1
    assert weighted_loss(losses, torch.zeros(1), True).item() == pytest.approx(2 / 3)


def test_default_grids_span_exiting_and_not_exiting():
    """Defaults that do something, on a 12-layer model (PABEE: every exit agrees; DeeBERT: untrained ramps): each default
    knob of PABEE is its own operating point before the last layer; DeeBERT's grid holds a knob that never
    exits and one that exits; BERxiT's grid lies strictly inside the LTE output's range; DACT trains >= 2 taus."""
    c = tiny_classifier(layers=12)
    ex = toy_split(3).example(0)
    pabee_model = MethodModel(c, ExitModules(new_ramps(c, own_poolers=False))).eval()
    _same_prediction_everywhere(pabee_model)
    pabee = Pabee(None, CLS)
    depths = [len(pabee.predict_one(pabee_model, ex, k).executed) for k in pabee.knobs()]
    assert len(set(depths)) == len(depths) and max(depths) < 12, depths
    dee_model = MethodModel(c, ExitModules(new_ramps(c))).eval()
    dee = DeeBert(None, CLS)
    depths = {len(dee.predict_one(dee_model, ex, k).executed) for k in dee.knobs()}
    assert 12 in depths and min(depths) < 12, depths
    assert 0 < min(Berxit(None, CLS).knobs()) and max(Berxit(None, CLS).knobs()) < 1
    taus = DactBert(None, CLS).params.taus
    assert len(set(taus)) >= 2 and all(t > 0 for t in taus)
    assert all(0 < k < 1 for k in DactBert(None, REG).knobs())


# (4) the inference path (infer_exit, host statistics) computes the same function as the modules
def _hidden(model, seed=0):
    ex = toy_split(3, seed=seed).example(1)
    with torch.no_grad():
        return model.engine.run(ex["input_ids"], ex["attention_mask"], ex["token_type_ids"], keep_states=True).states


def _module_path(model, i, h):
    pooled = exit_pooled(model, i, h)
    return pooled, exit_logits_from_pooled(model, i, pooled)


@pytest.mark.parametrize("name", ["deebert", "berxit", "pabee", "dact_bert"])
def test_infer_exit_equals_module_path(name):
    model = _model(name)
    with torch.inference_mode():
        for i, h in enumerate(_hidden(model)):
            fast, ref = infer_exit(model, i, h), _module_path(model, i, h)
            for a, b in zip(fast, ref):
                if i == N - 1:  # BERT's own head: exactly as BERT-base runs it
                    torch.testing.assert_close(a, b, rtol=0, atol=0)
                else:
                    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_infer_exit_follows_weight_changes():
    """The transposed copies are rebuilt after an in-place update, a new parameter, or a reload."""
    model = _model("deebert")
    states = _hidden(model)

    def agree() -> bool:
        with torch.inference_mode():
            return all(torch.allclose(infer_exit(model, i, h)[1], _module_path(model, i, h)[1], atol=1e-6)
                       for i, h in enumerate(states[:-1]))

    assert agree()
    with torch.no_grad():
        model.extra.ramps.poolers[0].dense.weight.mul_(-3.0)
    assert agree()
    model.extra.ramps.poolers[1].dense.weight = torch.nn.Parameter(torch.randn(32, 32))
    assert agree()
    model.extra.load_state_dict(_model("deebert").extra.state_dict())
    assert agree()


def test_infer_exit_in_training_mode_uses_the_modules():
    """Dropout is active in training mode: the inference shortcut must not apply there."""
    model = _model("deebert").train()
    h = _hidden(model)[0]
    torch.manual_seed(5)
    fast = infer_exit(model, 0, h)[1]
    torch.manual_seed(5)
    torch.testing.assert_close(fast, _module_path(model, 0, h)[1], rtol=0, atol=0)


def test_host_statistics_equal_tensor_ones():
    logits = torch.tensor([[1.5, -0.25, 0.75]])
    reference = torch.distributions.Categorical(logits=logits[0]).entropy().item()
    assert host_entropy(host_values(logits)) == pytest.approx(reference, rel=1e-6)
    assert host_argmax([0.5, 2.0, 2.0]) == int(torch.tensor([0.5, 2.0, 2.0]).argmax()) == 1
    for x in (-1000.0, -3.0, 0.0, 2.5, 1000.0):
        assert host_sigmoid(x) == pytest.approx(torch.sigmoid(torch.tensor(x, dtype=torch.float64)).item())
    y, a = torch.tensor([[0.2, 0.8]]), torch.tensor([[0.6, 0.4]])
    assert accumulate_host(y[0].tolist(), a[0].tolist(), 0.3) == pytest.approx(
        accumulate(y, a, torch.tensor([0.3]))[0].tolist())
    h = _hidden(_model("dact_bert"))[0]
    gate, lte = HaltingGate(32), LTE(32)
    assert gate.continue_one(h) == pytest.approx(gate(h).item(), rel=1e-6)
    pooled = torch.randn(1, 32)
    assert lte.error_one(pooled) == pytest.approx(lte(pooled).item(), rel=1e-6)


# DACT-BERT's tau search: a training knob searched like an inference threshold, one model a round

def _fake_dact_training(monkeypatch, speedup_of_tau):
    """DactBert._train_one replaced by a known speed-up curve (no training); returns the taus trained, in order."""
    trained: list[float] = []

    def train_one(self, ctx, tau, folder):
        trained.append(tau)
        folder.mkdir(parents=True)
        (folder / META_FILE).write_text(json.dumps({"dev_layer_speedup": speedup_of_tau(tau)}))  # as the real one
        return speedup_of_tau(tau)

    monkeypatch.setattr(DactBert, "_train_one", train_one)
    return trained


def test_dact_tau_search_trains_taus_inside_the_window(tmp_path, tokenizer, monkeypatch):
    """Grid taus 1e-3 (1.1x) and 1e-1 (2.5x) straddle the window: the search trains taus between them
    until 2 land inside, at most tau_search more models, and the sweep's variants are every trained tau."""
    trained = _fake_dact_training(monkeypatch, lambda tau: 1.0 + 0.5 * (math.log10(tau) + 3.2))
    ctx = _ctx(tmp_path, tokenizer)
    ctx.selection = {"window": [1.30, 1.96], "min_points_in_window": 2}
    ctx.out_dir.mkdir()
    method = DactBert({"taus": [1e-3, 1e-1], "tau_search": 3}, CLS)
    method.train(ctx)
    assert trained[:2] == [1e-3, 1e-1] and 2 < len(trained) <= 5
    new = trained[2:]
    assert all(1e-3 < t < 1e-1 for t in new)
    inside = [t for t in new if 1.30 <= 1.0 + 0.5 * (math.log10(t) + 3.2) <= 1.96]
    assert len(inside) >= 2, trained
    record = json.loads((ctx.out_dir / "search" / VARIANTS_FILE).read_text())  # the search job's folder
    assert record["tau_search"].startswith("ok"), record
    assert method.trained_variants(ctx.out_dir) == [variant_name(t) for t in sorted(trained)]


def test_dact_tau_search_off_without_selection_or_for_regression(tmp_path, tokenizer, monkeypatch):
    trained = _fake_dact_training(monkeypatch, lambda tau: 1.1)
    ctx = _ctx(tmp_path, tokenizer)
    ctx.out_dir.mkdir()
    DactBert({"taus": [1e-3], "tau_search": 2}, CLS).train(ctx)  # no selection: the grid only
    assert trained == [1e-3]
    ctx.selection, ctx.out_dir = {"window": [1.30, 1.96]}, tmp_path / "out2"
    ctx.out_dir.mkdir()
    DactBert({"taus": [1e-3], "tau_search": 0}, CLS).train(ctx)
    assert trained == [1e-3, 1e-3]
    ctx.out_dir = tmp_path / "out3"
    ctx.out_dir.mkdir()
    DactBert({"taus": [1e-3], "tau_search": 2}, CLS).train(ctx)  # 1.1x everywhere: tries the range's high end
    assert trained[2:] == [1e-3, 1e-2]
    record = json.loads((ctx.out_dir / "search" / VARIANTS_FILE).read_text())
    assert record["tau_search"].startswith("unreachable: max speed-up 1.10"), record


def test_dact_unreadable_variant_record_names_the_fix(tmp_path):
    (tmp_path / VARIANTS_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="delete the model folder"):
        DactBert(None, CLS).trained_variants(tmp_path)


@pytest.mark.parametrize("lte_grad,reaches_backbone", [("backbone", True), ("lte_only", False)])
def test_berxit_lte_grad_says_what_the_lte_loss_trains(lte_grad, reaches_backbone):
    """The LTE loss always trains the LTE unit; it reaches the backbone and the off-ramps' poolers only
    with lte_grad = backbone (the official code)."""
    model = _model("berxit").train()
    batch = toy_split(16).batch(list(range(16)))
    exits = all_exits(model, batch)
    lte_loss(model, exits, batch["labels"], False, lte_grad).backward()
    assert model.extra.lte.fc.weight.grad is not None and model.extra.lte.fc.weight.grad.abs().sum() > 0
    backbone = [p.grad for p in model.backbone_parameters() if p.grad is not None]
    ramps = [p.grad for p in model.extra.ramps.parameters() if p.grad is not None]
    moved = any(g.abs().sum() > 0 for g in backbone + ramps)
    assert moved == reaches_backbone


def test_berxit_unknown_lte_grad_is_refused():
    with pytest.raises(Exception, match="lte_grad"):
        Berxit({"lte_grad": "everything"}, CLS)
