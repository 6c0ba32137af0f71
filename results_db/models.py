"""Typed SQLAlchemy models: machine → run → result → metric, plus the catalogue.

The shape is narrow on purpose: a result row names its cell (benchmark, method,
backend, size, device, dtype, mode) and its status; every number hangs off it
as a (name, value) metric, so a new metric needs no schema change.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, String, Text, UniqueConstraint, false
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from hadamard_bench.vocabulary import CELL_KEY


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Machine(Base):
    __tablename__ = "machine"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # hash of the facts below
    # The hardware alone (store.fingerprint_of): histories and the gate stay within one, so
    # identical nodes share a history and a torch upgrade is a step in it, not a new history.
    fingerprint: Mapped[str] = mapped_column(String(16), index=True)
    label: Mapped[str] = mapped_column(String(200))
    hostname: Mapped[str] = mapped_column(String(200))
    cpu_model: Mapped[str] = mapped_column(String(200))
    cpu_cores: Mapped[int]
    memory_gib: Mapped[Optional[int]]  # None on machines stored before migration 0005
    driver_version: Mapped[Optional[str]] = mapped_column(String(50))  # the NVIDIA driver, when there is a GPU
    torch_version: Mapped[str] = mapped_column(String(50))
    cuda_version: Mapped[Optional[str]] = mapped_column(String(50))
    gpu_name: Mapped[Optional[str]] = mapped_column(String(200))
    os: Mapped[str] = mapped_column(String(200))
    python_version: Mapped[str] = mapped_column(String(50))

    runs: Mapped[list["Run"]] = relationship(back_populates="machine")


class Run(Base):
    __tablename__ = "run"

    id: Mapped[int] = mapped_column(primary_key=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machine.id"))
    suite: Mapped[str] = mapped_column(String(20))
    # queued → running → finished, or failed, interrupted, cancelling → cancelled
    status: Mapped[str] = mapped_column(String(20), default="queued")
    options: Mapped[dict] = mapped_column(JSON, default=dict)  # the CLI selection, as given
    # How the numbers were taken: software versions, this project's commit, threads, clocks.
    provenance: Mapped[dict] = mapped_column(JSON, default=dict)
    # Per device: copy bandwidth (GB/s) and matmul throughput per dtype (GFLOP/s), measured at start.
    calibration: Mapped[dict] = mapped_column(JSON, default=dict)
    # Progress counts cell-rounds: every cell is measured once per round.
    cells_total: Mapped[int] = mapped_column(default=0)
    cells_done: Mapped[int] = mapped_column(default=0)
    rounds: Mapped[int] = mapped_column(default=1)  # each round in a fresh worker process
    seed: Mapped[Optional[int]]  # the shuffled order of round r comes from (seed, r)
    # The other run of an `ab` session: its cells took turns with this run's, cycle by cycle.
    paired_with: Mapped[Optional[int]]
    message: Mapped[Optional[str]] = mapped_column(Text)
    pid: Mapped[Optional[int]]
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))

    machine: Mapped[Machine] = relationship(back_populates="runs")
    results: Mapped[list["Result"]] = relationship(back_populates="run")
    round_records: Mapped[list["RoundRecord"]] = relationship(back_populates="run", order_by="RoundRecord.id")

    @hybrid_property
    def plain(self) -> bool:
        """Not a side of an `ab` session. A side's times were taken in turns with another
        version, on huge pages, sometimes with another interpreter or environment: they are that
        session's, so a machine's latest results, its history and `gate`'s baselines are made of
        plain runs only (in SQL: `Run.plain`)."""
        return self.paired_with is None

    @plain.inplace.expression
    @classmethod
    def _plain_expression(cls):
        return cls.paired_with.is_(None)


class RoundRecord(Base):
    """One round of a run, or the part of one that a process measured (a resumed round has two):
    its worker, its order's seed, and the state of the machine while it ran."""

    __tablename__ = "round"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id"), index=True)
    round: Mapped[int]
    seed: Mapped[int]
    pid: Mapped[Optional[int]]
    cells: Mapped[int] = mapped_column(default=0)  # cells measured in this part of the round
    # Load average, CPU steal, other processes' CPU share, governor, and the drift controls.
    state: Mapped[dict] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))

    run: Mapped[Run] = relationship(back_populates="round_records")


