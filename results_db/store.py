"""Writes. Each function takes a Session; the caller owns the transaction.

The runner commits once per finished cell, so a crash loses at most the cell
in flight.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .models import BenchmarkInfo, Machine, Metric, MethodInfo, Result, Run, utcnow

MACHINE_FIELDS = ("hostname", "cpu_model", "cpu_cores", "torch_version", "cuda_version",
                  "gpu_name", "os", "python_version")


def _upsert(session: Session, model, rows: list[dict], keys: list[str], update_rest: bool) -> None:
    """INSERT … ON CONFLICT in one statement: runners that start together race between a
    SELECT and an INSERT (a select-then-insert, as session.merge does, failed on a UNIQUE
    constraint with three runners on one file)."""
    if not rows:
        return
    insert = (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(model)
    statement = insert.values(rows)
    if update_rest:
        statement = statement.on_conflict_do_update(
            index_elements=keys, set_={c: statement.excluded[c] for c in rows[0] if c not in keys})
    else:
        statement = statement.on_conflict_do_nothing(index_elements=keys)
    session.execute(statement)


def get_or_create_machine(session: Session, facts: Mapping[str, object], label: str) -> Machine:
    row = {"key": facts["key"], "label": label, **{f: facts.get(f) for f in MACHINE_FIELDS}}
    _upsert(session, Machine, [row], ["key"], update_rest=False)
    return session.scalar(select(Machine).where(Machine.key == facts["key"]))


def sync_catalogue(session: Session, benchmarks: Iterable[Mapping], methods: Iterable[Mapping]) -> None:
    """Make the stored catalogue match the code's, so the dashboard needs no torch import."""
    _upsert(session, BenchmarkInfo, [dict(b) for b in benchmarks], ["id"], update_rest=True)
    _upsert(session, MethodInfo, [dict(m) for m in methods], ["benchmark", "id"], update_rest=True)


def start_run(session: Session, machine: Machine, suite: str, options: Mapping,
              cells_total: int, pid: int | None = None, provenance: Mapping | None = None) -> Run:
    run = Run(machine=machine, suite=suite, options=dict(options), cells_total=cells_total,
              status="queued", pid=pid, provenance=dict(provenance or {}))
    session.add(run)
    session.flush()
    return run


def record_result(session: Session, run_id: int, cell: Mapping[str, str], status: str,
                  message: str | None = None, samples: list[float] | None = None,
                  metrics: Mapping[str, float | None] | None = None) -> Result:
    """Store one cell and count it towards its run's progress."""
    result = Result(run_id=run_id, status=status, message=message, samples=samples, **cell)
    result.metrics = [Metric(name=k, value=float(v)) for k, v in (metrics or {}).items() if v is not None]
    session.add(result)
    session.execute(update(Run).where(Run.id == run_id).values(cells_done=Run.cells_done + 1))
    return result


def set_calibration(session: Session, run_id: int, calibration: Mapping) -> None:
    session.execute(update(Run).where(Run.id == run_id).values(calibration=dict(calibration)))


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


CELL_COLUMNS = ("benchmark", "method", "backend", "device", "dtype", "mode", "size")


def stored_cells(session: Session, run_id: int) -> set[tuple[str, ...]]:
    """The cells a run has stored, as (benchmark, method, backend, device, dtype, mode, size)."""
    columns = [getattr(Result, c) for c in CELL_COLUMNS]
    return {tuple(row) for row in session.execute(select(*columns).where(Result.run_id == run_id))}


def reopen_run(session: Session, run_id: int, pid: int) -> None:
    """An interrupted run taken up again by a new process: queued until its turn."""
    session.execute(update(Run).where(Run.id == run_id)
                    .values(status="queued", pid=pid, message=None, finished_at=None))
