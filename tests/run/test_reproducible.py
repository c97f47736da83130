"""execution.reproducible: with the project's pinning, a small BERT trains to the same bits whatever kernels
this CPU could run; without it, it does not (dpbert/run/reproducible.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dpbert.run import reproducible
from dpbert.run.config_check import ConfigError
from tests.conftest import ROOT

X86 = reproducible.is_x86_64()
FLAGS = set()
VENDOR = ""
if Path("/proc/cpuinfo").exists():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags") and not FLAGS:
            FLAGS = set(line.split(":", 1)[1].split())
        if line.startswith("vendor_id") and not VENDOR:
            VENDOR = line.split(":", 1)[1].strip()
AVX512 = "avx512f" in FLAGS
AVX2 = {"avx2", "fma"} <= FLAGS

# 30 AdamW steps of a 2-layer BERT classifier, one thread: ~1 s of training after ~3 s of imports.
_TRAIN = textwrap.dedent("""
    import hashlib, json, os, sys
    sys.path.insert(0, sys.argv[1])
    import torch
    from dpbert.run import reproducible
    if sys.argv[2] == "late":  # torch computes first, the pinning comes too late: check must refuse
        torch.ones(8, 8) @ torch.ones(8, 8)
        torch.backends.cpu.get_cpu_capability()
        os.environ.update(reproducible.environment(True))
        try:
            reproducible.check()
        except reproducible.NotReproducible as exc:
            print(json.dumps({"refused": str(exc)}))
        sys.exit(0)
    pinned = reproducible.check()
    from transformers import BertConfig, BertForSequenceClassification
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
        max_position_embeddings=64))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(30):
        x = torch.randint(0, 300, (16, 32), generator=g)
        y = torch.randint(0, 2, (16,), generator=g)
        loss = model(input_ids=x, labels=y).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
    print(json.dumps({"hash": digest, "pinned": pinned, "capability": torch.backends.cpu.get_cpu_capability(),
                      "deterministic": torch.are_deterministic_algorithms_enabled(),
                      "mkl_branch": reproducible._mkl_cbwr_branch()}))
""")

# Makes MKL's vendor check say "Intel" (MKL in torch's wheel exports it): on an AMD CPU, MKL then runs
# the code paths it runs on Intel CPUs, the one difference between the two vendors that ATen's and
# oneDNN's own dispatch (by instruction set, not vendor) does not already show on this machine.
_FAKE_INTEL = "int mkl_serv_intel_cpu_true(void) { return 1; }\nint mkl_serv_intel_cpu(void) { return 1; }\n"
_CLEARED = ("MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
            "LD_PRELOAD", "MKL_VERBOSE", reproducible.REPRODUCIBLE_ENV)
_AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def _fake_intel_lib(folder: Path) -> Path | None:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if VENDOR != "AuthenticAMD" or compiler is None or not _mkl_exports_vendor_check():
        return None
    (folder / "fake_intel.c").write_text(_FAKE_INTEL)
    out = folder / "libfake_intel.so"
    done = subprocess.run([compiler, "-shared", "-fPIC", "-o", str(out), str(folder / "fake_intel.c")],
                          capture_output=True, check=False)
    return out if done.returncode == 0 else None


def _mkl_exports_vendor_check() -> bool:
    import torch

    lib = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    nm = shutil.which("nm")
    if not lib.exists() or nm is None:
        return False
    out = subprocess.run([nm, "-D", "--defined-only", str(lib)], capture_output=True, text=True, check=False)
    return " mkl_serv_intel_cpu_true" in out.stdout


def _run(extra: dict[str, str], mode: str = "train") -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env.update(extra)
    done = subprocess.run([sys.executable, "-c", _TRAIN, str(ROOT), mode], capture_output=True, text=True,
                          env=env, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every variant this machine can show, two at a time (each is one thread)."""
    shim = reproducible.mkl_vendor_shim(tmp_path_factory.mktemp("shim")) if X86 else None
    pinned = reproducible.environment(True, shim=shim)  # what the workflow gives every job
    variants = {
        "pinned": (pinned, "train"),
        # an AVX2-only CPU as far as this one can play it: MKL limited to AVX2 (ATen and oneDNN are already)
        "pinned_avx2_only": ({**pinned, "MKL_ENABLE_INSTRUCTIONS": "AVX2"}, "train"),
        "late": ({}, "late"),
    }
    if AVX512:
        variants["default"] = (reproducible.environment(False), "train")
        variants["default_avx2_only"] = ({**reproducible.environment(False), **_AVX2_ONLY}, "train")
    fake = _fake_intel_lib(tmp_path_factory.mktemp("fake_intel")) if X86 else None
    if fake is not None and shim is not None:
        # MKL's Intel code paths, made independently of the project's shim: what an Intel CPU runs
        variants["intel_mkl"] = ({**pinned, "LD_PRELOAD": str(fake)}, "train")
        # MKL_CBWR=AVX2 without the shim: AMD falls back to AUTO (the check would refuse it)
        no_shim = {k: v for k, v in pinned.items() if k != "LD_PRELOAD"}
        variants["avx2_without_shim"] = ({**no_shim, reproducible.REPRODUCIBLE_ENV: "0"}, "train")
        strict = reproducible.environment(True, strict=True)
        variants["strict"] = (strict, "train")
        variants["strict_intel_mkl"] = ({**strict, "LD_PRELOAD": str(fake)}, "train")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_run, env, mode) for name, (env, mode) in variants.items()}
        return {name: future.result() for name, future in futures.items()}


