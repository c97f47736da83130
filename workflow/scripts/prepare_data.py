"""Snakemake script: load one task from the configured source and tokenise it once."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821
from dpbert.run.warm import run_job_warm  # noqa: E402

run_job_warm(snakemake.params.warm_worker)  # noqa: F821  (returns in the process that runs the job)

from dpbert.run.prepare import prepare_task  # noqa: E402
from dpbert.run.runtime import setup  # noqa: E402

log = setup(snakemake.log[0], threads=1)  # noqa: F821
prepare_task(snakemake.wildcards.task, snakemake.params.data, snakemake.params.model, snakemake.output[0], log)  # noqa: F821
