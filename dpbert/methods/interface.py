"""The method interface: one module per method, one config entry, nothing else.

A method declares its knob, whether it needs the fine-tuned backbone (stage 1), how it trains its
variants, and how it predicts one example at batch size 1 with a knob value, returning the layers it
executed. The Snakemake DAG, the sweeps and the tables are generic over this interface.
"""

from __future__ import annotations

import difflib
import logging
import math
import numbers
import re
import types
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

from torch import Tensor

from dpbert.data.encoding import EncodedSplit, row_examples
from dpbert.data.tasks import TaskSpec
from dpbert.model.flops import head_flops
from dpbert.model.training import TrainSettings

_REGISTRY: dict[str, type[Method]] = {}

# For planning a run (dpbert.tools.plan): a forward pass without a backward costs about a third of a training step.
FORWARD_SHARE = 1 / 3

SCORE_BATCH = 64
"""At most this many equal-length examples share a layer call when a sweep scores them (``Method.trace_many``)."""


class MethodConfigError(ValueError):
    pass


@dataclass
class TrainContext:
    """Everything a method's ``train`` needs; methods read, never build, these."""

    task: TaskSpec
    train: EncodedSplit
    dev: EncodedSplit  # primary dev split: logging, and a training-time knob's window search (never its labels)
    finetuned_dir: Path | None  # stage-1 BERT-base classifier folder: models.load_classifier(it); None if unused
    out_dir: Path
    seed: int
    settings: dict[str, Any]  # the `training:` section of the config
    model_source: Any  # dpbert.model.sources.ModelSource
    device: str
    log: logging.Logger
    # the config's `selection:` (window, min_points_in_window) for a method's search job (``Method.search_job``), so
    # that a changed window reruns that job only; None for every other training job
    selection: dict[str, Any] | None = None
    # The folder of the method's trained variants as the search job finds them (``Method.search_job``: the grid's,
    # each written by its own job); None: ``out_dir`` (every job trains in this one process, ``Method.train``).
    variants_dir: Path | None = None

    def trained_dir(self) -> Path:
        """Where this run's earlier training jobs saved their variants (``variants_dir``, else ``out_dir``)."""
        return self.variants_dir if self.variants_dir is not None else self.out_dir

    def regression_targets(self) -> Tensor | None:
        """The training targets a new regression head starts from (``sources.start_at_targets``); None
        on a classification task."""
        return self.train.label_tensor() if self.task.is_regression else None


@dataclass
class Prediction:
    output: Tensor  # logits (num_labels,) or the regression value (1,)
    executed: list[int]  # 0-based indices of the backbone layers that ran


@dataclass
class Pinned:
    """A model of a method whose decisions run the same ``k`` layers on every input, at ``knob``
    (``Method.pinned``): what the speed-up bench times to ask whether k of N layers cost k/N."""

    model: Any  # a MethodModel
    knob: float
    label: str  # how the bench names the case, e.g. "exit at 6"
    name: str | None = None  # the model's name in the bench's case; None: the method's display_name


@dataclass
class MethodParams:
    """Base of every method's parameters (its config entry); unknown keys are an error."""


DEPTH_METADATA = "depth"
"""Field metadata key of a parameter that names layers of the backbone (``depth_field``)."""


def depth_field(lowest: int, highest_offset: int, what: str, **kwargs: Any):
    """A dataclass field holding layer counts or indices of the backbone: the config check refuses
    values outside ``lowest``..N + ``highest_offset`` for the configured backbone's N layers."""
    metadata = {DEPTH_METADATA: (lowest, highest_offset, what)}
    return field(metadata=metadata, **kwargs)


def not_a_depth(**kwargs: Any):
    """A dataclass field whose name looks like a depth (``depth_spec``) but holds no layer count or
    index (e.g. a learning rate ``lr_per_layer``): the config check leaves it alone."""
    return field(metadata={DEPTH_METADATA: None}, **kwargs)


# Names read as depths without a declaration: the last word (split at "_") is one of DEPTH_WORDS
# (depth, exit_layer, kept_layers, num_layers), or an index word after a layer word (layer_index).
DEPTH_WORDS = ("depth", "depths", "layer", "layers")
INDEX_WORDS = ("index", "indices", "idx")


