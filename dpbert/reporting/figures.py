"""Figures 3 and 4 of the DPBERT paper, drawn from the run records only.

Figure 3: dev score against speed-up per task (paper: SST-2 and QNLI), DPBERT's target-rate
points and every adaptive baseline's knob sweep as curves (median over seeds), BERT-base as a
horizontal reference, the selection window shaded, every Table 1 row's chosen point ringed with its
bootstrap standard error; drawn twice: framed on the window, and over the full speed-up range.  Figure 4: for DPBERT at its selected
point, the fraction of dev examples that execute each layer, per task (a heatmap).

Nothing here trains, times or imports torch; matplotlib runs on the Agg backend.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
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
from dpbert.reporting.layout import column_of, figure3_panels, seed_phrase
from dpbert.reporting.records import read_csv, read_predictions, read_replicates
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


def _save(fig, out_png: str | Path, out_pdf: str | Path | None) -> None:
    paths = [Path(p) for p in (out_png, out_pdf) if p is not None]  # out_pdf None: the PNG alone
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
    # write next to the target and rename, so an interrupted job leaves no half figure
    for p in paths:
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


CHOSEN_LABEL = "ring: each Table 1 row's chosen point (cross-fitted score ± bootstrap SE)"
WINDOW_MARGIN = 0.2
"""Figure 3's framed view shows the window widened by this share of its width on each side."""
XRANGES = ("window", "full")


def window_xlim(window: Sequence[float], margin: float = WINDOW_MARGIN) -> tuple[float, float]:
    """The x-range that frames the selection window: its bounds widened on each side by ``margin`` times
    its width (at least 0.05x), e.g. (1.30, 1.96) -> (1.168, 2.092): the window's points and the static
    rows at 2.0x are in view, the sweep's far points are not."""
    lo, hi = float(window[0]), float(window[1])
    if not lo < hi:
        raise ValueError(f"selection window {list(window)}: the lower bound must be below the upper one")
    pad = max(float(margin) * (hi - lo), 0.05)
    return lo - pad, hi + pad


def full_xlim(xs: Iterable[float], window: Sequence[float], pad: float = 0.04) -> tuple[float, float]:
    """The x-range of every point drawn, BERT-base's 1.0x and the window included, padded by ``pad`` of it."""
    vals = [float(x) for x in xs if np.isfinite(float(x))] + [1.0, float(window[0]), float(window[1])]
    lo, hi = min(vals), max(vals)
    p = pad * max(hi - lo, 0.2)
    return lo - p, hi + p


def view_ylim(points: Iterable[tuple[float, float, float]], xlim: tuple[float, float],
              pad: float = 0.08) -> tuple[float, float] | None:
    """The y-range of what is in view: ``points`` are (x, y_low, y_high) (a curve point: y_low = y_high; a
    chosen point: score ± SE; BERT-base's line: x = None, in view at every x); those with x inside
    ``xlim`` count; padded by ``pad`` of the span, at least half a point of score. None: nothing in view."""
    lows, highs = [], []
    for x, y_lo, y_hi in points:
        if x is not None and not xlim[0] <= float(x) <= xlim[1]:
            continue
        if np.isfinite(y_lo) and np.isfinite(y_hi):
            lows.append(float(y_lo))
            highs.append(float(y_hi))
    if not lows:
        return None
    lo, hi = min(lows), max(highs)
    p = max(pad * (hi - lo), 0.5)
    return lo - p, hi + p


def panel_grid(n: int) -> tuple[int, int]:
    """(rows, columns) for ``n`` panels: one row up to 3, 2x2 for 4, else rows of 3. A free cell (5, 7,
    8 panels) holds the legend instead of an empty frame."""
    n = int(n)
    if n <= 3:
        return 1, max(n, 1)
    if n == 4:
        return 2, 2
    return int(np.ceil(n / 3)), 3


