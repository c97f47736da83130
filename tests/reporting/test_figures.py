"""Reporting layer: Table 2/3 helpers, reproduction report, Figures 3-4 (pure functions, no snakemake)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpbert.reporting.figures import (
    METHOD_COLOURS,
    figure3,
    figure4,
    layer_frequencies,
    method_colour,
)
from tests.reporting.frames import sweeps as sweeps_frame


def test_layer_frequencies_arithmetic():
    preds = pd.DataFrame({"task": ["A", "A", "A", "A", "B"],
                          "executed": ["1 2 3", "1 3", "", "2 3 4", "4"]})
    f = layer_frequencies(preds, 4)
    a = f[f["task"] == "A"].set_index("layer")["freq"]
    assert a.tolist() == pytest.approx([0.5, 0.5, 0.75, 0.25])
    b = f[f["task"] == "B"].set_index("layer")["freq"]
    assert b.tolist() == pytest.approx([0, 0, 0, 1])
    assert set(f.columns) >= {"task", "layer", "freq"}
    with pytest.raises(ValueError):
        layer_frequencies(pd.DataFrame({"task": ["A"], "executed": ["5"]}), 4)


def _check_png_pdf(png, pdf):
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert pdf.stat().st_size > 1_000


def test_figures_render(tmp_path):
    sw = sweeps_frame(tasks=("SST-2", "QNLI", "RTE"))
    dee = []
    for seed in (1, 2):
        for e, sp in ((0.1, 1.2), (0.3, 1.6), (0.5, 2.2)):
            dee.append({"task": "SST-2", "method": "deebert", "display_name": "DeeBERT", "seed": seed, "variant": "main",
                            "knob_name": "entropy", "knob": e, "split": "dev", "score": 89 - 5 * e, "layer_speedup": sp,
                            "latency_speedup": sp * 0.9, "profile": "unit", "n_layers": 12})
    sw = pd.concat([sw, pd.DataFrame(dee)], ignore_index=True)
    figure3(sw, tasks=("SST-2", "QNLI"), window=(1.3, 1.96), speedup_col="layer_speedup",
            out_png=tmp_path / "f3.png", out_pdf=tmp_path / "f3.pdf")
    _check_png_pdf(tmp_path / "f3.png", tmp_path / "f3.pdf")
    # none of the requested tasks present: falls back to the tasks in the records
    figure3(sw, tasks=("MNLI",), window=(1.3, 1.96), speedup_col="latency_speedup",
            out_png=tmp_path / "g3.png", out_pdf=tmp_path / "g3.pdf")
    _check_png_pdf(tmp_path / "g3.png", tmp_path / "g3.pdf")

    rng = np.random.default_rng(0)
    rows = []
    for task in ["CoLA", "MNLI", "SST-2", "QNLI", "MRPC", "QQP", "RTE", "STS-B"]:
        for _ in range(30):
            layers = sorted(rng.choice(np.arange(1, 13), size=int(rng.integers(4, 12)), replace=False))
            rows.append({"task": task, "executed": " ".join(map(str, layers))})
    freq = layer_frequencies(pd.DataFrame(rows), 12)
    figure4(freq, tmp_path / "f4.png", tmp_path / "f4.pdf", profile="unit")
    _check_png_pdf(tmp_path / "f4.png", tmp_path / "f4.pdf")
    # empty: still a valid figure that says why
    figure4(freq.iloc[:0], tmp_path / "e4.png", tmp_path / "e4.pdf", note="DPBERT not run")
    assert (tmp_path / "e4.pdf").read_bytes()[:5] == b"%PDF-"


def test_method_colours_fixed_and_deterministic():
    assert method_colour("dpbert") == METHOD_COLOURS["dpbert"]
    assert method_colour("deebert") != method_colour("dpbert")
    assert method_colour("new_method") == method_colour("new_method")
    assert method_colour("new_method").startswith("#")


def test_dpbert_curve_is_the_front_of_all_its_points():
    """DPBERT's line in Figure 3: of every (target rate, threshold) point, those no other beats on both
    score and speed-up; its score never rises with the speed-up. Other methods keep every point."""
    from dpbert.reporting.figures import curve_points

    rows = [("t0.25", 0.5, 1.05, 91.0), ("t0.25", 0.8, 1.50, 90.0), ("t0.25", 0.9, 1.70, 84.0),
            ("t0.45", 0.5, 1.10, 89.0), ("t0.45", 0.7, 1.60, 88.0), ("t0.45", 0.8, 1.70, 86.0),
            ("t0.45", 0.9, 2.30, 80.0)]
    agg = pd.DataFrame([{"method": m, "variant": v, "knob": k, "layer_speedup": sp, "score": sc}
                        for m in ("dpbert", "deebert") for v, k, sp, sc in rows])
    front = curve_points(agg, "dpbert", "layer_speedup")
    assert list(zip(front["layer_speedup"], front["score"])) == [(1.05, 91.0), (1.50, 90.0), (1.60, 88.0),
                                                                 (1.70, 86.0), (2.30, 80.0)]
    assert (front["score"].diff().dropna() <= 0).all()
    assert len(curve_points(agg, "deebert", "layer_speedup")) == len(rows)


def test_figure4_rows_name_the_point_as_a_reader_would():
    from dpbert.reporting.figures import point_label

    assert point_label("t0.25", 0.657035) == "t 0.25, p ≥ 0.66"
    assert point_label("t0.45", 0.5) == "t 0.45, p ≥ 0.50"
    assert point_label("tau0.09", 0.0) == "tau0.09@0" and point_label("main", 0.174006) == "main@0.174"


# --------------------------------------------------------------------------- Figure 3 for readers


def test_window_xlim_frames_the_window_with_a_margin():
    from dpbert.reporting.figures import window_xlim

    lo, hi = window_xlim((1.30, 1.96))
    assert (lo, hi) == pytest.approx((1.30 - 0.132, 1.96 + 0.132))
    assert lo < 1.30 and 2.0 < hi < 2.2  # the static rows at 2.0x are in view, a 3x sweep point is not
    assert window_xlim((1.0, 1.01)) == pytest.approx((0.95, 1.06))  # a narrow window still gets 0.05x
    with pytest.raises(ValueError, match="lower bound"):
        window_xlim((1.96, 1.30))


def test_full_xlim_holds_every_point_bert_and_the_window():
    from dpbert.reporting.figures import full_xlim

    lo, hi = full_xlim([1.4, 12.0, float("nan")], (1.30, 1.96))
    assert lo < 1.0 and hi > 12.0 and hi - 12.0 == pytest.approx(0.04 * 11.0)
    lo, hi = full_xlim([], (1.30, 1.96))
    assert lo < 1.0 and hi > 1.96


def test_view_ylim_fits_what_is_in_view():
    from dpbert.reporting.figures import view_ylim

    pts = [(1.5, 90.0, 90.0), (1.8, 85.0, 87.0), (12.0, 40.0, 40.0), (None, 91.0, 92.0), (1.6, float("nan"), 1.0)]
    lo, hi = view_ylim(pts, (1.2, 2.1))
    assert 84.0 < lo < 85.0 and 92.0 < hi < 93.0  # the far point (12x, 40) does not squash the view
    assert view_ylim([(12.0, 40.0, 40.0)], (1.2, 2.1)) is None
    lo, hi = view_ylim([(1.5, 90.0, 90.0)], (1.2, 2.1))
    assert (lo, hi) == pytest.approx((89.5, 90.5))


def test_seed_phrase_and_panels():
    from dpbert.reporting.figures import panel_grid
    from dpbert.reporting.layout import figure3_panels, seed_phrase

    assert seed_phrase([1, 1]) == "1 seed" and seed_phrase([3]) == "median over 3 seeds"
    assert seed_phrase([1, 3, 3]) == "median over 1–3 seeds" and seed_phrase([]) == "no seeds"
    assert figure3_panels(["SST-2", "QNLI"], ["CoLA", "QNLI", "SST-2"]) == ["SST-2", "QNLI"]
    assert figure3_panels(["SST-2", "QNLI"], ["CoLA", "QNLI"]) == ["QNLI"]  # a panel only where there is data
    assert figure3_panels(["SST-2"], ["CoLA", "MRPC", "CoLA"]) == ["CoLA", "MRPC"]  # none: every task with data
    assert figure3_panels(["SST-2"], []) == []
    assert [panel_grid(n) for n in (0, 1, 2, 3, 4, 5, 7, 8)] == [(1, 1), (1, 1), (1, 2), (1, 3), (2, 2), (2, 3),
                                                                  (3, 3), (3, 3)]
    assert all(r * c >= n and r * c - n < max(c, 2) for n in range(1, 13) for r, c in [panel_grid(n)])


def _selected_points():
    """selected_points.csv lines: DPBERT's two folds chose different points; a searched row; BERT-base; a
    method without a point in the window."""
    base = {"task": "SST-2", "split": "dev", "static": False}
    rows = [
        {**base, "row": "bert", "method": "bert", "display_name": "BERT-base", "score": 91.0, "layer_speedup": 1.0,
         "static": True},
        {**base, "row": "bert", "method": "bert", "display_name": "BERT-base", "score": 91.0, "layer_speedup": 1.0,
         "static": True},
        {**base, "row": "dpbert", "method": "dpbert", "display_name": "DPBERT", "score": 88.0, "layer_speedup": 1.40},
        {**base, "row": "dpbert", "method": "dpbert", "display_name": "DPBERT", "score": 88.0, "layer_speedup": 1.60},
        {**base, "row": "dpbert:searched", "method": "dpbert", "display_name": "DPBERT, threshold searched",
         "score": 89.0, "layer_speedup": 1.5},
        {**base, "row": "deebert", "method": "deebert", "display_name": "DeeBERT", "score": float("nan"),
         "layer_speedup": float("nan")},
    ]
    return pd.DataFrame(rows)


def test_chosen_points_one_per_row_with_its_bootstrap_se():
    from dpbert.reporting.figures import chosen_points

    rng = np.random.default_rng(0)
    reps = pd.DataFrame({"DPBERT|SST-2": 88.0 + rng.normal(0, 1.5, 1000), "BERT-base|SST-2": 91 + rng.normal(0, 1, 1000)})
    pts = chosen_points(_selected_points(), "layer_speedup", reps).set_index("row")
    assert list(pts.index) == ["bert", "dpbert"]  # not the searched row, not a cell without a point
    dp = pts.loc["dpbert"]
    assert (dp["speedup"], dp["speedup_lo"], dp["speedup_hi"], dp["score"]) == pytest.approx((1.5, 1.4, 1.6, 88.0))
    assert dp["se"] == pytest.approx(np.std(reps["DPBERT|SST-2"], ddof=1)) and 1.3 < dp["se"] < 1.7
    assert chosen_points(_selected_points(), "layer_speedup").set_index("row")["se"].isna().all()  # no replicates
    # selected points without a row column (one line per method) still work
    legacy = _selected_points().drop(columns=["row"])
    legacy = legacy[legacy["display_name"] != "DPBERT, threshold searched"]
    assert set(chosen_points(legacy, "layer_speedup")["method"]) == {"bert", "dpbert"}


def test_figure3_marks_every_chosen_point_frames_the_window_and_has_no_empty_panel(tmp_path):
    sw = sweeps_frame(tasks=("SST-2", "RTE"))
    far = sw[(sw["method"] == "dpbert") & (sw["task"] == "SST-2")].head(2).assign(layer_speedup=6.0, score=40.0,
                                                                                   variant="t0.9")
    sw = pd.concat([sw, far], ignore_index=True)
    sel = _selected_points()
    rng = np.random.default_rng(1)
    reps = pd.DataFrame({"DPBERT|SST-2": 88.0 + rng.normal(0, 1.5, 200)})
    fig = figure3(sw, tasks=("SST-2", "QNLI"), window=(1.3, 1.96), out_png=tmp_path / "w.png",
                  out_pdf=tmp_path / "w.pdf", selected=sel, replicates=reps, xrange="window")
    _check_png_pdf(tmp_path / "w.png", tmp_path / "w.pdf")
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["SST-2"]  # QNLI has no records: no panel for it
    assert len(fig.axes) == 1  # one panel, and nothing else (no empty frame)
    ax = axes[0]
    assert ax.get_xlim() == pytest.approx((1.3 - 0.132, 1.96 + 0.132))
    assert ax.get_ylim()[0] > 40.0  # the far point at 6x (score 40) is out of view and does not squash it
    assert "1 seed" not in fig._suptitle.get_text() and "median over 2 seeds" in fig._suptitle.get_text()
    labels = fig.legends[0].get_texts()
    assert any("chosen point" in t.get_text() for t in labels)
    # the chosen point's error bar: SE of the replicates, vertically; the folds' range, horizontally
    segments = [seg for coll in ax.collections for seg in getattr(coll, "get_segments", list)()]
    se = float(np.std(reps["DPBERT|SST-2"], ddof=1))
    assert any(np.allclose(s, [[1.5, 88.0 - se], [1.5, 88.0 + se]]) for s in segments)
    assert any(np.allclose(s, [[1.4, 88.0], [1.6, 88.0]]) for s in segments)

    full = figure3(sw, tasks=("SST-2", "RTE"), window=(1.3, 1.96), out_png=tmp_path / "f.png",
                   out_pdf=tmp_path / "f.pdf", selected=sel, replicates=reps, xrange="full")
    assert [ax.get_title() for ax in full.axes if ax.get_title()] == ["SST-2", "RTE"]
    assert full.axes[0].get_xlim()[1] > 6.0 and full.axes[0].get_xlim()[0] < 1.0
    assert "full speed-up range" in full._suptitle.get_text()
    with pytest.raises(ValueError, match="xrange"):
        figure3(sw, xrange="zoom", out_png=tmp_path / "x.png", out_pdf=tmp_path / "x.pdf")


def test_figure3_legend_takes_the_free_cell_of_the_grid(tmp_path):
    sw = sweeps_frame(tasks=("SST-2", "RTE", "MRPC", "CoLA", "QNLI"))
    fig = figure3(sw, tasks=("SST-2", "RTE", "MRPC", "CoLA", "QNLI"), out_png=tmp_path / "g.png",
                  out_pdf=tmp_path / "g.pdf")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 5 and len(fig.axes) == 6
    spare = [ax for ax in fig.axes if not ax.get_title()]
    assert spare[0].get_legend() is not None and not fig.legends
    seven = figure3(sweeps_frame(tasks=("SST-2", "RTE", "MRPC", "CoLA", "QNLI", "QQP", "STS-B")),
                    tasks=("CoLA", "QQP", "STS-B", "SST-2", "RTE", "MRPC", "QNLI"),
                    out_png=tmp_path / "s.png", out_pdf=tmp_path / "s.pdf")
    assert len(seven.axes) == 8  # 3x3: seven panels, the legend's cell; the ninth cell is removed


def test_serving_figure_one_line_per_row_and_fold_a_panel_per_order(tmp_path):
    from dpbert.reporting.figures import serving_figure, serving_label

    rows = []
    for order in ("arrival", "length"):
        for bs, survival in ((1, 0.9), (8, 0.6)):
            for row, name, chosen in (("pabee", "PABEE", "fold 1"), ("pabee", "PABEE", "fold 2"),
                                      ("dpbert", "DPBERT", "both folds")):
                rows.append({"task": "SST-2", "order": order, "batch_size": bs, "row": row, "method": row,
                             "display_name": name, "chosen_on": chosen, "survival": survival,
                             "throughput_speedup": 1.5 * survival, "profile": "micro"})
    fig = serving_figure(pd.DataFrame(rows), tmp_path / "serving.png")
    assert (tmp_path / "serving.png").stat().st_size > 0 and not list(tmp_path.glob("*.pdf"))
    assert [ax.get_title() for ax in fig.axes] == ["SST-2, arrival order", "SST-2, length order"]
    assert [line.get_label() for line in fig.axes[0].get_lines()[:3]] == ["PABEE (fold 1)", "PABEE (fold 2)", "DPBERT"]
    assert [line.get_linestyle() for line in fig.axes[0].get_lines()[:3]] == ["-", "--", "-"]
    assert list(fig.axes[1].get_lines()[2].get_ydata()) == [0.9, 0.6]
    assert serving_label({"display_name": "BERT-6L", "chosen_on": "both folds"}) == "BERT-6L"
    serving_figure(pd.DataFrame(), tmp_path / "empty.png")  # a figure that says why, not a crash
    assert (tmp_path / "empty.png").exists()