def depth_spec(f) -> tuple[int, int, str] | None:
    """(lowest, highest_offset, what) of a Params field that names layers of the backbone, whatever its
    type (int, float, list[int]); None for any other field. ``depth_field`` / ``not_a_depth`` declare it;
    else its name decides: a count or a 1-based layer (1..N) for a name ending in a depth word, a
    0-based index (0..N-1) for a layer word followed by an index word."""
    if DEPTH_METADATA in f.metadata:
        return f.metadata[DEPTH_METADATA]
    words = f.name.lower().split("_")
    if words[-1] in DEPTH_WORDS:
        return 1, 0, "numbers of layers (a depth by its name)"
    if words[-1] in INDEX_WORDS and any(w in ("layer", "layers") for w in words[:-1]):
        return 0, -1, "0-based layer indices (a layer index by its name)"
    return None


@dataclass
class FinetuneParams(MethodParams):
    """Base of the parameters of a method that fine-tunes a backbone: each None takes the profile's
    ``training.finetune`` value (BERT-base, LayerDrop, DistilBERT, every early-exit method)."""

    epochs: float | None = None  # None: training.finetune.epochs
    lr: float | None = None  # None: training.finetune.lr
    batch_size: int | None = None  # None: training.finetune.batch_size

    def settings(self, ctx: TrainContext, **overrides: Any) -> TrainSettings:
        """``training.finetune`` (and ``training.precision``) with this method's epochs / lr / batch_size (then
        ``overrides``) on top."""
        values = {"epochs": self.epochs, "lr": self.lr, "batch_size": self.batch_size, **overrides}
        return TrainSettings.from_training(ctx.settings, **values)


