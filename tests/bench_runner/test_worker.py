"""Cells in a worker process: crashes, kills and hangs become statuses, and the sweep goes on."""

import dataclasses
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy.orm import sessionmaker

import results_db
from bench_runner import selection, sweep
from bench_runner import worker as worker_module
from bench_runner.cell import Cell
from bench_runner.worker import IsolatedRunner
from results_db import queries
from tests.bench_runner.toy import FAST, toy_catalogue
from tests.conftest import ROOT

TOY = "tests.bench_runner.toy:toy_catalogue"


def crash_cell(method: str) -> Cell:
    return Cell("toy_crash", method, "eager", (("n", 8),), "cpu", "float32", "forward")


@pytest.mark.slow
def test_every_way_a_worker_can_die_is_a_status_and_the_next_cell_still_runs():
    with IsolatedRunner(TOY, FAST, timeout_s=10) as run:
        outcomes = [run.measure(crash_cell(m)) for m in ("double", "segfaults", "double", "hangs", "killed", "double")]
    assert [o.status for o in outcomes] == ["ok", "crashed", "ok", "timeout", "oom", "ok"]
    assert outcomes[1].message == "the worker died of SIGSEGV"
    assert "within 10 s" in outcomes[3].message
    assert "SIGKILL" in outcomes[4].message
    assert outcomes[0].metrics["process_peak_rss_bytes"] > outcomes[0].metrics["peak_mem_bytes"]


@pytest.mark.slow
def test_an_isolated_sweep_stores_every_cell(db_url):
    cat = toy_catalogue()
    sel = selection.Selection(suite="smoke", benchmarks=["toy_crash"])
    cells = selection.plan(cat, sel)
    factory = sessionmaker(results_db.open_engine(db_url))
    run_id = sweep.start(factory, cat, sel, cells)
    with IsolatedRunner(TOY, FAST, timeout_s=10) as run:
        counts = sweep.execute(factory, run_id, cells, run)
    assert counts == {"ok": 1, "crashed": 1, "timeout": 1, "oom": 1}
    with factory() as session:
        runs = queries.runs_frame(session)
    assert runs.iloc[0]["cells_failed"] == 3
    assert runs.iloc[0]["cells_done"] == 4


def test_a_worker_that_cannot_load_its_catalogue_is_reported():
    with pytest.raises(RuntimeError, match="did not start"), IsolatedRunner("no.such.module:x", FAST, 5) as run:
        run.START_TIMEOUT_S = 20
        run.measure(crash_cell("double"))


@pytest.fixture
def sigint_handled():
    """SIGINT handled as Python does from a terminal. Started as a background job of a script
    (`.ci/run &`), pytest ignores it, and every process it spawns inherits that, workers included."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("sigint_handled")
def test_a_worker_asked_to_stop_exits_on_its_own_and_one_still_on_a_cell_is_interrupted(tmp_path, monkeypatch):
    """Killed, a worker that had compiled left its semaphores behind, and every run ended on
    multiprocessing's "leaked semaphore" warning; each worker now exits by itself (status 0). A
    run interrupted while its worker is on a cell (Ctrl-C) does not wait for the worker to read a
    stop it would only read after the cell: that one is interrupted, and exits as quietly; one
    that cannot be interrupted is killed."""
    with IsolatedRunner(TOY, FAST, timeout_s=60) as run:
        assert run.measure(crash_cell("double")).status == "ok"
        first = run._process
        run.restart()
        assert run._process is None and first.exitcode in (None, 0)  # asked, not waited for
        assert run.measure(crash_cell("double")).status == "ok"
        second = run._process
        assert first.exitcode == 0 and run._leaving == []  # gone before the next was used

        deaf = tmp_path / "deaf"
        monkeypatch.setenv("TOY_DEAF_MARK", str(deaf))  # read by the workers started from here on

        def interrupted(timeout=None):
            deadline = time.monotonic() + 60
            while size == 16 and not deaf.exists() and time.monotonic() < deadline:
                time.sleep(0.05)  # until the cell ignores SIGINT, or the interrupt would arrive before
            raise KeyboardInterrupt

        for size, exitcode in ((8, 0), (16, -signal.SIGKILL)):  # 16: the cell ignores SIGINT
            if size == 16:
                monkeypatch.setattr(worker_module, "STOP_WAIT_S", 1.0)  # it would never exit
            worker = run._process
            run._conn.poll = interrupted  # the parent interrupted just after sending the cell
            with pytest.raises(KeyboardInterrupt):
                run.measure(dataclasses.replace(crash_cell("hangs"), size=(("n", size),)))
            run._retire()
            assert run._leaving == [] and run._process is None and worker.exitcode == exitcode
            if size == 8:
                assert worker is second
                assert run.measure(crash_cell("double")).status == "ok"  # a fresh worker


@pytest.mark.parametrize("ignored", [False, True])
def test_a_worker_sent_sighup_leaves_as_from_ctrl_c_unless_it_was_started_ignoring_it(ignored):
    """A closed terminal hangs up the run's whole process group. Killed by the SIGHUP, a worker
    that had compiled left its semaphores behind and the run ended on multiprocessing's "leaked
    semaphore" warning; it now leaves as from Ctrl-C (status 0). Started under `nohup`, which
    the worker inherits, it stays at work."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN if ignored else signal.SIG_DFL)
    try:
        with IsolatedRunner(TOY, FAST, timeout_s=60) as run:
            assert run.measure(crash_cell("double")).status == "ok"
            worker = run._process
            os.kill(worker.pid, signal.SIGHUP)
            worker.join(timeout=1 if ignored else 30)  # a second is ample for a signal to land
            if ignored:
                assert worker.exitcode is None and run.measure(crash_cell("double")).status == "ok"
                assert run._process is worker
            else:
                assert worker.exitcode == 0
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_the_resource_tracker_outlives_a_hang_up_and_progress_bars_make_no_semaphore():
    """A closed terminal hangs up the whole group: the resource tracker it killed was started again
    as the run released its pool's locks, with a warning and a traceback for each. And tqdm's
    default lock, a semaphore in every process that compiled (torch.fx makes a hidden bar), was
    left behind by each such process killed, with the tracker's "leaked semaphore" warning."""
    script = """
import multiprocessing.synchronize, os, signal, time
from multiprocessing import resource_tracker
from tqdm import tqdm
from bench_runner import worker
worker.no_semaphore_for_progress_bars()
lock = tqdm.get_lock()
print(any(isinstance(one, multiprocessing.synchronize.SemLock) for one in getattr(lock, "locks", [lock])))
worker.start_resource_tracker()
pid = resource_tracker._resource_tracker._pid
os.kill(pid, signal.SIGHUP)
time.sleep(0.5)
print(os.waitpid(pid, os.WNOHANG) == (0, 0))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "True"], done.stderr
