"""Inference calls replayed from CUDA graphs: the triton backend without its launch overhead.

Launching a Triton kernel costs the host tens of microseconds of Python (binding the
arguments, finding the compiled kernel, the driver call). A method with a dozen
launches then spends longer on the host than its kernels take on the GPU, and
the GPU waits between them: measured on an H200, Poly-SA's triton forward took
700 µs per call where its kernels took 30 µs. So the triton backend captures an
inference call's kernels once per set of inputs into a CUDA graph and replays
it: one launch for all of them, as CUDA-graph serving stacks do.

What a replay cannot do it does not try. With gradients being recorded, off a
CUDA device (Triton's interpreter on the CPU) or inside another capture, a call
runs its kernels directly; a call that cannot be captured (one that synchronises
with the host) runs directly for good, and `launch` says why. A replay returns
the captured output tensor, which the next replay overwrites; a graph reads its
inputs and the module's parameters where they were at capture, so a new input
tensor means a new capture, and the module must stay where it is.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

GRAPH = "cuda graph"
KEEP = 4  # graphs kept per callable: each holds its own memory pool


def capture(fn: Callable[..., object], *args) -> tuple[Callable[[], None], object]:
    """`fn(*args)` captured into a CUDA graph: (its replay, the output every replay rewrites).
    Warmed up first on a side stream, as capture requires, which also compiles and autotunes
    every kernel and lets cuBLAS settle its choices before anything is recorded."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn(*args)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        output = fn(*args)
    return graph.replay, output


def not_replayable(args: tuple) -> str | None:
    """Why these calls run directly, or None when a graph can replay them."""
    if torch.is_grad_enabled():
        return "gradients are being recorded"
    if not all(t.is_cuda for t in args if isinstance(t, torch.Tensor)):
        return "not on a CUDA device"
    if torch.cuda.is_current_stream_capturing():
        return "inside another capture"
    return None


class GraphReplay:
    """`fn` (a module's forward) replayed from a CUDA graph per distinct set of inputs.

    `direct` is `fn` itself, for whoever must see every launch (a memory peak: replays
    allocate nothing, the graph's pool was filled at capture). `launch` says how the last
    call ran: "cuda graph", or "direct: " and the reason."""

    def __init__(self, fn: Callable[..., object], module: nn.Module,
                 capture: Callable = capture, replayable: Callable[[tuple], str | None] = not_replayable):
        self.direct = fn
        self.launch = "direct: not called yet"
        # The graph holds their addresses: a parameter moved elsewhere must not be read stale.
        self._held = [*module.parameters(), *module.buffers()]
        self._capture, self._replayable = capture, replayable
        self._graphs: dict[tuple, tuple[Callable[[], None], object] | str] = {}

    def _key(self, args: tuple) -> tuple:
        return (tuple((t.data_ptr(), t.shape, t.stride(), t.dtype, t.device) if isinstance(t, torch.Tensor)
                      else t for t in args),
                tuple(t.data_ptr() for t in self._held))

    def __call__(self, *args):
        why = self._replayable(args)
        if why is None:
            key = self._key(args)
            entry = self._graphs.get(key)
            if entry is None:
                if len(self._graphs) >= KEEP:
                    self._graphs.clear()
                try:
                    entry = self._capture(self.direct, *args)
                except Exception as exc:  # noqa: BLE001 -- any capture failure means: launch directly
                    text = str(exc).strip().splitlines()
                    entry = f"capture failed: {type(exc).__name__}: {text[0] if text else ''}"[:300]
                self._graphs[key] = entry
            if not isinstance(entry, str):
                replay, output = entry
                replay()
                self.launch = GRAPH
                return output
            why = entry
        self.launch = f"direct: {why}"
        return self.direct(*args)
