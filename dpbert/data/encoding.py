"""Tokenise once per task, then batch by padding: tokenisation never runs inside a timed region."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

GROUP_BATCHES = 50  # batches per length-sorted run of EncodedSplit.batches(group_by_length=True)


@dataclass
class EncodedSplit:
    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    labels: list[float]
    is_regression: bool

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int | None) -> EncodedSplit:
        if n is None or n >= len(self):
            return self
        return EncodedSplit(self.input_ids[:n], self.token_type_ids[:n], self.labels[:n], self.is_regression)

    def label_tensor(self, idx: list[int] | None = None) -> Tensor:
        values = self.labels if idx is None else [self.labels[i] for i in idx]
        dtype = torch.float32 if self.is_regression else torch.long
        return torch.tensor(values, dtype=dtype)

    def example(self, i: int, device: str | torch.device = "cpu") -> dict[str, Tensor]:
        """One example as a batch of size 1, no padding (what batch-1 inference sees)."""
        ids = torch.tensor([self.input_ids[i]], device=device)
        return {
            "input_ids": ids,
            "token_type_ids": torch.tensor([self.token_type_ids[i]], device=device),
            "attention_mask": torch.ones_like(ids),
        }

    def batch(self, idx: list[int], device: str | torch.device = "cpu") -> dict[str, Tensor]:
        width = max(len(self.input_ids[i]) for i in idx)
        ids = torch.zeros(len(idx), width, dtype=torch.long)
        types = torch.zeros_like(ids)
        mask = torch.zeros_like(ids)
        for row, i in enumerate(idx):
            n = len(self.input_ids[i])
            ids[row, :n] = torch.tensor(self.input_ids[i])
            types[row, :n] = torch.tensor(self.token_type_ids[i])
            mask[row, :n] = 1
        return {
            "input_ids": ids.to(device),
            "token_type_ids": types.to(device),
            "attention_mask": mask.to(device),
            "labels": self.label_tensor(idx).to(device),
        }

    def equal_length_chunks(self, indices: list[int], size: int) -> list[list[int]]:
        """``indices`` grouped by input length (no padding inside a group), each group in index order and
        cut into chunks of at most ``size``: the unpadded batches the sweep scores (``stack_examples``)."""
        by_length: dict[int, list[int]] = {}
        for i in indices:
            by_length.setdefault(len(self.input_ids[i]), []).append(i)
        return [group[start : start + size] for _, group in sorted(by_length.items())
                for start in range(0, len(group), size)]

    def batches(
        self, batch_size: int, *, shuffle: bool, seed: int = 0, device: str | torch.device = "cpu",
        group_by_length: bool = False,
    ) -> Iterator[dict[str, Tensor]]:
        """Batches of ``batch_size`` (the last one may be smaller), padded to their longest example.

        ``group_by_length``: within each run of ``GROUP_BATCHES`` shuffled batches, sort the examples by
        length before cutting them into batches, then shuffle the batches; a batch then pads to about its
        own length instead of the longest of a random sample (real GLUE text: several-fold fewer padded
        tokens, the same examples every epoch). Only the last batch of the epoch is ever partial."""
        order = list(range(len(self)))
        rng = random.Random(seed)
        if shuffle:
            rng.shuffle(order)
        if group_by_length:  # a run spans whole batches, so every cut below stays inside one sorted run
            span = batch_size * GROUP_BATCHES
            order = [i for start in range(0, len(order), span)
                     for i in sorted(order[start : start + span], key=lambda i: len(self.input_ids[i]))]
        groups = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        if group_by_length and shuffle:  # shuffle the full batches; a partial one stays last
            full = len(order) // batch_size
            head = groups[:full]
            rng.shuffle(head)
            groups = head + groups[full:]
        for idx in groups:
            yield self.batch(idx, device)

    def to_dict(self) -> dict:
        return {
            "input_ids": self.input_ids,
            "token_type_ids": self.token_type_ids,
            "labels": self.labels,
            "is_regression": self.is_regression,
        }

    @classmethod
    def from_dict(cls, d: dict) -> EncodedSplit:
        return cls(d["input_ids"], d["token_type_ids"], d["labels"], d["is_regression"])


def encode_examples(examples, tokenizer, max_length: int, is_regression: bool) -> EncodedSplit:
    enc = tokenizer(
        [e.text_a for e in examples],
        [e.text_b for e in examples] if examples and examples[0].text_b is not None else None,
        truncation=True,
        max_length=max_length,
        return_token_type_ids=True,
    )
    labels = [float(e.label) if is_regression else int(e.label) for e in examples]
    return EncodedSplit(list(enc["input_ids"]), list(enc["token_type_ids"]), labels, is_regression)


ROW_KEYS = ("input_ids", "token_type_ids", "attention_mask")


def row_examples(batch: dict[str, Tensor]) -> list[dict[str, Tensor]]:
    """Each row of a right-padded batch (``EncodedSplit.batch``) as its batch-1 example: the row cut to its
    own length (``attention_mask``'s ones), the shapes ``EncodedSplit.example`` gives."""
    lengths = batch["attention_mask"].sum(1).tolist()
    return [{k: batch[k][row : row + 1, :n] for k in ROW_KEYS} for row, n in enumerate(lengths)]


def stack_examples(examples: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Batch-1 examples (``EncodedSplit.example``) of one length as one unpadded batch. Refuses padding:
    every row of the batch must be what its example alone would be."""
    if not examples:
        raise ValueError("stack_examples needs at least one example")
    lengths = {tuple(e["input_ids"].shape) for e in examples}
    if len(lengths) != 1 or next(iter(lengths))[0] != 1:
        raise ValueError(f"stack_examples takes batch-1 examples of one length, got shapes {sorted(lengths)}")
    if not all(bool(e["attention_mask"].all()) for e in examples):
        raise ValueError("stack_examples takes unpadded examples (attention mask all ones)")
    return {key: torch.cat([e[key] for e in examples]) for key in ("input_ids", "attention_mask", "token_type_ids")}
