"""Writes. Each function takes a Session; the caller owns the transaction.

The runner commits once per finished cell, so a crash loses at most the cell
in flight.
"""

from __future__ import annotations

import hashlib
import json
from typing import Iterable, Mapping

from sqlalchemy import and_, case, delete, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hadamard_bench.vocabulary import CELL_KEY, MARK_KINDS

from .models import (Agent, BenchmarkInfo, HistoryPoint, LatestResult, Machine, Mark, Metric, MethodInfo,
                     NoiseFloor, Result, RoundRecord, Run, utcnow)
from .round_state import RoundState

MACHINE_FIELDS = ("hostname", "cpu_model", "cpu_cores", "memory_gib", "torch_version", "cuda_version",
                  "gpu_name", "driver_version", "os", "python_version")
OPTIONAL_MACHINE_FIELDS = ("memory_gib", "cuda_version", "gpu_name", "driver_version")


def fingerprint_of(facts: Mapping[str, object]) -> str:
    """The hardware a history stays on: CPU model, core count, memory size, GPU model and the
    driver's major version. The hostname is left out, so two identical nodes share a history;
    software versions are left out too, so a torch upgrade shows as a step in a history (with
    an annotation) instead of starting a new one. Migration 0005 holds a frozen copy."""
    driver = facts.get("driver_version")
    values = {"cpu_model": facts.get("cpu_model"), "cpu_cores": facts.get("cpu_cores"),
              "memory_gib": facts.get("memory_gib"), "gpu_name": facts.get("gpu_name"),
              "driver_major": str(driver).split(".")[0] if driver else None}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def _insert(executor, model):
    """An INSERT that takes ON CONFLICT clauses, in the executor's (a Session's or a Connection's)
    dialect: PostgreSQL's or SQLite's."""
    dialect = executor.dialect if hasattr(executor, "dialect") else executor.get_bind().dialect
    return (postgresql.insert if dialect.name == "postgresql" else sqlite.insert)(model)


def _upsert(session: Session, model, rows: list[dict], keys: list[str], update_rest: bool,
            keep: tuple[str, ...] = ()) -> None:
    """INSERT … ON CONFLICT in one statement: runners that start together race between a
    SELECT and an INSERT (a select-then-insert, as session.merge does, failed on a UNIQUE
    constraint with three runners on one file)."""
    if not rows:
        return
    statement = _insert(session, model).values(rows)
    if update_rest:
        statement = statement.on_conflict_do_update(
            index_elements=keys, set_={c: statement.excluded[c] for c in rows[0] if c not in keys + list(keep)})
    else:
        statement = statement.on_conflict_do_nothing(index_elements=keys)
    session.execute(statement)


def get_or_create_machine(session: Session, facts: Mapping[str, object], label: str) -> Machine:
    row = {"key": facts["key"], "label": label, "fingerprint": fingerprint_of(facts),
           **{f: facts.get(f) for f in MACHINE_FIELDS}}
    _upsert(session, Machine, [row], ["key"], update_rest=False)
    return session.scalar(select(Machine).where(Machine.key == facts["key"]))


def sync_catalogue(session: Session, benchmarks: Iterable[Mapping], methods: Iterable[Mapping]) -> None:
    """Make the stored catalogue match the code's, so the dashboard needs no torch import."""
    _upsert(session, BenchmarkInfo, [dict(b) for b in benchmarks], ["id"], update_rest=True)
    _upsert(session, MethodInfo, [dict(m) for m in methods], ["benchmark", "id"], update_rest=True)


def start_run(session: Session, machine: Machine, suite: str, options: Mapping,
              cells_total: int, pid: int | None = None, provenance: Mapping | None = None,
              rounds: int = 1, seed: int | None = None) -> Run:
    run = Run(machine=machine, suite=suite, options=dict(options), cells_total=cells_total,
              status="queued", pid=pid, provenance=dict(provenance or {}), rounds=rounds, seed=seed)
    session.add(run)
    session.flush()
    return run


UNPAIRED = -1  # the cycle of a sample that was not timed beside its group (Result.sample_cycles)


