"""Two versions measured in one session, taking turns block by block (the `ab` verb).

A side is a version of the code to time: a git revision of the project, checked out into a
worktree of its own, or of a plugin's repository; an interpreter (a venv with another torch);
and environment variables (OMP_NUM_THREADS=1). Each side runs in a process of its own
(bench_runner.side_worker), both pinned to the same CPUs; for every cell of every round both
build, check and warm the cell up, then take turns (timing.take_turns): each cycle both time one
block, in a random order seeded by (seed, round, cell). Both sides are stored as two runs that
name each other (`paired_with`), their samples with their cycles, so `compare`, the Diff page
and `gate` pair them: what the machine did in a cycle, it did to both. Being timed in turns, on
huge pages, perhaps with another interpreter, they are not plain runs (`Run.plain`): the
machine's latest results, its history and `gate`'s baselines leave them out.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from hadamard_bench import plugins
from results_db import Run, store

from . import defaults, machine_state, record, selection, stats, sweep, timing
from .cell import Cell, CellOutcome, device_unavailable
from .worker import STOP_SIGNALS, allocator_env, allocator_setting, died

ROOT = Path(__file__).resolve().parent.parent  # the driver's checkout: both sides' measurement code
START_TIMEOUT_S = 300.0  # importing torch and a catalogue on a cold, busy machine
# Two processes take turns on the same cores. After a parallel region, libgomp's threads spin
# 300,000 times before they sleep (about 5.6 ms on a 2-vCPU Xeon VM, 2026-12-05), so after its
# turn a side's threads would spin on the cores the other side is being timed on: on a 2-vCPU VM
# on 2026-12-02 an A/A's per-cycle log ratios spread by 0.70 (SD) in gated_ffn cells of 1-10 ms,
# and by 0.064 with the threads sleeping at once. But threads that sleep at once
# (OMP_WAIT_POLICY=passive, the sides' setting until 2026-12-05) make every parallel region pay a
# wake-up, about 80 µs on the Xeon VM: 13 of the 44 quick eager cells of gated_ffn and elementwise
# ran 1.2-6.6x slower in `ab` than `run` times them (a 15 µs copy took 90), and a change to such a
# kernel would hide under its wake-ups. So both sides spin 10,000 times (about 0.2 ms there): the
# threads stay awake between the calls of a block (GELU over 4,096 elements 10.9 µs a call, as with
# libgomp's default, against 95 µs passive), and what spills into the other side's turn falls in
# its untimed calls (timing.SWITCH_WARMUP_S, 2 ms). The same 44 cells then ran a median 1.02-1.03x
# `run`'s times (p90 1.14x; passive 1.08-1.11x, p90 3.3x). KMP_BLOCKTIME=1 (ms) asks the same of
# Intel's OpenMP, for a side whose torch links it (not measured here). The user's environment, or
# a side's --base-env/--head-env, overrides these.
# Unbound, such threads can share one core for a whole round (our reading of this): in an `ab` of
# gated_ffn at 256 tokens on that VM (2026-12-02, six rounds, the head on one thread), the
# two-thread side ran 3.5-3.7 ms a call in 4 of 6 rounds, slower than one thread (3.3-3.5 ms),
# and 1.8-2.2 ms in the others, a whole round at a time. Bound to a core each, its threads ran
# 1.8-2.8 ms in every round, as a `run` times them (1.7-2.1 ms). So both sides bind them too.
SIDE_ENV_DEFAULTS = {"GOMP_SPINCOUNT": "10000", "OMP_PROC_BIND": "true", "KMP_BLOCKTIME": "1"}
# Turns between two processes are noisier than within one (a block's time spreads by 6-19% against
# 13% in one process on that VM, with passive threads, 2026-12-03), and a process's memory layout, or a side's
# build of a cell, can hold one side slower for a whole round, which only more rounds average out
# (stats._round_half_width): in the A/As below, many of the cells left inconclusive had
# one round 10-30% off. (Over 4M elements and more, most of that went with huge pages for the
# sides' large tensors: worker.SIDE_ALLOCATOR_ENV.) An A/A over the 110-cell selection on 2026-12-03 (2 vCPUs, quiet, 6 rounds
# of 40 cycles, cut to the first R rounds and k cycles) left 19 cells inconclusive at 3 rounds of
# 40 cycles and 6 at 6 rounds of 20. On 2026-12-04, back to back, 12 rounds of at least 10 cycles
# (each with the suite's whole budget) left 3 inconclusive in 9.4 minutes and 6 rounds of at least
# 20 left 7 in 6.5; the first 6 rounds of the 12-round session alone left 15, and its 12 rounds cut
# to their first 10 cycles 4. So a session took four times `run`'s rounds, each with at least
# MIN_CYCLES cycles. With the sides' threads spinning (see SIDE_ENV_DEFAULTS) the rounds spread
# further: on an Intel Xeon VM on 2026-12-05, two quiet 20-round A/As of the 48 elementwise and
# token_mixing cells cut to their first 12, 16 and 20 rounds left 13, 10, 6 and 11, 7, 5 cells
# inconclusive, and two 16-round sessions 6 and 8. So quick takes 16 rounds (defaults.AB_ROUNDS),
# a third longer; 20 would have put the 110-cell A/A beside a neighbour past 12 minutes.
# A round's cycles then go on until what the session measures, the ratio, is known: the median of
# its per-cycle ratios to within RATIO_TARGET, spending at most BUDGET_FACTOR times the suite's
# timed budget. Taking turns cancels what the machine does to both sides, so a quiet round, or one
# whose machine moved both sides together, stops at MIN_CYCLES; a round whose blocks slip one side
# at a time goes on. (A side's own median known to 2%, the run's rule, says nothing of the ratio: a
# machine moving both sides together kept such rounds going.) Twice the floor is enough for one
# round: the session's interval comes from its rounds' medians (stats._round_half_width), and
# twelve rounds each known to ±10% give one of about ±3%. In a loaded `.ci/run` (2026-12-04) an
# A/A of a 0.07-ms multiply read 0.57 (interval 0.08-4.0) from three rounds of a quarter of the
# budget each; beside a load on both cores, most of its rounds' per-cycle log ratios spread by
# 0.7-1.5 (SD), and a round of 10 cycles read 0.39. Disturbed, one after another on 2026-12-04, the
# 12-round A/A over the 110 cells left 33 inconclusive (median half-width ±2.9%) in 10.2 minutes
# with a quarter of the budget and the run's rule, 30 (±2.4%) in 11.1 with the ratio known to the
# floor within the budget, and 14 (±2.2%, one cell called an improvement) in 11.2 with this rule:
# in about half the cells the second left inconclusive, the rounds' medians spread no more than
# their 10 cycles explain, and its budget allowed no more.
MIN_CYCLES = 10
RATIO_TARGET = 2 * defaults.FLOOR
BUDGET_FACTOR = 4


def ratio_known(samples: list[list[float]]) -> bool:
    """Whether a round's ratio, the median of its per-cycle ratios of head over base, is known
    to RATIO_TARGET: the half-width of its 95% interval (stats.median_rel_ci) over it."""
    return stats.median_rel_ci([h / b for b, h in zip(*samples)]) <= RATIO_TARGET


class AbError(RuntimeError):
    """A side that cannot be set up or started: one line, naming it."""


@dataclass(frozen=True)
class Side:
    name: str  # base or head
    revision: str  # as given
    commit: str  # what it resolved to
    project: str | None = None  # the side's worktree of the project; None: the driver's checkout
    plugin_path: str | None = None  # the side's worktree of a plugin's repository
    python: str = sys.executable
    env: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict:
        """What the side's run stores about it: `env` as the side's process had it set, defaults included."""
        env = {k: os.environ.get(k, v) for k, v in SIDE_ENV_DEFAULTS.items()} | self.env
        return {"side": self.name, "revision": self.revision, "commit": self.commit,
                "of": "plugin" if self.plugin_path else "project", "python": self.python, "env": env}


def git(repo: str, *args: str) -> str:
    done = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True)
    if done.returncode:
        raise AbError(f"git {' '.join(args[:2])} in {repo}: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")
    return done.stdout.strip()


def resolve(repo: str, revision: str) -> str:
    """The commit a revision names in `repo`, or a one-line AbError."""
    if not Path(repo, ".git").exists() and git(repo, "rev-parse", "--is-inside-work-tree") != "true":
        raise AbError(f"{repo} is not a git repository")
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    except AbError:
        raise AbError(f"{revision!r} is not a revision of {repo}") from None


class Worktrees:
    """Worktrees of a repository at given commits, in a scratch folder, removed on close."""

    def __init__(self, repo: str):
        self.repo, self.folder, self.made = repo, tempfile.mkdtemp(prefix="hadamard-bench-ab-"), []

    def add(self, name: str, commit: str) -> str:
        path = str(Path(self.folder, name))
        git(self.repo, "worktree", "add", "--detach", "--quiet", path, commit)
        self.made.append(path)
        return path

    def close(self) -> None:
        for path in self.made:
            subprocess.run(["git", "-C", self.repo, "worktree", "remove", "--force", path], capture_output=True)
        self.made = []
        shutil.rmtree(self.folder, ignore_errors=True)  # each session left an empty folder in /tmp

    def __enter__(self) -> "Worktrees":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SideFailed(RuntimeError):
    """A side's process died or stopped answering: the outcome its cell gets."""

    def __init__(self, outcome: CellOutcome):
        super().__init__(outcome.message)
        self.outcome = outcome


