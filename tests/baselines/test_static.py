"""LayerDrop, DistilBERT and BERT-kL (k-layer models fine-tuned): the static baselines; the cut stage-1
model (bert_cut): the diagnostic and the minimal template."""

import logging

import pytest
import torch

from baselines.distilbert import (
    DistilBert,
    distillation_loss,
    every_other,
    init_student,
)
from baselines.layerdrop import LayerDrop, draw_kept, evenly_spaced
from baselines.truncated import BertCut, BertTruncated
from dpbert.data.tasks import get_task
from dpbert.methods.interface import TrainContext
from dpbert.methods.registry import get_method
from dpbert.model.engine import count_layer_calls
from dpbert.model.method_model import MethodModel, save_method_model
from dpbert.model.sources import ModelSource, build_start, load_classifier, save_classifier
from tests.conftest import tiny_classifier, toy_split

FAST = {"finetune": {"epochs": 1, "batch_size": 16, "lr": 1e-3}}
TINY = {"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2, "intermediate_size": 64,
        "max_position_embeddings": 64}


def _ctx(tmp_path, tokenizer, *, finetuned=True, source=None, task="SST-2", regression=False):
    base = tmp_path / "bert" / "main"
    if finetuned:
        num_labels = 1 if regression else 2
        save_classifier(tiny_classifier(num_labels=num_labels, layers=4), tokenizer, base)
    return TrainContext(task=get_task(task), train=toy_split(48, regression), dev=toy_split(16, regression, seed=1),
                        finetuned_dir=base if finetuned else None, out_dir=tmp_path / "out", seed=3,
                        settings=FAST, model_source=source, device="cpu", log=logging.getLogger("test"))


def _states_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_registered():
    for name in ["layerdrop", "distilbert", "bert_truncated", "bert_cut"]:
        assert get_method(name).name == name
    assert LayerDrop.static and DistilBert.static and BertTruncated.static and not BertCut.static
    assert BertTruncated.trains and not BertTruncated.needs_finetuned and BertTruncated.display_name == "BERT-kL"
    assert not BertCut.trains and BertCut.needs_finetuned and BertCut.display_name == "BERT cut (stage 1, first k)"


# ---------------------------------------------------------------- LayerDrop

def test_evenly_spaced():
    assert evenly_spaced(12, 6) == [0, 2, 4, 6, 8, 10]  # every other, from the first (fairseq README)
    assert evenly_spaced(12, 12) == list(range(12))
    assert evenly_spaced(4, 2) == [0, 2]
    assert evenly_spaced(12, 1) == [0]
    for n, k in [(12, 9), (12, 8), (7, 3)]:
        kept = evenly_spaced(n, k)
        assert len(kept) == k == len(set(kept)) and kept == sorted(kept) and kept[-1] < n
    for k in [0, -1, 13]:
        with pytest.raises(ValueError):
            evenly_spaced(12, k)


def test_draw_kept_rate_and_p_zero():
    g = torch.Generator().manual_seed(0)
    assert all(all(draw_kept(12, 0.0, g)) for _ in range(100))
    kept = [x for _ in range(500) for x in draw_kept(12, 0.2, g)]
    assert 0.76 < sum(kept) / len(kept) < 0.84


def test_layerdrop_p0_equals_bert_finetuning(tmp_path, tokenizer):
    """Same seed and settings, p = 0: bit-identical weights to BERT-base's fine-tuning (real path:
    source small, the synthetic word-level tokenizer); p = 0.5 trains a different model."""
    from dpbert.methods.bert_base import BertBase

    source = ModelSource(source="small", small=TINY, max_length=32)
    task = get_task("SST-2")

    ctx_a = _ctx(tmp_path / "a", tokenizer, finetuned=False, source=source)
    BertBase(None, task).train(ctx_a)
    ctx_b = _ctx(tmp_path / "b", tokenizer, finetuned=False, source=source)
    LayerDrop({"p": 0.0}, task).train(ctx_b)
    bert = BertBase(None, task).load(ctx_a.out_dir / "main")
    ld = LayerDrop(None, task).load(ctx_b.out_dir / "main")
    assert _states_equal(bert.classifier, ld.classifier)

    ctx_c = _ctx(tmp_path / "c", tokenizer, finetuned=False, source=source)
    LayerDrop({"p": 0.5}, task).train(ctx_c)  # dropping layers changes the training
    assert not _states_equal(bert.classifier, LayerDrop(None, task).load(ctx_c.out_dir / "main").classifier)