def chosen_points(selected: pd.DataFrame, speedup_col: str, replicates: pd.DataFrame | None = None) -> pd.DataFrame:
    """The point each Table 1 row reports, as Figure 3 marks it: one line per (task, row, split).

    ``selected``: selected_points.csv (one line per choosing fold: the two folds may choose different points;
    a frame without ``row`` has one line per method). ``speedup``: the mean of the chosen points' speed-ups
    (as Table 1 counts it), ``speedup_lo`` / ``speedup_hi`` their range; ``score``: the cell's cross-fitted
    score; ``se``: its bootstrap standard error from ``replicates`` (table1_bootstrap.csv.gz; NaN without).
    The "threshold searched" rows (a second row of the same method) and cells without a point are left out.
    """
    from dpbert.reporting.crossfit import SEARCHED_SUFFIX
    from dpbert.reporting.uncertainty import cell_replicates, standard_error

    cols = ["task", "row", "method", "display_name", "split", "speedup", "speedup_lo", "speedup_hi", "score", "se"]
    if selected is None or selected.empty:
        return pd.DataFrame(columns=cols)
    sel = selected.copy()
    if "row" not in sel.columns:
        sel["row"] = sel["method"]
    sel = sel[~sel["row"].astype(str).str.endswith(SEARCHED_SUFFIX)]
    sel = sel[sel["score"].notna() & pd.to_numeric(sel[speedup_col], errors="coerce").notna()]
    rows = []
    for (task, row, split), grp in sel.groupby(["task", "row", "split"], sort=False):
        sp = grp[speedup_col].astype(float)
        first = grp.iloc[0]
        reps = cell_replicates(replicates, str(first["display_name"]), column_of(str(task), str(split)))
        rows.append({"task": task, "row": row, "method": first["method"], "display_name": first["display_name"],
                     "split": split, "speedup": float(sp.mean()), "speedup_lo": float(sp.min()),
                     "speedup_hi": float(sp.max()), "score": float(first["score"]), "se": standard_error(reps)})
    return pd.DataFrame(rows, columns=cols)


def _legend_order(labels: list[str], names: Mapping[str, str]) -> list[str]:
    """DPBERT, DeeBERT, the other methods (as drawn), BERT-base, window, chosen points."""
    first = [names.get("dpbert"), names.get("deebert")]
    head = [lab for lab in first if lab in labels]
    tail = [lab for lab in labels if lab.startswith(("BERT-base", "selection window")) or lab == CHOSEN_LABEL]
    mid = [lab for lab in labels if lab not in head and lab not in tail]
    return head + mid + sorted(tail, key=lambda lab: (not lab.startswith("BERT-base"), lab == CHOSEN_LABEL))


def _plottable_tasks(agg: pd.DataFrame, speedup_col: str) -> list[str]:
    """Tasks (in record order) with a scored point at a known speed-up on their primary split."""
    out = []
    for task in dict.fromkeys(str(t) for t in agg["task"]):
        tagg = agg[agg["task"] == task]
        tagg = tagg[tagg["split"] == default_primary_split(tagg["split"])]
        if (tagg["score"].notna() & pd.to_numeric(tagg[speedup_col], errors="coerce").notna()).any():
            out.append(task)
    return out


