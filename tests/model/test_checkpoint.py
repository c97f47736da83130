"""Checkpointed training: a job SIGKILLed mid-epoch, rerun, ends with the very weights of an uninterrupted run.

Each job is dpbert.run.job.run_method (train, then sweep) in its own process on the micro profile's
data and model. The kill is the checkpoint module's test hook (DPBERT_KILL_AFTER_STEP): a real SIGKILL
of the job process right after a given step, deterministic where polling for a file would race the job.
The reference runs train with checkpoints off, so the comparison also shows that checkpointing itself
changes nothing. A corrupt checkpoint stops the job with an error naming the file (and leaves it);
a checkpoint of another config is ignored with a log line, never resumed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import tiny_classifier, toy_split

ROOT = Path(__file__).resolve().parents[2]
MICRO = yaml.safe_load((ROOT / "tests" / "config" / "micro.yaml").read_text())
TASK = "SST-2"  # 64 training examples at batch size 16: 4 steps an epoch

JOB = r"""
import json, logging, sys
import torch
torch.set_num_threads(1)
from dpbert.model.checkpoint import TimeBudgetReached
from dpbert.run.job import run_method
from dpbert.run.job_resources import BUDGET_EXIT
a = json.loads(sys.argv[1])
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
w = a.pop("out")
try:
    run_method(**a, profile="micro", model_out=f"{w}/model", sweep_out=f"{w}/sweep.csv",
               predictions_out=f"{w}/predictions.csv.gz", phases_out=f"{w}/phases.json", timing_lock_path=None,
               log=logging.getLogger("dpbert"))
except TimeBudgetReached as exc:  # as workflow/scripts/run_method.py ends an attempt
    print(exc, file=sys.stderr)
    sys.exit(BUDGET_EXIT)
"""


def _training(epochs: int = 3, checkpoint="epoch", lr: float = 0.001, batch_size: int = 16) -> dict:
    return {**MICRO["training"], "finetune": {**MICRO["training"]["finetune"], "epochs": epochs, "lr": lr,
                                              "batch_size": batch_size},
            "checkpoint": checkpoint}


def run_job(out: Path, method: str, params: dict, training: dict, data: Path, base: Path | None,
            kill_after: str | None = None, time_budget_s: float | None = None) -> subprocess.CompletedProcess:
    args = {"task": TASK, "method": method, "seed": 1, "method_params": params, "training": training,
            "model": MICRO["model"], "latency": {**MICRO["latency"], "examples": 4}, "data_path": str(data),
            "base_dir": str(base) if base else None, "out": str(out),
            "checkpoint_dir": str(out / "checkpoints"), "checkpoint": training["checkpoint"],
            "time_budget_s": time_budget_s}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("DPBERT_KILL_AFTER_STEP", None)
    if kill_after:
        env["DPBERT_KILL_AFTER_STEP"] = kill_after
    return subprocess.run([sys.executable, "-c", JOB, json.dumps(args)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600, check=False)


def final_state(method: str, params: dict, folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of every variant's trained model, by variant and state_dict key."""
    from dpbert.data.tasks import get_task
    from dpbert.methods.registry import build_method

    impl = build_method(method, params, get_task(TASK))
    out = {}
    for variant in impl.variants():
        for key, value in impl.load(folder / variant).state_dict().items():
            out[f"{variant}/{key}"] = value
    return out


def assert_bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[int, float]:
    assert a.keys() == b.keys()
    max_diff = 0.0
    for key, x in a.items():
        y = b[key]
        assert x.dtype == y.dtype and x.shape == y.shape, key
        if x.is_floating_point() and x.numel():
            max_diff = max(max_diff, (x - y).abs().max().item())
        assert torch.equal(x, y), f"{key} differs after the resume"
    print(f"{len(a)} tensors compared, max abs diff {max_diff}")
    return len(a), max_diff


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The micro SST-2 data and an uninterrupted BERT-base run (checkpoints off): the reference for the
    BERT-base test and the stage-1 model of DeeBERT and DPBERT."""
    import logging

    from dpbert.run.prepare import prepare_task

    root = tmp_path_factory.mktemp("resume")
    data = root / "SST-2.pt"
    prepare_task(TASK, {**MICRO["data"], "seed": 0}, MICRO["model"], data, logging.getLogger("test"))
    ref = root / "bert-ref"
    result = run_job(ref, "bert", {}, _training(checkpoint="off"), data, None)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (ref / "checkpoints").exists()
    return data, ref / "model"


def _kill_and_resume(tmp_path: Path, method: str, params: dict, training: dict, data: Path, base: Path | None,
                     kill_after: str, ref: Path) -> tuple[str, int, float]:
    killed = run_job(tmp_path, method, params, training, data, base, kill_after=kill_after)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (tmp_path / "model").exists()  # nothing looks finished
    stages = sorted((tmp_path / "checkpoints").glob("*/*/stage*.pt"))
    assert stages, "the killed job left no checkpoint"
    rerun = run_job(tmp_path, method, params, training, data, base)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert not (tmp_path / "checkpoints").exists()  # removed once the job succeeded
    n, diff = assert_bit_identical(final_state(method, params, ref), final_state(method, params, tmp_path / "model"))
    return rerun.stderr, n, diff


def test_bert_killed_mid_epoch_resumes_to_identical_weights(tmp_path, prepared):
    """3 epochs of 4 steps, a checkpoint at each epoch's end; SIGKILL after step 6 (mid epoch 2)."""
    data, ref = prepared
    log, n, diff = _kill_and_resume(tmp_path, "bert", {}, _training(), data, None, "0:6", ref)
    assert "resuming at step 4 of 12" in log, log[-3000:]
    assert n > 30 and diff == 0.0