def record_result(session: Session, run_id: int, cell: Mapping[str, str], status: str,
                  message: str | None = None, samples: list[float] | None = None,
                  metrics: Mapping[str, float | None] | None = None, sample_rounds: list[int] | None = None,
                  progress: int = 1, provenance: Mapping | None = None,
                  sample_cycles: list[int] | None = None) -> Result:
    """Store one cell and count `progress` cell-rounds towards its run's progress."""
    result = Result(run_id=run_id, status=status, message=message, samples=samples,
                    sample_rounds=sample_rounds, sample_cycles=sample_cycles,
                    provenance=dict(provenance) if provenance else None, **cell)
    result.metrics = [Metric(name=k, value=float(v)) for k, v in (metrics or {}).items() if v is not None]
    session.add(result)
    count_progress(session, run_id, progress)
    if status == "ok":
        session.flush()  # its id, for the latest-result table
        keep_latest(session, Result.id == result.id)
    return result


def count_progress(session: Session, run_id: int, cell_rounds: int = 1) -> None:
    session.execute(update(Run).where(Run.id == run_id).values(cells_done=Run.cells_done + cell_rounds))


def find_result(session: Session, run_id: int, cell: Mapping[str, str]) -> Result | None:
    return session.scalar(select(Result).where(Result.run_id == run_id,
                                               *(getattr(Result, c) == cell[c] for c in CELL_COLUMNS)))


def add_round(session: Session, result: Result, samples: list[float], round_index: int,
              cycles: list[int] | None = None) -> None:
    """Another round's samples for a stored cell (a result stored without round labels held one
    round, round 0), with their cycles when the round was timed interleaved; the caller
    recomputes its metrics with set_metrics."""
    before = list(result.sample_rounds or [0] * len(result.samples or []))
    if result.sample_cycles is not None or cycles is not None:
        result.sample_cycles = (list(result.sample_cycles or [UNPAIRED] * len(before))
                                + list(cycles if cycles is not None else [UNPAIRED] * len(samples)))
    result.samples = list(result.samples or []) + list(samples)
    result.sample_rounds = before + [round_index] * len(samples)


def set_metrics(session: Session, result: Result, metrics: Mapping[str, float | None]) -> None:
    """Replace (or add) the named metrics of a result; a None value removes one."""
    kept = {m.name: m for m in result.metrics}
    for name, value in metrics.items():
        if value is None:
            if name in kept:
                result.metrics.remove(kept[name])
        elif name in kept:
            kept[name].value = float(value)
        else:
            result.metrics.append(Metric(name=name, value=float(value)))


def demote(session: Session, result: Result, status: str, message: str | None) -> None:
    """An `ok` result that a later round showed not to be (`implausible`): its cell's latest
    result on its machine falls back to the one before it, if any."""
    result.status, result.message = status, message
    session.flush()
    session.execute(delete(LatestResult).where(LatestResult.result_id == result.id))
    machine_id = session.scalar(select(Run.machine_id).where(Run.id == result.run_id))
    keep_latest(session, Run.machine_id == machine_id, *(getattr(Result, c) == getattr(result, c) for c in CELL_COLUMNS))


def _tf32_variant():
    """The SQL expression of LatestResult.variant: a float32 GPU cell's TF32 switches as it
    recorded them, else as its run recorded them (results stored before migration 0006), else
    the run's defaults; empty for every other cell."""
    recorded = literal("cell ") + Result.provenance["tf32"].as_string()
    of_run = literal("run ") + Run.provenance["tf32"].as_string()
    return case((and_(Result.device == "cuda", Result.dtype == "float32"),
                 func.coalesce(recorded, of_run, literal("run defaults"))), else_=literal(""))


