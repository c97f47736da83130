"""Snakemake script: the reproduction report (ours vs the paper, claims answered) from the tables."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from dpbert.reporting.reproduction import write_reproduction
from dpbert.run.runtime import setup

sm = snakemake  # noqa: F821
setup(sm.log[0], threads=1)
write_reproduction(
    table1_path=sm.input.table1,
    table2_path=sm.input.table2,
    paper_table1_path=sm.input.paper,
    bootstrap_path=sm.input.bootstrap,
    meta=dict(sm.params.meta),
    out_md=sm.output[0],
)
