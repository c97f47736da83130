"""Load a task from its configured source and tokenise every split once (cached for all jobs)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch

from dpbert.data.encoding import EncodedSplit, encode_examples
from dpbert.data.sources import DataError, load_task
from dpbert.data.tasks import get_task
from dpbert.model.sources import ModelSource, load_tokenizer
from dpbert.model.writes import writing


@dataclasses.dataclass
class PreparedTask:
    task: str
    splits: dict[str, EncodedSplit]
    examples: dict[str, list[dict[str, Any]]]

    def dev_splits(self) -> dict[str, EncodedSplit]:
        spec = get_task(self.task)
        return {name: self.splits[name] for name in spec.dev_splits}


def prepare_task(task: str, data_cfg: dict, model_cfg: dict, out: str | Path, log: logging.Logger) -> None:
    spec = get_task(task)
    log.info("loading %s from source '%s'", spec.name, data_cfg["source"])
    splits = load_task(
        spec.name,
        data_cfg["source"],
        data_dir=data_cfg.get("data_dir"),
        seed=int(data_cfg.get("seed", 0)),
        max_train=data_cfg.get("max_train"),
        max_dev=data_cfg.get("max_dev"),
        synthetic_train=int(data_cfg.get("synthetic_train", 2000)),
        synthetic_dev=int(data_cfg.get("synthetic_dev", 400)),
        with_test=bool(data_cfg.get("with_test", False)),
    )
    source = ModelSource.from_config(model_cfg)
    tokenizer = load_tokenizer(source)
    budget = data_cfg.get("max_train_tokens")
    if budget:
        before = len(splits["train"])
        splits["train"] = cap_tokens(splits["train"], tokenizer, source.max_length, int(budget),
                                     int(data_cfg.get("seed", 0)))
        log.info("%s/train: %d of %d examples fit data.max_train_tokens = %d", spec.name, len(splits["train"]),
                 before, budget)
    encoded = {}
    for name, examples in splits.items():
        encoded[name] = encode_examples(examples, tokenizer, source.max_length, spec.is_regression).to_dict()
        lengths = [len(x) for x in encoded[name]["input_ids"]]
        log.info("%s/%s: %d examples, mean %.1f tokens, max %d", spec.name, name, len(lengths),
                 sum(lengths) / len(lengths), max(lengths))
    payload = {
        "task": spec.name,
        "splits": encoded,
        "examples": {k: [dataclasses.asdict(e) for e in v] for k, v in splits.items()},
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    with writing(tmp, "the prepared data file"):
        torch.save(payload, tmp)
    tmp.replace(out)


def cap_tokens(examples: list, tokenizer, max_length: int, budget: int, seed: int) -> list:
    """The examples of a seeded shuffle whose tokens add up to at most ``budget``, in original order.

    Why: a training step's cost grows with its tokens, so a token budget gives every task about the same
    training compute (CoLA's 11-token sentences get ~6x the examples of RTE's 66-token pairs)."""
    import random

    texts_b = [e.text_b for e in examples] if examples and examples[0].text_b is not None else None
    lengths = [len(ids) for ids in tokenizer([e.text_a for e in examples], texts_b, truncation=True,
                                             max_length=max_length)["input_ids"]]
    order = list(range(len(examples)))
    random.Random(f"dpbert-tokens|{seed}").shuffle(order)
    kept, total = [], 0
    for i in order:
        if total + lengths[i] > budget:
            break
        kept.append(i)
        total += lengths[i]
    return [examples[i] for i in sorted(kept)]


def load_prepared(path: str | Path) -> PreparedTask:
    """Read a file written by :func:`prepare_task`. A truncated or corrupt one (a full disk, a copy cut
    off; torch says "PytorchStreamReader failed", "[Errno 22]" or an unpickling error) raises one
    :class:`DataError` paragraph naming the file and the fix."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        return PreparedTask(
            payload["task"],
            {k: EncodedSplit.from_dict(v) for k, v in payload["splits"].items()},
            payload["examples"],
        )
    except FileNotFoundError:
        raise
    except Exception as exc:  # RuntimeError (zip), OSError, EOFError, UnpicklingError, KeyError, ...
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise DataError(
            f"the prepared data file {str(path)!r} could not be read ({reason}); it is truncated or "
            f"corrupt (a full disk or an interrupted copy can leave it so). Fix: delete it and rerun the "
            f"workflow; Snakemake rebuilds it with the prepare_data rule."
        ) from exc