def keep_latest(executor, *where, plain_only: bool = True) -> None:
    """Point LatestResult at the newest `ok` result of each cell and machine among the results
    of plain runs (`Run.plain`: an `ab` side's results are its session's) that match `where` (all
    of them when none is given: migrations 0007 and 0012 fill the table so), unless a newer one is
    there already. One INSERT … SELECT … ON CONFLICT, on a Session or a
    Connection; the caller commits. `plain_only=False` for migration 0007 alone: before schema
    0008 a run could not be a side, nor say that it is not one."""
    variant = _tf32_variant().label("variant")
    keys = ["machine_id", *CELL_COLUMNS, "variant"]
    newest = (select(Run.machine_id, *(getattr(Result, c) for c in CELL_COLUMNS), variant,
                     func.max(Result.id).label("result_id"))
              .join(Run, Result.run_id == Run.id)
              # A WHERE SQLite needs before ON CONFLICT anyway.
              .where(Result.status == "ok", *((Run.plain,) if plain_only else ()), *where)
              .group_by(Run.machine_id, *(getattr(Result, c) for c in CELL_COLUMNS), variant))
    statement = _insert(executor, LatestResult).from_select([*keys, "result_id"], newest)
    statement = statement.on_conflict_do_update(
        index_elements=keys, set_={"result_id": statement.excluded.result_id},
        where=LatestResult.result_id < statement.excluded.result_id)
    executor.execute(statement)


def note_round_failure(session: Session, result: Result, round_index: int, status: str, message: str | None) -> None:
    """A later round of an `ok` cell that failed: the cell keeps its other rounds, the message says
    why and the metric `failed_rounds` counts them, so that a comparison can name a cell that
    crashed, ran out of memory or timed out only now and then (queries.failures_frame)."""
    note = f"round {round_index + 1}: {status}" + (f" ({message})" if message else "")
    result.message = "; ".join(filter(None, [result.message, note]))[:2000]
    failed = next((m.value for m in result.metrics if m.name == "failed_rounds"), 0.0)
    set_metrics(session, result, {"failed_rounds": failed + 1})


def start_round(session: Session, run_id: int, round_index: int, seed: int, pid: int | None) -> RoundRecord:
    record = RoundRecord(run_id=run_id, round=round_index, seed=seed, pid=pid, cells=0, state={})
    session.add(record)
    session.flush()
    return record


def note_round_drift(session: Session, round_id: int, drift: Mapping) -> None:
    """A round's drift controls, kept as soon as they are timed at its start: a round stopped
    midway (a kill, Ctrl-C) stores no end, and would otherwise lose them. finish_round's state
    holds them again."""
    session.execute(update(RoundRecord).where(RoundRecord.id == round_id)
                    .values(state=RoundState(drift=dict(drift)).to_json()))


def finish_round(session: Session, round_id: int, cells: int, state: RoundState) -> None:
    session.execute(update(RoundRecord).where(RoundRecord.id == round_id)
                    .values(cells=cells, state=state.to_json(), finished_at=utcnow()))


def round_seconds(session: Session, run_id: int) -> list[tuple[int, float]]:
    """(round, seconds) of each part of a round the run finished, in the order they ran; a part
    stopped midway stored no end and is left out."""
    rows = session.execute(select(RoundRecord.round, RoundRecord.started_at, RoundRecord.finished_at)
                           .where(RoundRecord.run_id == run_id, RoundRecord.finished_at.is_not(None))
                           .order_by(RoundRecord.id))
    return [(index, (finished - started).total_seconds()) for index, started, finished in rows]


def set_calibration(session: Session, run_id: int, calibration: Mapping) -> None:
    session.execute(update(Run).where(Run.id == run_id).values(calibration=dict(calibration)))


def note_resumed_calibration(session: Session, run_id: int, ceilings: Mapping) -> None:
    """Keep the ceilings measured as a run was resumed beside its first ones, which stay its own."""
    run = session.get(Run, run_id)
    earlier = list((run.provenance or {}).get("resumed_calibrations", []))
    run.provenance = {**(run.provenance or {}),
                      "resumed_calibrations": [*earlier, {"at": utcnow().isoformat(), "ceilings": dict(ceilings)}]}


def note_compiled_ahead(session: Session, run_id: int, done: Mapping) -> None:
    """Keep with a run how its compiled cells were built before its first round
    (bench_runner.precompile): their first calls then read Inductor's cache."""
    run = session.get(Run, run_id)
    run.provenance = {**(run.provenance or {}), "compiled_ahead": dict(done)}


def run_calibration(session: Session, run_id: int) -> dict:
    return dict(session.scalar(select(Run.calibration).where(Run.id == run_id)) or {})


