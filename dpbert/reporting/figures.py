"""Figures 3 and 4 of the DPBERT paper, drawn from the run records only.

Figure 3: dev score against speed-up per task (paper: SST-2 and QNLI), DPBERT's target-rate
points and every adaptive baseline's knob sweep as curves (median over seeds), BERT-base as a
horizontal reference, the selection window shaded.  Figure 4: for DPBERT at its selected
point, the fraction of dev examples that execute each layer, per task (a heatmap).

Nothing here trains, times or imports torch; matplotlib runs on the Agg backend.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.lines import Line2D

from dpbert.data.tasks import TASKS
from dpbert.methods.registry import static_method_names
from dpbert.reporting.records import read_csv, read_predictions
from dpbert.reporting.selection import (
    aggregate_seeds,
    at_point,
    default_primary_split,
    selected_point,
)

log = logging.getLogger(__name__)

METHOD_COLOURS: dict[str, str] = {
    "bert": "#000000",
    "dpbert": "#d62728",  # red: the paper's method stands out
    "dpbert_soft": "#ff9896",
    "deebert": "#1f77b4",
    "berxit": "#2ca02c",
    "pabee": "#9467bd",
    "dact_bert": "#8c564b",
    "bert_truncated": "#7f7f7f",
    "layerdrop": "#bcbd22",
    "distilbert": "#17becf",
}
"""One colour per method name, shared by every figure."""

METHOD_MARKERS: dict[str, str] = {
    "dpbert": "o", "dpbert_soft": "o", "deebert": "s", "berxit": "^", "pabee": "v",
    "dact_bert": "D", "bert_truncated": "x", "layerdrop": "P", "distilbert": "*",
}

_FALLBACK_PALETTE = ["#e377c2", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94",
                     "#f7b6d2", "#dbdb8d", "#9edae5", "#393b79", "#637939", "#8c6d31"]


FRONT_METHODS: frozenset[str] = frozenset({"dpbert", "dpbert_soft"})
"""Methods whose curve is the front of every (target rate, threshold) point of the sweep: trained
variants times a searched threshold give a cloud, not a line (``curve_points``)."""

SPEEDUP_AXIS_LABEL: dict[str, str] = {
    "layer_speedup": "speed-up (x, N / mean executed layers)",
    "latency_speedup": "speed-up (x, measured batch-1 latency ratio)",
}


def point_label(variant: Any, knob: Any) -> str:
    """A DPBERT point for a reader: "t 0.45, p ≥ 0.50" for variant "t0.45" at threshold 0.5; another
    variant as "variant@knob" (knob rounded to 3 significant digits)."""
    v = str(variant)
    try:
        rate = float(v[1:]) if v.startswith("t") else None
    except ValueError:
        rate = None
    if rate is None:
        return f"{v}@{float(knob):.3g}"
    return f"t {rate:g}, p ≥ {float(knob):.2f}"


def method_colour(method: str) -> str:
    """The method's fixed colour; unknown names get a deterministic one (md5 of the name)."""
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    h = int(hashlib.md5(str(method).encode()).hexdigest(), 16)
    return _FALLBACK_PALETTE[h % len(_FALLBACK_PALETTE)]


def method_marker(method: str) -> str:
    return METHOD_MARKERS.get(method, "o")


def _profile_of(df: pd.DataFrame) -> str:
    if "profile" not in df.columns or df.empty:
        return "unknown"
    vals = sorted({str(v) for v in df["profile"].dropna() if str(v)})
    return ", ".join(vals) or "unknown"


def _save(fig, out_png: str | Path, out_pdf: str | Path) -> None:
    for p in (out_png, out_pdf):
        Path(p).parent.mkdir(parents=True, exist_ok=True)
    # write next to the target and rename, so an interrupted job leaves no half figure
    for p in (Path(out_png), Path(out_pdf)):
        tmp = p.with_name(p.stem + ".partial" + p.suffix)
        fig.savefig(tmp, dpi=200 if p.suffix == ".png" else None, bbox_inches="tight")
        tmp.replace(p)
    plt.close(fig)


def curve_points(
    agg: pd.DataFrame, method: str, speedup_col: str, front_methods: Iterable[str] = FRONT_METHODS,
) -> pd.DataFrame:
    """A method's (seed-aggregated, one split) points to draw, sorted by speed-up.

    DPBERT-like methods (``front_methods``: several trained variants, each swept over its threshold)
    contribute their accuracy-speed front: the points that no other point beats on both score and
    speed-up (for each speed-up, the best score at that speed-up or faster), so the line is the best
    trade-off the sweep found and its score never rises with the speed-up. Others: every knob point.
    """
    pts = agg[(agg["method"] == method) & agg[speedup_col].notna() & agg["score"].notna()].copy()
    if pts.empty:
        return pts
    pts = pts.sort_values([speedup_col, "score", "variant", "knob"], kind="mergesort").reset_index(drop=True)
    if method in set(front_methods):
        speed, score = pts[speedup_col].astype(float).to_numpy(), pts["score"].astype(float).to_numpy()
        best_faster = np.maximum.accumulate(score[::-1])[::-1]  # best score at this speed-up or faster
        keep = [i for i in range(len(pts)) if score[i] >= best_faster[i]
                and not (i + 1 < len(pts) and speed[i + 1] == speed[i] and score[i + 1] >= score[i])]
        pts = pts.iloc[keep].reset_index(drop=True)
    return pts


