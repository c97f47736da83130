"""Shared fixtures: a tiny random BERT classifier, built in milliseconds, for engine and method tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
MICRO = ROOT / "tests" / "config" / "micro.yaml"  # the tiny profile the workflow and config tests run
sys.path.insert(0, str(ROOT))


def tiny_classifier(num_labels: int = 2, layers: int = 4, seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, num_labels=num_labels)
    return BertForSequenceClassification(cfg).eval()


def toy_split(n: int = 64, regression: bool = False, seed: int = 0):
    """Token sequences whose label is whether token 7 appears: learnable in a few steps."""
    from dpbert.data.encoding import EncodedSplit

    g = torch.Generator().manual_seed(seed)
    ids, types, labels = [], [], []
    for _ in range(n):
        length = int(torch.randint(4, 12, (1,), generator=g))
        body = torch.randint(8, 60, (length,), generator=g).tolist()
        label = int(torch.rand(1, generator=g) < 0.5)
        if label:
            body[int(torch.randint(0, length, (1,), generator=g))] = 7
        ids.append([2] + body + [3])
        types.append([0] * (length + 2))
        labels.append(float(label) * 5.0 if regression else label)
    return EncodedSplit(ids, types, labels, regression)


@pytest.fixture
def classifier():
    return tiny_classifier()


@pytest.fixture
def tokenizer():
    from dpbert.model.sources import word_level_tokenizer

    return word_level_tokenizer([f"w{i}" for i in range(55)], 64)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: thread start-up dominates, and oversubscribed cores made such tests 20x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def with_changes(cfg: dict, **changes) -> dict:
    """``cfg`` with ``changes`` applied in place: ``a__b=v`` sets ``cfg["a"]["b"] = v``."""
    for dotted, value in changes.items():
        node = cfg
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return cfg
