"""Cells in a worker process, so that a crash, a kill or a hang ends one cell, not the sweep.

The parent sends one cell at a time to a worker (spawned, never forked, so CUDA starts
clean) and waits at most the cell timeout. A worker that dies or hangs is replaced, and
the cell is stored as `crashed`, `oom` (killed by SIGKILL, which on Linux is what the
out-of-memory killer sends) or `timeout`. Each round of a run gets a fresh worker
(`restart`), and every worker starts with the same allocator settings (ALLOCATOR_ENV),
so a cell's time does not depend on what the process ran before it.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import importlib
import multiprocessing
import os
import random
import signal
import threading
from multiprocessing.connection import Connection
from typing import Sequence

from hadamard_bench import proc

from . import machine_state, settle
from .cell import Cell, CellOutcome, run_cell, run_group
from .defaults import TimingPolicy
from .executor import Executor

# glibc's malloc serves a large block either from its heap (reused, no page faults) or from
# a fresh mmap (page-faulted and zeroed on every call), and which one depends on what the
# process freed before: its mmap threshold adapts to past frees, and a free chunk left in the
# heap by an earlier cell serves a later one. Measured: hadamard_chain at 4M elements took
# 3.6 ms after the elementwise benchmark and 10.9 ms alone; softmax attention at N = 2048 took
# 22 ms in one worker and 70 ms in the next. With mmap off and the heap never trimmed behind
# the program's back, every block comes from the heap and is reused from the second call on,
# whatever ran before, as with PyTorch's caching allocator on a GPU; the worker hands freed
# memory back itself between cells (malloc_trim), so one cell's footprint never lingers.
GLIBC_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1099511627776"
ALLOCATOR_ENV = {"GLIBC_TUNABLES": GLIBC_TUNABLES}
# An `ab` side also asks PyTorch for transparent huge pages for each tensor of 2 MiB or more
# (THP_MEM_ALLOC_ENABLE, PyTorch 2.2 on). Two sides taking turns left a large memory-bound cell
# up to 1.6 times as slow in one side's process as in the other's for a whole round, a different
# side in different rounds: on a 2-vCPU VM on 2026-12-05, in an A/A of the eight elementwise cells
# over 4M elements relu's round medians (head over base) read 0.70-1.60; with huge pages every
# cell's read 0.94-1.14, and the 110-cell A/A left 6 cells inconclusive where it had left 12-14
# (docs/notes/2026-12-05-huge-pages-for-the-ab-sides.md). A side keeps its heap for its round, so
# it faults its huge pages once a round; a `run` worker trims its heap before each cell (for the
# cell's own resident peak) and would fault them again for every cell: five runs of the 110 cells
# took 6 minutes with huge pages against 4 without, and their medians moved apart no less.
SIDE_ALLOCATOR_ENV = {**ALLOCATOR_ENV, "THP_MEM_ALLOC_ENABLE": "1"}


def release_freed_memory() -> None:
    """Give the heap's free pages back to the system (glibc's malloc_trim), before a cell."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to trim this way


def allocator_setting(side: bool = False) -> dict[str, str]:
    """What the workers' allocator runs with (`side`: an `ab` side's), as stored on the run.
    HADAMARD_BENCH_ALLOCATOR=system leaves the system's allocator as it is (its adaptive
    behaviour included)."""
    if os.environ.get("HADAMARD_BENCH_ALLOCATOR", "fixed") == "system":
        return {"allocator": "system default", "GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES", "")}
    if side:
        return {"allocator": "glibc: heap only, kept for the round; huge pages for tensors of 2 MiB or more",
                **SIDE_ALLOCATOR_ENV}
    return {"allocator": "glibc: heap only, trimmed between cells", **ALLOCATOR_ENV}


def allocator_env(side: bool = False) -> dict[str, str]:
    """The environment variables of allocator_setting(side): what a process is started with."""
    return {k: v for k, v in allocator_setting(side).items() if k.isupper()}


@contextlib.contextmanager
def spawn_environment(setting: dict[str, str]):
    """These environment variables set while processes are spawned (which read them as they
    start), and this process's own put back afterwards."""
    saved = {k: os.environ.get(k) for k in setting}
    os.environ.update(setting)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# The signals that stop a command (bench_runner.cli): held back from a process while it starts.
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