def _window_label(window: tuple[float, float]) -> str:
    return f"selection window {float(window[0]):.2f}–{float(window[1]):.2f}x"


SELECTED_LABEL = "DPBERT's selected point (Table 1)"


def _legend_order(labels: list[str], names: Mapping[str, str]) -> list[str]:
    """DPBERT, DeeBERT, the other methods (as drawn), BERT-base, window, selected point."""
    first = [names.get("dpbert"), names.get("deebert")]
    head = [lab for lab in first if lab in labels]
    tail = [lab for lab in labels if lab.startswith(("BERT-base", "selection window")) or lab == SELECTED_LABEL]
    mid = [lab for lab in labels if lab not in head and lab not in tail]
    return head + mid + sorted(tail, key=lambda lab: (not lab.startswith("BERT-base"), lab == SELECTED_LABEL))


def figure3(
    sweeps: pd.DataFrame,
    tasks: Iterable[str] = ("SST-2", "QNLI"),
    window: tuple[float, float] = (1.30, 1.96),
    speedup_col: str = "layer_speedup",
    out_png: str | Path = "figures/figure3.png",
    out_pdf: str | Path = "figures/figure3.pdf",
    static_methods: Iterable[str] | None = None,
    selected: pd.DataFrame | None = None,
):
    """Score vs speed-up, one panel per task; returns the matplotlib figure (already saved).

    Tasks absent from ``sweeps`` are skipped; if none of ``tasks`` is present, every task in
    the records is drawn so the figure is never empty.  Each curve is the median over seeds
    on the task's primary split (MNLI: dev_matched).  Static methods other than BERT-base are
    drawn as single labelled markers.  ``selected`` (selected_points.csv), when given, rings
    each method's Table 1 point.
    """
    if speedup_col not in SPEEDUP_AXIS_LABEL:
        raise ValueError(f"speedup_col must be one of {sorted(SPEEDUP_AXIS_LABEL)}, got {speedup_col!r}")
    static = set(static_method_names() if static_methods is None else static_methods)
    present = list(dict.fromkeys(str(t) for t in sweeps["task"])) if len(sweeps) else []
    draw = [t for t in tasks if t in present] or present
    ncol = min(len(draw), 2) or 1
    nrow = max(1, int(np.ceil(len(draw) / ncol)))
    leg_cols = 5 if ncol > 1 else 3
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.6 * ncol + (1.4 if ncol == 1 else 0), 4.8 * nrow),
                             squeeze=False)
    profile = _profile_of(sweeps)
    handles: dict[str, object] = {}
    names: dict[str, str] = {}
    agg = aggregate_seeds(sweeps) if len(sweeps) else sweeps
    lo, hi = float(window[0]), float(window[1])
    for ax, task in zip(axes.flat, draw):
        tagg = agg[agg["task"] == task]
        split = default_primary_split(tagg["split"])
        tagg = tagg[tagg["split"] == split]
        xs: list[float] = [1.0]
        methods = list(dict.fromkeys(tagg["method"]))
        # DPBERT last so it is drawn on top; order otherwise as in the records
        methods = [m for m in methods if m != "dpbert"] + (["dpbert"] if "dpbert" in methods else [])
        for method in methods:
            mpts = tagg[tagg["method"] == method]
            name = str(mpts["display_name"].iloc[0])
            names.setdefault(method, name)
            colour = method_colour(method)
            if method == "bert":
                score = float(mpts["score"].median())
                h = ax.axhline(score, color=colour, ls="--", lw=1.3, label=f"{name} (1.00x)")
                handles.setdefault(f"{name} (1.00x)", h)
                continue
            pts = curve_points(tagg, method, speedup_col)
            if pts.empty:
                continue
            x = pts[speedup_col].astype(float).to_numpy()
            y = pts["score"].astype(float).to_numpy()
            xs.extend(x.tolist())
            if method in static:
                h = ax.scatter(x, y, color=colour, marker=method_marker(method), s=70, zorder=4,
                               edgecolor="black", linewidth=0.5, label=name)
            else:
                (h,) = ax.plot(x, y, color=colour, marker=method_marker(method), ms=6,
                               lw=2.2 if method == "dpbert" else 1.5, zorder=5 if method == "dpbert" else 3,
                               label=name)
            handles.setdefault(name, h)
            if method == "dpbert" and selected is not None and len(selected):
                sel = selected[(selected["task"] == task) & (selected["method"] == method)
                               & (selected["split"] == split) & selected["score"].notna()]
                if len(sel):
                    ax.scatter(sel[speedup_col].astype(float), sel["score"].astype(float), s=230,
                               facecolor="none", edgecolor="black", linewidth=1.4, zorder=6)
                    handles.setdefault(SELECTED_LABEL, Line2D(
                        [], [], ls="none", marker="o", ms=13, mfc="none", mec="black", mew=1.4))
        x_lo, x_hi = min(xs), max(xs)
        span = max(x_hi - x_lo, 0.2)
        # show the window where it overlaps the data; do not let a wide window squash the curves
        left = min(x_lo, lo) if lo >= x_lo - 0.5 * span else x_lo
        right = max(x_hi, hi) if hi <= x_hi + 0.5 * span else x_hi
        pad = 0.05 * max(right - left, 0.2)
        ax.set_xlim(left - pad, right + pad)
        h = ax.axvspan(lo, hi, color="#999999", alpha=0.15, lw=0, zorder=0, label=_window_label(window))
        handles.setdefault(_window_label(window), h)
        title = task if split == "dev" else f"{task} ({split})"
        ax.set_title(title, fontsize=12)
        ax.set_xlabel(SPEEDUP_AXIS_LABEL[speedup_col], fontsize=10)
        ax.set_ylabel(f"dev score ({TASKS[task].metric_label if task in TASKS else 'task metric x100'})", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=9)
    for ax in list(axes.flat)[len(draw):]:
        ax.axis("off")
    if not draw:
        axes.flat[0].text(0.5, 0.5, "no sweep records", ha="center", va="center", transform=axes.flat[0].transAxes)
        axes.flat[0].axis("off")
    if handles:
        order = _legend_order(list(handles), names)
        fig.legend([handles[k] for k in order], order, loc="lower center",
                   ncol=min(len(handles), leg_cols), fontsize=9, frameon=False, bbox_to_anchor=(0.5, -0.01))
    fig.suptitle(f"Figure 3: dev score vs speed-up, median over seeds (profile: {profile})", fontsize=12)
    n_leg_rows = int(np.ceil(len(handles) / leg_cols)) if handles else 0
    fig.tight_layout(rect=(0, 0.05 * n_leg_rows / nrow, 1, 0.97))
    _save(fig, out_png, out_pdf)
    return fig


