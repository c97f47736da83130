"""Download GLUE from the Hugging Face hub and write it as the standard GLUE TSV folder.

    python -m dpbert.tools.export_glue --out /path/to/glue_data                    # the 8 tasks
    python -m dpbert.tools.export_glue --out /path/to/glue_data --tasks CoLA MRPC RTE
    snakemake --cores 2 --configfile workflow/config/minilm.yaml \
        --config data='{"source": "glue_tsv", "data_dir": "/path/to/glue_data"}' tasks='[CoLA, MRPC, RTE]'

For a machine with network: ``datasets.load_dataset("glue", <config>)`` (the hub's nyu-mll/glue),
each task written to ``OUT/<Task>/`` in the layout of the GLUE download script, which is what the
harness's ``glue_tsv`` source reads (:func:`dpbert.data.sources.load_glue_tsv`): CoLA's train/dev
without a header (source, label, mark, sentence), SST-2 ``sentence``/``label``, MRPC ``Quality``,
``#1 ID``, ``#2 ID``, ``#1 String``, ``#2 String``, MNLI's ``dev_matched.tsv``/``dev_mismatched.tsv``
with ``gold_label`` names, QNLI and RTE with label names, STS-B ``score``. Columns the hub's copy does
not carry (MRPC's and QQP's sentence ids, CoLA's source) are filled with the row index or ``glue``;
the reader reads none of them. Read back by the harness, the files give the same examples as the hub
source (``data.source: hub``), ids included; tabs and line breaks inside a text become spaces (a TSV
field cannot hold them). WNLI is not one of the paper's tasks and is not exported. Offline, the
datasets cache is used when it holds the task; otherwise the tool stops with one paragraph saying
what to do.
"""

from __future__ import annotations

import argparse
import numbers
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dpbert.data.hub import datasets_offline, hub_endpoint, hub_reachable
from dpbert.data.tasks import TASKS, TaskSpec, UnknownTaskError, get_task

