"""Reporting layer: Table 2/3 helpers, reproduction report, Figures 3-4 (pure functions, no snakemake)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpbert.reporting.paper import paper_table1
from dpbert.reporting.reproduction import reproduction_report
from dpbert.reporting.table2 import table2
from tests.reporting.frames import selected as selected_frame
from tests.reporting.frames import sweeps as sweeps_frame
from tests.reporting.frames import table2_frame, table_rows


def _ours_table1(keep: float):
    paper = paper_table1()
    rows = []
    for _, p in paper.iterrows():
        row = {"model": p["model"], "speedup": p["speedup"], "speedup_latency": p["speedup"],
               "speedup_layer": p["speedup"]}
        for c in ["CoLA", "SST-2", "QNLI", "MRPC", "QQP", "RTE", "STS-B"]:
            row[c] = p[c]
        row["MNLI-m"] = row["MNLI-mm"] = p["MNLI"]
        rows.append(row)
    t = pd.DataFrame(rows)
    bert = t[t["model"] == "BERT-base"].iloc[0]
    dp = t["model"] == "DPBERT"
    for c in ["CoLA", "MNLI-m", "MNLI-mm", "SST-2", "QNLI", "MRPC", "QQP", "RTE", "STS-B"]:
        t.loc[dp, c] = bert[c] * keep
    t["profile"], t["backbone"], t["device"] = "demo", "small-12", "cpu"
    return t


def _meta(**kw):
    return {"profile": "demo", "seeds": [1, 2, 3], "window": (1.30, 1.96), "speedup_col": "layer_speedup",
            "backbone": "small-12", "device": "cpu", **kw}


def test_reproduction_report_mentions_every_paper_cell():
    paper = paper_table1()
    text = reproduction_report(_ours_table1(0.99), paper, table2_frame(True), _meta())
    seven = ["CoLA", "MNLI", "SST-2", "QNLI", "MRPC", "QQP", "RTE"]  # DeeBERT has no STS-B
    rows = {r[0]: " | ".join(r) for r in table_rows(text.split("## Table 1 (dev)")[1].split("##")[0])}
    for _, p in paper.iterrows():
        line = rows[p["model"]]
        for c in paper.columns[1:]:
            if pd.isna(p[c]):
                continue
            nd = 2 if c == "speedup" else 1
            # avg: the paper's own numbers over the tasks every row covers, not its printed 8-task average
            value = np.mean([p[t] for t in seven]) if c == "avg" else p[c]
            assert f"/ {float(value):.{nd}f}" in line, (p["model"], c)
    assert "avg: recomputed for ours and for the paper over CoLA, MNLI, SST-2, QNLI, MRPC, QQP, RTE (the 7" in text
    for v in (66.8, 51.6, 90.8, 85.7):
        assert f"{v:.1f}" in text
    for word in ("demo", "small-12", "cpu", "1, 2, 3", "1.30–1.96x", "layer-count", "Caveat"):
        assert word in text


def _answer(text: str, question_start: str) -> str:
    line = next(ln for ln in text.splitlines() if question_start in ln)
    return line


def test_reproduction_report_claims_keep_99_percent():
    text = reproduction_report(_ours_table1(0.99), paper_table1(), table2_frame(True), _meta())
    assert "98% of BERT-base's average at ≥ 1.30x?** YES" in _answer(text, "98% of BERT")
    assert "99.0% of BERT-base" in text
    assert "vs DeeBERT: YES" in text
    assert "vs PABEE: YES" in text and "vs BERxiT: YES" in text
    assert "DPBERT-soft at equal speed-up?** YES" in text


def test_reproduction_report_claims_keep_90_percent():
    text = reproduction_report(_ours_table1(0.90), paper_table1(), table2_frame(False), _meta(profile="paper"))
    assert "98% of BERT-base's average at ≥ 1.30x?** NO" in _answer(text, "98% of BERT")
    assert "90.0% of BERT-base" in text
    # 0.9 * 82.4 (avg over 8) ~ 74: below DeeBERT's 7-task average of 76.0 over common tasks
    assert "vs DeeBERT: NO" in text
    assert "DPBERT-soft at equal speed-up?** NO" in text
    assert "Caveat" not in text


def test_reproduction_report_cannot_tell():
    ours = _ours_table1(0.99)
    ours = ours[~ours["model"].isin(["DPBERT", "DeeBERT"])]
    t2 = table2(selected_frame({}).iloc[:0], sweeps_frame(methods=("bert",)), speedup_col="layer_speedup")
    text = reproduction_report(ours, paper_table1(), t2, _meta())
    assert "98% of BERT-base's average at ≥ 1.30x?** CANNOT TELL" in text
    assert "vs DeeBERT: CANNOT TELL" in text
    assert "DPBERT-soft at equal speed-up?** CANNOT TELL" in text


def test_reproduction_report_speedups_not_comparable():
    ours = _ours_table1(0.99)
    ours.loc[ours["model"] == "DeeBERT", "speedup"] = 1.90  # faster, lower score: a different trade-off
    ours.loc[ours["model"] == "PABEE", "speedup"] = 1.10  # slower and lower: DPBERT dominates
    t2 = table2_frame(True)
    t2.loc[(t2["model"] == "DPBERT-soft") & (t2["source"] == "ours"), "RTE layer_speedup"] = 1.90
    text = reproduction_report(ours, paper_table1(), t2, _meta())
    assert "vs DeeBERT: CANNOT TELL" in text
    assert "vs PABEE: YES (AND FASTER)" in text
    assert "DPBERT-soft at equal speed-up?** CANNOT TELL" in text


def _avg_cells(text: str) -> dict[str, tuple[float, float]]:
    """model -> (ours, paper) of the avg column of the report's Table 1 section."""
    section = text.split("## Table 1 (dev)")[1].split("##")[0]
    out = {}
    for cells in table_rows(section)[1:]:
        if any("/" in c for c in cells):
            ours, paper = cells[-1].split(" (")[0].split(" / ")
            out[cells[0]] = (float("nan") if ours == "—" else float(ours), float(paper))
    return out


