"""Table 3: case study, the shortest and the longest path DPBERT takes at its selected point.

``pick_case_examples`` and ``table3_markdown`` are pure; ``write_table3`` reads the records (and
the prepared data, for the texts) and writes results/ for the Snakemake rule.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from dpbert.data.tasks import TASKS
from dpbert.reporting.layout import markdown_table
from dpbert.reporting.records import read_csv
from dpbert.reporting.selection import default_primary_split

log = logging.getLogger(__name__)


CASE_COLUMNS = ["task", "split", "path", "idx", "text_a", "text_b", "label", "pred", "correct",
                "n_executed", "executed", "kind", "variant", "knob"]
"""Table 3 rows; ``path`` is "shortest" / "longest", ``kind`` the example's own kind (synthetic data)."""


def _correct(pred: Any, label: Any) -> bool:
    """Classification: pred == label; regression (non-integer values): |pred - label| <= 0.5."""
    try:
        p, lab = float(pred), float(label)
    except (TypeError, ValueError):
        return str(pred) == str(label)
    if np.isnan(p) or np.isnan(lab):
        return False
    if p.is_integer() and lab.is_integer():
        return p == lab
    return abs(p - lab) <= 0.5


def pick_case_examples(
    preds: pd.DataFrame,
    examples: Mapping[str, list[dict]] | list[dict],
    k: int = 3,
    task: str | None = None,
) -> pd.DataFrame:
    """Table 3: the k examples with the shortest and the k with the longest executed paths.

    ``preds``: one task's DPBERT predictions at one operating point (columns split, idx,
    label, pred, n_executed, executed; optionally task, variant, knob).  ``examples``: the
    prepared dev examples, ``{split: [dict(guid, text_a, text_b, label, kind), ...]}`` (or one
    list when there is a single split); ``idx`` indexes them.  Rule: correctly predicted rows
    first (regression: |error| <= 0.5), then path length (ascending for "shortest",
    descending for "longest"), then split and idx; the longest never repeat a shortest row.
    """
    cols = CASE_COLUMNS
    if preds is None or preds.empty:
        return pd.DataFrame(columns=cols)
    df = preds.copy()
    if "split" not in df.columns:
        df["split"] = "dev"
    df["idx"] = df["idx"].astype(int)
    df["n_executed"] = df["n_executed"].astype(int)
    df["correct"] = [_correct(p, lab) for p, lab in zip(df["pred"], df["label"])]
    df["_wrong"] = (~df["correct"]).astype(int)
    df = df.sort_values(["split", "idx"], kind="mergesort")
    short = df.sort_values(["_wrong", "n_executed", "split", "idx"], kind="mergesort").head(k)
    rest = df.drop(index=short.index)
    long_ = rest.assign(_neg=-rest["n_executed"]).sort_values(
        ["_wrong", "_neg", "split", "idx"], kind="mergesort").head(k).drop(columns="_neg")
    rows = []
    for path, part in (("shortest", short), ("longest", long_)):
        for _, r in part.iterrows():
            ex_list = examples if isinstance(examples, list) else examples.get(str(r["split"]), [])
            ex = ex_list[int(r["idx"])] if 0 <= int(r["idx"]) < len(ex_list) else {}
            rows.append({
                "task": task if task is not None else str(r.get("task", "")),
                "split": r["split"], "path": path, "idx": int(r["idx"]),
                "text_a": ex.get("text_a", ""), "text_b": ex.get("text_b", "") or "",
                "label": r["label"], "pred": r["pred"], "correct": bool(r["correct"]),
                "n_executed": int(r["n_executed"]),
                "executed": "" if pd.isna(r["executed"]) else str(r["executed"]),
                "kind": ex.get("kind", ""), "variant": r.get("variant", ""), "knob": r.get("knob", np.nan),
            })
    return pd.DataFrame(rows, columns=cols)


def _label_name(task: str, value: Any) -> str:
    from dpbert.data.tasks import TASKS

    spec = TASKS.get(task)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if spec is not None and spec.label_names and v.is_integer() and 0 <= int(v) < len(spec.label_names):
        return spec.label_names[int(v)]
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _md_text(s: Any, limit: int = 220) -> str:
    s = " ".join(str(s or "").split()).replace("|", "\\|")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def table3_markdown(cases: pd.DataFrame, meta: Mapping[str, Any], notes: Iterable[str] = ()) -> str:
    lines = ["# Table 3: DPBERT's computational paths, case study (dev)", "",
             (f"**Profile:** {meta.get('profile', '')} · seed {meta.get('seed', '')} · DPBERT at its Table 1 "
              "point per task. Per task: the shortest and the longest executed paths, correctly predicted "
              "examples first, ties by example index."), ""]
    if cases.empty:
        lines.append("_No case-study rows._")
    for task in dict.fromkeys(cases["task"]):
        sub = cases[cases["task"] == task]
        fa, fb = TASKS[task].text_fields if task in TASKS else ("Sentence", "Sentence 2")
        lines += [f"## {task} ({sub['variant'].iloc[0]} @ threshold {float(sub['knob'].iloc[0]):g})", ""]
        rows = []
        for _, r in sub.iterrows():
            text = f"**{fa}:** {_md_text(r['text_a'])}"
            if str(r["text_b"] or ""):
                text += f" **{fb}:** {_md_text(r['text_b'])}"
            if str(r["kind"] or ""):
                text += f" _({r['kind']})_"
            pred = _label_name(task, r["pred"]) + ("" if r["correct"] else " ✗")
            layers = str(r["executed"]) or "(none)"
            rows.append([f"{r['path']} ({r['n_executed']})", f"{r['split']}/{r['idx']}", text,
                         _label_name(task, r["label"]), pred, layers])
        lines += markdown_table(["path", "split/idx", "example", "label", "pred", "layers executed"], rows)
        lines.append("")
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def write_table3(*, selected_path: str, pred_paths: Mapping[str, str], data_paths: Mapping[str, str], k: int,
                 meta: Mapping[str, Any], out_csv: str, out_md: str) -> pd.DataFrame:
    from dpbert.reporting.records import read_predictions
    from dpbert.reporting.selection import at_point, selected_point
    from dpbert.run.prepare import load_prepared
    from dpbert.run.runtime import atomic_write_df, atomic_write_text

    from dpbert.reporting.crossfit import main_points

    selected = main_points(read_csv(selected_path))
    frames, notes = [], []
    if not pred_paths:
        notes.append("DPBERT is not in this config's methods: no computational paths to show.")
    for task, path in pred_paths.items():
        point = selected_point(selected, task)
        if point is None:
            notes.append(f"{task}: DPBERT has no point in the speed-up window; skipped.")
            continue
        preds = at_point(read_predictions(path), point)
        prim = default_primary_split(preds["split"]) if len(preds) else "dev"
        preds = preds[preds["split"] == prim]
        examples = load_prepared(data_paths[task]).examples
        frames.append(pick_case_examples(preds, examples, k=k, task=task))
    cases = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CASE_COLUMNS)
    atomic_write_df(cases, out_csv)
    atomic_write_text(out_md, table3_markdown(cases, meta, notes))
    log.info("Table 3: %d rows; %s", len(cases), "; ".join(notes))
    return cases
