"""Several writers and a reader on one SQLite file: no lost rows, no "database is locked"."""

import multiprocessing
import subprocess
import sys
import time

import pytest
from sqlalchemy.orm import sessionmaker

import results_db
from bench_runner import sweep
from bench_runner.executor import Executor
from bench_runner.cell import Cell, CellOutcome
from results_db import queries, store
from tests.conftest import FACTS, ROOT

# 3 x 60 commits, started together: every commit meets the other writers' and the reader's.
WRITERS, CELLS = 3, 60


def _writer(url: str, tag: int, errors, start) -> None:
    """The runner's own write path (sweep.execute: one transaction per finished cell), as fast
    as it can go, so the three writers really do collide. All begin writing at once (`start`):
    a process's imports take seconds, longer than its writes."""
    try:
        factory = sessionmaker(results_db.open_engine(url))
        with factory() as session, session.begin():
            machine = store.get_or_create_machine(session, {**FACTS, "key": f"writer-{tag}"}, f"writer {tag}")
            run_id = store.start_run(session, machine, "quick", {}, cells_total=CELLS).id
        cells = [Cell("elementwise", "hadamard", "eager", (("n", i),), "cpu", "float32", "forward")
                 for i in range(CELLS)]
        outcome = CellOutcome("ok", samples=[1e-3] * 3, metrics={"time_median_s": 1e-3, "flops": 1.0})
        class Planted(Executor):  # every cell measured at once, the same outcome
            def measure(self, cell, check=True):
                return outcome

        start.wait(timeout=120)
        sweep.execute(factory, run_id, cells, Planted())
        with factory() as session, session.begin():
            store.finish_run(session, run_id)
    except Exception as exc:  # noqa: BLE001 -- reported to the test
        errors.put(f"writer {tag}: {type(exc).__name__}: {exc}")


def _reader(url: str, stop, errors, reads, pause_s: float = 0.0, start=None) -> None:
    """Reads what the dashboard reads until stopped, back to back or `pause_s` apart, from the
    moment the writers start if `start` is given."""
    try:
        factory = sessionmaker(results_db.open_engine(url))
        if start is not None:
            start.wait(timeout=120)
        while not stop.is_set():
            with factory() as session:
                queries.results_frame(session)
                queries.runs_frame(session)
            reads.value += 1
            stop.wait(pause_s)
    except Exception as exc:  # noqa: BLE001
        errors.put(f"reader: {type(exc).__name__}: {exc}")


@pytest.mark.slow
def test_three_writers_and_a_reader_lose_nothing(store_url):
    db_url = store_url
    results_db.open_engine(db_url).dispose()  # the schema first, as `make run` would have made it
    ctx = multiprocessing.get_context("spawn")
    errors, stop, reads, start = ctx.Queue(), ctx.Event(), ctx.Value("i", 0), ctx.Barrier(WRITERS + 1)
    reader = ctx.Process(target=_reader, args=(db_url, stop, errors, reads, 0.0, start))
    reader.start()
    writers = [ctx.Process(target=_writer, args=(db_url, i, errors, start)) for i in range(WRITERS)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=240)
    stop.set()
    reader.join(timeout=60)
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert not problems, problems
    assert all(w.exitcode == 0 for w in writers) and reader.exitcode == 0
    assert reads.value >= 3  # the reader really read while the writers wrote
    with sessionmaker(results_db.open_engine(db_url))() as session:
        runs = queries.runs_frame(session)
        frame = queries.results_frame(session)
    assert len(frame) == WRITERS * CELLS
    assert sorted(runs["cells_done"]) == [CELLS] * WRITERS and set(runs["status"]) == {"finished"}


@pytest.mark.slow
def test_three_real_runners_and_a_reader(db_url):
    """Three `bench_runner run` processes started together on one file (they queue on one
    machine, polling the database while they wait) and a reader: all finish, all rows land."""
    argv = [sys.executable, "-m", "bench_runner", "run", "--suite", "smoke", "--benchmark", "elementwise",
            "--method", "copy", "--method", "hadamard", "--backend", "eager", "--in-process", "--db", db_url,
            "--quiet"]  # in-process: the runs queue on one machine, and a worker's start would only lengthen each
    runners = [subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    ctx = multiprocessing.get_context("spawn")
    errors, stop, reads = ctx.Queue(), ctx.Event(), ctx.Value("i", 0)
    time.sleep(1)  # let the first runner create the file
    # Twenty reads a second, more than any dashboard polls: the runs spend most of their time
    # importing and queueing, and a reader back to back would only take a core from them.
    reader = ctx.Process(target=_reader, args=(db_url, stop, errors, reads, 0.05))
    reader.start()
    outs = [r.communicate(timeout=300)[1] for r in runners]
    stop.set()
    reader.join(timeout=60)
    assert all(r.returncode == 0 for r in runners), outs
    assert not any("locked" in out for out in outs), outs
    assert errors.empty() and reader.exitcode == 0
    with sessionmaker(results_db.open_engine(db_url))() as session:
        runs = queries.runs_frame(session)
        frame = queries.results_frame(session)
    assert len(runs) == 3 and set(runs["status"]) == {"finished"}
    assert len(frame) == 3 * 2 and not frame.duplicated(["run_id", "method"]).any()
