"""A command stopped before it finishes: by Ctrl-C, or by SIGTERM or SIGHUP (a cancelled CI job,
`timeout`, a closed terminal). Each keeps what it finished, ends its runs `interrupted` saying
what stopped them, leaves no process or `ab` worktree behind, and says so in one line."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

import results_db
from bench_runner import cli
from results_db import Result, Run
from tests.bench_runner.test_ab import children_of, plugin_repo  # noqa: F401 -- plugin_repo: a fixture, used below
from tests.conftest import ROOT


def test_a_signal_stops_a_verb_as_ctrl_c_does_and_leaves_the_handlers_as_they_were(monkeypatch, capsys):
    from bench_runner.commands import list as list_verb

    seen = {}

    def verb(args):
        seen["hup"] = signal.getsignal(signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # the signal is raised here, long before this ends
        return 0

    monkeypatch.setattr(list_verb, "run", verb)
    term_before, hup_before = signal.getsignal(signal.SIGTERM), signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        started = time.monotonic()
        assert cli.main(["list"]) == 130
        assert time.monotonic() - started < 5
        # One line, naming the verb and the signal; a SIGHUP this process ignored (nohup) stayed ignored.
        assert capsys.readouterr().err == "hadamard-bench list: stopped by SIGTERM\n"
        assert seen["hup"] is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is term_before
    finally:
        signal.signal(signal.SIGHUP, hup_before)


def _start(args: list[str], url: str) -> subprocess.Popen:
    """The command in a process group of its own, as a terminal's shell starts a job: with Ctrl-C's
    and a hang-up's default actions, which a test runner started in the background (`&` ignores
    SIGINT, `nohup` SIGHUP, some CI either) would otherwise pass on to it as ignored. (Under `nohup`
    the SIGHUP case once ran both of noise's runs to the end: a signal ignored at start stays so.)"""
    def defaults() -> None:
        for sig in (signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
    return subprocess.Popen([sys.executable, "-m", "bench_runner", *args, "--db", url, "--quiet"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=defaults)


def _when_a_cell_is_stored(proc: subprocess.Popen, url: str, timeout_s: float = 120) -> None:
    """Return once the command has stored a result: its workers (or sides) are then at work."""
    engine = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if Path(url.removeprefix("sqlite:///")).exists():
            engine = engine or results_db.open_engine(url)
            try:
                with sessionmaker(engine)() as session:
                    if session.scalar(select(func.count()).select_from(Result)):
                        return
            except Exception:  # noqa: BLE001 -- the schema is still being made
                pass
        time.sleep(0.2)
    raise AssertionError("no cell was stored in time")


def _runs(url: str) -> list[tuple[str, str | None, int]]:
    with sessionmaker(results_db.open_engine(url))() as session:
        return [(run.status, run.message, session.scalar(select(func.count()).select_from(Result)
                                                         .where(Result.run_id == run.id)))
                for run in session.scalars(select(Run).order_by(Run.id))]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_run_stopped_by_a_signal_to_its_group_keeps_its_cells_and_says_so_in_one_line(tmp_path, sig):
    """To the whole group, as `timeout`, a job's cancel and Ctrl-C send it: the worker too."""
    url = f"sqlite:///{tmp_path / 'stopped.db'}"
    proc = _start(["run", "--suite", "smoke", "--benchmark", "elementwise", "--backend", "eager", "--rounds", "5"], url)
    _when_a_cell_is_stored(proc, url)
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    why = "stopped by SIGTERM" if sig == signal.SIGTERM else "stopped by Ctrl-C"
    assert proc.returncode == 130, err
    # Its last line says so; no worker's traceback, nor the "leaked semaphore" warning a killed worker left.
    assert err.splitlines()[-1] == f"run 1 interrupted ({why}); finished cells are kept", err
    assert "Traceback" not in err and "leaked" not in err and "Error" not in err, err
    [(status, message, kept)] = _runs(url)
    assert (status, message) == ("interrupted", why) and kept >= 1


@pytest.mark.parametrize(("whole", "more", "said"), [(False, "2", False), (True, "2", True), (True, "0", False)])
def test_a_run_stopped_in_its_rounds_more_says_that_its_own_rounds_were_all_taken(tmp_path, monkeypatch, capsys,
                                                                                  whole, more, said):
    """A round more (run --more-rounds) counts toward no total: stopped there, the run's own rounds
    are all stored, and the line and the run's message say so; stopped before them, or in a run
    that takes none, they do not."""
    from bench_runner.commands import run as run_verb

    def stopped(factory, run_id, *args, **kwargs):
        with factory() as session, session.begin():
            row = session.get(Run, run_id)
            row.cells_done = row.cells_total if whole else row.cells_total - 1
        raise KeyboardInterrupt

    monkeypatch.setattr(run_verb, "_execute_with_progress", stopped)
    url = f"sqlite:///{tmp_path / 'stopped.db'}"
    assert cli.main(["run", "--suite", "smoke", "--benchmark", "elementwise", "--method", "relu", "--backend", "eager",
                     "--more-rounds", more, "--quiet", "--db", url]) == 130
    why = "stopped by Ctrl-C" + (", in its rounds more: every round of the run was taken" if said else "")
    assert capsys.readouterr().err.splitlines()[-1] == f"run 1 interrupted ({why}); finished cells are kept"
    assert [(status, message) for status, message, _ in _runs(url)] == [("interrupted", why)]


@pytest.mark.slow
def test_a_run_hung_up_while_compiling_ahead_says_so_in_one_line(tmp_path, monkeypatch):
    """A closed terminal, as the first run compiles ahead: the hang-up killed the pool's processes,
    each leaving the semaphore of its progress-bar lock behind, and multiprocessing's resource
    tracker, which the run then started again, with a warning and a traceback for each lock."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))  # cold: a pass of 8 cells
    url = f"sqlite:///{tmp_path / 'hung-up.db'}"
    proc = _start(["run", "--suite", "smoke", "--benchmark", "elementwise", "--backend", "compile"], url)
    deadline = time.monotonic() + 120
    while not any((tmp_path / "inductor").rglob("*.so")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)  # until the pass has built a kernel: its processes are at work
    os.killpg(proc.pid, signal.SIGHUP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.splitlines()[-1] == "run 1 interrupted (stopped by SIGHUP); finished cells are kept", err
    assert "Traceback" not in err and "leaked" not in err and "Warning" not in err, err


@pytest.mark.slow
def test_an_ab_session_stopped_by_sigterm_ends_both_runs_and_leaves_no_worktree_or_side(
        plugin_repo, tmp_path):  # noqa: F811 -- the fixture imported above
    """To the driver alone (`kill PID`), which stops its sides itself; it once ended on the spot,
    its runs `running` for good and both worktrees registered in the plugin's repository."""
    url = f"sqlite:///{tmp_path / 'ab.db'}"
    proc = _start(["ab", "v1", "v2", "--repo", str(plugin_repo), "--plugin", "ab_toy_plugin", "--suite", "smoke",
                   "--benchmark", "ab_toy", "--device", "cpu", "--rounds", "20"], url)
    _when_a_cell_is_stored(proc, url)
    sides = list(children_of(proc.pid))
    assert len(sides) == 2
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.splitlines()[-2:] == ["ab: runs 1 and 2 interrupted; the cells both sides finished are kept",
                                     "hadamard-bench ab: stopped by SIGTERM"], err
    assert "Traceback" not in err and "Error" not in err, err
    assert [(status, message) for status, message, _ in _runs(url)] == [("interrupted", "stopped by SIGTERM")] * 2
    listed = subprocess.run(["git", "-C", str(plugin_repo), "worktree", "list"], capture_output=True, text=True)
    assert listed.stdout.count("\n") == 1, listed.stdout  # the repository's own checkout only
    assert not [pid for pid in sides if Path(f"/proc/{pid}").exists()]



def test_noise_passes_the_signal_it_got_to_the_run_it_is_taking(tmp_path):
    """`noise` takes its runs in processes of their own sessions and passes a stop on to the one at
    work, which ends `interrupted` naming what stopped it: it once said SIGTERM whatever it was. Ctrl-C
    alone: SIGHUP and SIGTERM take one path (commands.Stopped), and each case starts three processes
    that import torch, 13-45 s of a loaded `.ci/run`."""
    sig, why = signal.SIGINT, "stopped by Ctrl-C"
    url = f"sqlite:///{tmp_path / 'noise.db'}"
    proc = _start(["noise", "--suite", "smoke", "--benchmark", "elementwise", "--backend", "eager", "--rounds", "5",
                   "--repeat", "2"], url)
    _when_a_cell_is_stored(proc, url)
    os.killpg(proc.pid, sig)  # its group: the run it is taking is in a session of its own
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.splitlines()[-1] == f"hadamard-bench noise: {why}", err
    assert [(status, message) for status, message, _ in _runs(url)] == [("interrupted", why)]


def test_a_stop_that_reaches_another_thread_while_a_worker_starts_is_raised_once_it_has_started():
    """A signal sent to the process reaches a thread that does not hold it back; its Python handler
    then ran in the main thread inside multiprocessing's start, and the run's clean-up failed on a
    worker half recorded. Held, it is raised once the block (the start) is done, and only then."""
    import threading

    from bench_runner.worker import stop_signals_held

    def stop(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    before = signal.signal(signal.SIGTERM, stop)
    done = []
    try:
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            with stop_signals_held():
                other = threading.Thread(target=lambda: (signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM}),
                                                         os.kill(os.getpid(), signal.SIGTERM), time.sleep(0.2)))
                other.start()
                other.join()
                sum(range(100_000))  # bytecodes, at which the main thread runs a flagged handler
                done.append("started")
        assert done == ["started"]
        assert signal.getsignal(signal.SIGTERM) is stop
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_stop_before_a_worker_has_started_leaves_the_runner_nothing_to_wait_for(monkeypatch):
    """Ctrl-C to the run's group can land as a round's worker is being made, before it starts; the
    run's clean-up then waited for that worker and failed on "can only join a started process"
    (a `.ci/run`, 2026-12-07): the run ended in a traceback, not in its one line."""
    from bench_runner import worker
    from tests.bench_runner.toy import FAST

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(worker, "start_resource_tracker", interrupted)
    runner = worker.IsolatedRunner("tests.bench_runner.toy:toy_catalogue", FAST, timeout_s=10)
    with pytest.raises(KeyboardInterrupt):
        runner.drift(["cpu"])
    runner.close()  # nothing started, nothing to stop
    assert runner._process is None and runner._leaving == []
