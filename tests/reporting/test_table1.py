"""Table 1 layout, averaging rules, Markdown and paper comparison."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dpbert.reporting.layout import TABLE1_COLUMNS, markdown_table
from dpbert.reporting.paper import compare_with_paper, paper_table1
from dpbert.reporting.selection import select_all
from dpbert.reporting.table1 import table1, table1_markdown
from tests.reporting.frames import table_rows

ALL_TASKS = ["CoLA", "MNLI", "SST-2", "QNLI", "MRPC", "QQP", "RTE", "STS-B"]
META = {"profile": "smoke", "backbone": "bert-base-uncased", "device": "cpu",
        "seeds": [1, 2], "window": (1.30, 1.96), "speedup_col": "layer_speedup"}


def _sel(method: str, display: str, task: str, split: str, score: float,
         lay: float, lat: float, n_seeds: int = 1, in_window: bool = True,
         smin: float | None = None, smax: float | None = None) -> dict:
    return {"task": task, "method": method, "display_name": display, "split": split,
            "variant": "", "knob_name": "t", "knob": 0.1, "score": score,
            "score_min": score if smin is None else smin,
            "score_max": score if smax is None else smax,
            "n_seeds": n_seeds, "layer_speedup": lay, "latency_speedup": lat,
            "in_window": in_window, "static": False, "note": ""}


def _full(method: str, display: str, scores: dict[str, float], lay: float = 1.5,
          lat: float = 1.4, **kw) -> list[dict]:
    rows = []
    for t, s in scores.items():
        if t == "MNLI-m":
            rows.append(_sel(method, display, "MNLI", "dev_matched", s, lay, lat, **kw))
        elif t == "MNLI-mm":
            rows.append(_sel(method, display, "MNLI", "dev_mismatched", s, lay, lat, **kw))
        else:
            rows.append(_sel(method, display, t, "dev", s, lay, lat, **kw))
    return rows


SCORES = {"CoLA": 50.0, "MNLI-m": 80.0, "MNLI-mm": 82.0, "SST-2": 90.0, "QNLI": 88.0,
          "MRPC": 86.0, "QQP": 87.0, "RTE": 66.0, "STS-B": 88.0}


def test_columns_constant() -> None:
    assert TABLE1_COLUMNS[:4] == ["model", "speedup", "speedup_latency", "speedup_layer"]
    assert TABLE1_COLUMNS[-6:] == ["avg", "covered", "n_seeds", "profile", "backbone", "device"]
    assert "MNLI-m" in TABLE1_COLUMNS and "MNLI-mm" in TABLE1_COLUMNS


def test_avg_counts_mnli_once() -> None:
    sel = pd.DataFrame(_full("dpbert", "DPBERT", SCORES))
    t = table1(sel, ["dpbert"], ALL_TASKS, "layer_speedup", META)
    assert list(t.columns) == TABLE1_COLUMNS
    r = t.iloc[0]
    # MNLI counts once as (80+82)/2 = 81
    # (50 + 81 + 90 + 88 + 86 + 87 + 66 + 88) / 8 = 636 / 8 = 79.5
    assert r["avg"] == pytest.approx(79.5)
    assert r["MNLI-m"] == 80.0 and r["MNLI-mm"] == 82.0
    assert r["speedup"] == 1.5 and r["speedup_layer"] == 1.5 and r["speedup_latency"] == 1.4
    assert r["profile"] == "smoke" and r["device"] == "cpu" and r["n_seeds"] == 1 and r["covered"] == "8/8"
    t2 = table1(sel, ["dpbert"], ALL_TASKS, "latency_speedup", META)
    assert t2.iloc[0]["speedup"] == 1.4


def test_missing_stsb_averages_over_seven() -> None:
    s = {k: v for k, v in SCORES.items() if k != "STS-B"}
    sel = pd.DataFrame(_full("deebert", "DeeBERT", s))
    t = table1(sel, ["deebert"], ALL_TASKS, "layer_speedup", META)
    r = t.iloc[0]
    assert math.isnan(r["STS-B"])
    # (50 + 81 + 90 + 88 + 86 + 87 + 66) / 7 = 548 / 7 = 78.2857 -> 78.3
    assert r["avg"] == pytest.approx(78.3)
    assert r["covered"] == "7/8"
    md = table1_markdown(t, META, [], None)
    assert "—‡" in md and "no regression exit" in md
    assert "avg over CoLA, MNLI, SST-2, QNLI, MRPC, QQP, RTE: the 7 of 8 tasks" in md and "not in it: STS-B" in md


def test_avg_is_over_the_tasks_every_row_covers() -> None:
    """A row without STS-B (DeeBERT) and one with only RTE and MRPC: every row's avg is over MRPC and RTE
    alone, BERT-base's included; the averages over each row's own tasks would not be comparable."""
    rows = _full("bert", "BERT-base", SCORES)
    rows += _full("deebert", "DeeBERT", {k: v - 2 for k, v in SCORES.items() if k != "STS-B"})
    rows += _full("berxit", "BERxiT", {"MRPC": 80.0, "RTE": 60.0})
    rows.append(_sel("berxit", "BERxiT", "SST-2", "dev", np.nan, np.nan, np.nan, n_seeds=0, in_window=False))
    t = table1(pd.DataFrame(rows), ["bert", "deebert", "berxit"], ALL_TASKS, "layer_speedup", META)
    r = t.set_index("model")
    assert t.attrs["avg_tasks"] == ["MRPC", "RTE"]
    assert r.at["BERT-base", "avg"] == pytest.approx((86.0 + 66.0) / 2)  # not its 8-task 79.5
    assert r.at["DeeBERT", "avg"] == pytest.approx((84.0 + 64.0) / 2)
    assert r.at["BERxiT", "avg"] == pytest.approx(70.0)
    assert list(r["covered"]) == ["8/8", "7/8", "2/8"]
    # the difference of any two averages is the mean difference over the same tasks
    assert r.at["BERT-base", "avg"] - r.at["DeeBERT", "avg"] == pytest.approx(2.0)
    md = table1_markdown(t, META, [], None)
    assert "avg over MRPC, RTE: the 2 of 8 tasks that every row with a score covers" in md
    assert "not in it: CoLA, MNLI, SST-2, QNLI, QQP, STS-B" in md
    # a row with no score at all does not empty the common set; its avg is empty
    t2 = table1(pd.DataFrame(rows), ["bert", "deebert", "berxit", "absent"], ALL_TASKS, "layer_speedup", META)
    assert t2.attrs["avg_tasks"] == ["MRPC", "RTE"] and math.isnan(t2.iloc[3]["avg"])
    assert t2.iloc[3]["covered"] == "0/8"


def test_avg_mnli_needs_both_splits_and_no_common_task() -> None:
    rows = _full("a", "A", {"MNLI-m": 80.0, "RTE": 60.0})
    rows += _full("b", "B", {"MNLI-m": 70.0, "MNLI-mm": 72.0, "MRPC": 75.0})
    t = table1(pd.DataFrame(rows), ["a", "b"], ["MNLI", "MRPC", "RTE"], "layer_speedup", META)
    assert t.attrs["avg_tasks"] == [] and t["avg"].isna().all()
    assert list(t["covered"]) == ["1/3", "2/3"]  # A's MNLI has one split only: not covered
    assert "no task is covered by every row" in table1_markdown(t, META, [], None)


def test_markdown_shows_standard_errors() -> None:
    rows = _full("dpbert", "DPBERT", {"RTE": 66.0, "MRPC": 86.0})
    t = table1(pd.DataFrame(rows), ["dpbert"], ["MRPC", "RTE"], "layer_speedup", META)
    md = table1_markdown(t, META, [], None, se={("DPBERT", "RTE"): 2.345, ("DPBERT", "avg"): 1.25})
    header, row = table_rows(md)
    assert row[header.index("RTE")] == "66.0 ±2.3" and row[header.index("avg")] == "76.0 ±1.2"
    assert row[header.index("MRPC")] == "86.0"
    assert "bootstrap standard error" in md
    assert "bootstrap standard error" not in table1_markdown(t, META, [], None)


def test_no_point_in_window_cell_is_empty_and_footnoted() -> None:
    rows = _full("pabee", "PABEE", {"RTE": 66.0, "MRPC": 86.0}, lay=1.6, lat=1.5)
    rows.append(_sel("pabee", "PABEE", "SST-2", "dev", np.nan, np.nan, np.nan,
                     n_seeds=0, in_window=False))
    t = table1(pd.DataFrame(rows), ["pabee"], ["SST-2", "MRPC", "RTE"], "layer_speedup", META)
    r = t.iloc[0]
    assert math.isnan(r["SST-2"])
    assert r["avg"] == pytest.approx(76.0)  # (86 + 66) / 2
    assert r["speedup"] == 1.6  # speed-up only over the cells that have a point
    md = table1_markdown(t, META, ["Smoke profile: numbers are not comparable."], None)
    assert "—†" in md and "no sweep point in the 1.30–1.96x window" in md
    assert "Smoke profile: numbers are not comparable." in md


def test_column_set_follows_tasks() -> None:
    sel = pd.DataFrame(_full("dpbert", "DPBERT", SCORES))
    t = table1(sel, ["dpbert"], ["RTE", "MRPC"], "layer_speedup", META)
    task_cols = [c for c in t.columns if c in {"CoLA", "MNLI-m", "MNLI-mm", "SST-2", "QNLI",
                                                 "MRPC", "QQP", "RTE", "STS-B"}]
    assert task_cols == ["MRPC", "RTE"]  # paper order, only configured tasks
    assert t.iloc[0]["avg"] == pytest.approx(76.0)
    t_mnli = table1(sel, ["dpbert"], ["MNLI"], "layer_speedup", META)
    assert "MNLI-m" in t_mnli.columns and "MNLI-mm" in t_mnli.columns
    assert "RTE" not in t_mnli.columns


def test_method_order_rows_and_rounding() -> None:
    rows = _full("dpbert", "DPBERT", {"RTE": 66.6666, "MRPC": 86.04}, lay=1.33333, lat=1.4444)
    rows += _full("bert", "BERT-base", {"RTE": 68.0, "MRPC": 88.0}, lay=1.0, lat=1.0)
    t = table1(pd.DataFrame(rows), ["bert", "dpbert", "absent"], ["MRPC", "RTE"], "layer_speedup", META)
    assert list(t["model"]) == ["BERT-base", "DPBERT", "absent"]
    r = t.iloc[1]
    assert r["RTE"] == 66.7 and r["MRPC"] == 86.0 and r["speedup"] == 1.33 and r["speedup_latency"] == 1.44
    assert t.iloc[2][["MRPC", "RTE", "avg"]].isna().all()


def test_markdown_header_and_spread() -> None:
    rows = _full("dpbert", "DPBERT", {"RTE": 66.0, "MRPC": 86.0}, n_seeds=3, smin=64.0, smax=67.5)
    t = table1(pd.DataFrame(rows), ["dpbert"], ["MRPC", "RTE"], "layer_speedup", META)
    assert t.iloc[0]["n_seeds"] == 3
    md = table1_markdown(t, META, [], None)
    for needle in ("smoke", "bert-base-uncased", "cpu", "1, 2", "1.30–1.96x", "layer-count speed-up"):
        assert needle in md
    assert "66.0 (64.0–67.5)" in md
    assert "66.0 ±1.5 (64.0–67.5)" in table1_markdown(t, META, [], None, se={("DPBERT", "RTE"): 1.5})
    assert table_rows(md)[0][0] == "model"
    # explicit spread frame overrides
    spread = pd.DataFrame([{"model": "DPBERT", "column": "RTE", "score_min": 60.0, "score_max": 70.0}])
    md2 = table1_markdown(t, META, [], spread)
    assert "66.0 (60.0–70.0)" in md2


def test_end_to_end_from_sweep_mnli_same_point() -> None:
    base = {"seed": 0, "variant": "", "knob_name": "t", "n_layers": 12, "mean_layers": 8.0,
            "latency_ms": 1.0, "base_latency_ms": 1.5, "latency_spread": 0.0, "n_examples": 10}
    recs = [
        dict(base, task="MNLI", method="dpbert", display_name="DPBERT", knob=0.1,
             split="dev_matched", score=82.0, layer_speedup=1.5, latency_speedup=1.5),
        dict(base, task="MNLI", method="dpbert", display_name="DPBERT", knob=0.1,
             split="dev_mismatched", score=80.0, layer_speedup=1.5, latency_speedup=1.5),
        dict(base, task="MNLI", method="dpbert", display_name="DPBERT", knob=0.2,
             split="dev_matched", score=81.0, layer_speedup=1.5, latency_speedup=1.5),
        dict(base, task="MNLI", method="dpbert", display_name="DPBERT", knob=0.2,
             split="dev_mismatched", score=85.0, layer_speedup=1.5, latency_speedup=1.5),
    ]
    sel = select_all(pd.DataFrame(recs), 1.3, 1.96, "layer_speedup")
    t = table1(sel, ["dpbert"], ["MNLI"], "layer_speedup", META)
    assert t.iloc[0]["MNLI-m"] == 82.0 and t.iloc[0]["MNLI-mm"] == 80.0


def test_paper_table1_loads() -> None:
    p = paper_table1()
    assert "DPBERT" in set(p["model"])
    assert {"model", "speedup", "MNLI", "avg"} <= set(p.columns)


def test_compare_with_paper_diff() -> None:
    ours = pd.DataFrame([
        {"model": "DPBERT", "speedup": 1.5, "speedup_latency": 1.4, "speedup_layer": 1.5,
         "MNLI-m": 80.0, "MNLI-mm": 82.0, "RTE": 60.0, "STS-B": np.nan, "avg": 70.0,
         "n_seeds": 1, "profile": "p", "backbone": "b", "device": "d"},
    ])
    paper = pd.DataFrame([
        {"model": "DPBERT", "speedup": 1.34, "MNLI": 82.5, "RTE": 66.8, "STS-B": 88.7, "avg": 81.3},
        {"model": "DeeBERT", "speedup": 1.33, "MNLI": 79.2, "RTE": 64.6, "STS-B": np.nan, "avg": 76.0},
    ])
    c = compare_with_paper(ours, paper).set_index(["model", "column"])
    assert list(c.columns) == ["ours", "paper", "diff"]
    # our MNLI = (80 + 82) / 2 = 81; 81 - 82.5 = -1.5
    assert c.loc[("DPBERT", "MNLI"), "ours"] == 81.0
    assert c.loc[("DPBERT", "MNLI"), "diff"] == pytest.approx(-1.5)
    # 60.0 - 66.8 = -6.8
    assert c.loc[("DPBERT", "RTE"), "diff"] == pytest.approx(-6.8)
    # 1.5 - 1.34 = 0.16
    assert c.loc[("DPBERT", "speedup"), "diff"] == pytest.approx(0.16)
    # missing on our side stays NaN
    assert math.isnan(c.loc[("DPBERT", "STS-B"), "ours"])
    assert math.isnan(c.loc[("DPBERT", "STS-B"), "diff"])
    # model only in the paper: ours NaN, paper kept
    assert math.isnan(c.loc[("DeeBERT", "RTE"), "ours"])
    assert c.loc[("DeeBERT", "RTE"), "paper"] == 64.6
    assert ("DPBERT", "MNLI-m") not in c.index


def test_compare_against_real_paper_file() -> None:
    sel = pd.DataFrame(_full("dpbert", "DPBERT", SCORES))
    t = table1(sel, ["dpbert"], ALL_TASKS, "layer_speedup", META)
    c = compare_with_paper(t, paper_table1())
    row = c[(c["model"] == "DPBERT") & (c["column"] == "CoLA")].iloc[0]
    assert row["diff"] == pytest.approx(50.0 - 56.8)


def test_markdown_table_shows_each_cell_as_given() -> None:
    """pandas' to_markdown (tabulate) with numbers left unparsed: "81.20" stays "81.20", "1e3" stays "1e3"."""
    lines = markdown_table(["model", "CoLA", "avg"], [["BERT-base", "81.20 ±1.4§", "—†"], ["x", "1e3", "7"]])
    assert table_rows("\n".join(lines)) == [["model", "CoLA", "avg"], ["BERT-base", "81.20 ±1.4§", "—†"],
                                            ["x", "1e3", "7"]]
    assert len(lines) == 4 and set(lines[1]) <= set("|:-")
    assert len({len(line) for line in lines}) == 1  # padded to one width per column


@pytest.mark.parametrize(("profile", "folder"), [("demo", "results/"), ("minilm", "results/minilm/")])
def test_markdown_footnotes_name_the_profiles_own_files(profile, folder) -> None:
    """The degenerate mark's footnote and the choice note name the profile's own health.md and
    selected_points.csv (results/<profile>/ for a profile other than the demo), never the demo's."""
    from dpbert.reporting.table1 import choice_note

    rows = _full("dpbert", "DPBERT", {"RTE": 66.0, "MRPC": 86.0})
    t = table1(pd.DataFrame(rows), ["dpbert"], ["MRPC", "RTE"], "layer_speedup", META)
    t["degenerate"] = "RTE"
    meta = {**META, "profile": profile}
    md = table1_markdown(t, meta, [], None)
    assert "66.0§" in md and f"the reason is in {folder}health.md." in md
    assert f"{folder}selected_points.csv lists each fold's choice" in choice_note("crossfit", 8, meta)
    if profile != "demo":
        assert "results/health.md" not in md
