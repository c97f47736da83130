"""The eight GLUE tasks used by the DPBERT paper, as one immutable registry.

Why a registry: every other module (data loading, metrics, heads, tables, the planner) needs
the same facts about a task -- label count, regression or not, pair or single sentence, dev split
names, metric, the columns of its GLUE files, its split sizes -- and they must never disagree. This
table is the only place they are written.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

__all__ = ["TaskSpec", "TsvColumns", "TASKS", "UnknownTaskError", "get_task"]


@dataclass(frozen=True)
class TsvColumns:
    """Which columns of a GLUE TSV file hold text_a / text_b / the label (None: absent, e.g. test)."""

    text_a: str
    text_b: str | None
    label: str | None


@dataclass(frozen=True)
class TaskSpec:
    """Static description of one GLUE task (names use the paper's spelling)."""

    name: str
    hub_name: str
    num_labels: int
    is_regression: bool
    is_pair: bool
    dev_splits: tuple[str, ...]
    metric: str
    label_names: tuple[str, ...]
    metric_label: str  # the metric as an axis label ("accuracy x100")
    tsv: tuple[TsvColumns, TsvColumns]  # columns of the GLUE TSV files: (train/dev, test)
    hub_columns: tuple[str, str | None]  # text columns of the hub's `glue` dataset
    text_fields: tuple[str, str]  # how the case-study table names text_a / text_b
    glue_sizes: tuple[tuple[str, int], ...]  # examples per split of the real GLUE data (the planner's job sizes)

    @property
    def sizes(self) -> dict[str, int]:
        """``glue_sizes`` as a dict: split -> examples."""
        return dict(self.glue_sizes)

    @property
    def test_splits(self) -> tuple[str, ...]:
        """Test split names, mirroring ``dev_splits`` (MNLI has two)."""
        return tuple(s.replace("dev", "test", 1) for s in self.dev_splits)


_ENTAIL2 = ("entailment", "not_entailment")
_ACC, _ACC_F1 = "accuracy x100", "mean of accuracy and F1 x100"


def _tsv(text_a: str, text_b: str | None, label: str) -> tuple[TsvColumns, TsvColumns]:
    """Train/dev files carry the label column; test files the same texts without it."""
    return TsvColumns(text_a, text_b, label), TsvColumns(text_a, text_b, None)


TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        TaskSpec("CoLA", "cola", 2, False, False, ("dev",), "mcc", ("unacceptable", "acceptable"),
                 "Matthews corr. x100", _tsv("sentence", None, "label"), ("sentence", None),
                 ("Sentence", "Sentence 2"), (("train", 8551), ("dev", 1043), ("test", 1063))),
        TaskSpec("MNLI", "mnli", 3, False, True, ("dev_matched", "dev_mismatched"), "acc",
                 ("entailment", "neutral", "contradiction"), _ACC, _tsv("sentence1", "sentence2", "gold_label"),
                 ("premise", "hypothesis"), ("Premise", "Hypothesis"),
                 (("train", 392702), ("dev_matched", 9815), ("dev_mismatched", 9832), ("test_matched", 9796),
                  ("test_mismatched", 9847))),
        TaskSpec("SST-2", "sst2", 2, False, False, ("dev",), "acc", ("negative", "positive"), _ACC,
                 _tsv("sentence", None, "label"), ("sentence", None), ("Sentence", "Sentence 2"),
                 (("train", 67349), ("dev", 872), ("test", 1821))),
        TaskSpec("QNLI", "qnli", 2, False, True, ("dev",), "acc", _ENTAIL2, _ACC, _tsv("question", "sentence", "label"),
                 ("question", "sentence"), ("Question", "Context"), (("train", 104743), ("dev", 5463), ("test", 5463))),
        TaskSpec("MRPC", "mrpc", 2, False, True, ("dev",), "acc_f1", ("not_equivalent", "equivalent"), _ACC_F1,
                 _tsv("#1 String", "#2 String", "Quality"), ("sentence1", "sentence2"), ("Sentence 1", "Sentence 2"),
                 (("train", 3668), ("dev", 408), ("test", 1725))),
        TaskSpec("QQP", "qqp", 2, False, True, ("dev",), "acc_f1", ("not_duplicate", "duplicate"), _ACC_F1,
                 _tsv("question1", "question2", "is_duplicate"), ("question1", "question2"), ("Question 1", "Question 2"),
                 (("train", 363846), ("dev", 40430), ("test", 390965))),
        TaskSpec("RTE", "rte", 2, False, True, ("dev",), "acc", _ENTAIL2, _ACC, _tsv("sentence1", "sentence2", "label"),
                 ("sentence1", "sentence2"), ("Sentence 1", "Sentence 2"), (("train", 2490), ("dev", 277), ("test", 3000))),
        TaskSpec("STS-B", "stsb", 1, True, True, ("dev",), "pearson_spearman", (), "mean of Pearson and Spearman x100",
                 _tsv("sentence1", "sentence2", "score"), ("sentence1", "sentence2"), ("Sentence 1", "Sentence 2"),
                 (("train", 5749), ("dev", 1500), ("test", 1379))),
    )
}


class UnknownTaskError(ValueError):
    """Raised for a task name that is neither a paper spelling nor a hub config name."""


def _lookup_table() -> dict[str, TaskSpec]:
    table: dict[str, TaskSpec] = {}
    for spec in TASKS.values():
        table[spec.name.lower()] = spec
        table[spec.hub_name.lower()] = spec
    return table


_LOOKUP = _lookup_table()


def get_task(name: str) -> TaskSpec:
    """Resolve ``name`` ("SST-2", "sst-2", "sst2", ...) to its :class:`TaskSpec`.

    Why lenient: configs and CLIs use both the paper spelling and the hub name.
    Unknown names fail loudly with the closest valid spelling, so a typo in a config
    does not silently run the wrong task.
    """
    if isinstance(name, TaskSpec):
        return name
    key = str(name).strip().lower()
    if key in _LOOKUP:
        return _LOOKUP[key]
    valid = list(TASKS)
    # Match against lowercase forms of both spellings, then map back to the paper name.
    close = difflib.get_close_matches(key, list(_LOOKUP), n=1, cutoff=0.4)
    hint = f" Did you mean {_LOOKUP[close[0]].name!r}?" if close else ""
    raise UnknownTaskError(
        f"Unknown task {name!r}. Valid tasks are: {', '.join(valid)} "
        f"(case-insensitive; hub names like 'sst2' also work).{hint}"
    )
