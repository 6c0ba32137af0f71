"""What a sweep measures its cells with: the executor contract, and the in-process executor.

sweep.execute asks an executor for a round's outcomes and for what the machine did meanwhile;
every executor answers every question, so the sweep never asks whether it can:

    run_round(work, order_seed)  the round's (cell, outcome) pairs as they finish
    measure(cell, check)         one cell (check: its first measurement, checked against a reference)
    run_group(work, order_key)   a comparison group's members taking turns, block by block
    restart()                    a fresh process for the next round, where there is one
    ceilings(cells)              the devices' ceilings, measured where the cells will run
    drift(devices)               the drift controls, measured where the cells run
    offer_probes / settle_summary  waiting out slow spells of the cores (bench_runner.settle)
    worker_cpu_seconds()         the CPU time of the process the cells run in

The executors: InProcess (here; tests and --in-process), worker.IsolatedRunner (a worker process
per round, the default) and ray_executor.RayExecutor (Ray tasks across a cluster). `for_run`
chooses one from a run's settings.
"""

from __future__ import annotations

import itertools
import random
from typing import Iterator

from . import calibration, settle
from .cell import Cell, CellOutcome, device_unavailable, run_cell, run_group
from .defaults import TimingPolicy

# What a worker process loads: the catalogue with its plugins (named to it through the environment).
CATALOGUE_REF = "hadamard_bench.plugins:loaded_catalogue"

Work = list[tuple[Cell, bool]]  # (cell, check): check on a cell's first measurement only


class Executor:
    """The contract, with what an executor that has no worker of its own does: nothing to restart,
    no slow spells to wait out. Subclasses implement `measure` and `run_group`, or `run_round`."""

    policy: TimingPolicy = TimingPolicy()  # the run's; every executor for_run builds holds its own

    def measure(self, cell: Cell, check: bool = True) -> CellOutcome:
        raise NotImplementedError

    def run_group(self, work: Work, order_key: str) -> list[CellOutcome]:
        """The members of one comparison group taking turns (cell.run_group), in an order seeded
        by `order_key`. Without turns of its own, an executor times them one after the other."""
        return [self.measure(cell, check) for cell, check in work]

    def run_round(self, work: Work, order_seed: str | None = None) -> Iterator[tuple[Cell, CellOutcome]]:
        """(cell, outcome) for a round's cells as they finish, in the round's order. With
        `order_seed`, each comparison group's members take turns (run_group, in orders seeded by
        `order_seed` and the group); otherwise one at a time."""
        if order_seed is None:
            for cell, check in work:
                yield cell, self.measure(cell, check)
            return
        for key, members in itertools.groupby(work, key=lambda item: item[0].group()):
            members = list(members)
            if len(members) == 1:  # nothing to take turns with
                yield members[0][0], self.measure(*members[0])
            else:
                yield from zip((cell for cell, _ in members), self.run_group(members, f"{order_seed}:{key}"))

    def restart(self) -> None:
        """A fresh process for what comes next (a new round), where the executor has one."""

    def ceilings(self, cells: list[Cell]) -> tuple[dict | None, dict]:
        """(facts, ceilings): the devices' ceilings measured where the cells run, with that
        machine's facts, or None for facts when it is this machine; the run's policy says how long
        to keep trying (ceiling_window_s)."""
        return None, calibration.ceilings_here(cells, self.policy.ceiling_window_s)

    def drift(self, devices: list[str]) -> dict[str, dict[str, float]]:
        """The drift controls of the devices, measured where the cells run."""
        return {}

    def offer_probes(self, probes: list[float | None]) -> None:
        """Settling probes taken elsewhere (this machine's earlier runs), to settle against: those
        taken (settle.known), since a round that probed nothing stored None."""

    def settle_summary(self) -> dict:
        """How the round waited out slow spells of the cores (settle.Settler.summary's keys)."""
        return {}

    def worker_cpu_seconds(self) -> float:
        """CPU seconds the process the cells run in has used (0 when that is this process)."""
        return 0.0

    def close(self) -> None:
        """Stop whatever the executor started."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class InProcess(Executor):
    """Cells run in this process: for tests and debugging (a crash ends the sweep; rounds share
    the process, so they do not isolate anything)."""

    def __init__(self, catalogue, policy: TimingPolicy, clock=None):
        self.catalogue, self.policy, self.clock = catalogue, policy, clock

    def measure(self, cell: Cell, check: bool = True) -> CellOutcome:
        return run_cell(self.catalogue, cell, self.policy, self.clock, check=check)

    def run_group(self, work: Work, order_key: str) -> list[CellOutcome]:
        return run_group(self.catalogue, work, self.policy, random.Random(order_key), self.clock)

    def drift(self, devices: list[str]) -> dict[str, dict[str, float]]:
        return {d: calibration.drift_control(d) for d in devices if not device_unavailable(d)}

    def offer_probes(self, probes: list[float]) -> None:
        settle.settler().offer(probes)


def for_run(catalogue, policy: TimingPolicy, timeout_s: float, threads: int | None = None, isolate: bool = True,
            ray: dict | None = None) -> Executor:
    """The executor a run's settings ask for: Ray tasks when `ray` holds the Ray options, else a
    worker process (or, without `isolate`, this process). Raises RuntimeError when Ray cannot start."""
    if ray is not None:
        from .ray_executor import RayExecutor

        return RayExecutor(CATALOGUE_REF, policy, timeout_s, threads=threads, **ray)
    if not isolate:
        return InProcess(catalogue, policy)
    from .worker import IsolatedRunner

    return IsolatedRunner(CATALOGUE_REF, policy, timeout_s, threads=threads)
