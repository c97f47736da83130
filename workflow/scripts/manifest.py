"""Snakemake script: stamp every reporting output of the profile (commit, config hash, sha256 of each file)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

from dpbert.reporting.manifest import write_manifest  # noqa: E402
from dpbert.run.runtime import setup  # noqa: E402

sm = snakemake  # noqa: F821
setup(sm.log[0], threads=1)
# paths relative to the working folder (where results/ is); the commit of the code that ran
write_manifest(files=list(sm.input), out=sm.output[0], root=".", code=str(Path(sm.scriptdir).parents[1]),
               config=dict(sm.config), profile=sm.params.profile)
