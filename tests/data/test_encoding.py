"""EncodedSplit.batches: the plain order is the seeded shuffle; length grouping pads less, keeps every example."""

from __future__ import annotations

import random

import pytest

from dpbert.data.encoding import GROUP_BATCHES, EncodedSplit


def split(n: int, seed: int = 0) -> EncodedSplit:
    rng = random.Random(seed)
    lengths = [rng.randint(3, 120) for _ in range(n)]
    ids = [[100 + i] * k for i, k in enumerate(lengths)]  # the first id names the example
    return EncodedSplit(ids, [[0] * k for k in lengths], [i % 2 for i in range(n)], False)


def examples(batches) -> list[list[int]]:
    return [b["input_ids"][:, 0].tolist() for b in batches]


def padded_tokens(batches) -> int:
    return sum(b["attention_mask"].numel() for b in batches)


def test_plain_batches_are_the_seeded_shuffle_in_order():
    data = split(70)
    order = list(range(70))
    random.Random(5).shuffle(order)
    got = [i - 100 for batch in examples(data.batches(16, shuffle=True, seed=5)) for i in batch]
    assert got == order


@pytest.mark.parametrize("n", [70, 16 * GROUP_BATCHES + 5, 2 * 16 * GROUP_BATCHES])
def test_grouped_batches_cover_every_example_once_with_less_padding(n):
    data = split(n)
    plain = list(data.batches(16, shuffle=True, seed=3))
    grouped = list(data.batches(16, shuffle=True, seed=3, group_by_length=True))
    ids = sorted(i for batch in examples(grouped) for i in batch)
    assert ids == list(range(100, 100 + n))
    assert len(grouped) == len(plain)  # an epoch keeps its number of steps (resume counts on it)
    sizes = [len(b["labels"]) for b in grouped]
    assert all(s == 16 for s in sizes[:-1]) and 0 < sizes[-1] <= 16  # only the last batch is partial
    assert padded_tokens(grouped) < 0.8 * padded_tokens(plain)  # uniform lengths: ~0.55-0.7
    # the batches are shuffled, not served shortest first
    widths = [b["input_ids"].shape[1] for b in grouped[:-1]]
    assert widths != sorted(widths)


def test_grouped_batches_depend_on_the_seed_and_not_otherwise():
    data = split(300)
    a = examples(data.batches(16, shuffle=True, seed=1, group_by_length=True))
    b = examples(data.batches(16, shuffle=True, seed=1, group_by_length=True))
    c = examples(data.batches(16, shuffle=True, seed=2, group_by_length=True))
    assert a == b and a != c
