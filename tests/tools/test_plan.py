"""Planning a profile: exact pass counts from the config, and the schedule on N devices."""

import pytest
import yaml
from snakemake.utils import validate

from dpbert.data.tasks import TASKS, get_task
from dpbert.methods.registry import build_method
from dpbert.run.costs import Job, method_passes, plan_jobs, split_sizes
from dpbert.tools.plan import critical_path, makespan
from tests.conftest import ROOT


def _config(path="tests/config/micro.yaml"):
    cfg = yaml.safe_load((ROOT / path).read_text())
    validate(cfg, str(ROOT / "workflow/schemas/config.schema.yaml"), set_default=True)
    return cfg


def test_schedule_respects_dependencies_and_devices():
    jobs = [Job("a", 10), Job("b", 4, ["a"]), Job("c", 4, ["a"]), Job("d", 6), Job("e", 1, ["b", "c", "d"])]
    assert critical_path(jobs)["a"] == 15 and critical_path(jobs)["d"] == 7
    assert makespan(jobs, 1) == sum(j.seconds for j in jobs)
    # two devices: a | d, then b | c, then e  ->  10 + 4 + 1
    assert makespan(jobs, 2) == 15
    assert makespan(jobs, 100) == 15  # never below the critical path


def test_pass_counts_follow_the_config():
    cfg = _config()
    sizes = split_sizes("SST-2", cfg["data"])
    assert sizes == {"train": 64, "dev": 24}
    lat = cfg["latency"]
    per_point = lat["warmup"] + lat["repeats"] * min(lat["examples"], 24)
    # DeeBERT: 4-layer micro model, 1 epoch of stage 2 (forward only), one scoring pass for all 13 knobs
    dee = build_method("deebert", cfg["methods"]["deebert"], get_task("SST-2"))
    train, forwards = method_passes(dee, sizes, cfg)
    assert train == pytest.approx(64 / 3)
    assert forwards == 24 + (1 + 13) * per_point
    # DPBERT scores each knob with its own pass (the plan decides the path): 1 variant x 1 knob
    dp = build_method("dpbert", cfg["methods"]["dpbert"], get_task("SST-2"))
    train, forwards = method_passes(dp, sizes, cfg)
    assert train == pytest.approx(64 * (1 * 2 / 3 + 1))
    assert forwards == 24 + 2 * per_point
    # BERT-kL: one fine-tuning per k, each k / N of a full one (micro: N = 4, 1 epoch); one point per model
    train, forwards = method_passes(build_method("bert_truncated", {"layers": [3, 2]}, get_task("SST-2")), sizes, cfg)
    assert train == pytest.approx(64 * 1 * (3 + 2) / 4)
    assert forwards == 2 * 24 + (1 + 2) * per_point
    # the cut stage-1 model trains nothing and reads both depths off one pass
    train, forwards = method_passes(build_method("bert_cut", {"layers": [3, 2]}, get_task("SST-2")), sizes, cfg)
    assert train == 0 and forwards == 24 + (1 + 2) * per_point


def test_paper_plan_has_every_job_of_the_dag():
    cfg = _config("workflow/config/paper.yaml")
    jobs = plan_jobs(cfg, train_s=0.005, forward_s=0.008)
    names = {j.name for j in jobs}
    assert "MNLI/bert/1" in names and "STS-B/deebert/1" not in names  # no regression exit
    assert sum(j.stage.startswith("stage 1") for j in jobs) == 8 * 3
    assert {j.name for j in jobs if j.stage == "GLUE test files"} == {f"glue_test/{m}" for m in cfg["methods"]}
    # one training job per target rate, each from the stage-1 model alone (the paper's variant_seeds: independent)
    assert [j.deps for j in jobs if j.name.startswith("MNLI/dpbert/2/")] == [["MNLI/bert/2/main"]] * 3
    assert set(next(j for j in jobs if j.name == "MNLI/dpbert/2").deps) == {
        "MNLI/bert/2/main", "MNLI/dpbert/2/t0.25", "MNLI/dpbert/2/t0.35", "MNLI/dpbert/2/t0.45"}
    assert split_sizes("MNLI", cfg["data"])["train"] == 392702


