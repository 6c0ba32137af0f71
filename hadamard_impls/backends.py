"""Backends: the ways to run one method's module.

A backend turns a built module into the function that is timed. Everything
expensive (compilation included) happens on the first call, which the runner
makes during its correctness check, before any timing.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .replay import GraphReplay


@dataclass(frozen=True)
class Backend:
    name: str
    summary: str
    prepare: Callable[[nn.Module], Callable[..., torch.Tensor]]
    # Why this backend cannot run on a device here, or None when it can.
    unavailable: Callable[[torch.device], str | None]


def _always(device: torch.device) -> str | None:
    return None


def _inductor_unavailable(device: torch.device) -> str | None:
    # Inductor emits C++ for the CPU; without a compiler it fails on the first call.
    if device.type == "cpu" and not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
        return "torch.compile needs a C++ compiler for CPU code and none was found"
    return None


def _triton_unavailable(device: torch.device) -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "Triton is not installed (PyTorch's CUDA wheels bring it; else pip install triton)"
    if device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1":
        return None
    return ("Triton kernels need a CUDA GPU (TRITON_INTERPRET=1 runs them in Triton's interpreter "
            "on the CPU, for testing, not for timing)")


@functools.cache
def fused():
    """The Triton kernels, imported on first use so that Triton stays optional."""
    from . import kernels
    return kernels


def _compile(module: nn.Module) -> Callable[..., torch.Tensor]:
    # A module whose forward loops over time (an RNN) offers `compiled()`, which
    # compiles the step: compiling the whole loop would unroll it T times.
    if hasattr(module, "compiled"):
        return module.compiled()
    return torch.compile(module)


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("eager", "PyTorch eager mode, op by op", lambda module: module, _always),
        Backend("compile", "torch.compile (Inductor), fused kernels", _compile, _inductor_unavailable),
        # A method that offers this backend defines `forward_library`: the same
        # function through a vendor op (nn.Bilinear, nn.LSTM, ...).
        Backend("library", "the vendor op PyTorch ships for this formula",
                lambda module: module.forward_library, _always),
        # Likewise `forward_triton`: the formula with its element-wise work in fused
        # Triton kernels (hadamard_impls.kernels), most matrix products left to cuBLAS.
        # Inference on a GPU replays the call's kernels from a CUDA graph (replay.py):
        # Triton's per-launch host cost would otherwise be timed instead of the kernels.
        Backend("triton", "hand-written fused Triton kernels, forward and backward; "
                "inference on a GPU replayed from a CUDA graph",
                lambda module: GraphReplay(module.forward_triton, module), _triton_unavailable),
    )
}