def _executed_layers(value) -> list[int]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return [int(x) for x in str(value).split()]


def layer_frequencies(predictions: pd.DataFrame, n_layers: int) -> pd.DataFrame:
    """Fraction of prediction rows that execute each layer 1..n_layers, per task.

    ``predictions`` holds the rows to count (one operating point; several splits or seeds are
    pooled) with ``executed`` as space-separated 1-based layer numbers ("" = none) and a
    ``task`` column (absent -> task ""). Returns columns task, layer, freq, n (rows counted).
    """
    n_layers = int(n_layers)
    df = predictions
    tasks = df["task"].astype(str) if "task" in df.columns else pd.Series([""] * len(df), index=df.index)
    rows = []
    for task in dict.fromkeys(tasks):
        sub = df[tasks == task]
        counts = np.zeros(n_layers, dtype=float)
        for v in sub["executed"]:
            for layer in _executed_layers(v):
                if not 1 <= layer <= n_layers:
                    raise ValueError(f"layer {layer} outside 1..{n_layers} in task {task!r}")
                counts[layer - 1] += 1
        n = len(sub)
        for i in range(n_layers):
            rows.append({"task": task, "layer": i + 1, "freq": counts[i] / n if n else np.nan, "n": n})
    return pd.DataFrame(rows, columns=["task", "layer", "freq", "n"])


