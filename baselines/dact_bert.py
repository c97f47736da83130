"""DACT-BERT (Eyzaguirre et al. 2021): differentiable adaptive computation time over BERT's layers.

After layer n an exit gives y_n (softmax probabilities; the raw value for regression) and a halting
unit gives the continue-probability h_n = 1 - sigmoid(gate(c_n)). With p_0 = 1, a_0 = 0:
    p_n = h_n * p_{n-1},        a_n = y_n * p_{n-1} + a_{n-1} * (1 - p_{n-1})
(the formula used literally: a_1 = y_1, and p_{n-1} is the weight the new layer's answer
gets, so a_n stays a convex combination of the y's: a probability vector for classification.)
Loss = L_task(a_N) + tau * (1 + sum_{n=1}^{N-1} p_n), all parameters trained from the fine-tuned
model. Our reading of the sum's range: p_N multiplies nothing (there is no layer N+1), so the sum
stops at N-1 and 1 + sum is the soft count of executed layers. tau is a *training* knob: one model
per tau (``variants``).

Inference (classification) halts at the first n where the top class can no longer be overtaken in
the remaining R = N - n layers: a_top * (1 - p_n)^R - a_second - p_n * R > 0. The rule has no free
parameter, so ``knobs()`` is [0.0] (ignored) for classification and the speed/accuracy trade-off is
swept through tau: the grid ``taus``, then (ours) a window search over log10(tau), one new model a
round for at most ``tau_search`` rounds (``dpbert.methods.refine.search``, on each model's layer speed-up
over the primary dev split). Each grid tau is a training job of its own; the search is one more job
(``search_job``, the folder ``search/``), its models one after another, since each next tau comes from the
models before it; ``search/variants.json`` lists every tau trained. Regression (our choice): the same accumulation on the scalar output, halting when
p_n < threshold; the thresholds are the knob. The output is log(a_n) (logits whose softmax is a_n;
same argmax) for classification and a_n for regression.

Reconstructions (ours): one halting gate shared by all layers (DACT's halting unit is one module
applied at every step), reading the state ``state`` (the raw [CLS] state c_n, or the masked token mean); exits after layers 1..N-1 are off-ramps
(own pooler copied from the fine-tuned pooler + dropout + linear), layer N's is BERT's own head.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from baselines._early_exit import (
    ExitCriterion,
    ExitModules,
    ExitParams,
    RowsSignal,
    all_exits,
    host_sigmoid,
    host_softmax,
    infer_exit,
    new_ramps,
)
from dpbert.methods.interface import Pinned, TrainContext, register
from dpbert.methods.refine import KnobSpace, search
from dpbert.model.engine import check_state_kind, token_state
from dpbert.model.method_model import META_FILE, MethodModel, save_method_model
from dpbert.model.training import task_loss, train_loop

PROB_FLOOR = 1e-12  # log(a_n) of a class with zero accumulated probability


class HaltingGate(nn.Module):
    """h_n = 1 - sigmoid(gate(s_n)): the probability of continuing past layer n, from the state s_n."""

    def __init__(self, hidden_size: int, init_bias: float = 0.0, state: str = "cls"):
        super().__init__()
        self.state = check_state_kind(state, "methods.dact_bert.state")
        self.gate = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.gate.weight, std=0.02)
        nn.init.constant_(self.gate.bias, init_bias)

    def forward(self, hidden: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return 1 - torch.sigmoid(self.gate(token_state(hidden, attention_mask, self.state))).squeeze(-1)

    def gate_logits(self, hidden: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """The gate's logit of each row, shape (rows, 1); h_n = 1 - sigmoid(logit) (``continue_host``)."""
        return F.linear(token_state(hidden, attention_mask, self.state), self.gate.weight, self.gate.bias)

    @staticmethod
    def continue_host(logit: float) -> float:
        """h_n from a gate logit read to the host (inference)."""
        return 1 - host_sigmoid(logit)

    def continue_one(self, hidden: Tensor, attention_mask: Tensor | None = None) -> float:
        """``forward`` for one example (hidden of shape (1, seq, hidden)) as a host float (inference)."""
        return self.continue_host(self.gate_logits(hidden, attention_mask).item())


