"""`run`: measure a suite's cells into the results database, or `--resume` an interrupted run.
`agent` runs the runs it claims through the same `measure` below."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from hadamard_bench.vocabulary import counted

from .. import defaults
from . import EXIT_STOPPED, UsageError, checked_url, existing_url, sessions_on, stopped_why
from .flags import (catalogue_with_plugins, db_flag, measure_flags, more_rounds_flag, plugin_flag, positive_int,
                    rounds_flag, seconds, selected, selection_flags)

def add_parser(verbs) -> None:
    p = verbs.add_parser("run", help="run a sweep and store every cell",
                         description="Run a size sweep and store every cell in the results database. "
                                     "Selection flags can be given several times.")
    p.add_argument("--resume", type=positive_int("run id"), metavar="RUN_ID",
                   help="finish an interrupted run: only its missing cells, with its own selection and timing settings")
    selection_flags(p, "default: cuda when available, else cpu")
    db_flag(p)
    p.add_argument("--threads", type=positive_int("positive number of threads"), metavar="N",
                   help="CPU threads for PyTorch (default: its own, all physical cores); stored with the run")
    rounds_flag(p)
    more_rounds_flag(p)
    p.add_argument("--seed", type=positive_int("positive whole number"), metavar="N",
                   help="the seed of the rounds' shuffled order (default: a fresh one, stored with the run)")
    p.add_argument("--if-empty", action="store_true",
                   help="do nothing when the database already holds a run")
    p.add_argument("--detach", action="store_true",
                   help="run in the background; progress goes to the database, output to a log file beside "
                        "the SQLite database (for PostgreSQL, in results/)")
    p.add_argument("--wait-quiet", type=seconds(zero_allowed=True), default=0.0, metavar="SECONDS",
                   help="before calibrating, wait up to this long for other processes to leave the CPUs (a "
                        "dashboard starting beside the run, a build finishing); the run then starts and says "
                        "whether the machine is still busy (default: 0, start at once)")
    measure_flags(p)
    p.add_argument("--in-process", action="store_true",
                   help="run cells in this process instead of a worker (debugging: a crash ends the sweep)")
    plugin_flag(p)


def run(args) -> int:
    from results_db import queries

    from .. import machine_state, selection, sweep
    from ..cell import dtype_unsupported

    catalogue = catalogue_with_plugins(args)
    url = checked_url(args.db)
    if args.resume:
        return _resume(args, catalogue)  # its database must exist
    if not args.suite:
        raise UsageError("one of the arguments --suite or --resume is required")
    sel = selected(args, args.device or (["cuda"] if _cuda_available() else ["cpu"]))
    cells = selection.plan(catalogue, sel)
    lacking = devices_lacking(sel.devices, args.executor)
    if lacking:
        raise UsageError(f"--device {lacking}; nothing was stored")
    for device in sel.devices:
        for dtype in sel.dtypes:
            reason = dtype_unsupported(device, dtype)
            if reason:
                raise UsageError(f"--dtype {dtype} cannot run on {device}: {reason}")

    factory = sessions_on(url)
    ray_options(args)  # a bad executor flag is refused before anything is stored
    if args.if_empty:
        with factory() as session:
            if queries.has_runs(session):
                print("the results database already holds runs; nothing started")
                return 0
    if args.detach:
        return _detach(args)

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    policy = policy_for(args, sel.suite)
    busy, waited = machine_state.wait_until_quiet(args.wait_quiet)
    if waited >= 1:
        print(f"waited {waited:.0f} s for the machine to be quiet{': still busy' if busy else ''}", file=sys.stderr)
    run_id = sweep.start(factory, catalogue, sel, cells, policy, rounds=args.rounds, seed=args.seed, busy=busy)
    rounds = args.rounds or defaults.ROUNDS[sel.suite]
    print(f"run {run_id}: {counted(len(cells), 'cell')} of the {sel.suite} suite, "
          f"{counted(rounds, 'round')}, "
          f"into {url.render_as_string()}", file=sys.stderr)
    if busy:
        print(f"run {run_id}: this machine is busy ({'; '.join(busy)}): its timings may not reproduce; "
              f"see `python -m bench_runner doctor`", file=sys.stderr)
    return measure(args, factory, run_id, policy, cells, sel.suite, catalogue)


def _resume(args, catalogue) -> int:
    """Take up an interrupted run where it stopped: the cells it has not stored, nothing twice."""
    import os

    import results_db
    from results_db import store

    from .. import selection, sweep

    if (args.suite or args.benchmark or args.method or args.backend or args.device or args.dtype or args.mode
            or args.size or args.rounds or args.seed):
        raise UsageError("--resume takes the run's own selection; give no other selection flag")
    if args.energy or args.warm_l2 or args.one_at_a_time or args.settle is not None or args.more_rounds is not None:
        raise UsageError("--resume measures as the run did (its own --energy, --warm-l2, "
                         "--one-at-a-time, --settle and --more-rounds); give none of them")
    url = existing_url(args.db)
    factory = sessions_on(url, create=False)
    with factory() as session, session.begin():
        run = session.get(results_db.Run, args.resume)
        if run is None:
            raise UsageError(f"no run {args.resume} in this database")
        if not run.plain:  # measured alone here, its cells would not have taken turns with the other side's
            raise UsageError(f"run {run.id} is a side of an `ab` session (with run "
                             f"{run.paired_with}), which is not resumed; run the `ab` session again")
        if run.status in ("finished", "cancelled"):
            raise UsageError(f"run {run.id} has {run.status}; nothing to resume")
        if run.status in ("queued", "running", "cancelling") and sweep.process_alive(run):
            raise UsageError(f"run {run.id} is still {run.status} (pid {run.pid})")
        sel = selection.Selection.from_options(run.options)
        cells = selection.plan(catalogue, sel)
        missing, rounds = run.cells_total - run.cells_done, run.rounds
        if args.detach:
            return _detach(args)
        store.reopen_run(session, run.id, os.getpid())
        policy = stored_policy(run.provenance, sel.suite)
    print(f"run {args.resume} resumed: {missing} of its {len(cells) * rounds} measurements "
          f"({counted(len(cells), 'cell')} × {counted(rounds, 'round')}) are missing", file=sys.stderr)
    return measure(args, factory, args.resume, policy, cells, sel.suite, catalogue)


def _raise_storage_error(exc: BaseException, args, run_id: int) -> None:
    """A storage error that stopped the run (a full disk, a server gone, a damaged page) as its
    one line, naming the run to resume; anything else is left to rise as it is."""
    from results_db import damage

    if isinstance(exc, Exception):
        found = damage.explained(damage.database_of(args.db), exc)
        if found is not None:
            raise type(found)(str(found).replace("RUN_ID", str(run_id))) from None


def policy_for(args, suite: str) -> defaults.TimingPolicy:
    """The suite's timing policy, with the L2 flush, energy, settling, turns and more rounds as the
    command's flags ask."""
    policy = dataclasses.replace(defaults.POLICIES[suite], flush_l2=not args.warm_l2, energy=args.energy,
                                 interleave=not args.one_at_a_time)
    if getattr(args, "more_rounds", None) is not None:  # `agent` takes its submitted run's, or the suite's
        policy = dataclasses.replace(policy, more_rounds=args.more_rounds)
    if args.settle is not None:
        policy = dataclasses.replace(policy, settle_s=args.settle)
    return policy


