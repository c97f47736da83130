"""Snakemake script: Figure 4 (DPBERT's layer-execution frequency per task) from the predictions."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from dpbert.reporting.figures import write_figure4
from dpbert.run.runtime import setup

sm = snakemake  # noqa: F821
setup(sm.log[0], threads=1)
tasks, n_seeds = list(sm.params.tasks), len(sm.params.seeds)
preds = list(sm.input.predictions)  # task-major, then seed (see rule figure4)
write_figure4(
    selected_path=sm.input.selected,
    sweeps_path=sm.input.sweeps,
    pred_paths={t: preds[i * n_seeds:(i + 1) * n_seeds] for i, t in enumerate(tasks)},
    out_png=sm.output.png,
    out_pdf=sm.output.pdf,
    out_csv=sm.output.freq,
)
