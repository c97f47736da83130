"""One job per trained variant (rule train_variant): each of a method's models trains in a job of its own.

Chained (``training.variant_seeds: chained``, the default), a job starts its random generators where the
job before it ended, so training every variant in a process of its own gives byte-identical files to
one process training them in turn (the committed results were trained that way). Independent, each
job starts from the run's seed alone: its model does not depend on which variants ran before it.
"""

from __future__ import annotations

import copy
import filecmp
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from dpbert.data.tasks import get_task
from dpbert.methods.registry import build_method
from dpbert.model.sources import ModelLoadError
from dpbert.run.config_check import check_schema
from dpbert.run.costs import plan_jobs
from dpbert.run.job import RNG_FILE, run_method, train_job
from dpbert.run.jobs import previous_job, training_dependencies
from dpbert.run.prepare import prepare_task
from tests.conftest import MICRO, ROOT

LOG = logging.getLogger("variant-jobs")
TASK = "SST-2"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
DP = {"target_rates": [0.3, 0.6], "stage2_epochs": 1, "stage2_lr": 0.01, "stage3_epochs": 1, "planner_lr": 0.01}
DACT = {"taus": [0.001, 0.01], "tau_search": 1}


def config(variant_seeds: str = "chained") -> dict:
    cfg = yaml.safe_load(MICRO.read_text())
    cfg["methods"] = {"bert": {}, "dpbert": copy.deepcopy(DP), "dact_bert": copy.deepcopy(DACT)}
    cfg["tasks"] = [TASK]
    cfg["training"]["variant_seeds"] = variant_seeds
    cfg["selection"]["window"] = [1.3, 1.96]
    check_schema(cfg, SCHEMA)
    validate(cfg, str(SCHEMA), set_default=True)
    return cfg


def selection(cfg: dict) -> dict:
    return {k: cfg["selection"][k] for k in ("window", "min_points_in_window") if k in cfg["selection"]}


@pytest.fixture(scope="module")
def stage1(tmp_path_factory, one_thread):
    """The micro SST-2 data and the stage-1 BERT-base folder."""
    root = tmp_path_factory.mktemp("variants")
    cfg = config()
    prepare_task(TASK, cfg["data"], cfg["model"], root / "data.pt", LOG)
    out = root / "bert"
    run_method(task=TASK, method="bert", seed=1, method_params={}, training=cfg["training"], model=cfg["model"],
               latency=cfg["latency"], profile="micro", data_path=str(root / "data.pt"), base_dir=None,
               model_out=str(out / "model"), sweep_out=str(out / "sweep.csv"),
               predictions_out=str(out / "predictions.csv.gz"), phases_out=str(out / "phases.json"),
               timing_lock_path=None, log=LOG)
    return root


def one_process(stage1: Path, cfg: dict, method: str, out: Path) -> Path:
    """Every training job of ``method`` in this process, in order (``run_method``); its model folder."""
    run_method(task=TASK, method=method, seed=1, method_params=cfg["methods"][method], training=cfg["training"],
               model=cfg["model"], latency=cfg["latency"], profile="micro", data_path=str(stage1 / "data.pt"),
               base_dir=str(stage1 / "bert" / "model"), model_out=str(out / "model"), sweep_out=str(out / "sweep.csv"),
               predictions_out=str(out / "predictions.csv.gz"), phases_out=str(out / "phases.json"),
               timing_lock_path=None, log=LOG, selection=selection(cfg))
    return out / "model"


JOB_SCRIPT = """
import logging, sys, torch, yaml
torch.set_num_threads(1)
sys.path.insert(0, {root!r})
from dpbert.run.job import train_job
cfg = yaml.safe_load(open({cfg!r}))
train_job(task={task!r}, method={method!r}, seed=1, variant={variant!r}, method_params=cfg["methods"][{method!r}],
          training=cfg["training"], model=cfg["model"], latency=cfg["latency"], data_path={data!r},
          base_dir={base!r}, model_dir={model_dir!r}, phases_out={phases!r}, log=logging.getLogger("job"),
          previous={previous!r}, selection={selection!r})
"""


