import logging

import pytest
import torch

from dpbert.data.tasks import get_task
from dpbert.methods.dpbert import DPBert, Planners, future_rewards, rate_penalty
from dpbert.methods.interface import TrainContext
from dpbert.model.method_model import MethodModel, save_method_model
from dpbert.model.sources import ModelLoadError, save_classifier
from tests.conftest import tiny_classifier, toy_split

FAST = {"finetune": {"epochs": 1, "batch_size": 16, "lr": 1e-3}}


def _ctx(tmp_path, tokenizer, finetuned=True):
    base = tmp_path / "bert" / "main"
    if finetuned:
        save_classifier(tiny_classifier(layers=4), tokenizer, base)
    return TrainContext(task=get_task("SST-2"), train=toy_split(64), dev=toy_split(32, seed=1),
                        finetuned_dir=base, out_dir=tmp_path / "out", seed=3, settings=FAST,
                        model_source=None, device="cpu", log=logging.getLogger("test"))


def _model(ctx, bias=2.0):
    from dpbert.model.sources import load_classifier

    classifier, _ = load_classifier(ctx.finetuned_dir)
    return MethodModel(classifier, Planners(4, 32, bias))


def test_future_rewards_by_hand():
    actions = torch.tensor([[1.0, 0.0, 1.0]])
    r = future_rewards(actions, torch.tensor([0.5]), cost=1.0, rl_lambda=2.0)
    # to-go layer counts: 2, 1, 1 ; minus lambda * loss = 1.0
    assert r.tolist() == [[-3.0, -2.0, -2.0]]


def test_rate_penalty_by_hand():
    probs = torch.tensor([[1.0, 0.5], [0.5, 0.0]])
    penalty, rho = rate_penalty(probs, 0.25)
    assert rho.item() == pytest.approx(0.5) and penalty.item() == pytest.approx(0.0625)


def test_stage2_leaves_backbone_bit_identical(tmp_path, tokenizer):
    ctx = _ctx(tmp_path, tokenizer)
    method = DPBert({"stage2_epochs": 1, "stage2_lr": 1e-2}, ctx.task)
    model = _model(ctx)
    before = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    planners_before = [p.clone() for p in model.extra.parameters()]
    method.stage2(model, ctx, target=0.5)
    after = model.classifier.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(a, b) for a, b in zip(planners_before, model.extra.parameters()))
    assert all(p.requires_grad for p in model.classifier.parameters())  # unfrozen for stage 3


def _mean_skip_prob(model, split):
    probs = []
    for i in range(len(split)):
        ex = split.example(i)
        model.engine.run(ex["input_ids"], ex["attention_mask"], ex["token_type_ids"],
                         plan=lambda j, h: probs.append(model.extra.prob(j, h).item()) or True)
    return 1 - sum(probs) / len(probs)


@pytest.mark.parametrize("target", [0.2, 0.6])
def test_rate_penalty_moves_skip_rate_toward_target(tmp_path, tokenizer, target):
    ctx = _ctx(tmp_path, tokenizer)
    method = DPBert({"stage2_epochs": 4, "stage2_lr": 3e-2, "beta": 20.0}, ctx.task)
    model = _model(ctx, bias=2.0)  # starts at skip rate ~0.12
    start = _mean_skip_prob(model, ctx.dev)
    method.stage2(model, ctx, target=target)
    end = _mean_skip_prob(model, ctx.dev)
    assert abs(end - target) < abs(start - target) / 2, (start, end)


def test_trained_model_round_trips(tmp_path, tokenizer):
    ctx = _ctx(tmp_path, tokenizer)
    method = DPBert({"target_rates": [0.4], "stage2_epochs": 1, "stage2_lr": 3e-2, "stage3_epochs": 1,
                     "planner_init_bias": 0.0}, ctx.task)
    ctx.out_dir.mkdir()
    method.train(ctx)
    folder = ctx.out_dir / method.variants()[0]
    first = method.load(folder)
    second = method.load(folder)
    executed_sets = set()
    for i in range(len(ctx.dev)):
        ex = ctx.dev.example(i)
        a, b = method.predict_one(first, ex, 0.5), method.predict_one(second, ex, 0.5)
        torch.testing.assert_close(a.output, b.output, rtol=0, atol=0)
        assert a.executed == b.executed
        executed_sets.add(tuple(a.executed))
        # the executed layers are exactly those whose planner said run on the way (p_i >= threshold)
        assert a.executed == [j for j, p in enumerate(method.planner_probs(first, ex, 0.5)) if p >= 0.5]
    assert executed_sets


def test_corrupt_checkpoint_gets_clear_error(tmp_path, tokenizer):
    model = MethodModel(tiny_classifier(layers=4), Planners(4, 32))
    save_method_model(model, tokenizer, tmp_path / "m", {"method": "dpbert"})
    weights = tmp_path / "m" / "backbone" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        DPBert(None, get_task("SST-2")).load(tmp_path / "m")


def test_skipping_planner_runs_no_layer_module(tmp_path, tokenizer):
    from dpbert.model.engine import count_layer_calls

    model = MethodModel(tiny_classifier(layers=4), Planners(4, 32, init_bias=-10.0)).eval()
    counts, remove = count_layer_calls(model.engine)
    pred = DPBert(None, get_task("SST-2")).predict_one(model, toy_split(1).example(0), 0.5)
    remove()
    assert pred.executed == [] and counts == [0, 0, 0, 0]


def test_unset_method_settings_fall_back_to_the_config():
    from dpbert.model.training import TrainSettings

    s = TrainSettings.from_dict({"epochs": 4, "lr": 5e-4, "batch_size": 16}, epochs=None, lr=1e-3)
    assert (s.epochs, s.lr, s.batch_size) == (4, 1e-3, 16)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_weights(tmp_path):
    from dpbert.model.training import (
        NonFiniteLossError,
        TrainSettings,
        set_rescue_dir,
        train_loop,
    )

    model = tiny_classifier(layers=2)
    weights_at_step: dict[int, dict] = {}

    def loss_fn(batch, step):
        weights_at_step[step] = {k: v.clone() for k, v in model.state_dict().items()}
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = torch.nn.functional.cross_entropy(out, batch["labels"])
        return loss * float("nan") if step == 3 else loss

    set_rescue_dir(tmp_path / "rescue")
    try:
        with pytest.raises(NonFiniteLossError, match="at step 3 of") as err:
            train_loop(model.parameters(), loss_fn, toy_split(64), TrainSettings(epochs=2, batch_size=8, lr=1e-2),
                       seed=0, desc="toy", modules=[model])
    finally:
        set_rescue_dir(None)
    saved = torch.load(next((tmp_path / "rescue").glob("toy_step3.pt")))[0]
    assert "last good weights (before step 3)" in str(err.value)
    assert all(torch.equal(saved[k], weights_at_step[3][k]) for k in saved)
    assert any(not torch.equal(saved[k], weights_at_step[0][k]) for k in saved)  # it did train before
