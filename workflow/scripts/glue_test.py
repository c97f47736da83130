"""Snakemake script: write one method's GLUE test-server prediction files."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from dpbert.reporting.glue_submission import write_submission  # noqa: E402
from dpbert.run.latency import resolve_device  # noqa: E402
from dpbert.run.runtime import setup  # noqa: E402

sm = snakemake  # noqa: F821
setup(sm.log[0], threads=1)
write_submission(
    method_name=sm.wildcards.method,
    tasks=list(sm.params.tasks),
    selected_csv=sm.input.selected,
    model_dirs=dict(zip(sm.params.tasks, sm.params.model_dirs)),
    data_paths=dict(zip(sm.params.tasks, sm.input.data)),
    method_params=sm.params.method_params,
    out_dir=sm.output[0],
    device=resolve_device(sm.params.device),
)
