"""BERT-kL: the fine-tuned BERT cut after its first k layers (the paper's BERT-9L / BERT-6L bound).

The smallest complete method, and the template for a new baseline (README, "Add a baseline"):
a Params dataclass (its config keys), knobs(), load(), predict_one(); a method that learns something
also defines train() (see baselines/pabee.py). Nothing to learn here (``trains = False``): the
stage-1 model itself is run with fewer layers, its own head on layer k's output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from dpbert.methods.interface import (
    Method,
    MethodParams,
    Pinned,
    Prediction,
    depth_field,
    register,
)
from dpbert.model.method_model import MethodModel, load_method_model


@dataclass
class TruncatedParams(MethodParams):
    layers: list[int] = depth_field(1, 0, "numbers of layers run", default_factory=lambda: [9, 8, 7, 6])  # k values swept (12-layer BERT)


@register
class BertTruncated(Method):
    name = "bert_truncated"  # the key under `methods:` in the config
    display_name = "BERT-kL"
    knob_name = "layers"
    needs_finetuned = True  # runs on the stage-1 BERT-base model
    trains = False  # no job trains it: load() gets the stage-1 folder
    Params = TruncatedParams

    def knobs(self) -> list[float]:
        return [float(k) for k in self.params.layers]

    def load(self, folder: Path) -> MethodModel:
        return load_method_model(folder)[0]

    def pinned(self, classifier, k: int) -> Pinned:
        return Pinned(MethodModel(classifier).eval(), float(k), f"first {k}")

    @torch.inference_mode()
    def predict_one(self, model: MethodModel, example: dict[str, Tensor], knob: float) -> Prediction:
        # The engine runs embeddings + layers 0..k-1 and nothing else; BERT's own head reads layer k.
        return Prediction(*model.run_fixed_layers(example, range(int(knob)), f"methods.{self.name}.layers"))

    @torch.inference_mode()
    def predict_knobs(self, model: MethodModel, example: dict[str, Tensor], knobs: Sequence[float]) -> list[Prediction]:
        """Every depth k off one pass over the deepest k's layers: the head reads layer k's state."""
        depths = [int(k) for k in knobs]
        for k in depths:
            model.check_layers(range(k), f"methods.{self.name}.layers")
        out = model.engine.run(example["input_ids"], example["attention_mask"], example["token_type_ids"],
                               layers=range(max(depths)), keep_states=True)
        return [Prediction(model.final_head(out.states[k - 1], example["attention_mask"])[0], out.executed[:k]) for k in depths]
