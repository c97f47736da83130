"""BERxiT (Xin et al. 2021): DeeBERT's off-ramps plus a learned-to-exit (LTE) unit, covering regression.

One shared LTE unit, Linear(hidden, 1) + sigmoid on each exit's pooled output, estimates that
exit's error: target 1 - [argmax == label] (classification) or tanh(|pred - y|) (regression),
targets detached, MSE over all layers. Training alternates from the pretrained backbone (as the
official code, for the same epochs as BERT-base), all parameters trained: even steps final-layer loss + LTE loss, odd steps the sum of the off-ramp
losses of layers 1..N-1 + LTE loss. Inference exits at layer i < N when the LTE output is below
the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from baselines._early_exit import (
    AllExits,
    ExitCriterion,
    ExitModules,
    ExitParams,
    RowsSignal,
    all_exits,
    host_sigmoid,
    infer_exit,
    new_ramps,
    row_answers,
)
from dpbert.methods.interface import Pinned, TrainContext, register
from dpbert.model.method_model import MethodModel, save_method_model
from dpbert.model.training import task_loss, train_loop


class LTE(nn.Module):
    """The shared learning-to-exit unit: estimated error of an exit from its pooled output."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.fc = nn.Linear(hidden_size, 1)

    def forward(self, pooled: Tensor) -> Tensor:
        return torch.sigmoid(self.fc(pooled)).squeeze(-1)

    def errors(self, pooled: Tensor) -> list[float]:
        """``forward`` for each row of ``pooled`` (rows, hidden) as host floats, from one read (inference)."""
        return [host_sigmoid(x) for x in F.linear(pooled, self.fc.weight, self.fc.bias).view(-1).tolist()]

    def error_one(self, pooled: Tensor) -> float:
        """``errors`` of one example (pooled of shape (1, hidden))."""
        return self.errors(pooled)[0]


def lte_targets(logits: Tensor, labels: Tensor, is_regression: bool) -> Tensor:
    """Detached error of one exit: 1 - [argmax == label], or tanh(|pred - y|) for regression."""
    with torch.no_grad():
        if is_regression:
            return torch.tanh((logits.view(-1) - labels.view(-1).float()).abs())
        return (logits.argmax(-1) != labels.view(-1)).float()


LTE_GRADS = ("backbone", "lte_only")


def lte_loss(model: MethodModel, exits: AllExits, labels: Tensor, is_regression: bool,
             lte_grad: str = "backbone") -> Tensor:
    """MSE between the LTE output and the (detached) error of every layer's exit, averaged over layers.
    ``lte_grad``: ``backbone`` (the official code: the loss also trains the pooled outputs it reads, so
    the off-ramps and the backbone) or ``lte_only`` (the pooled outputs detached: it trains the LTE unit alone)."""
    if lte_grad not in LTE_GRADS:
        raise ValueError(f"methods.berxit.lte_grad must be one of {', '.join(LTE_GRADS)}, not '{lte_grad}'")
    losses = [nn.functional.mse_loss(model.extra.lte(p if lte_grad == "backbone" else p.detach()),
                                     lte_targets(lg, labels, is_regression))
              for p, lg in zip(exits.pooled, exits.logits)]
    return torch.stack(losses).mean()


@dataclass
class BerxitParams(ExitParams):
    # Ours: the official scripts sweep the threshold too; this grid spans "almost always exit at
    # layer 1" to "almost never exit" on an error-probability scale (threshold <= 0 never exits).
    thresholds: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    # What the LTE loss trains: backbone (the official code: its gradient reaches the pooled outputs, the
    # off-ramps and the backbone) | lte_only (ours, for a random-init backbone: the pooled outputs detached).
    lte_grad: str = "backbone"


@register
class Berxit(ExitCriterion):
    name = "berxit"
    display_name = "BERxiT"
    knob_name = "lte_threshold"
    refinable = True  # a threshold on the LTE unit's estimated error: the window search refines it
    knob_range = (0.0, 1.0)  # the LTE output is a sigmoid: <= 0 never exits, >= 1 exits at layer 1
    needs_finetuned = False  # the official code trains from the pretrained backbone
    supports_regression = True
    Params = BerxitParams
    exit_unit_outputs = 1  # the shared LTE unit, Linear(H, 1), on each exit's pooled output

    def knobs(self) -> list[float]:
        return list(self.params.thresholds)

    def loss(self, model: MethodModel, batch: dict[str, Tensor], step: int) -> Tensor:
        """Alternating: even steps final-layer loss, odd steps sum of off-ramp losses; + LTE loss always."""
        reg = self.task.is_regression
        exits = all_exits(model, batch)
        if step % 2 == 0:
            main = task_loss(exits.logits[-1], batch["labels"], reg)
        else:
            main = sum(task_loss(lg, batch["labels"], reg) for lg in exits.logits[:-1])
        return main + lte_loss(model, exits, batch["labels"], reg, self.params.lte_grad)

    def train(self, ctx: TrainContext) -> None:
        p = self.params
        classifier, tokenizer = self.starting_model(ctx)
        extra = ExitModules(self.new_ramps(classifier, ctx), lte=LTE(classifier.config.hidden_size))
        model = MethodModel(classifier, extra).to(ctx.device)
        settings = p.settings(ctx)
        losses = train_loop(
            self.param_groups(model, settings.lr), lambda batch, step: self.loss(model, batch, step), ctx.train,
            settings,
            seed=ctx.seed, desc=f"BERxiT alternating on {self.task.name}", device=ctx.device, modules=[model],
        )
        save_method_model(model.cpu(), tokenizer, ctx.out_dir / "main",
                          self.meta(settings=settings.as_dict(), head_lr=p.head_lr, final_loss=losses[-1]))

    def load(self, folder: Path) -> MethodModel:
        return self.load_exit(folder, lambda ramps, cfg: ExitModules(ramps, lte=LTE(cfg.hidden_size)))

    def exit_rows(self, model: MethodModel, n_rows: int) -> RowsSignal:
        """The exit's logits, and (before the last layer) the LTE unit's estimated error of each row."""
        last = model.n_layers - 1

        def signal(i: int, hidden: Tensor, mask: Tensor, rows: list[int]) -> tuple[list, list[float | None]]:
            pooled, logits = infer_exit(model, i, hidden, mask)
            return row_answers(logits), (model.extra.lte.errors(pooled) if i < last else [None] * len(rows))

        return signal

    def pinned(self, classifier, k: int) -> Pinned:
        """Off-ramp k's pooler gives -1 everywhere, the others +1; the shared LTE unit reads that as error
        ~0 at layer k and ~1 elsewhere, so threshold 0.5 exits at layer k."""
        h = classifier.config.hidden_size
        ramps = new_ramps(classifier)
        lte = LTE(h)
        with torch.no_grad():
            for i, pooler in enumerate(ramps.poolers):
                pooler.dense.weight.zero_()
                pooler.dense.bias.fill_(-20.0 if i == k - 1 else 20.0)
            lte.fc.weight.fill_(20.0 / h)
            lte.fc.bias.zero_()
        return Pinned(MethodModel(classifier, ExitModules(ramps, lte=lte)).eval(), 0.5, f"exit at {k}")

    def exits(self, statistic: float, knob: float) -> bool:
        """Exit at the first layer i < N whose LTE output (estimated error) is below the threshold."""
        return statistic < knob
