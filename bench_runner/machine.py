"""What machine a result came from: the facts stored with every run, and how it was measured."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import socket
import subprocess
from pathlib import Path

import torch

from hadamard_bench import proc

from . import linker


def _cpu_model() -> str:
    return proc.fields("/proc/cpuinfo").get("model name") or platform.processor() or platform.machine()


def _memory_gib() -> int | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    except (ValueError, OSError, AttributeError):  # not a POSIX system that reports it
        return None


@functools.cache
def _driver_version() -> str | None:
    """The NVIDIA driver's version (e.g. 550.54.15), which torch does not report. Asked once per
    process: every cell's provenance carries it."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else None


def facts() -> dict[str, object]:
    """What this machine is; `key` is a hash of all but the hostname and names the stored
    machine row. Histories group by the coarser results_db.store.fingerprint_of(facts)."""
    cuda = torch.cuda.is_available()
    facts: dict[str, object] = {
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count() or 0,
        "memory_gib": _memory_gib(),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda if cuda else None,
        "gpu_name": torch.cuda.get_device_name(0) if cuda else None,
        "driver_version": _driver_version() if cuda else None,
        "os": f"{platform.system()} {platform.release()}",
        "python_version": platform.python_version(),
    }
    facts["key"] = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
    facts["hostname"] = socket.gethostname()
    return facts


def _git_commit() -> str | None:
    """This project's commit, with `-dirty` when the working tree has changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("-dirty" if dirty else "")) or None


@functools.cache
def _checkout() -> dict[str, object]:
    """This checkout's commit, whether it has local changes, and a hash of those changes, so two
    dirty trees at one commit are told apart. Once per process (a worker lives one round)."""
    root = Path(__file__).resolve().parent.parent
    commit = _git_commit()
    dirty = bool(commit and commit.endswith("-dirty"))
    diff_sha = None
    if dirty:
        try:
            diff = subprocess.run(["git", "diff", "HEAD"], cwd=root, capture_output=True, timeout=20).stdout
            diff_sha = hashlib.sha256(diff).hexdigest()[:16]
        except (OSError, subprocess.SubprocessError):
            pass
    return {"commit": commit.removesuffix("-dirty") if commit else None, "dirty": dirty, "diff_sha": diff_sha}


def tf32_in_force() -> str:
    """The TF32 switches as they stand: off, matmul, cudnn, or matmul+cudnn."""
    on = [name for name, flag in (("matmul", torch.backends.cuda.matmul.allow_tf32),
                                  ("cudnn", torch.backends.cudnn.allow_tf32)) if flag]
    return "+".join(on) or "off"


# The OpenMP variables that change how PyTorch's CPU threads wait between parallel regions or
# where they run. Workers inherit them from the runner, and they change what a cell measures:
# on a 2-vCPU VM, OMP_WAIT_POLICY=active made large threaded cells up to 2× slower and let a
# cell's median move 5–24% between runs (docs/measurement.md).
OPENMP_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_PROC_BIND", "OMP_PLACES", "GOMP_CPU_AFFINITY",
                    "KMP_BLOCKTIME")


def openmp_setting(environ=os.environ) -> str:
    """`defaults`, or the OpenMP variables set here (`OMP_WAIT_POLICY=active OMP_PROC_BIND=true`)."""
    found = [f"{k}={environ[k]}" for k in OPENMP_VARIABLES if environ.get(k)]
    return " ".join(found) or "defaults"


def cell_provenance(device: str) -> dict[str, object]:
    """What ran this cell, read in the process that ran it, as it ran: the checkout, the software
    versions, the precision switches in force, threads, the allocator's and OpenMP's settings."""
    cuda = device == "cuda" and torch.cuda.is_available()
    return {
        **_checkout(),
        "torch": torch.__version__, "triton": _triton_version(), "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "driver": _driver_version() if cuda else None,
        "tf32": tf32_in_force(), "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "threads": torch.get_num_threads(),
        "allocator": (os.environ.get("GLIBC_TUNABLES") or "system default")
        + ("; THP_MEM_ALLOC_ENABLE=1" if os.environ.get("THP_MEM_ALLOC_ENABLE") == "1" else ""),
        "openmp": openmp_setting(),
    }


def _triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


def process_facts() -> dict[str, object]:
    """What of a run's provenance the process that times its cells decides: its Python, torch,
    CUDA and Triton, its thread count and OpenMP settings. An `ab` side reports its own, which its
    interpreter (`--head-python`) or environment (`OMP_NUM_THREADS=1`) may set apart from the driver's."""
    return {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "triton": _triton_version(), "threads": torch.get_num_threads(), "openmp": openmp_setting()}


def provenance(threads: int, timing: dict[str, str], flop_convention: str,
               allocator: dict[str, str] | None = None) -> dict[str, object]:
    """What a reader needs to trust or reproduce a run's numbers, stored on the run."""
    return {
        "git_commit": _git_commit(),
        **process_facts(),
        "threads": threads,  # what the run's workers are set to, not this process
        "allocator": allocator,
        "linker": linker.name(),  # what torch.compile's CPU kernels are linked with (bench_runner.linker)
        "timing": timing,
        "flop_convention": flop_convention,
        "tf32": False,  # float32 means float32: bench_runner.cell turns TF32 off for every cell
    }


def label(facts: dict[str, object]) -> str:
    """`host (GPU)` or `host (CPU model)`: how charts name a machine."""
    what = facts.get("gpu_name") or facts.get("cpu_model")
    return f"{facts['hostname']} ({what})"
