"""Timing one callable: warm-up, blocked samples, statistics from raw samples.

After torch.utils.benchmark: a sample is a block of calls long enough for the
clock's resolution, the raw per-call times are kept, and the median, IQR and
the rest are derived from them. The clock is injectable so that tests drive
the loop with a seeded fake clock instead of a real device.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import torch

from hadamard_impls import replay

from .defaults import TimingPolicy
from .stats import median_rel_ci


class Clock(Protocol):
    """Times a block of calls and returns its length in seconds."""

    def time_block(self, fn: Callable[[], object], calls: int) -> float: ...


class WallClock:
    """CPU timing with perf_counter."""

    def time_block(self, fn: Callable[[], object], calls: int) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return time.perf_counter() - start


class CudaEventClock:
    """GPU timing with CUDA events, after the queue is drained.

    Host timers see launch time, not kernel time: events recorded on the stream
    around the block measure the kernels, and the synchronisations keep earlier
    work out of the sample and this sample's work inside it.

    With `flush_l2` (the default, as in Triton's do_bench) every call starts from a
    cold L2: a buffer larger than any L2 is zeroed before it, outside its events, so
    a small kernel is not flattered by inputs left in cache by the call before.
    """

    FLUSH_BYTES = 256 * 2**20  # above the L2 of any current GPU (H100: 50 MB)

    def __init__(self, flush_l2: bool = True):
        self.flush_l2 = flush_l2
        self._scratch = torch.empty(self.FLUSH_BYTES, dtype=torch.int8, device="cuda") if flush_l2 else None

    def time_block(self, fn: Callable[[], object], calls: int) -> float:
        if not self.flush_l2:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            for _ in range(calls):
                fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1e3
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(calls)]
        torch.cuda.synchronize()
        for start, end in events:
            self._scratch.zero_()
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize()
        return sum(start.elapsed_time(end) for start, end in events) / 1e3


def clock_for(device: torch.device, flush_l2: bool = True) -> Clock:
    return CudaEventClock(flush_l2) if device.type == "cuda" else WallClock()


def cuda_graph(fn: Callable[[], object]) -> Callable[[], object]:
    """`fn` captured into a CUDA graph: its replay launches every kernel at once, so timing
    it against `fn` shows the launch overhead apart. Raises if `fn` cannot be captured."""
    return replay.capture(fn)[0]


@dataclass(frozen=True)
class Measurement:
    """Per-call times of one cell, in seconds, with statistics derived from them."""

    samples: tuple[float, ...]
    calls_per_sample: int
    warmup_calls: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def iqr(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q3 - q1

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples)

    @property
    def rel_ci(self) -> float:
        return median_rel_ci(self.samples)

    @property
    def noisy(self) -> bool:
        """torch.utils.benchmark's warning threshold: IQR above 10% of the median."""
        return self.iqr > 0.1 * self.median


@contextmanager
def collector_paused():
    """Python's cyclic garbage collector off, as timeit (and so torch.utils.benchmark) keeps it
    while timing: a collection is triggered by how many objects the process allocated before,
    so which sample it lands in, and what it costs, depends on the process's history, not on
    the code being timed. Freed tensors are still released at once (reference counting)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def measure(fn: Callable[[], object], clock: Clock, policy: TimingPolicy = TimingPolicy()) -> Measurement:
    """Warm `fn` up, size a block of calls, then sample blocks until the median is known to
    `target_rel_ci`, or the budget is spent; the garbage collector stays off throughout."""
    with collector_paused():
        return _measure(fn, clock, policy)


def _warm_up(fn: Callable[[], object], clock: Clock, policy: TimingPolicy) -> tuple[int, int, float]:
    """Call `fn` for `warmup_s`, then grow a block of calls until one lasts `min_block_s`:
    (warm-up calls, calls per block, the first block's seconds)."""
    warmup_calls, per_call = _warm(fn, clock, policy)
    calls, first = _size_block(fn, clock, per_call, policy.min_block_s)
    return warmup_calls, calls, first


def _warm(fn: Callable[[], object], clock: Clock, policy: TimingPolicy) -> tuple[int, float]:
    """Call `fn` for `warmup_s`, at least once: (calls, seconds per call)."""
    calls, warm = 0, 0.0
    while calls == 0 or warm < policy.warmup_s:
        warm += clock.time_block(fn, 1)
        calls += 1
    return calls, warm / calls


def _size_block(fn: Callable[[], object], clock: Clock, per_call: float, block_s: float) -> tuple[int, float]:
    """Grow a block of calls from the warm-up's `per_call` until one lasts `block_s`:
    (calls per block, the last block's seconds)."""
    calls = max(1, int(block_s / per_call)) if per_call > 0 else 1
    while True:
        first = clock.time_block(fn, calls)
        if first >= block_s or calls >= 1 << 20:
            return calls, first
        calls *= 2


def _measure(fn: Callable[[], object], clock: Clock, policy: TimingPolicy) -> Measurement:
    warmup_calls, calls, first = _warm_up(fn, clock, policy)
    samples = [first / calls]
    spent = first
    while len(samples) < policy.max_samples and (
        len(samples) < policy.min_samples
        or (spent < policy.budget_s
            and (policy.target_rel_ci <= 0 or median_rel_ci(samples) > policy.target_rel_ci))
    ):
        block = clock.time_block(fn, calls)
        samples.append(block / calls)
        spent += block
    return Measurement(tuple(samples), calls, warmup_calls)


# What a member does each time its turn comes, before its block is timed: untimed calls, at least
# SWITCH_WARMUP_CALLS and for at least SWITCH_WARMUP_S. The member before it left its own data in
# the caches, and (in another process, as `ab` runs them) its OpenMP threads spinning for a while
# after their last parallel region. Short blocks without such calls change the ratio itself: on
# a 2-vCPU VM on 2026-12-01, a 1024x256 matmul against a multiply read 0.17 in ~0.2 ms blocks
# against 0.09 one at a time; and two processes of the same code taking turns with one untimed
# call read per-cycle log ratios spread by 0.4-0.6 (SD) in cells of 0.1-10 ms on 2026-12-02.
SWITCH_WARMUP_CALLS = 1
SWITCH_WARMUP_S = 2e-3
# ... except a member whose call lasts at least this long: its first call after a switch was
# hardly slower than the next (benchmarks/switch_cost.py; on a 2-vCPU VM, the median over such
# members of one process's group was 0.997x quiet and 0.994x disturbed on 2026-12-03, where calls
# of 0.5-5 ms paid 3-17%; over an `ab` session's two processes, 1.008x and 1.007x on 2026-12-04,
# against 1.13-1.16x at 2-5 ms), so an untimed call would only double its turn. In that `ab`
# session the untimed calls of such members took about a quarter of the session's time.
LONG_CALL_S = 20e-3


def interleave(fns: Sequence[Callable[[], object]], clock: Clock, policy: TimingPolicy,
               rng: random.Random) -> list[Measurement]:
    """Time several callables of one process in turns (take_turns): each is warmed up and
    given its own block size first (size_for_turns). The garbage collector stays off throughout."""
    with collector_paused():
        sized = [size_for_turns(fn, clock, policy) for fn in fns]
        samples = take_turns([turn_of(fn, clock, calls, per_call) for fn, (_, calls, per_call) in zip(fns, sized)],
                             policy, rng)
    return [Measurement(tuple(s), calls, warmup_calls) for s, (warmup_calls, calls, _) in zip(samples, sized)]


def size_for_turns(fn: Callable[[], object], clock: Clock, policy: TimingPolicy,
                   block_s: float | None = None) -> tuple[int, int, float]:
    """A member's warm-up and block for its turns: (warm-up calls, calls per block, seconds per call).
    `block_s`: how long a block lasts at least; by default as below (`ab`'s sides pass the suite's own).

    A group's block lasts at least as long as the untimed calls before it (SWITCH_WARMUP_S), so that a turn
    spends at most half its time untimed: with the suite's own shortest block (quick: 0.5 ms), the
    members under 20 ms of a quick round on a 2-vCPU VM spent 18 s a round untimed against 11 s
    timed (2026-12-03). On CUDA, where every call is timed alone after its L2 flush
    (`min_block_s` 0), a block stays one call. A member whose warm-up call already lasts a block
    times no block to prove it, since turns keep no sample from before their first cycle: that
    block cost a whole call of each such member, 20 ms and more for the long ones."""
    warmup_calls, per_call = _warm(fn, clock, policy)
    if block_s is None:
        block_s = max(policy.min_block_s, SWITCH_WARMUP_S) if policy.min_block_s > 0 else 0.0
    if per_call >= block_s:
        return warmup_calls, 1, per_call
    calls, first = _size_block(fn, clock, per_call, block_s)
    return warmup_calls, calls, first / calls


def turn_of(fn: Callable[[], object], clock: Clock, calls: int, per_call: float) -> Callable[[], tuple[float, int]]:
    """A member's turn, as a group's members and `ab`'s sides take theirs: untimed calls, then a
    block of `calls`, except that a member whose call lasts LONG_CALL_S or more makes no untimed call."""
    return _turn(fn, clock, calls, untimed=per_call < LONG_CALL_S)


def _turn(fn: Callable[[], object], clock: Clock, calls: int, untimed: bool = True) -> Callable[[], tuple[float, int]]:
    """One member's turn: untimed calls (SWITCH_WARMUP_CALLS, SWITCH_WARMUP_S; none without
    `untimed`), then one timed block."""
    def turn() -> tuple[float, int]:
        until, made = time.perf_counter() + SWITCH_WARMUP_S, 0
        while untimed and (made < SWITCH_WARMUP_CALLS or time.perf_counter() < until):
            fn()
            made += 1
        return clock.time_block(fn, calls), calls
    return turn


def take_turns(turns: Sequence[Callable[[], tuple[float, int]]], policy: TimingPolicy,
               rng: random.Random, known: Callable[[list[list[float]]], bool] | None = None
               ) -> list[list[float]]:
    """Per-call samples of several members timed in turns: in every cycle each member takes one
    turn (its untimed warm-up calls, then one timed block: `turns[i]()` returns the block's
    seconds and calls), in a fresh random order from `rng`. Sample i of every member comes from
    cycle i, so two members' samples of one cycle were timed within milliseconds of each other
    and share whatever the machine was doing then: their ratio is free of the drift that
    separates numbers taken seconds apart. The members may live in other processes (bench_runner.
    ab times two versions this way).

    Cycles go on until there are `min_samples`, and then until the members together have spent
    `budget_s` each in timed blocks or what the caller measures is known well enough: `known(samples)`,
    by default every member's median to `target_rel_ci`; at most `max_samples`."""
    if known is None:
        def known(samples):
            return policy.target_rel_ci > 0 and max(median_rel_ci(s) for s in samples) <= policy.target_rel_ci
    samples: list[list[float]] = [[] for _ in turns]
    spent, cycles = 0.0, 0
    while cycles < policy.max_samples and (
            cycles < policy.min_samples or (spent < policy.budget_s * len(turns) and not known(samples))):
        order = list(range(len(turns)))
        rng.shuffle(order)
        for i in order:
            block, calls = turns[i]()
            samples[i].append(block / calls)
            spent += block
        cycles += 1
    return samples