def own_processes(stage1: Path, cfg: dict, method: str, out: Path) -> Path:
    """Each training job of ``method`` in a new Python process, as the workflow runs them; the model folder."""
    cfg_path = out / "config.yaml"
    out.mkdir(parents=True)
    cfg_path.write_text(yaml.safe_dump(cfg))
    impl = build_method(method, cfg["methods"][method], get_task(TASK))
    for variant in impl.training_jobs():
        previous = previous_job(impl.training_jobs(), variant, cfg["training"])
        script = JOB_SCRIPT.format(root=str(ROOT), cfg=str(cfg_path), task=TASK, method=method, variant=variant,
                                   data=str(stage1 / "data.pt"), base=str(stage1 / "bert" / "model"),
                                   model_dir=str(out / "model"), phases=str(out / "train" / f"{variant}.json"),
                                   previous=previous and str(out / "model" / previous), selection=selection(cfg))
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    return out / "model"


def differing(a: Path, b: Path) -> tuple[list[str], list[str]]:
    """(files of either folder the other lacks, files whose bytes differ), relative paths."""
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    missing = sorted(str(p) for p in files_a ^ files_b)
    changed = sorted(str(p) for p in files_a & files_b if not filecmp.cmp(a / p, b / p, shallow=False))
    return missing, changed


@pytest.mark.parametrize("method", ["dpbert", "dact_bert"])
def test_chained_jobs_in_their_own_processes_give_the_one_process_models_bit_for_bit(method, stage1, tmp_path):
    cfg = config("chained")
    together = one_process(stage1, cfg, method, tmp_path / "together")
    apart = own_processes(stage1, cfg, method, tmp_path / "apart")
    impl = build_method(method, cfg["methods"][method], get_task(TASK))
    assert sorted(p.name for p in apart.iterdir()) == sorted(impl.training_jobs())
    missing, changed = differing(together, apart)
    assert (missing, changed) == ([], [])
    weights = [p for p in apart.rglob("*") if p.name in ("model.safetensors", "method_modules.pt")]
    assert len(weights) >= 2 * len(impl.variants())  # the comparison covered every variant's weights
    if method == "dact_bert":  # the search job trained a tau of its own, in its folder, listed with the grid's
        listed = yaml.safe_load((apart / "search" / "variants.json").read_text())["variants"]
        assert set(impl.variants()) < set(listed)
        assert set(impl.trained_variants(apart)) == set(listed)
        extra = sorted(set(listed) - set(impl.variants()))
        assert impl.variant_dir(apart, extra[0]) == apart / "search" / extra[0]


def test_an_independent_job_does_not_depend_on_the_variants_before_it(stage1, tmp_path, one_thread):
    cfg = config("independent")

    def train(variant: str, model_dir: Path) -> Path:
        train_job(task=TASK, method="dpbert", seed=1, variant=variant, method_params=cfg["methods"]["dpbert"],
                  training=cfg["training"], model=cfg["model"], latency=cfg["latency"],
                  data_path=str(stage1 / "data.pt"), base_dir=str(stage1 / "bert" / "model"),
                  model_dir=str(model_dir), phases_out=str(model_dir.parent / f"{variant}.json"), log=LOG)
        return model_dir / variant

    after_first = train("t0.6", train("t0.3", tmp_path / "a").parent)
    alone = train("t0.6", tmp_path / "b")
    assert differing(after_first, alone) == ([], [])
    chained = one_process(stage1, config("chained"), "dpbert", tmp_path / "chained") / "t0.6"
    first = tmp_path / "a" / "t0.3"
    assert differing(first, tmp_path / "chained" / "model" / "t0.3") == ([], [])  # the first job: the same either way
    _, changed = differing(alone, chained)
    assert "backbone/model.safetensors" in changed  # a later variant: another draw of the same recipe


def test_a_chained_job_without_the_state_of_the_job_before_it_names_the_file(stage1, tmp_path, one_thread):
    cfg = config("chained")
    previous = tmp_path / "model" / "t0.3"
    previous.mkdir(parents=True)
    with pytest.raises(ModelLoadError, match=rf"{RNG_FILE}.*variant_seeds: chained.*Fix: delete"):
        train_job(task=TASK, method="dpbert", seed=1, variant="t0.6", method_params=cfg["methods"]["dpbert"],
                  training=cfg["training"], model=cfg["model"], latency=cfg["latency"],
                  data_path=str(stage1 / "data.pt"), base_dir=str(stage1 / "bert" / "model"),
                  model_dir=str(tmp_path / "model"), phases_out=str(tmp_path / "t.json"), log=LOG,
                  previous=str(previous))
    assert not (tmp_path / "model" / "t0.6").exists() and not list((tmp_path / "model").glob(".*"))


