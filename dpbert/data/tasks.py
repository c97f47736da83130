"""The eight GLUE tasks used by the DPBERT paper, as one immutable registry.

Why a registry: every other module (data loading, metrics, heads, tables) needs the
same facts about a task -- label count, regression or not, pair or single sentence,
dev split names, metric -- and they must never disagree.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

__all__ = ["TaskSpec", "TASKS", "UnknownTaskError", "get_task"]


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

    @property
    def test_splits(self) -> tuple[str, ...]:
        """Test split names, mirroring ``dev_splits`` (MNLI has two)."""
        return tuple(s.replace("dev", "test", 1) for s in self.dev_splits)


_ENTAIL2 = ("entailment", "not_entailment")

TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        TaskSpec("CoLA", "cola", 2, False, False, ("dev",), "mcc", ("unacceptable", "acceptable")),
        TaskSpec(
            "MNLI", "mnli", 3, False, True, ("dev_matched", "dev_mismatched"), "acc",
            ("entailment", "neutral", "contradiction"),
        ),
        TaskSpec("SST-2", "sst2", 2, False, False, ("dev",), "acc", ("negative", "positive")),
        TaskSpec("QNLI", "qnli", 2, False, True, ("dev",), "acc", _ENTAIL2),
        TaskSpec("MRPC", "mrpc", 2, False, True, ("dev",), "acc_f1", ("not_equivalent", "equivalent")),
        TaskSpec("QQP", "qqp", 2, False, True, ("dev",), "acc_f1", ("not_duplicate", "duplicate")),
        TaskSpec("RTE", "rte", 2, False, True, ("dev",), "acc", _ENTAIL2),
        TaskSpec("STS-B", "stsb", 1, True, True, ("dev",), "pearson_spearman", ()),
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