def test_dpbert_killed_in_a_later_stage_resumes_to_identical_weights(tmp_path, prepared):
    """Two target rates x (stage 2, stage 3), 2 epochs each: 4 train_loop runs. SIGKILL after step 5 of
    the third (t=0.5's stage 2, mid epoch 2): t=0.3's two finished stages load their final state, the
    third resumes at step 4, the fourth trains; both variants equal the uninterrupted run's."""
    data, base = prepared
    params = {"target_rates": [0.3, 0.5], "stage2_epochs": 2, "stage2_lr": 0.01, "stage3_epochs": 2, "planner_lr": 0.01}
    ref = tmp_path / "ref"
    result = run_job(ref, "dpbert", params, _training(checkpoint="off"), data, base)
    assert result.returncode == 0, result.stderr[-3000:]
    log, n, diff = _kill_and_resume(tmp_path / "resumed", "dpbert", params, _training(), data, base, "2:5",
                                    ref / "model")
    assert log.count("finished before the restart") == 2 and "resuming at step 4 of 8" in log, log[-3000:]
    assert n > 60 and diff == 0.0


def test_deebert_every_n_steps_resumes_to_identical_weights(tmp_path, prepared):
    """DeeBERT's off-ramp stage on the stage-1 model, a checkpoint every 3 steps; SIGKILL after step 7."""
    data, base = prepared
    params = {"epochs": 3}
    ref = tmp_path / "ref"
    result = run_job(ref, "deebert", params, _training(checkpoint="off"), data, base)
    assert result.returncode == 0, result.stderr[-3000:]
    log, n, diff = _kill_and_resume(tmp_path / "resumed", "deebert", params, _training(checkpoint=3), data, base,
                                    "0:7", ref / "model")
    assert "resuming at step 6 of 12" in log, log[-3000:]
    assert n > 30 and diff == 0.0


def test_corrupt_checkpoint_stops_the_job_naming_the_file(tmp_path, prepared):
    data, _ = prepared
    killed = run_job(tmp_path, "bert", {}, _training(), data, None, kill_after="0:6")
    assert killed.returncode == -signal.SIGKILL
    (stage,) = (tmp_path / "checkpoints").glob("*/*/stage0.pt")
    stage.write_bytes(stage.read_bytes()[:200])  # truncated, as a full disk could leave it
    rerun = run_job(tmp_path, "bert", {}, _training(), data, None)
    assert rerun.returncode != 0
    assert f"the training checkpoint {stage} cannot be read" in rerun.stderr, rerun.stderr[-3000:]
    assert f"Delete {stage} to train this stage again" in rerun.stderr
    assert stage.exists() and not (tmp_path / "model").exists()  # nothing deleted behind the user's back


def test_checkpoint_of_another_config_is_not_resumed(tmp_path, prepared):
    data, ref = prepared
    killed = run_job(tmp_path, "bert", {}, _training(lr=0.002), data, None, kill_after="0:6")
    assert killed.returncode == -signal.SIGKILL
    (old,) = (tmp_path / "checkpoints").glob("*/*/stage0.pt")
    rerun = run_job(tmp_path, "bert", {}, _training(), data, None)  # lr back to the reference's
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "ignoring checkpoints in" in rerun.stderr and old.parent.name in rerun.stderr
    assert "resuming" not in rerun.stderr
    assert not (tmp_path / "checkpoints").exists()
    assert_bit_identical(final_state("bert", {}, ref), final_state("bert", {}, tmp_path / "model"))


def test_checkpoint_interval_is_validated():
    from dpbert.model.checkpoint import parse_interval
    from dpbert.run.config_check import ConfigError, check_schema

    assert [parse_interval(v) for v in ("epoch", "off", False, 5)] == ["epoch", None, None, 5]
    for bad in ("weekly", 0, True):
        with pytest.raises(ValueError, match="training.checkpoint"):
            parse_interval(bad)
    schema = ROOT / "workflow" / "schemas" / "config.schema.yaml"
    check_schema({"training": {"checkpoint": 100}}, schema)
    with pytest.raises(ConfigError, match="checkpoint"):
        check_schema({"training": {"checkpoint": "weekly"}}, schema)