class SideProcess:
    """One side's worker process and the socket its requests travel on."""

    def __init__(self, side: Side, timeout_s: float, cpus: set[int], plugin: str | None = None):
        self.side, self.timeout_s = side, timeout_s
        mine, theirs = socket.socketpair()
        env = {**SIDE_ENV_DEFAULTS, **os.environ, **allocator_env(side=True), **side.env}
        if plugin and plugin not in plugins.named_in_env():
            env[plugins.ENV_VAR] = ",".join([*plugins.named_in_env(), plugin])
        command = [side.python, "-m", "bench_runner.side_worker", str(theirs.fileno())]
        command += ["--project", side.project] if side.project else []
        command += ["--plugin", plugin, "--plugin-path", side.plugin_path] if plugin and side.plugin_path else []
        try:
            # From the driver's checkout: `-m` puts it first on the path, so bench_runner is the driver's.
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, pass_fds=[theirs.fileno()],
                                            preexec_fn=lambda: _side_starts(cpus))
        except OSError as exc:
            raise AbError(f"the {side.name} side's interpreter {side.python} cannot start: {exc.strerror}") from None
        finally:
            theirs.close()
        self.conn = Connection(mine.detach())

    def wait_ready(self) -> "SideProcess":
        """The process once it has imported its catalogue, or a one-line AbError (and it stopped)."""
        answer = self._receive(START_TIMEOUT_S)
        if answer is None or answer[0] != "ready":
            why = answer[1] if answer else f"exit status {self.process.poll()}; its error is above"
            self.close()
            raise AbError(f"the {self.side.name} side ({self.side.revision}) did not start: {why}")
        self.facts = dict(answer[1] or {})  # machine.process_facts, as the side's process has them
        return self

    def _receive(self, timeout_s: float):
        try:
            if self.conn.poll(timeout_s):
                return self.conn.recv()
        except (EOFError, OSError):
            pass
        return None

    def ask(self, *message):
        """The side's answer, or SideFailed (and the process stopped) when none comes in time, or
        its process ended. The socket closes as the process begins to exit, before it has exited:
        a side that died on a cell was once stored `timeout` ("no answer within 300 s"), at once."""
        try:
            self.conn.send(message)
        except (OSError, BrokenPipeError):
            pass
        try:
            if self.conn.poll(self.timeout_s):
                return self.conn.recv()
            hung = True
        except (EOFError, OSError):  # its end closed: the process is exiting, or has
            hung = False
        self.close()
        raise SideFailed(CellOutcome("timeout", f"no answer within {self.timeout_s:g} s; the side was stopped")
                         if hung else died(self.process.returncode, "the side's process"))

    def close(self) -> None:
        self.ask_to_stop()
        self.wait_stopped()

    def ask_to_stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, BrokenPipeError):
            pass

    def wait_stopped(self) -> None:
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.conn.close()


