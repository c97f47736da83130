"""Snakemake script: Figure 3 (dev score vs speed-up; framed on the window, and the full range) from the records."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from dpbert.reporting.figures import write_figure3
from dpbert.run.runtime import setup

sm = snakemake  # noqa: F821
setup(sm.log[0], threads=1)
write_figure3(
    sweeps_path=sm.input.sweeps,
    selected_path=sm.input.selected,
    tasks=list(sm.params.tasks),
    window=list(sm.params.window),
    speedup=sm.params.speedup,
    static_methods=list(sm.params.static),
    out_png=sm.output.png,
    out_pdf=sm.output.pdf,
    bootstrap_path=sm.input.bootstrap,
    out_full_png=sm.output.full_png,
    out_full_pdf=sm.output.full_pdf,
)