def machine_calibrations(session: Session, run_id: int) -> list[tuple[int, dict]]:
    """(run id, calibration) of the other runs on this run's machine (same fingerprint), oldest first."""
    machine_id = select(Run.machine_id).where(Run.id == run_id).scalar_subquery()
    rows = session.execute(select(Run.id, Run.calibration).where(Run.machine_id == machine_id, Run.id != run_id)
                           .order_by(Run.id))
    return [(run, dict(calibration)) for run, calibration in rows if calibration]


def machine_probes(session: Session, run_id: int, recent: int = 10) -> list[float | None]:
    """The settling probes (bench_runner.settle) of this machine's `recent` latest other plain runs
    on the same thread count (an `ab` side keeps no round states, and may run another thread count
    than its run records), from their rounds' states: each round's drift control and the median of
    its probes, None where a round kept none (the executors keep the probes taken: settle.known).
    Rounds stored before 2026-12-05 kept only their fastest probe, which is left out: the fastest
    of many noisy probes is lower than the cores run."""
    run = session.get(Run, run_id)
    threads = (run.provenance or {}).get("threads")
    earlier = session.execute(select(Run.id, Run.provenance).where(Run.machine_id == run.machine_id, Run.id != run_id,
                                                                   Run.plain).order_by(Run.id.desc()))
    runs = [r for r, provenance in earlier if (provenance or {}).get("threads") == threads][:recent]
    probes = []
    for stored in session.scalars(select(RoundRecord.state).where(RoundRecord.run_id.in_(runs))):
        state = RoundState.from_json(stored)
        probes += [state.settle.get("probe_median_s"), (state.drift.get("cpu") or {}).get("probe_s")]
    return probes


def finish_run(session: Session, run_id: int, status: str = "finished", message: str | None = None) -> None:
    session.execute(update(Run).where(Run.id == run_id)
                    .values(status=status, message=message, finished_at=utcnow()))


def run_status(session: Session, run_id: int) -> str | None:
    return session.scalar(select(Run.status).where(Run.id == run_id))


def set_status(session: Session, run_id: int, status: str) -> None:
    session.execute(update(Run).where(Run.id == run_id).values(status=status))


def request_cancel(session: Session, run_id: int) -> bool:
    """Ask a queued or running run to stop after its current cell; False if it is not active."""
    done = session.execute(update(Run).where(Run.id == run_id, Run.status.in_(["queued", "running"]))
                           .values(status="cancelling"))
    return done.rowcount > 0


def runs_ahead(session: Session, run_id: int) -> list[Run]:
    """Active runs on the same machine that started before `run_id`: it waits for them."""
    mine = session.get(Run, run_id)
    return list(session.scalars(select(Run).where(
        Run.machine_id == mine.machine_id, Run.id < run_id,
        Run.status.in_(["queued", "running", "cancelling"]))))


CELL_COLUMNS = CELL_KEY


def stored_cells(session: Session, run_id: int) -> dict[tuple[str, ...], set[int] | None]:
    """The cells a run has stored, as (benchmark, method, backend, device, dtype, mode, size) →
    the rounds it holds samples of; None for a cell that is settled (not `ok`: later rounds
    do not measure it)."""
    columns = [getattr(Result, c) for c in CELL_COLUMNS]
    rows = session.execute(select(*columns, Result.status, Result.samples, Result.sample_rounds)
                           .where(Result.run_id == run_id))
    out = {}
    for row in rows:
        *key, status, samples, sample_rounds = row
        if status != "ok":
            out[tuple(key)] = None
        else:
            out[tuple(key)] = set(sample_rounds) if sample_rounds is not None else ({0} if samples else set())
    return out


def reopen_run(session: Session, run_id: int, pid: int) -> None:
    """An interrupted run taken up again by a new process: queued until its turn."""
    session.execute(update(Run).where(Run.id == run_id)
                    .values(status="queued", pid=pid, message=None, finished_at=None))


# --- the queue of runs for agents (remote runners) -------------------------------------------

def _queue_key(label: str) -> str:
    return f"queue:{label}"[:64]


