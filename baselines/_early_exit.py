"""Shared pieces of the early-exit baselines (DeeBERT, BERxiT, PABEE, DACT-BERT).

Every one of them puts a classifier ("off-ramp") after layers 1..N-1 and uses BERT's own head
(pooler -> dropout -> classifier of the fine-tuned model) after layer N, so the deepest exit is
exactly the stage-1 model. Training reads all layers' states from one ``engine.run(keep_states=True)``;
inference asks for the current layer's exit inside the engine's ``after`` callback, so no layer
after the exit is ever computed.

``ExitCriterion`` is what the four share at inference: a per-layer *exit statistic* (entropy, LTE
error, patience counter, halting probability) whose value does not depend on the knob, and a rule
"exit when the statistic says so at this knob". Each method writes its signal once, for a sub-batch
(``exit_rows``: the rows still in a batch after layer i -> each row's answer and statistic, one host read
for all of them, the per-row state kept by batch row); ``exit_signal`` is that function on one example.
``predict_one`` applies the rule inside the layer loop (what is timed); ``trace`` runs the layers once and ``predict_traced`` reads every knob's exit off
the same statistics (what scores a sweep: ``predict_knobs`` is the two), which gives bit-identical
predictions with one pass per example; the sweep keeps the traces, so the window search's rounds and the
health diagnostics run no layer again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from dpbert.data.encoding import stack_examples
from dpbert.methods.interface import (
    FinetuneParams,
    Method,
    Prediction,
    TrainContext,
)
from dpbert.model.engine import check_state_kind, cls_state, per_rows, token_state
from dpbert.model.flops import head_flops
from dpbert.model.method_model import MethodModel, load_method_model
from dpbert.model.sources import build_start, load_classifier, start_at_targets

# (layer i, hidden state after it) -> (the answer if the example exits at i: what ``final_output`` turns
# into the prediction, the exit's (1, k) logits or DACT's accumulated answer on host floats; the exit
# statistic of layer i, or None at the last layer, where the loop ends anyway)
ExitSignal = Callable[[int, Tensor], "tuple[Tensor | list[float], float | None]"]
# ``exit_rows``: (layer i, a sub-batch's hidden (rows, width, H) after it, its 0/1 mask, the batch rows it
# holds) -> (each row's answer, each row's statistic or None), in the sub-batch's order
RowsSignal = Callable[[int, Tensor, Tensor, list[int]], "tuple[list, list[float | None]]"]


@dataclass
class ExitParams(FinetuneParams):
    """What every early-exit method's config entry shares (its own knob grid comes on top)."""

    # lr of the modules the method adds (off-ramps, LTE unit, halting gate); None: lr (the papers').
    # Ours, for short budgets: a freshly initialised head trained at a fine-tuning lr for a few dozen
    # steps barely leaves its initialisation (Adam moves a weight by about lr per step).
    head_lr: float | None = None
    # What an off-ramp (and DACT's halting gate) reads after layers 1..N-1: cls (the [CLS] state, the
    # papers') or mean (masked token mean; see dpbert.model.engine.STATE_KINDS). Layer N's exit is always BERT's head.
    state: str = "cls"


