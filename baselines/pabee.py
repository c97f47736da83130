"""PABEE (Zhou et al. 2020): patience-based early exit.

A linear classifier after every layer over one shared pooler (the backbone's, as in the official
code); the last layer's is BERT's own head. One training stage from the pretrained backbone (as the
official code, for the same epochs as BERT-base), all parameters trained, loss sum_i i * L_i / sum_i i
(deeper layers weigh more). On a regression task every exit's head starts at the training targets'
mean and scale, as every method's new regression head does (``dpbert.model.sources.start_at_targets``):
with heads starting at 0 all six exits, reading one shared pooler, learned a pooled vector that ignores
the input. Inference counts consecutive layers whose prediction did not change (argmax; regression:
|change| < tolerance) and exits when the count reaches the patience, answering with the current layer's output.
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
    host_argmax,
    infer_exit,
    new_ramps,
    row_answers,
)
from dpbert.methods.interface import Pinned, TrainContext, register
from dpbert.model.method_model import MethodModel, save_method_model
from dpbert.model.training import task_loss, train_loop


def weighted_loss(logits: list[Tensor], labels: Tensor, is_regression: bool) -> Tensor:
    """sum_i i * L_i / sum_i i over layers i = 1..N."""
    total = sum((i + 1) * task_loss(lg, labels, is_regression) for i, lg in enumerate(logits))
    return total / (len(logits) * (len(logits) + 1) / 2)


@dataclass
class PabeeParams(ExitParams):
    # Official scripts' patience grid (12 layers). A patience >= N never fires: all layers run.
    patiences: list[int] = field(default_factory=lambda: [3, 4, 5, 6, 7, 8])  # 0 disables exiting
    regression_tolerance: float = 0.1  # |change| below this counts as "unchanged" (paper's STS-B value)


@register
class Pabee(ExitCriterion):
    name = "pabee"
    display_name = "PABEE"
    knob_name = "patience"
    # An integer count: the window search only fills integer gaps of the grid (knob_range None: never
    # beyond the grid's ends); the default grid 3..8 has none, so it adds nothing there.
    refinable = True
    knob_integer = True
    needs_finetuned = False  # the official code trains from the pretrained backbone
    supports_regression = True
    Params = PabeeParams

    def knobs(self) -> list[float]:
        return [float(k) for k in self.params.patiences]

    def train(self, ctx: TrainContext) -> None:
        p = self.params
        classifier, tokenizer = self.starting_model(ctx)
        model = MethodModel(classifier, ExitModules(self.new_ramps(classifier, ctx, own_poolers=False))).to(ctx.device)
        settings = p.settings(ctx)

        def loss_fn(batch: dict[str, Tensor], _step: int) -> Tensor:
            return weighted_loss(all_exits(model, batch).logits, batch["labels"], self.task.is_regression)

        losses = train_loop(
            self.param_groups(model, settings.lr), loss_fn, ctx.train, settings, seed=ctx.seed,
            desc=f"PABEE weighted training on {self.task.name}", device=ctx.device, modules=[model],
        )
        save_method_model(model.cpu(), tokenizer, ctx.out_dir / "main",
                          self.meta(settings=settings.as_dict(), head_lr=p.head_lr, final_loss=losses[-1]))

    def load(self, folder: Path) -> MethodModel:
        return self.load_exit(folder, lambda ramps, _cfg: ExitModules(ramps), own_poolers=False)

    def exit_rows(self, model: MethodModel, n_rows: int) -> RowsSignal:
        """The statistic is the official counter: consecutive layers that left the prediction unchanged
        (argmax; regression: |change| < tolerance), one counter and last prediction per batch row."""
        last = model.n_layers - 1
        tol = self.params.regression_tolerance
        prev: list = [None] * n_rows
        counter = [0] * n_rows

        def signal(i: int, hidden: Tensor, mask: Tensor, rows: list[int]) -> tuple[list, list[float | None]]:
            logits = infer_exit(model, i, hidden, mask)[1]
            statistics: list[float | None] = []
            for row, values in zip(rows, logits.tolist()):
                if self.task.is_regression:
                    pred = values[0]
                    same = prev[row] is not None and abs(pred - prev[row]) < tol
                else:
                    pred = host_argmax(values)
                    same = prev[row] is not None and pred == prev[row]
                counter[row] = counter[row] + 1 if same else 0
                prev[row] = pred
                statistics.append(float(counter[row]) if i < last else None)
            return row_answers(logits), statistics

        return signal

    def pinned(self, classifier, k: int) -> Pinned:
        """Every off-ramp predicts the same class, so the patience counter grows every layer: patience
        k - 1 exits after layer k."""
        ramps = new_ramps(classifier, own_poolers=False)
        for lin in ramps.classifiers:
            torch.nn.init.zeros_(lin.weight)
            with torch.no_grad():
                lin.bias.copy_(torch.tensor([1.0, 0.0]))
        return Pinned(MethodModel(classifier, ExitModules(ramps)).eval(), float(k - 1), f"patience {k - 1}")

    def exits(self, statistic: float, knob: float) -> bool:
        """Exit when `patience` consecutive layers left the prediction unchanged; patience 0 never exits."""
        return 0 < int(knob) <= statistic
