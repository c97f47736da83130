"""The analytic FLOP count equals torch's FLOP counter on a Hugging Face BERT layer and head."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dpbert.model.flops import example_flops, head_flops, layer_flops


def _measured(module, *inputs) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*inputs)
    return counter.get_total_flops()


@pytest.mark.parametrize("hidden,heads,intermediate", [(64, 4, 256), (32, 2, 64), (384, 12, 1536)])
@pytest.mark.parametrize("length", [1, 7, 33])
def test_layer_flops_equal_the_counter_on_a_bert_layer(hidden, heads, intermediate, length):
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertLayer

    cfg = BertConfig(hidden_size=hidden, num_attention_heads=heads, intermediate_size=intermediate)
    cfg._attn_implementation = "eager"
    layer = BertLayer(cfg).eval()
    assert layer_flops(length, hidden, intermediate) == _measured(layer, torch.randn(1, length, hidden))


def test_head_flops_equal_the_counter_on_pooler_and_classifier():
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertPooler

    cfg = BertConfig(hidden_size=48)
    pooler, linear = BertPooler(cfg).eval(), torch.nn.Linear(48, 3)
    assert head_flops(48, 3) == _measured(lambda h: linear(pooler(h)), torch.randn(1, 5, 48))
    assert head_flops(48, 1, pooler=False) == _measured(torch.nn.Linear(48, 1), torch.randn(1, 48))


def test_example_flops_count_executed_layers_and_grow_quadratically_with_length():
    one = layer_flops(10, 64, 256)
    assert example_flops([0, 2, 4], 10, 64, 256, overhead=5) == 3 * one + 5
    assert example_flops([], 10, 64, 256) == 0
    # the quadratic term: doubling the length more than doubles a layer's cost
    assert layer_flops(20, 64, 256) - 2 * one == 4 * 64 * (20 * 20 - 2 * 10 * 10)
    with pytest.raises(ValueError, match="positive"):
        layer_flops(0, 64, 256)