class Pooler(nn.Module):
    """BERT's pooler (dense + tanh), one per off-ramp (DeeBERT, BERxiT, DACT), on the state it is given."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.activation = nn.Tanh()

    def forward(self, state: Tensor) -> Tensor:
        return self.activation(self.dense(state))


class OffRamps(nn.Module):
    """Exits after layers 0..N-2 (0-based): [own pooler] + dropout + linear classifier.

    ``own_poolers=False`` gives PABEE's layout: every exit reads the backbone's one (shared,
    trained) pooler and has only its own linear classifier. Layer N-1 has no ramp: it is BERT's head.
    """

    def __init__(self, n_layers: int, hidden_size: int, num_labels: int, dropout: float = 0.1,
                 own_poolers: bool = True, initializer_range: float = 0.02, state: str = "cls"):
        super().__init__()
        self.state = check_state_kind(state, "an early-exit method's state")
        n = max(0, n_layers - 1)
        self.poolers = nn.ModuleList(Pooler(hidden_size) for _ in range(n)) if own_poolers else None
        self.classifiers = nn.ModuleList(nn.Linear(hidden_size, num_labels) for _ in range(n))
        self.dropout = nn.Dropout(dropout)
        for lin in self.classifiers:  # BERT's own initialisation of a classification head
            nn.init.normal_(lin.weight, std=initializer_range)
            nn.init.zeros_(lin.bias)
        self._transposed: dict[int, tuple[Tensor, tuple, Tensor]] = {}  # inference copies, see ``transposed``

    @property
    def n_ramps(self) -> int:
        return len(self.classifiers)

    def transposed(self, weight: Tensor) -> Tensor:
        """``weight.T`` as a contiguous (in, out) copy, kept for inference and rebuilt whenever the weight
        changes: another tensor, new storage or device (``.to``), or an in-place update (its version
        counter). Read from memory after a layer has evicted it, a 768x768 [CLS] @ W^T is ~25% faster on
        CPU with this layout than through F.linear's transposed view of W (265 -> 200 us measured), and
        that product is most of a decision's cost."""
        try:
            version = weight._version
        except RuntimeError:  # an inference tensor has no version counter (nor can it change outside inference mode)
            version = None
        stamp = (weight.data_ptr(), version, weight.device, weight.dtype, weight.shape)
        cached = self._transposed.get(id(weight))
        # the entry holds the weight itself, so its id and storage cannot be reused while the entry lives
        if cached is None or cached[0] is not weight or cached[1] != stamp:
            cached = (weight, stamp, weight.detach().t().contiguous())
            self._transposed[id(weight)] = cached
        return cached[2]

    def init_poolers_from(self, pooler: nn.Module | None) -> None:
        """DeeBERT: each off-ramp's pooler starts as a copy of the (fine-tuned) model's pooler."""
        if self.poolers is None or pooler is None:
            return
        state = {k: v.detach().clone() for k, v in pooler.state_dict().items()}
        for p in self.poolers:
            p.load_state_dict(state)


class ExitModules(nn.Module):
    """A method's ``extra``: the off-ramps plus named helpers (BERxiT's LTE unit, DACT's gate)."""

    def __init__(self, ramps: OffRamps, **others: nn.Module):
        super().__init__()
        self.ramps = ramps
        for name, module in others.items():
            self.add_module(name, module)


def new_ramps(classifier: nn.Module, own_poolers: bool = True, state: str = "cls",
              targets: Tensor | None = None) -> OffRamps:
    """Off-ramps shaped for a ``BertForSequenceClassification``, poolers copied from its pooler;
    ``targets``: a regression task's training targets, where the ramps' heads start (``start_at_targets``)."""
    cfg = classifier.config
    ramps = OffRamps(cfg.num_hidden_layers, cfg.hidden_size, cfg.num_labels, _dropout(cfg), own_poolers,
                     cfg.initializer_range, state)
    ramps.init_poolers_from(classifier.bert.pooler)
    start_at_targets(list(ramps.classifiers), targets)
    return ramps


def _dropout(cfg) -> float:
    p = getattr(cfg, "classifier_dropout", None)
    return cfg.hidden_dropout_prob if p is None else p


def load_exit_model(folder: Path, build: Callable[[OffRamps, object], ExitModules],
                    own_poolers: bool = True, state: str = "cls") -> MethodModel:
    """Load a saved early-exit model: ``build(ramps, cfg)`` makes an empty extra of the right shape."""
    from transformers import BertConfig

    cfg = BertConfig.from_pretrained(Path(folder) / "backbone")
    ramps = OffRamps(cfg.num_hidden_layers, cfg.hidden_size, cfg.num_labels, _dropout(cfg), own_poolers,
                     cfg.initializer_range, state)
    model, _tokenizer, meta = load_method_model(folder, build(ramps, cfg))
    saved = meta.get("state", "cls")
    if saved != state:
        raise ValueError(f"the early-exit model in {folder} was trained reading the '{saved}' state, but the "
                         f"config's state is '{state}' now; set it back, or delete the folder and rerun.")
    return model


