"""Wait out the spells when a virtual machine's cores are slow to work together.

On a small cloud VM the hypervisor moves the guest's virtual CPUs between host cores now
and then. While two vCPUs sit far apart (on another core complex of an AMD EPYC, say),
every hand-off between PyTorch's threads costs more: measured on a 2-vCPU EPYC VM, a
64×256 by 256×256 float32 product on two threads took 45.5 µs, then 52.8 µs for a spell
of 12 s, then 45.5 µs again, while the same product on one thread held 81 µs on either
vCPU throughout and two single-threaded copies of it side by side did not slow each
other. Cells made of small parallel regions (small matmuls, attention, convolutions) run
15–70% slower in such a spell; streaming element-wise cells barely notice. A spell can
outlast a whole run, so rounds alone cannot average it away: it showed up as one run of
four whose bimodal_fusion cells were all 1.34× slower than in the others.

So before a CPU cell is timed on more than one thread, the worker times that small product (the
probe, a few milliseconds) and, while it reads more than TOLERANCE above the reference twice in
a row, waits and probes again, up to the policy's `settle_s` per cell and ROUND_BUDGET_S per
worker. The reference is the median probe, not the fastest: of the probes this worker took
before its cells, or of those known from before (this run's earlier rounds and its machine's
recent runs: a run that starts in a spell would otherwise take the spell as the norm), whichever
is faster. The fastest probe seen is an extreme of a noisy reading, and falls with every probe
taken: on the 2-vCPU VM on 2026-12-04, where the probe read 24-44 µs (median 31) with no spell
in sight, the fastest had fallen to 24.2 µs after four runs, 95% of probes read more than 7%
above it, and 11 of the four runs' 12 rounds waited their whole budget for a speed the cores had
only touched by chance (docs/notes/2026-12-04-settling-against-the-median-probe.md). A machine
without spells waits little; what was waited, and how many cells were timed without settling, is
stored with each round (the Runs page shows it), and the probe joins the drift controls.
"""

from __future__ import annotations

import statistics
import time
from typing import Iterable

import torch

from . import timing

PROBE_SHAPE = (64, 256, 256)  # (rows, inner, columns): small enough that thread hand-offs show
PROBE_BLOCKS, PROBE_CALLS = 10, 10  # about 5 ms on two vCPUs
TOLERANCE = 0.07  # the two states measured 16% apart; each within ±2% of itself
POLL_S = 0.25
# A worker (one round) waits at most this long in all. A spell that outlasts it leaves the rest of
# the round unsettled, and comparisons hold what it could have made (bench_runner.comparison):
# waiting longer inside a round mostly spent the quick suite's minutes on spells that went on
# anyway (the story: docs/notes/2026-11-29-slow-spells-of-the-cores.md), and timing those cells
# again after the rounds found the spell still on (docs/notes/2026-12-02-retakes-retook-nothing.md).
ROUND_BUDGET_S = 5.0


def known(probes: Iterable[float | None]) -> list[float]:
    """The probe times given that were taken: None (a round that probed nothing) and non-positive
    ones left out."""
    return [p for p in probes if isinstance(p, (int, float)) and p > 0]


def median(probes: Iterable[float | None]) -> float | None:
    """The median of the probe times given that were taken; None if none was."""
    taken = known(probes)
    return statistics.median(taken) if taken else None


def probe_s() -> float:
    """The median time of the probe product on the current thread count, in seconds."""
    rows, inner, cols = PROBE_SHAPE
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(rows, inner, generator=generator), torch.randn(inner, cols, generator=generator)
    out = torch.empty(rows, cols)
    product = lambda: torch.mm(a, b, out=out)  # noqa: E731
    product()  # the first call sizes the BLAS's buffers
    clock = timing.WallClock()
    return statistics.median(clock.time_block(product, PROBE_CALLS) / PROBE_CALLS for _ in range(PROBE_BLOCKS))