def test_reproduction_avg_cells_share_one_task_set():
    """DeeBERT has no STS-B (paper and ours), our BERxiT has no SST-2 and no QNLI: every avg cell of the
    report, ours and the paper's, is over the five tasks left, so the cells can be compared row to row."""
    ours = _ours_table1(0.99)
    ours.loc[ours["model"] == "BERxiT", ["SST-2", "QNLI"]] = np.nan
    ours.loc[ours["model"] == "DeeBERT", "STS-B"] = np.nan
    paper = paper_table1()
    text = reproduction_report(ours, paper, table2_frame(True), _meta())
    tasks = ["CoLA", "MNLI", "MRPC", "QQP", "RTE"]
    assert "over CoLA, MNLI, MRPC, QQP, RTE (the 5 tasks" in text
    cells = _avg_cells(text)
    for _, p in paper.iterrows():
        o = ours[ours["model"] == p["model"]].iloc[0]
        ours_scores = {"MNLI": (o["MNLI-m"] + o["MNLI-mm"]) / 2, **{t: o[t] for t in tasks if t != "MNLI"}}
        assert cells[p["model"]][1] == pytest.approx(np.mean([p[t] for t in tasks]), abs=0.05), p["model"]
        assert cells[p["model"]][0] == pytest.approx(np.mean([ours_scores[t] for t in tasks]), abs=0.05)
    # a different task set for one row would show here: BERT-base's 8-task average is not its cell
    assert cells["BERT-base"][1] != pytest.approx(82.4, abs=0.05)


def test_reproduction_table2_avg_over_tasks_all_rows_have():
    t2 = table2_frame(True)  # ours: RTE and SST-2; the paper: RTE, MRPC, SST-2, STS-B
    text = reproduction_report(_ours_table1(0.99), paper_table1(), t2, _meta())
    assert "avg: over RTE, SST-2, the tasks all four rows have" in text
    line = next(r for r in table_rows(text.split("## Table 2")[1]) if r[0] == "DPBERT-soft")
    assert line[-1].endswith(f"/ {(51.6 + 85.7) / 2:.1f} ({np.mean(t2.loc[1, ['RTE', 'SST-2']]) - (51.6 + 85.7) / 2:+.1f})")


def _replicates(ours: pd.DataFrame, se: float, n: int = 400, shared: float = 0.0) -> pd.DataFrame:
    """Fake paired replicates around every cell of ``ours``: independent noise of SD ``se`` per cell, plus
    a component ``shared`` common to every row on the same column (what pairing removes)."""
    rng = np.random.default_rng(0)
    cols = {}
    common = {c: rng.normal(0, shared, n) for c in ["CoLA", "MNLI-m", "MNLI-mm", "SST-2", "QNLI", "MRPC", "QQP",
                                                       "RTE", "STS-B"]}
    for _, r in ours.iterrows():
        for c, noise in common.items():
            if not pd.isna(r[c]):
                cols[f"{r['model']}|{c}"] = float(r[c]) + noise + rng.normal(0, se, n)
    return pd.DataFrame(cols)


