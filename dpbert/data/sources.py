"""One loading interface for the eight GLUE tasks, from three sources.

* ``synthetic`` -- deterministic demo data in GLUE's shapes (see :mod:`dpbert.data.synthetic`);
* ``glue_tsv``  -- the standard GLUE download folder (``data_dir/CoLA/train.tsv`` ...);
* ``hub``       -- ``datasets.load_dataset("glue", ...)`` (needs network or a warm cache).

Why one interface: training/eval code only ever sees ``dict[split, list[Example]]``, so
switching source is a config change. Every bad input raises :class:`DataError` with one
paragraph naming the file/folder/column and how to fix it.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import random
import sys
from pathlib import Path
from typing import Any

from dpbert.data.examples import Example
from dpbert.data.hub import hub_reachable
from dpbert.data.tasks import TaskSpec, get_task

__all__ = ["DataError", "SOURCES", "load_task", "load_glue_tsv", "load_glue_hub"]

log = logging.getLogger(__name__)

SOURCES = ("synthetic", "glue_tsv", "hub")


class DataError(ValueError):
    """Bad data input (missing folder/file/column, bad label, empty split, offline hub)."""


# --------------------------------------------------------------------------- GLUE TSV layout
MAX_MALFORMED_SHARE = 0.05
"""The share of a GLUE TSV's data rows that may have the wrong column count before it is refused.

