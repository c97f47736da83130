"""Snakemake script: summarise the per-job records (phases.json) of a run."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from dpbert.run.runtime import atomic_write_df, setup  # noqa: E402
from dpbert.tools.rule_benchmarks import read_benchmarks, summarise  # noqa: E402

sm = snakemake  # noqa: F821
setup(sm.log[0], threads=1)
jobs = read_benchmarks(list(sm.input.phases))
atomic_write_df(jobs, sm.output.jobs)
atomic_write_df(summarise(jobs), sm.output.summary)
