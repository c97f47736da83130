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
