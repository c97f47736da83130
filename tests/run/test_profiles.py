"""Profiles: complete and partial --configfile files, where each profile's outputs go, one job list for the
plan and the DAG, and per-job resources from the plan's cost model."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from dpbert.run.config_check import ConfigError, check_schema
from dpbert.run.costs import plan_jobs
from dpbert.run.job_resources import job_resources
from dpbert.run.jobs import jobs
from dpbert.run.profiles import config_dir, figures_dir, resolve_config, results_dir
from tests.conftest import ROOT

CDIR = config_dir(ROOT)
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _validated(cfg: dict) -> dict:
    validate(cfg, str(SCHEMA), set_default=True)
    return cfg


def _dry_run(workdir: Path, *configfiles: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "-n"]
    if configfiles:
        cmd += ["--configfile", *map(str, configfiles)]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)


def _dag_method_jobs(stdout: str) -> dict[tuple[str, str, int], dict[str, str]]:
    """(task, method, seed) -> resources of every run_method job a dry run lists."""
    found = {}
    for block in stdout.split("\nrule ")[1:]:
        if not block.startswith("run_method:"):
            continue
        wc = dict(re.findall(r"(\w+)=([^,\s]+)", re.search(r"wildcards: (.*)", block).group(1)))
        res = dict(re.findall(r"(\w+)=([^,\s]+)", re.search(r"resources: (.*)", block).group(1)))
        key = (wc["task"], wc["method"], int(wc["seed"]))
        assert key not in found, key
        found[key] = res
    return found


def _dag_training_jobs(stdout: str) -> set[tuple[str, str, str, str]]:
    """(task, method, seed, variant) of every train_variant job a dry run lists."""
    found = set()
    for block in stdout.split("\nrule ")[1:]:
        if block.startswith("train_variant:"):
            wc = dict(re.findall(r"(\w+)=([^,\s]+)", re.search(r"wildcards: (.*)", block).group(1)))
            found.add((wc["task"], wc["method"], wc["seed"], wc["variant"]))
    return found


def test_complete_profile_file_is_used_as_it_is():
    paper = yaml.safe_load((CDIR / "paper.yaml").read_text())
    assert resolve_config([CDIR / "paper.yaml"], CDIR) == paper
    assert resolve_config([], CDIR) == yaml.safe_load((CDIR / "config.yaml").read_text())  # no file: the demo


def test_partial_file_layers_deeply_over_its_base(tmp_path):
    f = _write(tmp_path, "seed2.yaml", "base: minilm\nprofile: minilm-seed2\nseeds: [2]\n"
               "methods: {layerdrop: null, pabee: {patiences: [1, 2]}}\ndata: {max_dev: 100}\n")
    cfg = resolve_config([f], CDIR)
    minilm = yaml.safe_load((CDIR / "minilm.yaml").read_text())
    assert cfg["profile"] == "minilm-seed2" and cfg["seeds"] == [2] and "base" not in cfg
    assert "layerdrop" not in cfg["methods"] and list(cfg["methods"]) == [m for m in minilm["methods"] if m != "layerdrop"]
    assert cfg["methods"]["pabee"] == {**minilm["methods"]["pabee"], "patiences": [1, 2]}  # merged key by key
    assert cfg["data"] == {**minilm["data"], "max_dev": 100}
    assert cfg["model"] == minilm["model"] and cfg["training"] == minilm["training"]
    # --config overrides go on top of the layered file
    assert resolve_config([f], CDIR, {"seeds": [3]})["seeds"] == [3]


def test_partial_file_without_base_is_refused(tmp_path):
    f = _write(tmp_path, "seeds.yaml", "seeds: [2]\n")
    with pytest.raises(ConfigError) as err:
        resolve_config([f], CDIR)
    msg = str(err.value)
    assert "not a complete profile" in msg and "lacks profile, tasks, methods" in msg and "base: demo" in msg
    assert str(f) in msg


def test_layered_file_must_name_its_profile_and_a_known_base(tmp_path):
    with pytest.raises(ConfigError, match=r"names no profile of its own.*results/table1\.csv"):
        resolve_config([_write(tmp_path, "a.yaml", "base: demo\nseeds: [2]\n")], CDIR)
    with pytest.raises(ConfigError, match=r"'base'.*'papr'.*demo, minilm, paper"):
        resolve_config([_write(tmp_path, "b.yaml", "base: papr\nprofile: x\n")], CDIR)
    with pytest.raises(ConfigError, match="'logs', a folder of the demo's results/"):
        resolve_config([_write(tmp_path, "c.yaml", "base: demo\nprofile: logs\n")], CDIR)


def test_any_profile_file_can_be_a_base(tmp_path):
    """The micro test profile by name, a profile by path (relative to the file naming it), and a
    layered file as the base of another."""
    micro = yaml.safe_load((ROOT / "tests" / "config" / "micro.yaml").read_text())
    f = _write(tmp_path, "micro2.yaml", "base: micro\nprofile: micro2\nseeds: [2]\nmethods: {pabee: null}\n"
               "model: {small: {num_hidden_layers: 2}}\n")
    cfg = resolve_config([f], CDIR)
    assert cfg["profile"] == "micro2" and cfg["seeds"] == [2] and cfg["tasks"] == micro["tasks"]
    assert list(cfg["methods"]) == [m for m in micro["methods"] if m != "pabee"]
    assert cfg["model"]["small"] == {**micro["model"]["small"], "num_hidden_layers": 2}  # merged key by key
    assert cfg["training"] == micro["training"] and "base" not in cfg
    check_schema(cfg, SCHEMA)

    (tmp_path / "sub").mkdir()
    by_path = _write(tmp_path / "sub", "c.yaml", "base: ../micro2.yaml\nprofile: micro3\ntasks: [SST-2]\n")
    chained = resolve_config([by_path], CDIR)
    assert chained == {**cfg, "profile": "micro3", "tasks": ["SST-2"]}
    assert resolve_config([_write(tmp_path, "d.yaml", f"base: {ROOT / 'tests/config/micro.yaml'}\nprofile: m\n")],
                          CDIR) == {**micro, "profile": "m"}
    loop = _write(tmp_path, "loop.yaml", "base: loop.yaml\nprofile: x\n")
    with pytest.raises(ConfigError, match="the bases form a loop"):
        resolve_config([loop], CDIR)
    with pytest.raises(ConfigError, match=r"changes profile 'micro' \(base: micro\).*results/micro/table1\.csv"):
        resolve_config([_write(tmp_path, "e.yaml", "base: micro\nseeds: [2]\n")], CDIR)
    with pytest.raises(ConfigError, match=r"'micr'.*demo, minilm, paper \(workflow/config/\) or micro \(tests/config/\)"):
        resolve_config([_write(tmp_path, "g.yaml", "base: micr\nprofile: x\n")], CDIR)


MICRO_FILE = ROOT / "tests" / "config" / "micro.yaml"


def _overrides(*entries: str) -> dict:
    """``--config`` entries as Snakemake parses them: nested values come as text."""
    from snakemake.cli import parse_config

    return parse_config(list(entries))


def test_config_overrides_read_numbers_where_the_schema_asks_for_them():
    given = _overrides('model={"max_length": 128, "small": {"num_hidden_layers": 2}}', "seeds=[1, 2]",
                       'training={"checkpoint": "5", "finetune": {"lr": "1e-3", "group_by_length": true}}',
                       'data={"max_dev": null, "data_dir": "123"}', 'selection={"window": [1, 2.5]}',
                       'execution={"reproducible": false}',
                       'methods={"pabee": {"patiences": [1, 2], "state": "mean"}, "dpbert": {"beta": 2}}')
    assert given["model"]["max_length"] == "128" and given["seeds"] == ["1", "2"]  # what snakemake hands over
    cfg = resolve_config([MICRO_FILE], CDIR, given)
    assert cfg["model"]["max_length"] == 128 and cfg["model"]["small"]["num_hidden_layers"] == 2
    assert cfg["seeds"] == [1, 2] and cfg["selection"]["window"] == [1, 2.5]
    assert cfg["training"]["checkpoint"] == 5 and cfg["training"]["finetune"]["lr"] == 0.001
    assert cfg["training"]["finetune"]["group_by_length"] is True and cfg["execution"]["reproducible"] is False
    assert cfg["data"]["max_dev"] is None
    assert cfg["data"]["data_dir"] == "123"  # the schema asks for a string there: left as it is
    assert cfg["methods"]["pabee"] == {"patiences": [1, 2], "state": "mean"} and cfg["methods"]["dpbert"]["beta"] == 2
    check_schema(cfg, SCHEMA)
    # a string the schema takes as one stays one
    assert resolve_config([MICRO_FILE], CDIR, _overrides('training={"checkpoint": "off"}'))["training"]["checkpoint"] == "off"


def test_a_non_numeric_override_still_gets_the_schema_message():
    cfg = resolve_config([MICRO_FILE], CDIR, _overrides('model={"max_length": "12x"}'))
    with pytest.raises(ConfigError, match=r"config key model\.max_length is '12x', but it must be an integer"):
        check_schema(cfg, SCHEMA)


def test_a_quoted_number_in_a_config_file_is_still_refused(tmp_path):
    """Only --config text is read as numbers: in a YAML file quotes are the writer's choice, and an error."""
    f = _write(tmp_path, "q.yaml", 'base: micro\nprofile: q\nmodel: {max_length: "128"}\n')
    with pytest.raises(ConfigError, match=r"model\.max_length is '128', but it must be an integer"):
        check_schema(resolve_config([f], CDIR), SCHEMA)


