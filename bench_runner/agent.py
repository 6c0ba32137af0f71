"""`python -m bench_runner agent`: a benchmark machine that takes runs from the queue.

The runs table is the queue: `submit` (or the dashboard) adds a run for a label, and
every agent started with that label polls for it, claims the oldest (store.claim_run:
FOR UPDATE SKIP LOCKED on PostgreSQL, a conditional UPDATE everywhere, so no run is
taken twice) and runs it like a local sweep, one committed cell at a time, so its
progress shows on every dashboard reading the database. A thread touches the agent's
row every few seconds: the dashboard calls an agent alive while that is recent.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Callable

from sqlalchemy.orm import Session, sessionmaker

from results_db import store
from results_db.models import Machine

from . import machine

HEARTBEAT_S = 5.0


class Heartbeat(threading.Thread):
    """Touches the agent's row every HEARTBEAT_S seconds with what it is doing."""

    def __init__(self, factory: sessionmaker[Session], label: str, machine_id: int, interval_s: float):
        super().__init__(daemon=True, name=f"heartbeat-{label}")
        self.factory, self.label, self.machine_id, self.interval_s = factory, label, machine_id, interval_s
        self.status, self.run_id = "idle", None
        self.stopped = threading.Event()

    def beat(self, starting: bool = False) -> None:
        with self.factory() as session, session.begin():
            store.heartbeat(session, self.label, socket.gethostname(), self.machine_id, os.getpid(),
                            self.status, self.run_id, starting=starting)

    def run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 -- a missed beat only makes the agent look late
                pass


def serve(factory: sessionmaker[Session], label: str, run_claimed: Callable[[int], int], *, once: bool = False,
          poll_s: float = 5.0, stop: threading.Event | None = None, say: Callable[[str], None] = print) -> int:
    """Claim and run the runs queued for `label` until stopped (or, with `once`, until the
    queue is empty). `run_claimed(run_id)` runs one claimed run and returns an exit status;
    130 (interrupted from the keyboard) ends the agent too."""
    stop = stop or threading.Event()
    facts = machine.facts()
    with factory() as session, session.begin():
        machine_id = store.get_or_create_machine(session, facts, machine.label(facts)).id
    beat = Heartbeat(factory, label, machine_id, min(HEARTBEAT_S, poll_s))
    beat.beat(starting=True)
    beat.start()
    say(f"agent {label!r} on {facts['hostname']}: waiting for runs")
    try:
        while not stop.is_set():
            with factory() as session, session.begin():
                run = store.claim_run(session, label, session.get(Machine, machine_id), os.getpid())
                run_id = run.id if run else None
            if run_id is None:
                if once:
                    return 0
                stop.wait(poll_s)
                continue
            say(f"agent {label!r}: claimed run {run_id}")
            beat.status, beat.run_id = "running", run_id
            beat.beat()
            code = run_claimed(run_id)
            beat.status, beat.run_id = "idle", None
            beat.beat()
            if code == 130:
                return code
        return 0
    finally:
        # The thread may be in the middle of a beat (waiting on SQLite's write lock, say) with the
        # status it read before: left running, it committed "idle" after this "stopped", and a
        # finished agent looked alive. It ends that beat first (a wait on the thread's event returns
        # at once); a beat waits on SQLite's lock 30 s at most, and one stuck past a minute is left.
        beat.stopped.set()
        beat.join(timeout=60)
        beat.status, beat.run_id = "stopped", None
        try:
            beat.beat()
        except Exception:  # noqa: BLE001 -- the database may be what stopped us
            pass
