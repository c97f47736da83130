"""``model.head_state``: what BERT's own head reads after the last layer ([CLS] or the masked token mean)."""

import pytest
import torch

from dpbert.model.method_model import MethodModel, load_method_model, save_method_model
from dpbert.model.sources import ModelSource, build_classifier, word_level_tokenizer

SMALL = {"num_hidden_layers": 3, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
         "max_position_embeddings": 64}


def _model(head_state: str) -> MethodModel:
    clf = build_classifier(ModelSource("small", small=SMALL, head_state=head_state), 2, 60, seed=0)
    return MethodModel(clf).eval()


def _batch():
    torch.manual_seed(3)
    ids = torch.randint(5, 60, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # the second example is 5 real tokens, padded to 9
    return ids, mask, torch.zeros_like(ids)


def test_mean_head_on_a_padded_batch_equals_each_example_alone():
    """The mask reaches the head: a padded example scores as it does unpadded at batch size 1."""
    model = _model("mean")
    ids, mask, types = _batch()
    with torch.no_grad():
        batched = model.final_head(model.engine.run(ids, mask, types).hidden, mask)
        alone = model.final_head(model.engine.run(ids[1:, :5], mask[1:, :5], types[1:, :5]).hidden)
        unmasked = model.final_head(model.engine.run(ids, mask, types).hidden[1:])  # padding counted in the mean
    torch.testing.assert_close(batched[1:], alone, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(unmasked, alone, atol=1e-4)


def test_mean_head_differs_from_the_cls_head_and_cls_is_berts_own():
    cls, mean = _model("cls"), _model("mean")  # same seed: the same weights
    ids, mask, types = _batch()
    with torch.no_grad():
        ref = cls.classifier(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        h = cls.engine.run(ids, mask, types).hidden
        torch.testing.assert_close(cls.final_head(h, mask), ref, rtol=0, atol=0)
        assert not torch.allclose(mean.final_head(h, mask), ref, atol=1e-4)


def test_mean_head_refuses_a_batch_without_its_mask():
    model = _model("mean")
    ids, mask, types = _batch()
    with torch.no_grad(), pytest.raises(ValueError, match="head_state: mean"):
        model.final_head(model.engine.run(ids, mask, types).hidden)


def test_head_state_travels_with_the_checkpoint(tmp_path):
    model = _model("mean")
    tokenizer = word_level_tokenizer([f"w{i}" for i in range(55)], 32)
    save_method_model(model, tokenizer, tmp_path / "m", {"method": "bert"})
    loaded = load_method_model(tmp_path / "m")[0].eval()
    assert loaded.engine.head_state == "mean"
    ids, mask, types = _batch()
    with torch.no_grad():
        torch.testing.assert_close(loaded.final_head(loaded.engine.run(ids, mask, types).hidden, mask),
                                   model.final_head(model.engine.run(ids, mask, types).hidden, mask))
    assert _model("cls").engine.head_state == "cls"


def test_unknown_head_state_is_refused():
    with pytest.raises(ValueError, match="model.head_state"):
        build_classifier(ModelSource("small", small=SMALL, head_state="max"), 2, 60, seed=0)
