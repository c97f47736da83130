"""Run records as small DataFrames, shared by the reporting tests (sweeps of BERT-base, DPBERT and
DPBERT-soft over two tasks and two seeds; DPBERT's selected points)."""

from __future__ import annotations

import pandas as pd

from dpbert.reporting.table2 import table2

PAPER_T2 = pd.DataFrame({"model": ["DPBERT", "DPBERT-soft"], "RTE": [66.8, 51.6], "MRPC": [87.8, 82.8],
                         "SST-2": [90.8, 85.7], "STS-B": [88.7, 83.8]})
"""A paper Table 2 for the tests (DPBERT vs DPBERT-soft)."""


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of every row of the Markdown tables in ``markdown``, stripped of their padding (header rows
    included, the |---| separator rows not)."""
    rows = []
    for line in markdown.splitlines():
        line = line.strip()
        if not (line.startswith("|") and line.endswith("|") and len(line) > 1):
            continue
        cells = [c.strip().replace("\0", "\\|") for c in line[1:-1].replace("\\|", "\0").split("|")]
        if not all(c and set(c) <= set(":-") for c in cells):
            rows.append(cells)
    return rows


def sweeps(methods=("bert", "dpbert", "dpbert_soft"), tasks=("RTE", "SST-2")):
    rows = []
    for task in tasks:
        for seed in (1, 2):
            if "bert" in methods:
                rows.append({"task": task, "method": "bert", "display_name": "BERT-base", "seed": seed, "variant": "main",
                                 "knob_name": "none", "knob": 0.0, "split": "dev", "score": 90.0 + seed, "layer_speedup": 1.0,
                                 "latency_speedup": 1.0, "profile": "unit", "n_layers": 12})
            for m, disp, base in (("dpbert", "DPBERT", 88.0), ("dpbert_soft", "DPBERT-soft", 84.0)):
                if m not in methods:
                    continue
                for t, sp in ((0.25, 1.34), (0.35, 1.55), (0.45, 1.82)):
                    off = 0.02 if m == "dpbert_soft" else 0.0
                    rows.append({"task": task, "method": m, "display_name": disp, "seed": seed, "variant": f"t{t:g}",
                                     "knob_name": "threshold", "knob": 0.5, "split": "dev", "score": base - 10 * t + seed,
                                     "layer_speedup": sp + off, "latency_speedup": sp * 0.9 + off, "profile": "unit",
                                     "n_layers": 12})
    return pd.DataFrame(rows)


def selected(task_variant: dict[str, tuple[str, float, float]]):
    rows = [{"task": t, "method": "dpbert", "display_name": "DPBERT", "split": "dev", "variant": v, "knob_name": "threshold",
                 "knob": 0.5, "score": s, "layer_speedup": sp, "latency_speedup": sp * 0.9, "in_window": True, "static": False,
                 "note": ""} for t, (v, s, sp) in task_variant.items()]
    return pd.DataFrame(rows)


def table2_frame(dp_better: bool):
    """Table 2 of ``sweeps`` and two selected DPBERT points; DPBERT-soft 20 points better unless ``dp_better``."""
    sel = selected({"RTE": ("t0.35", 86.0, 1.55), "SST-2": ("t0.25", 87.0, 1.34)})
    sw = sweeps()
    if not dp_better:
        sw.loc[sw["method"] == "dpbert_soft", "score"] += 20
    return table2(sel, sw, tasks=("RTE", "SST-2"), speedup_col="layer_speedup", paper=PAPER_T2)