class Method(ABC):
    name: ClassVar[str]
    display_name: ClassVar[str]
    knob_name: ClassVar[str]
    needs_finetuned: ClassVar[bool] = True  # starts from the stage-1 BERT-base run
    supports_regression: ClassVar[bool] = True
    static: ClassVar[bool] = False  # one speed-up for every input: not windowed in selection
    is_reference: ClassVar[bool] = False  # BERT-base only: the denominator of every speed-up, not timed on its own
    trains: ClassVar[bool] = True  # False: nothing to learn, it runs the stage-1 model (bert_cut, a diagnostic)
    Params: ClassVar[type[MethodParams]] = MethodParams
    # The window search (dpbert.methods.refine): a *refinable* knob is threshold-like, so that the sweep may
    # score values between the grid's (and, within ``knob_range``, beyond it) to put more points of the
    # primary dev split inside ``selection.window``; see ``can_refine``. Not refinable: a dummy knob, a
    # depth or a count of trained models (a training-time variant can never be refined at inference).
    refinable: ClassVar[bool] = False
    # Bounds a refined knob may take, inclusive; None: only values between the grid's smallest and largest.
    knob_range: ClassVar[tuple[float, float] | None] = None
    knob_integer: ClassVar[bool] = False  # refined values are integers (PABEE's patience)
    refinable_tasks: ClassVar[str] = "all"  # "all" | "classification" | "regression": where ``refinable`` holds
    # Whether ``predict_knobs`` reads every knob off one pass per example (the window search then proposes
    # more knobs a round, the planner counts one scoring pass); None: whether ``predict_knobs`` is overridden.
    # A method whose override still pays for every distinct path (DPBERT's shared-prefix walk) says False.
    one_pass_knobs: ClassVar[bool | None] = None
    # N, the configured backbone's depth, where a caller knows it before any model exists: the planner
    # (dpbert.run.costs) sets it for ``training_epochs`` (BERT-kL's k-layer models cost k/N). None: unknown.
    backbone_depth: int | None = None
    # The knob value the method is trained to be run at (DPBERT: the rule p_i >= 0.5). Table 1's row then keeps
    # only points at that value; its points at every value form a second, labelled row (dpbert.reporting.crossfit).
    trained_knob: ClassVar[float | None] = None

    def __init__(self, params: dict[str, Any] | None, task: TaskSpec):
        self.task = task
        self.params = make_params(self.Params, params or {}, self.name)

    # A method that searches a training-time knob after its grid's variants (DACT-BERT's tau) names the job that
    # does it (``training_jobs``): it trains the search's models, one after another (each next value comes from
    # the models before it), into that one folder. None: no search job.
    search_job: ClassVar[str | None] = None

    def variants(self) -> list[str]:
        """Separately trained models (e.g. DPBERT's target rates); folder names, so path-safe. Each is
        trained by its own job (``training_jobs``)."""
        return ["main"]

    def training_jobs(self) -> list[str]:
        """The training jobs of one (task, seed), in training order: one per variant (``variants()``), then the
        search job (``search_job``) if the method has one; each writes its folder ``<model dir>/<job>``. None for
        a method that trains nothing. The workflow runs each as a job of its own (workflow/rules/methods.smk)."""
        if not self.trains:
            return []
        return [*self.variants(), *([self.search_job] if self.search_job else [])]

    def variant_dir(self, model_dir: Path, variant: str) -> Path:
        """The folder of a trained variant under the method's model folder: ``model_dir / variant``, unless the
        method's search job holds it (``search_job``; DACT-BERT overrides this)."""
        return Path(model_dir) / variant

    def trained_variants(self, model_dir: Path) -> list[str]:
        """The variants ``train`` saved under ``model_dir``: ``variants()``, unless training searched
        for more (DACT-BERT's tau search writes the list it trained)."""
        return self.variants()

    def training_search_status(self, model_dir: Path) -> str | None:
        """The outcome of a window search that ``train`` ran over a training knob (DACT-BERT's tau), for
        the sweep's ``refine_status``; None: training searched nothing."""
        return None

    @abstractmethod
    def knobs(self) -> list[float]:
        """Inference-time knob values swept without retraining."""

    def knobs_of(self, variant: str) -> list[float]:
        """The knob values the sweep scores and times ``variant`` at, and its window search starts from:
        ``knobs()`` for every variant, unless each variant has its own (BERT-kL: the depth k it was
        trained with, and nothing else)."""
        return self.knobs()

    def display_of(self, variant: str) -> str:
        """The model name in the sweep rows of ``variant``: ``display_name``, unless each variant is a
        model of its own name (BERT-kL: "BERT-9L", "BERT-6L")."""
        return self.display_name

    def train(self, ctx: TrainContext) -> None:
        """Train every training job's model in this one process, in order (``training_jobs``), each saved under
        ``ctx.out_dir / job`` (never called if ``trains`` is False). A method with the one variant "main"
        overrides this; a method of several overrides ``train_variant`` instead, and this runs each in turn:
        one after another in one process, as the workflow's jobs do when chained (``training.variant_seeds``)."""
        if type(self).train_variant is Method.train_variant:
            raise NotImplementedError(f"method '{self.name}' trains (trains = True) but defines neither train() "
                                      "nor train_variant()")
        for job in self.training_jobs():
            self.train_variant(ctx, job)

    def train_variant(self, ctx: TrainContext, variant: str) -> None:
        """Train one of ``training_jobs()`` and save it under ``ctx.out_dir / variant``: what one training job of
        the workflow runs. Default: a method whose only variant is "main" trains it with ``train``."""
        if self.training_jobs() != ["main"] or type(self).train is Method.train:
            raise NotImplementedError(f"method '{self.name}' trains the variants {self.training_jobs()} but defines "
                                      "no train_variant(ctx, variant) to train one of them")
        if variant != "main":
            raise ValueError(f"method '{self.name}' has the one variant 'main', not '{variant}'")
        self.train(ctx)

    @abstractmethod
    def load(self, folder: Path):
        """Load one saved variant for inference."""

    @abstractmethod
    def predict_one(self, model, example: dict[str, Tensor], knob: float) -> Prediction:
        """Batch-size-1 inference with the knob; exit/skip decisions per example, no wasted layers."""

    def predict_batch(self, model, batch: dict[str, Tensor], knob: float, exact: bool = False) -> list[Prediction]:
        """Serving: predictions of a padded batch (``EncodedSplit.batch``: input_ids, token_type_ids,
        attention_mask, rows of any lengths) at ``knob``, one ``Prediction`` per row with the layers that
        row executed. ``exact=False`` (serving's default): every decision (off-ramp, LTE or halting unit,
        planner) and the head run once per layer on the rows still in the batch; ``exact=True``: each of
        them reads its row alone, as ``predict_one`` does (``engine.per_rows``). Either way each row must
        get what ``predict_one`` gives its example alone, up to float rounding (tests/methods/
        test_predict_batch.py counts the differences; docs/methods.md, "Serving batches").
        Default: the rows one at a time, unpadded (exact in both modes); a method overrides it to run its
        rows together."""
        return [self.predict_one(model, example, knob) for example in row_examples(batch)]

    def predict_knobs(self, model, example: dict[str, Tensor], knobs: Sequence[float]) -> list[Prediction]:
        """Batch-1 predictions at every knob value, for scoring a sweep (latency is timed per knob with
        ``predict_one``). A method whose knob only moves the exit point overrides this to read every
        knob off one pass; tests hold the override equal to ``predict_one`` knob by knob."""
        return [self.predict_one(model, example, k) for k in knobs]

    def trace(self, model, example: dict[str, Tensor]) -> Any:
        """What ``predict_traced`` reads the example's prediction at any knob off: one batch-1 pass of it
        where the knob only chooses among outputs the pass computes anyway (the early-exit methods' exit
        point), or DPBERT's tree of paths, expanded as thresholds ask for it. The sweep keeps an example's
        trace for the whole job, so the window search's rounds and the health diagnostics
        (dpbert.run.diagnostics) redo no layer. Default: None, no trace; see ``traces_passes``."""
        return None

    def predict_traced(self, trace: Any, knobs: Sequence[float]) -> list[Prediction]:
        """The predictions ``predict_knobs`` would return at ``knobs``, read off a ``trace`` of the example."""
        raise NotImplementedError(f"method '{self.name}' defines no trace, so it has no predict_traced")

    def trace_many(self, model, examples: Sequence[dict[str, Tensor]]) -> list[Any]:
        """``trace`` of several examples of one length (the sweep's equal-length groups, no padding). A method
        may run their layers as one batch when that gives each example the states its own ``trace`` gives:
        every layer of BERT acts on each row alone, and on CPU a batch of equal-length rows computes each row
        bit for bit as batch size 1 does (tests/run/test_sweep.py checks it). Default: one by one."""
        return [self.trace(model, example) for example in examples]

    def predict_traced_many(self, traces: Sequence[Any], knobs: Sequence[float]) -> list[list[Prediction]]:
        """``predict_traced`` of every trace; a method may batch the layer calls it makes (``trace_many``)."""
        return [self.predict_traced(trace, knobs) for trace in traces]

    @classmethod
    def traces_passes(cls) -> bool:
        """Whether ``trace`` is overridden (the sweep then keeps one trace per example and variant)."""
        return cls.trace is not Method.trace

    def training_epochs(self, finetune: dict[str, Any]) -> float:
        """For planning a run (dpbert.tools.plan), not for training: the full-model training passes over the
        training set that ``train`` makes, all stages and variants counted (a forward-only pass counts
        ``FORWARD_SHARE``). Default: one fine-tuning of ``epochs`` (else ``training.finetune.epochs``)."""
        if not self.trains:
            return 0.0
        return float(getattr(self.params, "epochs", None) or finetune.get("epochs", 3))

    def job_training_epochs(self, finetune: dict[str, Any], job: str) -> float:
        """``training_epochs`` of one training job (``training_jobs``): an even share by default; a method whose
        jobs differ in cost overrides it (BERT-kL's k-layer models, DACT-BERT's search job)."""
        jobs = self.training_jobs()
        return self.training_epochs(finetune) / len(jobs) if job in jobs else 0.0

    @classmethod
    def scores_knobs_in_one_pass(cls) -> bool:
        """``one_pass_knobs``, else whether ``predict_knobs`` is overridden."""
        if cls.one_pass_knobs is not None:
            return cls.one_pass_knobs
        return cls.predict_knobs is not Method.predict_knobs

    def can_refine(self) -> bool:
        """Whether the sweep searches this method's knob on this task (``refinable``, ``refinable_tasks``)."""
        if not self.refinable or self.refinable_tasks == "all":
            return self.refinable
        if self.refinable_tasks not in ("classification", "regression"):
            raise ValueError(f"method '{self.name}': refinable_tasks must be all, classification or regression, "
                             f"not '{self.refinable_tasks}'")
        return (self.refinable_tasks == "regression") == self.task.is_regression

    def pinned(self, classifier, k: int) -> Pinned | None:
        """A model over ``classifier`` (a Hugging Face BERT classifier, random weights are fine) whose
        decisions execute exactly ``k`` layers for every input, and the knob that does it; None for a
        method that decides nothing per input. For the speed-up bench (dpbert.tools.speedup_bench),
        never for training or the tables."""
        return None

    def reference_layers(self, model) -> int:
        """N for the layer speed-up N / mean executed layers (the BERT-base depth)."""
        return model.n_layers

    def overhead_flops(self, executed: list[int], n_layers: int, hidden: int, num_labels: int) -> int:
        """FLOPs per example beyond the backbone layers in ``executed`` (0-based; what ``predict_one``
        ran) on a backbone of ``n_layers`` layers of width ``hidden``, counted as
        ``dpbert.model.flops`` counts (matrix products only): what the method's own modules compute for
        this example. Default: BERT's final head, pooler + classifier (``head_flops``). A method that
        computes more (off-ramps, planners, halting units) overrides it with exactly what its
        ``predict_one`` computes; tests/methods/test_overhead_flops.py holds each family's count equal to
        torch's FLOP counter on ``predict_one``."""
        return head_flops(hidden, num_labels)


