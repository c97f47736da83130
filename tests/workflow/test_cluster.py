"""The cluster path: which jobs a SLURM run submits, the micro profile through the SLURM profile
against a stand-in scheduler (tests/workflow/fake_slurm.py), and what a failed job prints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import MICRO
from tests.workflow import fake_slurm

ROOT = Path(__file__).resolve().parents[2]
MICRO_PROFILE = yaml.safe_load(MICRO.read_text())["profile"]  # its outputs: results/<profile>/
SLURM_PROFILE = ROOT / "workflow" / "profiles" / "slurm"

# The only rules whose jobs do more than read records: preparing the data (hub download,
# tokenising), training and timing the methods, and the GLUE test-set predictions (which run every
# method's models over the test splits), and the serving benchmark (which times every method's models).
# Every other rule must be in the Snakefile's `localrules:`.
SUBMITTED = {"prepare_data", "train_variant", "run_method", "glue_test", "serving"}

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
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


_WARM = """
import os, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, WorkflowSettings
from snakemake_interface_executor_plugins.settings import ExecMode
root, config, workdir, mode = sys.argv[1:5]
os.environ.pop("DPBERT_WARM", None)
with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
    api.workflow(resource_settings=ResourceSettings(), snakefile=Path(root) / "Snakefile", workdir=Path(workdir),
                 config_settings=ConfigSettings(configfiles=[Path(config)]),
                 workflow_settings=WorkflowSettings(exec_mode=ExecMode[mode]))._workflow
