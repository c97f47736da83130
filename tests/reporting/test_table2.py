"""Reporting layer: Table 2/3 helpers, reproduction report, Figures 3-4 (pure functions, no snakemake)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpbert.reporting.table2 import match_speedup, table2, table2_markdown
from tests.reporting.frames import PAPER_T2, table2_frame
from tests.reporting.frames import selected as selected_frame
from tests.reporting.frames import sweeps as sweeps_frame


def _pts(rows):
    return pd.DataFrame(rows, columns=["variant", "knob", "score", "layer_speedup"])


def test_match_speedup_picks_closest():
    pts = _pts([("t0.2", 0.5, 80.0, 1.20), ("t0.3", 0.5, 70.0, 1.41), ("t0.4", 0.5, 90.0, 1.70)])
    assert match_speedup(pts, 1.45, "layer_speedup")["variant"] == "t0.3"
    assert match_speedup(pts, 1.60, "layer_speedup")["variant"] == "t0.4"


def test_match_speedup_ties_higher_score_then_deterministic():
    pts = _pts([("t0.2", 0.5, 70.0, 1.30), ("t0.4", 0.5, 75.0, 1.50), ("t0.3", 0.5, 75.0, 1.50)])
    # 1.40 is equidistant from 1.30 and 1.50: higher score wins, then variant name
    best = match_speedup(pts, 1.40, "layer_speedup")
    assert best["variant"] == "t0.3" and best["score"] == 75.0
    assert match_speedup(pts.iloc[::-1], 1.40, "layer_speedup")["variant"] == "t0.3"
    assert match_speedup(pts.iloc[:0], 1.4, "layer_speedup") is None
    assert match_speedup(pts, np.nan, "layer_speedup") is None


def test_table2_matches_soft_to_dpbert_speedup():
    sel = selected_frame({"RTE": ("t0.35", 86.0, 1.55), "SST-2": ("t0.25", 87.0, 1.34)})
    t2 = table2(sel, sweeps_frame(), tasks=("RTE", "SST-2"), speedup_col="layer_speedup", paper=PAPER_T2)
    ours = t2[t2["source"] == "ours"].set_index("model")
    assert ours.at["DPBERT-soft", "RTE point"] == "t0.35@0.5"
    assert ours.at["DPBERT-soft", "SST-2 point"] == "t0.25@0.5"
    assert ours.at["DPBERT", "RTE"] == pytest.approx(88.0 - 3.5 + 1.5)  # median over seeds 1, 2
    assert ours.at["DPBERT-soft", "RTE layer_speedup"] == pytest.approx(1.57)
    assert not np.isnan(ours.at["DPBERT-soft", "RTE latency_speedup"])
    paper = t2[t2["source"] == "paper"].set_index("model")
    assert paper.at["DPBERT-soft", "RTE"] == 51.6
    md = table2_markdown(t2, ["RTE", "SST-2"], {"profile": "unit", "speedup_col": "layer_speedup"})
    assert "DPBERT-soft" in md and "1.57x" in md


def test_table2_without_dpbert_soft():
    sel = selected_frame({"RTE": ("t0.35", 86.0, 1.55)})
    t2 = table2(sel, sweeps_frame(methods=("bert", "dpbert")), tasks=("RTE", "MRPC"), speedup_col="layer_speedup")
    ours = t2.set_index("model")
    assert list(t2["model"]) == ["DPBERT", "DPBERT-soft"]
    assert not np.isnan(ours.at["DPBERT", "RTE"])
    assert np.isnan(ours.at["DPBERT-soft", "RTE"]) and np.isnan(ours.at["DPBERT-soft", "avg"])
    assert "not run" in ours.at["DPBERT-soft", "note"]
    assert "MRPC not run" in ours.at["DPBERT", "note"]


def test_table2_without_any_dpbert():
    t2 = table2(selected_frame({}).iloc[:0], sweeps_frame(methods=("bert",)), speedup_col="layer_speedup", paper=PAPER_T2)
    assert t2[t2["source"] == "ours"]["avg"].isna().all()
    assert len(t2) == 4


def test_table2_avg_over_the_tasks_every_row_has():
    """Ours cover RTE and SST-2, the paper all four: every row's avg, the paper's too, is over RTE and SST-2."""
    t2 = table2_frame(True)
    assert t2.attrs["avg_tasks"] == ["RTE", "SST-2"]
    paper = t2[t2["source"] == "paper"].set_index("model")
    assert paper.at["DPBERT", "avg"] == pytest.approx((66.8 + 90.8) / 2)  # not the 4-task 86.0
    ours = t2[t2["source"] == "ours"].set_index("model")
    assert ours.at["DPBERT", "avg"] == pytest.approx(np.mean([ours.at["DPBERT", "RTE"], ours.at["DPBERT", "SST-2"]]))
    md = table2_markdown(t2, ["RTE", "SST-2"], {"profile": "unit", "speedup_col": "layer_speedup"})
    assert "avg: over RTE, SST-2, the tasks every row with a score has" in md
