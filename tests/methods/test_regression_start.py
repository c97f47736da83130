"""Every method that builds a new regression head starts it at the training targets' mean and scale.

Why: a head starting at 0 against targets averaging 2.5 (STS-B's 0-5) cannot close the gap at a
fine-tuning lr, so the network closes it and PABEE's exits, sharing one pooler, learned to ignore the
input. ``start_at_targets`` is the fix for every method; this test stops each method's training before
its first step and checks where its regression outputs start."""

import importlib
import logging

import pytest
import torch

from baselines._early_exit import exit_logits_from_pooled, exit_pooled
from dpbert.data.tasks import get_task
from dpbert.methods.interface import TrainContext
from dpbert.methods.registry import build_method, get_method
from dpbert.model.sources import ModelSource, save_classifier, start_at_targets, target_scale
from tests.conftest import tiny_classifier, toy_split

N = 4
SOURCE = ModelSource("small", small={"num_hidden_layers": N, "hidden_size": 32, "num_attention_heads": 2,
                                     "intermediate_size": 64, "max_position_embeddings": 64}, max_length=64)
PARAMS = {"bert_truncated": {"layers": [2]}}  # a depth of the 4-layer test backbone
FAST = {"finetune": {"epochs": 1, "batch_size": 16, "lr": 1e-3}}

pytestmark = pytest.mark.usefixtures("one_thread")


class _Stop(Exception):
    pass


def test_start_at_targets_is_the_standardised_head_mapped_back():
    lin = torch.nn.Linear(3, 1)
    x = torch.randn(5, 3)
    z = lin(x).detach()
    targets = torch.tensor([1.0, 2.0, 3.0, 6.0])
    mean, std = target_scale(targets)
    assert mean == pytest.approx(3.0) and std == pytest.approx(float(targets.std(unbiased=False)))
    start_at_targets([lin], targets)
    torch.testing.assert_close(lin(x).detach(), z * std + mean)
    assert target_scale(torch.tensor([2.5, 2.5])) == (2.5, 1.0)  # no spread: scale 1
    cls = torch.nn.Linear(3, 2)
    before = cls.weight.detach().clone()
    start_at_targets([cls], None)  # classification: untouched
    assert torch.equal(cls.weight, before)
    with pytest.raises(ValueError, match="1 output"):
        start_at_targets([cls], targets)


def _outputs_before_training(name, tmp_path, tokenizer, monkeypatch):
    """Every regression output (final head, and each off-ramp) of ``name``'s model when its training
    loop is entered, on the training examples."""
    task = get_task("STS-B")
    train = toy_split(64, regression=True)
    base = tmp_path / "bert" / "main"
    save_classifier(tiny_classifier(num_labels=1, layers=N), tokenizer, base)
    ctx = TrainContext(task=task, train=train, dev=toy_split(24, True, seed=1), finetuned_dir=base,
                       out_dir=tmp_path / "out", seed=3, settings=FAST, model_source=SOURCE, device="cpu",
                       log=logging.getLogger("test"))
    ctx.out_dir.mkdir()
    seen = {}

    def capture(_params, _loss_fn, _split, _settings, **kw):
        seen["model"] = kw["modules"][0]
        raise _Stop

    module = importlib.import_module(get_method(name).__module__)
    monkeypatch.setattr(module, "train_loop", capture)
    method = build_method(name, PARAMS.get(name), task)
    with pytest.raises(_Stop):
        method.train(ctx)
    model = seen["model"].eval()
    outs = []
    with torch.no_grad():
        for i in range(32):
            ex = train.example(i)
            run = model.engine.run(ex["input_ids"], ex["attention_mask"], ex["token_type_ids"])
            outs.append([float(model.final_head(run.hidden, ex["attention_mask"]).view(-1)[0])])
            ramps = getattr(getattr(model.extra, "ramps", None), "classifiers", None)
            for j in range(len(ramps) if ramps is not None else 0):  # the last layer's state is enough
                pooled = exit_pooled(model, j, run.hidden)
                outs[-1].append(float(exit_logits_from_pooled(model, j, pooled).view(-1)[0]))
    return torch.tensor(outs), target_scale(train.label_tensor())


@pytest.mark.parametrize("name", ["bert", "bert_truncated", "layerdrop", "pabee", "berxit"])
def test_new_regression_heads_start_at_the_target_mean(name, tmp_path, tokenizer, monkeypatch):
    outs, (mean, std) = _outputs_before_training(name, tmp_path, tokenizer, monkeypatch)
    assert mean == pytest.approx(2.5, abs=0.8)  # toy targets are 0 or 5
    # each head's average answer is the targets' mean, not 0 (a fresh head's bias)
    torch.testing.assert_close(outs.mean(dim=0), torch.full((outs.shape[1],), mean), atol=0.5, rtol=0)


def test_dact_ramps_start_at_the_target_mean(tmp_path, tokenizer, monkeypatch):
    """DACT-BERT starts from stage 1 (its final head is BERT-base's); its new off-ramps start at the mean."""
    outs, (mean, _std) = _outputs_before_training("dact_bert", tmp_path, tokenizer, monkeypatch)
    torch.testing.assert_close(outs[:, 1:].mean(dim=0), torch.full((outs.shape[1] - 1,), mean), atol=0.5, rtol=0)
