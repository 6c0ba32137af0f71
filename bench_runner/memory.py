"""Peak memory of one call, above what was allocated before it.

CUDA: the caching allocator's own peak counter. CPU: the profiler's record of
every allocation and free made through PyTorch's CPU allocator, replayed in
order; tracemalloc would not see tensor memory at all.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable

import torch
from torch.profiler import ProfilerActivity, profile

try:  # the profiler's event tree is not public API; without it CPU memory is unknown
    from torch._C._profiler import _EventType
except ImportError:  # pragma: no cover
    _EventType = None


def peak_memory_bytes(fn: Callable[[], object], device: torch.device) -> int | None:
    if device.type == "cuda":
        return _cuda_peak(fn, device)
    return _cpu_peak(fn)


def _cuda_peak(fn: Callable[[], object], device: torch.device) -> int:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def _cpu_peak(fn: Callable[[], object]) -> int | None:
    if _EventType is None:
        return None
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():
        prof.start()
    try:
        fn()
    finally:
        with _quiet_stderr():
            prof.stop()
    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.typed[0] == _EventType.Allocation:
            events.append((node.start_time_ns, node.typed[1].alloc_size))  # frees are negative
    live = peak = 0
    for _, delta in sorted(events):
        live += delta
        peak = max(peak, live)
    return peak


@contextlib.contextmanager
def _quiet_stderr():
    """Kineto writes a trace line to file descriptor 2 at each start and stop, which
    would break the progress bar; silence that descriptor for those two calls only."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