def _side_starts(cpus: set[int]) -> None:
    """In a side's process before it runs Python: pinned to the session's CPUs, and the signals that
    stop a command held back until it can stop quietly (worker.stop_signals_held says why)."""
    os.sched_setaffinity(0, cpus)
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def revive(procs: list[SideProcess], sides: Sequence[Side], timeout_s: float, cpus: set[int],
           plugin: str | None = None) -> None:
    """A side whose process died (its socket closed) started again in its place, for what comes next."""
    for i, proc in enumerate(procs):
        if proc.conn.closed:
            procs[i] = SideProcess(sides[i], timeout_s, cpus, plugin).wait_ready()


def side_drifts(procs: Sequence[SideProcess], devices: Sequence[str]) -> list[dict]:
    """Each side's drift controls (calibration.drift_control), timed in its own process, one side
    after the other, before a round's first cell, as a plain run's worker times them: a run's
    rounds then say, whichever way it was measured, where the machine stood. About 0.2 s a side on
    a 2-vCPU VM. A side that died on them stores why and is started again (revive)."""
    found = []
    for proc in procs:
        try:
            found.append(proc.ask("drift", list(devices)) if devices else {})
        except SideFailed as exc:
            found.append({"error": str(exc)[:200]})
    return found


def stop_sides(procs: Sequence[SideProcess]) -> None:
    """Every process still open stopped, all asked first: a process that has imported torch takes
    about half a second to tear down, and the sides can do that together."""
    running = [proc for proc in procs if not proc.conn.closed]
    for proc in running:
        proc.ask_to_stop()
    for proc in running:
        proc.wait_stopped()


