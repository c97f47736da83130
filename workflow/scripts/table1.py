"""Snakemake script: gather the sweep records into Table 1 (CSV + Markdown) and the tidy sweep CSV."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from dpbert.reporting.table1 import write_table1  # noqa: E402
from dpbert.run.runtime import setup  # noqa: E402

sm = snakemake  # noqa: F821
setup(sm.log[0], threads=1)
write_table1(
    sweep_paths=list(sm.input.sweeps),
    tasks=sm.params.tasks,
    methods=sm.params.methods,
    selection=sm.params.selection,
    meta=dict(sm.params.meta),
    table_out=sm.output.table,
    markdown_out=sm.output.markdown,
    sweeps_out=sm.output.sweeps,
    selected_out=sm.output.selected,
    health_records={"prediction_paths": list(sm.input.predictions),
                    "diagnostics_paths": list(sm.input.diagnostics), "jobs": list(sm.params.jobs)},
    bootstrap_out=sm.output.bootstrap,
    flops_records={
        "data_paths": dict(zip(sm.params.tasks, sm.input.data)),
        "stage1_dirs": {(str(t), int(s)): str(Path(d).parent) for (t, s), d in zip(sm.params.stage1_jobs, sm.input.stage1)},
        "method_params": dict(sm.params.method_params),
    },
)
