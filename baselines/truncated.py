"""BERT-kL (``bert_truncated``): k-layer BERT models, fine-tuned as BERT-base is; and ``bert_cut``, the
stage-1 BERT-base cut after its first k layers, kept as a diagnostic.

BERT-kL is the "BERT-9L / BERT-6L" row of the early-exit papers: for each k in ``layers``, a model made
of the pretrained backbone's embeddings, its first k layers, its pooler and a new head (exactly what
BERT-base starts from, ``build_start``, with the layers above k dropped), fine-tuned with BERT-base's
recipe and budget (``training.finetune``, the final-layer task loss, the same training loop). One saved
variant per k ("9L", "6L"), each scored only at its own depth; its layer speed-up is N / k, N the
backbone's depth (9 of 12: 1.33x).

``bert_cut`` (not in any profile's config) runs the stage-1 model with fewer layers, its head, trained on
layer N's state, reading layer k's: it trains nothing (``trains = False``), which makes it the template of
a method with nothing to learn (README, "Add a baseline"). It is what the tools probe the demo's data and
the engine with (dpbert.tools.synthetic_check, dpbert.tools.speedup_bench); on real text it sits at the
majority class, so it is no baseline.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from baselines.distilbert import init_student
from dpbert.methods.interface import (
    FinetuneParams,
    Method,
    MethodParams,
    Pinned,
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
from dpbert.model.sources import ModelLoadError, build_start
from dpbert.model.training import task_loss, train_loop

DEFAULT_DEPTH = 12
"""N for planning when the backbone's depth is not known (``Method.backbone_depth`` None): BERT-base's."""

_VARIANT = re.compile(r"^([1-9][0-9]*)L$")


def variant_name(k: int) -> str:
    """The folder of the k-layer model: "9L"."""
    return f"{int(k)}L"


def variant_depth(variant: str) -> int:
    """k of a variant folder name ("9L" -> 9)."""
    m = _VARIANT.match(variant)
    if m is None:
        raise ValueError(f"'{variant}' is no BERT-kL variant: those are named <k>L, e.g. 9L")
    return int(m.group(1))


# ---------------------------------------------------------------- BERT-kL: k-layer models, fine-tuned


@dataclass
class TruncatedParams(FinetuneParams):
    """The depths k, one fine-tuned model each; epochs / lr / batch_size as BERT-base's (``training.finetune``)."""

    # the window's bounds on a 12-layer backbone: 12/9 = 1.33x, 12/6 = 2.00x
    layers: list[int] = depth_field(1, 0, "numbers of layers kept", default_factory=lambda: [9, 6])