def test_pruned_model_runs_exactly_the_kept_layers():
    method = LayerDrop({"kept_layers": [2]}, get_task("SST-2"))
    model = MethodModel(tiny_classifier(layers=4)).eval()
    counts, remove = count_layer_calls(model.engine)
    pred = method.predict_one(model, toy_split(1).example(0), method.knobs()[0])
    remove()
    assert pred.executed == [0, 2] and counts == [1, 0, 1, 0]
    assert method.reference_layers(model) == 4
    with pytest.raises(ValueError, match="kept_layers"):
        method.predict_one(model, toy_split(1).example(0), 6.0)


# ---------------------------------------------------------------- DistilBERT

def test_student_initialised_from_every_other_teacher_layer():
    teacher = tiny_classifier(layers=4, seed=1)
    student = init_student(teacher, every_other(4))
    assert student.config.num_hidden_layers == 2 and teacher.config.num_hidden_layers == 4
    assert _states_equal(student.bert.embeddings, teacher.bert.embeddings)
    for j, i in enumerate([0, 2]):
        assert _states_equal(student.bert.encoder.layer[j], teacher.bert.encoder.layer[i])
    assert not _states_equal(student.bert.encoder.layer[1], teacher.bert.encoder.layer[1])
    assert _states_equal(student.bert.pooler, teacher.bert.pooler)
    assert _states_equal(student.classifier, teacher.classifier)
    with pytest.raises(ValueError):
        init_student(teacher, [2, 0])


def test_distillation_loss_properties():
    s = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.3, -2.0]])
    y = torch.tensor([0, 1])
    ce = torch.nn.functional.cross_entropy(s, y)
    # equal logits: the KL term is exactly 0, so alpha=1 gives exactly 0 and the total is (1-alpha)*CE
    assert distillation_loss(s, s.clone(), y, 2.0, 1.0, False).item() == 0.0
    torch.testing.assert_close(distillation_loss(s, s.clone(), y, 2.0, 0.5, False), 0.5 * ce)
    # extreme one-hot-like logits that agree with each other and with the labels: total ~ 0
    hot = torch.tensor([[50.0, -50.0, -50.0], [-50.0, 50.0, -50.0]])
    assert distillation_loss(hot, hot.clone(), y, 2.0, 0.5, False).item() < 1e-6
    # disagreeing teacher: positive KL, scaled by T^2
    t = torch.tensor([[-1.0, 2.0, 0.0], [1.0, 0.0, 0.0]])
    kl_t2 = distillation_loss(s, t, y, 2.0, 1.0, False)
    kl_t1 = distillation_loss(s, t, y, 1.0, 1.0, False)
    ref = torch.nn.functional.kl_div(torch.log_softmax(s / 2, -1), torch.softmax(t / 2, -1), reduction="batchmean")
    assert kl_t2 > 0 and kl_t1 > 0
    torch.testing.assert_close(kl_t2, 4 * ref)
    # regression: alpha * MSE to the teacher + (1 - alpha) * MSE to the label
    r_s, r_t, r_y = torch.tensor([[1.0], [2.0]]), torch.tensor([[1.0], [4.0]]), torch.tensor([1.0, 2.0])
    torch.testing.assert_close(distillation_loss(r_s, r_t, r_y, 2.0, 0.5, True), torch.tensor(0.5 * 2.0))
    assert distillation_loss(r_s, r_s, r_y, 2.0, 0.3, True).item() == 0.0


@pytest.mark.parametrize("regression", [False, True])
def test_distilbert_from_teacher_trains_and_round_trips(tmp_path, tokenizer, regression):
    ctx = _ctx(tmp_path, tokenizer, task="STS-B" if regression else "SST-2", regression=regression)
    method = DistilBert(None, ctx.task)
    assert method.kind(ctx.model_source) == "from_teacher"
    assert method.kind(ModelSource(source="small")) == "from_teacher"
    method.train(ctx)
    model = method.load(ctx.out_dir / "main")
    assert isinstance(model, MethodModel) and model.n_layers == 2
    assert method.reference_layers(model) == 4  # teacher depth, not the student's
    assert "every other teacher layer" in method.row_note and method.display_name != "DistilBERT"
    counts, remove = count_layer_calls(model.engine)
    ex = ctx.dev.example(0)
    pred = method.predict_one(model, ex, method.knobs()[0])
    remove()
    assert pred.executed == [0, 1] and counts == [1, 1]
    again = DistilBert(None, ctx.task).predict_one(DistilBert(None, ctx.task).load(ctx.out_dir / "main"), ex, 0.0)
    torch.testing.assert_close(pred.output, again.output, rtol=0, atol=0)


