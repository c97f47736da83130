"""DistilBERT (Sanh et al. 2019), static: a half-depth model, one speed-up for every input.

Two kinds of student (``student`` in the config; the table says which one a row is):

* ``hub`` (paper profile): ``distilbert-base-uncased`` fine-tuned on the task with the config's
  fine-tuning settings. Not a ``BertModel``: it is run through its own Hugging Face forward.
* ``from_teacher`` (offline/demo profile, no distilled checkpoint to download): the student is
  built the DistilBERT way from the fine-tuned teacher (stage-1 BERT) — half depth, embeddings,
  every other layer (0, 2, 4, ...), pooler and classifier copied — and trained on the task with
  soft teacher targets plus the hard labels (:func:`distillation_loss`). It is a
  ``BertForSequenceClassification`` with fewer layers, run through MethodModel and the engine.

``auto`` picks ``hub`` when ``model.source`` is ``hub`` and ``from_teacher`` otherwise. The layer
speed-up divides by the teacher's depth (12 for BERT-base), not by the student's.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from dpbert.methods.interface import (
    FORWARD_SHARE,
    FinetuneParams,
    Method,
    Prediction,
    TrainContext,
    depth_field,
    register,
)
from dpbert.model.method_model import (
    META_FILE,
    MethodModel,
    load_method_model,
    save_method_model,
)
from dpbert.model.sources import ModelLoadError, load_classifier
from dpbert.model.training import task_loss, train_loop

KINDS = ("auto", "from_teacher", "hub")
ROW_NOTES = {
    "from_teacher": "student from every other teacher layer, distilled (offline DistilBERT recipe; "
                    "not the distilbert-base-uncased checkpoint)",
    "hub": "distilbert-base-uncased fine-tuned",
}
DISPLAY = {"from_teacher": "DistilBERT (from teacher)", "hub": "DistilBERT"}
HUB_FOLDER = "distilbert"


@dataclass
class DistilBertParams(FinetuneParams):
    student: str = "auto"  # auto | from_teacher | hub (auto: hub when model.source is hub)
    temperature: float = 2.0  # T of the soft targets (from_teacher)
    alpha: float = 0.5  # weight of the distillation term; 1 - alpha on the hard-label task loss
    teacher_layers: list[int] | None = depth_field(0, -1, "0-based indices of teacher layers", default=None)  # None: every other teacher layer, 0, 2, 4, ... (from_teacher)
    hub_name: str = "distilbert-base-uncased"  # checkpoint for student: hub
    reference_depth: int | None = None  # N of the layer speed-up; None: the teacher's depth (12 if unknown)


def every_other(n_teacher: int) -> list[int]:
    """DistilBERT's initialisation: one teacher layer out of two, starting at the first."""
    return list(range(0, n_teacher, 2))


def init_student(teacher: nn.Module, layers: list[int]) -> nn.Module:
    """A ``BertForSequenceClassification`` whose layer j is a copy of teacher layer ``layers[j]``;
    embeddings, pooler and classifier are copied too (nothing of the student stays random)."""
    from transformers import BertForSequenceClassification

    n = teacher.config.num_hidden_layers
    if not layers or sorted(set(layers)) != list(layers) or not all(0 <= i < n for i in layers):
        raise ValueError(f"teacher_layers must be increasing, distinct layer indices in 0..{n - 1}; got {layers}")
    cfg = copy.deepcopy(teacher.config)
    cfg.num_hidden_layers = len(layers)
    student = BertForSequenceClassification(cfg)
    student.bert.embeddings.load_state_dict(teacher.bert.embeddings.state_dict())
    for j, i in enumerate(layers):
        student.bert.encoder.layer[j].load_state_dict(teacher.bert.encoder.layer[i].state_dict())
    if teacher.bert.pooler is not None:
        student.bert.pooler.load_state_dict(teacher.bert.pooler.state_dict())
    student.classifier.load_state_dict(teacher.classifier.state_dict())
    return student


def distillation_loss(
    student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, temperature: float, alpha: float,
    is_regression: bool,
) -> Tensor:
    """alpha * distillation term + (1 - alpha) * task loss on the hard labels.

    Classification: the distillation term is T^2 * KL(p_teacher || p_student) with p = softmax(z / T)
    (Hinton et al.; DistilBERT's L_ce), computed from log-probabilities, so it is exactly 0 when the
    two logit tensors are equal. Regression: MSE to the teacher's output (no temperature).
    """
    if is_regression:
        soft = F.mse_loss(student_logits.view(-1), teacher_logits.view(-1))
    else:
        log_s = F.log_softmax(student_logits / temperature, dim=-1)
        log_t = F.log_softmax(teacher_logits / temperature, dim=-1)
        soft = F.kl_div(log_s, log_t, reduction="batchmean", log_target=True) * temperature**2
    return alpha * soft + (1 - alpha) * task_loss(student_logits, labels, is_regression)


