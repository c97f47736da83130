"""The paper's Table 1 layout, its Markdown rendering and the paper comparison.

Why: the reproduced numbers must be read side by side with the paper's, with
the same averaging convention (MNLI counts once as mean(m, mm)) and with honest
empty cells. Rows can only be compared over the same tasks, so ``avg`` is taken
over the tasks *every* row covers (:func:`common_tasks`, named in the Markdown),
and ``covered`` states each row's own coverage; the Markdown shows each score
with its bootstrap standard error over the dev examples (dpbert.uncertainty).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO_ROOT: Path = Path(__file__).resolve().parents[1]
PAPER_DIR: Path = REPO_ROOT / "workflow" / "resources" / "paper"

TASK_COLUMNS: list[str] = ["CoLA", "MNLI-m", "MNLI-mm", "SST-2", "QNLI", "MRPC", "QQP", "RTE", "STS-B"]
META_COLUMNS: list[str] = ["profile", "backbone", "device"]
TABLE1_COLUMNS: list[str] = (
    ["model", "speedup", "speedup_latency", "speedup_layer"] + TASK_COLUMNS
    + ["avg", "covered", "n_seeds"] + META_COLUMNS
)
AVG_TASKS_ATTR = "avg_tasks"
"""``table.attrs[AVG_TASKS_ATTR]``: the tasks ``avg`` is taken over (those every row with a score covers)."""
NON_TASK_COLUMNS: frozenset[str] = frozenset(
    {"model", "speedup", "speedup_latency", "speedup_layer", "avg", "covered", "n_seeds", *META_COLUMNS})

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


def table1(
    selected: pd.DataFrame,
    method_order: list[str],
    tasks: list[str],
    speedup_col: str,
    meta: dict[str, Any],
) -> pd.DataFrame:
    """One row per method (Table 1 layout) from :func:`selection.select_all` output.

    speedup = mean over the row's covered, in-window tasks of `speedup_col`
    (a task's speed-up is the mean over its splits). avg = mean over the tasks
    that every row with a score covers (:func:`common_tasks`, kept in
    ``table.attrs["avg_tasks"]``), MNLI once as mean(m, mm): two rows' averages
    are always over the same tasks; ``covered`` = "k/n", the row's own tasks
    with a score out of the configured ones. Empty cells are NaN; the reason for
    each is kept in ``table.attrs["empty_reasons"]`` for :func:`table1_markdown`.
    """
    if speedup_col not in ("layer_speedup", "latency_speedup"):
        raise ValueError(f"speedup_col must be layer_speedup or latency_speedup, got {speedup_col!r}")
    tcols = task_columns(tasks)
    cols = ["model", "speedup", "speedup_latency", "speedup_layer"] + tcols + ["avg", "covered", "n_seeds"] + META_COLUMNS
    reasons: dict[str, str] = {}
    spreads: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for method in method_order:
        sub = selected[selected["method"] == method]
        display = str(sub["display_name"].iloc[0]) if len(sub) else method
        row: dict[str, Any] = {"model": display}
        task_scores: list[float] = []
        lat: list[float] = []
        lay: list[float] = []
        seeds: list[int] = []
        for task in tasks:
            tsub = sub[sub["task"] == task]
            own_cols = ["MNLI-m", "MNLI-mm"] if task == "MNLI" else [task]
            if tsub.empty:
                for c in own_cols:
                    row[c] = np.nan
                    reasons[f"{display}|{c}"] = REASON_UNCOVERED
                continue
            ok = tsub[tsub["score"].notna()]
            for c in own_cols:
                cell = ok[[_column_of(task, s) == c for s in ok["split"]]]
                if cell.empty:
                    row[c] = np.nan
                    covered = any(_column_of(task, s) == c for s in tsub["split"])
                    reasons[f"{display}|{c}"] = REASON_WINDOW if covered else REASON_UNCOVERED
                    continue
                r = cell.iloc[0]
                row[c] = float(r["score"])
                seeds.append(int(r["n_seeds"]))
                spreads.append({"model": display, "column": c, "score_min": r.get("score_min", np.nan),
                                "score_max": r.get("score_max", np.nan)})
            if ok.empty:
                continue
            vals = [row[c] for c in own_cols if not pd.isna(row[c])]
            task_scores.append(float(np.mean(vals)))
            lat.append(float(ok["latency_speedup"].astype(float).mean()))
            lay.append(float(ok["layer_speedup"].astype(float).mean()))
        row["speedup_latency"] = float(np.nanmean(lat)) if lat and not np.all(np.isnan(lat)) else np.nan
        row["speedup_layer"] = float(np.nanmean(lay)) if lay and not np.all(np.isnan(lay)) else np.nan
        row["speedup"] = row["speedup_latency"] if speedup_col == "latency_speedup" else row["speedup_layer"]
        row["n_seeds"] = min(seeds) if seeds else pd.NA
        for k in META_COLUMNS:
            row[k] = meta.get(k, "")
        rows.append(row)
    avg_tasks = common_tasks(pd.DataFrame(rows), tasks)
    for row in rows:
        own = row_task_scores(row, tasks)
        row["covered"] = f"{len(own)}/{len(tasks)}"
        row["avg"] = float(np.mean([own[t] for t in avg_tasks])) if avg_tasks and own else np.nan
    out = pd.DataFrame(rows, columns=cols)
    for c in tcols + ["avg"]:
        out[c] = out[c].astype(float).round(1)
    for c in ("speedup", "speedup_latency", "speedup_layer"):
        out[c] = out[c].astype(float).round(2)
    out["n_seeds"] = out["n_seeds"].astype("Int64")
    out.attrs[EMPTY_REASONS_ATTR] = reasons
    out.attrs["spread"] = spreads
    out.attrs[AVG_TASKS_ATTR] = avg_tasks
    return out


def mark_degenerate(table: pd.DataFrame, methods: list[str], cells: dict[tuple[str, str], Any]) -> pd.DataFrame:
    """Copy of a :func:`table1` table (rows in ``methods`` order) with :data:`DEGENERATE_COLUMN`: for
    each row, its task columns (MNLI: both) whose (task, method) is a key of ``cells``."""
    out = table.copy()
    out.attrs = dict(table.attrs)
    present = set(out.columns)
    marks = []
    for method in methods[: len(out)]:
        cols: list[str] = []
        for task, m in cells:
            if m == method:
                cols += [c for c in (["MNLI-m", "MNLI-mm"] if task == "MNLI" else [task]) if c in present]
        marks.append(";".join(c for c in out.columns if c in cols))
    out[DEGENERATE_COLUMN] = marks + [""] * (len(out) - len(marks))
    return out


def table1_spread(table: pd.DataFrame) -> pd.DataFrame:
    """Long (model, column, score_min, score_max) frame recorded by :func:`table1`."""
    return pd.DataFrame(table.attrs.get("spread", []), columns=["model", "column", "score_min", "score_max"])


def _fmt(v: Any, nd: int) -> str:
    return f"{float(v):.{nd}f}"


def table1_markdown(
    table: pd.DataFrame,
    meta: dict[str, Any],
    notes: list[str],
    spread: pd.DataFrame | None = None,
    se: dict[tuple[str, str], float] | None = None,
) -> str:
    """Markdown Table 1 with a provenance header and footnoted empty cells.

    meta keys used: profile, backbone, device, seeds (list or str),
    window ((lo, hi), default (1.30, 1.96)), speedup_col.  `spread` is a long
    frame (model, column, score_min, score_max); None -> :func:`table1_spread`;
    cells show "median (min–max)" where the row's n_seeds > 1. ``se`` maps
    (model, column) -> bootstrap standard error (column: a task column or
    "avg"); such a cell shows "81.2 ±1.4". The avg footnote names the tasks
    avg is over (``table.attrs["avg_tasks"]``).
    """
    lo, hi = meta.get("window", (1.30, 1.96))
    win = f"{float(lo):.2f}–{float(hi):.2f}x"
    sp_col = meta.get("speedup_col", "")
    sp_name = {"latency_speedup": "measured latency speed-up",
               "layer_speedup": "layer-count speed-up (N / mean layers)"}.get(sp_col, str(sp_col) or "unspecified")
    seeds = meta.get("seeds", "")
    if isinstance(seeds, (list, tuple)):
        seeds = ", ".join(str(s) for s in seeds)
    header = (
        f"**Profile:** {meta.get('profile', '')} · **backbone:** {meta.get('backbone', '')} · "
        f"**device:** {meta.get('device', '')} · **seeds:** {seeds} · **window:** {win} · "
        f"**points selected by:** {sp_name}."
    )
    reasons: dict[str, str] = table.attrs.get(EMPTY_REASONS_ATTR, {})
    marks = {REASON_WINDOW: "†", REASON_UNCOVERED: "‡"}
    legend = {
        REASON_WINDOW: f"† no sweep point in the {win} window.",
        REASON_UNCOVERED: "‡ method has no regression exit / does not cover this task.",
    }
    used: set[str] = set()
    if spread is None:
        spread = table1_spread(table)
    spr: dict[tuple[str, str], tuple[float, float]] = {}
    if spread is not None and not spread.empty:
        for _, r in spread.iterrows():
            spr[(str(r["model"]), str(r["column"]))] = (r["score_min"], r["score_max"])

    show = [c for c in table.columns if c not in META_COLUMNS and c != DEGENERATE_COLUMN]
    lines = [header, "", "| " + " | ".join(show) + " |", "|" + "|".join("---" for _ in show) + "|"]
    task_cols = [c for c in show if c not in NON_TASK_COLUMNS]
    degenerate_used = False
    se_used = False
    for _, r in table.iterrows():
        model = str(r["model"])
        multi = not pd.isna(r.get("n_seeds", pd.NA)) and int(r["n_seeds"]) > 1
        marked = set(str(r.get(DEGENERATE_COLUMN, "") or "").split(";")) - {"", "nan"}
        cells: list[str] = []
        for c in show:
            v = r[c]
            if c == "model":
                cells.append(model)
            elif pd.isna(v):
                reason = reasons.get(f"{model}|{c}")
                if reason in marks:
                    used.add(reason)
                    cells.append("—" + marks[reason])
                else:
                    cells.append("—")
            elif c in ("speedup", "speedup_latency", "speedup_layer"):
                cells.append(_fmt(v, 2) + "x")
            elif c == "n_seeds":
                cells.append(str(int(v)))
            elif c == "covered":
                cells.append(str(v))
            else:
                text = _fmt(v, 1)
                err = (se or {}).get((model, c), np.nan)
                if (c in task_cols or c == "avg") and not pd.isna(err):
                    text += f" ±{float(err):.1f}"
                    se_used = True
                if c in task_cols and multi and (model, c) in spr and not pd.isna(spr[(model, c)][0]):
                    mn, mx = spr[(model, c)]
                    text += f" ({_fmt(mn, 1)}–{_fmt(mx, 1)})"
                cells.append(text)
            if c in marked:
                cells[-1] += DEGENERATE_MARK
                degenerate_used = True
        lines.append("| " + " | ".join(cells) + " |")
    foot = [legend[k] for k in (REASON_WINDOW, REASON_UNCOVERED) if k in used]
    if degenerate_used:
        foot.append(f"{DEGENERATE_MARK} the method is degenerate on this task: it is not shown to learn there "
                    "(e.g. planners that ignore the input, an off-ramp or a selected point at the majority class); "
                    "the reason is in results/health.md.")
    if any(not pd.isna(n) and int(n) > 1 for n in table.get("n_seeds", [])):
        foot.append("Cells with several seeds show median (min–max) over seeds.")
    avg_tasks = table.attrs.get(AVG_TASKS_ATTR)
    if avg_tasks is None:
        avg_tasks = common_tasks(table, tasks_of_table(table))
    all_tasks = tasks_of_table(table)
    if avg_tasks:
        left = [t for t in all_tasks if t not in avg_tasks]
        foot.append(f"avg over {', '.join(avg_tasks)}: the {len(avg_tasks)} of {len(all_tasks)} tasks that every row "
                    "with a score covers, so any two rows' averages are over the same tasks (MNLI once, as "
                    "mean(MNLI-m, MNLI-mm))" + (f"; not in it: {', '.join(left)}" if left else "") + ". covered: "
                    "the tasks a row has a score on.")
    else:
        foot.append("avg: — (no task is covered by every row with a score, so no average compares the rows). "
                    "covered: the tasks a row has a score on.")
    if se_used:
        foot.append("± is the bootstrap standard error of the score over the dev examples (1000 resamples of the "
                    "examples, the same resamples for every row; avg: of the average). reproduction.md judges a "
                    "difference between two rows against its own paired standard error: within noise under 2.")
    body = "\n".join(lines)
    # blank line between footnotes so each renders as its own paragraph
    return body + "\n\n" + "\n\n".join(foot + list(notes)) + "\n"


def paper_table1(path: Path | None = None) -> pd.DataFrame:
    """The paper's Table 1 (dev) as shipped in workflow/resources/paper."""
    return pd.read_csv(path or PAPER_DIR / "table1_dev.csv")


def compare_with_paper(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Long (model, column, ours, paper, diff) frame; outer over models/columns.

    Our MNLI is mean(MNLI-m, MNLI-mm) against the paper's single MNLI number;
    models match by display name.  Missing cells on either side stay NaN.
    """
    o = ours.copy()
    if "MNLI-m" in o.columns or "MNLI-mm" in o.columns:
        parts = [o[c].astype(float) for c in ("MNLI-m", "MNLI-mm") if c in o.columns]
        o["MNLI"] = pd.concat(parts, axis=1).mean(axis=1, skipna=True)
    skip = {"model", "speedup_latency", "speedup_layer", "n_seeds", "covered", "MNLI-m", "MNLI-mm", DEGENERATE_COLUMN,
            *META_COLUMNS}
    p_cols = [c for c in paper.columns if c != "model"]
    o_cols = [c for c in o.columns if c not in skip]
    columns = p_cols + [c for c in o_cols if c not in p_cols]
    models = list(dict.fromkeys(list(o["model"].astype(str)) + list(paper["model"].astype(str))))
    oi = o.assign(model=o["model"].astype(str)).drop_duplicates("model").set_index("model")
    pi = paper.assign(model=paper["model"].astype(str)).drop_duplicates("model").set_index("model")
    rows = []
    for m in models:
        for c in columns:
            ov = float(oi.at[m, c]) if (m in oi.index and c in oi.columns and not pd.isna(oi.at[m, c])) else np.nan
            pv = float(pi.at[m, c]) if (m in pi.index and c in pi.columns and not pd.isna(pi.at[m, c])) else np.nan
            rows.append({"model": m, "column": c, "ours": ov, "paper": pv, "diff": round(ov - pv, 4)})
    return pd.DataFrame(rows, columns=["model", "column", "ours", "paper", "diff"])