Why: the real GLUE files have a handful of such rows (QQP: questions holding a tab), far under 1%,
and dropping them is what every GLUE loader does. More than 5% means the file itself is wrong (another
task's file, a re-save with other separators, a cut-off download): training on what is left would
give a result that looks fine and is not, so the job stops naming the file instead."""

MALFORMED_ROWS_ALWAYS_DROPPED = 5
"""Up to this many malformed rows are dropped with a warning whatever their share, so that a small
hand-made file with one broken row is not refused (a share of a 10-row file says little)."""

# CoLA train/dev have no header; these are the names we give their four columns.
_COLA_NOHEADER = ("source", "label", "original_mark", "sentence")


def _split_files(spec: TaskSpec, with_test: bool) -> dict[str, str]:
    files = {"train": "train.tsv"}
    files.update({s: f"{s}.tsv" for s in spec.dev_splits})
    if with_test:
        files.update({s: f"{s}.tsv" for s in spec.test_splits})
    return files


def check_glue_folder(task: str, data_dir: str | os.PathLike[str]) -> None:
    """Before any job: the task's folder and its train/dev files exist (DataError naming what is missing)."""
    spec = get_task(task)
    folder = _find_task_dir(spec, Path(data_dir))
    missing = [f for f in _split_files(spec, with_test=False).values() if not (folder / f).is_file()]
    if missing:
        raise DataError(
            f"the GLUE folder {str(folder)!r} for {spec.name} lacks {', '.join(missing)}. The standard GLUE "
            f"layout has {', '.join(_split_files(spec, with_test=False).values())} there; restore the files "
            f"or remove {spec.name} from `tasks:` in the config."
        )


def _find_task_dir(spec: TaskSpec, root: Path) -> Path:
    """``root/<paper name>``; a unique case-insensitive match of the paper or hub name
    ("cola", "sst2") is accepted too, since hand-made folders vary."""
    exact = root / spec.name
    if exact.is_dir():
        return exact
    entries = sorted(p.name for p in root.iterdir())
    wanted = {spec.name.lower(), spec.hub_name.lower()}
    matches = [root / n for n in entries if n.lower() in wanted and (root / n).is_dir()]
    if len(matches) == 1:
        return matches[0]
    raise DataError(
        f"GLUE task folder for {spec.name} not found: expected the folder {str(exact)!r} "
        f"(named {spec.name!r}, as in the standard GLUE download). {str(root)!r} contains: "
        f"{', '.join(entries) if entries else '(nothing)'}. Fix: point data.data_dir at the "
        f"GLUE root folder that holds {spec.name}/, or download/unpack GLUE there."
    )


def _read_rows(path: Path) -> list[list[str]]:
    """All rows of a GLUE TSV, quotes taken literally (QUOTE_NONE) so a lone '"' in a
    sentence (MRPC, QQP, SST-2) can never swallow the following lines."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as fh:
            return [row for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE) if row]
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{str(path)!r} is not valid UTF-8 ({exc}). Fix: re-download the GLUE file or "
            f"re-save it as UTF-8 tab-separated text."
        ) from exc


def _looks_like_cola_header(row: list[str]) -> bool:
    return any(c.strip().lower() in ("sentence", "label", "index") for c in row)


def _parse_label(spec: TaskSpec, raw: str, path: Path, line: int) -> float | int:
    value = raw.strip()
    if spec.is_regression:
        try:
            score = float(value)
        except ValueError:
            score = math.nan
        if not (0.0 <= score <= 5.0):
            raise DataError(
                f"{str(path)!r} line {line}: label {raw!r} is not a similarity score in "
                f"[0, 5] as {spec.name} requires. Fix: correct or remove that row."
            )
        return score
    if value in spec.label_names:
        return spec.label_names.index(value)
    if value.isdigit() and int(value) < spec.num_labels:
        return int(value)
    allowed = [str(i) for i in range(spec.num_labels)]
    if spec.name in ("MNLI", "QNLI", "RTE"):
        allowed = list(spec.label_names)
    raise DataError(
        f"{str(path)!r} line {line}: label {raw!r} is outside {spec.name}'s label set "
        f"{allowed}. Fix: correct or remove that row (is this file from another task?)."
    )


def check_malformed_share(path: Path, malformed: int, total: int, first_bad: tuple[int, int],
                          header: list[str]) -> None:
    """Refuse a GLUE file with more malformed rows (wrong column count) than a few
    (:data:`MALFORMED_ROWS_ALWAYS_DROPPED`) and than :data:`MAX_MALFORMED_SHARE` of its ``total`` data
    rows; ``first_bad`` is (line number, column count) of the first such row."""
    if malformed <= MALFORMED_ROWS_ALWAYS_DROPPED or malformed <= MAX_MALFORMED_SHARE * total:
        return
    line, ncols = first_bad
    raise DataError(
        f"{str(path)!r} has {malformed} malformed rows of {total} ({100 * malformed / total:.0f}%, more "
        f"than the {100 * MAX_MALFORMED_SHARE:.0f}% that are dropped with a warning): every row must have "
        f"{len(header)} tab-separated columns like its header ({', '.join(header)}), and the first bad one, "
        f"line {line}, has {ncols}. The file is probably not the GLUE file (another task's, re-saved with "
        f"other separators, or a cut-off download). Fix: restore {path.name} from the GLUE download "
        f"(or write it anew where the hub is reachable: python -m dpbert.tools.export_glue --out <folder>)."
    )


def _read_split(spec: TaskSpec, path: Path, split: str) -> list[Example]:
    is_test = split.startswith("test")
    cols = spec.tsv[1 if is_test else 0]
    if not path.is_file():
        present = sorted(p.name for p in path.parent.iterdir())
        raise DataError(
            f"GLUE file missing: {str(path)!r} (split {split!r} of {spec.name}). The folder "
            f"contains: {', '.join(present) if present else '(nothing)'}. Fix: restore "
            f"{path.name} from the GLUE download."
        )
    rows = _read_rows(path)
    first_line = 1
    if spec.name == "CoLA" and not is_test and not (rows and _looks_like_cola_header(rows[0])):
        header = list(_COLA_NOHEADER)  # the real CoLA train/dev files have no header row
    else:
        if not rows:
            raise DataError(
                f"{str(path)!r} is empty (split {split!r} of {spec.name}): not even a "
                f"header row. Fix: restore the file from the GLUE download."
            )
        header = [h.strip() for h in rows[0]]
        rows = rows[1:]
        first_line = 2
    wanted = [c for c in (cols.text_a, cols.text_b, cols.label) if c is not None]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataError(
            f"{str(path)!r} has no column {', '.join(repr(m) for m in missing)} (needed for "
            f"{spec.name} {split}); its header is {header}. Fix: use the unmodified GLUE "
            f"file, whose header names these columns."
        )
    ia = header.index(cols.text_a)
    ib = header.index(cols.text_b) if cols.text_b else None
    il = header.index(cols.label) if cols.label else None
    hidden: float | int = math.nan if spec.is_regression else -1
    out: list[Example] = []
    skipped = 0
    first_bad: tuple[int, int] | None = None  # (line, its column count)
    for offset, row in enumerate(rows):
        line = first_line + offset
        if len(row) != len(header):  # e.g. the known malformed QQP rows
            skipped += 1
            first_bad = first_bad or (line, len(row))
            continue
        label = _parse_label(spec, row[il], path, line) if il is not None else hidden
        out.append(Example(f"{spec.hub_name}-{split}-{offset}", row[ia],
                           row[ib] if ib is not None else None, label))
    if first_bad is not None:
        check_malformed_share(path, skipped, len(rows), first_bad, header)
    if skipped:
        log.warning("%s: skipped %d malformed row(s) with a column count other than %d",
                    path, skipped, len(header))
    if not out:
        raise DataError(
            f"{str(path)!r} has no usable rows (split {split!r} of {spec.name}; {skipped} "
            f"malformed). Fix: restore the file from the GLUE download."
        )
    return out


def load_glue_tsv(task: str, data_dir: str | os.PathLike[str] | None, *,
                  with_test: bool = False) -> dict[str, list[Example]]:
    """Read ``data_dir/<Task>/*.tsv`` as produced by the standard GLUE download script,
    handling each file's quirks (CoLA's headerless train/dev, QUOTE_NONE, malformed QQP
    rows, string labels) and reading columns by header name where there is a header."""
    spec = get_task(task)
    if data_dir is None or str(data_dir).strip() == "":
        raise DataError(
            "data.source is 'glue_tsv' but no data_dir was given. Fix: set data.data_dir to "
            "the GLUE root folder (the one containing CoLA/, SST-2/, MNLI/ ...)."
        )
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(
            f"GLUE data_dir {str(root)!r} does not exist or is not a folder. Fix: set "
            f"data.data_dir to the GLUE root folder (containing CoLA/, SST-2/, MNLI/ ...), "
            f"or use data.source: synthetic."
        )
    task_dir = _find_task_dir(spec, root)
    return {split: _read_split(spec, task_dir / fname, split)
            for split, fname in _split_files(spec, with_test).items()}


# --------------------------------------------------------------------------- hub
def _hub_offline_message(spec: TaskSpec, why: str) -> str:
    return (
        f"Could not load GLUE {spec.name} from the Hugging Face hub "
        f"(datasets.load_dataset('glue', {spec.hub_name!r})): the hub could not be reached "
        f"or the dataset is not cached ({why}). Fix: fill the cache on a machine with hub "
        f"access and the same HF_HOME (python -m dpbert.run.offline --configfile <config> --fetch), "
        f"or use data.source: glue_tsv with data.data_dir pointing at a local GLUE folder, or "
        f"data.source: synthetic."
    )


def load_glue_hub(task: str, *, with_test: bool = False) -> dict[str, list[Example]]:
    """``datasets.load_dataset("glue", hub_name)`` mapped to our split names/Examples.

    With HF_DATASETS_OFFLINE/HF_HUB_OFFLINE set, or the hub host not answering (one probe),
    datasets runs in offline mode and serves the local cache. Any failure (not cached, the hub
    unreachable) becomes a :class:`DataError` immediately.
    """
    spec = get_task(task)
    offline = not hub_reachable()  # HF_*_OFFLINE set, or no connection: datasets reads its cache
    try:
        import datasets  # local import: heavy, and only this source needs it

        from dpbert.data.hub import datasets_offline

        with datasets_offline(offline):
            ds: Any = datasets.load_dataset("glue", spec.hub_name)
    except DataError:
        raise
    except Exception as exc:  # ConnectionError, OSError, datasets' own errors, ...
        raise DataError(_hub_offline_message(spec, f"{type(exc).__name__}: {exc}")) from exc
    col_a, col_b = spec.hub_columns
    ours = ["train", *spec.dev_splits] + (list(spec.test_splits) if with_test else [])
    out: dict[str, list[Example]] = {}
    for split in ours:
        hub_split = split.replace("dev", "validation", 1)
        if hub_split not in ds:
            raise DataError(
                f"The hub dataset glue/{spec.hub_name} has no split {hub_split!r} (it has "
                f"{list(ds)}). Fix: update the datasets cache or use data.source: glue_tsv."
            )
        rows = []
        for i, rec in enumerate(ds[hub_split]):
            label: float | int = rec["label"]
            if spec.is_regression:
                label = float(label)
                if split.startswith("test") and label < 0:
                    label = math.nan
            else:
                label = int(label)
            rows.append(Example(f"{spec.hub_name}-{split}-{i}", rec[col_a],
                                rec[col_b] if col_b else None, label))
        out[split] = rows
    return out


# --------------------------------------------------------------------------- front door
def _cap(examples: list[Example], n: int | None, seed: int, split: str) -> list[Example]:
    """First n after a seeded shuffle (so a cap keeps all classes), in original order."""
    if n is None or n >= len(examples):
        return examples
    idx = list(range(len(examples)))
    random.Random(f"dpbert-cap|{seed}|{split}").shuffle(idx)
    return [examples[i] for i in sorted(idx[:n])]


def load_task(task: str, source: str, *, data_dir: str | None = None, seed: int = 0,
              max_train: int | None = None, max_dev: int | None = None,
              synthetic_train: int = 2000, synthetic_dev: int = 400,
              with_test: bool = False) -> dict[str, list[Example]]:
    """Load ``task`` from ``source`` ("synthetic" | "glue_tsv" | "hub").

    Returns "train", the task's dev splits and, with ``with_test``, its test splits.
    ``max_train`` caps "train", ``max_dev`` caps each dev split (test is never capped).
    """
    spec = get_task(task)
    for name, cap in (("max_train", max_train), ("max_dev", max_dev)):
        if cap is not None and (not isinstance(cap, int) or cap < 1):
            raise DataError(f"{name} must be a positive integer or null, got {cap!r}. "
                            f"Fix: set data.{name} to e.g. 1000, or null for no cap.")
    if source == "synthetic":
        from dpbert.data.synthetic import (
            make_synthetic,  # local: synthetic imports this module
        )

        splits = make_synthetic(spec.name, seed, synthetic_train, synthetic_dev, with_test=with_test)
    elif source == "glue_tsv":
        splits = load_glue_tsv(spec.name, data_dir, with_test=with_test)
    elif source == "hub":
        splits = load_glue_hub(spec.name, with_test=with_test)
    else:
        raise DataError(f"Unknown data source {source!r}. Fix: set data.source to one of "
                        f"{', '.join(SOURCES)}.")
    splits["train"] = _cap(splits["train"], max_train, seed, "train")
    for split in spec.dev_splits:
        splits[split] = _cap(splits[split], max_dev, seed, split)
    for split, exs in splits.items():
        if not exs:
            where = f" (data_dir {data_dir!r})" if source == "glue_tsv" else ""
            raise DataError(f"Split {split!r} of {spec.name} from source {source!r}{where} is "
                            f"empty. Fix: check the data files, or for synthetic data set "
                            f"synthetic_train/synthetic_dev > 0.")
    return splits