def test_snakemake_accepts_a_nested_numeric_config_override(tmp_path):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "-n",
           "--configfile", str(MICRO_FILE), "--config", 'model={"max_length": 32}', "--quiet", "rules"]
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    assert "must be an integer" not in result.stdout + result.stderr


def test_output_folders_per_profile():
    assert (results_dir("demo"), figures_dir("demo")) == ("results", "figures")
    assert (results_dir("minilm"), figures_dir("minilm")) == ("results/minilm", "figures/minilm")


def test_snakemake_refuses_a_partial_file_and_layers_a_named_one(tmp_path):
    refused = _dry_run(tmp_path, _write(tmp_path, "seeds.yaml", "seeds: [2]\n"))
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "not a complete profile" in out and "Traceback" not in out, out[-1500:]

    layered = _write(tmp_path, "demo2.yaml", "base: demo\nprofile: demo2\nseeds: [2]\ntasks: [RTE]\n"
                     "methods: {bert: {}, pabee: {}}\n")
    result = _dry_run(tmp_path, layered)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-2000:]
    assert "results/demo2/table1.csv" in out and "figures/demo2/figure3.png" in out
    assert "work/demo2/runs/RTE/pabee/2/sweep.csv" in out
    # nothing of the demo's own outputs, and every demo method the file did not remove still runs
    assert not re.search(r"[ ,]results/table1\.csv", out) and not re.search(r"[ ,]figures/figure3\.png", out)
    assert set(_dag_method_jobs(result.stdout)) == {("RTE", m, 2) for m in yaml.safe_load(
        (CDIR / "config.yaml").read_text())["methods"]}


