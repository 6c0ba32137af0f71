"""One side of an `ab` session: a process that builds and times one version's cells when the
driver (bench_runner.ab) asks, so that two versions can take turns block by block.

    python -m bench_runner.side_worker FD [--project DIR] [--plugin MODULE --plugin-path DIR]

The driver starts it from its own checkout, so both sides are timed by the same measurement
code; `--project` names the side's worktree, whose catalogue (hadamard_bench and
hadamard_impls) is imported from there, and `--plugin-path` a plugin's worktree, from which
the plugin MODULE is imported before the plugins named in HADAMARD_BENCH_PLUGINS register.
FD is the side's end of a socket pair: requests and answers travel on it, pickled, one at a
time.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import os
import sys


def import_from(name: str, folder: str):
    """The top-level module or package `name` imported from `folder`, whatever the path holds:
    its submodules then come from there too (through the package's own path), and every later
    `import name` finds it."""
    spec = importlib.machinery.PathFinder.find_spec(name, [folder])
    if spec is None:
        raise ImportError(f"no module {name!r} in {folder}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def catalogue_of(project: str | None, plugin_path: str | None, plugin: str | None):
    """The side's catalogue with its plugin: the catalogue (hadamard_bench, then hadamard_impls)
    imported from `project`, the plugin module from `plugin_path`; bench_runner stays the driver's,
    and so do the words it measures and stores in (hadamard_bench.vocabulary and .errors, imported
    here first, so that the side's package finds them already loaded): an older side's catalogue
    reads the driver's vocabulary, which only grows, instead of the driver's code failing on a
    word the older vocabulary lacked."""
    if project:
        import hadamard_bench.errors  # noqa: F401
        import hadamard_bench.vocabulary  # noqa: F401

        import_from("hadamard_bench", project)
        import_from("hadamard_impls", project)
    if plugin and plugin_path:
        import_from(plugin.partition(":")[0], plugin_path)
    from .worker import load_catalogue

    return load_catalogue("hadamard_bench.plugins:loaded_catalogue")


class Side:
    """The cells this process has built, by key: each prepared, warmed up and sized once per
    round, then timed a block per turn, then finished."""

    def __init__(self, catalogue):
        self.catalogue, self.prepared = catalogue, {}

    def prepare(self, cell, check: bool, policy):
        """Build, check and warm up `cell`: ("ready", None), or ("outcome", why it cannot run)."""
        from . import cell as cells
        from . import timing

        found = cells.prepare(self.catalogue, cell, policy, check)  # each cell alone, as run_cell times it
        if isinstance(found, cells.CellOutcome):
            cells.release({cell.device})
            return "outcome", found
        try:
            # Sized as a group's members are, with the suite's own block (0.5 ms in quick; 2 ms
            # blocks read no better between processes: docs/notes/2026-12-03-ab-sides-with-2-ms-blocks.md),
            # and no block timed to prove what the warm-up call showed: over the 110 cells of
            # benchmarks/reproducibility.py that block took 0.8 s of the 5.0 s one side spent preparing
            # a round, with the sides' allocator setting (2026-12-04).
            with timing.collector_paused():
                warmup_calls, calls, per_call = timing.size_for_turns(found.call, found.clock, found.policy,
                                                                      found.policy.min_block_s)
        except Exception as exc:  # noqa: BLE001 -- every failure becomes a stored status
            cells.release({cell.device})
            return "outcome", cells.failed(exc)
        self.prepared[cell] = (found, warmup_calls, calls, timing.turn_of(found.call, found.clock, calls, per_call))
        return "ready", None

    def turn(self, cell) -> tuple[float, int]:
        """One turn of `cell`: its untimed calls (none for a long call: timing.turn_of), then a timed block (seconds, calls)."""
        from . import timing

        with timing.collector_paused():
            return self.prepared[cell][3]()

    def drift(self, devices: list[str]) -> dict:
        """The drift controls of `devices`, timed in this process under the side's own settings (its
        threads, its allocator), as a plain run's worker times them as its round begins."""
        from .calibration import drift_controls

        return drift_controls(devices)

    def finish(self, cell, samples: list[float], members: int):
        from . import cell as cells
        from . import timing

        found, warmup_calls, calls, _ = self.prepared.pop(cell)
        try:
            return cells.finish(found, timing.Measurement(tuple(samples), calls, warmup_calls), members=members)
        finally:
            cells.release({cell.device})


def serve(conn, side: Side) -> None:
    while True:
        message = conn.recv()
        if message is None:
            return
        verb, *args = message
        conn.send(getattr(side, verb)(*args))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fd", type=int)
    parser.add_argument("--project")
    parser.add_argument("--plugin")
    parser.add_argument("--plugin-path")
    args = parser.parse_args()
    from multiprocessing.connection import Connection

    conn = Connection(args.fd)
    try:
        side = Side(catalogue_of(args.project, args.plugin_path, args.plugin))
    except Exception as exc:  # noqa: BLE001 -- the driver reports it in one line
        conn.send(("failed", f"{type(exc).__name__}: {exc}"[:500]))
        return 1
    from .machine import process_facts

    conn.send(("ready", process_facts()))  # the run of this side records them, not the driver's
    from .worker import let_stop_signals_through, no_semaphore_for_progress_bars

    no_semaphore_for_progress_bars()
    try:
        let_stop_signals_through()  # held since the process started (ab._side_starts)
        serve(conn, side)
    except (KeyboardInterrupt, EOFError, BrokenPipeError, ConnectionResetError):
        # Ctrl-C reaches the terminal's whole process group, and the driver, stopping too, marks
        # the session's runs; a driver that died closed the socket. Either way nothing is left to
        # say here, and a traceback from each side would bury the driver's one line.
        pass
    # Nothing is left to keep (the driver stores every outcome), and an interpreter's teardown
    # after torch and the cells it built took 0.5-2 s, which the driver waits out before the next
    # round. An Inductor compile worker this left behind sees its parent gone and exits.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
