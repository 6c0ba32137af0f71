"""Runs on one machine queue behind each other; a run can be cancelled between cells."""

import os
import subprocess
import sys
import threading
import time

from sqlalchemy.orm import sessionmaker

import results_db
from bench_runner import selection, sweep
from bench_runner.executor import InProcess
from results_db import store
from tests.bench_runner.toy import FAST, toy_catalogue


def _two_runs(db_url):
    cat = toy_catalogue()
    sel = selection.Selection(suite="smoke", benchmarks=["toy"], methods=["double"])
    cells = selection.plan(cat, sel)
    factory = sessionmaker(results_db.open_engine(db_url))
    return cat, cells, factory, sweep.start(factory, cat, sel, cells), sweep.start(factory, cat, sel, cells)


def test_a_cancelled_run_stops_before_its_next_cell(db_url):
    cat, cells, factory, first, _ = _two_runs(db_url)
    with factory() as session, session.begin():
        assert store.request_cancel(session, first)
    counts = sweep.execute(factory, first, cells, InProcess(cat, FAST))
    assert counts == {}


def test_a_second_run_waits_for_the_first_to_finish(db_url):
    _, _, factory, first, second = _two_runs(db_url)
    with factory() as session, session.begin():
        store.set_status(session, first, "running")  # our own pid: alive

    def finish_first():
        time.sleep(1.0)
        with factory() as session, session.begin():
            store.finish_run(session, first)

    threading.Thread(target=finish_first).start()
    waited = []
    started = time.monotonic()
    sweep.wait_for_turn(factory, second, poll_s=0.1, on_wait=waited.append)
    assert time.monotonic() - started >= 0.9
    assert waited and waited[0] == [first]
    with factory() as session:
        assert store.run_status(session, second) == "running"


def test_a_run_whose_process_died_does_not_block_the_queue(db_url):
    _, _, factory, first, second = _two_runs(db_url)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with factory() as session, session.begin():
        run = session.get(results_db.Run, first)
        run.status, run.pid = "running", dead.pid
    sweep.wait_for_turn(factory, second, poll_s=0.1)
    with factory() as session:
        assert store.run_status(session, first) == "interrupted"
        assert store.run_status(session, second) == "running"
    assert dead.pid != os.getpid()
