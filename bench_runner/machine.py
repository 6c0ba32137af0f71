"""What machine a result came from: the fingerprint stored with every run."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket

import torch


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fingerprint() -> dict[str, object]:
    """The facts that make two runs comparable; `key` is a hash of all but the hostname."""
    cuda = torch.cuda.is_available()
    facts: dict[str, object] = {
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count() or 0,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda if cuda else None,
        "gpu_name": torch.cuda.get_device_name(0) if cuda else None,
        "os": f"{platform.system()} {platform.release()}",
        "python_version": platform.python_version(),
    }
    facts["key"] = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
    facts["hostname"] = socket.gethostname()
    return facts


def label(facts: dict[str, object]) -> str:
    """`host (GPU)` or `host (CPU model)`: how charts name a machine."""
    what = facts.get("gpu_name") or facts.get("cpu_model")
    return f"{facts['hostname']} ({what})"