def queue_machine(session: Session, label: str) -> Machine:
    """The stand-in machine a run queued for agent `label` belongs to until an agent claims it
    (a run always has a machine; the claiming agent puts its own in its place)."""
    facts = {"key": _queue_key(label), "hostname": label, "cpu_model": "(an agent's machine, not yet known)",
             "cpu_cores": 0, "torch_version": "-", "cuda_version": None, "gpu_name": None, "os": "-",
             "python_version": "-"}
    return get_or_create_machine(session, facts, f"{label} (queued for an agent)")


def submit_run(session: Session, label: str, suite: str, options: Mapping, cells_total: int,
               rounds: int = 1, seed: int | None = None) -> Run:
    """A run queued for the agents labelled `label`."""
    return start_run(session, queue_machine(session, label), suite, {**options, "target": label}, cells_total,
                     rounds=rounds, seed=seed)


def claim_run(session: Session, label: str, machine: Machine, pid: int) -> Run | None:
    """The oldest run queued for `label`, now this agent's; None when there is none.

    On PostgreSQL the candidate is read FOR UPDATE SKIP LOCKED, so agents polling together
    each get a different run without waiting on one another; on every database the claim is
    an UPDATE that only succeeds while the run is still the queue's, so no run is taken twice."""
    # Read, not get-or-create: an idle agent polls every few seconds and should write nothing.
    placeholder = session.scalar(select(Machine.id).where(Machine.key == _queue_key(label)))
    if placeholder is None:  # nothing was ever queued for this label
        return None
    query = (select(Run.id).where(Run.status == "queued", Run.machine_id == placeholder)
             .order_by(Run.id).limit(1))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    run_id = session.scalar(query)
    if run_id is None:
        return None
    taken = session.execute(update(Run).where(Run.id == run_id, Run.machine_id == placeholder,
                                              Run.status == "queued")
                            .values(machine_id=machine.id, pid=pid))
    return session.get(Run, run_id) if taken.rowcount == 1 else None


def heartbeat(session: Session, label: str, hostname: str, machine_id: int | None, pid: int, status: str,
              run_id: int | None = None, starting: bool = False) -> None:
    """The agent `label` is alive now, doing `status` (idle, running, stopped)."""
    now = utcnow()
    row = {"label": label, "hostname": hostname, "machine_id": machine_id, "pid": pid, "status": status,
           "run_id": run_id, "last_seen": now, "started_at": now}
    _upsert(session, Agent, [row], ["label"], update_rest=True, keep=() if starting else ("started_at",))


def write_history_points(session: Session, points: list[dict]) -> None:
    """Store (or replace) cached history points: dicts of HistoryPoint's columns. One statement
    executed for every point: a cold refresh writes hundreds of thousands, and a statement of
    many VALUES rows is compiled anew for each batch (seconds at that count)."""
    if not points:
        return
    statement = _insert(session, HistoryPoint.__table__)
    statement = statement.on_conflict_do_update(
        index_elements=["result_id"], set_={c: statement.excluded[c] for c in points[0] if c != "result_id"})
    session.connection().execute(statement, points)


def write_noise_floors(session: Session, fingerprint: str, floors: Iterable[Mapping], run_ids: list[int]) -> int:
    """Store (or replace) a fingerprint's measured noise floors: one {cell key…, drift} per cell,
    measured from `run_ids`. Returns how many were written."""
    now = utcnow()
    rows = [{"fingerprint": fingerprint, **{c: f[c] for c in CELL_KEY}, "drift": float(f["drift"]),
             "run_ids": list(run_ids), "measured_at": now} for f in floors]
    for start in range(0, len(rows), 500):  # bounded statements on SQLite's variable limit
        _upsert(session, NoiseFloor, rows[start:start + 500], ["fingerprint", *CELL_KEY], update_rest=True)
    return len(rows)


def add_mark(session: Session, run_id: int, kind: str, note: str = "", cells: Mapping[str, str] | None = None) -> Mark:
    if kind not in MARK_KINDS:
        raise ValueError(f"a mark is one of {', '.join(MARK_KINDS)}, not {kind!r}")
    mark = Mark(run_id=run_id, kind=kind, note=note, cells=dict(cells or {}))
    session.add(mark)
    session.flush()
    return mark
