"""Snakemake script: Table 3 (DPBERT's shortest / longest computational paths) from the records."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from dpbert.reporting.table3 import write_table3
from dpbert.run.runtime import setup

sm = snakemake  # noqa: F821
setup(sm.log[0], threads=1)
tasks = list(sm.params.tasks)
write_table3(
    selected_path=sm.input.selected,
    pred_paths=dict(zip(tasks, sm.input.predictions)),
    data_paths=dict(zip(tasks, sm.input.data)),
    k=int(sm.params.k),
    meta=dict(sm.params.meta),
    out_csv=sm.output.table,
    out_md=sm.output.markdown,
)