def test_loss_function_state_is_resumed(tmp_path, one_thread):
    """In process: a loss that draws from its own torch.Generator and appends to a list (as LayerDrop's
    does) is stopped by an exception after step 5, then rerun: weights, draws and the list equal an
    uninterrupted run's only because ``extra_state`` checkpoints them."""
    from dpbert.model import checkpoint
    from dpbert.model.training import TrainSettings, train_loop

    data, settings = toy_split(48), TrainSettings(epochs=3, batch_size=16, lr=1e-2)  # 3 steps an epoch

    class Stop(Exception):
        pass

    def train(stop_after: int | None, resumable: bool) -> tuple[dict, list]:
        model = tiny_classifier(seed=3).train()
        drops, drawn = torch.Generator().manual_seed(11), []

        def loss_fn(batch, step):
            if step == stop_after:
                raise Stop
            drawn.append(float(torch.rand(1, generator=drops)))
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                        token_type_ids=batch["token_type_ids"])
            return torch.nn.functional.cross_entropy(out.logits, batch["labels"]) * (1 + drawn[-1])

        with checkpoint.resumable(tmp_path / "ck" if resumable else None, "key", "epoch"):
            train_loop(model.parameters(), loss_fn, data, settings, seed=5, desc="toy", modules=[model],
                       extra_state={"drops": drops, "drawn": drawn})
        return model.state_dict(), drawn

    ref_state, ref_drawn = train(None, resumable=False)
    with pytest.raises(Stop):
        train(5, resumable=True)  # steps 0-4 ran; the checkpoint after step 3 is kept
    state, drawn = train(None, resumable=True)
    assert drawn == ref_drawn and len(drawn) == 9
    assert_bit_identical(ref_state, state)


def test_a_time_budget_ends_each_attempt_checkpointed_and_the_attempts_train_the_same_weights(tmp_path, prepared):
    """DPBERT, one target rate: stage 2 and stage 3 of 2 steps each (batch 32). With a zero budget every
    attempt trains one step, saves the stage where it is (mid-epoch) and exits with status 75 and one line;
    the fourth attempt finishes, with the weights of an uninterrupted run, bit for bit."""
    from dpbert.run.job_resources import BUDGET_EXIT

    data, base = prepared
    params = {"target_rates": [0.3], "stage2_epochs": 1, "stage2_lr": 0.01, "stage3_epochs": 1, "planner_lr": 0.01}
    training = _training(epochs=1, batch_size=32)
    ref = tmp_path / "ref"
    result = run_job(ref, "dpbert", params, {**training, "checkpoint": "off"}, data, base)
    assert result.returncode == 0, result.stderr[-3000:]
    out, lines = tmp_path / "budget", []
    for _ in range(6):
        attempt = run_job(out, "dpbert", params, training, data, base, time_budget_s=0.0)
        if attempt.returncode == 0:
            break
        assert attempt.returncode == BUDGET_EXIT, attempt.stderr[-3000:]
        assert not (out / "model").exists() and not (out / "sweep.csv").exists()  # nothing looks finished
        lines.append(next(line for line in attempt.stderr.splitlines() if "time budget reached" in line))
    assert attempt.returncode == 0, attempt.stderr[-3000:]
    assert len(lines) == 3, lines
    assert lines[0].startswith("time budget reached after step 1 of 2 of stage 0 (") and "stage0.pt" in lines[0]
    assert lines[0].endswith("checkpoint saved in " + lines[0].split("checkpoint saved in ")[1])
    assert "after step 0 of 2 of stage 1" in lines[1] and "after step 1 of 2 of stage 1" in lines[2]
    assert all(line.endswith("the next attempt resumes") for line in lines)
    assert not (out / "checkpoints").exists()
    n, diff = assert_bit_identical(final_state("dpbert", params, ref / "model"), final_state("dpbert", params, out / "model"))
    assert n > 30 and diff == 0.0


def test_the_budget_check_needs_one_step_and_a_checkpoint_to_fit(monkeypatch, tmp_path):
    """Job.out_of_time: never before the attempt's first step; then whether the longest step so far and the
    longest checkpoint save would end past the deadline."""
    from dpbert.model import checkpoint

    now = [100.0]
    monkeypatch.setattr(checkpoint, "_now", lambda: now[0])
    job = checkpoint.Job(tmp_path, "epoch", deadline=103.0)
    assert not job.out_of_time()  # no step yet: an attempt always trains one
    now[0] = 110.0
    assert not job.out_of_time()
    now[0] = 100.0
    job.record_step(1.0)
    job.record_step(2.0)
    assert job.steps == 2 and job.step_s == 2.0
    assert not job.out_of_time()  # 100 + 2 <= 103
    job.save_s.append(1.5)
    assert job.out_of_time()  # 100 + 2 + 1.5 > 103
    assert not checkpoint.Job(tmp_path, "epoch").out_of_time()  # no deadline: never
