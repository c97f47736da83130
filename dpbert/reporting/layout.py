"""The columns of the paper's Table 1 layout: task and split -> column, the tasks a table covers; and the
Markdown table every report prints (:func:`markdown_table`); the path of a profile's own output that a
report names (:func:`results_file`).

Shared by every table and by the bootstrap (dpbert.reporting.uncertainty): MNLI has two columns
(matched, mismatched) and counts once in an average, as mean(m, mm).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from dpbert.run.profiles import DEFAULT_PROFILE, results_dir

TASK_COLUMNS: list[str] = ["CoLA", "MNLI-m", "MNLI-mm", "SST-2", "QNLI", "MRPC", "QQP", "RTE", "STS-B"]
META_COLUMNS: list[str] = ["profile", "backbone", "device"]
TABLE1_COLUMNS: list[str] = (
    ["model", "speedup", "speedup_latency", "speedup_layer", "speedup_flops"] + TASK_COLUMNS
    + ["avg", "covered", "n_seeds"] + META_COLUMNS
)
AVG_TASKS_ATTR = "avg_tasks"
"""``table.attrs[AVG_TASKS_ATTR]``: the tasks ``avg`` is taken over (those every row with a score covers)."""
NON_TASK_COLUMNS: frozenset[str] = frozenset(
    {"model", "speedup", "speedup_latency", "speedup_layer", "speedup_flops", "avg", "covered", "n_seeds",
     *META_COLUMNS})

MNLI_SPLIT_COLUMNS: dict[str, str] = {"dev_matched": "MNLI-m", "dev_mismatched": "MNLI-mm"}

REASON_WINDOW = "window"
REASON_UNCOVERED = "uncovered"
EMPTY_REASONS_ATTR = "empty_reasons"
"""``table.attrs[EMPTY_REASONS_ATTR]`` maps "model|column" -> reason."""

DEGENERATE_COLUMN = "degenerate"
"""Optional last column of Table 1 (:func:`mark_degenerate`): the row's task columns whose method is
degenerate on that task (results/health.csv), joined by ";"; the numeric columns stay numeric."""
DEGENERATE_MARK = "§"


def task_columns(tasks: list[str]) -> list[str]:
    """Table columns for the configured tasks, in the paper's order."""
    cols: list[str] = []
    for t in tasks:
        cols.extend(["MNLI-m", "MNLI-mm"] if t == "MNLI" else [t])
    known = [c for c in TASK_COLUMNS if c in cols]
    extra = [c for c in cols if c not in TASK_COLUMNS]
    return known + extra


def _column_of(task: str, split: str) -> str:
    if task == "MNLI":
        return MNLI_SPLIT_COLUMNS.get(split, f"MNLI-{split}")
    return task


column_of = _column_of


def _task_cols(task: str) -> list[str]:
    return ["MNLI-m", "MNLI-mm"] if task == "MNLI" else [task]


def row_task_scores(row: pd.Series | dict, tasks: list[str]) -> dict[str, float]:
    """A Table 1 row's score per task it covers: MNLI as mean(MNLI-m, MNLI-mm), only with both."""
    out: dict[str, float] = {}
    for t in tasks:
        vals = [row.get(c, np.nan) for c in _task_cols(t)]
        if all(not pd.isna(v) for v in vals):
            out[t] = float(np.mean([float(v) for v in vals]))
    return out


def common_tasks(table: pd.DataFrame, tasks: list[str]) -> list[str]:
    """The tasks (in ``tasks`` order) that every row with at least one score covers: what ``avg`` is
    taken over, so that the averages of any two rows are over the same tasks."""
    covered = [set(row_task_scores(r, tasks)) for _, r in table.iterrows()]
    covered = [c for c in covered if c]
    if not covered:
        return []
    return [t for t in tasks if all(t in c for c in covered)]


def tasks_of_table(table: pd.DataFrame) -> list[str]:
    """The tasks a Table 1 frame has columns for (MNLI once), in the paper's order (others after)."""
    out: list[str] = []
    for c in table.columns:
        if c in NON_TASK_COLUMNS or c == DEGENERATE_COLUMN:
            continue
        t = "MNLI" if c in ("MNLI-m", "MNLI-mm") else c
        if t not in out:
            out.append(t)
    order = ["MNLI" if c.startswith("MNLI") else c for c in TASK_COLUMNS]
    return sorted(out, key=lambda t: order.index(t) if t in order else len(order))


def mean_over(scores: Mapping[str, float], tasks: Sequence[str]) -> float:
    """Mean of ``scores`` over ``tasks``; NaN unless every task has a score."""
    if not tasks or any(t not in scores or pd.isna(scores[t]) for t in tasks):
        return np.nan
    return float(np.mean([scores[t] for t in tasks]))


def figure3_panels(requested: Sequence[str], present: Sequence[str]) -> list[str]:
    """Figure 3's panels: the requested tasks (``reporting.figure3_tasks``) that have data, in that order;
    when none has, every task with data (in ``present``'s order), so a panel is never empty and the figure
    is never blank on a profile without the paper's tasks. The figure3 rule calls it with the profile's
    tasks (for its caption), the figure with the tasks its records hold points for."""
    have = list(dict.fromkeys(str(t) for t in present))
    return [t for t in dict.fromkeys(str(t) for t in requested) if t in have] or have


def seed_phrase(counts: Sequence[int]) -> str:
    """How scores are aggregated over seeds, from the number of seeds of each task (panel): "1 seed",
    "median over 3 seeds", "median over 1–3 seeds" (tasks with different counts). Figure 3's titles and
    the report's captions say it."""
    ns = sorted({int(c) for c in counts if int(c) > 0})
    if not ns:
        return "no seeds"
    if ns == [1]:
        return "1 seed"
    if len(ns) == 1:
        return f"median over {ns[0]} seeds"
    return f"median over {ns[0]}–{ns[-1]} seeds"


def results_file(profile: str, name: str) -> str:
    """The path of a profile's own reporting output ``name`` as a report names it: results/<name> for the
    demo (or no profile), results/<profile>/<name> for another profile, where its rules write it."""
    return f"{results_dir(str(profile or DEFAULT_PROFILE))}/{name}"


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a Markdown (GitHub pipe) table: pandas' ``DataFrame.to_markdown`` (tabulate) of cells
    the caller formatted as strings. Numbers are not re-parsed (``disable_numparse``), so each cell shows
    its string as given ("81.2 ±1.4§", "1.50x"); tabulate pads the columns to a common width."""
    frame = pd.DataFrame([list(r) for r in rows], columns=list(columns), dtype=object)
    return frame.to_markdown(index=False, disable_numparse=True).splitlines()