def start_sides(sides: Sequence[Side], timeout_s: float, cpus: set[int], plugin: str | None = None
                ) -> list[SideProcess]:
    """A ready process for each side, started together: each imports torch and its catalogue, some
    seconds on a busy machine, and one after the other a session paid that twice every round
    (2.7 s a start on a 2-vCPU VM, 16 of a 35-s toy session of 3 rounds). Nothing is timed yet,
    so the two imports may share the cores. A side that cannot start stops the others."""
    procs: list[SideProcess] = []
    try:
        for side in sides:
            procs.append(SideProcess(side, timeout_s, cpus, plugin))
        return [proc.wait_ready() for proc in procs]
    except BaseException:
        stop_sides(procs)
        raise


def one_cell(procs: list[SideProcess], cell: Cell, check: bool, policy: defaults.TimingPolicy,
             rng: random.Random) -> list[CellOutcome]:
    """Both sides' outcomes of one cell: taking turns when both can run it; a side that cannot
    ends as its own outcome, and the other is then timed alone. Which side builds the cell
    first, and the order of each cycle's turns, are drawn from `rng`."""
    outcomes: list[CellOutcome | None] = [None, None]
    # The side that built the cell last starts its turns warm. With the base always building first,
    # on a 2-vCPU VM (2026-12-05), the first cycle's log ratio of head over base read -2.4%
    # (median) over the 110 cells of a quiet A/A, and -7% in its cells of 2-10 ms, where later
    # cycles read -0.3%: a bias towards the head in every round. Drawn at random, the side that
    # built first read about 1% slower in the first cycle either way, which the rounds average out;
    # an untimed cycle before the timed ones did not remove it
    # (docs/notes/2026-12-05-the-side-that-built-last.md).
    builders = list(range(len(procs)))
    rng.shuffle(builders)
    for i in builders:
        proc = procs[i]
        try:
            state, why = proc.ask("prepare", cell, check, policy)
            outcomes[i] = why if state == "outcome" else None
        except SideFailed as failed:
            outcomes[i] = failed.outcome
    ready = [i for i in range(len(procs)) if outcomes[i] is None]
    try:
        samples = timing.take_turns([lambda p=procs[i]: p.ask("turn", cell) for i in ready], policy, rng,
                                    ratio_known if len(ready) == 2 else None)
    except SideFailed as failed:  # which side failed: the other is timed alone
        dead = next(i for i in ready if procs[i].process.poll() is not None or procs[i].conn.closed)
        outcomes[dead] = failed.outcome
        ready = [i for i in ready if i != dead]
        samples = timing.take_turns([lambda p=procs[i]: p.ask("turn", cell) for i in ready], policy, rng)
    for i, found in zip(ready, samples):
        try:
            outcomes[i] = procs[i].ask("finish", cell, found, len(ready) if len(ready) > 1 else 0)
        except SideFailed as failed:
            outcomes[i] = failed.outcome
    return outcomes


