"""Analytic FLOPs of the layer-wise engine's work, per example, at the example's own length.

A FLOP here is what ``torch.utils.flop_counter.FlopCounterMode`` counts: 2 m n k for an (m x k) @ (k x n)
matrix product, nothing for element-wise work (softmax, GELU, LayerNorm, dropout, residual adds), which
is a few percent of a layer at BERT's shapes. Latency depends on the machine; FLOPs per example do not,
which is why early-exit benchmarks report them beside accuracy. ``tests/model/test_flops.py`` holds
:func:`layer_flops` equal to the counter's measurement of a Hugging Face ``BertLayer``.
"""

from __future__ import annotations

from collections.abc import Iterable


def layer_flops(length: int, hidden: int, intermediate: int) -> int:
    """One transformer layer on a sequence of ``length`` tokens: the Q, K, V and output projections
    (4 x 2 L H^2), the two feed-forward matrices (2 x 2 L H I) and attention's two quadratic products,
    Q K^T and the weighted sum of V (2 x 2 L^2 H, over all heads together)."""
    if length < 1 or hidden < 1 or intermediate < 1:
        raise ValueError(f"layer_flops needs positive sizes, got length {length}, hidden {hidden}, "
                         f"intermediate {intermediate}")
    return 2 * length * (4 * hidden * hidden + 2 * hidden * intermediate) + 4 * length * length * hidden


def head_flops(hidden: int, outputs: int, pooler: bool = True) -> int:
    """A classification head on one pooled vector: the pooler's dense layer (2 H^2, when there is one)
    and the linear layer to ``outputs`` values (2 H outputs). An off-ramp, a planner's or a halting
    unit's linear layer is the same formula with its own sizes."""
    return (2 * hidden * hidden if pooler else 0) + 2 * hidden * outputs


def example_flops(executed: Iterable[int], length: int, hidden: int, intermediate: int,
                  overhead: int = 0) -> int:
    """FLOPs of one example that ran the layers in ``executed`` (their indices; each costs the same at
    one length) plus ``overhead``: the method's own modules (off-ramps, planners, halting units) and
    the final head, which the caller counts with :func:`head_flops`."""
    return len(list(executed)) * layer_flops(length, hidden, intermediate) + int(overhead)