def test_a_method_that_saves_another_folder_is_refused(stage1, tmp_path, one_thread, monkeypatch):
    from baselines.pabee import Pabee

    cfg = config()
    monkeypatch.setattr(Pabee, "train", lambda self, ctx: (ctx.out_dir / "elsewhere").mkdir())
    with pytest.raises(RuntimeError, match=r"saved \['elsewhere'\].*exactly its own folder"):
        train_job(task=TASK, method="pabee", seed=1, variant="main", method_params={}, training=cfg["training"],
                  model=cfg["model"], latency=cfg["latency"], data_path=str(stage1 / "data.pt"),
                  base_dir=str(stage1 / "bert" / "model"), model_dir=str(tmp_path / "model"),
                  phases_out=str(tmp_path / "t.json"), log=LOG)
    assert not (tmp_path / "model" / "main").exists()


@pytest.mark.parametrize("mode", ["chained", "independent"])
def test_the_plan_has_one_training_job_per_variant_and_the_dag_edges_of_the_mode(mode):
    cfg = config(mode)
    jobs = {j.name: j for j in plan_jobs(cfg, 1.0, 1.0)}
    dp = [n for n in jobs if n.startswith(f"{TASK}/dpbert/1/")]
    assert dp == [f"{TASK}/dpbert/1/t0.3", f"{TASK}/dpbert/1/t0.6"]
    later = jobs[f"{TASK}/dpbert/1/t0.6"].deps
    assert (f"{TASK}/dpbert/1/t0.3" in later) == (mode == "chained")
    assert f"{TASK}/bert/1/main" in later
    search = jobs[f"{TASK}/dact_bert/1/search"].deps  # the search reads every grid tau's model in both modes
    assert {f"{TASK}/dact_bert/1/tau0.001", f"{TASK}/dact_bert/1/tau0.01"} <= set(search)
    sweep = jobs[f"{TASK}/dpbert/1"]
    assert sweep.train_passes == 0 and set(dp) <= set(sweep.deps)
    total = sum(j.train_passes for n, j in jobs.items() if n.startswith(f"{TASK}/dpbert/1/"))
    impl = build_method("dpbert", cfg["methods"]["dpbert"], get_task(TASK))
    assert total == pytest.approx(impl.training_epochs(cfg["training"]["finetune"]) * 64)  # split, not changed
    assert training_dependencies(impl, "t0.3", cfg["training"]) == []


def test_a_dry_run_lists_each_target_rate_as_its_own_job(tmp_path):
    cfg = config("independent")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    done = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
                           str(tmp_path), "--configfile", str(path), "-n", "--cores", "1", "results/micro/table1.csv"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for variant in ("t0.3", "t0.6"):
        assert f"models/{TASK}/dpbert/1/{variant}" in done.stdout
    stats = {line.split()[0]: int(line.split()[1]) for line in done.stdout.splitlines()
             if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert stats["train_variant"] == 1 + 2 + 3  # bert main; dpbert's two rates; dact's two taus and its search
    assert stats["run_method"] == 3


def test_only_a_search_job_reads_the_window(stage1, tmp_path, one_thread, monkeypatch):
    """selection: reaches DACT-BERT's search job and no other training job, so that a changed window reruns
    the search (and the sweeps) but no training of a variant (workflow/rules/methods.smk passes it the same way)."""
    from baselines.dact_bert import DactBert

    cfg = config()
    seen: dict[str, object] = {}

    def record(self, ctx, variant):
        seen[variant] = ctx.selection
        (ctx.out_dir / variant).mkdir()

    monkeypatch.setattr(DactBert, "train_variant", record)
    for variant in ("tau0.001", "search"):
        train_job(task=TASK, method="dact_bert", seed=1, variant=variant, method_params=cfg["methods"]["dact_bert"],
                  training={**cfg["training"], "variant_seeds": "independent"}, model=cfg["model"],
                  latency=cfg["latency"], data_path=str(stage1 / "data.pt"), base_dir=str(stage1 / "bert" / "model"),
                  model_dir=str(tmp_path / "model"), phases_out=str(tmp_path / f"{variant}.json"), log=LOG,
                  selection=selection(cfg))
    assert seen == {"tau0.001": None, "search": selection(cfg)}