def round_policy(policy: defaults.TimingPolicy) -> defaults.TimingPolicy:
    """How one round of a session times a cell: at least MIN_CYCLES cycles, then on until its ratio
    is known (ratio_known), spending at most BUDGET_FACTOR times the suite's timed budget."""
    return dataclasses.replace(policy, min_samples=max(policy.min_samples, MIN_CYCLES),
                               budget_s=policy.budget_s * BUDGET_FACTOR)


def start_runs(factory: sessionmaker[Session], catalogue, sel: selection.Selection, cells: Sequence[Cell],
               policy: defaults.TimingPolicy, sides: Sequence[Side], rounds: int, seed: int,
               facts: Sequence[dict] = (), look: int | None = None) -> list[int]:
    """Two runs, one a side, that name each other: the session's record. `facts`: each side's
    process_facts, as its process reported them when it started (its torch, threads...), stored
    over the driver's; `look`: the round after which decided cells stop (measure), stored with
    the side's description, so that a cell with fewer rounds than its run says why."""
    runs = []
    for side, known in zip(sides, list(facts) or [{}] * len(sides)):
        run_id = sweep.start(factory, catalogue, sel, cells, policy, rounds=rounds, seed=seed)
        runs.append(run_id)
        with factory() as session, session.begin():
            run = session.get(Run, run_id)
            allocator = {k: side.env.get(k, v) if k.isupper() else v for k, v in allocator_setting(side=True).items()}
            run.provenance = {**run.provenance, **known, "ab": side.describe() | {"look": look}, "allocator": allocator,
                              **({"git_commit": side.commit} if side.project else {})}
    with factory() as session, session.begin():
        session.get(Run, runs[0]).paired_with, session.get(Run, runs[1]).paired_with = runs[1], runs[0]
        for run_id in runs:
            store.set_status(session, run_id, "running")
    return runs


