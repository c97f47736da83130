"""Reproducible CPU arithmetic: the same config trains the same weights on any x86-64 CPU with AVX2.

torch, MKL and oneDNN pick kernels by CPU when they first compute (AVX-512 here, AVX2 there, other
GEMM code on AMD than on Intel), and each sums in its own order. ``execution.reproducible`` puts
``PINNED_ENV`` into every job's environment (workflow/rules/common.smk) to fix one code path that
every such CPU runs, and ``check`` (runtime.setup) makes each job verify that it took effect.
Measured (torch 2.13 wheel, MKL 2024.2, AMD EPYC; tests/run/test_reproducible.py): ATen and oneDNN
follow the vector width; MKL honours ``MKL_CBWR=AVX2`` on Intel only (AMD falls back to AUTO, and the
weights then differ from MKL's Intel paths). On a CPU that is not Intel's the mode therefore preloads a
two-function library (``VENDOR_SHIM_SOURCE``, built with the system's C compiler into the work folder)
that answers MKL's vendor check with "Intel", so MKL runs the AVX2 branch it runs on Intel CPUs: the
same bits on both vendors at no cost (a demo-sized and a MiniLM-sized training step ran 6-12% faster
than MKL's own AMD code here). Without a C compiler, or in ``strict`` mode, MKL runs its COMPATIBLE
branch (SSE2): the same bits too, at 1.55x (demo) and 2.2x (MiniLM) the training time.
"""

from __future__ import annotations

import ctypes
import os
import platform
from typing import Any

REPRODUCIBLE_ENV = "DPBERT_REPRODUCIBLE"  # "1": jobs must run pinned (set by common.smk from the config)

# Thread counts are deliberately not pinned here (no OMP_NUM_THREADS/MKL_NUM_THREADS): every job sets
# its own with torch.set_num_threads(config threads) in runtime.setup, which overrides those variables
# for torch's and MKL's pools anyway, and pinning them to 1 would only slow other libraries (numpy's
# BLAS) down. Reproducibility holds for the same thread count: the config's, which Snakemake caps at
# --cores (so run with --cores at least training.threads and latency.threads).
PINNED_ENV = {
    "MKL_CBWR": "AVX2",  # MKL: its AVX2 branch (Intel's; on other CPUs with the vendor shim, else COMPATIBLE)
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own kernels: AVX2 even on AVX-512 CPUs
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN, which some of torch's CPU kernels call: likewise
}
MKL_BRANCHES = {"COMPATIBLE": 3, "AVX2": 10}  # mkl_cbwr_get(MKL_CBWR_BRANCH) for each MKL_CBWR value (as measured)
MKL_CBWR_COMPATIBLE = MKL_BRANCHES["COMPATIBLE"]
STRICT_MKL_CBWR = "COMPATIBLE"  # SSE2 code that Intel documents as the same on every x86-64 vendor

# Loaded before torch (LD_PRELOAD) on a CPU that is not Intel's: MKL's vendor check answers "Intel", so MKL
# honours MKL_CBWR=AVX2 and runs the AVX2 code it runs on Intel CPUs (every CPU with AVX2 and FMA can).
VENDOR_SHIM_SOURCE = "int mkl_serv_intel_cpu_true(void) { return 1; }\nint mkl_serv_intel_cpu(void) { return 1; }\n"
VENDOR_SHIM_NAME = "libdpbert_mkl_vendor.so"


class NotReproducible(RuntimeError):
    """A job that should run pinned would compute with this CPU's own kernels."""


def enabled(config: dict[str, Any]) -> bool:
    """Whether the config's ``execution.reproducible`` is on: ``auto`` means on when training and
    latency both run on the CPU (the mode pins CPU kernels; GPU arithmetic is not covered)."""
    from dpbert.run.config_check import ConfigError

    mode = config.get("execution", {}).get("reproducible", "auto")
    if mode == "strict":
        mode = True
    devices = {section: str(config.get(section, {}).get("device", "cpu")) for section in ("training", "latency")}
    on_cpu = all(device == "cpu" for device in devices.values())
    if mode == "auto":
        return on_cpu
    if mode is True and not on_cpu:
        shown = ", ".join(f"{section}.device is {device}" for section, device in devices.items() if device != "cpu")
        raise ConfigError(
            f"execution.reproducible is true, but {shown}: the mode pins CPU arithmetic only, and GPU "
            "kernels differ between GPU models whatever the environment says. Set execution.reproducible "
            "to auto or false for a GPU profile."
        )
    return bool(mode)


def strict(config: dict[str, Any]) -> bool:
    """``execution.reproducible: strict``: MKL's COMPATIBLE branch on every CPU, no vendor shim."""
    return config.get("execution", {}).get("reproducible", "auto") == "strict"


def cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def needs_vendor_shim() -> bool:
    """Whether MKL would ignore MKL_CBWR=AVX2 here: an x86-64 CPU that is not Intel's."""
    return is_x86_64() and cpu_vendor() != "GenuineIntel"


