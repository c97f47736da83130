"""LayerDrop (Fan et al. 2019): fine-tune with structured layer dropout, prune to evenly spaced layers.

Training is BERT-base fine-tuning from the backbone source (not from the stage-1 run) in which,
at every step, each layer is skipped with probability p for the whole batch (the engine's
``plan`` returns False: the layer module is not called). The decisions come from a generator of
their own, so the global RNG (dropout, init) is consumed exactly as in plain fine-tuning: p = 0
reproduces BERT-base's weights bit for bit. No dropping at eval. Inference keeps a fixed set of
k evenly spaced layers (every other layer for 6 of 12): one speed-up for every input (static).
"""

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
    depth_field,
    register,
)
from dpbert.model.method_model import MethodModel, load_method_model, save_method_model
from dpbert.model.sources import build_classifier, load_tokenizer
from dpbert.model.training import task_loss, train_loop


def evenly_spaced(n: int, k: int) -> list[int]:
    """k of n layers (0-based), evenly spaced, starting at the first: floor(j * n / k), j < k.

    6 of 12 gives [0, 2, 4, 6, 8, 10], "every other layer" as the official fairseq LayerDrop
    README prunes (``--encoder-layers-to-keep 0,2,4,...``); k == n keeps every layer.
    """
    if not 1 <= k <= n:
        raise ValueError(f"cannot keep {k} of {n} layers: the number kept must be in 1..{n}")
    return [j * n // k for j in range(k)]


def draw_kept(n: int, p: float, generator: torch.Generator) -> list[bool]:
    """One training step's decisions: layer i runs unless a uniform draw falls below p."""
    return (torch.rand(n, generator=generator) >= p).tolist()


@dataclass
class LayerDropParams(FinetuneParams):
    p: float = 0.2  # drop probability per layer and step (paper: 0.2; 0.5 for aggressive pruning)
    kept_layers: list[int] = depth_field(1, 0, "numbers of layers kept", default_factory=lambda: [6])  # k of N kept at inference (paper: 6 of 12)


@register
class LayerDrop(Method):
    name = "layerdrop"
    display_name = "LayerDrop"
    knob_name = "kept_layers"
    needs_finetuned = False  # its own fine-tuning from the backbone source
    static = True
    Params = LayerDropParams

    def knobs(self) -> list[float]:
        return [float(k) for k in self.params.kept_layers]

    def training_epochs(self, finetune: dict) -> float:
        return super().training_epochs(finetune) * (1 - self.params.p)  # dropped layers cost nothing

    def train(self, ctx: TrainContext) -> None:
        p = self.params
        if not 0.0 <= p.p < 1.0:
            raise ValueError(f"methods.{self.name}.p must be in [0, 1), got {p.p}")
        tokenizer = load_tokenizer(ctx.model_source)
        classifier = build_classifier(ctx.model_source, self.task.num_labels, len(tokenizer), ctx.seed,
                                      ctx.regression_targets())
        model = MethodModel(classifier).to(ctx.device)
        settings = p.settings(ctx)
        drops = torch.Generator().manual_seed(ctx.seed + 7919)  # separate stream: global RNG untouched
        dropped: list[int] = []

        def loss_fn(batch: dict[str, Tensor], _step: int) -> Tensor:
            kept = draw_kept(model.n_layers, p.p, drops)
            dropped.append(kept.count(False))
            out = model.engine.run(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                                   plan=lambda i, _h: kept[i])
            return task_loss(model.final_head(out.hidden, batch["attention_mask"]), batch["labels"], self.task.is_regression)

        losses = train_loop(
            model.parameters(), loss_fn, ctx.train, settings, seed=ctx.seed,
            desc=f"LayerDrop (p={p.p:g}) fine-tuning on {self.task.name}", device=ctx.device, modules=[model],
            extra_state={"drops": drops, "dropped": dropped},  # a resumed run draws on where it stopped
        )
        save_method_model(
            model.cpu(), tokenizer, ctx.out_dir / "main",
            {"method": self.name, "p": p.p, "settings": settings.as_dict(), "final_loss": losses[-1],
             "mean_dropped_layers": sum(dropped) / max(1, len(dropped)), "backbone": ctx.model_source.describe()},
        )

    def load(self, folder: Path) -> MethodModel:
        return load_method_model(folder)[0]

    @torch.inference_mode()
    def predict_one(self, model: MethodModel, example: dict[str, Tensor], knob: float) -> Prediction:
        """The pruned model: the engine runs exactly the kept layers, then BERT's head."""
        return Prediction(*model.run_fixed_layers(example, self._kept(model, knob), f"methods.{self.name}.kept_layers"))

    @torch.inference_mode()
    def predict_batch(self, model: MethodModel, batch: dict[str, Tensor], knob: float,
                      exact: bool = False) -> list[Prediction]:
        """The pruned model on the whole batch at once (the kept layers), then BERT's head (``exact``: on each row alone)."""
        return [Prediction(*row) for row in model.run_fixed_layers_batch(batch, self._kept(model, knob),
                                                                          f"methods.{self.name}.kept_layers", exact)]

    def _kept(self, model: MethodModel, knob: float) -> list[int]:
        k = int(knob)
        if not 1 <= k <= model.n_layers:
            raise ValueError(f"methods.{self.name}.kept_layers has {k}, but the model has {model.n_layers} "
                             f"layers; use values in 1..{model.n_layers}.")
        return evenly_spaced(model.n_layers, k)
