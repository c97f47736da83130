"""The reproduction report: every paper cell next to ours, Table 2, the headline claims answered.

``reproduction_report`` is pure (DataFrames in, Markdown out); ``write_reproduction`` reads the
records and writes results/reproduction.md for the Snakemake rule. No torch at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from dpbert.methods.registry import static_display_names
from dpbert.reporting.layout import markdown_table, mean_over, results_file
from dpbert.reporting.paper import PAPER_DIR, compare_with_paper
from dpbert.reporting.records import read_csv, read_replicates
from dpbert.reporting.table2 import SPEEDUP_NAMES, TOL, fmt

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- reproduction report


def _task_scores(row: pd.Series) -> dict[str, float]:
    """Per-task scores of a Table 1 row, MNLI once as mean(m, mm)."""
    skip = {"model", "speedup", "speedup_latency", "speedup_layer", "speedup_flops", "avg", "covered", "n_seeds",
            "profile", "backbone", "device", "degenerate"}
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
    from dpbert.reporting.uncertainty import average_replicates, standard_error

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


WITHIN_NOISE = "cannot tell (within noise)"


def degenerate_tasks(ours: pd.DataFrame, model: str) -> set[str]:
    """The tasks (MNLI once) of a Table 1 row that health marks degenerate (its ``degenerate`` column)."""
    row = ours[ours["model"].astype(str) == model]
    if row.empty or "degenerate" not in row.columns or pd.isna(row["degenerate"].iloc[0]):
        return set()
    cols = {c for c in str(row["degenerate"].iloc[0]).split(";") if c}
    return {"MNLI" if c in ("MNLI-m", "MNLI-mm") else c for c in cols}


def _healthy_average(ours: pd.DataFrame, a: str, b: str) -> tuple[float, float, list[str], list[str]]:
    """Averages of rows ``a`` and ``b`` over the common tasks where neither is degenerate; those tasks, and the
    common tasks left out for a degenerate cell."""
    _, _, common = common_average(ours, a, b)
    bad = degenerate_tasks(ours, a) | degenerate_tasks(ours, b)
    keep = [t for t in common if t not in bad]
    rows = {str(m): r for m, r in zip(ours["model"], (r for _, r in ours.iterrows()))}
    if not keep:
        return np.nan, np.nan, [], [t for t in common if t in bad]
    sa, sb = _task_scores(rows[a]), _task_scores(rows[b])
    return (float(np.mean([sa[t] for t in keep])), float(np.mean([sb[t] for t in keep])), keep,
            [t for t in common if t in bad])


def _per_task_tally(ours: pd.DataFrame, a: str, b: str, replicates: pd.DataFrame | None, b_weight: float = 1.0) -> str:
    """How many common tasks support each answer to "a > b_weight * b": a task whose cell is degenerate in either
    row, or whose difference is under NOISE_SE paired standard errors, supports neither."""
    _, _, common = common_average(ours, a, b)
    bad = degenerate_tasks(ours, a) | degenerate_tasks(ours, b)
    rows = {str(m): r for m, r in zip(ours["model"], (r for _, r in ours.iterrows()))}
    if not common:
        return ""
    sa, sb = _task_scores(rows[a]), _task_scores(rows[b])
    yes, no, noise, degenerate = [], [], [], []
    for t in common:
        diff = sa[t] - b_weight * sb[t]
        if t in bad:
            degenerate.append(t)
        elif _within_noise(diff, _difference_se(replicates, a, b, [t], b_weight)):
            noise.append(t)
        else:
            (yes if diff > 0 else no).append(t)
    parts = [f"{len(yes)} yes" + (f" ({', '.join(yes)})" if yes else ""),
             f"{len(no)} no" + (f" ({', '.join(no)})" if no else ""),
             f"{len(noise) + len(degenerate)} cannot tell"
             + (f" (within noise: {', '.join(noise)})" if noise else "")
             + (f" (degenerate: {', '.join(degenerate)})" if degenerate else "")]
    return f" Per task: {'; '.join(parts)}."


def _claim_keep(ours: pd.DataFrame, lo: float = CLAIM_SPEEDUP,
                replicates: pd.DataFrame | None = None, health_md: str = "results/health.md") -> tuple[str, str]:
    dp, bert, common, left_out = _healthy_average(ours, "DPBERT", "BERT-base")
    sp = _speedup_of(ours, "DPBERT")
    row = ours[ours["model"].astype(str) == "DPBERT"]
    both = ""
    if len(row) and {"speedup_layer", "speedup_latency"} <= set(row.columns):
        both = (f" (layer {fmt(row['speedup_layer'].iloc[0], 2, 'x')}, "
                f"latency {fmt(row['speedup_latency'].iloc[0], 2, 'x')})")
    if left_out and not common:
        return "cannot tell", (f"every common task is degenerate for DPBERT or BERT-base ({', '.join(left_out)}: "
                               f"{health_md}), so no task can answer.")
    if not common or pd.isna(sp):
        return "cannot tell", "DPBERT or BERT-base has no Table 1 scores (or no speed-up) in this run."
    ratio = dp / bert if bert else np.nan
    ok = ratio >= CLAIM_KEEP - TOL and sp >= lo - TOL
    margin = dp - CLAIM_KEEP * bert
    se = _difference_se(replicates, "DPBERT", "BERT-base", common, CLAIM_KEEP)
    detail = (f"DPBERT averages {dp:.1f} vs BERT-base {bert:.1f} over {len(common)} common tasks "
              f"= {100 * ratio:.1f}% of BERT-base, at {sp:.2f}x{both} (thresholds: 98%, {lo:.2f}x). "
              f"Paper: 81.3 / 82.4 = 98.7% at 1.34x."
              + (f" Left out, degenerate in either row: {', '.join(left_out)}." if left_out else "")
              + _per_task_tally(ours, "DPBERT", "BERT-base", replicates, CLAIM_KEEP))
    if replicates is not None:
        detail += (f" DPBERT minus 98% of BERT-base: {margin:+.1f}"
                   + ("" if pd.isna(se) else f" ± {se:.1f} (paired bootstrap SE over the dev examples)") + ".")
    if sp >= lo - TOL and _within_noise(margin, se):
        return WITHIN_NOISE, detail + (f" The score margin is under {NOISE_SE:g} standard errors: this dev set "
                                         "cannot tell whether DPBERT keeps 98%.")
    return ("yes" if ok else "no"), detail


COMPARABLE_SPEEDUP = 0.10
"""Two speed-ups within this many x count as comparable / equal for the claims."""


def _claim_vs(ours: pd.DataFrame, other: str, replicates: pd.DataFrame | None = None,
              health_md: str = "results/health.md") -> tuple[str, str]:
    """Yes/no when the speed-ups are comparable (or DPBERT dominates / is dominated); else cannot tell.
    With ``replicates``: "within noise" when the score difference is under NOISE_SE paired standard errors."""
    dp, ot, common, left_out = _healthy_average(ours, "DPBERT", other)
    if left_out and not common:
        return "cannot tell", (f"every common task is degenerate for DPBERT or {other} ({', '.join(left_out)}: "
                               f"{health_md}), so no task can answer.")
    if not common:
        return "cannot tell", f"DPBERT or {other} has no Table 1 scores in this run."
    sd, so = _speedup_of(ours, "DPBERT"), _speedup_of(ours, other)
    detail = (f"DPBERT {dp:.1f} vs {other} {ot:.1f} (avg over {len(common)} common tasks: {', '.join(common)}), "
              f"speed-ups {fmt(sd, 2, 'x')} vs {fmt(so, 2, 'x')}."
              + (f" Left out, degenerate in either row: {', '.join(left_out)}." if left_out else "")
              + _per_task_tally(ours, "DPBERT", other, replicates))
    if replicates is not None:
        se = _difference_se(replicates, "DPBERT", other, common)
        detail += _noise_note(dp - ot, se)
        if _within_noise(dp - ot, se):
            faster = "" if pd.isna(sd) or pd.isna(so) or abs(sd - so) <= COMPARABLE_SPEEDUP + TOL else (
                " (and faster)" if sd > so else " (and slower)")
            return WITHIN_NOISE + faster, detail
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


def _claim_soft(t2: pd.DataFrame | None, speedup_col: str = "layer_speedup",
                ours: pd.DataFrame | None = None, health_md: str = "results/health.md") -> tuple[str, str]:
    if t2 is None or t2.empty:
        return "cannot tell", "no Table 2 in this run."
    o = t2[t2["source"] == "ours"].set_index("model")
    if "DPBERT" not in o.index or "DPBERT-soft" not in o.index:
        return "cannot tell", "DPBERT or DPBERT-soft missing from Table 2."
    tasks = [c for c in t2.columns if f"{c} layer_speedup" in t2.columns]
    both = [t for t in tasks if not pd.isna(o.at["DPBERT", t]) and not pd.isna(o.at["DPBERT-soft", t])]
    bad = (degenerate_tasks(ours, "DPBERT") | degenerate_tasks(ours, "DPBERT-soft")) if ours is not None else set()
    left_out = [t for t in both if t in bad]
    both = [t for t in both if t not in bad]
    if left_out and not both:
        return "cannot tell", (f"every Table 2 task is degenerate for DPBERT or DPBERT-soft ({', '.join(left_out)}: "
                               f"{health_md}), so no task can answer.")
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
              f"{gaps[0]} (layer) / {gaps[1]} (latency). Paper: 83.5 vs 76.0, higher on 4 of 4."
              + (f" Left out, degenerate in either row: {', '.join(left_out)}." if left_out else ""))
    gap = worst.get(speedup_col, np.nan)
    if not pd.isna(gap) and gap > COMPARABLE_SPEEDUP + TOL:
        return "cannot tell", detail + (f" DPBERT-soft has no point within {COMPARABLE_SPEEDUP:.2f}x of DPBERT's "
                                         "speed-up on every task, so the speed-ups are not equal.")
    return ("yes" if a > b + TOL else "no"), detail


def table1_avg_tasks(ours: pd.DataFrame, paper: pd.DataFrame) -> list[str]:
    """The tasks every row of our Table 1 with a score covers (MNLI once) and every row of the paper's
    Table 1 has a number for: the one task set of every avg cell in the reproduction report."""
    from dpbert.reporting.layout import common_tasks, tasks_of_table

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
    data, static_models (display names of static rows; default: the registry's static methods).
    Every avg is over one task set for all the rows it is shown with (ours and the paper's alike,
    recomputed from the task cells). ``replicates`` (results/table1_bootstrap.csv.gz): the paired
    bootstrap replicates of Table 1's cells; with them a claim whose score difference is under
    NOISE_SE standard errors is answered "within noise".
    """
    profile = str(meta.get("profile", ""))
    health_md = results_file(profile, "health.md")
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
           f"- every number below is read from {results_file(profile, '')} (no training or timing in this job)", ""]

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
            ""]
    rows = []
    for model in paper_table1["model"].astype(str):
        cells = []
        for c in pcols:
            r = cmp[(cmp["model"] == model) & (cmp["column"] == c)]
            if c == "avg":
                prow = paper_table1[paper_table1["model"].astype(str) == model].iloc[0]
                o = mean_over(ours_rows.get(model, {}), avg_set)
                p = mean_over({t: float(prow[t]) for t in avg_set if not pd.isna(prow.get(t, np.nan))}, avg_set)
                d = o - p if not (pd.isna(o) or pd.isna(p)) else np.nan
                cells.append("—" if pd.isna(p) else f"{fmt(o)} / {fmt(p)}" + ("" if pd.isna(d) else f" ({d:+.1f})"))
                continue
            if r.empty or pd.isna(r["paper"].iloc[0]):
                cells.append("—")
                continue
            nd = 2 if c == "speedup" else 1
            o, p, d = r["ours"].iloc[0], r["paper"].iloc[0], r["diff"].iloc[0]
            cells.append(f"{fmt(o, nd)} / {fmt(p, nd)}" + ("" if pd.isna(d) else f" ({float(d):+.{nd}f})"))
        rows.append([model, *cells])
    out += markdown_table(["model", *pcols], rows)
    extra = [m for m in ours_table1["model"].astype(str) if m not in set(paper_table1["model"].astype(str))]
    if extra:
        out += ["", f"Rows we ran that the paper's Table 1 does not have: {', '.join(extra)} "
                    f"(see {results_file(profile, 'table1.md')})."]
    out += ["", "Table 1's GLUE test-server half is not reproduced (dev sets only).", ""]

    # -- Table 2 vs paper
    if table2 is not None and not table2.empty:
        tasks = [c for c in table2.columns if f"{c} layer_speedup" in table2.columns]
        t2_rows = [table2[(table2["model"] == m) & (table2["source"] == src)]
                   for m in ("DPBERT", "DPBERT-soft") for src in ("ours", "paper")]
        t2_avg = [t for t in tasks if all(len(r) and not pd.isna(r[t].iloc[0]) for r in t2_rows)]
        out += ["## Table 2 (dev): DPBERT vs DPBERT-soft, ours / paper (diff)", "",
                (f"avg: over {', '.join(t2_avg)}, the tasks all four rows have (ours and the paper's, recomputed)."
                 if t2_avg else "avg: — (no task all four rows have)."), ""]
        rows = []
        for model in ("DPBERT", "DPBERT-soft"):
            o = table2[(table2["model"] == model) & (table2["source"] == "ours")]
            p = table2[(table2["model"] == model) & (table2["source"] == "paper")]
            cells = []
            for c in tasks + ["avg"]:
                if c == "avg":
                    ov = mean_over({t: float(o[t].iloc[0]) for t in t2_avg} if len(o) else {}, t2_avg)
                    pv = mean_over({t: float(p[t].iloc[0]) for t in t2_avg} if len(p) else {}, t2_avg)
                else:
                    ov = o[c].iloc[0] if len(o) else np.nan
                    pv = p[c].iloc[0] if len(p) else np.nan
                d = "" if pd.isna(ov) or pd.isna(pv) else f" ({float(ov) - float(pv):+.1f})"
                cells.append(f"{fmt(ov)} / {fmt(pv)}{d}")
            rows.append([model, *cells])
        out += markdown_table(["model", *tasks, "avg"], rows)
        out += ["", f"Speed-ups of the matched points: {results_file(profile, 'table2.md')}.", ""]

    # -- claims
    static = set(meta["static_models"]) if "static_models" in meta else set(static_display_names())
    out += ["## Headline claims, answered from these numbers", ""]
    ans, det = _claim_keep(ours_table1, replicates=replicates, health_md=health_md)
    out.append(f"1. **Does DPBERT keep ≥ 98% of BERT-base's average at ≥ {CLAIM_SPEEDUP:.2f}x?** {ans.upper()}. {det}")
    others = [m for m in ours_table1["model"].astype(str)
              if not _is_static(m, static) and m not in ("DPBERT", "DPBERT-soft")]
    if "DeeBERT" not in others:
        others = ["DeeBERT"] + others
    out.append("2. **Does DPBERT beat each adaptive baseline in average score at comparable speed-up "
               "(every row selected in the same window)?**")
    for other in others:
        ans, det = _claim_vs(ours_table1, other, replicates=replicates, health_md=health_md)
        out.append(f"   - vs {other}: {ans.upper()}. {det}")
    ans, det = _claim_soft(table2, sp, ours_table1, health_md)
    if replicates is not None:
        det += (" (No standard error: DPBERT-soft's matched points are not Table 1 points, so Table 1's replicates "
                "do not cover them.)")
    out.append(f"3. **Is DPBERT better than DPBERT-soft at equal speed-up?** {ans.upper()}. {det}")
    out.append("")
    if profile != "paper":
        out += ["## Caveat", "",
                (f"This is the **{profile}** profile, not the paper's setting (GLUE, pretrained BERT-base, "
                "3 seeds; one setting per method, not the paper's hyper-parameter grid). Its numbers check that the pipeline and the "
                "methods run end to end and can be compared with each other; they are not expected to match "
                "the paper's, and the yes/no answers above describe this run only, not the paper's claims. "
                "Run the paper profile (workflow/config/paper.yaml) for a like-for-like comparison."), ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- workflow jobs


def write_reproduction(*, table1_path: str, table2_path: str, paper_table1_path: str | None,
                       meta: Mapping[str, Any], out_md: str, bootstrap_path: str | None = None) -> str:
    from dpbert.reporting.records import SPEEDUP_COLUMNS
    from dpbert.run.runtime import atomic_write_text

    ours = pd.read_csv(table1_path)
    paper = pd.read_csv(paper_table1_path or PAPER_DIR / "table1_dev.csv")
    t2 = read_csv(table2_path)
    m = dict(meta)
    sel = m.pop("selection", None) or {}
    m.setdefault("window", tuple(sel.get("window", (1.30, 1.96))))
    m.setdefault("speedup_col", SPEEDUP_COLUMNS[sel.get("speedup", "layer")])
    text = reproduction_report(ours, paper, t2, m, replicates=read_replicates(bootstrap_path))
    atomic_write_text(out_md, text)
    return text
