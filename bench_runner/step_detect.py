"""Where a history's level steps: E-divisive means (Matteson & James, "A nonparametric approach
for multiple change point analysis of multivariate data", JASA 2014), as in MongoDB's
performance CI, on a cell's run medians, each step judged by bench_runner.stats' comparison of
the runs on either side. Pure functions, apart from stats (and comparison's rule for a change
within the machine's own move) as asv keeps its step_detect apart from its statistics.
Torch-free: the dashboard imports it through bench_runner.history."""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import numpy as np

from .comparison import hold_machine_moved
from .defaults import FLOOR
from .stats import ALPHA, RUN_WORDS, compare, verdict


def _divergence(z: np.ndarray, min_size: int) -> tuple[int, float]:
    """E-divisive's split statistic (Matteson & James 2014, α = 1) at its best split of `z`:
    (index where the new level starts, Q there). As in the paper, the segment after the split
    may end before the series does (z[:τ] against z[τ:κ]), so a level that rises and falls
    back is found too."""
    n = len(z)
    distances = np.abs(z[:, None] - z[None, :])
    s = np.zeros((n + 1, n + 1))
    s[1:, 1:] = distances.cumsum(0).cumsum(1)
    block = lambda a, b, c, d: s[b, d] - s[a, d] - s[b, c] + s[a, c]  # noqa: E731 -- sum of distances[a:b, c:d]
    tau, kappa = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    valid = (tau >= min_size) & (kappa - tau >= min_size)
    tau, kappa = tau[valid], kappa[valid]
    m = kappa - tau
    energy = (2 * block(0, tau, tau, kappa) / (tau * m) - block(0, tau, 0, tau) / (tau * (tau - 1))
              - block(tau, kappa, tau, kappa) / (m * (m - 1)))
    q = tau * m / kappa * energy
    best = int(np.argmax(q))
    return int(tau[best]), float(q[best])


# How many runs one search sees. E-divisive compares every split with every other, O(n²) in the
# runs it sees, and judges a split on the rounds of every run on either side: over a whole history
# of hundreds of runs that is slow, and a new run could move any change point. Searched window by
# window instead, as Hunter does (Fleming et al., ICPE 2023: E-divisive on windows of 50 points),
# the change points of a window that is full are final: a new run is searched with the last
# window only (bench_runner.history's refresh).
WINDOW = 50


class Found(NamedTuple):
    """What a search found: where new levels start, and where its last window started (every
    change point before it is final: later runs are searched from there on)."""

    change_points: list[int]
    last_window: int


def search(values: Sequence[float], alpha: float = ALPHA, floor: float = FLOOR, permutations: int = 199,
           min_size: int = 2, seed: int = 0, rounds: Sequence[Sequence[np.ndarray]] | None = None,
           window: int = WINDOW, machine_move: Callable[[int, int, int], float] | None = None) -> Found:
    """Change points of a series of run medians, searched window by window: the first window
    holds the first `window` runs; the next starts at the last change point the window found, or
    half a window on when it found none, so every step is seen away from a window's edge. The
    last window ends with the series. A history of at most `window` runs is one window.

    Because a full window's search depends on nothing after it, searching `values[last_window:]`
    (with its rounds) finds the same change points after its first run as searching `values`
    whole (one at last_window itself was found by the window before): what history's
    incremental refresh relies on.

    `machine_move(start, split, end)`: how far the machine itself moved, on a log scale, between
    values[start:split] and values[split:end] (their runs' drift controls); a step whose interval
    does not clear it is held, as `compare` holds a change between runs (comparison.hold_machine_moved)."""
    found, start, n = [], 0, len(values)
    while True:
        end = min(start + window, n)
        moved = None if machine_move is None else (lambda a, b, c, o=start: machine_move(o + a, o + b, o + c))
        inside = [start + i for i in _segment_change_points(
            values[start:end], alpha, floor, permutations, min_size, seed,
            None if rounds is None else rounds[start:end], moved)]
        found += inside
        if end == n:
            return Found(found, start)
        start = max([start + window // 2, *inside])


def change_points(values: Sequence[float], **options) -> list[int]:
    """Indices where a new level starts in a series of run medians (search's change points)."""
    return search(values, **options).change_points


def _segment_change_points(values: Sequence[float], alpha: float, floor: float, permutations: int,
                           min_size: int, seed: int, rounds: Sequence[Sequence[np.ndarray]] | None,
                           machine_move: Callable[[int, int, int], float] | None = None) -> list[int]:
    """Indices where a new level starts in a series of run medians. E-divisive means on the log
    medians finds the best split; it is kept when it is significant and the two sides' medians
    differ by more than the practical floor, then each side is searched again.

    Significance: with each run's rounds given (`rounds`, one list per value), the split is
    judged by `compare` on the rounds pooled on either side, so the uncertainty of every run
    counts and even five runs can show a step; without them, by a permutation test of the
    split statistic (which needs a longer series: with five values its p never falls below
    0.05). Seeded: the same history always gives the same change points."""
    z = np.log(np.asarray(values, dtype=float))
    rng = np.random.default_rng(seed)
    found: list[int] = []
    pending = [(0, len(z))]
    while pending:
        start, end = pending.pop()
        segment = z[start:end]
        if len(segment) < 2 * min_size:
            continue
        split, q = _divergence(segment, min_size)
        step = abs(np.median(segment[split:]) - np.median(segment[:split]))
        if step <= math.log(1 + floor):
            continue
        if rounds is not None:
            before = [r for run in rounds[start:start + split] for r in run]
            after = [r for run in rounds[start + split:end] for r in run]
            c = compare(before, after, seed=seed)
            said = verdict(c.ci_low, c.ci_high, c.p_value, floor, alpha)
            if said in RUN_WORDS and machine_move is not None:  # within the machine's own move: held, as compare does
                judged = {"verdict": said, "ci_low": c.ci_low, "ci_high": c.ci_high, "paired": False}
                said = hold_machine_moved([judged], machine_move(start, start + split, end))[0][0]
            significant = said in RUN_WORDS
        else:
            beaten = sum(_divergence(rng.permutation(segment), min_size)[1] >= q for _ in range(permutations))
            significant = (beaten + 1) / (permutations + 1) < alpha
        if significant:
            found.append(start + split)
            pending += [(start, start + split), (start + split, end)]
    return sorted(found)