def stored_policy(provenance: dict | None, suite: str) -> defaults.TimingPolicy:
    """The timing policy a run recorded when it started, so that the cells it measures when resumed
    are measured as its first ones were: a run started with --energy and resumed without it stored
    its remaining cells without energy (an H200 check, 2026-12-04). A run that recorded none
    takes its suite's."""
    recorded = ((provenance or {}).get("timing") or {}).get("policy") or {}
    known = {field.name for field in dataclasses.fields(defaults.TimingPolicy)}
    return dataclasses.replace(defaults.POLICIES[suite], **{k: v for k, v in recorded.items() if k in known})


def measure(args, factory, run_id: int, policy, cells, suite: str, catalogue) -> int:
    """Wait for this machine's earlier runs, run the cells in the run's rounds, and record how the
    run ended (`run`, `run --resume` and `agent`)."""
    import results_db
    from results_db import queries, store

    from .. import comparison, sweep, wording

    with factory() as session:
        run = session.get(results_db.Run, run_id)
        rounds, seed, done = run.rounds, run.seed or 0, run.cells_done
        # Workers run with the thread count the run stored (a resumed run keeps its own). On Ray the
        # driver's default says nothing about the nodes: only an explicit --threads counts there.
        threads = getattr(args, "threads", None) or (
            (run.provenance or {}).get("threads") if args.executor == "local" else None)
    try:
        sweep.wait_for_turn(factory, run_id, on_wait=lambda ahead: print(
            f"run {run_id} waits for run {', '.join(map(str, ahead))} on this machine", file=sys.stderr))
        counts = _execute_with_progress(factory, run_id, policy, cells, catalogue, quiet=args.quiet,
                                        isolate=not args.in_process,
                                        timeout_s=args.cell_timeout or defaults.CELL_TIMEOUT_S[suite],
                                        rounds=rounds, seed=seed, done=done,
                                        threads=threads, ray=ray_options(args))
    except KeyboardInterrupt as exc:  # Ctrl-C, or a signal that stops the command (commands.Stopped)
        with factory() as session, session.begin():
            run = session.get(results_db.Run, run_id)
            # Progress counts the run's own rounds only: a run stopped in its rounds more has them all.
            whole = policy.more_rounds and run.cells_total and run.cells_done >= run.cells_total
            why = stopped_why(exc) + (", in its rounds more: every round of the run was taken" if whole else "")
            store.finish_run(session, run_id, "interrupted", why)
        print(f"run {run_id} interrupted ({why}); finished cells are kept", file=sys.stderr)
        return EXIT_STOPPED
    except BaseException as exc:
        with factory() as session, session.begin():
            store.finish_run(session, run_id, "failed", f"{type(exc).__name__}: {exc}"[:500])
        _raise_storage_error(exc, args, run_id)
        raise
    with factory() as session, session.begin():
        ended = "cancelled" if store.run_status(session, run_id) == "cancelling" else "finished"
        store.finish_run(session, run_id, ended)
        failed = queries.failures_frame(session, run_id)
    print(f"run {run_id} {ended}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
          file=sys.stderr)
    if len(failed):  # which, and why, where the user is looking: not only on the Runs page
        print(f"failed: {wording.failed_cells(comparison.in_cell_order(failed))}", file=sys.stderr)
    _refresh_history(factory, run_id, args.quiet)
    return 0