class Settler:
    """One worker's waiting: `wait` returns once the probe reads within TOLERANCE of the reference
    (`reference_s`), or the time is spent."""

    def __init__(self, earlier: Iterable[float | None] = (), budget_s: float = ROUND_BUDGET_S,
                 probe=probe_s, sleep=time.sleep):
        self.budget_s, self._probe, self._sleep = budget_s, probe, sleep
        self.earlier: list[float] = []  # probes known from before this worker's cells (offer)
        self.own: list[float] = []  # the first probe before each of this worker's cells
        self.offer(earlier)
        self.waited_s = 0.0
        self.waits = 0  # cells that waited at all
        self.unsettled = 0  # cells timed while the probe still read slow
        self.last_unsettled = False  # whether the latest cell was one of them

    def offer(self, probes: Iterable[float | None]) -> None:
        """Probes taken elsewhere: an earlier round's median, this machine's recent runs' rounds,
        this round's drift control."""
        self.earlier += known(probes)

    @property
    def reference_s(self) -> float | None:
        """The median of this worker's own probes or of the earlier ones, whichever is faster: a
        worker that starts in a spell keeps the machine's norm; one on a machine grown faster
        takes its own."""
        found = [m for m in (median(self.own), median(self.earlier)) if m is not None]
        return min(found) if found else None

    def _slow(self, probe: float) -> bool:
        reference = self.reference_s
        return reference is not None and probe > reference * (1 + TOLERANCE)

    def wait(self, max_wait_s: float) -> float:
        """Wait until the probe reads within TOLERANCE of the reference; the seconds waited. Only
        the first probe joins the worker's own: the later ones are taken because it read slow."""
        self.last_unsettled = False
        first = self._probe()
        self.own.append(first)
        # A slow first reading is taken again at once, before any wait: alone on the quiet EPYC VM
        # one probe in six read slow with no spell in sight, two in a row one in twenty-five, and a
        # spell lasts seconds. Inside runs it spared few waits (3 of 31 slow first probes quiet):
        # there slow probes mostly come in spells (docs/notes/2026-12-07-a-slow-probe-taken-again.md).
        if not self._slow(first) or not self._slow(self._probe()):
            return 0.0
        waited = 0.0
        while waited < max_wait_s and self.waited_s + waited < self.budget_s:
            self._sleep(POLL_S)
            waited += POLL_S
            if not self._slow(self._probe()):
                break
        else:
            self.unsettled += 1
            self.last_unsettled = True
        self.waits += 1
        self.waited_s += waited
        return waited

    def summary(self) -> dict[str, float | int | None]:
        """What the round stores: the median of its own probes (a later round's and run's
        reference), and what it waited."""
        return {"probe_median_s": median(self.own), "waited_s": round(self.waited_s, 3),
                "cells_waited": self.waits, "cells_unsettled": self.unsettled}


_settler: Settler | None = None


def settler() -> Settler:
    """This process's Settler (a worker serves one round, so it lives as long as the round)."""
    global _settler
    if _settler is None:
        _settler = Settler()
    return _settler


def before_timing(device: str, max_wait_s: float) -> bool:
    """Called just before a cell is timed: waits out a slow spell where it can matter. True when
    the cell is timed unsettled (the probe still read slow when the wait ran out)."""
    if device == "cpu" and max_wait_s > 0 and torch.get_num_threads() > 1:
        settler().wait(max_wait_s)
        return settler().last_unsettled
    return False


# How many of a node's latest probes the Ledger keeps. A task is handed every node's (where it
# will run is known only once it runs), so keeping them all made each task's arguments grow with
# the run: over the quick suite's 1,500 cell-rounds on one node, about 1.1 million probes handed
# out in all (n²/2), 1,499 to the last task. The median of the latest few dozen is the node's norm
# as well, and follows the node as it changes over a long run.
PROBES_KEPT = 64


class Ledger:
    """Settling across many short-lived workers (Ray tasks, one cell each): the probes each node
    showed lately, handed to the next task on that node as the earlier probes it settles against
    (a task that started without them would take its own first probe, however slow, as the norm
    and never wait), and the waits added up until the round's summary is read."""

    def __init__(self):
        self.probes: dict[str, list[float]] = {}  # node → its latest tasks' probe medians (PROBES_KEPT)
        self._round: dict = {}

    def record(self, node: str, summary: dict) -> None:
        """One task's Settler.summary()."""
        for probe in known([summary.get("probe_median_s")]):
            kept = self.probes.setdefault(node, [])
            kept.append(probe)
            del kept[:-PROBES_KEPT]
            self._round.setdefault("probes", []).append(probe)
        for key in ("waited_s", "cells_waited", "cells_unsettled"):
            self._round[key] = self._round.get(key, 0) + (summary.get(key) or 0)
        self._round.setdefault("nodes", set()).add(node)

    def round_summary(self) -> dict[str, float | int | None]:
        """What the tasks since the last call waited, as Settler.summary() says it, and the median
        of their probes when they all ran on one node (nodes differ in speed). The next round
        starts afresh."""
        done, self._round = self._round, {}
        nodes = done.pop("nodes", set())
        return {"probe_median_s": median(done.get("probes", [])) if len(nodes) == 1 else None,
                "waited_s": round(done.get("waited_s", 0.0), 3), "cells_waited": done.get("cells_waited", 0),
                "cells_unsettled": done.get("cells_unsettled", 0)}