@contextlib.contextmanager
def stop_signals_held():
    """STOP_SIGNALS held back from this thread while it starts a process, which starts with them
    held (a process inherits the mask of the thread that made it) and lets them through once it
    can stop quietly (let_stop_signals_through). Ctrl-C reaching a worker still importing ended it
    in "Fatal Python error: init_import_site" and a traceback. Held, not ignored: one that arrives
    meanwhile reaches this process as the mask is put back.

    The mask is this thread's, though, and a signal sent to the process (`kill`, `timeout`) reaches
    another of its threads (tqdm's, torch's), whose handler flags it for the main thread's Python
    handler, which then raised `Stopped` inside multiprocessing's start, between starting the worker
    and recording it: the run's clean-up failed on "can only join a started process" and the run
    ended `failed` with three tracebacks (a `.ci/run`, 2026-12-06). So in the main thread the
    Python handlers of STOP_SIGNALS are deferred as well, and the first signal that came is raised
    again once the process has started."""
    came: list[int] = []
    deferred = {}
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            if callable(signal.getsignal(sig)):  # a Python handler; the default or ignoring stands
                deferred[sig] = signal.signal(sig, lambda signum, frame: came.append(signum))
    before = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
        for sig, handler in deferred.items():
            signal.signal(sig, handler)
        if came:
            signal.raise_signal(came[0])


def let_stop_signals_through() -> None:
    """In a process started under stop_signals_held, once it can stop quietly."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def start_resource_tracker() -> None:
    """multiprocessing's resource tracker, which unlinks what the processes it serves leave behind,
    started (if it is not yet) with SIGHUP held back for good: it ignores Ctrl-C and SIGTERM itself,
    not a hang-up, and a closed terminal killed it with the run's process group; the run, starting
    it again to release its pool's locks, then printed a warning and a traceback for each (a
    compile-ahead pass, 2026-12-06). It exits when the last process it serves has."""
    from multiprocessing import resource_tracker

    with stop_signals_held():
        resource_tracker.ensure_running()


def no_semaphore_for_progress_bars() -> None:
    """tqdm's lock, in this process, a thread lock: by default a multiprocessing RLock, whose POSIX
    semaphore is registered with the resource tracker. torch.fx makes a (hidden) progress bar as
    Inductor compiles, so every process that compiled held one, and one killed or terminated (a
    pool's terminate, a group's SIGTERM, a hung cell's SIGKILL) left it behind: the run ended on the
    tracker's "leaked semaphore" warning. No process of a run shares a progress bar with another."""
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


def load_catalogue(ref: str):
    """`package.module:name` → the catalogue there (called first if it is a function)."""
    module, _, name = ref.partition(":")
    found = getattr(importlib.import_module(module), name)
    return found() if callable(found) else found


def _peak_rss_reset() -> None:
    # Writing 5 to clear_refs resets the process's resident high-water mark (Linux 4.0+).
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss_bytes() -> int | None:
    return proc.kib_bytes(proc.fields("/proc/self/status").get("VmHWM"))


def measure_cell(catalogue, cell: Cell, policy: TimingPolicy, check: bool) -> CellOutcome:
    """One cell in a worker process (ours, or a Ray task's): the heap trimmed first, the process's
    resident peak during the cell recorded beside the tensors' own peak."""
    if allocator_setting()["allocator"] != "system default":
        release_freed_memory()
    _peak_rss_reset()
    outcome = run_cell(catalogue, cell, policy, check=check)
    if outcome.status == "ok" and check:
        outcome.metrics["process_peak_rss_bytes"] = _peak_rss_bytes()
    return outcome


def measure_group(catalogue, work: list[tuple[Cell, bool]], policy: TimingPolicy, order_key: str) -> list[CellOutcome]:
    """One comparison group in a worker process, its members taking turns (cell.run_group) in
    the orders `order_key` seeds; the heap trimmed first. The process's resident peak would be
    the whole group's, so no member records it."""
    if allocator_setting()["allocator"] != "system default":
        release_freed_memory()
    return run_group(catalogue, work, policy, random.Random(order_key))


def _serve(conn: Connection, catalogue_ref: str, policy: TimingPolicy, threads: int | None = None,
           probes: Sequence[float] = ()) -> None:
    """Answer the parent's requests until it sends None. `probes`: the settling probes the run
    knows so far, which this worker's cells settle against. Interrupted (Ctrl-C reaches the whole
    terminal's process group; IsolatedRunner._stop interrupts a worker first), or left by a parent
    that died, it returns quietly, and exits as a stopped worker does, releasing what it holds."""
    # A SIGTERM or SIGHUP to the run's process group (`timeout`, a cancelled job, a closed terminal)
    # as Ctrl-C: killed by one, a worker that had compiled left its semaphores behind, and the run
    # ended on a "leaked semaphore" warning (SIGHUP: in two of three tries, 2026-12-06). One this
    # worker was started ignoring (`nohup`) stays ignored, as in the parent.
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, signal.default_int_handler)
    no_semaphore_for_progress_bars()
    try:
        let_stop_signals_through()
        _answer(conn, catalogue_ref, policy, threads, probes)
    except (KeyboardInterrupt, EOFError, BrokenPipeError, ConnectionResetError):
        pass  # interrupted, or the parent is gone (killed): no one is left to answer
    # Leaving, asked to or not, it ignores a stop: the parent, stopping too, interrupts a worker it
    # still sees, and a group's Ctrl-C can come as a round's worker, retired, runs its atexit hooks;
    # either would only print a traceback from them (a test's run, 2026-12-06). The parent kills a
    # worker that does not leave.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _answer(conn: Connection, catalogue_ref: str, policy: TimingPolicy, threads: int | None,
            probes: Sequence[float]) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)
    settle.settler().offer(probes)
    catalogue = load_catalogue(catalogue_ref)
    conn.send("ready")
    while True:
        message = conn.recv()
        if message is None:
            return
        if message[0] == "drift":
            from .calibration import drift_controls

            controls = drift_controls(message[1])
            settle.settler().offer([(controls.get("cpu") or {}).get("probe_s")])
            conn.send(controls)
            continue
        if message[0] == "settle":
            conn.send(settle.settler().summary())
            continue
        if message[0] == "group":
            conn.send(measure_group(catalogue, message[1], policy, message[2]))
            continue
        _, cell, check = message
        conn.send(measure_cell(catalogue, cell, policy, check))


