"""DPBERT (dynamic planning) and its ablation DPBERT-soft, as implemented here (docs/methods.md, "DPBERT").

A planner per layer, p_i = sigmoid(w_i . s_{i-1} + b_i), decides before layer i whether it runs; s is
the state it reads (``state``: the [CLS] state, or the masked mean of the token states).
Stage 1 is the BERT-base run; stage 2 trains the planners with soft gates on a frozen backbone;
stage 3 trains backbone and planners jointly with REINFORCE (DPBERT) or keeps the soft gates
(DPBERT-soft). The target skip rate t is the speed knob: one stage-3 model per t.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from dpbert.data.encoding import stack_examples
from dpbert.methods.interface import (
    FORWARD_SHARE,
    SCORE_BATCH,
    Method,
    MethodParams,
    Pinned,
    Prediction,
    TrainContext,
    register,
)
from dpbert.model.engine import check_state_kind, per_rows, token_state
from dpbert.model.flops import head_flops
from dpbert.model.method_model import MethodModel, load_method_model, save_method_model
from dpbert.model.sources import load_classifier
from dpbert.model.training import TrainSettings, task_loss, train_loop


@dataclass
class _PathNode:
    """A decision point of an example's path tree: p_i of the state the decisions so far reach, and
    the two ways on (run layer i, skip it); after the last layer, BERT's head's output instead."""

    p: float | None = None
    run: _PathNode | None = None
    skip: _PathNode | None = None
    output: Tensor | None = None


@dataclass
class PathTree:
    """One example's paths through the planners, expanded as thresholds ask for them (``trace``)."""

    model: MethodModel
    example: dict[str, Tensor]
    root: _PathNode = field(default_factory=_PathNode)


