"""Random-weight models of the shapes the benchmarks time (weights do not matter for latency)."""

from __future__ import annotations

import torch

SHAPES = {
    # bert-base-uncased's shape: 12 layers, hidden 768, 12 heads, FFN 3072
    "bert-base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
    # the embedded demo's backbone
    "demo": dict(num_hidden_layers=12, hidden_size=64, num_attention_heads=2, intermediate_size=128),
}


def random_classifier(shape: str, num_labels: int = 2, seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=30522 if shape == "bert-base" else 200, num_labels=num_labels,
                     max_position_embeddings=512, **SHAPES[shape])
    return BertForSequenceClassification(cfg).eval()


def random_examples(n: int, vocab: int, length: int = 32, seed: int = 0, device: str = "cpu") -> list[dict]:
    """Batch-1 inputs with varied lengths around ``length`` (GLUE dev sentences pairs are ~30-60 tokens)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        size = int(torch.randint(length // 2, length * 3 // 2, (1,), generator=g))
        ids = torch.randint(5, vocab, (1, size), generator=g).to(device)
        out.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)})
    return out
