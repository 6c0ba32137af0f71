"""Faults while a run or an import writes: a disk that fills, a database server that drops the
connection, a process killed mid-import, a file in a read-only folder, a Ctrl-C inside a statement. Each: what the
user sees, and that nothing stored before is lost. (Most tests start processes of their own: kept apart from
test_damage.py so that the two modules can run on different test workers.)"""

import gc
import os
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest

from bench_runner.cli import main
from results_db import damage
from tests.conftest import FACTS, seed
from tests.results_db.test_damage import ROOT, rows


def test_a_ctrl_c_inside_a_statement_leaves_the_file_free_for_the_runs_interrupted_record(tmp_path):
    """A KeyboardInterrupt that lands inside a cell's executemany (as a signal to the runner's
    group can): the record of the run's end, written next in the same process, must not wait on
    the interrupted transaction's lock (CI, 2026-12-07: 30 s, then "database is locked")."""
    from sqlalchemy import event, text
    from sqlalchemy.orm import sessionmaker

    import results_db
    from results_db import store

    engine = results_db.open_engine(f"sqlite:///{tmp_path / 'stopped.db'}")
    factory = sessionmaker(engine)
    with factory() as session, session.begin():
        host = store.get_or_create_machine(session, FACTS, "testhost (Test CPU)")
        run_id = store.start_run(session, host, "smoke", {}, cells_total=2).id
    armed = []

    def stopped_between_rows(cursor, statement, parameters, context):
        """The statement's first row written, then the Ctrl-C: the cursor keeps its statement."""
        if armed and statement.startswith("UPDATE run"):
            armed.clear()

            def rows():
                yield parameters
                raise KeyboardInterrupt
            cursor.executemany(statement, rows())

    event.listen(engine, "do_execute", stopped_between_rows)
    try:
        with factory() as session, session.begin():
            armed.append(True)
            store.count_progress(session, run_id, 1)
    except KeyboardInterrupt:  # written while the traceback, and through it the cursor, lives: as run.measure does
        assert not armed  # the interrupt landed inside the statement
        with factory() as session, session.begin():
            session.execute(text("PRAGMA busy_timeout=1000"))  # a failure in a second, not in 30
            store.finish_run(session, run_id, "interrupted", "stopped by Ctrl-C")
    with factory() as session:
        run = session.get(results_db.Run, run_id)
        assert (run.status, run.message, run.cells_done) == ("interrupted", "stopped by Ctrl-C", 0)
    engine.dispose()