def test_paper_profile_planner_lrs_can_move_a_planner_on_every_task():
    """Adam moves a weight by ~lr a step: with the paper's 2e-5 a planner's bias barely moves on small tasks."""
    from dpbert.methods.dpbert import planner_reach

    cfg = _config("workflow/config/paper.yaml")
    dp, finetune = cfg["methods"]["dpbert"], cfg["training"]["finetune"]
    for task, sizes in ((name, spec.sizes) for name, spec in TASKS.items()):
        stage2, _ = planner_reach(dp["stage2_lr"], dp["stage2_epochs"], sizes["train"], finetune["batch_size"])
        stage3, _ = planner_reach(dp["planner_lr"], finetune["epochs"], sizes["train"], finetune["batch_size"])
        assert stage2 >= 1 and stage3 >= 1, (task, stage2, stage3)
    assert planner_reach(2e-5, 5, TASKS["RTE"].sizes["train"], 32)[0] < 0.01  # the paper's own lr


def test_plan_from_config_is_what_the_command_prints_at_the_configs_costs():
    from dpbert.run.costs import profile_costs
    from dpbert.tools.plan import plan_from_config, render

    cfg = _config()
    text = plan_from_config(ROOT / "tests/config/micro.yaml", ROOT, [1, 2])
    costs = profile_costs(cfg, ROOT)
    assert not costs.measured and costs.source.startswith("assumed (resources.train_ms / forward_ms;")
    assert text == render(cfg, costs, [1, 2])
    assert text.startswith(f"Profile `{cfg['profile']}`") and "| 2 |" in text
    assert f"per-example costs {costs.source}" in text


def test_a_plan_block_is_rewritten_from_its_profile(tmp_path):
    from dpbert.tools.plan import DOC_DEVICES, plan_from_config, rewrite_doc

    begin = ("<!-- plan tests/config/micro.yaml begin: generated by `python -m dpbert.tools.plan --write-docs "
             "x.md`, do not edit -->")
    text = f"before\n\n{begin}\nstale numbers\n<!-- plan end -->\n\nafter\n"
    fresh = rewrite_doc(text, ROOT)
    plan = plan_from_config(ROOT / "tests/config/micro.yaml", ROOT, DOC_DEVICES)
    assert fresh == f"before\n\n{begin}\n```text\n{plan}\n```\n<!-- plan end -->\n\nafter\n"
    assert rewrite_doc(fresh, ROOT) == fresh  # idempotent
    with pytest.raises(ValueError, match="has no `<!-- plan end -->` line"):
        rewrite_doc(f"{begin}\nno end\n", ROOT)


def test_the_plan_blocks_of_docs_clusters_md_are_fresh():
    """docs/clusters.md quotes the paper profile's plan through a generated block, never typed numbers."""
    from dpbert.tools.plan import DOC_BEGIN, rewrite_doc

    text = (ROOT / "docs/clusters.md").read_text(encoding="utf-8")
    assert [m["file"] for m in DOC_BEGIN.finditer(text)] == ["workflow/config/paper.yaml"]
    assert rewrite_doc(text, ROOT) == text, (
        "docs/clusters.md's plan block is stale: run `python -m dpbert.tools.plan --write-docs docs/clusters.md`")


def test_the_plan_shows_the_runtime_requests_against_max_runtime():
    """No limit: every job asks for its estimate. A limit: the largest request is the limit, and the jobs
    over it are listed with their attempts; a sweep longer than the limit is flagged."""
    from dpbert.run.costs import Costs
    from dpbert.tools.plan import render

    paper = _config("workflow/config/paper.yaml")
    costs = Costs(0.008, 0.006, "given")
    text = render({**paper, "resources": {**paper["resources"], "max_runtime": None}}, costs, [1])
    assert "no resources.max_runtime, so every job asks for its whole estimate" in text
    text = render(paper, costs, [1])
    assert "the largest is 1179 (MNLI/dact_bert/1/search), within resources.max_runtime 1440." in text
    assert "No job's estimate exceeds it: every job runs as one attempt." in text and "FLAGGED" not in text
    text = render({**paper, "resources": {**paper["resources"], "max_runtime": 600}}, costs, [1])
    assert "the largest is 600" in text and "MNLI/dact_bert/1/search (1179 min: 3 attempts)" in text
    assert "FLAGGED" not in text
    small = render({**paper, "resources": {**paper["resources"], "max_runtime": 20, "max_attempts": 2}}, costs, [1])
    assert "within resources.max_runtime 20." in small and "FLAGGED" in small
    assert "need more attempts than resources.max_attempts 2 allows" in small
    off = render({**paper, "resources": {**paper["resources"], "max_runtime": 600},
                  "training": {**paper["training"], "checkpoint": "off"}}, costs, [1])
    assert "FLAGGED: training.checkpoint is off, so these jobs cannot stop and resume" in off