def figure3(
    sweeps: pd.DataFrame,
    tasks: Iterable[str] = ("SST-2", "QNLI"),
    window: tuple[float, float] = (1.30, 1.96),
    speedup_col: str = "layer_speedup",
    out_png: str | Path = "figures/figure3.png",
    out_pdf: str | Path = "figures/figure3.pdf",
    static_methods: Iterable[str] | None = None,
    selected: pd.DataFrame | None = None,
    replicates: pd.DataFrame | None = None,
    xrange: str = "window",
):
    """Score vs speed-up, one panel per task; returns the matplotlib figure (already saved).

    Panels: :func:`dpbert.reporting.layout.figure3_panels` of ``tasks`` and the tasks with points (none
    empty). Each curve is the median over seeds on the task's primary split (MNLI: dev_matched); static
    methods other than BERT-base are single markers; BERT-base is a horizontal line. ``selected``
    (selected_points.csv), when given, rings every Table 1 row's chosen point (:func:`chosen_points`),
    with its bootstrap SE from ``replicates`` (table1_bootstrap.csv.gz) as a vertical bar (BERT-base's as
    dotted lines either side of its line), and the range of the two folds' chosen speed-ups as a horizontal
    one. ``xrange``: "window" frames the selection window (:func:`window_xlim`, y fitted to what is in
    view), "full" shows every point (:func:`full_xlim`).
    """
    if speedup_col not in SPEEDUP_AXIS_LABEL:
        raise ValueError(f"speedup_col must be one of {sorted(SPEEDUP_AXIS_LABEL)}, got {speedup_col!r}")
    if xrange not in XRANGES:
        raise ValueError(f"xrange must be one of {XRANGES}, got {xrange!r}")
    static = set(static_methods if static_methods is not None else static_method_names())
    agg = aggregate_seeds(sweeps) if len(sweeps) else sweeps
    draw = figure3_panels(list(tasks), _plottable_tasks(agg, speedup_col) if len(agg) else [])
    nrow, ncol = panel_grid(len(draw))
    free = nrow * ncol - len(draw)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.6 * ncol + (1.4 if ncol == 1 else 0), 4.6 * nrow),
                             squeeze=False)
    profile = _profile_of(sweeps)
    chosen = chosen_points(selected, speedup_col, replicates) if selected is not None else None
    seeds = {t: int(sweeps.loc[sweeps["task"] == t, "seed"].nunique()) if "seed" in sweeps.columns else 1
             for t in draw}
    mixed_seeds = len(set(seeds.values())) > 1
    handles: dict[str, object] = {}
    names: dict[str, str] = {}
    lo, hi = float(window[0]), float(window[1])
    for ax, task in zip(axes.flat, draw):
        tagg = agg[agg["task"] == task]
        split = default_primary_split(tagg["split"])
        tagg = tagg[tagg["split"] == split]
        tchosen = (chosen[(chosen["task"] == task) & (chosen["split"] == split)]
                   if chosen is not None else pd.DataFrame())
        xs: list[float] = [1.0]
        extent: list[tuple[float | None, float, float]] = []  # (x, y_lo, y_hi) of what is drawn
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
                own = tchosen[tchosen["method"] == "bert"] if len(tchosen) else tchosen
                se = float(own["se"].iloc[0]) if len(own) else np.nan
                label = f"{name} (1.00x)" + ("; dotted: ± SE" if np.isfinite(se) else "")
                h = ax.axhline(score, color=colour, ls="--", lw=1.3, label=label)
                if np.isfinite(se):
                    for edge in (score - se, score + se):
                        ax.axhline(edge, color=colour, ls=":", lw=0.9, alpha=0.7)
                handles.setdefault(label, h)
                extent.append((None, score - (se if np.isfinite(se) else 0), score + (se if np.isfinite(se) else 0)))
                continue
            pts = curve_points(tagg, method, speedup_col)
            if pts.empty:
                continue
            x = pts[speedup_col].astype(float).to_numpy()
            y = pts["score"].astype(float).to_numpy()
            xs.extend(x.tolist())
            extent.extend((a, b, b) for a, b in zip(x, y))
            if method in static:
                # one legend entry per method: a method with one model per variant names them all (BERT-9L, BERT-6L)
                name = ", ".join(dict.fromkeys(str(d) for d in pts["display_name"]))
                names[method] = name
                marker = method_marker(method)
                filled = {"edgecolor": "black", "linewidth": 0.5} if marker not in ("x", "+", "1", "2", "3", "4") else {}
                h = ax.scatter(x, y, color=colour, marker=marker, s=70, zorder=4, label=name, **filled)
            else:
                (h,) = ax.plot(x, y, color=colour, marker=method_marker(method), ms=6,
                               lw=2.2 if method == "dpbert" else 1.5, zorder=5 if method == "dpbert" else 3,
                               label=name)
            handles.setdefault(name, h)
        for _, c in tchosen.iterrows():
            if c["method"] == "bert":
                continue
            x, y, se = float(c["speedup"]), float(c["score"]), float(c["se"])
            xerr = [[x - float(c["speedup_lo"])], [float(c["speedup_hi"]) - x]]
            ax.errorbar([x], [y], yerr=[[se], [se]] if np.isfinite(se) else None, xerr=xerr, fmt="none",
                        ecolor=method_colour(str(c["method"])), elinewidth=1.6, capsize=3, zorder=6)
            ax.scatter([x], [y], s=170, facecolor="none", edgecolor=method_colour(str(c["method"])), linewidth=1.8,
                       zorder=7)
            xs.append(x)
            extent.append((x, y - (se if np.isfinite(se) else 0), y + (se if np.isfinite(se) else 0)))
            handles.setdefault(CHOSEN_LABEL, Line2D([], [], ls="-", color="#444444", marker="o", ms=11,
                                                    mfc="none", mec="#444444", mew=1.8, lw=1.0))
        if xrange == "window":
            xlim = window_xlim(window)
            ylim = view_ylim(extent, xlim)
            if ylim is not None:
                ax.set_ylim(*ylim)
        else:
            xlim = full_xlim(xs, window)
        ax.set_xlim(*xlim)
        h = ax.axvspan(lo, hi, color="#999999", alpha=0.15, lw=0, zorder=0, label=_window_label(window))
        handles.setdefault(_window_label(window), h)
        title = task if split == "dev" else f"{task} ({split})"
        if mixed_seeds:
            title += f", {seed_phrase([seeds[task]])}"
        ax.set_title(title, fontsize=12)
        ax.set_xlabel(SPEEDUP_AXIS_LABEL[speedup_col], fontsize=10)
        ax.set_ylabel(f"dev score ({TASKS[task].metric_label if task in TASKS else 'task metric x100'})", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=9)
    spare = list(axes.flat)[len(draw):]
    for ax in spare:
        ax.axis("off")
    if not draw:
        axes.flat[0].text(0.5, 0.5, "no sweep records", ha="center", va="center", transform=axes.flat[0].transAxes)
        axes.flat[0].axis("off")
    n_leg_rows = 0
    if handles:
        order = _legend_order(list(handles), names)
        if free and draw:  # the free cell of the grid holds the legend
            spare[0].legend([handles[k] for k in order], order, loc="center", ncol=1, fontsize=9, frameon=False)
            spare = spare[1:]
        else:
            leg_cols = min(len(handles), 3 if ncol == 1 else 2 * ncol)
            n_leg_rows = int(np.ceil(len(handles) / leg_cols))
            fig.legend([handles[k] for k in order], order, loc="lower center", ncol=leg_cols, fontsize=9,
                       frameon=False, bbox_to_anchor=(0.5, -0.01))
    for ax in spare if draw else []:  # no empty frames
        fig.delaxes(ax)
    view = "around the selection window" if xrange == "window" else "full speed-up range"
    fig.suptitle(f"Figure 3: dev score vs speed-up, {view}; {seed_phrase(seeds.values())} (profile: {profile})",
                 fontsize=12)
    fig.tight_layout(rect=(0, min(0.06 * n_leg_rows / nrow, 0.4), 1, 0.97))
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