class HubStudent(nn.Module):
    """``DistilBertForSequenceClassification`` with the attributes the harness reads."""

    def __init__(self, hf: nn.Module, reference_depth: int):
        super().__init__()
        self.hf = hf
        self.reference_depth = reference_depth

    @property
    def n_layers(self) -> int:
        return self.hf.config.n_layers


@register
class DistilBert(Method):
    name = "distilbert"
    display_name = "DistilBERT"  # per instance after load(): "DistilBERT (from teacher)" for that kind
    row_note = "kind decided at training time (see ROW_NOTES)"  # per instance after train()/load()
    knob_name = "none"
    needs_finetuned = True  # from_teacher distils the stage-1 model (hub uses it only for the depth)
    static = True
    Params = DistilBertParams

    def knobs(self) -> list[float]:
        return [0.0]

    def kind(self, model_source) -> str:
        student = self.params.student
        if student not in KINDS:
            raise ValueError(f"methods.{self.name}.student must be one of {', '.join(KINDS)}, not '{student}'")
        if student == "auto":
            return "hub" if getattr(model_source, "source", None) == "hub" else "from_teacher"
        return student

    def _set_kind(self, kind: str) -> None:
        self.row_note, self.display_name = ROW_NOTES[kind], DISPLAY[kind]

    def _teacher_depth(self, ctx: TrainContext) -> int:
        if self.params.reference_depth is not None:
            return int(self.params.reference_depth)
        if ctx.finetuned_dir is not None and (Path(ctx.finetuned_dir) / "config.json").is_file():
            return int(json.loads((Path(ctx.finetuned_dir) / "config.json").read_text())["num_hidden_layers"])
        return 12

    def training_epochs(self, finetune: dict) -> float:
        student = 0.5  # half depth; from the teacher also costs the teacher's forward pass
        return super().training_epochs(finetune) * (student + (0 if self.params.student == "hub" else FORWARD_SHARE))

    def train(self, ctx: TrainContext) -> None:
        kind = self.kind(ctx.model_source)
        self._set_kind(kind)
        (self._train_hub if kind == "hub" else self._train_from_teacher)(ctx)

    def _train_from_teacher(self, ctx: TrainContext) -> None:
        p = self.params
        if ctx.finetuned_dir is None:
            raise ValueError("methods.distilbert with student: from_teacher needs the fine-tuned BERT (stage 1)")
        teacher_clf, tokenizer = load_classifier(ctx.finetuned_dir)
        teacher = MethodModel(teacher_clf).to(ctx.device).eval().requires_grad_(False)  # its head as trained
        layers = list(p.teacher_layers) if p.teacher_layers is not None else every_other(teacher.n_layers)
        model = MethodModel(init_student(teacher_clf, layers)).to(ctx.device)
        settings = p.settings(ctx)

        def loss_fn(batch: dict[str, Tensor], _step: int) -> Tensor:
            ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
            with torch.no_grad():  # teacher targets on the fly (eval mode: deterministic)
                t_logits = teacher.final_head(teacher.engine.run(ids, mask, types).hidden, mask)
            s_logits = model.final_head(model.engine.run(ids, mask, types).hidden, mask)
            return distillation_loss(s_logits, t_logits, batch["labels"], p.temperature, p.alpha, self.task.is_regression)

        losses = train_loop(
            model.parameters(), loss_fn, ctx.train, settings, seed=ctx.seed,
            desc=f"DistilBERT student ({len(layers)} layers) on {self.task.name}", device=ctx.device, modules=[model],
        )
        save_method_model(
            model.cpu(), tokenizer, ctx.out_dir / "main",
            {"method": self.name, "kind": "from_teacher", "row_note": self.row_note, "teacher_layers": layers,
             "reference_depth": self._teacher_depth(ctx), "temperature": p.temperature, "alpha": p.alpha,
             "settings": settings.as_dict(), "final_loss": losses[-1]},
        )

    def _train_hub(self, ctx: TrainContext) -> None:
        from dpbert.data import hub
        from dpbert.model import sources as models

        p = self.params
        if not models._in_hf_cache(p.hub_name):  # fail fast offline, before anything slow
            hub.require_hub(f"DistilBERT's checkpoint '{p.hub_name}' (methods.{self.name}.student: hub)",
                            f"set methods.{self.name}.student: from_teacher (a half-depth student distilled "
                            "from the fine-tuned BERT, no download)")
        from transformers import AutoTokenizer, DistilBertForSequenceClassification

        local = {"local_files_only": True} if not hub.hub_reachable() else {}  # offline: the cache, no retries
        tokenizer = AutoTokenizer.from_pretrained(p.hub_name, **local)
        if ctx.model_source is not None and models.load_tokenizer(ctx.model_source).get_vocab() != tokenizer.get_vocab():
            raise ValueError(f"the data were tokenised for {ctx.model_source.describe()}, whose vocabulary differs "
                             f"from {p.hub_name}'s; use student: from_teacher or an uncased BERT backbone")
        torch.manual_seed(ctx.seed)  # the new classification head
        hf = DistilBertForSequenceClassification.from_pretrained(p.hub_name, num_labels=self.task.num_labels, **local)
        model = HubStudent(hf, self._teacher_depth(ctx)).to(ctx.device)
        settings = p.settings(ctx)

        def loss_fn(batch: dict[str, Tensor], _step: int) -> Tensor:  # no token types in DistilBERT
            logits = model.hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            return task_loss(logits, batch["labels"], self.task.is_regression)

        losses = train_loop(model.parameters(), loss_fn, ctx.train, settings, seed=ctx.seed,
                            desc=f"fine-tune {p.hub_name} on {self.task.name}", device=ctx.device, modules=[model])
        folder = ctx.out_dir / "main"
        models.save_classifier(model.hf.cpu(), tokenizer, folder / HUB_FOLDER)
        (folder / META_FILE).write_text(json.dumps(
            {"method": self.name, "kind": "hub", "row_note": self.row_note, "hub_name": p.hub_name,
             "reference_depth": model.reference_depth, "settings": settings.as_dict(), "final_loss": losses[-1]},
            indent=2, sort_keys=True))

    def load(self, folder: Path):
        folder = Path(folder)
        try:
            meta = json.loads((folder / META_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"the DistilBERT checkpoint in {folder} has no readable {META_FILE} ({exc}); "
                                 "delete the folder and rerun the workflow to retrain it.") from exc
        self._set_kind(meta["kind"])
        if meta["kind"] == "hub":
            from transformers import DistilBertForSequenceClassification

            try:
                hf = DistilBertForSequenceClassification.from_pretrained(folder / HUB_FOLDER)
            except Exception as exc:
                raise ModelLoadError(f"the DistilBERT checkpoint in {folder} could not be read ({exc}); delete "
                                     "the folder and rerun the workflow to retrain it.") from exc
            return HubStudent(hf, int(meta["reference_depth"])).eval()
        model = load_method_model(folder)[0]
        model.reference_depth = int(meta["reference_depth"])
        return model

    @torch.inference_mode()
    def predict_one(self, model, example: dict[str, Tensor], knob: float) -> Prediction:
        if isinstance(model, HubStudent):  # its own HF forward; all of its layers run
            logits = model.hf(input_ids=example["input_ids"], attention_mask=example["attention_mask"]).logits
            return Prediction(logits[0], list(range(model.n_layers)))
        out = model.engine.run(example["input_ids"], example["attention_mask"], example["token_type_ids"])
        return Prediction(model.final_head(out.hidden, example["attention_mask"])[0], out.executed)

    @torch.inference_mode()
    def predict_batch(self, model, batch: dict[str, Tensor], knob: float,
                      exact: bool = False) -> list[Prediction]:
        """The student on the whole batch at once: the hub student's own Hugging Face forward with the
        attention mask (its head batched too, in either mode), or the engine's batched forward and BERT's head
        (``exact``: on each row alone)."""
        if isinstance(model, HubStudent):
            logits = model.hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            return [Prediction(row, list(range(model.n_layers))) for row in logits]
        return [Prediction(*row) for row in model.run_fixed_layers_batch(batch, range(model.n_layers),
                                                                          f"methods.{self.name}", exact)]

    def reference_layers(self, model) -> int:
        """The teacher's depth (12 for BERT-base), so 6 student layers give a 2.00x layer speed-up."""
        return int(model.reference_depth)