def test_plan_and_dag_share_one_job_list_demo(tmp_path):
    result = _dry_run(tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    cfg = _validated(resolve_config([], CDIR))
    dag = _dag_method_jobs(result.stdout)
    listed = jobs(cfg)
    assert len(listed) == len(set(listed)) == len(dag) == 79 and set(listed) == set(dag)
    sweeps = {tuple(j.name.split("/")) for j in plan_jobs(cfg, 1.0, 1.0) if j.stage == "sweeps"}
    assert sweeps == {(t, m, str(s)) for t, m, s in listed}
    # and one train_variant job per training job of every method (Method.training_jobs), the same in both
    trained = {tuple(j.name.split("/")) for j in plan_jobs(cfg, 1.0, 1.0) if j.stage in ("training", "stage 1 (BERT-base)")}
    assert trained == _dag_training_jobs(result.stdout) and len(trained) == 135


def test_plan_and_dag_share_one_job_list_paper(tmp_path):
    """The paper profile offline: its tasks, methods and seeds (what decides the job list) with local data
    and a small model, so that the dry run needs no hub."""
    f = _write(tmp_path, "paper_dag.yaml", "base: paper\nprofile: paper-dag\ndata: {source: synthetic}\n"
               "model: {source: small}\n")
    result = _dry_run(tmp_path, f)
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    paper = _validated(resolve_config([CDIR / "paper.yaml"], CDIR))
    layered = _validated(resolve_config([f], CDIR))
    assert [layered[k] for k in ("tasks", "methods", "seeds")] == [paper[k] for k in ("tasks", "methods", "seeds")]
    dag = _dag_method_jobs(result.stdout)
    assert set(jobs(paper)) == set(dag) and len(jobs(paper)) == len(dag) == 237
    assert ("STS-B", "deebert", 1) not in dag  # no regression exit
    # the DAG's resources are the estimates of dpbert.run.job_resources for the config it ran
    est = job_resources(layered)
    for (t, m, s), res in dag.items():
        assert int(res["runtime"]) == est[f"{t}/{m}/{s}"]["runtime"] and int(res["mem_mb"]) == est[f"{t}/{m}/{s}"]["mem_mb"]


def test_paper_job_resources_follow_the_cost_model():
    paper = _validated(resolve_config([CDIR / "paper.yaml"], CDIR))
    assert paper["resources"]["max_runtime"] == 1440  # a common partition's 24 h
    unlimited = {**paper, "resources": {**paper["resources"], "max_runtime": None}}
    res = job_resources(unlimited)
    assert set(res) == {j.name for j in plan_jobs(paper, 1.0, 1.0)}
    mnli, sst2 = res["MNLI/dpbert/1/t0.25"], res["SST-2/dpbert/1/t0.25"]  # one target rate's job
    assert mnli["runtime"] > sst2["runtime"] > paper["resources"]["method"]["runtime"]
    assert res["MNLI/dact_bert/1/search"]["runtime"] == max(r["runtime"] for r in res.values())  # up to 3 models
    assert all(r["mem_mb"] >= paper["resources"]["method"]["mem_mb"] for r in res.values())
    assert res["MNLI/bert/1/main"]["mem_mb"] > res["RTE/bert/1/main"]["mem_mb"]  # MNLI's data is 80x RTE's
    # ~22 h of estimated device time for MNLI DPBERT's three target rates, a third a job, x1.5
    assert 1.5 * 20 / 3 * 60 < mnli["runtime"] < 1.5 * 24 / 3 * 60
    assert res["MNLI/dpbert/1/t0.35"] == res["MNLI/dpbert/1/t0.45"] == mnli
    doubled = job_resources({**unlimited, "resources": {**unlimited["resources"], "runtime_factor": 3.0}})
    assert abs(doubled["MNLI/dpbert/1/t0.25"]["runtime"] - 2 * mnli["runtime"]) <= 1
    floored = job_resources({**paper, "resources": {**paper["resources"], "method": {"runtime": 5000, "mem_mb": 99999, "gpu": 1}}})
    assert floored["MNLI/dpbert/1/t0.25"] == {"runtime": 1440, "mem_mb": 99999}  # the floor, then the limit


@pytest.mark.parametrize("limit", [1440, 120])
def test_no_paper_job_asks_for_more_than_max_runtime(limit):
    """Every request is min(estimate, resources.max_runtime); a training job over it runs as several attempts,
    enough of them that its training fits the attempts' budgets, and the rule may retry it that often. At
    1440 (24 h) one job per trained variant leaves no job over it; at 120 most training jobs are."""
    from dpbert.run.job_resources import job_estimates, max_attempts, training_budget_s

    paper = _validated(resolve_config([CDIR / "paper.yaml"], CDIR))
    paper["resources"]["max_runtime"] = limit
    est = job_estimates(paper)
    assert max(e.runtime for e in est.values()) <= limit
    over = {n: e for n, e in est.items() if e.over_limit}
    assert all(e.runtime == limit for e in over.values())
    assert bool(over) == (limit == 120) and (limit == 1440 or "MNLI/dpbert/1/t0.25" in over)
    for name, e in over.items():
        if not e.train_s:  # a sweep or the test files: cannot be split (the plan flags them)
            assert e.attempts is None, name
            continue
        assert e.attempts >= 2 and e.train_s <= e.attempts * training_budget_s(limit, e.eval_s), name
    assert all(e.attempts == 1 for e in est.values() if not e.over_limit)
    assert max_attempts(paper, est) == 1 + max(e.attempts for e in est.values() if e.attempts)
    assert max_attempts({**paper, "resources": {**paper["resources"], "max_attempts": 9}}, est) == 9
    assert max_attempts({**paper, "resources": {**paper["resources"], "max_runtime": None}}, est) is None


def test_runtime_factor_is_schema_checked():
    cfg = resolve_config([], CDIR)
    cfg["resources"] = {**cfg.get("resources", {}), "runtime_factor": 0.5}
    with pytest.raises(ConfigError, match="resources.runtime_factor"):
        check_schema(cfg, SCHEMA)


def test_plan_cli_resolves_profiles_like_the_snakefile(tmp_path):
    partial = _write(tmp_path, "seeds.yaml", "seeds: [2]\n")
    refused = subprocess.run([sys.executable, "-m", "dpbert.tools.plan", "--configfile", str(partial)], check=False,
                             capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert refused.returncode == 2 and "not a complete profile" in refused.stderr
    layered = _write(tmp_path, "paper1.yaml", "base: paper\nprofile: paper-seed1\nseeds: [1]\n")
    ok = subprocess.run([sys.executable, "-m", "dpbert.tools.plan", "--configfile", str(layered), "--devices", "1"], check=False,
                        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr[-1500:]
    assert "Profile `paper-seed1`: 8 tasks x 1 seeds x 10 methods" in ok.stdout and "8.00 ms" in ok.stdout


def test_a_method_set_to_null_in_config_overrides_is_dropped():
    """`--config methods='{"deebert": null}'` leaves deebert out, as `deebert: null` in a layered file does
    (a regression-only run must drop the method with no regression exit)."""
    from dpbert.run.profiles import config_dir, resolve_config

    cdir = config_dir(str(Path(__file__).resolve().parents[2]))
    from snakemake.cli import parse_config

    overrides = parse_config(["tasks=[STS-B]", 'methods={"deebert": null}'])  # what snakemake hands over
    assert overrides["methods"] == {"deebert": "null"}
    for given in (overrides, {"tasks": ["STS-B"], "methods": {"deebert": None}}):
        config = resolve_config([], cdir, given)
        assert "deebert" not in config["methods"] and "pabee" in config["methods"]