def make_params(cls: type[MethodParams], values: dict[str, Any], method: str) -> MethodParams:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise MethodConfigError(
            f"methods.{method} in the config has unknown key(s) {', '.join(hints)}. The keys this "
            f"method accepts are: {', '.join(sorted(known)) or '(none)'}; fix or remove the others."
        )
    check_params(cls, values, method)
    return cls(**values)


# Hand-written, not the JSON schema: jobs run these checks too (make_params), from the annotations that are their only declaration, with messages naming the list index, default and reason; a generated schema would move this code (annotation walk, formatter), not remove it.
# Value rules of method parameters, by field name: a rule holds for every method whose Params has a
# field of that name (for a list field, for each of its values). A rule is an interval written
# "[lo, hi]", "(lo, hi)", "[lo, hi)" ... (inf allowed) or a tuple of the allowed strings, with the
# reason shown in the error. A Params class may add or override rules with a ClassVar of the same
# shape, ``param_rules: ClassVar[dict[str, tuple[...]]] = {"beta": ("[0, inf)", "a weight")}``.
# Beyond these, check_params refuses a value of the wrong type (from the field's annotation), an
# empty list (a knob grid or the list of trained variants) and a float that is not finite.
# The string choices repeat constants of the method modules (kept equal by tests/run/test_config_check.py).
PARAM_RULES: dict[str, tuple[str | tuple[str, ...], str]] = {
    "epochs": ("(0, inf)", "passes over the training set"),
    "stage2_epochs": ("(0, inf)", "passes over the training set"),
    "stage3_epochs": ("(0, inf)", "passes over the training set"),
    "lr": ("(0, inf)", "a learning rate"),
    "head_lr": ("(0, inf)", "a learning rate"),
    "stage2_lr": ("(0, inf)", "a learning rate"),
    "stage3_lr": ("(0, inf)", "a learning rate"),
    "planner_lr": ("(0, inf)", "a learning rate"),
    "batch_size": ("[1, inf)", "examples per training step"),
    "state": (("cls", "mean"), "the state a decision reads (dpbert.model.engine.STATE_KINDS)"),
    "thresholds": ("[0, 1]", ("a threshold on a probability (DPBERT's planner p_i, BERxiT's estimated "
                              "error); above 1 DPBERT skips every layer, an infinite speed-up")),
    "regression_thresholds": ("[0, 1]", "DACT-BERT halts when the probability p_n falls below it"),
    "target_rates": ("[0, 1)", ("a skip-rate target: 0 runs every layer, 1 would skip them all; the "
                                "paper's 1.30-1.96x window is t in [0.23, 0.49]")),
    "entropies": ("[0, inf)", "an entropy in nats (0 never exits)"),
    "taus": ("[0, inf)", "a ponder-cost weight"),
    "tau_range": ("(0, inf)", "a ponder-cost weight bounding DACT-BERT's tau search"),
    "tau_search": ("[0, inf)", "a number of extra models the tau search may train"),
    "patiences": ("[0, inf)", "a count of unchanged layers (0 never exits)"),
    "layers": ("[1, inf)", "a number of layers run"),
    "kept_layers": ("[1, inf)", "a number of layers kept"),
    "teacher_layers": ("[0, inf)", "0-based indices of teacher layers"),
    "reference_depth": ("[1, inf)", "a number of layers"),
    "p": ("[0, 1)", "a drop probability per layer (1 would drop every layer)"),
    "alpha": ("[0, 1]", "the weight of the distillation term (1 - alpha on the task loss)"),
    "temperature": ("(0, inf)", "the softmax temperature of the soft targets"),
    "student": (("auto", "from_teacher", "hub"), "the kind of student (baselines.distilbert.KINDS)"),
    "rate_estimate": (("soft", "hard"), "the skip-rate estimate of the penalty (RATE_ESTIMATES)"),
    "rate_grad": (("all", "bias"), "what the rate penalty's gradient trains (RATE_GRADS)"),
    "baseline": (("batch_mean", "greedy"), "the REINFORCE baseline"),
    "lte_grad": (("backbone", "lte_only"), "what BERxiT's LTE loss trains (baselines.berxit.LTE_GRADS)"),
    "beta": ("[0, inf)", "the weight of the rate penalty"),
    "rl_lambda": ("[0, inf)", "the weight of the task loss in the reward"),
    "cost": ("[0, inf)", "the execution cost of a layer in the reward"),
    "regression_tolerance": ("[0, inf)", "a change of the regression output"),
}

