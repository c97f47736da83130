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
