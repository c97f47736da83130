"""BERT-kL: the fine-tuned BERT cut after its first k layers (the paper's BERT-9L / BERT-6L bound).

The smallest complete method, and the template for a new baseline (README, "Add a baseline"):
a Params dataclass (its config keys), knobs(), train(), load(), predict_one(). No extra training:
the stage-1 model is copied and simply run with fewer layers, its own head on layer k's output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from dpbert.modeling import MethodModel, load_method_model, save_method_model
from dpbert.models import load_classifier
from dpbert.registry import Method, MethodParams, Prediction, TrainContext, register


@dataclass
class TruncatedParams(MethodParams):
    layers: list[int] = field(default_factory=lambda: [9, 8, 7, 6])  # k values swept (12-layer BERT)


@register
class BertTruncated(Method):
    name = "bert_truncated"  # the key under `methods:` in the config
    display_name = "BERT-kL"
    knob_name = "layers"
    needs_finetuned = True  # ctx.finetuned_dir is the stage-1 BERT-base folder
    Params = TruncatedParams

    def knobs(self) -> list[float]:
        return [float(k) for k in self.params.layers]

    def train(self, ctx: TrainContext) -> None:
        # Nothing to learn: save a copy of the fine-tuned model as this method's only variant.
        classifier, tokenizer = load_classifier(ctx.finetuned_dir)
        save_method_model(MethodModel(classifier), tokenizer, ctx.out_dir / "main",
                          {"method": self.name, "copied_from": str(ctx.finetuned_dir)})

    def load(self, folder: Path) -> MethodModel:
        return load_method_model(folder)[0]

    @torch.inference_mode()
    def predict_one(self, model: MethodModel, example: dict[str, Tensor], knob: float) -> Prediction:
        # The engine runs embeddings + layers 0..k-1 and nothing else; BERT's own head reads layer k.
        return Prediction(*model.run_fixed_layers(example, range(int(knob)), f"methods.{self.name}.layers"))
