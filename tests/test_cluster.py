"""The cluster path: which jobs a SLURM run submits, the micro profile through the SLURM profile
against a stand-in scheduler (tests/fake_slurm.py), and what a failed job prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import fake_slurm

ROOT = Path(__file__).resolve().parents[1]
MICRO = ROOT / "tests" / "config" / "micro.yaml"
SLURM_PROFILE = ROOT / "workflow" / "profiles" / "slurm"

# The only rules whose jobs do more than read records: preparing the data (hub download,
# tokenising), training and timing the methods, and the GLUE test-set predictions (which run every
# method's models over the test splits). Every other rule must be in the Snakefile's `localrules:`.
SUBMITTED = {"prepare_data", "run_method", "glue_test"}

_RULES = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings
root, config, workdir = map(Path, sys.argv[1:4])
with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
    wf = api.workflow(resource_settings=ResourceSettings(), snakefile=root / "Snakefile", workdir=workdir,
                      config_settings=ConfigSettings(configfiles=[config]))._workflow
    print(json.dumps({rule.name: rule.name in wf._localrules for rule in wf.rules}))
"""


def workflow_rules(config: Path, workdir: Path) -> dict[str, bool]:
    """Every rule of the workflow under ``config``: whether it is a local rule."""
    result = subprocess.run([sys.executable, "-c", _RULES, str(ROOT), str(config), str(workdir)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_only_training_timing_and_data_jobs_are_submitted(tmp_path):
    rules = workflow_rules(MICRO, tmp_path)  # every rule is defined whatever the profile
    assert SUBMITTED <= set(rules), sorted(rules)
    remote = {name for name, local in rules.items() if not local}
    # a new rule that only reads records must be added to `localrules:` in the Snakefile (or, if it
    # trains or times, to SUBMITTED here)
    assert remote == SUBMITTED, f"submitted to SLURM but not training/timing/data: {sorted(remote - SUBMITTED)}"
