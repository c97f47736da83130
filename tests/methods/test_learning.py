"""Tests that fail when a method stops *learning* what it exists to learn (not just when its arithmetic breaks).

Each builds a tiny problem whose right answer is known (a useless layer and a needed one, a rate
target, a ponder cost) and checks that the method's own loss, optimised for a few dozen steps,
moves its decisions the right way.
"""

from __future__ import annotations

import math

import pytest
import torch

from baselines._early_exit import ExitModules, exit_pooled, infer_exit, new_ramps
from baselines.berxit import LTE, Berxit
from baselines.dact_bert import DactBert, HaltingGate
from dpbert.data.tasks import get_task
from dpbert.methods.dpbert import DPBert, DPBertSoft, Planners, rate_penalty
from dpbert.model.engine import token_state
from dpbert.model.method_model import MethodModel
from tests.conftest import tiny_classifier, toy_split

pytestmark = pytest.mark.usefixtures("one_thread")
SST2 = get_task("SST-2")


# --- a toy backbone: layer 0 useless (identity), layer 1 needed (copies the label signal where the head reads)

def _useless_and_needed_model(init_bias: float = 0.0, state: str = "mean") -> MethodModel:
    """Embeddings carry the label (+-1) in feature 1 of every token; the head reads feature 0 of [CLS].
    Layer 0 is the identity (skipping it loses nothing); layer 1 copies feature 1 into feature 0 (skipping
    it leaves the head at chance). Planners are the only trainable part."""
    clf = tiny_classifier(layers=2)
    model = MethodModel(clf, Planners(2, 32, init_bias, state))
    for p in clf.parameters():
        p.requires_grad_(False)

    def embed(input_ids, attention_mask=None, token_type_ids=None):
        signal = (input_ids == 7).any(1).float() * 2 - 1  # label 1 iff token 7 occurs (toy_split's rule)
        hidden = torch.zeros(*input_ids.shape, 32)
        hidden[:, :, 1] = signal.view(-1, 1)
        hidden[:, :, 2:] = torch.randn(*input_ids.shape, 30) * 0.1  # some input-dependent noise
        return hidden, None

    def layer(i, hidden, mask):
        if i == 0:
            return hidden
        out = hidden.clone()
        out[:, :, 0] = hidden[:, :, 1]
        return out

    model.engine.embed = embed
    model.engine.layer = layer
    model.final_head = lambda hidden, _mask=None: torch.stack([-4 * hidden[:, 0, 0], 4 * hidden[:, 0, 0]], -1)
    return model


def _mean_probs(model: MethodModel, batch) -> list[float]:
    with torch.no_grad():
        hidden, _ = model.engine.embed(batch["input_ids"])
        return [model.extra.prob(i, hidden, batch["attention_mask"]).mean().item() for i in range(2)]


def _train_planners(method, model, data, target, steps=60, lr=0.05):
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.extra.parameters(), lr=lr)
    batches = list(data.batches(32, shuffle=True, seed=0))
    for s in range(steps):
        loss = method.stage3_loss(model, batches[s % len(batches)], target)
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_reinforce_learns_to_skip_the_useless_layer_and_keep_the_needed_one():
    method = DPBert({"beta": 0.0, "rl_lambda": 5.0, "cost": 1.0, "cost_normalized": False}, SST2)
    model = _useless_and_needed_model()
    data = toy_split(128)
    before = _mean_probs(model, data.batch(list(range(64))))
    assert before == pytest.approx([0.5, 0.5], abs=0.05)
    _train_planners(method, model, data, target=0.5)
    useless, needed = _mean_probs(model, data.batch(list(range(64))))
    assert useless < 0.2, f"the identity layer should be skipped, p = {useless:.3f}"
    assert needed > 0.8, f"the layer the head needs should run, p = {needed:.3f}"


def test_reinforce_with_the_policy_sign_flipped_fails_the_same_check(monkeypatch):
    """The check above can fail: with the advantage's sign flipped the planners learn the opposite."""
    import dpbert.methods.dpbert as dp

    real = dp.future_rewards
    monkeypatch.setattr(dp, "future_rewards", lambda *a, **k: -real(*a, **k))
    method = DPBert({"beta": 0.0, "rl_lambda": 5.0, "cost": 1.0, "cost_normalized": False}, SST2)
    model = _useless_and_needed_model()
    data = toy_split(128)
    _train_planners(method, model, data, target=0.5)
    useless, needed = _mean_probs(model, data.batch(list(range(64))))
    assert not (useless < 0.2 and needed > 0.8)


def test_rate_penalty_gradients_reach_the_planners():
    method = DPBert({"beta": 1.0}, SST2)
    model = _useless_and_needed_model(init_bias=2.0)
    batch = toy_split(32).batch(list(range(32)))
    method.stage3_loss(model, batch, 0.5).backward()
    for gate in model.extra.gates:
        assert gate.bias.grad is not None and gate.bias.grad.abs().item() > 0