class Planners(nn.Module):
    """One linear planner per layer (not shared), reading the state (``cls`` | ``mean``) before that layer."""

    def __init__(self, n_layers: int, hidden_size: int, init_bias: float = 2.0, state: str = "cls"):
        super().__init__()
        self.state = check_state_kind(state, "methods.dpbert.state")
        self.gates = nn.ModuleList(nn.Linear(hidden_size, 1) for _ in range(n_layers))
        for gate in self.gates:
            nn.init.normal_(gate.weight, std=0.02)
            nn.init.constant_(gate.bias, init_bias)

    def prob(self, i: int, hidden: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """p_i for every example of the batch, shape (batch,)."""
        return torch.sigmoid(self.gates[i](token_state(hidden, attention_mask, self.state))).squeeze(-1)

    def probs_for_training(self, i: int, hidden: Tensor, attention_mask: Tensor | None,
                           rate_grad: str) -> tuple[Tensor, Tensor]:
        """(p_i, the p_i the rate penalty reads): the same values; with ``rate_grad`` bias the second
        passes its gradient to the planner's bias only (``DPBertParams.rate_grad``)."""
        logit = self.gates[i](token_state(hidden, attention_mask, self.state)).squeeze(-1)
        prob = torch.sigmoid(logit)
        if rate_grad == "all":
            return prob, prob
        if rate_grad != "bias":
            raise ValueError(f"rate_grad must be one of {', '.join(RATE_GRADS)}, not '{rate_grad}'")
        bias = self.gates[i].bias[0]
        return prob, torch.sigmoid(logit.detach() - bias.detach() + bias)


@dataclass
class DPBertParams(MethodParams):
    target_rates: list[float] = field(default_factory=lambda: [0.25, 0.35, 0.45])  # t, one model each
    thresholds: list[float] = field(default_factory=lambda: [0.5])  # inference rule p_i >= threshold
    planner_init_bias: float = 2.0  # our choice: planners start near "execute every layer"
    # Ours: start each model's planners at p_i = 1 - t (bias logit(1 - t), overriding planner_init_bias), the
    # run probability its target asks for. With rate_grad bias the penalty moves a bias by about the planner
    # lr a step (Adam), so from a common start every t would end with the same biases and the same speed.
    init_at_target: bool = False
    # What a planner reads (reconstruction: the paper says "token representation as state"): cls, the
    # [CLS] state (as the early-exit papers' heads), or mean, the masked mean of the token states.
    state: str = "cls"
    # The skip rate rho in the penalty (rho - t)^2. soft (the paper's): mean of 1 - p_i. hard (ours):
    # the share of decisions p_i < 0.5 that inference takes, with the soft rate's gradient (straight
    # through). With soft, p_i = 0.55 everywhere gives rho = 0.45 while every hard decision runs the layer.
    rate_estimate: str = "soft"
    # What the rate penalty's gradient trains. all (the paper's): every planner parameter. bias (ours): the
    # planners' biases only. The rate is one number for the whole batch: its gradient is the same push on
    # every p_i, but through Adam, which moves each weight by about its lr whatever the gradient's size, a
    # push on the weights turns p_i along the mean state's direction, an input dependence that has nothing
    # to do with the task; with the hard rate and beta 20 it outweighs the task's signal (demo SST-2: the
    # hard examples ran fewer layers than the easy ones). The biases alone still move the rate, by about the
    # planner lr a step: init_at_target starts them at the target's.
    rate_grad: str = "all"
    beta: float = 1.0  # weight of the rate penalty (rho - t)^2; paper grid {0.1, 0.5, 1, 1.5}
    stage2_epochs: float = 5  # paper: 5 epochs
    stage2_lr: float = 2e-5  # planners only (backbone frozen)
    stage3_epochs: float | None = None  # None: training.finetune.epochs
    stage3_lr: float | None = None  # backbone lr in stage 3; None: training.finetune.lr
    planner_lr: float | None = None  # planners' lr in stage 3; None: same as stage3_lr
    batch_size: int | None = None  # None: training.finetune.batch_size; paper grid {8, 16, 32}
    rl_lambda: float = 20.0  # lambda, weight of the task loss in the reward; paper grid {5,20,35,50}
    cost: float = 1.0  # C, execution cost of one layer in the reward
    # our choice: charge C / N per layer (the whole path costs at most C). With C per layer the cost
    # outweighs lambda * L_task wherever a task's loss stops improving with depth, and the policy
    # collapses to skipping every layer whatever the target rate (seen on the demo's QNLI and MRPC).
    cost_normalized: bool = True
    baseline: str = "batch_mean"  # REINFORCE baseline: batch_mean | greedy (self-critical)


RATE_ESTIMATES = ("soft", "hard")
RATE_GRADS = ("all", "bias")


def rate_penalty(probs: Tensor, target: float, estimate: str = "soft", threshold: float = 0.5) -> tuple[Tensor, Tensor]:
    """Penalty (rho - t)^2 and rho. soft: rho = mean skip probability over layers and batch. hard: rho =
    the share of decisions p < threshold (what inference skips), with the soft rate's gradient (straight-
    through), so the penalty keeps pushing until the hard decisions themselves skip at the rate t."""
    soft = (1 - probs).mean()
    if estimate == "soft":
        rho = soft
    elif estimate == "hard":
        rho = (probs.detach() < threshold).float().mean() + soft - soft.detach()
    else:
        raise ValueError(f"rate_estimate must be one of {', '.join(RATE_ESTIMATES)}, not '{estimate}'")
    return (rho - target) ** 2, rho


def future_rewards(actions: Tensor, losses: Tensor, cost: float, rl_lambda: float) -> Tensor:
    """R_i = -C * sum_{j>=i} a_j - lambda * L_task, per example and layer: shape (batch, N)."""
    to_go = actions.flip(1).cumsum(1).flip(1)
    return -cost * to_go - rl_lambda * losses.view(-1, 1)


def variant_name(target: float) -> str:
    return f"t{target:g}"


def planner_reach(lr: float, epochs: float, n_train: int, batch_size: int) -> tuple[float, int]:
    """(lr x steps, steps) of a stage. Adam moves a parameter by about its lr per step at most, so lr x
    steps bounds how far a planner's bias can move from its initialisation: below ~1 the planners cannot
    leave "execute every layer" (the paper's 2e-5 for 5 epochs on RTE: 0.008)."""
    steps = max(1, int(round(epochs * -(-n_train // batch_size))))
    return lr * steps, steps


def log_reach(ctx: TrainContext, stage: str, settings: TrainSettings, n_train: int, planner_lr: float) -> None:
    """Log (a warning below 1) how far the planners can move in this stage: ``planner_reach``."""
    reach, steps = planner_reach(planner_lr, settings.epochs, n_train, settings.batch_size)
    level = logging.WARNING if reach < 1.0 else logging.INFO
    ctx.log.log(level, "%s: planner lr %g x %d steps = %.2f (how far Adam can move a planner's bias)%s", stage,
                planner_lr, steps, reach, "; too little to move it far from its init" if reach < 1.0 else "")


def check_saved_state(meta: dict, state: str, method: str, folder: Path) -> None:
    saved = meta.get("state", "cls")
    if saved != state:
        raise ValueError(f"the {method} model in {folder} was trained reading the '{saved}' state, but "
                         f"methods.{method}.state is '{state}' now; set it back, or delete the folder and "
                         "rerun to retrain.")


class _DPBertBase(Method):
    knob_name = "threshold"
    trained_knob = 0.5  # training targets the rate of "run layer i if p_i >= 0.5"; other thresholds are a second knob
    # Window search: each variant (target rate t) is swept over the threshold on the planner probability
    refinable = True
    knob_range = (0.0, 1.0)  # 0 runs every layer, 1 skips every layer (p_i < 1)
    # predict_traced shares the path prefix between thresholds but still pays for every distinct path (once
    # per job, the tree being kept): the window search proposes as few thresholds a round as for one pass per knob
    one_pass_knobs = False
    Params = DPBertParams

    def variants(self) -> list[str]:
        return [variant_name(t) for t in self.params.target_rates]

    def __init__(self, params, task):
        super().__init__(params, task)
        check_state_kind(self.params.state, f"methods.{self.name}.state")
        if self.params.rate_estimate not in RATE_ESTIMATES:
            raise ValueError(f"methods.{self.name}.rate_estimate is '{self.params.rate_estimate}'; use one of "
                             f"{', '.join(RATE_ESTIMATES)}.")
        if self.params.rate_grad not in RATE_GRADS:
            raise ValueError(f"methods.{self.name}.rate_grad is '{self.params.rate_grad}'; use one of "
                             f"{', '.join(RATE_GRADS)}.")

    def knobs(self) -> list[float]:
        return list(self.params.thresholds)

    def _penalty(self, probs: Tensor, target: float) -> Tensor:
        return rate_penalty(probs, target, self.params.rate_estimate)[0]

    def training_epochs(self, finetune: dict) -> float:
        """Per target rate: stage 2 (frozen weights, gradients still flow back through every layer to the
        planners: ~2/3 of a step) and stage 3 (a full step, plus the greedy path's forward if it is the baseline)."""
        p = self.params
        stage3 = (p.stage3_epochs or finetune.get("epochs", 3)) * (1 + (FORWARD_SHARE if p.baseline == "greedy" else 0))
        return len(p.target_rates) * (p.stage2_epochs * (1 - FORWARD_SHARE) + stage3)

    def _settings(self, ctx: TrainContext, **overrides) -> TrainSettings:
        return TrainSettings.from_training(ctx.settings, batch_size=self.params.batch_size, **overrides)

    def soft_gate_loss(self, model: MethodModel, batch: dict[str, Tensor], target: float) -> Tensor:
        """h_i = p_i T_i(h) + (1 - p_i) h on every layer; loss L_task + beta * (rho - t)^2."""
        rate_probs: list[Tensor] = []  # the p_i the penalty reads (``probs_for_training``)

        mask = batch["attention_mask"]

        def plan(i: int, hidden: Tensor) -> Tensor:
            prob, for_rate = model.extra.probs_for_training(i, hidden, mask, self.params.rate_grad)
            rate_probs.append(for_rate)
            return prob

        out = model.engine.run(batch["input_ids"], mask, batch["token_type_ids"], plan=plan)
        loss = task_loss(model.final_head(out.hidden, mask), batch["labels"], self.task.is_regression)
        return loss + self.params.beta * self._penalty(torch.stack(rate_probs, 1), target)

    def stage2(self, model: MethodModel, ctx: TrainContext, target: float) -> list[float]:
        """Planner initialisation: frozen backbone, soft gates, task loss + rate penalty."""
        p = self.params
        for param in model.backbone_parameters():
            param.requires_grad_(False)
        model.classifier.eval()  # frozen backbone: no dropout, weights untouched

        def loss_fn(batch: dict[str, Tensor], _step: int) -> Tensor:
            return self.soft_gate_loss(model, batch, target)

        settings = self._settings(ctx, epochs=p.stage2_epochs, lr=p.stage2_lr)
        log_reach(ctx, f"{self.name} stage 2", settings, len(ctx.train), settings.lr)
        losses = train_loop(
            model.extra.parameters(), loss_fn, ctx.train, settings, seed=ctx.seed,
            desc=f"{self.name} stage 2 (t={target:g}) on {self.task.name}", device=ctx.device,
            modules=[model.extra],
        )
        for param in model.backbone_parameters():
            param.requires_grad_(True)
        return losses

    def stage3_loss(self, model: MethodModel, batch: dict[str, Tensor], target: float) -> Tensor:
        raise NotImplementedError

    def stage3(self, model: MethodModel, ctx: TrainContext, target: float) -> list[float]:
        p = self.params
        base = self._settings(ctx, epochs=p.stage3_epochs, lr=p.stage3_lr)
        log_reach(ctx, f"{self.name} stage 3", base, len(ctx.train), p.planner_lr or base.lr)
        groups = [
            {"params": model.backbone_parameters(), "lr": base.lr},
            {"params": list(model.extra.parameters()), "lr": p.planner_lr or base.lr},
        ]
        return train_loop(
            groups, lambda batch, _s: self.stage3_loss(model, batch, target), ctx.train, base,
            seed=ctx.seed + 1, desc=f"{self.name} stage 3 (t={target:g}) on {self.task.name}",
            device=ctx.device, modules=[model],
        )

    def initial_bias(self, target: float) -> float:
        """The planners' initial bias for target rate t: logit(1 - t) with ``init_at_target``, else
        ``planner_init_bias``."""
        if self.params.init_at_target:
            return math.log((1 - target) / target) if 0 < target < 1 else self.params.planner_init_bias
        return self.params.planner_init_bias

    def train_variant(self, ctx: TrainContext, variant: str) -> None:
        """One target rate t: planners on the stage-1 model, stage 2 then stage 3, saved as ``t<t>``."""
        targets = {variant_name(t): t for t in self.params.target_rates}
        if variant not in targets:
            raise ValueError(f"{self.name} has no variant '{variant}'; its target rates give {list(targets)}")
        target = targets[variant]
        classifier, tokenizer = load_classifier(ctx.finetuned_dir)
        planners = Planners(classifier.config.num_hidden_layers, classifier.config.hidden_size,
                            self.initial_bias(target), self.params.state)
        model = MethodModel(classifier, planners).to(ctx.device)
        s2 = self.stage2(model, ctx, target)
        s3 = self.stage3(model, ctx, target)
        save_method_model(
            model.cpu(), tokenizer, ctx.out_dir / variant,
            {"method": self.name, "target_rate": target, "state": self.params.state,
             "stage2_final_loss": s2[-1], "stage3_final_loss": s3[-1]},
        )

    def load(self, folder: Path) -> MethodModel:
        from transformers import BertConfig

        cfg = BertConfig.from_pretrained(Path(folder) / "backbone")
        model, _tok, meta = load_method_model(folder, Planners(cfg.num_hidden_layers, cfg.hidden_size, state=self.params.state))
        check_saved_state(meta, self.params.state, self.name, folder)
        return model

    @torch.inference_mode()
    def predict_one(self, model: MethodModel, example: dict[str, Tensor], knob: float) -> Prediction:
        """a_i = [p_i >= threshold]; a skipped layer costs only its planner's linear layer."""
        mask = example["attention_mask"]
        out = model.engine.run(
            example["input_ids"], mask, example["token_type_ids"],
            plan=lambda i, hidden: bool(model.extra.prob(i, hidden, mask).item() >= knob),
        )
        return Prediction(model.final_head(out.hidden, mask)[0], out.executed)

    def overhead_flops(self, executed: list[int], n_layers: int, hidden: int, num_labels: int) -> int:
        """Every layer's planner, Linear(H, 1), decides before it whether it runs or is skipped (N x 2 H),
        then BERT's own head: a skipped layer still costs its planner."""
        return n_layers * 2 * hidden + head_flops(hidden, num_labels)

    @torch.inference_mode()
    def predict_batch(self, model: MethodModel, batch: dict[str, Tensor], knob: float,
                      exact: bool = False) -> list[Prediction]:
        """A padded batch, each row on its own path (``engine.run_rows``): before layer i the planner reads
        the rows still in the batch at once (one read of their p_i), or with ``exact`` each row alone on its
        own tokens as ``predict_one`` does (``engine.per_rows``; a skipped row pays its planner too); the
        rows with p_i >= threshold go through the layer together, the others carry their state forward.
        BERT's head then reads the batch at once (``exact``: each row alone)."""

        def plan(i: int, hidden: Tensor, mask: Tensor, rows: list[int]) -> list[bool]:
            return per_rows(lambda h, m, _rows: [p >= knob for p in model.extra.prob(i, h, m).tolist()],
                            hidden, mask, rows, exact)

        out = model.engine.run_rows(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], plan=plan)
        outputs: list = [None] * len(out.executed)
        for row, output in zip(out.rows, model.final_head_rows(out.hidden, out.mask, exact, out.rows)):
            outputs[row] = output
        return [Prediction(output, executed) for output, executed in zip(outputs, out.executed)]

    def trace(self, model: MethodModel, example: dict[str, Tensor]) -> PathTree:
        """The example's tree of paths, empty: ``predict_traced`` computes each decision prefix the first
        time a threshold takes it and keeps p_i (and the head's output at the end), not the states."""
        return PathTree(model, example)

    @torch.inference_mode()
    def predict_traced(self, trace: PathTree, knobs: Sequence[float]) -> list[Prediction]:
        """``predict_one`` at every threshold in one walk down the example's tree: thresholds whose
        decisions agree so far walk together, and a group splits where p_i falls between its thresholds.
        Where the tree already holds p_i no layer runs; where it does not, the group's state is rebuilt
        along its executed layers (the same operations as ``predict_one``, so bit-identical outputs) and
        carried down the new branch. A sweep's later rounds thus pay only for paths no earlier threshold
        took."""
        return self._walk_many([trace], knobs)[0]

    @torch.inference_mode()
    def predict_traced_many(self, traces: Sequence[PathTree], knobs: Sequence[float]) -> list[list[Prediction]]:
        """``predict_traced`` of every tree. The trees of one model and one input length (at most
        ``SCORE_BATCH``) walk down together: the layer calls their new branches need, each example's own,
        run as one unpadded batch (``_walk_many``); the planners and the head still read each example at
        batch size 1, so every p_i and output is what the example's own walk gives."""
        out: list[list[Prediction] | None] = [None] * len(traces)
        groups: dict[tuple, list[int]] = {}
        for j, tree in enumerate(traces):
            groups.setdefault((id(tree.model), tuple(tree.example["input_ids"].shape)), []).append(j)
        for idx in groups.values():
            for start in range(0, len(idx), SCORE_BATCH):
                chunk = idx[start : start + SCORE_BATCH]
                for j, predictions in zip(chunk, self._walk_many([traces[j] for j in chunk], knobs)):
                    out[j] = predictions
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def _walk_many(self, trees: list[PathTree], knobs: Sequence[float]) -> list[list[Prediction]]:
        """The walk of ``predict_traced`` for one or more trees of one model and input length at once: the
        entries (example, thresholds walking together, node, executed layers, state) of every tree advance
        layer by layer, and the states that must go through a layer go through it as one batch (one tree:
        exactly the calls of its own walk, the state rebuilt along the executed prefix from its embedding)."""
        model, engine = trees[0].model, trees[0].model.engine
        masks = [tree.example["attention_mask"] for tree in trees]
        embedded: list = []  # the batch's (embedding, mask), made on first need

        def layer(i: int, states: list[Tensor], rows: list[int]) -> list[Tensor]:
            mask = embedded[1]
            hidden = engine.layer(i, torch.cat(states) if len(states) > 1 else states[0],
                                  None if mask is None else mask[rows])
            return [hidden[k : k + 1] for k in range(len(states))]

        def rebuild(items: list[tuple[int, list[int]]]) -> list[Tensor]:
            """The states at the end of each (row, executed layers), replayed from the embedding."""
            if not embedded:
                batch = stack_examples([tree.example for tree in trees])
                embedded.extend(engine.embed(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]))
            states = [embedded[0][row : row + 1] for row, _ in items]
            for j in range(engine.n_layers):
                sel = [k for k, (_, executed) in enumerate(items) if j in executed]
                if sel:
                    for k, state in zip(sel, layer(j, [states[k] for k in sel], [items[k][0] for k in sel])):
                        states[k] = state
            return states

        def fill(entries: list[list], want) -> None:
            """Give the entries ``want`` selects, whose state is not carried, their state."""
            need = [k for k, entry in enumerate(entries) if want(entry) and entry[4] is None]
            if need:
                for k, state in zip(need, rebuild([(entries[k][0], entries[k][3]) for k in need])):
                    entries[k][4] = state

        # entries: [row, members (knob indices), node, executed layers, state or None while the tree holds the way]
        entries: list[list] = [[row, list(range(len(knobs))), tree.root, [], None] for row, tree in enumerate(trees)]
        for i in range(engine.n_layers):
            fill(entries, lambda entry: entry[2].p is None)
            split: list[list] = []
            to_run: list[int] = []
            for row, members, node, executed, state in entries:
                if node.p is None:
                    node.p = model.extra.prob(i, state, masks[row]).item()
                run = [j for j in members if node.p >= knobs[j]]
                skip = [j for j in members if not node.p >= knobs[j]]
                if run:
                    node.run = node.run or _PathNode()
                    if state is not None:
                        to_run.append(len(split))
                    split.append([row, run, node.run, [*executed, i], state])
                if skip:
                    node.skip = node.skip or _PathNode()
                    split.append([row, skip, node.skip, executed, state])
            if to_run:
                for k, state in zip(to_run, layer(i, [split[k][4] for k in to_run], [split[k][0] for k in to_run])):
                    split[k][4] = state
            entries = split
        fill(entries, lambda entry: entry[2].output is None)
        results: list[list[Prediction | None]] = [[None] * len(knobs) for _ in trees]
        for row, members, node, executed, state in entries:
            if node.output is None:
                node.output = model.final_head(state, masks[row])[0]
            for j in members:
                results[row][j] = Prediction(node.output, list(executed))
        return results  # type: ignore[return-value]

    def predict_knobs(self, model: MethodModel, example: dict[str, Tensor], knobs) -> list[Prediction]:
        """``predict_traced`` on a new tree: one pass per distinct path instead of one per threshold."""
        return self.predict_traced(self.trace(model, example), knobs)

    def planner_probs_traced(self, trace: PathTree, threshold: float) -> list[float]:
        """``planner_probs`` read off a tree (expanded along the threshold's path first if need be)."""
        self.predict_traced(trace, [threshold])
        node, probs = trace.root, []
        while node is not None and node.p is not None:
            probs.append(node.p)
            node = node.run if node.p >= threshold else node.skip
        return probs

    def pinned(self, classifier, k: int) -> Pinned:
        """Planners fixed to p = sigmoid(+-20): k evenly spaced layers run (k = N/2: layers 0, 2, 4, ...)."""
        n, h = classifier.config.num_hidden_layers, classifier.config.hidden_size
        keep = {round(j * n / k) for j in range(k)}
        planners = Planners(n, h, state=self.params.state)
        for i, gate in enumerate(planners.gates):
            nn.init.zeros_(gate.weight)
            nn.init.constant_(gate.bias, 20.0 if i in keep else -20.0)
        label = "alternate layers" if 2 * k == n else f"{k} evenly spaced layers"
        return Pinned(MethodModel(classifier, planners).eval(), 0.5, label)

    def planner_probs(self, model: MethodModel, example: dict[str, Tensor], threshold: float = 0.5) -> list[float]:
        """p_i before every layer along the hard path taken at ``threshold`` (a skipped layer has its p_i
        too): what the health report reads to tell whether the planners depend on the input. The walk
        of ``planner_probs_traced`` on a new tree (the same operations as ``predict_one``)."""
        return self.planner_probs_traced(self.trace(model, example), threshold)


@register
class DPBert(_DPBertBase):
    name = "dpbert"
    display_name = "DPBERT"

    def stage3_loss(self, model: MethodModel, batch: dict[str, Tensor], target: float) -> Tensor:
        """Hard sampled path: task loss - sum_i log pi(a_i) (R_i - b_i) + beta * (rho - t)^2."""
        p = self.params
        probs: list[Tensor] = []
        rate_probs: list[Tensor] = []
        actions: list[Tensor] = []
        ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]

        def plan(i: int, hidden: Tensor) -> Tensor:
            prob, for_rate = model.extra.probs_for_training(i, hidden, mask, p.rate_grad)
            probs.append(prob)
            rate_probs.append(for_rate)
            actions.append(torch.bernoulli(prob.detach()))
            return actions[-1]

        out = model.engine.run(ids, mask, types, plan=plan)
        losses = task_loss(model.final_head(out.hidden, mask), batch["labels"], self.task.is_regression, reduction="none")
        prob_t, act_t = torch.stack(probs, 1), torch.stack(actions, 1)
        cost = p.cost / model.n_layers if p.cost_normalized else p.cost
        rewards = future_rewards(act_t, losses.detach(), cost, p.rl_lambda)
        if p.baseline == "greedy":
            with torch.no_grad():
                greedy: list[Tensor] = []

                def plan_greedy(i: int, hidden: Tensor) -> Tensor:
                    greedy.append((model.extra.prob(i, hidden, mask) >= 0.5).float())
                    return greedy[-1]

                g_out = model.engine.run(ids, mask, types, plan=plan_greedy)
                g_loss = task_loss(model.final_head(g_out.hidden, mask), batch["labels"], self.task.is_regression, reduction="none")
                baseline = future_rewards(torch.stack(greedy, 1), g_loss, cost, p.rl_lambda)
        elif p.baseline == "batch_mean":
            baseline = rewards.mean(0, keepdim=True)
        else:
            raise ValueError(f"methods.{self.name}.baseline must be 'batch_mean' or 'greedy', not '{p.baseline}'")
        log_pi = act_t * torch.log(prob_t + 1e-8) + (1 - act_t) * torch.log(1 - prob_t + 1e-8)
        policy = -(log_pi * (rewards - baseline)).sum(1).mean()
        return losses.mean() + policy + p.beta * self._penalty(torch.stack(rate_probs, 1), target)


@register
class DPBertSoft(_DPBertBase):
    name = "dpbert_soft"
    display_name = "DPBERT-soft"

    def stage3_loss(self, model: MethodModel, batch: dict[str, Tensor], target: float) -> Tensor:
        """Soft gates kept (no sampling, no RL term): the stage-2 loss, now with the backbone trained."""
        return self.soft_gate_loss(model, batch, target)
