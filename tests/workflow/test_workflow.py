"""The Snakemake DAG end to end on the micro profile, and the checks that run before any job."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import MICRO, with_changes

ROOT = Path(__file__).resolve().parents[2]


def snakemake(workdir: Path, *args: str, config: Path = MICRO, env: dict | None = None, timeout: int = 600):
    # --configfile takes several values: it goes last so that it never swallows a target
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           *args, "--configfile", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def write_config(tmp_path: Path, **changes) -> Path:
    cfg = with_changes(yaml.safe_load(MICRO.read_text()), **changes)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("micro")
    result = snakemake(workdir, "--cores", "2")  # rule all: tables 1-3, figures 3-4, reproduction.md
    assert result.returncode == 0, result.stdout[-3000:] + (result.stdout + result.stderr)[-3000:]
    return workdir


@pytest.mark.e2e
def test_micro_run_writes_a_sane_table1(micro_run):
    table = pd.read_csv(micro_run / "results/micro" / "table1.csv")
    cfg = yaml.safe_load(MICRO.read_text())
    from dpbert.methods.registry import get_method

    def family(row: str) -> str:
        """A row's method: its name may say which variant it is ("DistilBERT (from teacher)", BERT-kL's
        "BERT-3L"), and DPBERT's searched thresholds are a second row."""
        name = row.split(" (")[0].removesuffix(", threshold searched")
        return "BERT-kL" if re.fullmatch(r"BERT-\d+L", name) else name

    assert list(dict.fromkeys(family(m) for m in table["model"])) == [family(get_method(m).display_name) for m in cfg["methods"]]
    kl = [k for k in yaml.safe_load(MICRO.read_text())["methods"]["bert_truncated"]["layers"]]
    assert [m for m in table["model"] if family(m) == "BERT-kL"] == [f"BERT-{k}L" for k in kl]  # one row per model
    assert "DPBERT" in set(table["model"])  # at the rule it is trained for
    assert {"SST-2", "STS-B", "avg", "speedup", "speedup_latency", "speedup_layer"} <= set(table.columns)
    assert (table["profile"] == "micro").all() and table["backbone"].str.contains("4 layers").all()
    bert = table[table["model"] == "BERT-base"].iloc[0]
    assert bert["speedup_latency"] == 1.0 and bert["speedup_layer"] == 1.0
    assert 0 <= bert["SST-2"] <= 100 and -100 <= bert["STS-B"] <= 100
    assert (table["speedup_layer"].dropna() >= 1.0).all()
    # FLOPs per example: read off the records, the data and the stage-1 configs, for every point with a speed-up
    assert bert["speedup_flops"] == 1.0
    assert (table["speedup_flops"].isna() == table["speedup_layer"].isna()).all()
    sweeps = pd.read_csv(micro_run / "results/micro" / "sweeps.csv")
    assert sweeps["flops_per_example"].gt(0).all() and sweeps["flops_speedup"].gt(0).all()
    assert (micro_run / "results/micro" / "table1.md").read_text().count("MICRO") >= 1


@pytest.mark.e2e
def test_micro_run_records_executed_layers_and_sweep(micro_run):
    sweep = pd.read_csv(micro_run / "results/micro" / "sweeps.csv")
    assert {"task", "method", "seed", "knob", "latency_speedup", "layer_speedup", "score", "in_window"} <= set(sweep.columns)
    preds = pd.read_csv(micro_run / "work/micro/runs/SST-2/dpbert/1/predictions.csv.gz", keep_default_na=False)
    grid = preds[preds["knob"] == 0.5]  # the grid's threshold; the window search adds refined thresholds
    assert len(grid) == 24 and (preds["n_executed"] <= 4).all()
    dp = sweep[(sweep["method"] == "dpbert") & (sweep["task"] == "SST-2")]
    assert len(preds) == 24 * dp["knob"].nunique()  # one row per dev example and kept threshold
    executed = preds["executed"].astype(str).str.split().map(len)
    assert (executed == preds["n_executed"]).all()


