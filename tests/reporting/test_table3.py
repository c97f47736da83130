"""Reporting layer: Table 2/3 helpers, reproduction report, Figures 3-4 (pure functions, no snakemake)."""

from __future__ import annotations

import pandas as pd

from dpbert.reporting.table3 import CASE_COLUMNS, pick_case_examples


def _preds():
    # idx: n_executed, pred, label
    spec = [(0, 6, 1, 1), (1, 2, 0, 1), (2, 3, 1, 1), (3, 3, 0, 0), (4, 10, 1, 1), (5, 12, 0, 1),
            (6, 11, 0, 0), (7, 10, 1, 1), (8, 2, 1, 1)]
    rows = [{"variant": "t0.25", "knob": 0.5, "split": "dev", "idx": i, "label": lab, "pred": p, "n_executed": n,
                 "executed": " ".join(str(x) for x in range(1, n + 1))} for i, n, p, lab in spec]
    return pd.DataFrame(rows)


def _examples(n=9):
    return {"dev": [{"guid": f"g{i}", "text_a": f"premise {i}", "text_b": f"hypothesis {i}", "label": 0,
                         "kind": "easy" if i % 2 else "hard"} for i in range(n)]}


def test_pick_case_examples_rule():
    cases = pick_case_examples(_preds(), _examples(), k=2, task="QNLI")
    assert list(cases.columns) == CASE_COLUMNS
    short = cases[cases["path"] == "shortest"]
    long_ = cases[cases["path"] == "longest"]
    # idx 1 (2 layers) is wrong, so correct idx 8 (2 layers) then idx 2 / 3 (3 layers, tie -> idx 2)
    assert list(short["idx"]) == [8, 2]
    # idx 5 (12 layers) is wrong: correct 6 (11), then 4 and 7 tie at 10 -> idx 4
    assert list(long_["idx"]) == [6, 4]
    assert cases["correct"].all()
    assert set(cases["task"]) == {"QNLI"}
    assert cases.loc[cases["idx"] == 8, "text_a"].item() == "premise 8"
    assert cases.loc[cases["idx"] == 8, "kind"].item() == "hard"


def test_pick_case_examples_fills_with_wrong_and_is_deterministic():
    p = _preds()
    a = pick_case_examples(p, _examples(), k=4, task="QNLI")
    b = pick_case_examples(p.sample(frac=1.0, random_state=3), _examples(), k=4, task="QNLI")
    pd.testing.assert_frame_equal(a, b)
    assert not set(a.loc[a["path"] == "shortest", "idx"]) & set(a.loc[a["path"] == "longest", "idx"])
    # only 7 correct rows: the 8th pick is a wrong one
    assert (~a["correct"]).sum() == 1
    assert pick_case_examples(p.iloc[:0], _examples()).empty
