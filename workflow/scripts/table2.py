"""Snakemake script: Table 2 (DPBERT vs DPBERT-soft at equal speed-up) from the records."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from dpbert.reporting.table2 import write_table2
from dpbert.run.runtime import setup

sm = snakemake  # noqa: F821
setup(sm.log[0], threads=1)
write_table2(
    selected_path=sm.input.selected,
    sweeps_path=sm.input.sweeps,
    paper_path=sm.input.paper,
    tasks=list(sm.params.tasks),
    speedup=sm.params.speedup,
    meta=dict(sm.params.meta),
    out_csv=sm.output.table,
    out_md=sm.output.markdown,
    prediction_paths=list(sm.input.predictions),
    jobs=list(sm.params.jobs),
    selection=dict(sm.params.selection),
)
