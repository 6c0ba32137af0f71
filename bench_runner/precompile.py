"""A run's torch.compile cells compiled on all the machine's cores before its first round.

A cold `compile` cell spends about a second in Inductor building its code (g++ on the CPU),
one cell after another in the round's single worker: the quick suite's 223 compiled cells took
200 s of its first round on a 2-vCPU VM (docs/notes/2026-12-03-where-a-cold-compile-goes.md).
Built beforehand in one process per core (at most eight), at once, the same code lands in Inductor's
on-disk cache, where the round's worker finds it: a compiled gated_ffn cell's first call then
took 0.08 s instead of 1.0 s (median, quick sizes, 2026-12-03). Nothing is timed meanwhile,
and only code carries over, the code the round would have built itself: Inductor's cache key
holds the graph, its inputs' shapes and dtypes, its settings, the thread count its CPU kernels
are built for and the float32 settings, and these processes set them as the round's worker does.

A ledger in Inductor's cache folder lists the cells compiled ahead for this torch and thread
count, so that a later run compiles ahead only what the cache lacks (a cell whose code changed
since is compiled by its round, as without this pass); clearing the cache clears the ledger.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

from .cell import COMPILE, Cell, memory_need
from .defaults import TimingPolicy

# A cell at most this share of the free memory, with one building in each process at once.
MEMORY_SHARE = 0.5

# Two processes on two cores, each with the round's OpenMP threads: spinning while they wait,
# the threads of one held up the other's. Compiling the quick suite's 223 cells from a warm
# cache took 61 s in two processes and 31 s in one; with passive waiting, 22 s in two (2026-12-03).
# Only how the threads wait changes; the code built is the same.
SPAWN_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}

# Each process holds its own torch, Inductor and catalogue: 0.43 GB resident once started, 0.51 GB
# after three compiles (2026-12-03). Eight hold about 4 GB, whatever the number of cores.
PROCESSES_MAX = 8

# Starting a process (torch, Inductor, the catalogue) costs about what compiling a cell does: a
# pass is worth it with at least this many cells for each process.
CELLS_PER_PROCESS = 2

_catalogue = None  # each process's catalogue, loaded once by _start


def processes() -> int:
    """How many processes compile ahead: one per usable CPU, at most PROCESSES_MAX."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return min(cpus, PROCESSES_MAX)


def ledger(threads: int) -> Path:
    """Where the cells compiled ahead for this torch, thread count and linker are listed (each is
    in Inductor's cache key)."""
    import torch

    from . import linker

    name = f"compiled-ahead-torch-{torch.__version__}-threads-{threads}-link-{linker.name()}.json"
    return linker.inductor_cache() / "hadamard_bench" / name


def _listed(path: Path) -> set[str]:
    try:
        return set(json.loads(path.read_text()))
    except (OSError, ValueError):
        return set()


def _name(cell: Cell) -> str:
    return json.dumps(cell.key(), sort_keys=True)


def worth_it(catalogue, cells: Sequence[Cell], processes: int, threads: int) -> list[Cell]:
    """The cells to compile ahead: the `compile` cells the ledger does not list, when there are
    processes to spare and cells enough to share among them, less those too large to build
    several at once."""
    from . import reference

    compiled = [c for c in cells if c.backend == COMPILE]
    if processes < 2 or len(compiled) < CELLS_PER_PROCESS * processes:  # before the ledger: naming it probes the linker
        return []
    done = _listed(ledger(threads))
    compiled = [c for c in compiled if _name(c) not in done]
    if len(compiled) < CELLS_PER_PROCESS * processes:
        return []
    free = {}
    chosen = []
    for cell in compiled:
        if cell.device not in free:
            try:
                free[cell.device] = reference.available_memory(cell.device)
            except Exception:  # noqa: BLE001 -- a device that cannot say is left to the round
                free[cell.device] = 0
        if free[cell.device] is None or memory_need(catalogue, cell) * processes <= MEMORY_SHARE * free[cell.device]:
            chosen.append(cell)
    return chosen