@register
class BertTruncated(Method):
    name = "bert_truncated"  # the key under `methods:` in the config
    display_name = "BERT-kL"  # the family; each variant's rows are "BERT-9L", "BERT-6L" (display_of)
    knob_name = "layers"
    needs_finetuned = False  # starts from the pretrained backbone, as BERT-base does
    static = True
    Params = TruncatedParams

    def depths(self) -> list[int]:
        """The configured k values, each once, in config order."""
        return list(dict.fromkeys(int(k) for k in self.params.layers))

    def variants(self) -> list[str]:
        return [variant_name(k) for k in self.depths()]

    def knobs(self) -> list[float]:
        return [float(k) for k in self.depths()]

    def knobs_of(self, variant: str) -> list[float]:
        return [float(variant_depth(variant))]  # the k-layer model runs its k layers, nothing else

    def display_of(self, variant: str) -> str:
        return f"BERT-{variant_depth(variant)}L"

    def training_epochs(self, finetune: dict) -> float:
        """One fine-tuning per k, each costing k / N of a full-depth one (``job_training_epochs``)."""
        return sum(self.job_training_epochs(finetune, v) for v in self.variants())

    def job_training_epochs(self, finetune: dict, job: str) -> float:
        """The k-layer model's fine-tuning: k / N of a full-depth one."""
        n = self.backbone_depth or DEFAULT_DEPTH
        return super().training_epochs(finetune) * variant_depth(job) / n if job in self.variants() else 0.0

    def train_variant(self, ctx: TrainContext, variant: str) -> None:
        """The k-layer model of ``variant``: BERT-base's start cut to its first k layers, fine-tuned as BERT-base.
        Every weight is a copy of the start (seeded by the run's seed) and training seeds itself, so the
        model does not depend on the variants trained before it in the same process."""
        k = variant_depth(variant)
        if variant not in self.variants():
            raise ValueError(f"{self.name} has no variant '{variant}'; methods.{self.name}.layers gives {self.variants()}")
        start, tokenizer = build_start(ctx.model_source, self.task.num_labels, ctx.seed, ctx.regression_targets())  # BERT-base's start
        n = int(start.config.num_hidden_layers)
        settings = self.params.settings(ctx)
        if not 1 <= k <= n:
            raise ValueError(f"methods.{self.name}.layers has {k}, but the backbone has {n} layers; "
                             f"use values in 1..{n}.")
        # embeddings, layers 0..k-1, pooler and the new head, copied from the start
        model = MethodModel(init_student(start, list(range(k)))).to(ctx.device)

        def loss_fn(batch: dict[str, Tensor], _step: int) -> Tensor:  # BERT-base's loss
            out = model.engine.run(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            return task_loss(model.final_head(out.hidden, batch["attention_mask"]), batch["labels"],
                             self.task.is_regression)

        losses = train_loop(
            model.parameters(), loss_fn, ctx.train, settings, seed=ctx.seed,
            desc=f"fine-tune BERT-{k}L on {self.task.name}", device=ctx.device, modules=[model],
        )
        save_method_model(
            model.cpu(), tokenizer, ctx.out_dir / variant,
            {"method": self.name, "layers": k, "reference_depth": n, "settings": settings.as_dict(),
             "final_loss": losses[-1], "backbone": ctx.model_source.describe()},
        )

    def load(self, folder: Path) -> MethodModel:
        model, _tokenizer, meta = load_method_model(folder)
        if "reference_depth" not in meta:
            raise ModelLoadError(f"the BERT-kL checkpoint in {folder} has no reference_depth in its {META_FILE} "
                                 "(written before BERT-kL trained its models?); delete the folder and rerun the "
                                 "workflow to retrain it.")
        model.reference_depth = int(meta["reference_depth"])
        return model

    def _check_depth(self, model: MethodModel, knob: float) -> None:
        if int(knob) != model.n_layers:
            raise ValueError(f"methods.{self.name}: this model has {model.n_layers} layers, so its knob is "
                             f"{model.n_layers}, not {knob:g} (each BERT-kL variant runs at its own depth)")

    @torch.inference_mode()
    def predict_one(self, model: MethodModel, example: dict[str, Tensor], knob: float) -> Prediction:
        """Every layer of the k-layer model (the knob is its k), then its own head."""
        self._check_depth(model, knob)
        out = model.engine.run(example["input_ids"], example["attention_mask"], example["token_type_ids"])
        return Prediction(model.final_head(out.hidden, example["attention_mask"])[0], out.executed)

    @torch.inference_mode()
    def predict_batch(self, model: MethodModel, batch: dict[str, Tensor], knob: float,
                      exact: bool = False) -> list[Prediction]:
        """The batch through every layer of the k-layer model at once, then its head (``exact``: on each row alone)."""
        self._check_depth(model, knob)
        return [Prediction(*row) for row in model.run_fixed_layers_batch(batch, range(model.n_layers),
                                                                          f"methods.{self.name}.layers", exact)]

    def reference_layers(self, model) -> int:
        """The backbone's depth N (12 for BERT-base), so 9 layers give a 1.33x layer speed-up."""
        return int(model.reference_depth)


# ---------------------------------------------------------------- bert_cut: the stage-1 model, cut (diagnostic)


@dataclass
class CutParams(MethodParams):
    layers: list[int] = depth_field(1, 0, "numbers of layers run", default_factory=lambda: [9, 8, 7, 6])  # k values swept (12-layer BERT)


@register
class BertCut(Method):
    """The template of a method with nothing to train: a Params dataclass (its config keys), knobs(),
    load(), predict_one(); ``trains = False``, so no job trains it and load() gets the stage-1 folder."""

    name = "bert_cut"
    display_name = "BERT cut (stage 1, first k)"
    knob_name = "layers"
    needs_finetuned = True  # runs on the stage-1 BERT-base model
    trains = False  # no job trains it: load() gets the stage-1 folder
    Params = CutParams

    def knobs(self) -> list[float]:
        return [float(k) for k in self.params.layers]

    def load(self, folder: Path) -> MethodModel:
        return load_method_model(folder)[0]

    def pinned(self, classifier, k: int) -> Pinned:
        return Pinned(MethodModel(classifier).eval(), float(k), f"first {k}", name="BERT cut")

    @torch.inference_mode()
    def predict_one(self, model: MethodModel, example: dict[str, Tensor], knob: float) -> Prediction:
        # The engine runs embeddings + layers 0..k-1 and nothing else; BERT's own head reads layer k.
        return Prediction(*model.run_fixed_layers(example, range(int(knob)), f"methods.{self.name}.layers"))

    @torch.inference_mode()
    def predict_batch(self, model: MethodModel, batch: dict[str, Tensor], knob: float,
                      exact: bool = False) -> list[Prediction]:
        """The batch through the first k layers at once, then the head (``exact``: on each row alone)."""
        return [Prediction(*row) for row in model.run_fixed_layers_batch(batch, range(int(knob)),
                                                                          f"methods.{self.name}.layers", exact)]

    @torch.inference_mode()
    def predict_knobs(self, model: MethodModel, example: dict[str, Tensor], knobs: Sequence[float]) -> list[Prediction]:
        """Every depth k off one pass over the deepest k's layers: the head reads layer k's state."""
        depths = [int(k) for k in knobs]
        for k in depths:
            model.check_layers(range(k), f"methods.{self.name}.layers")
        out = model.engine.run(example["input_ids"], example["attention_mask"], example["token_type_ids"],
                               layers=range(max(depths)), keep_states=True)
        return [Prediction(model.final_head(out.states[k - 1], example["attention_mask"])[0], out.executed[:k]) for k in depths]