@pytest.mark.parametrize("estimate", ["soft", "hard"])
def test_soft_gates_move_the_rate_toward_the_target(estimate):
    """DPBERT-soft's loss (task loss + beta (rho - t)^2) pulls the soft rate from ~0.12 (bias 2) toward t."""
    method = DPBertSoft({"beta": 10.0, "rate_estimate": estimate}, SST2)
    model = _useless_and_needed_model(init_bias=2.0)
    data = toy_split(128)
    batch = data.batch(list(range(64)))
    rho_before = 1 - sum(_mean_probs(model, batch)) / 2
    opt = torch.optim.Adam(model.extra.parameters(), lr=0.05)
    for s, b in zip(range(40), list(data.batches(32, shuffle=True, seed=0)) * 20):
        loss = method.soft_gate_loss(model, b, 0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
    rho_after = 1 - sum(_mean_probs(model, batch)) / 2
    assert rho_before < 0.15 and rho_after > 0.3, (rho_before, rho_after)


def _hard_skip_rate(model, batch) -> float:
    with torch.no_grad():
        hidden, _ = model.engine.embed(batch["input_ids"])
        probs = torch.stack([model.extra.prob(i, hidden, batch["attention_mask"]) for i in range(2)], 1)
    return (probs < 0.5).float().mean().item()


def test_hard_rate_estimate_makes_the_hard_skip_rate_follow_the_target():
    """With the straight-through hard rate, the share of decisions inference skips rises with t; the
    soft estimate can sit at rho = t with every hard decision still 'run' (p just above 0.5)."""
    rates = []
    for target in (0.1, 0.5, 0.9):
        method = DPBertSoft({"beta": 20.0, "rate_estimate": "hard"}, SST2)
        torch.manual_seed(0)
        model = _useless_and_needed_model(init_bias=2.0)
        data = toy_split(128)
        opt = torch.optim.Adam(model.extra.parameters(), lr=0.05)
        for b in list(data.batches(32, shuffle=True, seed=0)) * 15:
            loss = method.soft_gate_loss(model, b, target)  # task loss + beta (rho_hard - t)^2
            opt.zero_grad()
            loss.backward()
            opt.step()
        rates.append(_hard_skip_rate(model, data.batch(list(range(128)))))
    assert rates[0] < rates[1] < rates[2], rates
    assert rates[2] - rates[0] > 0.4, rates


def test_rate_penalty_hard_estimate_by_hand():
    probs = torch.tensor([[0.55, 0.55], [0.45, 0.9]], requires_grad=True)
    soft_pen, soft_rho = rate_penalty(probs, 0.45, "soft")
    hard_pen, hard_rho = rate_penalty(probs, 0.45, "hard")
    assert soft_rho.item() == pytest.approx(0.3875)
    assert hard_rho.item() == pytest.approx(0.25)  # one decision of four is below 0.5
    hard_pen.backward()
    # d/dp of (rho - t)^2 with the soft rate's gradient: 2 (0.25 - 0.45) * (-1/4) = +0.1 per p
    assert torch.allclose(probs.grad, torch.full_like(probs, 0.1))


# --- the state a decision reads

def test_mean_state_is_the_masked_token_mean():
    hidden = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    state = token_state(hidden, mask, "mean")
    assert torch.allclose(state[0], hidden[0, :2].mean(0))
    assert torch.allclose(state[1], hidden[1].mean(0))
    assert torch.equal(token_state(hidden, mask, "cls"), hidden[:, 0])
    with pytest.raises(ValueError, match="state"):
        token_state(hidden, mask, "max")


def test_a_mean_reading_off_ramp_sees_what_a_cls_one_cannot():
    """Where [CLS] is the same for every input (as on all-MiniLM's lower layers), a cls off-ramp gives every
    input the same answer; a mean off-ramp does not."""
    clf = tiny_classifier()
    hidden = torch.randn(4, 6, 32)
    hidden[:, 0] = hidden[0, 0]  # the same [CLS] state for all four inputs
    mask = torch.ones(4, 6, dtype=torch.long)
    for state, distinct in (("cls", False), ("mean", True)):
        model = MethodModel(clf, ExitModules(new_ramps(clf, state=state))).eval()
        pooled = exit_pooled(model, 0, hidden, mask)
        assert (not torch.allclose(pooled[0], pooled[1])) is distinct
        # the inference path (cached transposed pooler) reads the same state
        fast = torch.cat([infer_exit(model, 0, hidden[j:j + 1], mask[j:j + 1])[0] for j in range(4)])
        assert torch.allclose(fast, pooled, atol=1e-6)


def test_unknown_state_is_refused_with_the_key_named():
    with pytest.raises(ValueError, match="methods.dpbert.state"):
        DPBert({"state": "pooled"}, SST2)
    with pytest.raises(ValueError, match="methods.berxit.state"):
        Berxit({"state": "pooled"}, SST2)


# --- BERxiT and DACT-BERT

def test_berxit_alternates_final_layer_and_off_ramp_losses():
    """Even steps train BERT's head (final-layer loss), odd steps the off-ramps; the LTE unit every step."""
    clf = tiny_classifier()
    model = MethodModel(clf, ExitModules(new_ramps(clf), lte=LTE(32))).train()
    method = Berxit(None, SST2)
    batch = toy_split(16).batch(list(range(16)))
    grads = {}
    for step in (0, 1):
        model.zero_grad(set_to_none=True)
        method.loss(model, batch, step).backward()
        head = clf.classifier.weight.grad
        ramp = model.extra.ramps.classifiers[0].weight.grad
        lte = model.extra.lte.fc.weight.grad
        grads[step] = (head is not None and head.abs().sum().item() > 0,
                       ramp is not None and ramp.abs().sum().item() > 0,
                       lte is not None and lte.abs().sum().item() > 0)
    assert grads[0] == (True, False, True)
    assert grads[1] == (False, True, True)


def test_dact_ponder_cost_makes_the_model_halt_earlier():
    """Training the halting gate with a large tau lowers the continue-probability; tau = 0 does not."""
    data = toy_split(64)
    batch = data.batch(list(range(64)))
    continue_prob = {}
    for tau in (0.0, 0.5):
        clf = tiny_classifier()
        model = MethodModel(clf, ExitModules(new_ramps(clf), halting=HaltingGate(32, 0.0))).train()
        method = DactBert({"taus": [tau]}, SST2)
        opt = torch.optim.Adam(model.extra.halting.parameters(), lr=0.05)
        for b in list(data.batches(16, shuffle=True, seed=0)) * 5:
            loss = method.loss(model, b, tau)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            out = model.engine.run(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                                   keep_states=True)
            continue_prob[tau] = model.extra.halting(out.states[0], batch["attention_mask"]).mean().item()
    assert continue_prob[0.5] < 0.2 < continue_prob[0.0], continue_prob


def test_planner_probs_follow_the_inference_path():
    method = DPBert(None, SST2)
    clf = tiny_classifier()
    model = MethodModel(clf, Planners(4, 32, 0.0)).eval()
    with torch.no_grad():
        model.extra.gates[1].bias.fill_(-10.0)  # layer 2 always skipped
    ex = toy_split(4).example(0)
    probs = method.planner_probs(model, ex, 0.5)
    assert len(probs) == 4 and probs[1] < 0.01
    executed = method.predict_one(model, ex, 0.5).executed
    assert executed == [i for i, p in enumerate(probs) if p >= 0.5]


def test_soft_rate_estimate_meets_its_target_while_inference_skips_nothing():
    """The failure the hard estimate fixes: at t = 0.25 the soft rate is met with p ~ 0.75 on every layer,
    so the hard rule p >= 0.5 runs every layer; the hard estimate skips about a quarter of the decisions."""
    realised = {}
    for estimate in ("soft", "hard"):
        method = DPBertSoft({"beta": 20.0, "rate_estimate": estimate}, SST2)
        torch.manual_seed(0)
        model = _useless_and_needed_model(init_bias=2.0)
        data = toy_split(128)
        opt = torch.optim.Adam(model.extra.parameters(), lr=0.05)
        for b in list(data.batches(32, shuffle=True, seed=0)) * 15:
            loss = method.soft_gate_loss(model, b, 0.25)
            opt.zero_grad()
            loss.backward()
            opt.step()
        realised[estimate] = _hard_skip_rate(model, data.batch(list(range(128))))
    assert realised["soft"] < 0.1 and abs(realised["hard"] - 0.25) < 0.15, realised


@pytest.mark.parametrize("rate_grad", ["all", "bias"])
def test_rate_grad_bias_sends_the_rate_penalty_to_the_biases_only(rate_grad):
    """With no reward (lambda = C = 0) the penalty is the only path to the planners in stage 3: ``all``
    moves their weights too, ``bias`` the biases alone (the values it reads are the same p_i)."""
    method = DPBert({"beta": 20.0, "rate_estimate": "hard", "rl_lambda": 0.0, "cost": 0.0, "rate_grad": rate_grad},
                    SST2)
    model = _useless_and_needed_model(init_bias=2.0)
    batch = toy_split(32).batch(list(range(32)))
    method.stage3_loss(model, batch, 0.5).backward()
    for gate in model.extra.gates:
        assert gate.bias.grad.abs().item() > 0
        weights_moved = gate.weight.grad is not None and gate.weight.grad.abs().sum().item() > 0
        assert weights_moved == (rate_grad == "all")
    hidden, _ = model.engine.embed(batch["input_ids"])
    prob, for_rate = model.extra.probs_for_training(0, hidden, batch["attention_mask"], "bias")
    assert torch.equal(prob, for_rate) and torch.equal(prob, model.extra.prob(0, hidden, batch["attention_mask"]))


def test_init_at_target_starts_the_planners_at_the_targets_run_probability():
    method = DPBert({"init_at_target": True, "target_rates": [0.25, 0.45]}, SST2)
    assert method.initial_bias(0.25) == pytest.approx(math.log(3))
    assert torch.sigmoid(torch.tensor(method.initial_bias(0.45))).item() == pytest.approx(0.55)
    assert DPBert({"planner_init_bias": 1.5}, SST2).initial_bias(0.25) == 1.5  # off: the common bias
    with pytest.raises(ValueError, match="rate_grad"):
        DPBert({"rate_grad": "weights"}, SST2)
