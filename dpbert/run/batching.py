"""Serving batches: how a method's ``predict_batch`` compares with its batch-size-1 ``predict_one``.

Padding changes float sums (a padded row's attention and matmuls reduce in another order), so a row of a
padded batch may differ from its example alone in the last bits, and on a tie an argmax, an exit or a
skip decision can flip. The fast mode of ``predict_batch`` (``exact=False``) adds the rounding of the
decisions and heads run on (rows, hidden) products instead of (1, hidden) ones. ``agreement`` counts those
differences over a split; the serving benchmark reports them and tests hold them under 1% (exactly 0 where
a batch has equal lengths and ``exact=True``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dpbert.data.encoding import EncodedSplit


@dataclass
class Agreement:
    n: int  # examples compared
    prediction_differences: int  # rows whose argmax (classification) differs, or whose value differs by > tol
    layer_differences: int  # rows whose executed layers differ
    max_abs_output_diff: float  # largest |batch output - batch-1 output| over every row and output value

    @property
    def share_equal(self) -> float:
        """The share of rows whose prediction and executed layers both equal batch size 1's."""
        return 1.0 if self.n == 0 else 1.0 - max(self.prediction_differences, self.layer_differences) / self.n


def batches_of(split: EncodedSplit, indices: Sequence[int], batch_size: int, *, sort_by_length: bool) -> list[list[int]]:
    """``indices`` cut into batches of ``batch_size``: in the given (arrival) order, or sorted by length first."""
    order = sorted(indices, key=lambda i: len(split.input_ids[i])) if sort_by_length else list(indices)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


@torch.inference_mode()
def agreement(method, model, split: EncodedSplit, indices: Sequence[int], knob: float, batch_size: int, *,
              sort_by_length: bool = False, regression_tol: float = 1e-4, exact: bool = False,
              device: str | torch.device = "cpu") -> Agreement:
    """Compare ``method.predict_batch`` over batches of ``batch_size`` with ``predict_one`` row by row, both
    on ``device`` (the model's); ``exact`` is ``predict_batch``'s mode (False: the decisions and head once
    per layer on the batch)."""
    n = pred_diff = layer_diff = 0
    worst = 0.0
    for idx in batches_of(split, indices, batch_size, sort_by_length=sort_by_length):
        batched = method.predict_batch(model, split.batch(idx, device), knob, exact=exact)
        if len(batched) != len(idx):
            raise ValueError(f"{method.name}.predict_batch returned {len(batched)} predictions for a batch of {len(idx)}")
        for i, got in zip(idx, batched):
            alone = method.predict_one(model, split.example(i, device), knob)
            diff = float((got.output.float() - alone.output.float()).abs().max())
            worst = max(worst, diff)
            if split.is_regression:
                pred_diff += diff > regression_tol
            else:
                pred_diff += int(got.output.argmax()) != int(alone.output.argmax())
            layer_diff += list(got.executed) != list(alone.executed)
            n += 1
    return Agreement(n, int(pred_diff), int(layer_diff), worst)
