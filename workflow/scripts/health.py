"""Snakemake script: method health (results/health.csv, .md) from every job's records and the selected points."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from dpbert.reporting.health import write_health  # noqa: E402
from dpbert.run.runtime import setup  # noqa: E402

sm = snakemake  # noqa: F821
setup(sm.log[0], threads=1)
write_health(
    sweep_paths=list(sm.input.sweeps),
    prediction_paths=list(sm.input.predictions),
    diagnostics_paths=list(sm.input.diagnostics),
    jobs=list(sm.params.jobs),
    methods=list(sm.params.methods),
    selected_path=sm.input.selected,
    selection=sm.params.selection,
    meta=dict(sm.params.meta),
    csv_out=sm.output.csv,
    markdown_out=sm.output.markdown,
)