HEADERS: dict[str, tuple[list[str] | None, list[str]]] = {
    # task -> (train/dev header, None: no header row; test header). The reader finds its columns by
    # these names (TaskSpec.tsv), CoLA's train/dev by position.
    "CoLA": (None, ["index", "sentence"]),
    "SST-2": (["sentence", "label"], ["index", "sentence"]),
    "MRPC": (["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
             ["index", "#1 ID", "#2 ID", "#1 String", "#2 String"]),
    "QQP": (["id", "qid1", "qid2", "question1", "question2", "is_duplicate"], ["id", "question1", "question2"]),
    "MNLI": (["index", "sentence1", "sentence2", "gold_label"], ["index", "sentence1", "sentence2"]),
    "QNLI": (["index", "question", "sentence", "label"], ["index", "question", "sentence"]),
    "RTE": (["index", "sentence1", "sentence2", "label"], ["index", "sentence1", "sentence2"]),
    "STS-B": (["index", "sentence1", "sentence2", "score"], ["index", "sentence1", "sentence2"]),
}
NAMED_LABELS = frozenset({"MNLI", "QNLI", "RTE"})
"""Tasks whose GLUE files spell the label ("entailment"); the others write the class id."""

_BREAKS = re.compile(r"[\t\r\n]")


class ExportError(RuntimeError):
    """The export cannot go on; the message is one paragraph naming the problem and the fix."""


def splits_of(spec: TaskSpec, with_test: bool) -> list[str]:
    """Our split names (= the TSV file stems), train and dev first."""
    return ["train", *spec.dev_splits, *(spec.test_splits if with_test else ())]


def hub_split(split: str) -> str:
    """The hub's name of our split: dev -> validation, dev_matched -> validation_matched."""
    return split.replace("dev", "validation", 1)


def layout_text(tasks: Iterable[str] = TASKS) -> str:
    """The standard GLUE folder layout for ``tasks``, on one line: ``CoLA/{train,dev}.tsv, ...``."""
    parts = []
    for t in tasks:
        spec = get_task(t)
        parts.append(f"{spec.name}/{{{','.join(splits_of(spec, False))}}}.tsv")
    return ", ".join(parts)


def clean(text: Any) -> str:
    """A text as one TSV field: tabs and line breaks become spaces."""
    return _BREAKS.sub(" ", str(text))


def label_field(spec: TaskSpec, value: Any, where: str) -> str:
    """A train/dev label as the GLUE file writes it (a score, a class id, or the class name)."""
    if spec.is_regression:
        score = float(value)
        if not 0.0 <= score <= 5.0:
            raise ExportError(f"{where}: label {value!r} is not a similarity score in [0, 5]. The hub's copy "
                              f"of {spec.name} looks damaged: clear its datasets cache and export again.")
        return repr(score)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or int(value) != value \
            or not 0 <= int(value) < spec.num_labels:
        raise ExportError(f"{where}: label {value!r} is not a class id of {spec.name} (0..{spec.num_labels - 1}). "
                          f"The hub's copy looks damaged: clear its datasets cache and export again.")
    return spec.label_names[int(value)] if spec.name in NAMED_LABELS else str(int(value))


def task_rows(spec: TaskSpec, split: str, records: Iterable[Mapping[str, Any]]) -> tuple[list[str] | None,
                                                                                        list[list[str]]]:
    """The header (None for CoLA's train/dev) and the rows of ``split``'s TSV file from the hub's records."""
    is_test = split.startswith("test")
    header = HEADERS[spec.name][1 if is_test else 0]
    col_a, col_b = spec.hub_columns
    rows = []
    for i, rec in enumerate(records):
        a, b = clean(rec[col_a]), clean(rec[col_b]) if col_b else None
        if is_test:
            label = None
        else:
            label = label_field(spec, rec["label"], f"glue/{spec.hub_name} {hub_split(split)} row {i}")
        idx = str(rec.get("idx", i))
        if spec.name == "CoLA":
            rows.append([idx, a] if is_test else ["glue", label, "" if label == "1" else "*", a])
        elif spec.name == "SST-2":
            rows.append([idx, a] if is_test else [a, label])
        elif spec.name == "MRPC":
            ids = [f"{idx}a", f"{idx}b"]
            rows.append([idx, *ids, a, b] if is_test else [label, *ids, a, b])
        elif spec.name == "QQP":
            rows.append([idx, a, b] if is_test else [idx, f"{idx}a", f"{idx}b", a, b, label])
        else:  # MNLI, QNLI, RTE, STS-B: index, the two texts, the label last
            rows.append([idx, a, b] + ([] if is_test else [label]))
    return header, rows


def check_label_names(spec: TaskSpec, split: str, dataset: Any) -> None:
    """Where the hub's split says its class names, they are the harness's, in its order."""
    feature = getattr(dataset, "features", {}).get("label") if hasattr(dataset, "features") else None
    names = list(getattr(feature, "names", []) or [])
    if names and not spec.is_regression and names != list(spec.label_names):
        raise ExportError(f"glue/{spec.hub_name} {hub_split(split)} names its labels {names}, the harness "
                          f"{list(spec.label_names)}: a class id would change meaning. The hub's copy is not the "
                          f"GLUE this tool knows; export from the nyu-mll/glue dataset.")


def write_tsv(path: Path, header: list[str] | None, rows: Sequence[Sequence[str]]) -> None:
    """One GLUE TSV file, written under a ``.partial`` name and renamed when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        for row in ([header] if header is not None else []) + list(rows):
            fh.write("\t".join(row) + "\n")
    tmp.replace(path)


def write_task(spec: TaskSpec, dataset: Mapping[str, Any], out: Path, with_test: bool = False) -> dict[str, int]:
    """Write ``out/<Task>/<split>.tsv`` for each of the task's splits; returns the rows per split."""
    counts = {}
    for split in splits_of(spec, with_test):
        name = hub_split(split)
        if name not in dataset:
            raise ExportError(f"glue/{spec.hub_name} from the hub has no split {name!r} (it has {list(dataset)}), "
                              f"so {spec.name}/{split}.tsv cannot be written. Clear the datasets cache of "
                              f"glue/{spec.hub_name} and export again.")
        if not split.startswith("test"):
            check_label_names(spec, split, dataset[name])
        header, rows = task_rows(spec, split, dataset[name])
        write_tsv(out / spec.name / f"{split}.tsv", header, rows)
        counts[split] = len(rows)
    return counts


def unreachable_message(spec: TaskSpec, why: str, offline: bool) -> str:
    """One paragraph: the hub could not give the task, and the way to the same files without it."""
    cause = (f"the Hugging Face hub ({hub_endpoint()}) cannot be reached from this machine (no network, or "
             f"HF_HUB_OFFLINE is set) and the datasets cache does not hold it" if offline
             else "the hub did not give it")
    return (f"Cannot export GLUE {spec.name}: datasets.load_dataset('glue', {spec.hub_name!r}) failed ({why}): "
            f"{cause}. Run this tool on a machine with network (then copy the folder here), or put the GLUE TSV "
            f"files in the standard GLUE layout yourself, one folder per task under one root: "
            f"{layout_text()}, as the GLUE download script "
            f"writes them; then run with --configfile workflow/config/minilm.yaml "
            f"--config data='{{\"source\": \"glue_tsv\", \"data_dir\": \"/that/root\"}}' (real text needs a "
            f"pretrained tokenizer: the demo's small model knows only the synthetic words).")


def load_hub(spec: TaskSpec, load: Callable[..., Any] | None = None) -> Any:
    """``datasets.load_dataset("glue", hub_name)``; offline (hub not reachable) from the datasets cache.
    Any failure is an :class:`ExportError` with :func:`unreachable_message`."""
    offline = not hub_reachable()
    try:
        import datasets

        with datasets_offline(offline):
            return (load or datasets.load_dataset)("glue", spec.hub_name)
    except Exception as exc:  # ConnectionError offline, OSError, the hub's own errors
        raise ExportError(unreachable_message(spec, f"{type(exc).__name__}: {exc}", offline)) from exc


def resolve_tasks(names: Sequence[str]) -> list[TaskSpec]:
    try:
        return [get_task(n) for n in names]
    except UnknownTaskError as exc:
        raise ExportError(f"{exc} The exporter writes the paper's 8 GLUE tasks: {', '.join(TASKS)}.") from None


def existing_files(specs: Sequence[TaskSpec], out: Path, with_test: bool) -> list[Path]:
    return [out / s.name / f"{split}.tsv" for s in specs for split in splits_of(s, with_test)
            if (out / s.name / f"{split}.tsv").exists()]


def export(names: Sequence[str], out: Path, *, with_test: bool = False, overwrite: bool = False,
           load: Callable[..., Any] | None = None) -> dict[str, dict[str, int]]:
    """Export ``names`` into ``out``; returns rows per task and split. Refuses to replace files unless
    ``overwrite``; loads every task before writing any, so a failure leaves no half-written folder."""
    specs = resolve_tasks(names)
    present = existing_files(specs, out, with_test)
    if present and not overwrite:
        raise ExportError(f"{', '.join(str(p) for p in present[:4])}{' ...' if len(present) > 4 else ''} "
                          f"already exist(s). Pass --overwrite to replace them, or choose another --out.")
    loaded = [(spec, load_hub(spec, load)) for spec in specs]
    return {spec.name: write_task(spec, ds, out, with_test) for spec, ds in loaded}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="the GLUE root folder to write (OUT/CoLA/train.tsv ...)")
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), metavar="TASK",
                    help=f"tasks to export (default: all 8: {' '.join(TASKS)})")
    ap.add_argument("--with-test", action="store_true", help="also write the unlabelled test splits")
    ap.add_argument("--overwrite", action="store_true", help="replace existing TSV files")
    args = ap.parse_args(argv)
    try:
        counts = export(args.tasks, args.out, with_test=args.with_test, overwrite=args.overwrite)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    for task, splits in counts.items():
        print(f"wrote {args.out / task}: " + ", ".join(f"{split}.tsv {n} rows" for split, n in splits.items()))


if __name__ == "__main__":
    main()