def mkl_vendor_shim(folder: str | os.PathLike) -> str | None:
    """The vendor shim built into ``folder`` (once; absolute path), or None where none is needed or it cannot be
    had (no C compiler, or torch's MKL does not export the vendor check): the mode then runs MKL COMPATIBLE."""
    import shutil
    import subprocess
    from pathlib import Path

    if not needs_vendor_shim():
        return None
    out = Path(folder).resolve() / VENDOR_SHIM_NAME
    source = out.with_suffix(".c")
    if out.is_file() and source.is_file() and source.read_text() == VENDOR_SHIM_SOURCE:
        return str(out)
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not _mkl_exports_vendor_check():
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(VENDOR_SHIM_SOURCE)
    tmp = out.with_name(out.name + f".{os.getpid()}.partial")
    done = subprocess.run([compiler, "-shared", "-fPIC", "-o", str(tmp), str(source)], capture_output=True, check=False)
    if done.returncode != 0:
        return None
    tmp.replace(out)
    return str(out)


def _mkl_exports_vendor_check() -> bool:
    """Whether torch's own MKL has the vendor check to answer (read from its library, without importing torch)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return False
    lib = Path(spec.origin).parent / "lib" / "libtorch_cpu.so"
    try:
        return b"mkl_serv_intel_cpu_true" in lib.read_bytes()
    except OSError:
        return False


def environment(on: bool, shim: str | None = None, strict: bool = False) -> dict[str, str]:
    """The variables to add to the environment that every job inherits (before it imports torch). On a CPU
    that needs the vendor shim, ``shim`` (``mkl_vendor_shim``) is preloaded; without one, or ``strict``, MKL
    runs COMPATIBLE."""
    if not on:
        return {REPRODUCIBLE_ENV: "0"}
    env = {**PINNED_ENV, REPRODUCIBLE_ENV: "1"}
    if strict or (needs_vendor_shim() and shim is None):
        env["MKL_CBWR"] = STRICT_MKL_CBWR
    elif shim is not None:
        others = [p for p in os.environ.get("LD_PRELOAD", "").split() if p and p != shim]
        env["LD_PRELOAD"] = " ".join([shim, *others])
    return env


def is_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def check() -> bool:
    """Call at a job's start, after importing torch and before computing. If ``DPBERT_REPRODUCIBLE=1``:
    raise NotReproducible unless the pinned variables are in this process's environment and took
    effect, then make torch refuse kernels that are not deterministic. Return whether the mode is on."""
    if os.environ.get(REPRODUCIBLE_ENV, "0") != "1":
        return False
    for name, value in PINNED_ENV.items():
        allowed = (value, STRICT_MKL_CBWR) if name == "MKL_CBWR" else (value,)
        if os.environ.get(name) not in allowed:
            now = f"is {os.environ[name]!r}" if name in os.environ else "is not set"
            raise NotReproducible(
                f"execution.reproducible is on ({REPRODUCIBLE_ENV}=1), but {name} {now} in this job's "
                f"environment instead of {value!r}, so this job would compute with this CPU's own kernels "
                "and its results would not match another machine's. The workflow sets the pinned variables "
                f"({_shown(PINNED_ENV)}) in Snakemake's own process and every job inherits them; a job started "
                "another way (a cluster executor or container that does not pass the environment, a script run "
                "by hand) must get them in its environment before Python starts. Or set "
                "execution.reproducible: false."
            )
    import torch

    if is_x86_64():
        capability = torch.backends.cpu.get_cpu_capability()
        if capability != "AVX2":
            raise NotReproducible(
                f"execution.reproducible is on and ATEN_CPU_CAPABILITY=avx2, but torch dispatches "
                f"{capability} kernels: either this CPU has no AVX2 (the mode needs an x86-64 CPU with AVX2 "
                "and FMA), or torch computed before the variable was set (it must be in the environment "
                "before the process imports torch). Run on an AVX2 CPU with the pinned variables "
                f"({_shown(PINNED_ENV)}) in the environment, or set execution.reproducible: false."
            )
        branch = _mkl_cbwr_branch()
        wanted = os.environ["MKL_CBWR"]
        if branch is not None and branch != MKL_BRANCHES[wanted]:
            raise NotReproducible(
                f"execution.reproducible is on and MKL_CBWR={wanted}, but MKL runs CNR branch {branch}, not "
                f"{MKL_BRANCHES[wanted]} ({wanted}): MKL was initialised before the variable was set, or (AVX2 on a "
                f"CPU that is not Intel's) the vendor shim {VENDOR_SHIM_NAME} was not preloaded (LD_PRELOAD). The "
                "workflow sets both before any job starts; a job started another way must have them in its "
                "environment before Python starts. Or set execution.reproducible: strict (no shim, slower) or false."
            )
    torch.use_deterministic_algorithms(True)
    return True


def _shown(env: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in env.items())


def _mkl_cbwr_branch() -> int | None:
    """MKL's CNR branch as MKL itself reports it (the MKL linked into torch's wheel exports
    mkl_serv_cbwr_get); None where torch has no MKL of its own to ask."""
    import torch

    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        get = lib.mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
    return int(get(1))  # 1: MKL_CBWR_BRANCH
