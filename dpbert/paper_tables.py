"""Table 2 (DPBERT vs DPBERT-soft at equal speed-up), Table 3 (case study) and the
reproduction report, from the run records only.

The pure functions (match_speedup, table2, pick_case_examples, reproduction_report and their
Markdown renderers) take DataFrames and return DataFrames/strings; the ``write_*`` jobs at the
bottom read the records and write results/ for the Snakemake rules.  No torch at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dpbert.selection import SELECTED_COLUMNS, aggregate_seeds, default_primary_split
from dpbert.tables import PAPER_DIR, compare_with_paper

log = logging.getLogger(__name__)

TOL = 1e-9
TABLE2_TASKS: tuple[str, ...] = ("RTE", "MRPC", "SST-2", "STS-B")
SPEEDUP_NAMES = {"layer_speedup": "layer-count speed-up (N / mean executed layers)",
                 "latency_speedup": "measured batch-1 latency speed-up"}
STATIC_MODELS_DEFAULT = ("BERT-base", "LayerDrop", "DistilBERT")
"""Display names of the static rows of Table 1 (not input-adaptive baselines)."""

CASE_COLUMNS = ["task", "split", "path", "idx", "text_a", "text_b", "label", "pred", "correct",
                "n_executed", "executed", "kind", "variant", "knob"]
"""Table 3 rows; ``path`` is "shortest" / "longest", ``kind`` the example's own kind (synthetic data)."""

TEXT_FIELDS = {"MNLI": ("Premise", "Hypothesis"), "QNLI": ("Question", "Context"),
               "RTE": ("Sentence 1", "Sentence 2"), "MRPC": ("Sentence 1", "Sentence 2"),
               "QQP": ("Question 1", "Question 2"), "STS-B": ("Sentence 1", "Sentence 2")}


# --------------------------------------------------------------------------- Table 2


def match_speedup(points: pd.DataFrame, target_speedup: float, speedup_col: str) -> pd.Series | None:
    """The row of ``points`` whose ``speedup_col`` is closest to ``target_speedup``.

    Ties (within 1e-9): higher score, then smaller knob, then variant name -- deterministic.
    Rows without a speed-up or score are ignored; None when nothing is left or target is NaN.
    """
    if points is None or points.empty or target_speedup is None or pd.isna(target_speedup):
        return None
    pts = points.copy()
    s = pd.to_numeric(pts[speedup_col], errors="coerce")
    pts = pts[s.notna() & pts["score"].notna()]
    if pts.empty:
        return None
    dist = (pd.to_numeric(pts[speedup_col]) - float(target_speedup)).abs()
    pts["_d"] = dist.where(dist > TOL, 0.0).round(9)
    pts["_score"] = -pts["score"].astype(float)
    keys = ["_d", "_score"]
    if "knob" in pts.columns:
        pts["_knob"] = pd.to_numeric(pts["knob"], errors="coerce").fillna(np.inf)
        keys.append("_knob")
    if "variant" in pts.columns:
        pts["_variant"] = pts["variant"].fillna("").astype(str)
        keys.append("_variant")
    best = pts.sort_values(keys, kind="mergesort").iloc[0]
    return best.drop(labels=[k for k in keys])


def _t2_columns(tasks: Sequence[str]) -> list[str]:
    cols = ["model", "source"]
    for t in tasks:
        cols += [t, f"{t} layer_speedup", f"{t} latency_speedup", f"{t} point"]
    return cols + ["avg", "note"]


def _point_name(row: pd.Series) -> str:
    knob = row.get("knob", np.nan)
    knob_s = "" if pd.isna(knob) else f"@{float(knob):g}"
    return f"{row.get('variant', '')}{knob_s}"


def _split_mean(agg_task: pd.DataFrame, point: pd.Series) -> dict[str, float]:
    """Mean over splits of one knob point's score / speed-ups (MNLI: m and mm)."""
    same = agg_task[(agg_task["variant"] == point["variant"])
                    & np.isclose(agg_task["knob"].astype(float), float(point["knob"]), rtol=0, atol=TOL)]
    return {c: float(same[c].astype(float).mean()) if c in same.columns else np.nan
            for c in ("score", "layer_speedup", "latency_speedup")}


