"""Planning a sweep from a selection, and running it into the database."""

from __future__ import annotations

import itertools
import os
import random
import socket
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from sqlalchemy.orm import Session, sessionmaker

from hadamard_bench import vocabulary
from hadamard_bench.errors import BadInput
from hadamard_impls import BACKENDS, SUITES, Catalogue
from results_db import store
from results_db.models import Run
from results_db.round_state import RoundState

from . import calibration, flops, machine, machine_state, plausibility, stats, telemetry
from .cell import DTYPES, MODES, Cell, CellOutcome, device_unavailable
from .defaults import CALM_WAIT_S, POLICIES, ROUNDS, TimingPolicy
from .executor import Executor
from .worker import allocator_setting

class SelectionError(BadInput):
    """A selection that names something the catalogue does not have."""


@dataclass(frozen=True)
class Selection:
    suite: str
    benchmarks: Sequence[str] = ()
    methods: Sequence[str] = ()
    backends: Sequence[str] = ()
    devices: Sequence[str] = ("cpu",)
    dtypes: Sequence[str] = ("float32",)
    modes: Sequence[str] = ("forward",)
    sizes: Sequence[str] = ()  # "n=67108864" or "N=4096,C=512": only the sizes that match one of them

    def as_options(self) -> dict:
        return {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_options(cls, options: dict) -> "Selection":
        """The selection a run stored (as_options), ignoring what is not a selection (a queue target)."""
        return cls(**{k: v for k, v in options.items() if k in cls.__dataclass_fields__})


def _unknown(kind: str, given: Sequence[str], known: Sequence[str]) -> None:
    bad = [g for g in given if g not in known]
    if bad:
        raise SelectionError(f"unknown {kind} {', '.join(map(repr, bad))} (known: {', '.join(known)})")


def plan(catalogue: Catalogue, sel: Selection) -> list[Cell]:
    """Every cell the selection asks for, in run order; raises SelectionError on bad names."""
    _unknown("suite", [sel.suite], SUITES)
    _unknown("benchmark", sel.benchmarks, list(catalogue.benchmarks))
    _unknown("method", sel.methods, sorted({m.id for m in catalogue.methods()}))
    _unknown("backend", sel.backends, list(BACKENDS))
    _unknown("device", sel.devices, vocabulary.DEVICES)
    _unknown("dtype", sel.dtypes, list(DTYPES))
    _unknown("mode", sel.modes, list(MODES))

    wanted = [_size_filter(text) for text in sel.sizes]
    if wanted:
        params = {p for b in catalogue.benchmarks.values() if not sel.benchmarks or b.id in sel.benchmarks
                  for p in b.params}
        _unknown("size parameter", sorted({k for w in wanted for k in w}), sorted(params))

    cells = []
    for bench in catalogue.benchmarks.values():
        if sel.benchmarks and bench.id not in sel.benchmarks:
            continue
        for method in bench.methods.values():
            if sel.methods and method.id not in sel.methods:
                continue
            for backend in method.backends:
                if sel.backends and backend not in sel.backends:
                    continue
                sizes = [s for s in bench.sizes(sel.suite)
                         if not wanted or any(w.items() <= s.items() for w in wanted)]
                for size, device, dtype, mode in itertools.product(sizes, sel.devices, sel.dtypes, sel.modes):
                    cells.append(Cell(bench.id, method.id, backend, tuple(size.items()),
                                      device, dtype, mode))
    if not cells and sel.suite == "paper":
        raise SelectionError("the paper suite holds only "
                             + ", ".join(b.id for b in catalogue.benchmarks.values() if b.sizes("paper")))
    if not cells:
        raise SelectionError("the selection matches no cell: check that the methods belong to the "
                             "benchmarks, offer the backends and have the sizes given "
                             "(see `python -m bench_runner list`)")
    return cells


def _size_filter(text: str) -> dict[str, int]:
    """`N=4096,C=512` → {"N": 4096, "C": 512}."""
    out = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip().isdigit():
            raise SelectionError(f"size filter {text!r} is not of the form NAME=INT[,NAME=INT...]")
        out[key.strip()] = int(value)
    return out


def catalogue_rows(catalogue: Catalogue) -> tuple[list[dict], list[dict]]:
    benchmarks = [dict(id=b.id, domain=b.domain, title=b.title, contract=b.contract,
                       params=list(b.params), x_param=b.x_param) for b in catalogue.benchmarks.values()]
    methods = [dict(benchmark=m.benchmark, id=m.id, role=m.role, summary=m.summary, latex=m.latex,
                    exponents=dict(m.exponents), backends=list(m.backends), cudnn=list(m.cudnn),
                    against=catalogue.benchmarks[m.benchmark].compared_with(m)) for m in catalogue.methods()]
    return benchmarks, methods


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


def new_seed() -> int:
    return random.SystemRandom().randrange(1, 2**31)


def start(session_factory: sessionmaker[Session], catalogue: Catalogue, sel: Selection,
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
        store.sync_catalogue(session, *catalogue_rows(catalogue))
        host = store.get_or_create_machine(session, facts, machine.label(facts))
        run = store.start_run(session, host, sel.suite, sel.as_options(), len(cells) * rounds, pid=os.getpid(),
                              provenance=prov, rounds=rounds, seed=seed if seed is not None else new_seed())
        return run.id


def calibrate(session_factory: sessionmaker[Session], run_id: int, cells: Sequence[Cell],
              executor: Executor | None = None) -> dict:
    """Measure each device's ceilings where the cells run (`executor.ceilings`: here, or on a Ray
    node, whose machine the run then is) and store them. A resumed run keeps the ceilings its
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
            store.set_calibration(session, run_id, ceilings)
        earlier = store.machine_calibrations(session, run_id)
    # The plausibility guard judges against the highest ceilings this machine has measured.
    return {device: plausibility.with_machine_best(own, [(run, c[device]) for run, c in earlier if device in c])
            for device, own in ceilings.items()}


def derived_metrics(m: dict, ceilings: dict | None, dtype: str) -> dict[str, float | None]:
    """Rates from a cell's counts and median: where it sits on its device's roofline."""
    seconds, flop_count, moved = m.get("time_median_s"), m.get("flops"), m.get("bytes")
    if not seconds:
        return {}
    return {
        "gflops": flop_count / seconds / 1e9 if flop_count is not None else None,
        "gbps": moved / seconds / 1e9 if moved else None,
        "intensity": flop_count / moved if moved and flop_count is not None else None,
        "roofline_fraction": (calibration.roofline_fraction(flop_count, moved, seconds, ceilings, dtype)
                              if ceilings else None),
    }


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


def round_order(cells: Sequence[Cell], seed: int, round_index: int) -> list[Cell]:
    """The cells in round `round_index`'s order: shuffled reproducibly from (seed, round), with
    the methods and backends of one benchmark, size, device, dtype and mode kept next to each
    other, so that whatever the machine does drifts over a method and its baseline alike."""
    rng = random.Random(f"{seed}:{round_index}")
    groups: dict[tuple, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.group(), []).append(cell)
    keys = list(groups)
    rng.shuffle(keys)
    order = []
    for key in keys:
        group = list(groups[key])
        rng.shuffle(group)
        order += group
    return order


def _cell_id(cell: Cell) -> tuple[str, ...]:
    key = cell.key()
    return tuple(key[c] for c in store.CELL_COLUMNS)


def execute(session_factory: sessionmaker[Session], run_id: int, cells: Sequence[Cell],
            executor: Executor, on_cell: Callable[[Cell, str], None] | None = None,
            ceilings: dict | None = None, rounds: int = 1, seed: int = 0, retakes: int = 0,
            on_retake: Callable[[Cell, bool], None] | None = None, interleave: bool = False) -> dict[str, int]:
    """Measure every cell in `rounds` rounds, committing each cell as it finishes; return the
    count per status (of each cell's first measurement). Then up to `retakes` passes retake the
    cell-rounds a slow spell left unsettled (_retake; `on_retake(cell, replaced)` after each).

    Each round starts a fresh worker (executor.restart) and runs the cells in its own
    shuffled order; a cell's first measurement checks it and counts its memory and FLOPs, later
    rounds only time it and pool their samples with the earlier ones. Cells a run already holds
    (`--resume`) are measured only in the rounds they lack. A run cancelled from the dashboard
    stops before its next cell."""
    counts: dict[str, int] = {}
    with session_factory() as session:
        stored = store.stored_cells(session, run_id)
        # A run that starts in a slow spell would take the spell's probe as the norm and never
        # wait: it settles against the fastest probe of this machine's recent runs too.
        executor.offer_probe(store.machine_probe_best(session, run_id))
    devices = sorted({c.device for c in cells if not device_unavailable(c.device)})
    spelled: dict[tuple, list[int]] = {}  # an `ok` cell's rounds timed unsettled in this process
    for round_index in range(rounds):
        todo = [c for c in round_order(cells, seed, round_index)
                if _cell_id(c) not in stored or (stored[_cell_id(c)] is not None
                                                 and round_index not in stored[_cell_id(c)])]
        if not todo:
            continue
        if cancelled(session_factory, run_id):
            break
        started = _start_round(session_factory, run_id, round_index, seed, executor, devices)
        outcomes = executor.run_round([(cell, _cell_id(cell) not in stored) for cell in todo],
                                      f"{seed}:{round_index}" if interleave else None)
        measured = 0
        for cell, outcome in outcomes:
            status = _record(session_factory, run_id, cell, outcome, round_index, rounds, ceilings, stored, spelled,
                             counts)
            measured += 1
            if on_cell:
                on_cell(cell, status)
            if cancelled(session_factory, run_id):
                outcomes.close()  # an executor with cells in flight stops them
                break
        _finish_round(session_factory, started, executor, measured)
    if retakes and spelled and not cancelled(session_factory, run_id):
        _retake(session_factory, run_id, cells, executor, spelled, devices, ceilings, rounds, seed, retakes,
                on_retake)
    return counts


def _record(session_factory: sessionmaker[Session], run_id: int, cell: Cell, outcome: CellOutcome, round_index: int,
            rounds: int, ceilings: dict | None, stored: dict, spelled: dict, counts: dict[str, int]) -> str:
    """Store one cell's round and keep the sweep's books: which rounds each cell holds, which it
    timed unsettled, and the count per status of first measurements. Returns the status to show."""
    key = _cell_id(cell)
    first = key not in stored
    with session_factory() as session, session.begin():
        status = _store_round(session, run_id, cell, outcome, round_index, rounds, (ceilings or {}).get(cell.device))
    if first:  # as stored: an `ok` outcome the guard found impossible counts as `implausible`
        counts[status] = counts.get(status, 0) + 1
        stored[key] = {round_index} if status == "ok" else None
    elif outcome.status == "ok":
        stored[key].add(round_index)
    if outcome.status == "ok" and outcome.unsettled and stored[key] is not None:
        spelled.setdefault(key, []).append(round_index)
    return status if first else outcome.status


@dataclass
class _RoundStart:
    """What a round (or a retake pass) recorded as it began, for _finish_round."""

    record_id: int
    before: dict
    sources: dict
    telemetry: dict
    drift: dict


def _start_round(session_factory: sessionmaker[Session], run_id: int, index: int, seed: int, executor: Executor,
                 devices: list[str]) -> _RoundStart:
    """A round's bookkeeping as it begins, for a round and a retake pass alike: a fresh worker,
    the machine's state and the devices' telemetry, a round record, the drift controls."""
    executor.restart()
    before = machine_state.snapshot()
    sources = {d: telemetry.source_for(d) for d in devices}
    sampled = {d: s.sample() for d, s in sources.items()}
    with session_factory() as session, session.begin():
        record_id = store.start_round(session, run_id, index, seed, os.getpid()).id
    return _RoundStart(record_id, before, sources, sampled, executor.drift(devices))


def _finish_round(session_factory: sessionmaker[Session], started: _RoundStart, executor: Executor, cells: int,
                  extra: dict | None = None, settle_keys: Sequence[str] | None = None) -> None:
    """Store what the machine did during the round: its state, the drift controls, how long the
    worker waited out slow spells of its cores (only `settle_keys` of them, if given), the
    telemetry as the round began and ended (NVML on a GPU), and `extra`."""
    machine = machine_state.state_between(started.before, machine_state.snapshot(), executor.worker_cpu_seconds())
    settle = {k: v for k, v in executor.settle_summary().items() if settle_keys is None or k in settle_keys}
    after = {d: s.sample() for d, s in started.sources.items()}
    devices = {d: {"before": started.telemetry[d], "after": after[d]} for d in started.sources}
    state = RoundState(**machine, drift=started.drift, settle=settle, **(extra or {}),
                       telemetry=devices if any(started.telemetry.values()) or any(after.values()) else None)
    with session_factory() as session, session.begin():
        store.finish_round(session, started.record_id, cells, state)


def _retake(session_factory: sessionmaker[Session], run_id: int, cells: Sequence[Cell], executor: Executor,
            spelled: dict[tuple, list[int]], devices: list[str], ceilings: dict | None, rounds: int, seed: int,
            passes: int, on_retake: Callable[[Cell, bool], None] | None) -> None:
    """Time again the cell-rounds a slow spell of the cores left unsettled (bench_runner.settle).

    A spell can outlast the few seconds a round may wait for it (on the 2-vCPU VM this project
    is developed on, one lasted two and a half minutes, across three runs of the A/A selection),
    and then the rounds measure the spell: in runs of that selection on 2026-11-29, the standard
    deviation of a cell's round medians was a median 6.5–11% of the median in runs that met a
    spell and 1.3–2.5% in those that did not, and every interval built on it widened alike. So
    after the rounds, each pass starts a fresh worker, waits up to CALM_WAIT_S for the spell to
    pass (if it has not, the cells keep what they have), and times each such cell once more, in
    a new shuffled order: a retake timed settled replaces the samples of the cell's earliest
    unsettled round (the count and the cell's provenance say so), one that is not leaves them as
    they were. As NVBench can drop the samples a GPU timed while its clocks were held down, the
    samples of a spell are taken for what they are: the machine's, not the code's. Each pass is
    stored as a round record with `retake` set."""
    for attempt in range(passes):
        due = [c for c in round_order(cells, seed, rounds + attempt) if spelled.get(_cell_id(c))]
        if not due or cancelled(session_factory, run_id):
            return
        started = _start_round(session_factory, run_id, rounds + attempt, seed, executor, devices)
        waited, calm = executor.calm(CALM_WAIT_S)
        replaced = tried = 0
        if calm:
            outcomes = executor.run_round([(cell, False) for cell in due])  # timing only, one at a time
            for cell, outcome in outcomes:
                tried += 1
                settled = outcome.status == "ok" and not outcome.unsettled
                if settled:
                    round_index = spelled[_cell_id(cell)].pop(0)
                    with session_factory() as session, session.begin():
                        _store_retake(session, run_id, cell, outcome, round_index,
                                      (ceilings or {}).get(cell.device))
                    replaced += 1
                if on_retake:
                    on_retake(cell, settled)
                if cancelled(session_factory, run_id):
                    outcomes.close()
                    break
        # The pass's best probe and waits, but not its own count: what stays unsettled is what was not retaken.
        _finish_round(session_factory, started, executor, tried,
                      {"retake": attempt + 1, "retake_calm_waited_s": waited, "retake_cells": tried, "retaken": replaced},
                      settle_keys=("probe_best_s", "waited_s"))
        if not calm:
            return


def _store_round(session: Session, run_id: int, cell: Cell, outcome: CellOutcome, round_index: int,
                 rounds: int, ceilings: dict | None) -> str:
    """Store one round of one cell; returns the cell's status after it."""
    result = store.find_result(session, run_id, cell.key())
    if result is None:  # the cell's first measurement
        samples = outcome.samples or []
        sample_rounds = [round_index] * len(samples) if samples else None
        metrics = dict(outcome.metrics)
        status, message = outcome.status, outcome.message
        if status == "ok":
            metrics.update(stats.summarize(samples, sample_rounds))
            metrics["unsettled_rounds"] = float(outcome.unsettled)
            metrics.update(derived_metrics(metrics, ceilings, cell.dtype))
            message = _implausible(cell, metrics, ceilings)
            status = "implausible" if message else status
        # A cell that is not `ok` is settled: the rounds it will not be measured in count as done.
        store.record_result(session, run_id, cell.key(), status, message, outcome.samples,
                            metrics, sample_rounds=sample_rounds, sample_cycles=_cycles(outcome),
                            progress=1 if status == "ok" else rounds - round_index, provenance=outcome.provenance)
        return status
    store.count_progress(session, run_id)
    if outcome.status != "ok":
        store.note_round_failure(result, round_index, outcome.status, outcome.message)
        return result.status
    store.add_round(session, result, list(outcome.samples or []), round_index, _cycles(outcome))
    return _restate(session, cell, result, ceilings, unsettled_change=int(outcome.unsettled))


def _cycles(outcome: CellOutcome) -> list[int] | None:
    """The cycle of each of an outcome's samples: sample i of a member that took turns comes from
    cycle i (timing.take_turns); None for one timed alone."""
    return list(range(len(outcome.samples))) if outcome.interleaved and outcome.samples else None


def _store_retake(session: Session, run_id: int, cell: Cell, outcome: CellOutcome, round_index: int,
                  ceilings: dict | None) -> str:
    """A settled retake in place of the cell's unsettled round `round_index`."""
    result = store.find_result(session, run_id, cell.key())
    store.replace_round(result, list(outcome.samples or []), round_index)
    return _restate(session, cell, result, ceilings, unsettled_change=-1)


def _restate(session: Session, cell: Cell, result, ceilings: dict | None, unsettled_change: int) -> str:
    """A stored cell's statistics again, from all the samples it now holds; returns its status."""
    metrics = stats.summarize(result.samples, result.sample_rounds)
    kept = {m.name: m.value for m in result.metrics}
    metrics["unsettled_rounds"] = max((kept.get("unsettled_rounds") or 0.0) + unsettled_change, 0.0)
    metrics.update(derived_metrics({**kept, **metrics}, ceilings, cell.dtype))
    store.set_metrics(session, result, metrics)
    message = _implausible(cell, {**kept, **metrics}, ceilings)
    if message:  # the pooled median is what is judged: a later round can make it impossible too
        store.demote(session, result, "implausible", message)
    return result.status


def _implausible(cell: Cell, metrics: dict, ceilings: dict | None) -> str | None:
    return plausibility.check(metrics, cell.device, cell.dtype, ceilings, plausibility.device_name(cell.device))