def exit_answer(logits: Tensor, is_regression: bool) -> Tensor:
    """y_n: softmax probabilities (classification) or the scalar value (regression), shape (batch, k)."""
    return logits.float() if is_regression else torch.softmax(logits.float(), dim=-1)


def accumulate(y: Tensor, a_prev: Tensor, p_prev: Tensor) -> Tensor:
    """a_n = y_n * p_{n-1} + a_{n-1} * (1 - p_{n-1}); y, a: (batch, k), p: (batch,)."""
    p = p_prev.view(-1, 1)
    return y * p + a_prev * (1 - p)


def accumulate_host(y: Sequence[float], a_prev: Sequence[float], p_prev: float) -> list[float]:
    """``accumulate`` for one example on host floats (inference: no tensor op per class)."""
    return [yk * p_prev + ak * (1 - p_prev) for yk, ak in zip(y, a_prev)]


def cannot_be_overtaken(a: Sequence[float], p: float, remaining: int) -> bool:
    """Halting rule for one example: a_top * (1 - p_n)^R - a_second - p_n * R > 0."""
    top, second = sorted(a, reverse=True)[:2]
    return top * (1 - p) ** remaining - second - p * remaining > 0


def answer_output(a: Tensor, is_regression: bool) -> Tensor:
    return a if is_regression else torch.log(a.clamp_min(PROB_FLOOR))


def variant_name(tau: float) -> str:
    return f"tau{tau:g}"


VARIANTS_FILE = "variants.json"  # the taus trained (the grid's and the search's), in the search job's folder
TAU_LOG_TOL = 0.02  # taus whose log10 differ by less (about 5%) are the same training run to the search


def write_variants(out_dir: Path, taus: list[float], speedups: dict[float, float], status: str) -> None:
    """``variants.json``: the trained variants (by tau), each one's dev layer speed-up, the search status."""
    (Path(out_dir) / VARIANTS_FILE).write_text(json.dumps({
        "variants": [variant_name(t) for t in taus],
        "dev_layer_speedup": {variant_name(t): speedups[t] for t in taus},
        "tau_search": status}, indent=2))


@dataclass
class DactParams(ExitParams):
    # Ponder-cost weights, one model each. Paper grid {0, 1e-4, 5e-4, 1e-3, 5e-3}; the default is the
    # subset at the fast end (each value is one full training run).
    taus: list[float] = field(default_factory=lambda: [1e-3, 5e-3])
    # Classification (our addition): the window search of tau, a training knob. After the grid, up to this
    # many more models, each at a tau the search puts between (or, within tau_range, beyond) the trained
    # ones, until selection.window holds selection.min_points_in_window layer speed-ups on the primary dev
    # split (dpbert.methods.refine.search in log10(tau)). 0: the grid only, as the paper.
    tau_search: int = 3
    # Where the search may put a tau (both > 0); None: a decade either side of the grid's positive taus.
    tau_range: list[float] | None = None
    # Regression only (our choice): halt when p_n < threshold; ignored for classification.
    regression_thresholds: list[float] = field(default_factory=lambda: [0.5, 0.2, 0.1, 0.05, 0.01])
    gate_init_bias: float = 0.0  # our choice: h_n starts at 0.5 (plain zero-bias init)


