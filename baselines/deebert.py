"""DeeBERT (Xin et al. 2020): off-ramps after every layer, exit at the first confident one.

Stage 1 is the fine-tuned BERT-base run as given (backbone + final classifier, final-layer loss
only: exactly DeeBERT's first stage, so it is reused, not retrained). Stage 2 freezes the backbone
and trains the off-ramps of layers 1..N-1 with the sum of their losses. Inference stops at the
first layer whose off-ramp entropy is below S; the last layer answers with BERT's own head.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from baselines._early_exit import (
    ExitCriterion,
    ExitModules,
    ExitParams,
    RowsSignal,
    all_exits,
    check_classification,
    host_entropy,
    infer_exit,
    new_ramps,
    row_answers,
)
from dpbert.methods.interface import FORWARD_SHARE, Pinned, TrainContext, register
from dpbert.model.method_model import MethodModel, save_method_model
from dpbert.model.sources import load_classifier
from dpbert.model.training import task_loss, train_loop

# The official scripts' entropy sweep. S = 0 never exits (entropy >= 0): it is the no-exit point;
# the official code's *default* (-1) never exits either, which is why the grid, not one value, is swept.
OFFICIAL_ENTROPIES = [0.0, 0.001, 0.005, 0.01, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]


@dataclass
class DeeBertParams(ExitParams):
    """``epochs``: stage 2 (the official scripts reuse stage 1's); stage 2 trains only the off-ramps, at
    ``head_lr`` if set, else ``lr``."""

    entropies: list[float] = field(default_factory=lambda: list(OFFICIAL_ENTROPIES))  # S grid (official scripts)


@register
class DeeBert(ExitCriterion):
    name = "deebert"
    display_name = "DeeBERT"
    knob_name = "entropy"
    refinable = True  # a threshold on the off-ramp entropy: the window search scores values between the grid's
    knob_range = (0.0, 1.0986122886681098)  # [0, ln 3]: nats of a <= 3-class off-ramp; S above the max exits at layer 1
    needs_finetuned = True
    supports_regression = False  # the paper has no STS-B entry: no regression exit criterion
    Params = DeeBertParams

    def knobs(self) -> list[float]:
        return list(self.params.entropies)

    def stage2(self, model: MethodModel, ctx: TrainContext) -> list[float]:
        """Backbone and final classifier frozen (bit-identical); off-ramps 1..N-1 trained on the sum of losses."""
        p = self.params
        for param in model.backbone_parameters():
            param.requires_grad_(False)

        def loss_fn(batch: dict[str, Tensor], _step: int) -> Tensor:
            exits = all_exits(model, batch, backbone_grad=False)
            ramp_logits = exits.logits[:-1]  # layers 1..N-1; the last exit is the frozen final head
            return sum(task_loss(lg, batch["labels"], False) for lg in ramp_logits)

        settings = p.settings(ctx, lr=p.head_lr or p.lr)
        try:
            # As the official run_glue (model.train()): dropout stays on in the frozen backbone too.
            return train_loop(
                model.extra.parameters(), loss_fn, ctx.train, settings, seed=ctx.seed,
                desc=f"DeeBERT stage 2 (off-ramps) on {self.task.name}", device=ctx.device, modules=[model],
            )
        finally:
            for param in model.backbone_parameters():
                param.requires_grad_(True)

    def training_epochs(self, finetune: dict) -> float:
        return super().training_epochs(finetune) * FORWARD_SHARE  # frozen backbone: forward passes only

    def train(self, ctx: TrainContext) -> None:
        check_classification(self.display_name, self.task)
        classifier, tokenizer = load_classifier(ctx.finetuned_dir)
        model = MethodModel(classifier, ExitModules(self.new_ramps(classifier, ctx))).to(ctx.device)
        if model.extra.ramps.n_ramps == 0:
            raise ValueError("DeeBERT needs a backbone with at least 2 layers (off-ramps after layers 1..N-1)")
        losses = self.stage2(model, ctx)
        save_method_model(model.cpu(), tokenizer, ctx.out_dir / "main",
                          self.meta(stage1=str(ctx.finetuned_dir), stage2_final_loss=losses[-1]))

    def load(self, folder: Path) -> MethodModel:
        return self.load_exit(folder, lambda ramps, _cfg: ExitModules(ramps))

    def exit_rows(self, model: MethodModel, n_rows: int) -> RowsSignal:
        """The off-ramp's logits, and their entropy (before the last layer) from one read of the rows' logits."""
        last = model.n_layers - 1

        def signal(i: int, hidden: Tensor, mask: Tensor, rows: list[int]) -> tuple[list, list[float | None]]:
            logits = infer_exit(model, i, hidden, mask)[1]
            if i == last:
                return row_answers(logits), [None] * len(rows)
            return row_answers(logits), [host_entropy(values) for values in logits.tolist()]

        return signal

    def pinned(self, classifier, k: int) -> Pinned:
        """Uniform off-ramps (entropy ln 2) everywhere but at layer k, which is certain: threshold 0.3."""
        ramps = new_ramps(classifier)
        for i, lin in enumerate(ramps.classifiers):
            torch.nn.init.zeros_(lin.weight)
            with torch.no_grad():
                lin.bias.copy_(torch.tensor([20.0, -20.0]) if i == k - 1 else torch.zeros(2))
        return Pinned(MethodModel(classifier, ExitModules(ramps)).eval(), 0.3, f"exit at {k}")

    def exits(self, statistic: float, knob: float) -> bool:
        """Exit at the first layer i < N with entropy(off-ramp i) < S (strict, as the official code)."""
        return statistic < knob