def table2(
    selected: pd.DataFrame,
    sweeps: pd.DataFrame,
    tasks: Sequence[str] = TABLE2_TASKS,
    speedup_col: str = "layer_speedup",
    paper: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """DPBERT (its Table 1 point) vs DPBERT-soft (its point closest in ``speedup_col``), per task.

    Rows: ("DPBERT", "ours"), ("DPBERT-soft", "ours") and, when ``paper`` is given (the paper's
    table2_ablation.csv), ("DPBERT", "paper"), ("DPBERT-soft", "paper").  Per task: score
    (median over seeds; MNLI = mean over its splits), both speed-ups and the knob point
    ("t0.25@0.5").  Matching is on the task's primary split.  ``avg`` is over the tasks every row
    with a score has (``attrs["avg_tasks"]``), the paper's rows included, so rows compare; ``note``
    says what is missing and why.  The paper states no speed-up numbers for
    Table 2 ("the same for both methods"), so its speed-up cells are NaN.
    """
    cols = _t2_columns(tasks)
    selected = selected.reindex(columns=list(dict.fromkeys([*SELECTED_COLUMNS, *selected.columns])))
    agg = aggregate_seeds(sweeps) if len(sweeps) else pd.DataFrame(
        columns=["task", "method", "variant", "knob", "split", "score", "layer_speedup", "latency_speedup"])
    ours = {"DPBERT": {"model": "DPBERT", "source": "ours"},
            "DPBERT-soft": {"model": "DPBERT-soft", "source": "ours"}}
    notes: dict[str, list[str]] = {"DPBERT": [], "DPBERT-soft": []}
    has = {m: bool((sweeps["method"] == m).any()) if len(sweeps) else False for m in ("dpbert", "dpbert_soft")}
    if not has["dpbert"]:
        notes["DPBERT"].append("DPBERT not run in this profile")
    if not has["dpbert_soft"]:
        notes["DPBERT-soft"].append("DPBERT-soft not run in this profile")
    for t in tasks:
        for row in ours.values():
            row.update({t: np.nan, f"{t} layer_speedup": np.nan, f"{t} latency_speedup": np.nan, f"{t} point": ""})
        tagg = agg[agg["task"] == t]
        if tagg.empty:
            if has["dpbert"] or has["dpbert_soft"]:
                notes["DPBERT"].append(f"{t} not run")
            continue
        split = default_primary_split(tagg["split"])
        sel = selected[(selected["task"] == t) & (selected["method"] == "dpbert") & (selected["split"] == split)]
        if sel.empty or pd.isna(sel["score"].iloc[0]):
            if has["dpbert"] and (tagg["method"] == "dpbert").any():
                notes["DPBERT"].append(f"{t}: no point in window")
            continue
        dp = sel.iloc[0]
        vals = _split_mean(tagg[tagg["method"] == "dpbert"], dp)
        ours["DPBERT"].update({t: vals["score"], f"{t} layer_speedup": vals["layer_speedup"],
                               f"{t} latency_speedup": vals["latency_speedup"], f"{t} point": _point_name(dp)})
        soft = tagg[(tagg["method"] == "dpbert_soft") & (tagg["split"] == split)]
        if soft.empty:
            if has["dpbert_soft"]:
                notes["DPBERT-soft"].append(f"{t} not run")
            continue
        m = match_speedup(soft, float(dp[speedup_col]), speedup_col)
        if m is None:
            notes["DPBERT-soft"].append(f"{t}: no point with a speed-up")
            continue
        vals = _split_mean(tagg[tagg["method"] == "dpbert_soft"], m)
        ours["DPBERT-soft"].update({t: vals["score"], f"{t} layer_speedup": vals["layer_speedup"],
                                    f"{t} latency_speedup": vals["latency_speedup"], f"{t} point": _point_name(m)})
    rows = []
    for name, row in ours.items():
        scores = [row[t] for t in tasks if not pd.isna(row[t])]
        row["avg"] = float(np.mean(scores)) if scores else np.nan
        row["note"] = "; ".join(notes[name])
        rows.append(row)
    if paper is not None:
        for _, p in paper.iterrows():
            row = {"model": str(p["model"]), "source": "paper"}
            for t in tasks:
                row.update({t: float(p[t]) if t in p.index and not pd.isna(p[t]) else np.nan,
                            f"{t} layer_speedup": np.nan, f"{t} latency_speedup": np.nan, f"{t} point": ""})
            scores = [row[t] for t in tasks if not pd.isna(row[t])]
            row["avg"] = float(np.mean(scores)) if scores else np.nan
            row["note"] = "as printed; speed-up 'the same for both methods' (not stated)"
            rows.append(row)
    # every row's avg over the same tasks: those every row with a score has (ours and the paper's)
    covered = [{t for t in tasks if not pd.isna(r[t])} for r in rows]
    covered = [c for c in covered if c]
    common = [t for t in tasks if covered and all(t in c for c in covered)]
    for r in rows:
        r["avg"] = _mean_over({t: r[t] for t in common if not pd.isna(r[t])}, common)
    out = pd.DataFrame(rows, columns=cols)
    out.attrs["avg_tasks"] = common
    return out


def _f(v: Any, nd: int = 1, suffix: str = "") -> str:
    return "—" if v is None or pd.isna(v) else f"{float(v):.{nd}f}{suffix}"


def table2_markdown(t2: pd.DataFrame, tasks: Sequence[str], meta: Mapping[str, Any]) -> str:
    sp = meta.get("speedup_col", "layer_speedup")
    lines = [
        "# Table 2: DPBERT vs DPBERT-soft at equal speed-up (dev)", "",
        (f"**Profile:** {meta.get('profile', '')} · DPBERT at its Table 1 point; DPBERT-soft at its point whose "
         f"{SPEEDUP_NAMES.get(sp, sp)} is closest to DPBERT's on the same task (ties: higher score). "
         "Cells: score [layer speed-up / latency speed-up] {point = target rate @ threshold}."), "",
        "| model | source | " + " | ".join(tasks) + " | avg |",
        "|---|---|" + "---|" * (len(tasks) + 1),
    ]
    for _, r in t2.iterrows():
        cells = []
        for t in tasks:
            if pd.isna(r[t]):
                cells.append("—")
            elif r["source"] == "paper":
                cells.append(_f(r[t]))
            else:
                cells.append(f"{_f(r[t])} [{_f(r[f'{t} layer_speedup'], 2, 'x')} / "
                             f"{_f(r[f'{t} latency_speedup'], 2, 'x')}] {{{r[f'{t} point']}}}")
        lines.append(f"| {r['model']} | {r['source']} | " + " | ".join(cells) + f" | {_f(r['avg'])} |")
    notes = [f"- {r['model']} ({r['source']}): {r['note']}" for _, r in t2.iterrows() if str(r["note"] or "")]
    avg_tasks = t2.attrs.get("avg_tasks")
    if avg_tasks is not None:
        notes.append(f"- avg: over {', '.join(avg_tasks)}, the tasks every row with a score has (the paper's "
                     "averages recomputed over them)." if avg_tasks else "- avg: — (no task every row has).")
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


# --------------------------------------------------------------------------- Table 3


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
    from dpbert.tasks import TASKS

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
        fa, fb = TEXT_FIELDS.get(task, ("Sentence", "Sentence 2"))
        lines += [f"## {task} ({sub['variant'].iloc[0]} @ threshold {float(sub['knob'].iloc[0]):g})", "",
                  "| path | split/idx | example | label | pred | layers executed |", "|---|---|---|---|---|---|"]
        for _, r in sub.iterrows():
            text = f"**{fa}:** {_md_text(r['text_a'])}"
            if str(r["text_b"] or ""):
                text += f" **{fb}:** {_md_text(r['text_b'])}"
            if str(r["kind"] or ""):
                text += f" _({r['kind']})_"
            pred = _label_name(task, r["pred"]) + ("" if r["correct"] else " ✗")
            layers = str(r["executed"]) or "(none)"
            lines.append(f"| {r['path']} ({r['n_executed']}) | {r['split']}/{r['idx']} | {text} | "
                         f"{_label_name(task, r['label'])} | {pred} | {layers} |")
        lines.append("")
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- reproduction report


def _task_scores(row: pd.Series) -> dict[str, float]:
    """Per-task scores of a Table 1 row, MNLI once as mean(m, mm)."""
    skip = {"model", "speedup", "speedup_latency", "speedup_layer", "avg", "covered", "n_seeds", "profile", "backbone",
            "device", "degenerate"}
    out: dict[str, float] = {}
    mnli = [float(row[c]) for c in ("MNLI-m", "MNLI-mm") if c in row.index and not pd.isna(row[c])]
    if mnli:
        out["MNLI"] = float(np.mean(mnli))
    for c in row.index:
        if c in skip or c in ("MNLI-m", "MNLI-mm"):
            continue
        v = pd.to_numeric(pd.Series([row[c]]), errors="coerce").iloc[0]
        if not pd.isna(v):
            out[c] = float(v)
    return out


def common_average(table: pd.DataFrame, model_a: str, model_b: str) -> tuple[float, float, list[str]]:
    """Averages of two Table 1 rows over the tasks both have (NaN, NaN, [] if either is missing)."""
    rows = {str(m): r for m, r in zip(table["model"], (r for _, r in table.iterrows()))}
    if model_a not in rows or model_b not in rows:
        return np.nan, np.nan, []
    a, b = _task_scores(rows[model_a]), _task_scores(rows[model_b])
    common = [t for t in a if t in b]
    if not common:
        return np.nan, np.nan, []
    return float(np.mean([a[t] for t in common])), float(np.mean([b[t] for t in common])), common


def _speedup_of(table: pd.DataFrame, model: str) -> float:
    sub = table[table["model"].astype(str) == model]
    return float(sub["speedup"].iloc[0]) if len(sub) and not pd.isna(sub["speedup"].iloc[0]) else np.nan


CLAIM_KEEP = 0.98
CLAIM_SPEEDUP = 1.30


NOISE_SE = 2.0
"""A difference under this many bootstrap standard errors is "within noise"."""


def _difference_se(replicates: pd.DataFrame | None, a: str, b: str, tasks: list[str], b_weight: float = 1.0) -> float:
    """Paired bootstrap SE of avg(a) - b_weight * avg(b) over ``tasks`` (NaN without replicates)."""
    from dpbert.uncertainty import average_replicates, standard_error

    if replicates is None or not tasks:
        return np.nan
    ra, rb = average_replicates(replicates, a, tasks), average_replicates(replicates, b, tasks)
    if ra is None or rb is None:
        return np.nan
    return standard_error(ra - b_weight * rb)


def _noise_note(diff: float, se: float) -> str:
    if pd.isna(se):
        return " No standard error (no bootstrap replicates for these rows)."
    return f" Difference {diff:+.1f} ± {se:.1f} (paired bootstrap SE over the dev examples)."


def _within_noise(diff: float, se: float) -> bool:
    return not pd.isna(se) and abs(diff) < NOISE_SE * se


def _claim_keep(ours: pd.DataFrame, lo: float = CLAIM_SPEEDUP,
                replicates: pd.DataFrame | None = None) -> tuple[str, str]:
    dp, bert, common = common_average(ours, "DPBERT", "BERT-base")
    sp = _speedup_of(ours, "DPBERT")
    row = ours[ours["model"].astype(str) == "DPBERT"]
    both = ""
    if len(row) and {"speedup_layer", "speedup_latency"} <= set(row.columns):
        both = (f" (layer {_f(row['speedup_layer'].iloc[0], 2, 'x')}, "
                f"latency {_f(row['speedup_latency'].iloc[0], 2, 'x')})")
    if not common or pd.isna(sp):
        return "cannot tell", "DPBERT or BERT-base has no Table 1 scores (or no speed-up) in this run."
    ratio = dp / bert if bert else np.nan
    ok = ratio >= CLAIM_KEEP - TOL and sp >= lo - TOL
    margin = dp - CLAIM_KEEP * bert
    se = _difference_se(replicates, "DPBERT", "BERT-base", common, CLAIM_KEEP)
    detail = (f"DPBERT averages {dp:.1f} vs BERT-base {bert:.1f} over {len(common)} common tasks "
              f"= {100 * ratio:.1f}% of BERT-base, at {sp:.2f}x{both} (thresholds: 98%, {lo:.2f}x). "
              f"Paper: 81.3 / 82.4 = 98.7% at 1.34x.")
    if replicates is not None:
        detail += (f" DPBERT minus 98% of BERT-base: {margin:+.1f}"
                   + ("" if pd.isna(se) else f" ± {se:.1f} (paired bootstrap SE over the dev examples)") + ".")
    if sp >= lo - TOL and _within_noise(margin, se):
        return "within noise", detail + (f" The score margin is under {NOISE_SE:g} standard errors: this dev set "
                                         "cannot tell whether DPBERT keeps 98%.")
    return ("yes" if ok else "no"), detail


COMPARABLE_SPEEDUP = 0.10
"""Two speed-ups within this many x count as comparable / equal for the claims."""


def _claim_vs(ours: pd.DataFrame, other: str, replicates: pd.DataFrame | None = None) -> tuple[str, str]:
    """Yes/no when the speed-ups are comparable (or DPBERT dominates / is dominated); else cannot tell.
    With ``replicates``: "within noise" when the score difference is under NOISE_SE paired standard errors."""
    dp, ot, common = common_average(ours, "DPBERT", other)
    if not common:
        return "cannot tell", f"DPBERT or {other} has no Table 1 scores in this run."
    sd, so = _speedup_of(ours, "DPBERT"), _speedup_of(ours, other)
    detail = (f"DPBERT {dp:.1f} vs {other} {ot:.1f} (avg over {len(common)} common tasks: {', '.join(common)}), "
              f"speed-ups {_f(sd, 2, 'x')} vs {_f(so, 2, 'x')}.")
    if replicates is not None:
        se = _difference_se(replicates, "DPBERT", other, common)
        detail += _noise_note(dp - ot, se)
        if _within_noise(dp - ot, se):
            faster = "" if pd.isna(sd) or pd.isna(so) or abs(sd - so) <= COMPARABLE_SPEEDUP + TOL else (
                " (and faster)" if sd > so else " (and slower)")
            return "within noise" + faster, detail
    if abs(dp - ot) <= TOL:
        return "no (tie)", detail
    better = dp > ot
    if pd.isna(sd) or pd.isna(so) or abs(sd - so) <= COMPARABLE_SPEEDUP + TOL:
        return ("yes" if better else "no"), detail
    if better and sd > so:
        return "yes (and faster)", detail
    if not better and sd < so:
        return "no (and slower)", detail
    return "cannot tell", detail + (f" The speed-ups differ by more than {COMPARABLE_SPEEDUP:.2f}x and the "
                                    "faster method scores lower: a different trade-off point, not a comparison.")


def _is_static(model: str, static: Iterable[str]) -> bool:
    """Static row: its display name is a static method's, possibly qualified ("DistilBERT (from teacher)")."""
    return any(model == s or model.startswith(f"{s} (") for s in static)


def _claim_soft(t2: pd.DataFrame | None, speedup_col: str = "layer_speedup") -> tuple[str, str]:
    if t2 is None or t2.empty:
        return "cannot tell", "no Table 2 in this run."
    o = t2[t2["source"] == "ours"].set_index("model")
    if "DPBERT" not in o.index or "DPBERT-soft" not in o.index:
        return "cannot tell", "DPBERT or DPBERT-soft missing from Table 2."
    tasks = [c for c in t2.columns if f"{c} layer_speedup" in t2.columns]
    both = [t for t in tasks if not pd.isna(o.at["DPBERT", t]) and not pd.isna(o.at["DPBERT-soft", t])]
    if not both:
        return "cannot tell", "DPBERT and DPBERT-soft share no task with scores (not run, or no point in window)."
    a = float(np.mean([o.at["DPBERT", t] for t in both]))
    b = float(np.mean([o.at["DPBERT-soft", t] for t in both]))
    wins = sum(o.at["DPBERT", t] > o.at["DPBERT-soft", t] + TOL for t in both)
    gaps, worst = [], {}
    for col in ("layer_speedup", "latency_speedup"):
        g = [abs(float(o.at["DPBERT", f"{t} {col}"]) - float(o.at["DPBERT-soft", f"{t} {col}"])) for t in both]
        g = [x for x in g if not np.isnan(x)]
        worst[col] = max(g) if g else np.nan
        gaps.append(f"{max(g):.2f}x" if g else "n/a")
    detail = (f"avg over {len(both)} tasks ({', '.join(both)}): DPBERT {a:.1f} vs DPBERT-soft {b:.1f}; "
              f"DPBERT higher on {wins} of {len(both)}; largest speed-up gap of the matched points "
              f"{gaps[0]} (layer) / {gaps[1]} (latency). Paper: 83.5 vs 76.0, higher on 4 of 4.")
    gap = worst.get(speedup_col, np.nan)
    if not pd.isna(gap) and gap > COMPARABLE_SPEEDUP + TOL:
        return "cannot tell", detail + (f" DPBERT-soft has no point within {COMPARABLE_SPEEDUP:.2f}x of DPBERT's "
                                         "speed-up on every task, so the speed-ups are not equal.")
    return ("yes" if a > b + TOL else "no"), detail


def _mean_over(scores: Mapping[str, float], tasks: Sequence[str]) -> float:
    """Mean of ``scores`` over ``tasks``; NaN unless every task has a score."""
    if not tasks or any(t not in scores or pd.isna(scores[t]) for t in tasks):
        return np.nan
    return float(np.mean([scores[t] for t in tasks]))


def table1_avg_tasks(ours: pd.DataFrame, paper: pd.DataFrame) -> list[str]:
    """The tasks every row of our Table 1 with a score covers (MNLI once) and every row of the paper's
    Table 1 has a number for: the one task set of every avg cell in the reproduction report."""
    from dpbert.tables import common_tasks, tasks_of_table

    ours_tasks = common_tasks(ours, tasks_of_table(ours))
    paper_tasks = [c for c in paper.columns if c not in ("model", "speedup", "avg") and paper[c].notna().all()]
    return [t for t in ours_tasks if t in paper_tasks]


def reproduction_report(
    ours_table1: pd.DataFrame,
    paper_table1: pd.DataFrame,
    table2: pd.DataFrame | None,
    meta: Mapping[str, Any],
    replicates: pd.DataFrame | None = None,
) -> str:
    """Markdown: provenance, every paper cell (ours / paper / diff), Table 2, claims answered.

    meta keys: profile, profile_note, backbone, device, seeds, window (lo, hi), speedup_col,
    data, static_models (display names of static rows; default BERT-base/LayerDrop/DistilBERT).
    Every avg is over one task set for all the rows it is shown with (ours and the paper's alike,
    recomputed from the task cells). ``replicates`` (results/table1_bootstrap.csv.gz): the paired
    bootstrap replicates of Table 1's cells; with them a claim whose score difference is under
    NOISE_SE standard errors is answered "within noise".
    """
    profile = str(meta.get("profile", ""))
    lo, hi = (float(x) for x in meta.get("window", (1.30, 1.96)))
    sp = meta.get("speedup_col", "layer_speedup")
    seeds = meta.get("seeds", "")
    if isinstance(seeds, (list, tuple)):
        seeds = ", ".join(str(s) for s in seeds)
    backbone = meta.get("backbone") or "; ".join(sorted({str(v) for v in ours_table1.get("backbone", []) if str(v)}))
    device = meta.get("device") or "; ".join(sorted({str(v) for v in ours_table1.get("device", []) if str(v)}))
    out = ["# Reproduction report: DPBERT", "", "## Provenance", "",
           f"- profile: **{profile}**" + (f" — {meta['profile_note']}" if meta.get("profile_note") else ""),
           f"- data: {meta.get('data', '')}", f"- backbone: {backbone}", f"- device: {device}",
           f"- seeds: {seeds} (scores are medians over seeds)",
           f"- speed-up window: {lo:.2f}–{hi:.2f}x; points selected by the {SPEEDUP_NAMES.get(sp, sp)}",
           "- every number below is read from results/ (no training or timing in this job)", ""]

    # -- Table 1 vs paper: every cell the paper reports
    cmp = compare_with_paper(ours_table1, paper_table1)
    pcols = [c for c in paper_table1.columns if c != "model"]
    avg_set = table1_avg_tasks(ours_table1, paper_table1)
    ours_rows = {str(r["model"]): _task_scores(r) for _, r in ours_table1.iterrows()}
    avg_note = (f"avg: recomputed for ours and for the paper over {', '.join(avg_set)} (the {len(avg_set)} tasks "
                "that every row of our Table 1 with a score and every row of the paper's covers), so all avg "
                "cells are over the same tasks; the paper prints averages over 8 tasks (DeeBERT: 7)."
                if avg_set else "avg: — (no task is covered by every row of both tables).")
    out += ["## Table 1 (dev): ours / paper (diff)", "",
            ("Each cell: our value / the paper's value (ours − paper); — = not run, not covered or no point in "
             "the window. Our MNLI is mean(MNLI-m, MNLI-mm) against the paper's single MNLI number. " + avg_note),
            "", "| model | " + " | ".join(pcols) + " |", "|---|" + "---|" * len(pcols)]
    for model in paper_table1["model"].astype(str):
        cells = []
        for c in pcols:
            r = cmp[(cmp["model"] == model) & (cmp["column"] == c)]
            if c == "avg":
                prow = paper_table1[paper_table1["model"].astype(str) == model].iloc[0]
                o = _mean_over(ours_rows.get(model, {}), avg_set)
                p = _mean_over({t: float(prow[t]) for t in avg_set if not pd.isna(prow.get(t, np.nan))}, avg_set)
                d = o - p if not (pd.isna(o) or pd.isna(p)) else np.nan
                cells.append("—" if pd.isna(p) else f"{_f(o)} / {_f(p)}" + ("" if pd.isna(d) else f" ({d:+.1f})"))
                continue
            if r.empty or pd.isna(r["paper"].iloc[0]):
                cells.append("—")
                continue
            nd = 2 if c == "speedup" else 1
            o, p, d = r["ours"].iloc[0], r["paper"].iloc[0], r["diff"].iloc[0]
            cells.append(f"{_f(o, nd)} / {_f(p, nd)}" + ("" if pd.isna(d) else f" ({float(d):+.{nd}f})"))
        out.append(f"| {model} | " + " | ".join(cells) + " |")
    extra = [m for m in ours_table1["model"].astype(str) if m not in set(paper_table1["model"].astype(str))]
    if extra:
        out += ["", f"Rows we ran that the paper's Table 1 does not have: {', '.join(extra)} (see results/table1.md)."]
    out += ["", "Table 1's GLUE test-server half is not reproduced (dev sets only).", ""]

    # -- Table 2 vs paper
    if table2 is not None and not table2.empty:
        tasks = [c for c in table2.columns if f"{c} layer_speedup" in table2.columns]
        t2_rows = [table2[(table2["model"] == m) & (table2["source"] == src)]
                   for m in ("DPBERT", "DPBERT-soft") for src in ("ours", "paper")]
        t2_avg = [t for t in tasks if all(len(r) and not pd.isna(r[t].iloc[0]) for r in t2_rows)]
        out += ["## Table 2 (dev): DPBERT vs DPBERT-soft, ours / paper (diff)", "",
                (f"avg: over {', '.join(t2_avg)}, the tasks all four rows have (ours and the paper's, recomputed)."
                 if t2_avg else "avg: — (no task all four rows have)."), "",
                "| model | " + " | ".join(tasks) + " | avg |", "|---|" + "---|" * (len(tasks) + 1)]
        for model in ("DPBERT", "DPBERT-soft"):
            o = table2[(table2["model"] == model) & (table2["source"] == "ours")]
            p = table2[(table2["model"] == model) & (table2["source"] == "paper")]
            cells = []
            for c in tasks + ["avg"]:
                if c == "avg":
                    ov = _mean_over({t: float(o[t].iloc[0]) for t in t2_avg} if len(o) else {}, t2_avg)
                    pv = _mean_over({t: float(p[t].iloc[0]) for t in t2_avg} if len(p) else {}, t2_avg)
                else:
                    ov = o[c].iloc[0] if len(o) else np.nan
                    pv = p[c].iloc[0] if len(p) else np.nan
                d = "" if pd.isna(ov) or pd.isna(pv) else f" ({float(ov) - float(pv):+.1f})"
                cells.append(f"{_f(ov)} / {_f(pv)}{d}")
            out.append(f"| {model} | " + " | ".join(cells) + " |")
        out += ["", "Speed-ups of the matched points: results/table2.md.", ""]

    # -- claims
    static = set(meta.get("static_models", STATIC_MODELS_DEFAULT))
    out += ["## Headline claims, answered from these numbers", ""]
    ans, det = _claim_keep(ours_table1, replicates=replicates)
    out.append(f"1. **Does DPBERT keep ≥ 98% of BERT-base's average at ≥ {CLAIM_SPEEDUP:.2f}x?** {ans.upper()}. {det}")
    others = [m for m in ours_table1["model"].astype(str)
              if not _is_static(m, static) and m not in ("DPBERT", "DPBERT-soft")]
    if "DeeBERT" not in others:
        others = ["DeeBERT"] + others
    out.append("2. **Does DPBERT beat each adaptive baseline in average score at comparable speed-up "
               "(every row selected in the same window)?**")
    for other in others:
        ans, det = _claim_vs(ours_table1, other, replicates=replicates)
        out.append(f"   - vs {other}: {ans.upper()}. {det}")
    ans, det = _claim_soft(table2, sp)
    if replicates is not None:
        det += (" (No standard error: DPBERT-soft's matched points are not Table 1 points, so Table 1's replicates "
                "do not cover them.)")
    out.append(f"3. **Is DPBERT better than DPBERT-soft at equal speed-up?** {ans.upper()}. {det}")
    out.append("")
    if profile != "paper":
        out += ["## Caveat", "",
                (f"This is the **{profile}** profile, not the paper's setting (GLUE, pretrained BERT-base, "
                "3 seeds, the paper's hyper-parameter grid). Its numbers check that the pipeline and the "
                "methods run end to end and can be compared with each other; they are not expected to match "
                "the paper's, and the yes/no answers above describe this run only, not the paper's claims. "
                "Run the paper profile (workflow/config/paper.yaml) for a like-for-like comparison."), ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- workflow jobs


def _read_csv(path: str | Path) -> pd.DataFrame:
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    for col in ("variant", "knob_name", "note"):
        if col in df.columns:
            df[col] = df[col].fillna("").astype(str)
    return df


def write_table2(*, selected_path: str, sweeps_path: str, tasks: Sequence[str], speedup: str,
                 meta: Mapping[str, Any], out_csv: str, out_md: str, paper_path: str | None = None) -> pd.DataFrame:
    from dpbert.report import SPEEDUP_COLUMNS
    from dpbert.runtime import atomic_write_df, atomic_write_text

    sp = SPEEDUP_COLUMNS[speedup]
    paper = pd.read_csv(paper_path or PAPER_DIR / "table2_ablation.csv")
    t2 = table2(_read_csv(selected_path), _read_csv(sweeps_path), tasks=list(tasks), speedup_col=sp, paper=paper)
    atomic_write_df(t2, out_csv)
    atomic_write_text(out_md, table2_markdown(t2, list(tasks), {**meta, "speedup_col": sp}))
    log.info("Table 2 written (%d rows)", len(t2))
    return t2


def write_table3(*, selected_path: str, pred_paths: Mapping[str, str], data_paths: Mapping[str, str], k: int,
                 meta: Mapping[str, Any], out_csv: str, out_md: str) -> pd.DataFrame:
    from dpbert.figures import at_point, read_predictions, selected_point
    from dpbert.prepare import load_prepared
    from dpbert.runtime import atomic_write_df, atomic_write_text

    selected = _read_csv(selected_path)
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


def read_replicates(path: str | Path | None) -> pd.DataFrame | None:
    """Table 1's bootstrap replicates (rule table1), or None when there is no file or it has no columns."""
    if path is None or not Path(path).is_file():
        return None
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return None
    return df if len(df.columns) else None


def write_reproduction(*, table1_path: str, table2_path: str, paper_table1_path: str | None,
                       meta: Mapping[str, Any], out_md: str, bootstrap_path: str | None = None) -> str:
    from dpbert.report import SPEEDUP_COLUMNS
    from dpbert.runtime import atomic_write_text

    ours = pd.read_csv(table1_path)
    paper = pd.read_csv(paper_table1_path or PAPER_DIR / "table1_dev.csv")
    t2 = _read_csv(table2_path)
    m = dict(meta)
    sel = m.pop("selection", None) or {}
    m.setdefault("window", tuple(sel.get("window", (1.30, 1.96))))
    m.setdefault("speedup_col", SPEEDUP_COLUMNS[sel.get("speedup", "layer")])
    text = reproduction_report(ours, paper, t2, m, replicates=read_replicates(bootstrap_path))
    atomic_write_text(out_md, text)
    return text