class BenchmarkInfo(Base):
    """A benchmark as the catalogue declared it when a run last synced it."""

    __tablename__ = "benchmark"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    domain: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    contract: Mapped[str] = mapped_column(String(200))
    params: Mapped[list] = mapped_column(JSON)
    x_param: Mapped[str] = mapped_column(String(32))


class MethodInfo(Base):
    __tablename__ = "method"

    benchmark: Mapped[str] = mapped_column(ForeignKey("benchmark.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))  # hadamard, baseline, reference
    summary: Mapped[str] = mapped_column(Text)
    latex: Mapped[str] = mapped_column(Text)
    exponents: Mapped[dict] = mapped_column(JSON)
    backends: Mapped[list] = mapped_column(JSON)
    against: Mapped[list] = mapped_column(JSON, default=list)  # the methods it is compared with
    cudnn: Mapped[Optional[list]] = mapped_column(JSON, default=list)  # backends that reach cuDNN on a GPU


class Result(Base):
    """One cell of a sweep: what ran, how it ended, and its raw timing samples."""

    __tablename__ = "result"
    __table_args__ = (
        UniqueConstraint("run_id", *CELL_KEY, name="one_result_per_cell"),
        # The Runs page counts each run's ok and failed cells from this index alone (migration 0007).
        Index("ix_result_run_id_status", "run_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id"), index=True)
    benchmark: Mapped[str] = mapped_column(String(64), index=True)
    method: Mapped[str] = mapped_column(String(64))
    backend: Mapped[str] = mapped_column(String(32))
    device: Mapped[str] = mapped_column(String(16))
    dtype: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(16))
    size: Mapped[str] = mapped_column(String(200))  # readable, e.g. "B=1 N=256 C=64 H=4"
    status: Mapped[str] = mapped_column(String(16))  # one of vocabulary.STATUSES
    message: Mapped[Optional[str]] = mapped_column(Text)
    samples: Mapped[Optional[list]] = mapped_column(JSON)  # per-call seconds, one per sample
    sample_rounds: Mapped[Optional[list]] = mapped_column(JSON)  # the round of each sample (None: one round)
    # The cycle of each sample within its round when its comparison group was timed interleaved
    # (bench_runner.timing.interleave): samples of two cells of one run with the same round and
    # cycle were timed side by side. None: timed one cell at a time; -1: a sample with no partner.
    sample_cycles: Mapped[Optional[list]] = mapped_column(JSON)
    # What ran it, read as it ran (bench_runner.machine.cell_provenance, the kernels chosen);
    # None for results stored before migration 0006.
    provenance: Mapped[Optional[dict]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    run: Mapped[Run] = relationship(back_populates="results")
    metrics: Mapped[list["Metric"]] = relationship(back_populates="result", cascade="all, delete-orphan")


class Metric(Base):
    __tablename__ = "metric"

    result_id: Mapped[int] = mapped_column(ForeignKey("result.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float] = mapped_column(Float)

    result: Mapped[Result] = relationship(back_populates="metrics")


class Agent(Base):
    """A benchmark machine's `bench_runner agent`: it claims the runs queued for its label and
    says it is alive by touching `last_seen` every few seconds."""

    __tablename__ = "agent"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(100), unique=True)
    hostname: Mapped[str] = mapped_column(String(200))
    machine_id: Mapped[Optional[int]] = mapped_column(ForeignKey("machine.id"))
    pid: Mapped[Optional[int]]
    status: Mapped[str] = mapped_column(String(20))  # idle, running, stopped
    run_id: Mapped[Optional[int]]  # the run it is executing
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Mark(Base):
    """A person's word on a history: a change point at `run_id` is expected (a torch upgrade, a
    new kernel), or `run_id` starts a new distribution. Either way the gate judges later runs
    against runs from `run_id` on. `cells` narrows it ({column: value} of the cell key; empty:
    every cell of the run's fingerprint)."""

    __tablename__ = "mark"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # one of vocabulary.MARK_KINDS
    note: Mapped[str] = mapped_column(Text, default="")
    cells: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class HistoryPoint(Base):
    """A cached point of a cell's history: the result's median with its 95% interval from its
    rounds, and whether a change point starts at its run. Derived, never measured: a result
    without a point marks its cell's history stale (bench_runner.history.refresh)."""

    __tablename__ = "history_point"

    result_id: Mapped[int] = mapped_column(ForeignKey("result.id", ondelete="CASCADE"), primary_key=True)
    # None where the result kept no samples (an imported row): a gap in the history, not a point.
    time_median_s: Mapped[Optional[float]] = mapped_column(Float)
    ci_low: Mapped[Optional[float]] = mapped_column(Float)
    ci_high: Mapped[Optional[float]] = mapped_column(Float)
    change_point: Mapped[bool] = mapped_column(default=False)
    # True at the first run of the change-point search's last window (bench_runner.step_detect):
    # the change points before it are final, and a new run is searched from here on.
    search_from: Mapped[bool] = mapped_column(default=False, server_default=false())


class CellKeyed:
    """A table keyed by a cell (CELL_KEY), as the derived per-cell tables below are: their own
    leading key column sorts before these (sort_order=-1), the rest after."""

    benchmark: Mapped[str] = mapped_column(String(64), primary_key=True)
    method: Mapped[str] = mapped_column(String(64), primary_key=True)
    backend: Mapped[str] = mapped_column(String(32), primary_key=True)
    device: Mapped[str] = mapped_column(String(16), primary_key=True)
    dtype: Mapped[str] = mapped_column(String(16), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16), primary_key=True)
    size: Mapped[str] = mapped_column(String(200), primary_key=True)


class LatestResult(CellKeyed, Base):
    """Which result is the latest `ok` one of each cell on each machine: what most pages show.

    Kept at write time (store.keep_latest) so a page reads a row per cell instead of scanning
    every result ever stored. `variant` separates float32 cells on a GPU by the TF32 switches
    they ran with (a TF32 cell is shown as dtype `tf32`, beside the float32 one, not in its
    place); it is empty for every other cell."""

    __tablename__ = "latest_result"

    machine_id: Mapped[int] = mapped_column(ForeignKey("machine.id"), primary_key=True, sort_order=-1)
    variant: Mapped[str] = mapped_column(String(100), primary_key=True, sort_order=1)
    result_id: Mapped[int] = mapped_column(ForeignKey("result.id", ondelete="CASCADE"), index=True, sort_order=1)


class NoiseFloor(CellKeyed, Base):
    """How far a cell moves between runs taken at different times on one hardware fingerprint
    (`hadamard-bench noise`): a relative change that 0.1% of such pairs of runs move beyond, wide
    enough that two identical runs' interval lies within it 80% of the time
    (bench_runner.stats.drift_floors; migration 0011 widened floors stored when they held 99%).
    Comparisons of two runs (`compare`, `gate`, History) judge the cell at max(threshold, drift).
    A new measurement of the cell replaces it."""

    __tablename__ = "noise_floor"

    fingerprint: Mapped[str] = mapped_column(String(16), primary_key=True, sort_order=-1)
    drift: Mapped[float] = mapped_column(Float, sort_order=1)
    run_ids: Mapped[list] = mapped_column(JSON, sort_order=1)  # the runs it was measured from, oldest first
    measured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, sort_order=1)
