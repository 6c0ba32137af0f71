"""Cells in a worker process, so that a crash, a kill or a hang ends one cell, not the sweep.

The parent sends one cell at a time to a long-lived worker (spawned, never forked,
so CUDA starts clean) and waits at most the cell timeout. A worker that dies or
hangs is replaced, and the cell is stored as `crashed`, `oom` (killed by SIGKILL,
which on Linux is what the out-of-memory killer sends) or `timeout`.
"""

from __future__ import annotations

import importlib
import multiprocessing
import signal
from multiprocessing.connection import Connection

from .cell import Cell, CellOutcome, run_cell
from .timing import TimingPolicy


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
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _serve(conn: Connection, catalogue_ref: str, policy: TimingPolicy) -> None:
    catalogue = load_catalogue(catalogue_ref)
    conn.send("ready")
    while True:
        cell = conn.recv()
        if cell is None:
            return
        _peak_rss_reset()
        outcome = run_cell(catalogue, cell, policy)
        if outcome.status == "ok":
            # The whole process's resident peak during the cell, beside the tensors' own peak.
            outcome.metrics["process_peak_rss_bytes"] = _peak_rss_bytes()
        conn.send(outcome)


class IsolatedRunner:
    """Runs cells one by one in a worker process; call it like run_cell, close it when done."""

    START_TIMEOUT_S = 300.0  # importing torch and the catalogue on a cold, busy machine

    def __init__(self, catalogue_ref: str, policy: TimingPolicy, timeout_s: float):
        self.catalogue_ref, self.policy, self.timeout_s = catalogue_ref, policy, timeout_s
        self._context = multiprocessing.get_context("spawn")
        self._process = None
        self._conn: Connection | None = None

    def _start(self) -> None:
        self._conn, child = self._context.Pipe()
        self._process = self._context.Process(target=_serve, args=(child, self.catalogue_ref, self.policy),
                                              daemon=True, name="hadamard-bench-worker")
        self._process.start()
        child.close()
        try:
            if self._conn.poll(self.START_TIMEOUT_S) and self._conn.recv() == "ready":
                return
        except (EOFError, OSError):
            pass
        self._process.join(timeout=10)
        code = self._process.exitcode
        self._stop()
        raise RuntimeError(f"the benchmark worker did not start (exit status {code}); its error is above")

    def _stop(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()
        if self._process is not None:
            self._process.join(timeout=10)
        self._process, self._conn = None, None

    def __call__(self, cell: Cell) -> CellOutcome:
        if self._process is None or not self._process.is_alive():
            self._start()
        self._conn.send(cell)
        try:
            if self._conn.poll(self.timeout_s):
                return self._conn.recv()
            died = False
        except (EOFError, OSError):
            died = True  # the pipe closed under us: the worker is dying, if not yet reaped
        if not died:
            self._stop()
            return CellOutcome("timeout", f"no result within {self.timeout_s:g} s; the worker was stopped")
        self._process.join(timeout=60)
        code = self._process.exitcode
        self._process, self._conn = None, None
        if code == -signal.SIGKILL:
            return CellOutcome("oom", "the worker was killed (SIGKILL), most likely by the out-of-memory killer")
        if code is not None and code < 0:
            return CellOutcome("crashed", f"the worker died of {signal.Signals(-code).name}")
        return CellOutcome("crashed", f"the worker exited with status {code}")

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        self._stop()

    def __enter__(self) -> "IsolatedRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