def measure(factory: sessionmaker[Session], runs: Sequence[int], sides: Sequence[Side], cells: Sequence[Cell],
            policy: defaults.TimingPolicy, rounds: int, seed: int, timeout_s: float, plugin: str | None = None,
            on_cell: Callable[[Cell, int], None] | None = None, started: list[SideProcess] | None = None,
            ceilings: dict | None = None, look: int | None = None, floor: float = defaults.FLOOR) -> set[Cell]:
    """Every cell in `rounds` rounds, each round with fresh side processes (the first round's may be
    given `started`, as the command checked them), each side's drift controls (side_drifts) and its
    own shuffled order; each side's outcome stored in its run as `run` stores a round, its roofline
    fraction and plausibility against `ceilings` (sweep.calibrate's). A cell not `ok` on a side
    (failed, or stored implausible) is not measured again on either, its rounds to come counted
    done; nor, after round `look` (look_round), one whose verdict against `floor` is known there
    (stats.decided_early). `on_cell(cell, n)`: n of the cell's rounds done, on both sides. Returns
    the cells decided at the look."""
    cpus = os.sched_getaffinity(0)
    policy = round_policy(policy)
    failed: set[Cell] = set()
    decided: set[Cell] = set()
    logs: dict[Cell, list[np.ndarray]] = {}  # a cell's per-cycle log ratios of head over base, by round
    devices = sorted({c.device for c in cells if not device_unavailable(c.device)})
    for round_index in range(rounds):
        watch = sweep.RoundWatch.begin(devices)
        with factory() as session, session.begin():
            records = [store.start_round(session, run_id, round_index, seed, os.getpid()).id for run_id in runs]
        # The sides' CPU seconds before the round: those the command started (and checked) before it
        # have already spent some importing; fresh ones spend theirs within it.
        spent_before = {proc.process.pid: _cpu_seconds(proc) for proc in started or []}
        procs, started = started or start_sides(sides, timeout_s, cpus, plugin), None
        measured = 0
        try:
            drifts = side_drifts(procs, devices)
            with factory() as session, session.begin():
                for record_id, drift in zip(records, drifts):
                    store.note_round_drift(session, record_id, drift)
            revive(procs, sides, timeout_s, cpus, plugin)
            for cell in selection.round_order(cells, seed, round_index):
                if cell in failed or cell in decided:
                    continue
                rng = random.Random(f"{seed}:{round_index}:{cell.group()}:{cell.method}:{cell.backend}")
                outcomes = one_cell(procs, cell, round_index == 0, policy, rng)
                revive(procs, sides, timeout_s, cpus, plugin)
                with factory() as session, session.begin():
                    stored = [record.store_round(session, run_id, cell, outcome, round_index, rounds,
                                                 (ceilings or {}).get(cell.device))
                              for run_id, outcome in zip(runs, outcomes)]
                    # As a plain run does, a cell not `ok` on a side (failed, or found implausible at
                    # its first measurement) is measured in no later round, and those count as done.
                    dropped = any(o.status != "ok" for o in outcomes) or any(s != "ok" for s in stored)
                    done = rounds - round_index if dropped else 1
                    for run_id, status in zip(runs, stored):
                        counted = record.rounds_settled(round_index == 0, status, round_index, rounds)
                        if done > counted:
                            store.count_progress(session, run_id, done - counted)
                measured += 1
                if dropped:
                    failed.add(cell)
                elif all(o.interleaved for o in outcomes):
                    # Taken as `compare` takes them from the stored samples, to the last bit: the look's
                    # bootstrap is then seeded as `compare`'s is (stats.data_seed), and a cell decided here
                    # is judged there on the very draws whose stricter interval decided it. (Taken with
                    # np.log, whose last bit differs from math.log's now and then, 4 of 110 borderline A/A
                    # cells were decided here against what `compare`'s pairs would have decided.)
                    logs.setdefault(cell, []).extend(stats.paired_log_ratios(*[
                        (o.samples, None, list(range(len(o.samples)))) for o in outcomes]))
                if on_cell:
                    on_cell(cell, done)
            # Read while the sides live; a side that died mid-round took its seconds with it, and they
            # count as other processes' (a crash is rare, and its cell says so).
            ours = sum(_cpu_seconds(proc) - spent_before.get(proc.process.pid, 0.0) for proc in procs)
        finally:
            stop_sides(procs)
        # What the machine did while the round ran, as `run` stores it for a plain run's round (load,
        # other processes' share of the CPUs, steal, a GPU's telemetry), the same for both runs: they
        # shared the round. The drift controls are each side's own, timed under its settings.
        state = watch.state(ours)
        with factory() as session, session.begin():
            for record_id, drift in zip(records, drifts):
                store.finish_round(session, record_id, measured, dataclasses.replace(state, drift=drift))
        if round_index + 1 == look:
            decided = {cell for cell, found in logs.items() if cell not in failed and stats.decided_early(found, floor)}
            with factory() as session, session.begin():  # their rounds to come count as done, as a failed cell's
                for run_id in runs:
                    store.count_progress(session, run_id, len(decided) * (rounds - look))
            for cell in decided if on_cell else ():
                on_cell(cell, rounds - look)
    return decided


# A session of this many rounds or more looks at its cells halfway (look_round): from fewer, the
# look's few rounds (a t interval of 2 degrees of freedom at 6 rounds) seldom decide anything.
LOOK_FROM_ROUNDS = 8


def look_round(rounds: int) -> int | None:
    """After which round a session of `rounds` rounds looks at its cells (stats.decided_early): half
    of them, from LOOK_FROM_ROUNDS on; None, never."""
    return rounds // 2 if rounds >= LOOK_FROM_ROUNDS else None


def _cpu_seconds(proc: SideProcess) -> float:
    """A side process's CPU seconds so far; 0 once it has exited."""
    return machine_state.process_cpu_seconds(proc.process.pid) or 0.0
