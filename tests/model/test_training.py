"""train_loop takes its batches as ``training.finetune`` says: grouped by length only when asked."""

from __future__ import annotations

import pytest
import torch

from dpbert.model.training import TrainSettings, train_loop
from tests.data.test_encoding import split


@pytest.mark.parametrize("grouped", [False, True])
def test_train_loop_batches_follow_group_by_length(grouped):
    data = split(100)
    settings = TrainSettings.from_dict({"epochs": 2, "batch_size": 8, "lr": 1e-3, "group_by_length": grouped})
    weight = torch.nn.Parameter(torch.zeros(1))
    seen: list[list[int]] = []

    def loss_fn(batch, step):
        seen.append(batch["input_ids"][:, 0].tolist())
        return (weight - 1.0).pow(2).sum()

    train_loop([weight], loss_fn, data, settings, seed=4, desc="t")
    expected = [b["input_ids"][:, 0].tolist() for epoch in (0, 1)
                for b in data.batches(8, shuffle=True, seed=4 + epoch, group_by_length=grouped)]
    plain = [b["input_ids"][:, 0].tolist() for epoch in (0, 1) for b in data.batches(8, shuffle=True, seed=4 + epoch)]
    assert seen == expected
    assert (seen == plain) is (not grouped)


# ---------------------------------------------------------------- transformers' set_seed and schedule

def _seed_by_hand(seed: int) -> None:
    """dpbert.model.training.seed_everything before it called transformers.set_seed."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _streams() -> tuple:
    import random

    import numpy as np

    return random.random(), random.getrandbits(64), np.random.rand(4).tolist(), torch.rand(4), torch.randn(3)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 12345, 2**32 - 1])
def test_set_seed_gives_the_hand_written_streams(seed):
    from dpbert.model.training import seed_everything

    _seed_by_hand(seed)
    old = _streams()
    seed_everything(seed)
    new = _streams()
    assert old[:3] == new[:3] and torch.equal(old[3], new[3]) and torch.equal(old[4], new[4])


def _tiny_training(monkeypatch, seeding) -> list[torch.Tensor]:
    """A few steps of train_loop on a tiny model with dropout (the global torch RNG draws its masks)."""
    from dpbert.model import training

    monkeypatch.setattr(training, "seed_everything", seeding)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(50, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 2))
    data = split(24)
    settings = TrainSettings.from_dict({"epochs": 2, "batch_size": 4, "lr": 1e-2, "warmup_ratio": 0.25})

    def loss_fn(batch, step):
        logits = model(batch["input_ids"] % 50).mean(dim=1)
        return torch.nn.functional.cross_entropy(logits, batch["input_ids"][:, 0] % 2)

    train_loop(model.parameters(), loss_fn, data, settings, seed=3, desc="t", modules=[model])
    return [p.detach().clone() for p in model.parameters()]


def test_training_is_bit_identical_with_set_seed(monkeypatch):
    from dpbert.model.training import seed_everything

    old = _tiny_training(monkeypatch, _seed_by_hand)
    new = _tiny_training(monkeypatch, seed_everything)
    assert all(torch.equal(a, b) for a, b in zip(old, new, strict=True))
    assert not torch.equal(old[0], _tiny_training(monkeypatch, lambda s: _seed_by_hand(s + 1))[0])  # seeding matters


def test_the_schedule_is_transformers_linear_one_step_ahead_in_warmup():
    """Why train_loop keeps its own factor: transformers' get_linear_schedule_with_warmup gives the same lr from
    the end of warm-up on, but one step later during warm-up (lr 0 at step 0), so it would change training."""
    from transformers import get_linear_schedule_with_warmup

    from dpbert.model.training import linear_warmup_factor

    for warmup, total in ((10, 100), (3, 7), (0, 5), (1, 2)):  # warmup < total (ratio < 1)
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2e-5)
        theirs_schedule = get_linear_schedule_with_warmup(opt, warmup, total)
        theirs = []
        for _ in range(total + 1):
            theirs.append(opt.param_groups[0]["lr"])
            opt.step()
            theirs_schedule.step()
        ours = [2e-5 * linear_warmup_factor(s, warmup, total) for s in range(total + 1)]
        assert ours[warmup:] == theirs[warmup:], (warmup, total)  # decay: the same floats
        assert ours[:warmup] == theirs[1: warmup + 1], (warmup, total)  # warm-up: one step ahead
        if warmup:
            assert ours[0] != theirs[0] == 0.0
