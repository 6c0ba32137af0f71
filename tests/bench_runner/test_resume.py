"""A run killed mid-sweep keeps every finished cell, and --resume finishes it without duplicates."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import types

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

import results_db
from results_db import queries
from tests.bench_runner.test_cli import ROOT, cli

# Eager only: a resume is the same for every backend, and compiling the others three times over
# cost a minute a test on CI's two cores. The two benchmarks are two comparison groups, stored a
# group at a time, so a kill after the first cells still leaves the second group to resume.
SELECTION = ["--suite", "smoke", "--benchmark", "elementwise", "--benchmark", "gated_ffn", "--backend", "eager"]
CELLS = 8 + 5  # elementwise: 8 methods, gated_ffn: 5; one size


def _stored(path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute("select count(*) from result").fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # not created yet


def _runs(path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute("select count(*) from run").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


# Killed as soon as the run exists (calibrating, before any cell), after the first cell, mid-sweep.
@pytest.mark.slow
@pytest.mark.parametrize("after", [0, 1, 3], ids=["before-any-cell", "after-one-cell", "mid-sweep"])
def test_a_killed_run_keeps_its_cells_and_resume_completes_it(tmp_path, after):
    path = tmp_path / "killed.db"
    url = f"sqlite:///{path}"
    runner = subprocess.Popen([sys.executable, "-m", "bench_runner", "run", *SELECTION, "--db", url, "--quiet"],
                              cwd=ROOT, start_new_session=True, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while (_stored(path) < after or _runs(path) < 1) and time.monotonic() < deadline:
        time.sleep(0.05 if after == 0 else 0.2)
    os.killpg(runner.pid, signal.SIGKILL)  # the runner and its worker, mid-sweep
    runner.wait()

    with sqlite3.connect(path) as db:
        assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
        kept = db.execute("select id, method, backend from result order by id").fetchall()
        first_calibration = db.execute("select calibration from run").fetchone()[0]
    assert after <= len(kept) < CELLS

    out = cli("run", "--resume", "1", "--db", url)
    assert out.returncode == 0, out.stderr
    assert f"{CELLS - len(kept)} of its {CELLS} measurements ({CELLS} cells × 1 round) are missing" in out.stderr
    with sessionmaker(results_db.open_engine(url))() as session:
        frame = queries.results_frame(session)
        runs = queries.runs_frame(session)
    assert len(frame) == CELLS
    assert not frame.duplicated(["method", "backend", "size"]).any()
    assert list(frame.sort_values("result_id")[["result_id", "method", "backend"]].itertuples(index=False))[:len(kept)] \
        == kept  # the cells kept from before the kill are the same rows, untouched
    assert (runs.iloc[0]["status"], runs.iloc[0]["cells_done"]) == ("finished", CELLS)
    with sessionmaker(results_db.open_engine(url))() as session:
        run = session.get(results_db.Run, 1)
        if first_calibration not in (None, "{}"):  # killed after calibrating: the first ceilings stay the run's
            assert run.calibration == json.loads(first_calibration)
            resumed = run.provenance["resumed_calibrations"]
            assert len(resumed) == 1 and resumed[0]["ceilings"]["cpu"]["copy_gbps"] > 0
        assert run.calibration["cpu"]["copy_gbps"] > 0

    again = cli("run", "--resume", "1", "--db", url)
    assert again.returncode == 2
    assert "has finished; nothing to resume" in again.stderr


def test_a_resumed_run_measures_with_the_timing_it_started_with(tmp_path):
    """A run started --one-at-a-time and stopped before its first cell is resumed without the flag:
    its cells are still timed one at a time (they were timed in turns, the resuming command's
    default, before the run kept its own policy), and a timing flag beside --resume is refused."""
    from bench_runner import selection, sweep
    from bench_runner.commands.run import policy_for, stored_policy
    from hadamard_impls import catalogue
    from results_db import store

    url = f"sqlite:///{tmp_path / 'resumed.db'}"
    sel = selection.Selection(suite="smoke", benchmarks=["elementwise"], methods=["hadamard", "copy"],
                              backends=["eager"])
    cells = selection.plan(catalogue, sel)
    factory = sessionmaker(results_db.open_engine(url))
    started = policy_for(types.SimpleNamespace(warm_l2=True, energy=False, one_at_a_time=True, settle=0.5), "smoke")
    run_id = sweep.start(factory, catalogue, sel, cells, policy=started)
    with factory() as session, session.begin():
        store.finish_run(session, run_id, "interrupted", "stopped by the user")
        assert stored_policy(session.get(results_db.Run, run_id).provenance, "smoke") == started

    refused = cli("run", "--resume", str(run_id), "--db", url, "--energy")
    assert refused.returncode == 2 and "measures as the run did" in refused.stderr
    out = cli("run", "--resume", str(run_id), "--db", url, "--in-process", "--quiet")
    assert out.returncode == 0, out.stderr
    with factory() as session:
        timed = [r.provenance.get("timed", "alone") for r in session.scalars(select(results_db.Result))]
    assert len(timed) == len(cells) == 2
    assert not any(t.startswith("interleaved") for t in timed)