_INTERVAL = re.compile(r"^\s*([\[(])\s*([^,\s]+)\s*,\s*([^,\s]+)\s*([\])])\s*$")


def _interval(rule: str) -> tuple[float, float, bool, bool]:
    """'[0, 1)' -> (0.0, 1.0, lo closed, hi closed)."""
    m = _INTERVAL.match(rule)
    if not m:
        raise ValueError(f"bad parameter rule {rule!r}: write an interval such as '[0, 1)' or '(0, inf)'")
    return float(m.group(2)), float(m.group(3)), m.group(1) == "[", m.group(4) == "]"


def _show(value: Any) -> str:
    """A config value as YAML spells it, shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, str):
        text = repr(value)
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_show(v) for v in value) + "]"
    else:
        text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return {str: "a string", int: "an integer", float: "a decimal number", list: "a list", tuple: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


def _describe(tp: Any, plural: bool = False) -> str:
    """A type annotation in words: 'a number or null', 'a list of integers'."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        words = [_describe(a, plural) for a in args if a is not type(None)]
        if type(None) in args:
            words.append("null")
        return " or ".join(words)
    if origin in (list, tuple, Sequence):
        args = get_args(tp)
        return ("lists" if plural else "a list") + (f" of {_describe(args[0], True)}" if args else "")
    single, many = {float: ("a number", "numbers"), int: ("an integer", "integers"),
                    bool: ("true or false", "true/false values"), str: ("a string", "strings"),
                    type(None): ("null", "nulls")}.get(tp, (str(tp), str(tp)))
    return many if plural else single


