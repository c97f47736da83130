"""The method interface and registry: one module per method, one config entry, nothing else.

A method declares its knob, whether it needs the fine-tuned backbone (stage 1), how it trains its
variants, and how it predicts one example at batch size 1 with a knob value, returning the layers it
executed. The Snakemake DAG, the sweeps and the tables are generic over this interface.
"""

from __future__ import annotations

import difflib
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from torch import Tensor

from dpbert.encoding import EncodedSplit
from dpbert.tasks import TaskSpec

_REGISTRY: dict[str, type[Method]] = {}

# For planning a run (dpbert.plan): a forward pass without a backward costs about a third of a training step.
FORWARD_SHARE = 1 / 3


class UnknownMethodError(ValueError):
    pass


class MethodConfigError(ValueError):
    pass


@dataclass
class TrainContext:
    """Everything a method's ``train`` needs; methods read, never build, these."""

    task: TaskSpec
    train: EncodedSplit
    dev: EncodedSplit  # primary dev split (for logging only: selection happens in the sweep)
    finetuned_dir: Path | None  # stage-1 BERT-base classifier folder: models.load_classifier(it); None if unused
    out_dir: Path
    seed: int
    settings: dict[str, Any]  # the `training:` section of the config
    model_source: Any  # dpbert.models.ModelSource
    device: str
    log: logging.Logger


@dataclass
class Prediction:
    output: Tensor  # logits (num_labels,) or the regression value (1,)
    executed: list[int]  # 0-based indices of the backbone layers that ran


@dataclass
class MethodParams:
    """Base of every method's parameters (its config entry); unknown keys are an error."""


class Method(ABC):
    name: ClassVar[str]
    display_name: ClassVar[str]
    knob_name: ClassVar[str]
    needs_finetuned: ClassVar[bool] = True  # starts from the stage-1 BERT-base run
    supports_regression: ClassVar[bool] = True
    static: ClassVar[bool] = False  # one speed-up for every input: not windowed in selection
    is_reference: ClassVar[bool] = False  # BERT-base only: the denominator of every speed-up, not timed on its own
    trains: ClassVar[bool] = True  # False: nothing to learn, it runs the stage-1 model (BERT-kL)
    Params: ClassVar[type[MethodParams]] = MethodParams
    # The window search (dpbert.refine): a *refinable* knob is threshold-like, so that the sweep may
    # score values between the grid's (and, within ``knob_range``, beyond it) to put more points of the
    # primary dev split inside ``selection.window``; see ``can_refine``. Not refinable: a dummy knob, a
    # depth or a count of trained models (a training-time variant can never be refined at inference).
    refinable: ClassVar[bool] = False
    # Bounds a refined knob may take, inclusive; None: only values between the grid's smallest and largest.
    knob_range: ClassVar[tuple[float, float] | None] = None
    knob_integer: ClassVar[bool] = False  # refined values are integers (PABEE's patience)
    refinable_tasks: ClassVar[str] = "all"  # "all" | "classification" | "regression": where ``refinable`` holds

    def __init__(self, params: dict[str, Any] | None, task: TaskSpec):
        self.task = task
        self.params = make_params(self.Params, params or {}, self.name)

    def variants(self) -> list[str]:
        """Separately trained models (e.g. DPBERT's target rates); folder names, so path-safe."""
        return ["main"]

    @abstractmethod
    def knobs(self) -> list[float]:
        """Inference-time knob values swept without retraining."""

    def train(self, ctx: TrainContext) -> None:
        """Train every variant and save it under ``ctx.out_dir / variant`` (never called if ``trains`` is False)."""
        raise NotImplementedError(f"method '{self.name}' trains (trains = True) but defines no train()")

    @abstractmethod
    def load(self, folder: Path):
        """Load one saved variant for inference."""

    @abstractmethod
    def predict_one(self, model, example: dict[str, Tensor], knob: float) -> Prediction:
        """Batch-size-1 inference with the knob; exit/skip decisions per example, no wasted layers."""

    def predict_knobs(self, model, example: dict[str, Tensor], knobs: Sequence[float]) -> list[Prediction]:
        """Batch-1 predictions at every knob value, for scoring a sweep (latency is timed per knob with
        ``predict_one``). A method whose knob only moves the exit point overrides this to read every
        knob off one pass; tests hold the override equal to ``predict_one`` knob by knob."""
        return [self.predict_one(model, example, k) for k in knobs]

    def training_epochs(self, finetune: dict[str, Any]) -> float:
        """For planning a run (dpbert.plan), not for training: the full-model training passes over the
        training set that ``train`` makes, all stages and variants counted (a forward-only pass counts
        ``FORWARD_SHARE``). Default: one fine-tuning of ``epochs`` (else ``training.finetune.epochs``)."""
        if not self.trains:
            return 0.0
        return float(getattr(self.params, "epochs", None) or finetune.get("epochs", 3))

    def can_refine(self) -> bool:
        """Whether the sweep searches this method's knob on this task (``refinable``, ``refinable_tasks``)."""
        if not self.refinable or self.refinable_tasks == "all":
            return self.refinable
        if self.refinable_tasks not in ("classification", "regression"):
            raise ValueError(f"method '{self.name}': refinable_tasks must be all, classification or regression, "
                             f"not '{self.refinable_tasks}'")
        return (self.refinable_tasks == "regression") == self.task.is_regression

    def reference_layers(self, model) -> int:
        """N for the layer speed-up N / mean executed layers (the BERT-base depth)."""
        return model.n_layers


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
    return cls(**values)


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method available under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two methods are registered under the name '{cls.name}'")
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    import baselines  # noqa: F401  (imports every module in baselines/)
    import dpbert.methods  # noqa: F401


def registered() -> dict[str, type[Method]]:
    _load_all()
    return dict(_REGISTRY)


def get_method(name: str) -> type[Method]:
    methods = registered()
    if name not in methods:
        close = difflib.get_close_matches(name, list(methods), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UnknownMethodError(
            f"unknown method '{name}'.{hint} Registered methods: {', '.join(sorted(methods))}. A new "
            "method is a module in baselines/ with a class decorated by @register (see README, "
            "'Add a baseline')."
        )
    return methods[name]


def build_method(name: str, params: dict[str, Any] | None, task: TaskSpec) -> Method:
    return get_method(name)(params, task)


def params_as_dict(method: Method) -> dict[str, Any]:
    return asdict(method.params)
