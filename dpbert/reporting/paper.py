"""The paper's reported numbers, shipped as package data (``paper_numbers/``), and the comparison.

Why: reproduced numbers are read side by side with the paper's. The files are the paper's Table 1
(GLUE dev and test server) and Table 2 (DPBERT vs DPBERT-soft), as printed; ``paper_numbers/README.md``
says what each column is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dpbert.reporting.layout import DEGENERATE_COLUMN, META_COLUMNS

PAPER_DIR: Path = Path(__file__).resolve().parent / "paper_numbers"


def paper_table1(path: Path | None = None) -> pd.DataFrame:
    """The paper's Table 1 (dev), as shipped in ``paper_numbers/``."""
    return pd.read_csv(path or PAPER_DIR / "table1_dev.csv")


def compare_with_paper(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Long (model, column, ours, paper, diff) frame; outer over models/columns.

    Our MNLI is mean(MNLI-m, MNLI-mm) against the paper's single MNLI number;
    models match by display name.  Missing cells on either side stay NaN.
    """
    o = ours.copy()
    if "MNLI-m" in o.columns or "MNLI-mm" in o.columns:
        parts = [o[c].astype(float) for c in ("MNLI-m", "MNLI-mm") if c in o.columns]
        o["MNLI"] = pd.concat(parts, axis=1).mean(axis=1, skipna=True)
    skip = {"model", "speedup_latency", "speedup_layer", "speedup_flops", "n_seeds", "covered", "MNLI-m", "MNLI-mm",
            DEGENERATE_COLUMN, *META_COLUMNS}
    p_cols = [c for c in paper.columns if c != "model"]
    o_cols = [c for c in o.columns if c not in skip]
    columns = p_cols + [c for c in o_cols if c not in p_cols]
    models = list(dict.fromkeys(list(o["model"].astype(str)) + list(paper["model"].astype(str))))
    oi = o.assign(model=o["model"].astype(str)).drop_duplicates("model").set_index("model")
    pi = paper.assign(model=paper["model"].astype(str)).drop_duplicates("model").set_index("model")
    rows = []
    for m in models:
        for c in columns:
            ov = float(oi.at[m, c]) if (m in oi.index and c in oi.columns and not pd.isna(oi.at[m, c])) else np.nan
            pv = float(pi.at[m, c]) if (m in pi.index and c in pi.columns and not pd.isna(pi.at[m, c])) else np.nan
            rows.append({"model": m, "column": c, "ours": ov, "paper": pv, "diff": round(ov - pv, 4)})
    return pd.DataFrame(rows, columns=["model", "column", "ours", "paper", "diff"])
