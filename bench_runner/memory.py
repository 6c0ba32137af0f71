"""Peak memory of one call, above what was allocated before it, and the ops it ran.

CUDA: the caching allocator's own peak counter. CPU: the profiler's record of
every allocation and free made through PyTorch's CPU allocator, replayed in
order; tracemalloc would not see tensor memory at all. The ops come from the
same profile on the CPU (kernels.py reads the dispatchers' choices from them).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, Iterator, NamedTuple

import torch
from torch.profiler import ProfilerActivity, profile

try:  # the profiler's event tree is not public API; without it CPU memory is unknown
    from torch._C._profiler import _EventType
except ImportError:  # pragma: no cover
    _EventType = None


class CallProfile(NamedTuple):
    peak_bytes: int | None  # above what was allocated before the call; None when unknown
    ops: frozenset[str]  # every aten op the call ran, nested ones included


def profile_call(fn: Callable[[], object], device: torch.device) -> CallProfile:
    """One call's memory peak and the ops it ran (kernels.chosen reads the dispatchers' choices
    from those). On the CPU one profile gives both: round 1 profiled each cell twice, once for
    each, and the second profile cost 4.3 s of a quick suite (2 vCPUs, quiet, 2026-12-05)."""
    if device.type == "cuda":
        return CallProfile(_cuda_peak(fn, device), ops_in(profiled(fn)))
    prof = profiled(fn, profile_memory=True)
    peak = _cpu_peak(prof)
    # The profiler now and then hands back an empty event tree (seen under torch.compile),
    # which reads as a peak of 0: only then is the call profiled again (the same call cannot
    # have two different true peaks, so the larger stands, and its ops are the whole list).
    # Each profile costs about 10 ms, which a quick suite of 450 cells would otherwise pay twice.
    if peak == 0:
        again = profiled(fn, profile_memory=True)
        second = _cpu_peak(again)
        return CallProfile(None if second is None else max(peak, second), ops_in(prof) | ops_in(again))
    return CallProfile(peak, ops_in(prof))


def _cuda_peak(fn: Callable[[], object], device: torch.device) -> int:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def _cpu_peak(prof: profile) -> int | None:
    """The peak of a profile taken with profile_memory."""
    if _EventType is None:
        return None
    events = [(node.start_time_ns, node.typed[1].alloc_size, node.typed[1].ptr)  # frees are negative
              for node in event_nodes(prof) if node.typed[0] == _EventType.Allocation]
    # Frees of blocks allocated before the call (old gradients set to None, say) do not
    # lower the call's own peak: only blocks allocated inside the window count.
    live = peak = 0
    born: dict[int, int] = {}
    for _, delta, ptr in sorted(events):
        if delta > 0:
            born[ptr] = delta
        elif born.pop(ptr, None) is None:
            continue
        live += delta
        peak = max(peak, live)
    return peak


def ops_in(prof: profile) -> frozenset[str]:
    """Every aten op a finished profile saw, nested ones included."""
    if _EventType is None:  # without the event tree (not public API), the slower list of events
        return frozenset(event.name for event in prof.events())
    return frozenset(node.name for node in event_nodes(prof) if node.typed[0] == _EventType.TorchOp)


def event_nodes(prof: profile) -> Iterator:
    """Every node of a finished profile's event tree (ops, allocations), nested ones included.
    Reading the tree takes well under a millisecond; the profile's `events()` list took 5-10 ms
    a call to build."""
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        yield node


def profiled(fn: Callable[[], object], **options) -> profile:
    """`fn` run once under the CPU profiler (`options` as profile takes them), kept off stderr;
    the finished profile, for its events. The call has run many times before, timed; what is
    written meanwhile is the profiler's: Kineto's trace lines at start and stop, and, for a train
    call that frees gradients made before the profile began, c10's "Memory block of unknown size
    was allocated before the profiling started", once in each round's worker."""
    prof = profile(activities=[ProfilerActivity.CPU], **options)
    with quiet_stderr():
        prof.start()
        try:
            fn()
        finally:
            prof.stop()
    return prof


@contextlib.contextmanager
def quiet_stderr():
    """File descriptor 2 silenced meanwhile: Kineto writes a trace line there at each start and
    stop of a profile, which would break the progress bar."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
