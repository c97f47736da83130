import pytest
import torch

from dpbert.model.engine import LayerwiseBackbone, count_layer_calls
from tests.conftest import tiny_classifier


def _inputs(batch=2, length=9, pad_from=6):
    torch.manual_seed(1)
    ids = torch.randint(5, 60, (batch, length))
    mask = torch.ones_like(ids)
    mask[-1, pad_from:] = 0
    return ids, mask, torch.zeros_like(ids)


def test_all_layers_equal_hugging_face_bert_model():
    model = tiny_classifier(layers=5)
    ids, mask, types = _inputs()
    ref = model.bert(input_ids=ids, attention_mask=mask, token_type_ids=types)
    out = LayerwiseBackbone(model.bert).run(ids, mask, types)
    torch.testing.assert_close(out.hidden, ref.last_hidden_state, rtol=0, atol=0)
    assert out.executed == [0, 1, 2, 3, 4]
    torch.testing.assert_close(LayerwiseBackbone(model.bert).pool(out.hidden), ref.pooler_output, rtol=0, atol=0)


def test_skipping_equals_running_only_kept_layers():
    model = tiny_classifier(layers=6)
    ids, mask, types = _inputs()
    engine = LayerwiseBackbone(model.bert)
    kept = [0, 2, 5]
    skipped = engine.run(ids, mask, types, plan=lambda i, h: i in kept)
    subset = engine.run(ids, mask, types, layers=kept)
    torch.testing.assert_close(skipped.hidden, subset.hidden, rtol=0, atol=0)
    # and by hand: embeddings then exactly those layer modules
    h, m = engine.embed(ids, mask, types)
    for i in kept:
        h = model.bert.encoder.layer[i](h, m)
    torch.testing.assert_close(skipped.hidden, h, rtol=0, atol=0)
    assert skipped.executed == kept


def test_skipped_layer_module_is_never_called():
    model = tiny_classifier(layers=6)
    engine = LayerwiseBackbone(model.bert)
    counts, remove = count_layer_calls(engine)
    ids, mask, types = _inputs(batch=1)
    engine.run(ids, mask, types, plan=lambda i, h: i % 3 == 0)
    remove()
    assert counts == [1, 0, 0, 1, 0, 0]


def test_exit_callback_stops_the_loop():
    model = tiny_classifier(layers=6)
    engine = LayerwiseBackbone(model.bert)
    counts, remove = count_layer_calls(engine)
    out = engine.run(*_inputs(batch=1), after=lambda i, h: i == 2)
    remove()
    assert out.executed == [0, 1, 2] and counts == [1, 1, 1, 0, 0, 0]


def test_soft_gate_mixes_layer_output_and_input():
    model = tiny_classifier(layers=1)
    engine = LayerwiseBackbone(model.bert)
    ids, mask, types = _inputs()
    h0, m = engine.embed(ids, mask, types)
    full = model.bert.encoder.layer[0](h0, m)
    gate = torch.tensor([0.25, 1.0])
    out = engine.run(ids, mask, types, plan=lambda i, h: gate)
    expected = gate.view(-1, 1, 1) * full + (1 - gate.view(-1, 1, 1)) * h0
    torch.testing.assert_close(out.hidden, expected)


def test_bert_base_through_the_engine_equals_its_hugging_face_forward():
    """BERT-base, the denominator of every speed-up, is timed through the engine (latency.reference:
    engine): its batch-1 logits must be the HF forward's, bit for bit, or the two would time different models."""
    from dpbert.data.tasks import get_task
    from dpbert.methods.bert_base import BertBase
    from dpbert.model.method_model import MethodModel
    from tests.conftest import toy_split

    model = MethodModel(tiny_classifier(layers=4)).eval()
    method = BertBase(None, get_task("SST-2"))
    split = toy_split(8, seed=6)
    for i in range(len(split)):
        ex = split.example(i)
        pred = method.predict_one(model, ex, 0.0)
        with torch.inference_mode():
            hf = BertBase.hf_forward(model, ex)
        torch.testing.assert_close(pred.output, hf, rtol=0, atol=0)
        assert pred.executed == [0, 1, 2, 3]


@pytest.mark.parametrize("batch,pad", [(1, 0), (3, 0), (3, 4)], ids=["batch1", "batch3", "batch3-padded"])
def test_inference_layer_path_is_bit_identical_to_hf(batch, pad):
    """The engine's eval-mode layer (functional calls, no module dispatch) equals BertLayer bit for bit."""
    from dpbert.model.engine import LayerwiseBackbone, _fast_layer_ok

    clf = tiny_classifier(layers=3, seed=4)
    assert _fast_layer_ok(clf.config)
    engine = LayerwiseBackbone(clf.bert).eval()
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(5, 60, (batch, 12), generator=g)
    mask = torch.ones_like(ids)
    if pad:
        mask[1:, -pad:] = 0
    with torch.inference_mode():
        hidden, layer_mask = engine.embed(ids, mask, torch.zeros_like(ids))
        for i in range(engine.n_layers):
            ours = engine.layer(i, hidden, layer_mask)
            theirs = clf.bert.encoder.layer[i](hidden, layer_mask)
            theirs = theirs[0] if isinstance(theirs, tuple) else theirs
            assert torch.equal(ours, theirs), (i, (ours - theirs).abs().max())
            hidden = theirs


def test_training_mode_layer_runs_hf_modules():
    """In training mode (dropout, hooks, autograd) the engine calls the HF module itself."""
    from dpbert.model.engine import LayerwiseBackbone, count_layer_calls

    clf = tiny_classifier(layers=2)
    engine = LayerwiseBackbone(clf.bert)
    counts, remove = count_layer_calls(engine)
    ids = torch.randint(5, 60, (2, 8))
    engine.train()
    engine.run(ids, torch.ones_like(ids), torch.zeros_like(ids))
    assert counts == [1, 1]
    remove()