x86_avx2 = pytest.mark.skipif(not (X86 and AVX2), reason="the pinning is for x86-64 CPUs with AVX2")


@x86_avx2
def test_pinned_training_is_bit_identical_with_an_avx2_only_dispatch(runs):
    pinned, avx2_only = runs["pinned"], runs["pinned_avx2_only"]
    assert pinned["pinned"] and pinned["deterministic"] and pinned["capability"] == "AVX2"
    assert pinned["mkl_branch"] in (None, *reproducible.MKL_BRANCHES.values())
    assert avx2_only["hash"] == pinned["hash"]


@x86_avx2
@pytest.mark.skipif(not AVX512, reason="needs a CPU with AVX-512 to show what the pinning changes")
def test_without_the_pinning_this_cpu_and_an_avx2_only_one_train_different_weights(runs):
    default, avx2_only = runs["default"], runs["default_avx2_only"]
    assert not default["pinned"] and default["capability"].startswith("AVX512")
    assert default["hash"] != avx2_only["hash"]  # so the pinning is what makes them agree


@x86_avx2
def test_pinned_training_is_bit_identical_under_mkls_intel_code_paths(runs):
    """On an AMD CPU: the workflow's pinning (MKL_CBWR=AVX2 with the vendor shim) trains the same bits as MKL's
    Intel code paths; without the shim MKL runs its own AMD code (other bits); strict (COMPATIBLE) agrees too."""
    if "intel_mkl" not in runs:
        pytest.skip("needs an AMD CPU, a C compiler and torch's own MKL")
    assert runs["pinned"]["mkl_branch"] == reproducible.MKL_BRANCHES["AVX2"]
    assert runs["intel_mkl"]["hash"] == runs["pinned"]["hash"]
    assert runs["avx2_without_shim"]["hash"] != runs["pinned"]["hash"]  # so the shim is what makes them agree
    assert runs["strict"]["hash"] == runs["strict_intel_mkl"]["hash"]
    assert runs["strict"]["mkl_branch"] == reproducible.MKL_CBWR_COMPATIBLE


@x86_avx2
def test_a_job_refuses_to_run_when_the_pinning_came_after_torch_computed(runs):
    assert "refused" in runs["late"], runs["late"]
    assert "before the process imports torch" in runs["late"]["refused"]


def test_a_job_refuses_to_run_when_a_pinned_variable_is_missing(monkeypatch):
    monkeypatch.setenv(reproducible.REPRODUCIBLE_ENV, "1")
    for name, value in reproducible.PINNED_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    with pytest.raises(reproducible.NotReproducible, match="ONEDNN_MAX_CPU_ISA is not set in this job's environment"):
        reproducible.check()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("MKL_CBWR", "AUTO")
    with pytest.raises(reproducible.NotReproducible, match="MKL_CBWR is 'AUTO'"):
        reproducible.check()
    monkeypatch.setenv(reproducible.REPRODUCIBLE_ENV, "0")
    assert reproducible.check() is False


def test_the_config_decides_and_auto_means_cpu_only():
    cpu = {"training": {"device": "cpu"}, "latency": {"device": "cpu"}}
    gpu = {"training": {"device": "cuda"}, "latency": {"device": "cuda"}}
    assert reproducible.enabled({**cpu, "execution": {"reproducible": "auto"}})
    assert reproducible.enabled(cpu)  # auto is the default
    assert not reproducible.enabled({**gpu, "execution": {"reproducible": "auto"}})
    assert not reproducible.enabled({**cpu, "execution": {"reproducible": False}})
    assert not reproducible.enabled({"training": {"device": "auto"}, "latency": {"device": "cpu"}})
    with pytest.raises(ConfigError, match="training.device is cuda, latency.device is cuda"):
        reproducible.enabled({**gpu, "execution": {"reproducible": True}})
    pinned = reproducible.environment(True, shim="/x/libshim.so")
    assert {k: pinned[k] for k in reproducible.PINNED_ENV} == reproducible.PINNED_ENV
    assert reproducible.environment(True, strict=True)["MKL_CBWR"] == "COMPATIBLE"
    if reproducible.needs_vendor_shim():
        assert pinned["LD_PRELOAD"].split()[0] == "/x/libshim.so"
        assert reproducible.environment(True)["MKL_CBWR"] == "COMPATIBLE"  # no shim to be had: the slow safe branch
    assert reproducible.strict({**cpu, "execution": {"reproducible": "strict"}})
    assert reproducible.enabled({**cpu, "execution": {"reproducible": "strict"}})
    assert reproducible.environment(False) == {"DPBERT_REPRODUCIBLE": "0"}