def test_claims_within_noise_when_the_difference_is_under_two_se():
    ours = _ours_table1(0.99)
    # DPBERT 81.6 vs PABEE 79.7 on the paper's numbers: 1.9 points apart
    tight = reproduction_report(ours, paper_table1(), table2_frame(True), _meta(), replicates=_replicates(ours, 0.2))
    pabee = next(ln for ln in tight.splitlines() if "- vs PABEE:" in ln)
    assert "vs PABEE: YES." in pabee and "Difference +1.9 ± 0.1" in pabee
    noisy = reproduction_report(ours, paper_table1(), table2_frame(True), _meta(), replicates=_replicates(ours, 6.0))
    assert "vs PABEE: CANNOT TELL (WITHIN NOISE)." in noisy
    # keep >= 98%: DPBERT at 99% of BERT-base is 1 point above the line; noise of 6 points a cell hides it
    assert "98% of BERT-base's average at ≥ 1.30x?** CANNOT TELL (WITHIN NOISE)" in noisy
    assert "98% of BERT-base's average at ≥ 1.30x?** YES" in tight
    # without replicates the answers are the plain yes/no ones (and say nothing of noise)
    plain = reproduction_report(ours, paper_table1(), table2_frame(True), _meta())
    assert "WITHIN NOISE" not in plain and "vs PABEE: YES." in plain


def test_claims_use_the_paired_standard_error():
    """Noise shared by every row on a column cancels in a paired difference: a large shared component with
    a small independent one is not "within noise", the same total noise unshared would be."""
    ours = _ours_table1(0.99)
    paired = reproduction_report(ours, paper_table1(), table2_frame(True), _meta(),
                                 replicates=_replicates(ours, 0.2, shared=6.0))
    assert "vs PABEE: YES." in paired


def test_claims_never_say_yes_on_a_degenerate_cell():
    """A task where health marks either row degenerate answers nothing: it leaves the average, and when every
    common task is degenerate the claim cannot be told."""
    ours = _ours_table1(0.99)
    ours["degenerate"] = ""
    clean = reproduction_report(ours, paper_table1(), table2_frame(True), _meta())
    assert "vs PABEE: YES." in clean and "Per task: 7 yes" in clean
    every = ";".join(c for c in ours.columns if c in ("CoLA", "MNLI-m", "MNLI-mm", "SST-2", "QNLI", "MRPC", "QQP",
                                                       "RTE", "STS-B"))
    ours.loc[ours["model"] == "PABEE", "degenerate"] = every
    marked = reproduction_report(ours, paper_table1(), table2_frame(True), _meta())
    line = next(ln for ln in marked.splitlines() if "- vs PABEE:" in ln)
    assert "vs PABEE: CANNOT TELL." in line and "degenerate" in line
    ours.loc[ours["model"] == "PABEE", "degenerate"] = "CoLA;MNLI-m"
    some = next(ln for ln in reproduction_report(ours, paper_table1(), table2_frame(True), _meta()).splitlines()
                if "- vs PABEE:" in ln)
    assert "Left out, degenerate in either row: MNLI, CoLA." in some and "over 6 common tasks" in some


@pytest.mark.parametrize(("profile", "folder"), [("demo", "results/"), ("minilm", "results/minilm/")])
def test_reproduction_report_points_to_the_profiles_own_files(profile, folder):
    """Every file the report names (health.md of a degenerate cell, table1.md, table2.md, the folder it reads) is
    the profile's own: results/ for the demo, results/<profile>/ for another profile, never the demo's."""
    ours = _ours_table1(0.99)
    ours["degenerate"] = ""
    ours.loc[ours["model"] == "PABEE", "degenerate"] = "CoLA;MNLI-m;MNLI-mm;SST-2;QNLI;MRPC;QQP;RTE;STS-B"
    soft = ours[ours["model"] == "DPBERT"].assign(model="DPBERT-soft", degenerate="SST-2;MRPC;RTE;STS-B")
    ours = pd.concat([ours, soft], ignore_index=True)  # also a row the paper's Table 1 does not have
    text = reproduction_report(ours, paper_table1(), table2_frame(True), _meta(profile=profile))
    pabee = next(ln for ln in text.splitlines() if "- vs PABEE:" in ln)
    soft = next(ln for ln in text.splitlines() if "Is DPBERT better than DPBERT-soft" in ln)
    for line in (pabee, soft):
        assert f": {folder}health.md)" in line, line
    assert f"read from {folder} (no training" in text
    assert f"(see {folder}table1.md)" in text and f"matched points: {folder}table2.md." in text
    if profile != "demo":
        assert "results/health.md" not in text and "results/table1.md" not in text