def _refresh_history(factory, run_id: int, quiet: bool) -> None:
    """Bring the run's fingerprint's history points up to date, so `history`, `gate` and the
    History page read stored points. Its results are already committed: a failure here costs
    nothing but time (the next reader recomputes), so it is reported, not raised."""
    import results_db

    from .. import history

    try:
        with factory() as session, session.begin():
            fingerprint = session.get(results_db.Run, run_id).machine.fingerprint
            points = history.refresh(session, fingerprint)
        if points and not quiet:
            print(f"history: {counted(len(points), 'point')} and their cells' change points brought up to date",
                  file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 -- never lose a finished run over a derived cache
        print(f"history not brought up to date ({type(exc).__name__}: {exc}); the next reader will",
              file=sys.stderr)


def ray_options(args) -> dict | None:
    """The Ray executor's settings from the run's (or agent's) flags, or None for the local executor."""
    import importlib.util
    import os

    from hadamard_bench import plugins

    if args.executor != "ray":
        if args.ray_address or args.ray_resource or args.accelerator_type:
            raise UsageError("--ray-address, --ray-resource and --accelerator-type need --executor ray")
        return None
    if args.in_process:
        raise UsageError("--in-process and --executor ray exclude each other")
    if importlib.util.find_spec("ray") is None:
        from ..ray_executor import INSTALL

        raise UsageError(f"{INSTALL}")
    resources = {}
    for text in args.ray_resource:
        name, _, amount = text.partition("=")
        try:
            resources[name.strip()] = float(amount) if amount else 1.0
        except ValueError:
            raise UsageError(f"--ray-resource {text!r}: expected NAME=AMOUNT, e.g. bench_gpu=1") from None
        if not name.strip() or resources[name.strip()] <= 0:
            raise UsageError(f"--ray-resource {text!r}: expected NAME=AMOUNT with AMOUNT above 0")
    return {"address": args.ray_address, "resources": resources, "accelerator_type": args.accelerator_type,
            "plugins_env": {plugins.ENV_VAR: os.environ[plugins.ENV_VAR]} if os.environ.get(plugins.ENV_VAR) else {}}


def _execute_with_progress(factory, run_id, policy, cells, catalogue, quiet: bool, isolate: bool = True,
                           timeout_s: float | None = None, rounds: int = 1, seed: int = 0,
                           done: int = 0, threads: int | None = None, ray: dict | None = None) -> dict[str, int]:
    from tqdm import tqdm

    from .. import executor, sweep, worker

    worker.no_semaphore_for_progress_bars()
    if isolate and ray is None and not done:
        _compile_ahead(factory, run_id, catalogue, cells, policy, threads, timeout_s, quiet)
    with tqdm(total=len(cells) * rounds, initial=done, unit="cell", disable=quiet, dynamic_ncols=True) as bar:
        def on_cell(cell, status, cell_rounds):
            bar.set_postfix_str(f"{cell.benchmark}/{cell.method}/{cell.backend} {status}", refresh=False)
            bar.update(cell_rounds)  # a cell skipped or failed at once is not measured again: its rounds are done

        bar.set_postfix_str("starting Ray" if ray and not ray["address"] else
                            f"connecting to Ray at {ray['address']}" if ray else "calibrating the devices' ceilings")
        try:  # Ray that cannot start is said in one line
            runner = executor.for_run(catalogue, policy, timeout_s, threads, isolate, ray)
        except RuntimeError as exc:
            raise UsageError(str(exc)) from None
        with runner:
            try:
                ceilings = sweep.calibrate(factory, run_id, cells, runner)
            except RuntimeError as exc:  # on Ray: no node can take the cells
                if ray is None:
                    raise
                raise UsageError(str(exc)) from None
            def on_more(round_index, count):
                bar.total += count
                bar.refresh()
                if not quiet:
                    tqdm.write(f"run {run_id}: round {round_index + 1} of up to {rounds + policy.more_rounds} for "
                               f"{counted(count, 'cell')}: the methods whose speed-up is still inconclusive, and "
                               f"their baselines",
                               file=sys.stderr)

            return sweep.execute(factory, run_id, cells, runner, on_cell=on_cell, ceilings=ceilings, rounds=rounds,
                                 seed=seed, interleave=policy.interleave and ray is None,  # a Ray task runs one cell
                                 more_rounds=policy.more_rounds, on_more=on_more)


def _compile_ahead(factory, run_id, catalogue, cells, policy, threads, timeout_s, quiet: bool) -> None:
    """A new run's compiled cells built in one process per core before its first round (bench_runner.
    precompile), with a progress bar of their own; what was done is kept with the run."""
    import torch
    from tqdm import tqdm

    from results_db import store

    from .. import precompile

    threads = threads or torch.get_num_threads()  # what the round's worker runs with
    processes = precompile.processes()
    chosen = precompile.worth_it(catalogue, cells, processes, threads)
    if not chosen:
        return
    with tqdm(total=len(chosen), unit="cell", desc=f"compiling ahead in {processes} processes", disable=quiet,
              dynamic_ncols=True, leave=False) as bar:
        done = precompile.compile_ahead(chosen, policy, threads, processes, timeout_s, on_cell=lambda _: bar.update())
    if "stopped" in done and not quiet:
        print(f"compiling ahead stopped after {done['cells']} of {done['of']} cells ({done['stopped']}); "
              f"the rounds compile the rest", file=sys.stderr)
    with factory() as session, session.begin():
        store.note_compiled_ahead(session, run_id, done)


def devices_lacking(devices, executor: str) -> str | None:
    """Which of `devices` this machine cannot run, and why ("cuda cannot run here: no CUDA
    device"), or None: a run whose every cell would be stored `skipped` is a mistake to say at once.
    Ray's workers bring devices of their own, so a Ray run is not judged by this machine's."""
    from ..cell import device_unavailable

    if executor == "ray":
        return None
    lacking = [f"{d} cannot run here: {device_unavailable(d)}" for d in devices if device_unavailable(d)]
    return "; ".join(lacking) or None


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _detach(args) -> int:
    """Start this same run as a separate process that outlives the caller."""
    import results_db

    argv = [a for a in sys.argv[1:] if a not in ("--detach", "--if-empty")]
    what = f"run {args.resume}" if args.resume else f"the {args.suite} suite"
    # Beside its SQLite file (a scratch database keeps its logs to itself), else in results/;
    # check_url refuses an SQLite URL that names no file.
    url = checked_url(args.db)
    sqlite = url.get_backend_name() == "sqlite"
    log_dir = Path(url.database).resolve().parent if sqlite else results_db.engine.RESULTS_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"run-{datetime.now():%Y%m%d-%H%M%S}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bench_runner", *argv, "--quiet"],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # the caller's folder: a relative --db means the same
    print(f"started {what} in the background (pid {proc.pid}); log: {log}")
    return 0