def figure4(
    layer_freq: pd.DataFrame,
    out_png: str | Path = "figures/figure4.png",
    out_pdf: str | Path = "figures/figure4.pdf",
    row_labels: Mapping[str, str] | None = None,
    profile: str = "",
    note: str = "",
):
    """Heatmap of layer-execution frequency (tasks x layers, 0-100%); returns the saved figure.

    ``layer_freq`` is :func:`layer_frequencies` output; ``row_labels`` maps a task to its
    y-axis label (e.g. with the selected point); an empty frame gives a figure that says why.
    """
    tasks = list(dict.fromkeys(layer_freq["task"])) if len(layer_freq) else []
    title = "Figure 4: how often DPBERT executes each layer\n(at its selected point"
    title += f"; profile: {profile})" if profile else ")"
    if not tasks:
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.axis("off")
        ax.text(0.5, 0.5, note or "no DPBERT predictions to count", ha="center", va="center", wrap=True, fontsize=11)
        fig.suptitle(title, fontsize=11)
        _save(fig, out_png, out_pdf)
        return fig
    n_layers = int(layer_freq["layer"].max())
    mat = np.full((len(tasks), n_layers), np.nan)
    for i, t in enumerate(tasks):
        sub = layer_freq[layer_freq["task"] == t]
        mat[i, sub["layer"].astype(int).to_numpy() - 1] = sub["freq"].astype(float).to_numpy()
    fig, ax = plt.subplots(figsize=(max(6.5, 0.62 * n_layers + 3.2), 0.55 * len(tasks) + 1.9))
    cmap = LinearSegmentedColormap.from_list("dpbert", ["#ffffff", METHOD_COLOURS["dpbert"]])
    im = ax.imshow(mat * 100, cmap=cmap, vmin=0, vmax=100, aspect="auto")
    for i in range(len(tasks)):
        for j in range(n_layers):
            v = mat[i, j]
            if np.isnan(v):
                continue
            ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if v > 0.6 else "black")
    ax.set_xticks(range(n_layers), [str(j + 1) for j in range(n_layers)], fontsize=9)
    labels = [(row_labels or {}).get(t, t) for t in tasks]
    ax.set_yticks(range(len(tasks)), labels, fontsize=9)
    ax.set_xlabel("layer (1 = bottom)", fontsize=10)
    ax.set_ylabel("dataset (dev)", fontsize=10)
    ax.set_xticks(np.arange(-0.5, n_layers), minor=True)
    ax.set_yticks(np.arange(-0.5, len(tasks)), minor=True)
    ax.grid(which="minor", color="#dddddd", lw=0.5)
    ax.tick_params(which="minor", length=0)
    cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cb.set_label("examples executing the layer (%)", fontsize=9)
    ax.set_title(title, fontsize=11)
    if note:
        fig.text(0.01, 0.0, note, fontsize=8, ha="left", va="top", wrap=True)
    fig.tight_layout()
    _save(fig, out_png, out_pdf)
    return fig


# --------------------------------------------------------------------------- workflow jobs


def write_figure3(
    *, sweeps_path: str, selected_path: str | None, tasks: list[str], window, speedup: str,
    static_methods: Iterable[str], out_png: str, out_pdf: str,
) -> None:
    from dpbert.reporting.records import SPEEDUP_COLUMNS

    sweeps = read_csv(sweeps_path)
    from dpbert.reporting.crossfit import main_points

    selected = main_points(read_csv(selected_path)) if selected_path else None
    figure3(sweeps, tasks=tasks, window=tuple(window), speedup_col=SPEEDUP_COLUMNS[speedup],
            out_png=out_png, out_pdf=out_pdf, static_methods=static_methods, selected=selected)
    log.info("Figure 3 from %d sweep records", len(sweeps))


def write_figure4(
    *, selected_path: str, sweeps_path: str, pred_paths: Mapping[str, list[str]], out_png: str,
    out_pdf: str, out_csv: str,
) -> pd.DataFrame:
    """Count DPBERT's executed layers at its selected point per task (seeds pooled) and draw."""
    from dpbert.run.runtime import atomic_write_df

    from dpbert.reporting.crossfit import main_points

    selected = main_points(read_csv(selected_path))
    sweeps = read_csv(sweeps_path)
    profile = _profile_of(sweeps)
    frames, labels, notes = [], {}, []
    for task, paths in pred_paths.items():
        point = selected_point(selected, task)
        if point is None:
            notes.append(f"{task}: no DPBERT point in the window")
            continue
        preds = pd.concat([read_predictions(p) for p in paths], ignore_index=True)
        preds = at_point(preds, point)
        n_layers = int(sweeps.loc[(sweeps["task"] == task) & (sweeps["method"] == "dpbert"), "n_layers"].max())
        freq = layer_frequencies(preds.assign(task=task), n_layers)
        frames.append(freq)
        sp = point.get("layer_speedup", np.nan)
        labels[task] = f"{task}\n{point_label(point['variant'], point['knob'])}, {float(sp):.2f}x"
    freq = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["task", "layer", "freq", "n"])
    if not pred_paths:
        notes.append("DPBERT is not in this config's methods: nothing to count")
    seeds = max((len(p) for p in pred_paths.values()), default=0)
    how = (f"rows: task, target rate t and threshold p, layer speed-up; pooled over {seeds} seed(s) "
           "and all dev splits; cells: % of dev examples")
    note = "; ".join(notes + ([how] if frames else []))
    figure4(freq, out_png, out_pdf, row_labels=labels, profile=profile, note=note)
    atomic_write_df(freq, out_csv)
    log.info("Figure 4: %d tasks; %s", len(frames), note)
    return freq