@pytest.mark.slow
def test_a_disk_that_fills_mid_run_stops_it_in_one_line_and_resume_finishes_it(tmp_path):
    """A file-size limit stands in for a full disk: SQLite's writes past it fail as on a full one."""
    import resource
    import signal

    path = tmp_path / "results.db"
    url = f"sqlite:///{path}"
    seed(url)
    gc.collect()
    before = rows(path, "result")
    limit = path.stat().st_size + 60_000  # room for a few cells, not the whole run

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    argv = [sys.executable, "-m", "bench_runner", "run", "--suite", "smoke", "--benchmark", "elementwise",
            "--backend", "eager", "--db", url, "--quiet"]  # eight cells, none waiting for a compile
    full = subprocess.run(argv, cwd=ROOT, preexec_fn=small_disk, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HADAMARD_BENCH_REFERENCE": "off"})
    assert full.returncode == 2, full.stderr
    said = full.stderr.strip().splitlines()  # the run's own opening lines, then one for the failure
    ours = [i for i, line in enumerate(said) if line.startswith("hadamard-bench run: could not write to the "
                                                                 "results database")]
    assert ours and "run --resume 2" in said[ours[0]], full.stderr
    # (What multiprocessing's resource tracker may print after it, at exit under the same limit, is not ours.)
    assert not any("Traceback" in line for line in said[:ours[0]]), full.stderr
    assert damage.quick_check(path) == []  # the file is sound
    with closing(sqlite3.connect(path)) as db:
        status, done, total = db.execute("SELECT status, cells_done, cells_total FROM run WHERE id = 2").fetchone()
    assert status == "failed" and 0 < done < total, (done, total)
    assert {i: r for i, r in rows(path, "result").items() if i in before} == before  # nothing earlier lost
    resumed = subprocess.run([*argv[:4], "--resume", "2", "--db", url, "--quiet"], cwd=ROOT, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT status, cells_done FROM run WHERE id = 2").fetchone() == ("finished", total)


def test_a_process_killed_in_the_middle_of_an_import_leaves_nothing_of_it(tmp_path):
    """The dashboard adds bundles, and `import` stores them, in one transaction each: a process
    killed between two of a bundle's runs (os._exit, no cleanup, as SIGKILL) leaves none of them,
    the file sound and the earlier runs as they were; importing again adds them all."""
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    for _ in range(5):
        seed(f"sqlite:///{source}")
    bundle_file = tmp_path / "five.json"
    assert main(["export", "--format", "bundle", "--out", str(bundle_file), "--db", f"sqlite:///{source}"]) == 0
    seed(f"sqlite:///{target}")
    gc.collect()
    before = rows(target, "result")
    killed = f"""
import os, sys
import results_db.bundle as bundle
stored = bundle.store_results
calls = []
def store_results(*args):
    calls.append(1)
    if len(calls) == 3:  # the third run's results: two runs already written in this transaction
        os._exit(137)
    stored(*args)
bundle.store_results = store_results
from bench_runner.cli import main
sys.exit(main(["import", {str(bundle_file)!r}, "--db", {f"sqlite:///{target}"!r}]))
"""
    done = subprocess.run([sys.executable, "-c", killed], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 137, done.stderr
    assert damage.quick_check(target) == []
    assert rows(target, "result") == before and len(rows(target, "run")) == 1
    assert main(["import", str(bundle_file), "--db", f"sqlite:///{target}"]) == 0
    assert len(rows(target, "run")) == 6 and len(rows(target, "result")) == len(before) * 6


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_server_that_drops_the_run_mid_sweep_stops_it_in_one_line_and_resume_finishes_it(store_url):
    """As a PostgreSQL restart does: the server ends the run's connections after a few cells. The
    run stops in one line, no cell is stored twice, and `--resume` completes it."""
    import time

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    argv = [sys.executable, "-m", "bench_runner", "run", "--suite", "smoke", "--benchmark", "elementwise",
            "--backend", "eager", "--db", store_url, "--quiet"]  # eight cells, none waiting for a compile
    runner = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "HADAMARD_BENCH_REFERENCE": "off"})
    engine = create_engine(store_url, pool_pre_ping=True)
    database = make_url(store_url).database
    stored, deadline = 0, time.monotonic() + 300  # beside CI's other tests, a minute was once too short
    while time.monotonic() < deadline:  # until three cells are stored
        try:
            with engine.connect() as conn:
                stored = conn.execute(text("SELECT count(*) FROM result")).scalar()
        except Exception:  # noqa: BLE001 -- the run has not made its tables yet
            stored = 0
        if stored >= 3:
            break
        time.sleep(0.1)
    assert stored >= 3
    with engine.connect() as conn:  # every connection to the run's database but this one, ended
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": database})
    said = runner.communicate(timeout=600)[1]
    lines = said.strip().splitlines()
    if runner.returncode != 0:  # it stopped (it may also have finished: a connection cut between two
        # writes is replaced by the pool's pre-ping, and the run goes on)
        ours = [i for i, line in enumerate(lines)
                if line.startswith("hadamard-bench run: lost the connection to the results database")]
        assert runner.returncode == 2 and ours, said
        # (psycopg's own notes on the dropped connection, and multiprocessing's at exit, are not ours)
        assert not any("Traceback" in line for line in lines[:ours[0]]), said
        assert "run --resume 1" in lines[ours[0]] and ":hadamard@" not in lines[ours[0]]  # no password
        resumed = subprocess.run([*argv[:4], "--resume", "1", "--db", store_url, "--quiet"], cwd=ROOT,
                                 capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stderr
    with engine.connect() as conn:
        status, done, total = conn.execute(text("SELECT status, cells_done, cells_total FROM run")).one()
        cells = conn.execute(text("SELECT count(*), count(DISTINCT (benchmark, method, backend, size, device, "
                                  "dtype, mode)) FROM result")).one()
    engine.dispose()
    assert (status, done) == ("finished", total) and cells[0] == cells[1] == total


# As root, permissions do not stop a write: the folder is mounted read-only instead, in a mount
# namespace of the command's own (as a read-only share or medium is).
READ_ONLY_MOUNT = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'


def _in_read_only(folder, *argv):
    if os.geteuid() != 0:
        return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    return subprocess.run(["unshare", "--mount", "sh", "-c", READ_ONLY_MOUNT, str(folder), *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_read_only_folder_is_said_as_such_not_as_damage_and_nothing_is_written(tmp_path):
    folder = tmp_path / "share"
    folder.mkdir()
    path = folder / "results.db"
    seed(f"sqlite:///{path}")
    gc.collect()  # no connection of this process left on the file
    before = path.read_bytes()
    if os.geteuid() != 0:
        path.chmod(0o444)
        folder.chmod(0o555)
    elif _in_read_only(folder, "true").returncode != 0:
        pytest.skip("cannot mount a folder read-only here (unshare --mount needs CAP_SYS_ADMIN)")
    try:
        for verb in (["compare", "1", "1"], ["run", "--suite", "smoke", "--benchmark", "elementwise",
                                             "--method", "hadamard", "--backend", "eager"]):
            out = _in_read_only(folder, sys.executable, "-m", "bench_runner", *verb, "--db", f"sqlite:///{path}")
            assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
            assert "is read-only here" in out.stderr and "damaged" not in out.stderr, out.stderr
    finally:
        folder.chmod(0o755)
    assert path.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == ["results.db"]
