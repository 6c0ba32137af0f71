"""Running a planned run's cells into the database: the run's record, its ceilings, its rounds
through an executor (bench_runner.executor), and each round's bookkeeping.
What a run measures is bench_runner.selection's; how each outcome is stored, bench_runner.record's."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from sqlalchemy.orm import Session, sessionmaker

from hadamard_impls import Catalogue
from results_db import store
from results_db.models import Run
from results_db.round_state import RoundState

from . import flops, machine, machine_state, plausibility, record, selection, telemetry
from .cell import Cell, CellOutcome, device_unavailable
from .defaults import POLICIES, ROUNDS, TimingPolicy
from .executor import Executor
from .worker import allocator_setting


def provenance_for(policy: TimingPolicy) -> dict:
    """How this process measures: what a run records about the numbers it stores."""
    return machine.provenance(
        threads=torch.get_num_threads(),
        allocator=allocator_setting(),
        timing={"cpu": "time.perf_counter around blocks of calls",
                "cuda": "CUDA events after synchronize" + (", L2 flushed before each call" if policy.flush_l2 else
                                                           ", L2 kept warm"),
                "policy": {k: v for k, v in policy.__dict__.items()}},
        flop_convention=flops.CONVENTION,
    )


def start(session_factory: sessionmaker[Session], catalogue: Catalogue, sel: selection.Selection,
          cells: Sequence[Cell], policy: TimingPolicy | None = None, rounds: int | None = None,
          seed: int | None = None, busy: Sequence[str] = ()) -> int:
    """Record the machine, the catalogue and a new run; return the run's id. `busy`: why the
    machine looked busy as the run started, kept with its provenance."""
    facts = machine.facts()
    prov = provenance_for(policy or POLICIES[sel.suite])
    if busy:
        prov["busy_at_start"] = list(busy)
    rounds = rounds or ROUNDS[sel.suite]
    with session_factory() as session, session.begin():
        store.sync_catalogue(session, *selection.catalogue_rows(catalogue))
        host = store.get_or_create_machine(session, facts, machine.label(facts))
        run = store.start_run(session, host, sel.suite, sel.as_options(), len(cells) * rounds, pid=os.getpid(),
                              provenance=prov, rounds=rounds, seed=seed if seed is not None else selection.new_seed())
        return run.id


def calibrate(session_factory: sessionmaker[Session], run_id: int, cells: Sequence[Cell],
              executor: Executor | None = None, shared_with: Sequence[int] = ()) -> dict:
    """Measure each device's ceilings where the cells run (`executor.ceilings`: here, or on a Ray
    node, whose machine the run then is) and store them, on the runs of `shared_with` too (the
    other side of an `ab` session: the two shared the machine). A resumed run keeps the ceilings its
    first cells were placed under, so every cell's roofline fraction is against the same ones;
    what the machine measured at the resume is kept apart, in the run's provenance
    (`resumed_calibrations`), for a reader to see how far it moved. Returns the run's ceilings,
    each device's with the plausibility guard's (the highest this machine has measured) beside them."""
    facts, ceilings = (executor or Executor()).ceilings(list(cells))
    with session_factory() as session, session.begin():
        if facts is not None:
            run = session.get(Run, run_id)
            run.machine = store.get_or_create_machine(session, facts, machine.label(facts))
        kept = store.run_calibration(session, run_id)
        if kept:
            store.note_resumed_calibration(session, run_id, ceilings)
            ceilings = kept
        else:
            for run in (run_id, *shared_with):
                store.set_calibration(session, run, ceilings)
        earlier = store.machine_calibrations(session, run_id)
    # The plausibility guard judges against the highest ceilings this machine has measured.
    return {device: plausibility.with_machine_best(own, [(run, c[device]) for run, c in earlier if device in c])
            for device, own in ceilings.items()}


def cancelled(session_factory: sessionmaker[Session], run_id: int) -> bool:
    with session_factory() as session:
        return store.run_status(session, run_id) == "cancelling"


def wait_for_turn(session_factory: sessionmaker[Session], run_id: int, poll_s: float = 2.0,
                  on_wait: Callable[[list[int]], None] | None = None) -> None:
    """Queue behind earlier runs on this machine (two sweeps at once would time each other),
    skipping those whose process is gone; then mark this run as running."""
    while True:
        with session_factory() as session, session.begin():
            ahead = [r.id for r in store.runs_ahead(session, run_id) if _alive(r, session)]
            if not ahead:
                store.set_status(session, run_id, "running")
                return
        if on_wait:
            on_wait(ahead)
        time.sleep(poll_s)


def process_alive(run) -> bool:
    """Whether a run's process still exists (a run started on another host is trusted)."""
    if run.pid is None or run.machine.hostname != socket.gethostname():
        return True
    try:
        os.kill(run.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _alive(run, session: Session) -> bool:
    """Whether an active run's process still exists; a dead one is marked interrupted."""
    if process_alive(run):
        return True
    store.finish_run(session, run.id, "interrupted", "its process ended without finishing the run")
    return False


def _cell_id(cell: Cell) -> tuple[str, ...]:
    key = cell.key()
    return tuple(key[c] for c in store.CELL_COLUMNS)


def execute(session_factory: sessionmaker[Session], run_id: int, cells: Sequence[Cell],
            executor: Executor, on_cell: Callable[[Cell, str, int], None] | None = None,
            ceilings: dict | None = None, rounds: int = 1, seed: int = 0,
            interleave: bool = False, more_rounds: int = 0,
            on_more: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Measure every cell in `rounds` rounds, committing each cell as it finishes; return the
    count per status (of each cell's first measurement).

    Each round starts a fresh worker (executor.restart) and runs the cells in its own
    shuffled order; a cell's first measurement checks it and counts its memory and FLOPs, later
    rounds only time it and pool their samples with the earlier ones. Cells a run already holds
    (`--resume`) are measured only in the rounds they lack. A run cancelled from the dashboard
    stops before its next cell. `on_cell(cell, status, cell_rounds)` as each is stored:
    `cell_rounds` of the run's total it settled, as the store counts them (one; or, for a cell not
    `ok` at its first measurement, this round and every later one it will not be measured in).

    Then up to `more_rounds` rounds more, each of the methods whose speed-up over their baseline is
    still inconclusive and of those baselines (undecided), judged again after each, while they fit
    in MORE_ROUNDS_SHARE of the time the run's rounds took (the first always, each next one if
    it takes as long as the last; a resumed run counts the rounds it stored before as well);
    `on_more(round, cells)` as each begins. They count toward no progress: the run's total stays
    its rounds'."""
    counts: dict[str, int] = {}
    with session_factory() as session:
        stored = store.stored_cells(session, run_id)
        # A run that starts in a slow spell would take the spell's probe as the norm and never
        # wait: it settles against the probes of this machine's recent runs too.
        executor.offer_probes(store.machine_probes(session, run_id))
        seconds = _seconds_taken(store.round_seconds(session, run_id), rounds)
    devices = sorted({c.device for c in cells if not device_unavailable(c.device)})
    for round_index in range(rounds + more_rounds):
        if round_index >= rounds:
            if seconds["more"] + seconds["last"] > MORE_ROUNDS_SHARE * seconds["rounds"]:
                break  # before judging the run again: a round more that cannot fit needs no judgement
            cells = undecided(session_factory, run_id, cells)
            if not cells:
                break
        began = _now()
        todo = [c for c in selection.round_order(cells, seed, round_index)
                if _cell_id(c) not in stored or (stored[_cell_id(c)] is not None
                                                 and round_index not in stored[_cell_id(c)])]
        if not todo:
            continue
        if round_index >= rounds and on_more:  # not for one a resumed run had finished
            on_more(round_index, len(todo))
        if cancelled(session_factory, run_id):
            break
        started = _start_round(session_factory, run_id, round_index, seed, executor, devices)
        outcomes = executor.run_round([(cell, _cell_id(cell) not in stored) for cell in todo],
                                      f"{seed}:{round_index}" if interleave else None)
        measured = 0
        for cell, outcome in outcomes:
            first = _cell_id(cell) not in stored
            status = _store_outcome(session_factory, run_id, cell, outcome, round_index, rounds, ceilings, stored,
                                    counts)
            measured += 1
            if on_cell:  # a round more counts one: the bar's total grew by its cells (on_more)
                on_cell(cell, status, max(1, record.rounds_settled(first, status, round_index, rounds)))
            if cancelled(session_factory, run_id):
                outcomes.close()  # an executor with cells in flight stops them
                break
        _finish_round(session_factory, started, executor, measured)
        took = _now() - began
        if round_index < rounds:
            seconds["rounds"] += took
        else:
            seconds["more"], seconds["last"] = seconds["more"] + took, took
    return counts


# Rounds more take at most this share of the time a run's own rounds took: beside a neighbour a third
# of the quick suite's speed-ups were undecided, and two rounds more took its cold run past eight
# minutes (docs/measurement.md).
MORE_ROUNDS_SHARE = 0.2
_now = time.monotonic  # the clock the share is kept by (a test's own)


def _seconds_taken(taken: Sequence[tuple[int, float]], rounds: int) -> dict[str, float]:
    """What the share of rounds more is kept by, from the (round, seconds) a run stored: its own
    rounds' time, its rounds more's, and its latest round more's. From the store, not the process's
    clock, so that a resumed run spends the share a run that never stopped would: resumed after its
    rounds, it would otherwise hold none of their time, and count none of the rounds more before."""
    more: dict[int, float] = {}
    seconds = {"rounds": 0.0, "more": 0.0, "last": 0.0}
    for index, took in taken:
        if index < rounds:
            seconds["rounds"] += took
        else:
            more[index] = more.get(index, 0.0) + took
    if more:
        seconds["more"], seconds["last"] = sum(more.values()), more[max(more)]
    return seconds


def undecided(session_factory: sessionmaker[Session], run_id: int, cells: Sequence[Cell]) -> list[Cell]:
    """The cells of `cells` whose speed-up over their baseline, or their baseline's, is still
    inconclusive, judged from what the run has stored as the exports judge it (bench_runner.speedups),
    but without holding a cell a slow spell may have touched: more rounds would not clear that hold."""
    from results_db import queries

    from . import speedups

    with session_factory() as session:
        found = speedups.undecided(speedups.judged(session, queries.results_frame(session, run_id=run_id)))
    return [c for c in cells if _cell_id(c) in found]


def _store_outcome(session_factory: sessionmaker[Session], run_id: int, cell: Cell, outcome: CellOutcome,
                   round_index: int, rounds: int, ceilings: dict | None, stored: dict,
                   counts: dict[str, int]) -> str:
    """Store one cell's round and keep the sweep's books: which rounds each cell holds, and the
    count per status of first measurements. Returns the status to show."""
    key = _cell_id(cell)
    first = key not in stored
    with session_factory() as session, session.begin():
        status = record.store_round(session, run_id, cell, outcome, round_index, rounds,
                                    (ceilings or {}).get(cell.device))
    if first:  # as stored: an `ok` outcome the guard found impossible counts as `implausible`
        counts[status] = counts.get(status, 0) + 1
        stored[key] = {round_index} if status == "ok" else None
    elif outcome.status == "ok":
        stored[key].add(round_index)
    return status if first else outcome.status


@dataclass
class RoundWatch:
    """What the machine was doing as a round began, to be set against its end: the CPUs' counters
    (machine_state) and each device's telemetry (NVML on a GPU). A plain run's rounds and an `ab`
    session's keep the same record of the machine this way."""

    before: dict
    sources: dict
    telemetry: dict

    @classmethod
    def begin(cls, devices: Sequence[str]) -> RoundWatch:
        sources = {d: telemetry.source_for(d) for d in devices}
        return cls(machine_state.snapshot(), sources, {d: s.sample() for d, s in sources.items()})

    def state(self, own_cpu_s: float, **measured) -> RoundState:
        """The round's RoundState, from its beginning to now. `own_cpu_s`: the CPU seconds of the
        processes that timed it, which are not other processes' load; `measured`: what the timing
        itself reported (drift controls, the settle summary)."""
        machine = machine_state.state_between(self.before, machine_state.snapshot(), own_cpu_s)
        after = {d: s.sample() for d, s in self.sources.items()}
        devices = {d: {"before": self.telemetry[d], "after": after[d]} for d in self.sources}
        return RoundState(**machine, **measured,
                          telemetry=devices if any(self.telemetry.values()) or any(after.values()) else None)


@dataclass
class _RoundStart:
    """What a round recorded as it began, for _finish_round."""

    record_id: int
    watch: RoundWatch
    drift: dict


def _start_round(session_factory: sessionmaker[Session], run_id: int, index: int, seed: int, executor: Executor,
                 devices: list[str]) -> _RoundStart:
    """A round's bookkeeping as it begins: a fresh worker, the machine's state and the devices' telemetry, a round record, the drift controls."""
    executor.restart()
    watch = RoundWatch.begin(devices)
    with session_factory() as session, session.begin():
        record_id = store.start_round(session, run_id, index, seed, os.getpid()).id
    drift = executor.drift(devices)
    with session_factory() as session, session.begin():
        store.note_round_drift(session, record_id, drift)
    return _RoundStart(record_id, watch, drift)


def _finish_round(session_factory: sessionmaker[Session], started: _RoundStart, executor: Executor,
                  cells: int) -> None:
    """Store what the machine did during the round: its state, the drift controls, how long the
    worker waited out slow spells of its cores, and the telemetry as the round began and ended."""
    state = started.watch.state(executor.worker_cpu_seconds(), drift=started.drift,
                                settle=executor.settle_summary())
    with session_factory() as session, session.begin():
        store.finish_round(session, started.record_id, cells, state)