def serving_label(row: Mapping[str, Any]) -> str:
    """A serving line's legend entry: the Table 1 row's name, with the fold when the folds chose apart."""
    chosen = str(row.get("chosen_on", ""))
    name = str(row["display_name"])
    return name if chosen in ("", "nan", "both folds") else f"{name} ({chosen})"


def serving_figure(serving: pd.DataFrame, out_png: str | Path, value: str = "survival"):
    """``value`` (survival, or throughput_speedup) against batch size: one line per Table 1 row, one panel
    per task (rows) and batch order (columns); 1.0 drawn. An empty frame gives a figure that says why."""
    title = ("Serving: share of the layer saving that survives batching" if value == "survival"
             else "Serving: throughput speed-up over BERT-base")
    title += f" (profile: {_profile_of(serving)})"
    if serving.empty:
        fig, ax = plt.subplots(figsize=(7, 2.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "no operating point to serve", ha="center", va="center", fontsize=11)
        fig.suptitle(title, fontsize=11)
        _save(fig, out_png, None)
        return fig
    tasks = list(dict.fromkeys(serving["task"]))
    orders = list(dict.fromkeys(serving["order"]))
    fig, axes = plt.subplots(len(tasks), len(orders), figsize=(5.2 * len(orders), 3.8 * len(tasks)),
                             squeeze=False, sharey=True)
    sizes = sorted({int(b) for b in serving["batch_size"]})
    for i, task in enumerate(tasks):
        for j, order in enumerate(orders):
            ax = axes[i][j]
            panel = serving[(serving["task"] == task) & (serving["order"] == order)]
            seen: dict[str, int] = {}  # a method's second and third rows (BERT-3L, "threshold searched") dash
            for _key, line in panel.groupby(["row", "chosen_on"], sort=False):
                line = line.sort_values("batch_size")
                first = line.iloc[0]
                method = str(first["method"])
                style = ("-", "--", ":", "-.")[seen.get(method, 0) % 4]
                seen[method] = seen.get(method, 0) + 1
                ax.plot(line["batch_size"], line[value], marker=method_marker(method), lw=1.2, ls=style,
                        color=method_colour(method), label=serving_label(first))
            ax.axhline(1.0, color="#888888", lw=0.8, ls="--")
            ax.set_xscale("log", base=2)
            ax.set_xticks(sizes, [str(b) for b in sizes])
            ax.set_xlabel("batch size", fontsize=9)
            ax.set_title(f"{task}, {order} order", fontsize=10)
            if j == 0:
                ax.set_ylabel("throughput x / layer x" if value == "survival" else "throughput speed-up (x)",
                              fontsize=9)
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    _save(fig, out_png, None)
    return fig


# --------------------------------------------------------------------------- workflow jobs


def write_figure3(
    *, sweeps_path: str, selected_path: str | None, tasks: list[str], window, speedup: str,
    static_methods: Iterable[str], out_png: str, out_pdf: str, bootstrap_path: str | None = None,
    out_full_png: str | None = None, out_full_pdf: str | None = None,
) -> None:
    """Figure 3 framed on the window (``out_png`` / ``out_pdf``) and, with ``out_full_*``, over the full
    speed-up range; ``bootstrap_path``: Table 1's replicates (the chosen points' error bars)."""
    from dpbert.reporting.records import SPEEDUP_COLUMNS

    sweeps = read_csv(sweeps_path)
    selected = read_csv(selected_path) if selected_path else None
    replicates = read_replicates(bootstrap_path)
    views = [("window", out_png, out_pdf)] + ([("full", out_full_png, out_full_pdf)] if out_full_png else [])
    for xrange, png, pdf in views:
        fig = figure3(sweeps, tasks=tasks, window=tuple(window), speedup_col=SPEEDUP_COLUMNS[speedup],
                      out_png=png, out_pdf=pdf, static_methods=static_methods, selected=selected,
                      replicates=replicates, xrange=xrange)
        plt.close(fig)
    log.info("Figure 3 (%s) from %d sweep records", ", ".join(v[0] for v in views), len(sweeps))


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
