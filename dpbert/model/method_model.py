"""A fine-tuned BERT classifier seen through the layer-wise engine, plus a method's extra modules.

Every method's model is a ``MethodModel``: the Hugging Face ``BertForSequenceClassification``
(backbone, pooler, final classifier) and whatever small modules the method adds (planners,
off-ramps, halting units). It is saved as one folder and loads back to identical predictions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dpbert.model.engine import LayerwiseBackbone, per_rows
from dpbert.model.sources import (
    ModelLoadError,
    job_folder_fix,
    load_classifier,
    save_classifier,
)
from dpbert.model.writes import writing

EXTRA_FILE = "method_modules.pt"
META_FILE = "method.json"


class MethodModel(nn.Module):
    """HF classifier + engine + method-specific modules (``self.extra``)."""

    def __init__(self, classifier: nn.Module, extra: nn.Module | None = None):
        super().__init__()
        self.classifier = classifier
        self.engine = LayerwiseBackbone(classifier.bert)
        self.extra = extra if extra is not None else nn.Module()

    @property
    def n_layers(self) -> int:
        return self.engine.n_layers

    @property
    def hidden_size(self) -> int:
        return self.engine.hidden_size

    def final_head(self, hidden: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """BERT's own head: pooler -> dropout -> classifier (what BertForSequenceClassification does with
        ``model.head_state`` cls; with mean the pooler reads the masked token mean, see ``engine.pool``)."""
        return self.classifier.classifier(self.classifier.dropout(self.engine.pool(hidden, attention_mask)))

    def final_head_rows(self, hidden: Tensor, attention_mask: Tensor, exact: bool = False,
                        rows: list[int] | None = None) -> list[Tensor]:
        """BERT's head on each row of a padded (sub-)batch (``rows``: its batch rows; default 0..n-1), shapes
        (num_labels,). ``exact=False``: once on the whole batch (a mean-reading head averages each row over
        its mask). ``exact=True``: each row read alone on its own tokens (``hidden[r:r+1, :n_r]``), the call
        ``final_head`` makes at batch size 1, so a row's output is its example's alone bit for bit
        (``engine.per_rows``)."""
        rows = list(range(hidden.shape[0])) if rows is None else rows
        return per_rows(lambda h, m, _rows: self.final_head(h, m), hidden, attention_mask, rows, exact)

    def run_fixed_layers_batch(self, batch: dict[str, Tensor], layers, knob_key: str,
                               exact: bool = False) -> list[tuple[Tensor, list[int]]]:
        """``run_fixed_layers`` for a padded batch (``Method.predict_batch``): the plain batched forward of
        exactly ``layers`` with the attention mask, then BERT's head (``final_head_rows``: on the batch at
        once, or with ``exact`` on each row alone)."""
        layers = self.check_layers(layers, knob_key)
        mask = batch["attention_mask"]
        out = self.engine.run(batch["input_ids"], mask, batch["token_type_ids"], layers=layers)
        return [(output, list(out.executed)) for output in self.final_head_rows(out.hidden, mask, exact)]

    def run_fixed_layers(self, example: dict[str, Tensor], layers, knob_key: str) -> tuple[Tensor, list[int]]:
        """Static methods (truncation, LayerDrop pruning): exactly ``layers``, then BERT's own head.

        ``knob_key`` names the config key that chose the layers, for the error on an impossible depth."""
        layers = self.check_layers(layers, knob_key)
        out = self.engine.run(example["input_ids"], example["attention_mask"], example["token_type_ids"], layers=layers)
        return self.final_head(out.hidden, example["attention_mask"])[0], out.executed

    def check_layers(self, layers, knob_key: str) -> list[int]:
        """The 0-based layer list, or an error naming the config key that asked for an impossible depth."""
        layers = list(layers)
        if not layers or not all(0 <= i < self.n_layers for i in layers):
            raise ValueError(f"{knob_key} asks for layers {[i + 1 for i in layers]}, but the model has "
                             f"{self.n_layers} layers; use depths in 1..{self.n_layers}.")
        return layers

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.classifier.parameters())


def save_method_model(model: MethodModel, tokenizer, folder: Path, meta: dict[str, Any]) -> None:
    folder = Path(folder)
    with writing(folder, "the trained model folder"):
        save_classifier(model.classifier, tokenizer, folder / "backbone")
        torch.save(model.extra.state_dict(), folder / EXTRA_FILE)
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))


def load_method_model(folder: Path, extra: nn.Module | None = None) -> tuple[MethodModel, Any, dict]:
    """Load a folder written by ``save_method_model``; ``extra`` is an empty module of the right shape."""
    folder = Path(folder)
    classifier, tokenizer = load_classifier(folder / "backbone")
    model = MethodModel(classifier, extra)
    extra_path = folder / EXTRA_FILE
    try:
        state = torch.load(extra_path, map_location="cpu", weights_only=True)
        model.extra.load_state_dict(state)
        meta = json.loads((folder / META_FILE).read_text())
    except (OSError, RuntimeError, ValueError, EOFError) as exc:
        raise ModelLoadError(
            f"the method checkpoint in {folder} could not be read ({type(exc).__name__}: {exc}). It is "
            f"missing, truncated or from another method/config. {job_folder_fix(folder)}"
        ) from exc
    model.eval()
    return model, tokenizer, meta