def compile_ahead(cells: Sequence[Cell], policy: TimingPolicy, threads: int, processes: int, timeout_s: float,
                  on_cell: Callable[[Cell], None] | None = None) -> dict:
    """Build every cell, and call it once in its mode, in `processes` processes at once, and list
    those built in the ledger; returns what was done, for the run's provenance. A cell that
    fails here is left to its round, which reports it. A cell that does not finish within
    `timeout_s` (the cell timeout: hung, or its process died) ends the pass: the processes are
    stopped, and the round compiles what the pass had not, under the cell timeout of its worker."""
    from .worker import spawn_environment, start_resource_tracker, stop_signals_held

    started, built, stopped = time.perf_counter(), [], False
    context = multiprocessing.get_context("spawn")  # as the workers: never a forked CUDA
    start_resource_tracker()
    # The whole pass, not only the pool's start: a process that dies is replaced by a new one.
    with spawn_environment(SPAWN_ENV):
        with stop_signals_held():  # each process lets them through in _start
            pool = context.Pool(processes, initializer=_start, initargs=(threads,))
        finished = False
        try:
            results = pool.imap(_compile, [(cell, policy) for cell in cells])
            for cell in cells:
                try:
                    if results.next(timeout_s):
                        built.append(cell)
                except multiprocessing.TimeoutError:
                    stopped = True
                    break
                if on_cell:
                    on_cell(cell)
            finished = not stopped
        finally:
            # Terminated (SIGTERM), a process exits without unlinking the semaphores Inductor
            # made in it, and the run ended on multiprocessing's "leaked semaphore" warning (1 of
            # 3 passes over 54 cells, 2026-12-05). Done, the processes are let go and exit cleanly;
            # only a pass stopped by a hung cell, or by an exception, still terminates them.
            if finished:
                pool.close()
            else:
                pool.terminate()
            pool.join()
    path = ledger(threads)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sorted(_listed(path) | {_name(c) for c in built}), indent=0))
    done = {"cells": len(built), "of": len(cells), "processes": processes,
            "seconds": round(time.perf_counter() - started, 1)}
    return {**done, "stopped": f"a cell took over {timeout_s:g} s"} if stopped else done


def _load():
    from .executor import CATALOGUE_REF
    from .worker import load_catalogue

    global _catalogue
    if _catalogue is None:
        _catalogue = load_catalogue(CATALOGUE_REF)
    return _catalogue


def _start(threads: int) -> None:
    import torch
    import torch._inductor.config

    from . import worker

    # Ctrl-C is the parent's to handle: it terminates the pool. Interrupted too, each process
    # printed a traceback from mid-compile. (SIGTERM keeps its default, to kill: a process hung in
    # native code would never run a Python handler, and the pool would wait for it for good.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker.let_stop_signals_through()
    worker.no_semaphore_for_progress_bars()

    torch.set_num_threads(threads)
    # Quiet: what Inductor warns while it builds (no code for complex operators, mcb's FFT) was
    # printed once by each process, with no cell named, above the run's progress bar. The round
    # that times a cell checks and reports it.
    warnings.simplefilter("ignore")
    # Each process builds one kernel at a time; a pool of compile workers in each would only
    # take memory. (The setting is not part of Inductor's cache key.)
    torch._inductor.config.compile_threads = 1
    try:
        _load()
    except Exception:  # noqa: BLE001 -- a process that died here would be replaced over and over;
        pass  # its cells fail in _compile instead, and the round's worker says why


def _compile(work: tuple[Cell, TimingPolicy]) -> bool:
    """Whether the cell was built and called."""
    from . import cell as cells

    cell, policy = work
    try:
        # Built as the round builds it, unchecked: the check is the round's to make and report.
        return not isinstance(cells.prepare(_load(), cell, policy, check=False), cells.CellOutcome)
    except Exception:  # noqa: BLE001 -- its round will say what is wrong with it (a catalogue that fails to load)
        return False
    finally:
        cells.release({cell.device})