def _conforms(value: Any, tp: Any) -> bool:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return any(_conforms(value, a) for a in get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:  # numbers.Integral: numpy integers too
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if tp is float:  # an int is a fine float; a bool is neither
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        args = get_args(tp)
        return isinstance(value, (list, tuple)) and (not args or all(_conforms(v, args[0]) for v in value))
    return True  # an annotation this check does not know (Any, dict, ...): the method's own code checks it


def _element_type(tp: Any) -> Any:
    """list[float] | None -> float (the type of a list field's values); None if the field is no list."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        for a in get_args(tp):
            if (inner := _element_type(a)) is not None:
                return inner
        return None
    if origin in (list, tuple, Sequence):
        args = get_args(tp)
        return args[0] if args else Any
    return None


def _number_hint(value: Any) -> str:
    """Why a number may have come in as a string, and how to write it."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        if re.fullmatch(r"\s*[-+]?\d+[eE][-+]?\d+\s*", value):
            mant, exp = re.split("[eE]", value.strip())
            return (f" (YAML reads an exponent without a decimal point as text: write {mant}.0e{exp})")
        return f" (drop the quotes: {value.strip()})"
    return ""


NOT_SCALAR = object()
_INT_TEXT = re.compile(r"^\s*[-+]?\d+\s*$")
_FLOAT_TEXT = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


def parse_scalar(text: str) -> Any:
    """What YAML would read ``text`` as, for a number, a boolean or null: ``--config`` hands nested
    values over as text (Snakemake reads them with YAML's BaseLoader). Anything else: ``NOT_SCALAR``."""
    if _INT_TEXT.match(text):
        return int(text)
    if _FLOAT_TEXT.match(text):
        return float(text)
    word = text.strip().lower()
    if word in ("true", "false"):
        return word == "true"
    if word in ("null", "~"):
        return None
    return NOT_SCALAR


def coerce_param_strings(cls: type[MethodParams], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with each string (or string in a list) that the field's annotation refuses but whose
    number / boolean / null reading it accepts replaced by that reading: for ``--config methods=...``,
    never for a config file (there a quoted number stays an error, ``check_params``)."""
    try:
        hints = get_type_hints(cls)
    except (NameError, TypeError, AttributeError):
        return dict(values)

    def coerce(value: Any, tp: Any) -> Any:
        if _conforms(value, tp):
            return value
        if isinstance(value, str):
            parsed = parse_scalar(value)
            return parsed if parsed is not NOT_SCALAR and _conforms(parsed, tp) else value
        if isinstance(value, list) and (elem := _element_type(tp)) is not None:
            return [coerce(v, elem) for v in value]
        return value

    return {k: coerce(v, hints[k]) if k in hints else v for k, v in values.items()}


def _field_default(f) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return MISSING


def check_params(cls: type[MethodParams], values: dict[str, Any], method: str) -> None:
    """Type- and range-check the config values of a method's parameters (not its defaults).

    Types come from the Params dataclass's annotations (float, int, bool, str, list[float],
    float | None, ...): an int is accepted for a float, a bool never for a number. Ranges and
    choices come from PARAM_RULES and the class's own ``param_rules``. Raises MethodConfigError
    naming methods.<method>.<key>, the value and what it must be.
    """
    try:
        hints = get_type_hints(cls)
    except (NameError, TypeError, AttributeError):  # an annotation that cannot be resolved: no type check, the rules still hold
        hints = {}
    rules = {**PARAM_RULES, **(getattr(cls, "param_rules", None) or {})}
    by_name = {f.name: f for f in fields(cls)}
    for key, value in values.items():
        if key not in by_name:
            continue  # make_params reports unknown keys
        where = f"methods.{method}.{key}"
        tp = hints.get(key, Any)
        elem_tp = _element_type(tp)
        if not _conforms(value, tp):
            if elem_tp is not None and isinstance(value, (list, tuple)):
                for i, v in enumerate(value):
                    if not _conforms(v, elem_tp):
                        raise MethodConfigError(
                            f"{where}[{i}] is {_show(v)} ({_kind(v)}), but every value of {where} must be "
                            f"{_describe(elem_tp)}{_number_hint(v)}.")
            default = _field_default(by_name[key])
            shown = "" if default is MISSING else f"; its default is {_show(default)}"
            raise MethodConfigError(
                f"{where} is {_show(value)} ({_kind(value)}), but it must be {_describe(tp)}"
                f"{_number_hint(value)}{shown}.")
        if value is None:
            continue
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, (list, tuple)) and not items:
            default = _field_default(by_name[key])
            shown = "" if default is MISSING or default in (None, []) else f"; its default is {_show(default)}"
            raise MethodConfigError(
                f"{where} is an empty list, but it must hold at least one value (a knob grid or the "
                f"variants to train{shown}); remove the key to use the default.")
        for v in items:
            if isinstance(v, numbers.Real) and not isinstance(v, bool) and not math.isfinite(v):
                has = "has" if isinstance(value, (list, tuple)) else "is"
                raise MethodConfigError(f"{where} {has} {_show(v)}, but a parameter must be a finite number.")
        rule = rules.get(key)
        if rule is None:
            continue
        spec, why = rule
        has = "has" if isinstance(value, (list, tuple)) else "is"
        if isinstance(spec, tuple):
            for v in items:
                if isinstance(v, str) and v not in spec:
                    close = difflib.get_close_matches(v, spec, n=1)
                    hint = f" (did you mean '{close[0]}'?)" if close else ""
                    raise MethodConfigError(
                        f"{where} {has} {_show(v)}, but it must be one of {', '.join(spec)}{hint}: {why}.")
            continue
        lo, hi, lo_closed, hi_closed = _interval(spec)
        for v in items:
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                continue
            inside = (v >= lo if lo_closed else v > lo) and (v <= hi if hi_closed else v < hi)
            if not inside:
                each = "each value" if isinstance(value, (list, tuple)) else "it"
                raise MethodConfigError(f"{where} {has} {_show(v)}, but {each} must lie in {spec}: {why}.")


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method available under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two methods are registered under the name '{cls.name}'")
    _REGISTRY[cls.name] = cls
    return cls


def params_as_dict(method: Method) -> dict[str, Any]:
    return asdict(method.params)
