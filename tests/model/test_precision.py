"""training.precision / latency.precision: fp32 enters no autocast (bit for bit the old loop); bf16 and fp16
train on CPU under autocast with float32 weights, fp16 through a GradScaler; what a device cannot run is refused."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch

from dpbert.model import precision as amp
from dpbert.model.training import TrainSettings, train_loop
from tests.conftest import tiny_classifier, toy_split


def _bag_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Embedding(60, 16), torch.nn.Linear(16, 16), torch.nn.ReLU(),
                               torch.nn.Linear(16, 2))


def _train_bag(precision: str | None, seen_dtypes: list | None = None, epochs: float = 6):
    """A bag-of-embeddings classifier of toy_split (label: token 7 appears), a few dozen steps."""
    model = _bag_model()
    values = {"epochs": epochs, "batch_size": 16, "lr": 3e-2, "warmup_ratio": 0.0}
    settings = TrainSettings.from_training({"finetune": values} | ({"precision": precision} if precision else {}))

    def loss_fn(batch, step):
        emb = model[0](batch["input_ids"])  # (B, T, 16)
        mask = batch["attention_mask"].unsqueeze(-1).to(emb.dtype)
        logits = model[1:]((emb * mask).sum(1) / mask.sum(1))
        if seen_dtypes is not None:
            seen_dtypes.append((logits.dtype, torch.is_autocast_enabled("cpu")))
        return torch.nn.functional.cross_entropy(logits, batch["labels"])

    losses = train_loop(model.parameters(), loss_fn, toy_split(64), settings, seed=3, desc="t", modules=[model])
    return model, losses


def _no_autocast(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("fp32 entered torch.autocast")

    monkeypatch.setattr(torch, "autocast", refuse)
    monkeypatch.setattr(torch.amp, "autocast", refuse)
    monkeypatch.setattr(torch.amp, "GradScaler", refuse)


def test_fp32_default_and_explicit_enter_no_autocast_and_are_identical(monkeypatch):
    _no_autocast(monkeypatch)
    seen: list = []
    default, losses_default = _train_bag(None, seen)
    explicit, losses_explicit = _train_bag("fp32")
    assert seen and all(dtype == torch.float32 and not on for dtype, on in seen)
    assert losses_default == losses_explicit
    for a, b in zip(default.parameters(), explicit.parameters(), strict=True):
        assert torch.equal(a, b)


def test_fp32_loop_equals_the_loop_without_precision(monkeypatch):
    """The same training with the loop's precision hooks replaced by what they were before the keys existed
    (no context, no scaler): every parameter bit for bit."""
    from dpbert.model import training

    reference, _ = _train_bag("fp32")
    monkeypatch.setattr(training, "autocast", lambda *a: pytest.fail("autocast asked for"))
    monkeypatch.setattr(training, "grad_scaler", lambda *a: None)
    monkeypatch.setattr(training, "check_precision", lambda *a: None)
    with pytest.raises(pytest.fail.Exception):
        _train_bag("fp32")  # the loop does call the hook; the reference run went through the nullcontext
    monkeypatch.setattr(training, "autocast", lambda *a: nullcontext())
    bare, _ = _train_bag("fp32")
    for a, b in zip(reference.parameters(), bare.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_trains_on_cpu_with_float32_weights(precision):
    seen: list = []
    model, losses = _train_bag(precision, seen)
    _, fp32_losses = _train_bag("fp32")
    half = torch.bfloat16 if precision == "bf16" else torch.float16
    assert seen and all(dtype == half and on for dtype, on in seen)  # the forward ran under autocast
    assert sum(losses[-4:]) / 4 < 0.8 * sum(losses[:4]) / 4  # it learns
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay float32
    assert losses != fp32_losses  # another arithmetic, not the fp32 run under another name


def test_fp16_steps_through_a_grad_scaler(monkeypatch):
    steps = []
    real = torch.amp.GradScaler

    class Spy(real):
        def step(self, optimizer, *args, **kwargs):
            steps.append(self.get_scale())
            return super().step(optimizer, *args, **kwargs)

    monkeypatch.setattr(torch.amp, "GradScaler", Spy)
    _, losses = _train_bag("fp16", epochs=1)
    assert len(steps) == len(losses) == 4
    _train_bag("bf16", epochs=1)
    assert len(steps) == 4  # bf16 needs no scaling


def test_bf16_tiny_bert_changes_its_float32_parameters():
    model = tiny_classifier(layers=1).train()
    before = [p.detach().clone() for p in model.parameters()]
    settings = TrainSettings(epochs=1, batch_size=8, lr=1e-3, precision="bf16")

    def loss_fn(batch, step):
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        assert out.logits.dtype == torch.bfloat16
        return out.loss

    losses = train_loop(model.parameters(), loss_fn, toy_split(16), settings, seed=1, desc="t", modules=[model])
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    after = list(model.parameters())
    assert all(p.dtype == torch.float32 for p in after)
    assert sum(not torch.equal(a, b) for a, b in zip(before, after)) > len(before) // 2


def test_settings_take_training_precision_and_record_it():
    assert TrainSettings.from_training({"finetune": {"lr": 1e-3}}).precision == "fp32"
    s = TrainSettings.from_training({"finetune": {"lr": 1e-3}, "precision": "bf16"}, lr=None, epochs=2)
    assert (s.precision, s.lr, s.epochs) == ("bf16", 1e-3, 2)
    assert s.as_dict()["precision"] == "bf16"  # what every method's method.json records as its settings


@pytest.mark.parametrize(("precision", "device", "expect"), [
    ("half", "cpu", "not a precision"),
    ("bf16", "mps", "only supported here on cpu and cuda"),
])
def test_what_cannot_run_is_refused_naming_the_key(precision, device, expect):
    with pytest.raises(ValueError, match=expect) as err:
        amp.check_precision(precision, device, "training.precision")
    assert f"`training.precision: {precision}`" in str(err.value) and "Set `training.precision" in str(err.value)


def test_train_loop_refuses_an_unknown_precision_before_any_step():
    calls = []
    with pytest.raises(ValueError, match="training.precision"):
        train_loop([torch.nn.Parameter(torch.zeros(1))], lambda b, s: calls.append(s), toy_split(8),
                   TrainSettings(precision="fp8"), seed=0, desc="t")
    assert calls == []


def test_fp32_on_any_device_is_accepted_and_needs_no_scaler():
    assert amp.check_precision("fp32", "mps", "latency.precision") == "fp32"
    assert amp.grad_scaler("fp32", "cpu") is None and amp.grad_scaler("bf16", "cpu") is None
    assert isinstance(amp.grad_scaler("fp16", "cpu"), torch.amp.GradScaler)


def test_fp16_resumes_its_loss_scale_from_a_checkpoint(tmp_path, monkeypatch):
    """Step 1's gradients overflow half (the scaler skips it and halves its scale); a run stopped after step 4
    and resumed from its step-4 checkpoint steps with the scales and weights of an uninterrupted run."""
    from dpbert.model import checkpoint

    scales: list[float] = []

    class Spy(torch.amp.GradScaler):
        def step(self, optimizer, *args, **kwargs):
            scales.append(self.get_scale())
            return super().step(optimizer, *args, **kwargs)

    monkeypatch.setattr(torch.amp, "GradScaler", Spy)

    class Stop(Exception):
        pass

    def train(stop_at: int | None, folder) -> tuple[list[float], list[torch.Tensor]]:
        scales.clear()
        model = _bag_model()

        def loss_fn(batch, step):
            if step == stop_at:
                raise Stop
            logits = model[1:](model[0](batch["input_ids"]).mean(1))
            return torch.nn.functional.cross_entropy(logits, batch["labels"]) * (1e6 if step == 1 else 1.0)

        with checkpoint.resumable(folder, "key", 2):
            train_loop(model.parameters(), loss_fn, toy_split(64), TrainSettings(epochs=2, batch_size=16, lr=1e-2,
                       precision="fp16"), seed=3, desc="t", modules=[model])
        return list(scales), [p.detach().clone() for p in model.parameters()]

    ref_scales, ref_params = train(None, None)
    assert ref_scales[:3] == [65536.0, 65536.0, 32768.0]  # step 1 overflowed and was skipped
    with pytest.raises(Stop):
        train(5, tmp_path / "ck")
    resumed_scales, params = train(None, tmp_path / "ck")
    assert resumed_scales == ref_scales[4:]  # steps 4..7 from the checkpoint after step 4
    for a, b in zip(ref_params, params, strict=True):
        assert torch.equal(a, b)