@register
class DactBert(ExitCriterion):
    name = "dact_bert"
    display_name = "DACT-BERT"
    knob_name = "halt_threshold"  # regression only; classification's rule has no knob ([0.0], unused)
    search_job = "search"  # the tau search's job and folder (``Method.search_job``)
    # Window search: the regression threshold on p_n in [0, 1] is refinable; classification's knob is a
    # dummy and its trade-off is tau, a training-time variant, which cannot be refined at inference.
    refinable = True
    refinable_tasks = "regression"
    knob_range = (0.0, 1.0)
    needs_finetuned = True
    supports_regression = True
    Params = DactParams
    exit_unit_outputs = 1  # the halting gate, Linear(H, 1), on the state after each layer but the last

    def variants(self) -> list[str]:
        return [variant_name(t) for t in self.params.taus]

    def knobs(self) -> list[float]:
        return list(self.params.regression_thresholds) if self.task.is_regression else [0.0]

    def training_epochs(self, finetune: dict) -> float:
        """One model per tau: the grid's and, at most, the search's (classification)."""
        return super().training_epochs(finetune) * (len(self.params.taus) + self._search_models())

    def loss(self, model: MethodModel, batch: dict[str, Tensor], tau: float) -> Tensor:
        """L_task(a_N) + tau * (1 + sum_{n<N} p_n), from one pass over all layers."""
        reg = self.task.is_regression
        exits = all_exits(model, batch)
        n_layers = len(exits.logits)
        a = torch.zeros_like(exits.logits[0], dtype=torch.float32)
        p_prev = torch.ones(a.shape[0], device=a.device)
        ponder = torch.ones_like(p_prev)
        for n, logits in enumerate(exits.logits):
            a = accumulate(exit_answer(logits, reg), a, p_prev)
            if n < n_layers - 1:
                p_prev = model.extra.halting(exits.states[n], batch["attention_mask"]) * p_prev
                ponder = ponder + p_prev
        return task_loss(answer_output(a, reg), batch["labels"], reg) + tau * ponder.mean()

    def train_variant(self, ctx: TrainContext, variant: str) -> None:
        """A grid tau's model; or, for the search job (``search_job``), the window search of tau over the grid's
        trained models (classification, ``tau_search``) into ``search/``, with ``variants.json`` there listing
        every tau trained and the search's outcome."""
        p = self.params
        grid = {variant_name(t): t for t in p.taus}
        if variant in grid:
            self._train_one(ctx, grid[variant], ctx.out_dir / variant)
            return
        if variant != self.search_job:
            raise ValueError(f"DACT-BERT has no variant '{variant}'; its training jobs are {self.training_jobs()}")
        folder = ctx.out_dir / variant
        folder.mkdir(parents=True, exist_ok=True)
        speedups = {t: self._grid_speedup(ctx.trained_dir() / name) for name, t in grid.items()}
        if self.task.is_regression:
            status = "off: regression (the sweep searches regression_thresholds)"
        elif p.tau_search <= 0:
            status = "off: tau_search is 0"
        elif ctx.selection is None:
            status = "off: no selection settings"
        else:
            status = self._search_tau(ctx, speedups, folder)
        ctx.log.info("DACT-BERT on %s: layer speed-up by tau %s; tau search: %s", self.task.name,
                     {f"{t:g}": round(s, 3) for t, s in sorted(speedups.items())}, status)
        write_variants(folder, sorted(speedups), speedups, status)

    @staticmethod
    def _grid_speedup(folder: Path) -> float:
        """The dev layer speed-up a grid tau's job recorded with its model."""
        meta = folder / META_FILE
        try:
            return float(json.loads(meta.read_text())["dev_layer_speedup"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"DACT-BERT's tau search reads each grid model's dev layer speed-up from {meta}, which "
                             f"is missing or unreadable ({type(e).__name__}: {e}); delete {folder} and rerun the "
                             "workflow to retrain that tau") from e

    def variant_dir(self, model_dir: Path, variant: str) -> Path:
        """A grid tau's own folder, else the search job's folder's (``search/<tau>``)."""
        own = Path(model_dir) / variant
        return own if variant in self.variants() or not (Path(model_dir) / self.search_job).is_dir() else \
            Path(model_dir) / self.search_job / variant

    def job_training_epochs(self, finetune: dict, job: str) -> float:
        """One model per grid job; at most ``tau_search`` models in the search job (none for regression)."""
        one = super().training_epochs(finetune)  # one model's fine-tuning
        if job == self.search_job:
            return one * self._search_models()
        return one if job in self.variants() else 0.0

    def _search_models(self) -> int:
        return 0 if self.task.is_regression else max(self.params.tau_search, 0)

    def _train_one(self, ctx: TrainContext, tau: float, folder: Path) -> float:
        """Train and save the model of one tau in ``folder``; its layer speed-up on the primary dev split (nan:
        regression)."""
        p = self.params
        classifier, tokenizer = self.starting_model(ctx)
        extra = ExitModules(self.new_ramps(classifier, ctx),
                            halting=HaltingGate(classifier.config.hidden_size, p.gate_init_bias, p.state))
        model = MethodModel(classifier, extra).to(ctx.device)
        settings = p.settings(ctx)
        losses = train_loop(
            self.param_groups(model, settings.lr), lambda batch, _s: self.loss(model, batch, tau),
            ctx.train, settings,
            seed=ctx.seed, desc=f"DACT-BERT (tau={tau:g}) on {self.task.name}", device=ctx.device,
            modules=[model],
        )
        speedup = float("nan") if self.task.is_regression else self.dev_layer_speedup(model.eval(), ctx)
        save_method_model(model.cpu(), tokenizer, folder,
                          self.meta(tau=tau, settings=settings.as_dict(), head_lr=p.head_lr,
                                    final_loss=losses[-1], dev_layer_speedup=speedup))
        return speedup

    def dev_layer_speedup(self, model: MethodModel, ctx: TrainContext) -> float:
        """N / mean executed layers over the primary dev split at batch size 1 (labels unused)."""
        layers = sum(len(self.predict_one(model, ctx.dev.example(i, ctx.device), 0.0).executed)
                     for i in range(len(ctx.dev)))
        return model.n_layers * len(ctx.dev) / layers

    def _search_tau(self, ctx: TrainContext, speedups: dict[float, float], folder: Path) -> str:
        """The window search over log10(tau), one model a round, each saved in ``folder``; adds the new taus
        to ``speedups``."""
        positive = sorted(t for t in speedups if t > 0)
        if not positive:
            return "off: no positive tau in the grid"
        lo, hi = self.params.tau_range or (positive[0] / 10, positive[-1] * 10)
        selection = ctx.selection or {}
        window = (float(selection["window"][0]), float(selection["window"][1]))
        # a larger ponder cost halts earlier: beyond the grid, search only on the side towards the window
        if all(speedups[t] < window[0] for t in positive):
            lo = max(lo, positive[0])
        elif all(speedups[t] > window[1] for t in positive):
            hi = min(hi, positive[-1])
        space = KnobSpace(knob_range=(math.log10(lo), math.log10(hi)), tol=TAU_LOG_TOL)

        def score(logs: list[float]) -> list[float]:
            out = []
            for x in logs:
                tau = float(f"{10 ** x:.3g}")
                speedups[tau] = speedups.get(tau) or self._train_one(ctx, tau, folder / variant_name(tau))
                out.append(speedups[tau])
            return out

        grid = {math.log10(t): speedups[t] for t in positive}
        result = search(grid, score, window, int(selection.get("min_points_in_window", 3)), space,
                        max_rounds=self.params.tau_search, max_new=1)
        return result.status

    def trained_variants(self, model_dir: Path) -> list[str]:
        record = self._variants_record(model_dir)
        return self.variants() if record is None else list(record["variants"])

    def training_search_status(self, model_dir: Path) -> str | None:
        record = self._variants_record(model_dir)
        return None if record is None else f"tau {record['tau_search']}"

    def _variants_record(self, model_dir: Path) -> dict | None:
        record = Path(model_dir) / self.search_job / VARIANTS_FILE
        if not record.exists():
            record = Path(model_dir) / VARIANTS_FILE  # where one job that trained every tau wrote it
        if not record.exists():
            return None
        try:
            data = json.loads(record.read_text())
            if not isinstance(data["variants"], list) or not isinstance(data["tau_search"], str):
                raise TypeError("'variants' must be a list and 'tau_search' a string")
            return data
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"DACT-BERT's variant record {record} is unreadable ({e}): delete the model "
                             f"folder {model_dir} and rerun the job to retrain it") from e

    def load(self, folder: Path) -> MethodModel:
        return self.load_exit(folder, lambda ramps, cfg: ExitModules(
            ramps, halting=HaltingGate(cfg.hidden_size, state=self.params.state)))

    def exit_rows(self, model: MethodModel, n_rows: int) -> RowsSignal:
        """The accumulated answer a_n; the statistic is p_n (regression) or whether the top class can
        no longer be overtaken (classification: 1.0 or 0.0). a_n and p_n are kept per batch row; the rows'
        exit logits and halting-gate logits reach the host in one read."""
        reg = self.task.is_regression
        last = model.n_layers - 1
        acc: list = [None] * n_rows  # a_0 = 0 (set at the first layer, where k is known)
        prob = [1.0] * n_rows  # p_0 = 1

        def signal(i: int, hidden: Tensor, mask: Tensor, rows: list[int]) -> tuple[list, list[float | None]]:
            logits = infer_exit(model, i, hidden, mask)[1]
            if i < last:
                gate = model.extra.halting.gate_logits(hidden, mask)
                read = torch.cat([logits, gate.to(logits.dtype)], 1).tolist()
            else:
                read = logits.tolist()
            answers, statistics = [], []
            for row, values in zip(rows, read):
                values, gate_logit = (values[:-1], values[-1]) if i < last else (values, None)
                y = values if reg else host_softmax(values)
                acc[row] = accumulate_host(y, [0.0] * len(y) if acc[row] is None else acc[row], prob[row])
                answers.append(acc[row])
                if i == last:
                    statistics.append(None)
                    continue
                prob[row] = p_n = model.extra.halting.continue_host(gate_logit) * prob[row]
                statistics.append(p_n if reg else float(cannot_be_overtaken(acc[row], p_n, last - i)))
            return answers, statistics

        return signal

    def exits(self, statistic: float, knob: float) -> bool:
        return statistic < knob if self.task.is_regression else statistic > 0

    def pinned(self, classifier, k: int) -> Pinned:
        """Every exit certain of one class (a = [1, 0]) and a constant continue-probability h, so p_n = h^n;
        h is chosen so that (1 - p_n)^(N - n) > p_n (N - n), the halting rule, first holds at n = k."""
        n_layers, hidden = classifier.config.num_hidden_layers, classifier.config.hidden_size

        def halts(h: float, n: int) -> bool:
            return (1 - h ** n) ** (n_layers - n) - h ** n * (n_layers - n) > 0

        lo, hi = 0.0, 1.0  # halts(h, k) holds for small h; find where it stops holding, and step below it
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if halts(mid, k) else (lo, mid)
        h = lo * (1 - 1e-6)
        if not (halts(h, k) and not halts(h, k - 1)):
            raise ValueError(f"DACT-BERT cannot be pinned to halt at layer {k} of {n_layers}")
        ramps = new_ramps(classifier)
        gate = HaltingGate(hidden)
        with torch.no_grad():
            for lin in [*ramps.classifiers, classifier.classifier]:
                lin.weight.zero_()
                lin.bias.copy_(torch.tensor([30.0, -30.0]))
            gate.gate.weight.zero_()
            gate.gate.bias.fill_(float(torch.logit(torch.tensor(1 - h, dtype=torch.float64))))
        return Pinned(MethodModel(classifier, ExitModules(ramps, halting=gate)).eval(), 0.0, f"halts at {k}")

    def final_output(self, answer: list[float]) -> Tensor:
        return answer_output(torch.tensor(answer, dtype=torch.float32), self.task.is_regression)