def exit_pooled(model: MethodModel, i: int, hidden: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    """The pooled representation exit ``i`` classifies (the backbone's pooler on [CLS] at the last layer)."""
    ramps: OffRamps = model.extra.ramps
    if i >= ramps.n_ramps:
        return model.engine.pool(hidden, attention_mask)
    state = token_state(hidden, attention_mask, ramps.state)
    if ramps.poolers is None:
        return model.engine.pool_state(state)
    return ramps.poolers[i](state)


def exit_logits_from_pooled(model: MethodModel, i: int, pooled: Tensor) -> Tensor:
    ramps: OffRamps = model.extra.ramps
    if i >= ramps.n_ramps:
        return model.classifier.classifier(model.classifier.dropout(pooled))  # == model.final_head
    return ramps.classifiers[i](ramps.dropout(pooled))


def infer_exit(model: MethodModel, i: int, hidden: Tensor, attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(pooled, logits) of exit ``i`` at inference: ``exit_pooled`` and ``exit_logits_from_pooled`` in
    eval mode, computed faster (see ``OffRamps.transposed``; dropout is the identity in eval mode).
    Layer N's exit is BERT's own head run exactly as BERT-base runs it, so a prediction that never exits
    equals BERT-base's bit for bit; a model in training mode takes the module path (dropout active)."""
    ramps: OffRamps = model.extra.ramps
    if model.training or i >= ramps.n_ramps:
        pooled = exit_pooled(model, i, hidden, attention_mask)
        return pooled, exit_logits_from_pooled(model, i, pooled)
    pooler = ramps.poolers[i] if ramps.poolers is not None else model.classifier.bert.pooler
    state = cls_state(hidden) if ramps.state == "cls" else token_state(hidden, attention_mask, ramps.state)
    if pooler is None:  # a backbone without a pooler: the head reads the state itself
        pooled = state
    else:
        dense = pooler.dense
        pooled = pooler.activation(torch.addmm(dense.bias, state, ramps.transposed(dense.weight)))
    lin = ramps.classifiers[i]
    return pooled, F.linear(pooled, lin.weight, lin.bias)


def host_sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def host_linear1(linear: nn.Linear, x: Tensor) -> float:
    """A (1, hidden) -> (1, 1) linear unit's output as a host float: one op and one read."""
    return F.linear(x, linear.weight, linear.bias).item()


def host_values(logits: Tensor) -> list[float]:
    """One example's logits (shape (1, k)) on the host: the decision's one device-to-host read."""
    return logits.view(-1).tolist()


def row_answers(logits: Tensor) -> list[Tensor]:
    """Each row's (1, k) logits of a (rows, k) tensor, as views (the whole tensor for one row)."""
    return [logits] if logits.shape[0] == 1 else list(logits.split(1))


def host_softmax(values: Sequence[float]) -> list[float]:
    top = max(values)
    z = [math.exp(v - top) for v in values]
    total = sum(z)
    return [v / total for v in z]


def host_entropy(values: Sequence[float]) -> float:
    """Entropy (nats) of softmax(logits) of one example, on host floats (DeeBERT's exit criterion; no
    tensor ops: ~15 us less a decision)."""
    return -sum(p * math.log(p) for p in host_softmax(values) if p > 0)


def host_argmax(values: Sequence[float]) -> int:
    """The first index of the maximum, as ``torch.argmax``."""
    return max(range(len(values)), key=values.__getitem__)


@dataclass
class ExitTrace:
    """One example's full pass (``ExitCriterion.trace``): what every knob's exit is read off."""

    answers: list  # per layer: the exit's answer (``ExitSignal``), what ``final_output`` turns into the prediction
    statistics: list[float | None]  # per layer: the exit statistic (None at the last layer)
    executed: list[int]  # every layer, 0-based


@dataclass
class AllExits:
    pooled: list[Tensor]  # per layer, (batch, hidden)
    logits: list[Tensor]  # per layer, (batch, num_labels)
    states: list[Tensor]  # per layer, (batch, seq, hidden)


def all_exits(model: MethodModel, batch: dict[str, Tensor], *, backbone_grad: bool = True) -> AllExits:
    """Every layer's exit in one pass of the engine (training); ``backbone_grad=False`` for a frozen backbone."""
    with torch.set_grad_enabled(backbone_grad and torch.is_grad_enabled()):
        out = model.engine.run(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                               keep_states=True)
    pooled = [exit_pooled(model, i, h, batch["attention_mask"]) for i, h in enumerate(out.states)]
    logits = [exit_logits_from_pooled(model, i, p) for i, p in enumerate(pooled)]
    return AllExits(pooled, logits, out.states)


def check_classification(method_name: str, task) -> None:
    if task.is_regression:
        raise ValueError(
            f"{method_name} has no regression exit (supports_regression is False), but the task "
            f"{task.name} is a regression task; remove it from this method's tasks in the config."
        )


class ExitCriterion(Method):
    """An early-exit method: one statistic per layer, and a knob-dependent rule that reads it."""

    Params = ExitParams

    def __init__(self, params, task):
        super().__init__(params, task)
        check_state_kind(self.params.state, f"methods.{self.name}.state")

    def starting_model(self, ctx: TrainContext):
        """(classifier, tokenizer) to train from: the stage-1 model if the method ``needs_finetuned``, else
        the pretrained backbone with a new task head (as BERT-base starts)."""
        if self.needs_finetuned:
            return load_classifier(ctx.finetuned_dir)
        return build_start(ctx.model_source, self.task.num_labels, ctx.seed, ctx.regression_targets())

    def new_ramps(self, classifier: nn.Module, ctx: TrainContext, own_poolers: bool = True) -> OffRamps:
        """New off-ramps for training; on a regression task their heads start at the targets' mean and scale."""
        return new_ramps(classifier, own_poolers, self.params.state, ctx.regression_targets())

    def load_exit(self, folder: Path, build: Callable[[OffRamps, object], ExitModules],
                  own_poolers: bool = True) -> MethodModel:
        return load_exit_model(folder, build, own_poolers, self.params.state)

    def param_groups(self, model: MethodModel, backbone_lr: float) -> list[dict]:
        """The backbone at the training lr, the method's new modules at ``head_lr`` (default: the same)."""
        head_lr = self.params.head_lr or backbone_lr
        return [{"params": model.backbone_parameters(), "lr": backbone_lr},
                {"params": list(model.extra.parameters()), "lr": head_lr}]

    def meta(self, **values) -> dict:
        return {"method": self.name, "state": self.params.state, **values}

    def exit_rows(self, model: MethodModel, n_rows: int) -> RowsSignal:
        """A fresh function for a batch of ``n_rows`` (``RowsSignal``): after layer i, the answer and exit
        statistic of every row of a sub-batch at once (one read to the host for all of them). State kept
        across layers (PABEE's counter, DACT's accumulated answer) is kept per batch row, so a row's values
        never depend on the other rows; on a sub-batch of one row trimmed to its tokens they are exactly
        ``predict_one``'s (the one implementation behind ``exit_signal`` and both modes of ``predict_batch``)."""
        raise NotImplementedError

    def exit_signal(self, model: MethodModel, example: dict[str, Tensor]) -> ExitSignal:
        """A fresh per-example function (``exit_rows`` on one example): (layer i, its hidden state after
        the layer) -> (the answer, the statistic)."""
        rows = self.exit_rows(model, 1)
        mask = example["attention_mask"]

        def signal(i: int, hidden: Tensor):
            answers, statistics = rows(i, hidden, mask, [0])
            return answers[0], statistics[0]

        return signal

    def exits(self, statistic: float, knob: float) -> bool:
        """Whether a layer before the last exits at this knob, given its statistic."""
        raise NotImplementedError

    def final_output(self, answer) -> Tensor:
        """The prediction's output from the exiting layer's answer, shape (1, k) -> (k,)."""
        return answer[0]

    # FLOPs of the unit that reads each exit after a layer but the last (BERxiT's LTE unit, DACT's halting
    # gate): a linear layer to one value, 2 H; 0 where the exit statistic is read off the ramp's logits.
    exit_unit_outputs: ClassVar[int] = 0

    def overhead_flops(self, executed: list[int], n_layers: int, hidden: int, num_labels: int) -> int:
        """What ``predict_one`` computes besides the layers: after every executed layer i < N an off-ramp
        (a pooler, the ramp's own or, PABEE, the backbone's shared one computed again on this layer's
        state: 2 H^2; and its classifier, 2 H k) plus the exit unit (``exit_unit_outputs``); after layer
        N, BERT's own head and no exit unit (the loop ends there anyway)."""
        last = n_layers - 1
        ramp = head_flops(hidden, num_labels) + 2 * hidden * self.exit_unit_outputs
        return sum(head_flops(hidden, num_labels) if i == last else ramp for i in executed)

    @torch.inference_mode()
    def predict_one(self, model: MethodModel, example: dict[str, Tensor], knob: float) -> Prediction:
        signal = self.exit_signal(model, example)
        seen: dict[str, Tensor] = {}

        def after(i: int, hidden: Tensor) -> bool:
            seen["answer"], statistic = signal(i, hidden)
            return statistic is not None and self.exits(statistic, knob)

        out = model.engine.run(example["input_ids"], example["attention_mask"], example["token_type_ids"],
                               after=after)
        return Prediction(self.final_output(seen["answer"]), out.executed)

    @torch.inference_mode()
    def predict_batch(self, model: MethodModel, batch: dict[str, Tensor], knob: float,
                      exact: bool = False) -> list[Prediction]:
        """A padded batch through the layers together (``engine.run_rows``): after each layer the rows
        still in the batch ask the exit signal (``exit_rows``, their state carried per row: PABEE's counter,
        DACT's accumulated answer and halting product) once on the sub-batch, or with ``exact`` row by row
        on each row's own tokens as ``predict_one`` does (``engine.per_rows``); the rows whose test fires
        leave with their answer, and the rest continue as a smaller batch trimmed to their longest row."""
        signal = self.exit_rows(model, batch["input_ids"].shape[0])
        answers: list = [None] * batch["input_ids"].shape[0]

        def leave(i: int, hidden: Tensor, mask: Tensor, rows: list[int]) -> list[bool]:
            def decide(h: Tensor, m: Tensor, rs: list[int]) -> list[bool]:
                got, statistics = signal(i, h, m, rs)
                for row, answer in zip(rs, got):
                    answers[row] = answer
                return [s is not None and self.exits(s, knob) for s in statistics]

            return per_rows(decide, hidden, mask, rows, exact)

        out = model.engine.run_rows(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], leave=leave)
        return [Prediction(self.final_output(answer), executed) for answer, executed in zip(answers, out.executed)]

    @torch.inference_mode()
    def trace(self, model: MethodModel, example: dict[str, Tensor]) -> ExitTrace:
        """Every layer once: each layer's exit answer and statistic (no exit is taken)."""
        signal = self.exit_signal(model, example)
        answers: list = []
        statistics: list[float | None] = []

        def after(i: int, hidden: Tensor) -> bool:
            answer, statistic = signal(i, hidden)
            answers.append(answer)
            statistics.append(statistic)
            return False

        out = model.engine.run(example["input_ids"], example["attention_mask"], example["token_type_ids"],
                               after=after)
        return ExitTrace(answers, statistics, list(out.executed))

    @torch.inference_mode()
    def trace_many(self, model: MethodModel, examples: Sequence[dict[str, Tensor]]) -> list[ExitTrace]:
        """``trace`` of equal-length examples with their layers run as one unpadded batch; each example's
        exit signal still reads its own row at batch size 1, so every answer and statistic is what its own
        ``trace`` gives (the rows' states are bit-identical on CPU: tests/run/test_sweep.py)."""
        if len(examples) == 1:
            return [self.trace(model, examples[0])]
        batch = stack_examples(list(examples))
        signals = [self.exit_signal(model, example) for example in examples]
        answers: list[list] = [[] for _ in examples]
        statistics: list[list[float | None]] = [[] for _ in examples]

        def after(i: int, hidden: Tensor) -> bool:
            for row, signal in enumerate(signals):
                answer, statistic = signal(i, hidden[row : row + 1])
                answers[row].append(answer)
                statistics[row].append(statistic)
            return False

        out = model.engine.run(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], after=after)
        return [ExitTrace(a, s, list(out.executed)) for a, s in zip(answers, statistics)]

    def predict_traced(self, trace: ExitTrace, knobs: Sequence[float]) -> list[Prediction]:
        """Each knob's exit: the first layer whose statistic says exit, else the last."""
        predictions = []
        for knob in knobs:
            stop = next((j for j, s in enumerate(trace.statistics) if s is not None and self.exits(s, knob)),
                        len(trace.answers) - 1)
            predictions.append(Prediction(self.final_output(trace.answers[stop]), trace.executed[: stop + 1]))
        return predictions

    @torch.inference_mode()
    def predict_knobs(self, model: MethodModel, example: dict[str, Tensor], knobs: Sequence[float]) -> list[Prediction]:
        """Every layer once (``trace``), then each knob's exit off it (``predict_traced``)."""
        return self.predict_traced(self.trace(model, example), knobs)

    def exit_answers(self, trace: ExitTrace) -> list[Tensor]:
        """Every layer's exit output (what ``final_output`` makes of its answer) from a ``trace``: the
        prediction of an example that exits after layer 1, 2, ..., N (the health diagnostics')."""
        return [self.final_output(a) for a in trace.answers]