def test_distilbert_hub_offline_fails_fast(tmp_path, monkeypatch, tokenizer):
    import time

    import dpbert.data.hub
    import dpbert.model.sources
    from dpbert.data.hub import HubUnreachableError

    monkeypatch.setattr(dpbert.data.hub, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(dpbert.model.sources, "_in_hf_cache", lambda name: False)
    ctx = _ctx(tmp_path, tokenizer, source=ModelSource(source="hub", name="bert-base-uncased"))
    method = DistilBert(None, ctx.task)
    assert method.kind(ctx.model_source) == "hub"
    start = time.perf_counter()
    with pytest.raises(HubUnreachableError, match="distilbert-base-uncased.*from_teacher"):
        method.train(ctx)
    assert time.perf_counter() - start < 5
    assert method.row_note == "distilbert-base-uncased fine-tuned"
    with pytest.raises(ValueError, match="student"):
        DistilBert({"student": "tiny"}, ctx.task).kind(ctx.model_source)


# ---------------------------------------------------------------- BERT-kL: k-layer models, fine-tuned

def _small(tmp_path, tokenizer, regression=False):
    source = ModelSource(source="small", small=TINY, max_length=32)
    return _ctx(tmp_path, tokenizer, finetuned=False, source=source, task="STS-B" if regression else "SST-2",
                regression=regression)


def test_bert_kl_variants_knobs_and_names():
    method = BertTruncated({"layers": [3, 2, 3]}, get_task("SST-2"))
    assert method.variants() == ["3L", "2L"] and method.knobs() == [3.0, 2.0]  # each depth once
    assert method.knobs_of("3L") == [3.0] and method.knobs_of("2L") == [2.0]  # each model at its own depth
    assert method.display_of("3L") == "BERT-3L" and method.display_of("2L") == "BERT-2L"
    assert BertTruncated(None, get_task("SST-2")).variants() == ["9L", "6L"]  # the window's bounds on 12 layers
    with pytest.raises(ValueError, match="9L"):
        method.knobs_of("main")
    # every other method: one grid and one name for all its variants
    layerdrop = LayerDrop(None, get_task("SST-2"))
    assert layerdrop.knobs_of("main") == layerdrop.knobs() and layerdrop.display_of("main") == "LayerDrop"


def test_bert_kl_training_epochs_count_k_of_n_layers():
    method = BertTruncated({"layers": [3, 2]}, get_task("SST-2"))
    method.backbone_depth = 4
    assert method.training_epochs({"epochs": 2}) == pytest.approx(2 * 5 / 4)  # epochs * sum(k) / N
    assert BertTruncated({"layers": [3, 2], "epochs": 4}, get_task("SST-2")).training_epochs({"epochs": 2}) == (
        pytest.approx(4 * 5 / 12))  # N unknown: BERT-base's 12


@pytest.mark.parametrize("regression", [False, True])
def test_bert_kl_starts_from_the_pretrained_first_k_layers(tmp_path, tokenizer, monkeypatch, regression):
    """Each k-layer model is BERT-base's start (embeddings, layers 0..k-1, pooler, head) before training,
    trained with the fine-tuning settings, saved as its own variant with the backbone's depth N."""
    import copy

    import baselines.truncated as truncated

    ctx = _small(tmp_path, tokenizer, regression)
    start = build_start(ctx.model_source, ctx.task.num_labels, ctx.seed, ctx.regression_targets())[0]
    before, settings = {}, []
    real = truncated.train_loop

    def recording(params, loss_fn, data, s, **kw):
        model = kw["modules"][0]
        before[model.n_layers] = copy.deepcopy(model.classifier).cpu()
        settings.append(s)
        return real(params, loss_fn, data, s, **kw)

    monkeypatch.setattr(truncated, "train_loop", recording)
    method = BertTruncated({"layers": [3, 2]}, ctx.task)
    method.train(ctx)
    assert sorted(before) == [2, 3]
    for k, initial in before.items():
        assert initial.config.num_hidden_layers == k
        assert _states_equal(initial.bert.embeddings, start.bert.embeddings)
        for j in range(k):
            assert _states_equal(initial.bert.encoder.layer[j], start.bert.encoder.layer[j])
        assert _states_equal(initial.bert.pooler, start.bert.pooler)
        assert _states_equal(initial.classifier, start.classifier)
    assert all(s.epochs == 1 and s.lr == 1e-3 and s.batch_size == 16 for s in settings)  # training.finetune
    assert sorted(p.name for p in ctx.out_dir.iterdir()) == ["2L", "3L"]
    for variant, k in [("3L", 3), ("2L", 2)]:
        model = BertTruncated(None, ctx.task).load(ctx.out_dir / variant)
        assert model.n_layers == k and method.reference_layers(model) == 4
        assert not _states_equal(model.classifier.bert.encoder.layer[0], start.bert.encoder.layer[0])  # trained
        counts, remove = count_layer_calls(model.engine)
        pred = method.predict_one(model, ctx.dev.example(0), float(k))
        remove()
        assert pred.executed == list(range(k)) and counts == [1] * k
        with pytest.raises(ValueError, match="its own depth"):
            method.predict_one(model, ctx.dev.example(0), 4.0)


def test_bert_kl_at_full_depth_is_bert_base(tmp_path, tokenizer):
    """k = N: the same start, loss, settings and loop as BERT-base, so bit for bit its weights."""
    from dpbert.methods.bert_base import BertBase

    task = get_task("SST-2")
    ctx_a, ctx_b = _small(tmp_path / "a", tokenizer), _small(tmp_path / "b", tokenizer)
    BertBase(None, task).train(ctx_a)
    BertTruncated({"layers": [4]}, task).train(ctx_b)
    bert = BertBase(None, task).load(ctx_a.out_dir / "main")
    kl = BertTruncated(None, task).load(ctx_b.out_dir / "4L")
    assert _states_equal(bert.classifier, kl.classifier)


@pytest.mark.usefixtures("one_thread")
def test_bert_kl_sweep_scores_each_model_at_its_own_depth(tmp_path, tokenizer):
    from dpbert.run.sweep import LatencySettings, evaluate_sweep

    ctx = _small(tmp_path, tokenizer)
    method = BertTruncated({"layers": [3, 2]}, ctx.task)
    method.train(ctx)
    base = tmp_path / "bert"
    save_method_model(MethodModel(tiny_classifier(layers=4)), tokenizer, base / "main", {"method": "bert"})
    rows, preds = evaluate_sweep(method, ctx.out_dir, base, {"dev": ctx.dev},
                                 LatencySettings(examples=2, warmup=0, repeats=1), "cpu", seed=3,
                                 selection={"window": [1.3, 1.96], "min_points_in_window": 3})
    got = {r["variant"]: r for r in rows}
    assert len(rows) == 2 and set(got) == {"3L", "2L"}  # one point per model: its own depth
    assert (got["3L"]["knob"], got["3L"]["display_name"], got["3L"]["n_layers"]) == (3.0, "BERT-3L", 4)
    assert (got["2L"]["knob"], got["2L"]["display_name"]) == (2.0, "BERT-2L")
    assert got["3L"]["layer_speedup"] == pytest.approx(4 / 3) and got["2L"]["layer_speedup"] == 2.0
    assert all(r["latency_ms"] > 0 and not r["refined"] for r in rows)
    assert {p["n_executed"] for p in preds if p["variant"] == "3L"} == {3}


# ---------------------------------------------------------------- bert_cut: the stage-1 model, cut (diagnostic)

def test_truncation(tmp_path, tokenizer):
    ctx = _ctx(tmp_path, tokenizer)
    method = BertCut({"layers": [4, 2]}, ctx.task)
    assert method.knobs() == [4.0, 2.0] and method.trains is False  # no job trains it: the stage-1 model runs
    assert method.knobs_of("main") == [4.0, 2.0] and method.display_of("main") == "BERT cut (stage 1, first k)"
    stage1 = tmp_path / "stage1" / "main"  # a BERT-base run's folder, as the workflow gives it
    save_method_model(MethodModel(load_classifier(ctx.finetuned_dir)[0]), tokenizer, stage1, {"method": "bert"})
    model = method.load(stage1)
    ex = ctx.dev.example(0)
    full = model.final_head(model.engine.run(ex["input_ids"], ex["attention_mask"], ex["token_type_ids"]).hidden)[0]
    pred = method.predict_one(model, ex, 4.0)
    torch.testing.assert_close(pred.output, full, rtol=0, atol=0)
    with torch.inference_mode():
        hf = model.classifier(**ex).logits[0]
    torch.testing.assert_close(pred.output, hf)
    assert pred.executed == [0, 1, 2, 3]
    counts, remove = count_layer_calls(model.engine)
    pred2 = method.predict_one(model, ex, 2.0)
    remove()
    assert pred2.executed == [0, 1] and counts == [1, 1, 0, 0]
    with pytest.raises(ValueError, match="layers"):
        method.predict_one(model, ex, 9.0)
