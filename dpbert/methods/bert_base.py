"""BERT-base: stage-1 fine-tuning of the whole model; the 1.00x reference every speed-up divides by."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from dpbert.methods.interface import (
    FinetuneParams,
    Method,
    Prediction,
    TrainContext,
    register,
)
from dpbert.model.method_model import MethodModel, load_method_model, save_method_model
from dpbert.model.sources import build_start
from dpbert.model.training import task_loss, train_loop


@dataclass
class BertParams(FinetuneParams):
    """Stage 1: epochs / lr / batch_size, each None for the profile's ``training.finetune``."""


@register
class BertBase(Method):
    name = "bert"
    display_name = "BERT-base"
    knob_name = "none"
    needs_finetuned = False
    static = True
    is_reference = True
    Params = BertParams

    def knobs(self) -> list[float]:
        return [0.0]

    def train(self, ctx: TrainContext) -> None:
        classifier, tokenizer = build_start(ctx.model_source, self.task.num_labels, ctx.seed, ctx.regression_targets())
        model = MethodModel(classifier).to(ctx.device)
        settings = self.params.settings(ctx)

        def loss_fn(batch: dict[str, Tensor], _step: int) -> Tensor:
            out = model.engine.run(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            return task_loss(model.final_head(out.hidden, batch["attention_mask"]), batch["labels"], self.task.is_regression)

        losses = train_loop(
            model.parameters(), loss_fn, ctx.train, settings, seed=ctx.seed,
            desc=f"fine-tune BERT on {self.task.name}", device=ctx.device, modules=[model],
        )
        save_method_model(
            model.cpu(), tokenizer, ctx.out_dir / "main",
            {"method": self.name, "settings": settings.as_dict(), "final_loss": losses[-1],
             "backbone": ctx.model_source.describe()},
        )

    def load(self, folder: Path) -> MethodModel:
        return load_method_model(folder)[0]

    @torch.inference_mode()
    def predict_one(self, model: MethodModel, example: dict[str, Tensor], knob: float) -> Prediction:
        """Every layer through the engine, then BERT's head: the same logits as the Hugging Face forward
        (tested bit for bit), timed through the same code path as every method (``latency.reference``)."""
        out = model.engine.run(example["input_ids"], example["attention_mask"], example["token_type_ids"])
        return Prediction(model.final_head(out.hidden, example["attention_mask"])[0], out.executed)

    @torch.inference_mode()
    def predict_batch(self, model: MethodModel, batch: dict[str, Tensor], knob: float,
                      exact: bool = False) -> list[Prediction]:
        """The plain batched forward with the attention mask, then BERT's head (``exact``: on each row alone)."""
        return [Prediction(*row) for row in model.run_fixed_layers_batch(batch, range(model.n_layers), "model", exact)]

    @staticmethod
    def hf_forward(model: MethodModel, example: dict[str, Tensor]) -> Tensor:
        """The plain Hugging Face forward of the same model (``latency.reference: hf``); its head reads
        [CLS] whatever ``model.head_state`` says, so with mean it times the same layers, not the same head."""
        return model.classifier(**example).logits[0]