print(os.environ.get("DPBERT_WARM"))
"""


@pytest.mark.parametrize(("mode", "warm"), [("REMOTE", "0"), ("DEFAULT", "None")])
def test_a_jobs_own_snakemake_process_on_a_cluster_node_turns_the_warm_worker_off(tmp_path, mode, warm):
    """Under a cluster executor each job runs `snakemake --mode remote` on its node: reading the workflow
    there sets DPBERT_WARM=0, which the job's script inherits, so the job runs in its own process under
    the scheduler's limits (the main process does the same in onstart, once it knows the executor)."""
    result = subprocess.run([sys.executable, "-c", _WARM, str(ROOT), str(MICRO), str(tmp_path), mode],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == warm


def test_only_training_timing_and_data_jobs_are_submitted(tmp_path):
    rules = workflow_rules(MICRO, tmp_path)  # every rule is defined whatever the profile
    assert SUBMITTED <= set(rules), sorted(rules)
    remote = {name for name, local in rules.items() if not local}
    # a new rule that only reads records must be added to `localrules:` in the Snakefile (or, if it
    # trains or times, to SUBMITTED here)
    assert remote == SUBMITTED, f"submitted to SLURM but not training/timing/data: {sorted(remote - SUBMITTED)}"


def test_slurm_profile_puts_each_kind_of_job_on_its_partition():
    """Training/timing, the GLUE test predictions and the serving benchmark on the GPU partition; data preparation, and any
    rule the profile does not name, on the CPU one (the record-reading rules are local anyway)."""
    profile = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    per_rule = {rule: res["slurm_partition"] for rule, res in profile["set-resources"].items()}
    assert set(per_rule) == SUBMITTED  # every submitted rule, named
    gpu, cpu = per_rule["run_method"], profile["default-resources"]["slurm_partition"]
    assert per_rule == {"train_variant": gpu, "run_method": gpu, "glue_test": gpu, "serving": gpu,
                        "prepare_data": cpu} and gpu != cpu


def test_the_slurm_profile_partitions_reach_the_jobs(tmp_path):
    """As Snakemake resolves them (a dry run through the SLURM profile): each job's slurm_partition."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    cfg = _config(tmp_path, tasks=["SST-2"], methods={"bert": {}, "pabee": {"patiences": [1]}})
    result = _snakemake(tmp_path / "run", "-n", f"results/{MICRO_PROFILE}/table1.csv",
                        "--workflow-profile", str(SLURM_PROFILE), config=cfg, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", result.stdout, re.MULTILINE)
    partitions = {(rule, re.search(r"slurm_partition=(\w+)", res).group(1)) for rule, res in jobs}
    assert {p for p in partitions if p[0] in SUBMITTED} == {("prepare_data", "cpu"), ("train_variant", "gpu"),
                                                            ("run_method", "gpu")}
    assert sum(rule == "run_method" for rule, _ in jobs) == sum(rule == "train_variant" for rule, _ in jobs) == 2


def _snakemake(workdir: Path, *args: str, config: Path, env: dict | None = None, timeout: int = 600):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           *args, "--configfile", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


def _config(tmp_path: Path, **top) -> Path:
    cfg = {**yaml.safe_load(MICRO.read_text()), **top}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_failed_jobs_own_error_reaches_the_terminal(tmp_path):
    """A bad row in a GLUE file passes the checks before any job and fails prepare_data; the default
    workflow profile's show-failed-logs prints the job's log, so its DataError is in Snakemake's
    stderr (without the profile it is only in the log file)."""
    (tmp_path / "glue" / "SST-2").mkdir(parents=True)
    (tmp_path / "glue" / "SST-2" / "train.tsv").write_text("sentence\tlabel\nfine words\t1\nbad words\t0\n")
    (tmp_path / "glue" / "SST-2" / "dev.tsv").write_text("sentence\tlabel\nfine words\tmaybe\n")
    cfg = _config(tmp_path, tasks=["SST-2"], methods={"bert": {}},
                  data={"source": "glue_tsv", "data_dir": str(tmp_path / "glue")},
                  model={"source": "minilm", "max_length": 48})  # real text: not the small model's vocabulary
    error = "label 'maybe' is outside SST-2's label set"
    result = _snakemake(tmp_path / "run", f"results/{MICRO_PROFILE}/table1.csv", "--cores", "1", config=cfg)
    assert result.returncode != 0
    # Snakemake looks for <Snakefile's folder>/profiles/default: the `profiles` link finds ours
    assert re.search(r"workflow specific profile \S*profiles/default", result.stderr), result.stderr[:1000]
    assert error in result.stderr, result.stderr[-3000:]
    assert "DataError" in result.stderr and "prepare_data" in result.stderr
    bare = _snakemake(tmp_path / "bare", f"results/{MICRO_PROFILE}/table1.csv", "--cores", "1", "--workflow-profile", "none", config=cfg)
    assert bare.returncode != 0 and error not in bare.stderr + bare.stdout  # the profile is what prints it
    assert error in (tmp_path / "bare" / "work/micro/logs/prepare_data/SST-2.log").read_text()


@pytest.mark.e2e
def test_micro_profile_runs_through_the_slurm_profile(tmp_path):
    """The SLURM executor plugin submits, polls and collects every job through the stand-in scheduler;
    only data and method jobs are submitted, each with the config's resources; the records are whole."""
    env = fake_slurm.install(tmp_path / "bin", tmp_path / "slurm")
    state = tmp_path / "slurm"
    # the micro profile, cut to one task and three methods (two depend on bert): every job kind of
    # the cluster path, in minutes on two shared cores
    cfg = _config(tmp_path, tasks=["SST-2"], methods={
        "bert": {}, "pabee": {"patiences": [1, 2]},
        "dpbert": {"target_rates": [0.3], "stage2_epochs": 1, "stage2_lr": 0.01, "stage3_epochs": 1, "planner_lr": 0.01}})
    start = time.monotonic()
    result = _snakemake(tmp_path / "run", f"results/{MICRO_PROFILE}/table1.csv", "--workflow-profile", str(SLURM_PROFILE),
                        "--slurm-init-seconds-before-status-checks", "1", config=cfg, env=env, timeout=1500)
    wall = time.monotonic() - start
    assert result.returncode == 0, result.stderr[-4000:]

    jobs = fake_slurm.jobs(state)
    expected = ({"rule_prepare_data_wildcards_SST-2"} | {f"rule_run_method_wildcards_SST-2_{m}_1" for m in ("bert", "pabee", "dpbert")}
                | {f"rule_train_variant_wildcards_SST-2_{m}_1_{v}" for m, v in (("bert", "main"), ("pabee", "main"),
                                                                               ("dpbert", "t0.3"))})
    assert sorted(j["comment"] for j in jobs) == sorted(expected)  # once each; table1 ran locally
    assert all(j["state"] == "COMPLETED" and j["exit_code"] == 0 for j in jobs), jobs
    run_id = {j["name"] for j in jobs}
    assert len(run_id) == 1  # the plugin names every job of a run by the run's id, and polls by it
    for job in jobs:  # the profile's and the config's resources reach sbatch
        partition = "cpu" if "prepare_data" in job["comment"] else "gpu"  # the profile's set-resources
        assert (job["partition"], job["account"], job["mem_mb"], job["cpus"]) == (partition, "CHANGE_ME", "4000", "1")
        assert job["time_min"] == ("60" if "prepare_data" in job["comment"] else "90")
        assert "--executor slurm-jobstep" in job["wrap"]
    for method in ("bert", "pabee", "dpbert"):  # under a cluster executor no job runs as a fork of a warm server
        phases = json.loads((tmp_path / "run" / "work" / MICRO_PROFILE / "runs" / "SST-2" / method / "1" / "phases.json").read_text())
        assert phases["warm"] == 0.0, (method, phases)

    calls = fake_slurm.calls(state)
    used = {c[0] for c in calls}
    assert {"sbatch", "sacct", "srun", "sacctmgr"} <= used, used
    assert sum(c[0] == "srun" for c in calls) == len(jobs)  # each job's snakemake ran its step with srun
    answers = fake_slurm.answers(state)
    for job in jobs:  # the plugin saw each job finish
        assert any(f"{job['id']}|COMPLETED" in a for a in answers)
    seen = sorted({line.split("|")[1] for a in answers for line in a})
    table = (tmp_path / "run" / "results" / MICRO_PROFILE / "table1.csv").read_text()
    assert "PABEE" in table and "DPBERT" in table
    print(f"\nstand-in SLURM: {len(jobs)} jobs, states seen {seen}, {len(answers)} status queries, "
          f"commands {sorted(used)}, wall {wall:.0f} s")


@pytest.mark.e2e
def test_a_job_longer_than_its_time_budget_runs_as_attempts_to_the_same_model(tmp_path):
    """BERT-base on the micro SST-2 (2 steps at batch 32) through the SLURM profile with a zero time budget
    (DPBERT_TIME_BUDGET_S: SLURM's minutes are too coarse for a test): the first attempt trains one step,
    checkpoints and exits (75, its SLURM job 1) with one line; train_variant's retries (resources.max_attempts) resubmit it, the
    second attempt resumes and finishes. Its weights equal an uninterrupted local run's, bit for bit."""
    env = fake_slurm.install(tmp_path / "bin", tmp_path / "slurm")
    micro = yaml.safe_load(MICRO.read_text())
    training = {**micro["training"], "finetune": {**micro["training"]["finetune"], "batch_size": 32}}
    cfg = _config(tmp_path, tasks=["SST-2"], methods={"bert": {}}, training=training,
                  resources={"max_runtime": 30, "max_attempts": 3})
    model = f"work/{MICRO_PROFILE}/models/SST-2/bert/1/main"
    result = _snakemake(tmp_path / "run", model, "--workflow-profile", str(SLURM_PROFILE),
                        "--slurm-init-seconds-before-status-checks", "1", config=cfg,
                        env={**env, "DPBERT_TIME_BUDGET_S": "0"}, timeout=1500)
    assert result.returncode == 0, result.stderr[-4000:]
    attempts = [j for j in fake_slurm.jobs(tmp_path / "slurm") if j["comment"] == "rule_train_variant_wildcards_SST-2_bert_1_main"]
    # the job's own Snakemake exits 1 when its script exits 75; the submitting one resubmits it
    assert [(j["state"], j["exit_code"] != 0) for j in attempts] == [("FAILED", True), ("COMPLETED", False)], attempts
    # the SLURM profile's own limit (its config: resources.max_runtime 1440) replaced the file's 30; the job's
    # estimate is below both: it asks for its floor
    assert {j["time_min"] for j in attempts} == {"90"}
    first = Path(attempts[0]["output"]).read_text()
    assert "time budget reached after step 1 of 2 of stage 0 (fine-tune BERT on SST-2); checkpoint saved in" in first, first[-3000:]
    log = (tmp_path / "run" / f"work/{MICRO_PROFILE}/logs/train_variant/SST-2/bert/1/main.log").read_text()
    assert "resuming at step 1 of 2" in log, log[-3000:]
    assert not (tmp_path / "run" / f"work/{MICRO_PROFILE}/checkpoints").exists()  # removed once the job succeeded

    plain = _snakemake(tmp_path / "ref", model, "--cores", "1", config=cfg, timeout=900)
    assert plain.returncode == 0, plain.stderr[-4000:]
    weights = sorted(p.relative_to(tmp_path / "ref" / model) for p in (tmp_path / "ref" / model).rglob("*.safetensors"))
    assert weights and weights == sorted(p.relative_to(tmp_path / "run" / model)
                                         for p in (tmp_path / "run" / model).rglob("*.safetensors"))
    for rel in weights:
        assert (tmp_path / "run" / model / rel).read_bytes() == (tmp_path / "ref" / model / rel).read_bytes(), rel