@pytest.mark.e2e
def test_micro_run_renders_every_report(micro_run):
    for path in ["results/micro/table2.csv", "results/micro/table3.csv", "results/micro/reproduction.md"]:
        assert (micro_run / path).stat().st_size > 0, path
    for fig in ["figure3", "figure3_full", "figure4"]:
        assert (micro_run / "figures/micro" / f"{fig}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (micro_run / "figures/micro" / f"{fig}.pdf").read_bytes()[:5] == b"%PDF-"
    assert "micro" in (micro_run / "results/micro" / "reproduction.md").read_text()


@pytest.mark.e2e
def test_report_holds_tables_figures_and_reproduction(micro_run):
    """`snakemake --report` after a run: Tables 1-3 (table1.md with its ± and §), health, Figures 3-4 (Figure 3
    twice) and reproduction.md, each with its caption and its bytes (base64 in the HTML), from the records alone."""
    import base64
    import re

    report = micro_run / "report.html"
    result = snakemake(micro_run, "--report", str(report))
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    html = report.read_text()
    items = {"results/micro/table1.csv": "Table 1: every row's dev score", "results/micro/table2.csv": "Table 2: DPBERT vs",
             "results/micro/table1.md": "is the table to read", "results/micro/table2.md": "Table 2: DPBERT vs",
             "results/micro/table3.csv": "executed layer paths on SST-2/STS-B dev",
             "results/micro/health.md": "Method health:", "results/micro/health.csv": "Method health:",
             "figures/micro/figure3.png": "1.0 to 4.0x shaded", "figures/micro/figure3_full.png": "1.0 to 4.0x shaded",
             "figures/micro/figure4.png": "Figure 4: how often", "results/micro/reproduction.md": "Reproduction report:"}
    for path, caption in items.items():
        start = html.index(f'"{path}": {{')
        entry = html[start:html.index('"data_uri"', start) + 5_000_000]
        assert caption in entry[:entry.index('"data_uri"')], path
        data = re.match(r'"data_uri": "data:[^"]*?base64,([A-Za-z0-9+/=]+)"', entry[entry.index('"data_uri"'):])
        assert data and base64.b64decode(data.group(1)) == (micro_run / path).read_bytes(), path
    assert "profile <tt" in html and "work/micro/" in html  # the workflow description names the profile
    assert "±" in (micro_run / "results/micro/table1.md").read_text()  # what the report's Table 1 adds to the csv


@pytest.mark.e2e
def test_micro_run_writes_method_health(micro_run):
    from dpbert.data.tasks import get_task
    from dpbert.methods.registry import get_method

    cfg = yaml.safe_load(MICRO.read_text())
    expected = {(t, m) for m in cfg["methods"] for t in cfg["tasks"]
                if get_method(m).supports_regression or not get_task(t).is_regression}
    health = pd.read_csv(micro_run / "results/micro" / "health.csv", keep_default_na=False, na_values=[""])
    assert set(zip(health["task"], health["method"])) == expected
    # one row per (task, Table 1 row): BERT-kL's models are judged apart, a searched row has none of its own
    selected = pd.read_csv(micro_run / "results/micro" / "selected_points.csv")
    own = selected[~selected["row"].str.endswith(":searched")]
    assert len(health) == len(set(zip(health["task"], health["row"]))) == len(set(zip(own["task"], own["row"])))
    assert (health["method"] == "bert_truncated").sum() == 2 * len(cfg["tasks"])
    assert health["verdict"].map(lambda v: v == "ok" or v.startswith("degenerate: ")).all()
    assert (micro_run / "results/micro" / "health.md").read_text().count("## Verdict rules") == 1
    for task, method in expected:
        diag = (micro_run / f"work/micro/runs/{task}/{method}/1/diagnostics.json").read_text()
        assert f'"method": "{method}"' in diag
    exits = health[health["kind"] == "exit"]
    assert len(exits) and (exits["exit_layer_scores"].str.split().map(len) == 4).all()
    # Table 1 lists the degenerate cells in its own column; the score columns stay numeric
    table = pd.read_csv(micro_run / "results/micro" / "table1.csv")
    assert "degenerate" in table.columns and table["SST-2"].dtype == float


@pytest.mark.e2e
def test_reporting_does_not_retrain(micro_run):
    (micro_run / "figures/micro" / "figure3.png").unlink()
    dry = snakemake(micro_run, "figures/micro/figure3.png", "-n", "--quiet", "rules")
    assert dry.returncode == 0, dry.stdout[-2000:]
    jobs = {ln.split()[0] for ln in dry.stdout.splitlines() if ln.strip() and ln.split()[0] in
            {"prepare_data", "train_variant", "run_method", "table1", "figure3"}}
    assert jobs == {"figure3"}, dry.stdout[-2000:]


def _reversed_keys(value, top=True):
    """Every mapping's keys in reverse order, but the list of methods (Table 1's row order)."""
    if isinstance(value, dict):
        keys = list(value) if not top and "bert" in value else list(reversed(list(value)))
        return {k: _reversed_keys(value[k], top=False) for k in keys}
    return [_reversed_keys(v, top=False) for v in value] if isinstance(value, list) else value


@pytest.mark.e2e
def test_reordered_keys_and_respelled_numbers_rerun_nothing(micro_run, tmp_path):
    """Snakemake compares a job's params by their repr: reordering the keys of data:, model:, training:,
    selection: and of every methods.<m>:, and writing 1.0 for 1 (epochs) or ints for a float window, give
    no job "Params have changed" (dpbert/run/canonical.py); a changed value still reruns its jobs."""
    cfg = _reversed_keys(yaml.safe_load(MICRO.read_text()))
    cfg["training"]["finetune"]["epochs"] = 1.0
    cfg["methods"]["dpbert"] = {**cfg["methods"]["dpbert"], "stage2_epochs": 1.0}
    cfg["selection"]["window"] = [1, 4]
    for section in ("data", "model", "training", "selection"):
        assert list(cfg[section]) != list(yaml.safe_load(MICRO.read_text())[section])
    path = tmp_path / "reordered.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    dry = snakemake(micro_run, "-n", config=path)
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out[-2000:]
    assert "Params have changed" not in out and "rule run_method" not in out and "rule prepare_data" not in out, out[-3000:]
    assert "rule train_variant" not in out, out[-3000:]
    # the control: a changed value (DPBERT's planner lr) reruns DPBERT's jobs, for its params
    cfg["methods"]["dpbert"]["planner_lr"] = 0.02
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    changed = snakemake(micro_run, "-n", config=path)
    assert changed.returncode == 0 and "Params have changed" in changed.stdout + changed.stderr
    assert "train_variant" in changed.stdout + changed.stderr and "run_method" in changed.stdout + changed.stderr


@pytest.mark.e2e
def test_micro_run_serves_every_table1_point(micro_run, tmp_path):
    """Rule serving (in all): every Table 1 row's point on the first task at every batch size and order,
    from the run's records; its CLI reads the same run; asking for it again retrains nothing."""
    cfg = yaml.safe_load(MICRO.read_text())
    serving = pd.read_csv(micro_run / "results/micro/serving.csv")
    selected = pd.read_csv(micro_run / "results/micro/selected_points.csv")
    first = cfg["tasks"][0]
    points = selected[(selected["task"] == first) & (selected["split"] == "dev") & selected["variant"].notna()
                      & (selected["method"] != "bert")]
    assert set(serving["task"]) == {first} and set(serving["row"]) == set(points["row"])
    configs = {(b, o) for b in cfg["serving"]["batch_sizes"] for o in ("arrival", "length")}
    assert set(zip(serving["batch_size"], serving["order"])) == configs
    assert len(serving) == len(configs) * len(serving.drop_duplicates(["row", "variant", "knob"]))
    assert (serving["survival"] - serving["throughput_speedup"] / serving["layer_speedup"]).abs().max() < 1e-9
    assert (serving["examples_per_s"] > 0).all() and (serving["layer_speedup"] >= 1).all()
    at_one = serving[serving["batch_size"] == 1]
    assert (at_one["prediction_differences"] == 0).all() and (at_one["layer_differences"] == 0).all()
    assert (serving["agreement_n"] == cfg["serving"]["examples"]).all()
    assert not serving["exact"].any()  # serving.exact's default: predict_batch's fast mode
    assert (micro_run / "figures/micro/serving.png").stat().st_size > 0
    out = tmp_path / "serving.csv"
    cli = subprocess.run([sys.executable, "-m", "dpbert.tools.serve_bench", "--configfile", str(MICRO), "--directory",
                          str(micro_run), "--batch-sizes", "2", "--orders", "length", "--examples", "4",
                          "--repeats", "1", "--out", str(out), "--figure", str(tmp_path / "serving.png")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert cli.returncode == 0, cli.stderr[-2000:]
    again = pd.read_csv(out)
    assert set(again["row"]) == set(serving["row"]) and set(again["batch_size"]) == {2}
    assert (again["n_examples"] == 4).all() and (again["n_batches"] == 2).all()
    (micro_run / "results/micro/serving.csv").unlink()
    dry = snakemake(micro_run, "results/micro/serving.csv", "-n", "--quiet", "rules")
    assert dry.returncode == 0, dry.stdout[-2000:]
    jobs = {ln.split()[0] for ln in dry.stdout.splitlines() if ln.strip() and ln.split()[0] in
            {"prepare_data", "train_variant", "run_method", "table1", "serving"}}
    assert jobs == {"serving"}, dry.stdout[-2000:]


def test_unknown_method_is_rejected_before_any_job(tmp_path):
    cfg = write_config(tmp_path, methods={"bert": {}, "dpbret": {}})
    result = snakemake(tmp_path, "-n", config=cfg)
    assert result.returncode != 0
    assert "unknown method 'dpbret'" in (result.stdout + result.stderr) and "Did you mean 'dpbert'" in (result.stdout + result.stderr)


def test_unknown_method_key_is_rejected(tmp_path):
    cfg = write_config(tmp_path, methods={"bert": {}, "dpbert": {"target_rate": [0.3]}})
    result = snakemake(tmp_path, "-n", config=cfg)
    assert result.returncode != 0 and "did you mean 'target_rates'" in (result.stdout + result.stderr)


def test_window_min_above_max_is_rejected(tmp_path):
    cfg = write_config(tmp_path, selection__window=[1.96, 1.30])
    result = snakemake(tmp_path, "-n", config=cfg)
    assert result.returncode != 0 and "selection.window" in (result.stdout + result.stderr)


def test_paper_profile_offline_stops_at_once(tmp_path):
    # an empty Hugging Face cache: tests/run/test_offline.py runs the same check with the model and GLUE cached;
    # a real run (a dry run plans instead, tests/run/test_offline.py) stops before its first job
    result = snakemake(tmp_path, "--cores", "1", config=ROOT / "workflow" / "config" / "paper.yaml",
                       env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "HF_HUB_OFFLINE (or HF_DATASETS_OFFLINE) is set, and profile 'paper' needs" in out
    assert "the model 'bert-base-uncased' (model.source: hub): not in the hub cache" in out
    assert "the model 'distilbert-base-uncased' (methods.distilbert.student: auto)" in out
    assert "GLUE cola (data.source: hub): not in the datasets cache" in out and "--fetch" in out
    assert "Traceback" not in out and "rule run_method" not in out and not (tmp_path / "work").exists()


def test_missing_data_dir_is_rejected(tmp_path):
    cfg = write_config(tmp_path, data__source="glue_tsv", data__data_dir=str(tmp_path / "nope"))
    result = snakemake(tmp_path, "-n", config=cfg)
    assert result.returncode != 0 and "does not exist" in (result.stdout + result.stderr)


def test_default_config_dry_run_lists_every_task():
    if shutil.which("snakemake") is None and not (ROOT / "Snakefile").exists():
        pytest.skip("snakemake not installed")
    # --forceall: the whole DAG even in a checkout where the demo has run (its outputs present)
    result = subprocess.run([sys.executable, "-m", "snakemake", "results/table1.csv", "-n", "--forceall", "--quiet", "rules",
                             "-s", str(ROOT / "Snakefile"), "--directory", str(ROOT)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    assert "prepare_data" in result.stdout


def test_slurm_profile_dry_run_lists_jobs_with_resources(tmp_path):
    result = snakemake(tmp_path, "results/micro/table1.csv", "-n", "--workflow-profile", str(ROOT / "workflow/profiles/slurm"))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-2000:]
    assert "rule run_method:" in out and "rule train_variant:" in out
    assert "mem_mb=4000" in out and "runtime=90" in out and "gpu=0" in out


def test_paper_profile_asks_for_gpus():
    from snakemake.utils import validate

    cfg = yaml.safe_load((ROOT / "workflow/config/paper.yaml").read_text())
    validate(cfg, str(ROOT / "workflow/schemas/config.schema.yaml"), set_default=True)
    assert cfg["resources"]["method"]["gpu"] == 1 and cfg["training"]["device"] == "cuda"
    assert cfg["latency"]["exclusive"] is False  # a cluster: one GPU per job, no machine-wide timing lock
    assert cfg["seeds"] == [1, 2, 3] and cfg["selection"]["speedup"] == "latency"


TRAINING_NOW = "*/*/*/.*.training"  # a training job's staging folder: models/<task>/<method>/<seed>/.<variant>.training


@pytest.mark.e2e
def test_killed_run_resumes_and_reproduces_scores(tmp_path, micro_run):
    """Kill the run in the middle of training (SIGTERM, as Ctrl-C or a scheduler does); the same
    command resumes, and the scores, layer speed-ups and selected points equal those of an
    uninterrupted run (same seed, same config). After a SIGKILL or power loss Snakemake also
    leaves its lock behind: `snakemake --unlock` once, then the same command (README)."""
    import signal
    import time

    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "results/micro/table1.csv", "--cores", "1", "--configfile", str(MICRO)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    models = tmp_path / "work" / "micro" / "models"
    deadline = time.time() + 300
    while time.time() < deadline and not any(models.glob(TRAINING_NOW)):
        time.sleep(0.2)
    assert any(models.glob(TRAINING_NOW)), "training never started"
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=120)
    assert not (tmp_path / "results/micro" / "table1.csv").exists()

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert not list(models.glob(TRAINING_NOW))

    keys = ["task", "method", "variant", "knob", "split"]
    ours = pd.read_csv(tmp_path / "results/micro" / "sweeps.csv").sort_values(keys).reset_index(drop=True)
    ref = pd.read_csv(micro_run / "results/micro" / "sweeps.csv").sort_values(keys).reset_index(drop=True)
    for col in ["score", "layer_speedup", "mean_layers", "in_window"]:
        pd.testing.assert_series_equal(ours[col], ref[col], check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "results/micro" / "selected_points.csv").drop(columns=["latency_speedup"]),
                                  pd.read_csv(micro_run / "results/micro" / "selected_points.csv").drop(columns=["latency_speedup"]))


def test_missing_task_folder_is_rejected_before_any_job(tmp_path):
    (tmp_path / "glue" / "SST-2").mkdir(parents=True)
    (tmp_path / "glue" / "SST-2" / "train.tsv").write_text("sentence\tlabel\nok\t1\n")
    cfg = write_config(tmp_path, data__source="glue_tsv", data__data_dir=str(tmp_path / "glue"))
    result = snakemake(tmp_path, "-n", config=cfg)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "SST-2" in out and "lacks dev.tsv" in out and "Traceback" not in out, out[-1500:]


@pytest.mark.e2e
def test_warm_and_cold_jobs_give_identical_results(tmp_path):
    """The warm worker changes how a job's process starts, never what it computes."""
    cfg = write_config(tmp_path, tasks=["SST-2"], methods={"bert": {}, "pabee": {"patiences": [1, 2]},
                                                           "dpbert": {"target_rates": [0.3], "stage2_epochs": 1,
                                                                      "stage3_epochs": 1}})
    sweeps = {}
    for mode in ("1", "0"):
        workdir = tmp_path / f"warm{mode}"
        result = snakemake(workdir, "results/micro/table1.csv", "--cores", "1", config=cfg, env={"DPBERT_WARM": mode})
        assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
        phases = (workdir / "work/micro/runs/SST-2/pabee/1/phases.json").read_text()
        assert f'"warm": {float(mode == "1")}' in phases
        keys = ["task", "method", "variant", "knob", "split"]
        sweeps[mode] = pd.read_csv(workdir / "results/micro" / "sweeps.csv").sort_values(keys).reset_index(drop=True)
    for col in ["score", "layer_speedup", "mean_layers"]:
        pd.testing.assert_series_equal(sweeps["1"][col], sweeps["0"][col], check_exact=True)