# A worker asked to stop or interrupted: how long it may take to exit before it is killed. Idle, one
# that has imported torch took 0.5-1.5 s (2026-12-04); beside make test's workers, more than 2 s.
STOP_WAIT_S = 10.0


def _exit_or_kill(process) -> None:
    """A worker asked to stop or interrupted, waited for STOP_WAIT_S, then killed if still there."""
    process.join(timeout=STOP_WAIT_S)
    if process.is_alive():
        process.kill()
        process.join(timeout=10)


def died(code: int | None, who: str = "the worker") -> CellOutcome:
    """The outcome of a cell whose process (`who`) ended under it with exit status `code`
    (negative: the signal that killed it): on Linux a SIGKILL is most likely the out-of-memory killer."""
    if code == -signal.SIGKILL:
        return CellOutcome("oom", f"{who} was killed (SIGKILL), most likely by the out-of-memory killer")
    if code is not None and code < 0:
        return CellOutcome("crashed", f"{who} died of {signal.Signals(-code).name}")
    return CellOutcome("crashed", f"{who} exited with status {code}")


class IsolatedRunner(Executor):
    """Runs cells in a worker process, a fresh one each round (executor.Executor); close it when done."""

    START_TIMEOUT_S = 300.0  # importing torch and the catalogue on a cold, busy machine

    def __init__(self, catalogue_ref: str, policy: TimingPolicy, timeout_s: float, threads: int | None = None):
        self.catalogue_ref, self.policy, self.timeout_s, self.threads = catalogue_ref, policy, timeout_s, threads
        self._context = multiprocessing.get_context("spawn")
        self._process = None
        self._conn: Connection | None = None
        self._probes: list[float] = []  # settle probes of this run's rounds and the machine's recent runs
        self._leaving: list = []  # workers asked to stop, still exiting (_retire)
        self._awaiting = False  # a request sent to the current worker is still unanswered

    def _start(self) -> None:
        self._awaiting = False
        self._conn, child = self._context.Pipe()
        # Each worker is handed the probes known so far, so that one started again mid-round (after
        # a cell that crashed or timed out) settles against the run's norm, as the round's first
        # did, not against its own first probe, however slow.
        process = self._context.Process(target=_serve, args=(child, self.catalogue_ref, self.policy, self.threads,
                                                              list(self._probes)),
                                        daemon=True, name="hadamard-bench-worker")
        # Recorded only once started: a stop that lands before (Ctrl-C to the run's group as a round
        # began, a `.ci/run` on 2026-12-07) left a worker recorded that had never started, and the
        # run's clean-up failed on "can only join a started process", in a traceback, exit status 1.
        self._process = None
        # A spawned worker is a new interpreter: it inherits the environment at start, and
        # glibc reads its tunables once, before any allocation.
        start_resource_tracker()
        with spawn_environment(allocator_env()), stop_signals_held():
            process.start()
            self._process = process  # the stop, held meanwhile, comes after this
        child.close()
        try:
            if self._conn.poll(self.START_TIMEOUT_S) and self._conn.recv() == "ready":
                self._reap()  # before anything is timed: the last round's worker has exited meanwhile
                return
        except (EOFError, OSError):
            pass
        self._process.join(timeout=10)
        code = self._process.exitcode
        self._stop()
        raise RuntimeError(f"the benchmark worker did not start (exit status {code}); its error is above")

    def _stop(self) -> None:
        """The current worker gone now, on a cell or not: interrupted (SIGINT) first, killed if it
        has not exited within STOP_WAIT_S. Killed at once, a worker interrupted while it
        compiled left Inductor's semaphores behind, and the run ended on multiprocessing's
        "leaked semaphore" warning (an H200 check, each step stopped by its time limit); a worker
        stuck where Python cannot be interrupted (a native call, a cell that ignores SIGINT) is
        still killed."""
        if self._process is not None:
            if self._process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self._process.pid, signal.SIGINT)
            _exit_or_kill(self._process)
        self._process, self._conn = None, None

    def restart(self) -> None:
        """A fresh worker for what comes next (a new round): nothing it ran before carries over."""
        self._retire()

    def worker_cpu_seconds(self) -> float:
        """CPU seconds the current worker has used, for the round's machine state."""
        alive = self._process is not None and self._process.is_alive()
        return (machine_state.process_cpu_seconds(self._process.pid) or 0.0) if alive else 0.0

    def drift(self, devices: list[str]) -> dict[str, dict[str, float]]:
        """The drift controls, measured in the worker (a failure leaves them out)."""
        controls = self._request(("drift", devices), unanswered={})
        self.offer_probes([(controls.get("cpu") or {}).get("probe_s")])  # a worker started after it knows it too
        return controls

    def _request(self, message: tuple, unanswered):
        """Ask the worker (started first if need be); a worker that does not answer in time is
        stopped, and `unanswered` stands for its answer."""
        if self._process is None or not self._process.is_alive():
            self._start()
        answer = self._ask(message)
        if answer is None:
            self._stop()
            return unanswered
        return answer

    def _ask(self, message: tuple):
        """Send the worker a request and return its answer, or None when none came in time."""
        try:
            return self._exchange(message, self.timeout_s)
        except (EOFError, OSError):
            return None

    def _exchange(self, message: tuple, timeout_s: float):
        """Send the worker a request; its answer, or None when none came within `timeout_s`
        (EOFError or OSError when the pipe closed: the worker died)."""
        self._conn.send(message)
        self._awaiting = True
        if not self._conn.poll(timeout_s):
            return None
        answer = self._conn.recv()
        self._awaiting = False
        return answer

    def settle_summary(self) -> dict:
        """What the current worker waited for the cores to settle (bench_runner.settle), for the
        round's machine state; its median probe joins the next rounds' references."""
        if self._process is None or not self._process.is_alive():
            return {}
        summary = self._ask(("settle",)) or {}
        self.offer_probes([summary.get("probe_median_s")])
        return summary

    def offer_probes(self, probes) -> None:
        """Settling probes taken elsewhere (an earlier round, this machine's earlier runs): the
        next workers settle against their median (settle.Settler.reference_s)."""
        self._probes += settle.known(probes)

    def measure(self, cell: Cell, check: bool = True) -> CellOutcome:
        return self._run(("cell", cell, check), self.timeout_s)

    def run_group(self, work: list[tuple[Cell, bool]], order_key: str) -> list[CellOutcome]:
        """A comparison group's members taking turns in the worker (cell.run_group), with the cell
        timeout for each member; a worker that dies or hangs ends them all alike."""
        found = self._run(("group", work, order_key), self.timeout_s * len(work))
        return found if isinstance(found, list) else [dataclasses.replace(found) for _ in work]

    def _run(self, message: tuple, timeout_s: float):
        """Send a cell or a group to the worker (started first if need be) and return what it
        answered, or one CellOutcome saying how the worker ended when it did not."""
        if self._process is None or not self._process.is_alive():
            self._start()
        try:
            answer = self._exchange(message, timeout_s)
            if answer is not None:
                return answer
            hung = True
        except (EOFError, OSError):
            hung = False  # the pipe closed under us: the worker is dying, if not yet reaped
        if hung:
            self._stop()
            return CellOutcome("timeout", f"no result within {timeout_s:g} s; the worker was stopped")
        self._process.join(timeout=60)
        code = self._process.exitcode
        self._process, self._conn = None, None
        return died(code)

    def close(self) -> None:
        self._retire()
        self._reap()

    def _retire(self) -> None:
        """Ask the current worker to stop, and let it exit on its own while the next one starts:
        killed at once, a worker that had compiled left Inductor's semaphores behind, and every
        run ended on multiprocessing's "leaked semaphore" warning. A worker that has imported
        torch takes 0.5-1.5 s to exit (2026-12-04), which waiting for it would add to each round."""
        # A worker still on a request (the run interrupted mid-cell) would read the stop only after it.
        if self._conn is not None and self._process is not None and self._process.is_alive() and not self._awaiting:
            try:
                self._conn.send(None)
            except (OSError, BrokenPipeError):
                pass
            else:
                self._leaving.append(self._process)
                self._process, self._conn = None, None
                return
        self._stop()

    def _reap(self) -> None:
        """The retired workers gone: each waited for, then killed if it has not exited."""
        for process in self._leaving:
            _exit_or_kill(process)
        self._leaving = []
