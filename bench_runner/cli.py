"""The command line: `python -m bench_runner list | run | export | import | db | submit | agent`, and
the verbs with a module of their own under commands/ (compare, history, gate, doctor).

Every bad input ends in one line on stderr and exit status 2, before anything
is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import sessionmaker

import results_db
from hadamard_bench import plugins
from hadamard_impls import catalogue
from results_db import bundle, pytest_bench, queries, store

from . import machine_state, speedups, stats, sweep
from . import history as bench_history
from .commands import EXIT_USAGE, UsageError, ab, compare, doctor, gate, history, mark, plot, positive_int, serve
from .commands.selection import rounds_flag, selection, selection_flags
from .worker import IsolatedRunner

CATALOGUE_REF = "hadamard_bench.plugins:loaded_catalogue"  # what a worker loads: the catalogue and its plugins
from .cell import dtype_unsupported

# Verbs that live in a module of their own: each adds its parser and runs its arguments.
VERB_MODULES = {"ab": ab, "compare": compare, "history": history, "gate": gate, "mark": mark, "doctor": doctor,
                "serve": serve, "plot": plot}


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage block before the error; one line is enough.
    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message}")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bench_runner",
                     description="Measure Hadamard-product primitives against the operators they replace.")
    verbs = parser.add_subparsers(dest="verb", required=True,
                                  metavar="VERB")

    p = verbs.add_parser("list", help="show the catalogue: benchmarks, methods, backends",
                         description="Show the catalogue: every benchmark with its methods. --format markdown "
                                     "writes the catalogue's documentation page (docs/catalogue.md is its output).")
    p.add_argument("--format", choices=["table", "json", "markdown"], default="table")

    p = verbs.add_parser("run", help="run a sweep and store every cell",
                         description="Run a size sweep and store every cell in the results database. "
                                     "Selection flags can be given several times.")
    p.add_argument("--resume", type=positive_int("run id"), metavar="RUN_ID",
                   help="finish an interrupted run: only its missing cells, with its own selection")
    selection_flags(p, "default: cuda when available, else cpu")
    _db_flag(p)
    p.add_argument("--threads", type=positive_int("positive number of threads"), metavar="N",
                   help="CPU threads for PyTorch (default: its own, all physical cores); stored with the run")
    rounds_flag(p)
    p.add_argument("--seed", type=positive_int("positive whole number"), metavar="N",
                   help="the seed of the rounds' shuffled order (default: a fresh one, stored with the run)")
    p.add_argument("--if-empty", action="store_true",
                   help="do nothing when the database already holds a run")
    p.add_argument("--detach", action="store_true",
                   help="run in the background; progress goes to the database, output to a log file beside "
                        "the SQLite database (for PostgreSQL, in results/)")
    p.add_argument("--wait-quiet", type=_non_negative_float, default=0.0, metavar="SECONDS",
                   help="before calibrating, wait up to this long for other processes to leave the CPUs (a "
                        "dashboard starting beside the run, a build finishing); the run then starts and says "
                        "whether the machine is still busy (default: 0, start at once)")
    _measure_flags(p)
    p.add_argument("--in-process", action="store_true",
                   help="run cells in this process instead of a worker (debugging: a crash ends the sweep)")
    _executor_flags(p)

    for module in VERB_MODULES.values():
        module.add_parser(verbs)

    p = verbs.add_parser("export", help="write the stored results as a table",
                         description="Write the stored results, one row per cell, as CSV or JSON; or whole "
                                     "runs as a bundle that `import` reads into another database.")
    _db_flag(p)
    p.add_argument("--format", choices=["csv", "json", "bundle", "pytest-benchmark"], default="csv",
                   help="csv, json: one row per cell; bundle: whole runs with their machine, provenance, "
                        "calibration and samples, lossless; pytest-benchmark: the layout of "
                        "`pytest --benchmark-json`, for `pytest-benchmark compare`")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write ('-' for stdout)")
    p.add_argument("--run", type=int, metavar="RUN_ID", help="only this run")
    p.add_argument("--allow-dirty", action="store_true",
                   help="export a bundle of runs measured from a checkout with local changes (the bundle says so)")

    p = verbs.add_parser("import", help="store the runs of a results bundle or a pytest-benchmark JSON",
                         description="Store the runs of a bundle written by `export --format bundle` "
                                     "(a GPU server's results, or results/reference/*.json), or the file "
                                     "`pytest --benchmark-json` writes. Checked in full first: a bad file "
                                     "writes nothing. Runs already present are skipped.")
    p.add_argument("file", metavar="FILE")
    _db_flag(p)
    p.add_argument("--label", help="the name charts give the bundle's machine, if this database has not seen it")

    p = verbs.add_parser("submit", help="queue a run for the agents of a machine label",
                         description="Queue a run in the database for `bench_runner agent --label LABEL` "
                                     "on a benchmark machine to claim and run. The selection is checked "
                                     "against the catalogue now; nothing runs here.")
    p.add_argument("--label", required=True, type=_label, help="the agents' machine label, e.g. gpu-server")
    selection_flags(p, "default: cuda (the agent's GPU)")
    rounds_flag(p)
    _db_flag(p)

    p = verbs.add_parser("agent", help="run the runs queued for this machine's label",
                         description="Poll the database for runs submitted for LABEL, claim one at a time "
                                     "(no run is taken twice, whatever the number of agents) and run it "
                                     "here, cell by cell; the dashboard shows the agent alive while it runs.")
    p.add_argument("--label", required=True, type=_label, help="this machine's label, e.g. gpu-server")
    _db_flag(p)
    p.add_argument("--poll", type=_positive_float, default=5.0, metavar="SECONDS",
                   help="how often to look for queued runs (default: 5)")
    p.add_argument("--once", action="store_true", help="stop when the queue is empty instead of waiting")
    p.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    _measure_flags(p)
    _executor_flags(p)  # an agent on a Ray cluster's head runs each claimed run over the cluster

    p = verbs.add_parser("db", help="the database's schema: its version, or upgrade it",
                         description="status: the schema version of the results database. upgrade: migrate a "
                                     "database made by an earlier Hadamard Bench (opening one does it too; an "
                                     "SQLite file is copied to NAME.before-VERSION first).")
    p.add_argument("action", choices=["status", "upgrade"])
    _db_flag(p)
    for verb in verbs.choices.values():  # every verb measures or shows the catalogue with its plugins
        verb.add_argument("--plugin", action="append", default=[], metavar="MODULE[:CALLABLE]",
                          help=f"also register the methods of this module's callable (default name: register); "
                               f"installed plugins ({plugins.GROUP} entry points) and ${plugins.ENV_VAR} load always")
    return parser


def _measure_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--cell-timeout", type=_positive_float, metavar="SECONDS",
                   help="stop a cell's worker after this long and store the cell as `timeout` "
                        "(default: 300 s; 1800 s for the full suite)")
    p.add_argument("--warm-l2", action="store_true",
                   help="CUDA: keep the L2 cache warm between timed calls (default: flush it before each)")
    p.add_argument("--energy", action="store_true",
                   help="also measure each cell's energy per call and mean power (NVML on a GPU, RAPL on a CPU "
                        "where readable): a second of repeated calls per cell")
    p.add_argument("--settle", type=_non_negative_float, metavar="SECONDS",
                   help="CPU on several threads: before timing a cell, wait up to this long while a small "
                        "threaded probe reads slower than the run's best (a VM whose cores are briefly slow to "
                        "work together); 0 never waits (default: smoke 0, else "
                        f"{sweep.POLICIES['quick'].settle_s:g})")
    p.add_argument("--retakes", type=positive_int("number of retake passes (0 or more)", zero_allowed=True),
                   metavar="N",
                   help="after the rounds, time again up to N times each cell a slow spell of the cores left "
                        "unsettled, once the spell has passed, in place of that round; 0 never does (default: "
                        + ", ".join(f"{suite} {policy.retakes}" for suite, policy in sweep.POLICIES.items()) + ")")
    p.add_argument("--one-at-a-time", action="store_true",
                   help="time each cell on its own, one after the other, instead of letting the methods and "
                        "backends of one benchmark, size, device, dtype and mode take turns block by block "
                        "(the default, which pairs their samples so speed-ups share the machine's drift)")


def _label(text: str) -> str:
    if not 0 < len(text) <= 40 or not all(c.isalnum() or c in "._-" for c in text):
        raise argparse.ArgumentTypeError(f"{text[:60]!r} is not a label (1 to 40 letters, digits, '.', '_', '-')")
    return text


def _seconds(text: str, zero_allowed: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value >= 0 if zero_allowed else value > 0) or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a {'non-negative' if zero_allowed else 'positive'} "
                                         f"number of seconds")
    return value


def _positive_float(text: str) -> float:
    return _seconds(text)


def _non_negative_float(text: str) -> float:
    return _seconds(text, zero_allowed=True)


def _db_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="URL",
                   help=f"SQLAlchemy URL (default: ${results_db.engine.ENV_VAR}, "
                        f"else sqlite:///results/hadamard_bench.db)")


def _cmd_list(args) -> int:
    benchmarks, methods = sweep.catalogue_rows(catalogue)
    if args.format == "json":
        print(json.dumps({"benchmarks": benchmarks, "methods": methods}, indent=2))
        return 0
    if args.format == "markdown":
        from .catalogue_doc import document

        sys.stdout.write(document(catalogue))
        return 0
    width = max(len(m.id) for m in catalogue.methods())
    for bench in catalogue.benchmarks.values():
        origin = f"  (from plugin {bench.origin})" if bench.origin else ""
        print(f"{bench.id}  [{bench.domain}]  {bench.contract}  sizes: {', '.join(bench.params)}{origin}")
        for m in bench.methods.values():
            origin = f"  (from plugin {m.origin})" if m.origin and m.origin != bench.origin else ""
            print(f"  {m.id:<{width}}  {m.role:<9}  {','.join(m.backends):<22}  {m.summary}{origin}")
    return 0


def _cmd_run(args) -> int:
    url = results_db.check_url(results_db.resolve_url(args.db))
    if args.resume:
        return _resume(args, url)
    if not args.suite:
        raise UsageError("bench_runner run: one of the arguments --suite or --resume is required")
    sel = selection(args, args.device or (["cuda"] if _cuda_available() else ["cpu"]))
    cells = sweep.plan(catalogue, sel)
    for device in sel.devices:
        for dtype in sel.dtypes:
            reason = dtype_unsupported(device, dtype)
            if reason:
                raise UsageError(f"bench_runner run: --dtype {dtype} cannot run on {device}: {reason}")

    engine = results_db.open_engine(url.render_as_string(hide_password=False))
    factory = sessionmaker(engine)
    _ray_options(args)  # a bad executor flag is refused before anything is stored
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
    policy = _policy(args, sel.suite)
    busy, waited = machine_state.wait_until_quiet(args.wait_quiet)
    if waited >= 1:
        print(f"waited {waited:.0f} s for the machine to be quiet{': still busy' if busy else ''}", file=sys.stderr)
    run_id = sweep.start(factory, catalogue, sel, cells, policy, rounds=args.rounds, seed=args.seed, busy=busy)
    rounds = args.rounds or sweep.ROUNDS[sel.suite]
    print(f"run {run_id}: {len(cells)} cells of the {sel.suite} suite, {rounds} round{'s' * (rounds > 1)}, "
          f"into {url.render_as_string()}", file=sys.stderr)
    if busy:
        print(f"run {run_id}: this machine is busy ({'; '.join(busy)}): its timings may not reproduce; "
              f"see `python -m bench_runner doctor`", file=sys.stderr)
    return _sweep(args, factory, run_id, policy, cells, sel.suite)


def _resume(args, url) -> int:
    """Take up an interrupted run where it stopped: the cells it has not stored, nothing twice."""
    if (args.suite or args.benchmark or args.method or args.backend or args.device or args.dtype or args.mode
            or args.size or args.rounds or args.seed):
        raise UsageError("bench_runner run: --resume takes the run's own selection; give no other selection flag")
    if url.get_backend_name() == "sqlite" and not Path(url.database).exists():
        raise UsageError(f"bench_runner run: no results database at {url.database}")
    factory = sessionmaker(results_db.open_engine(url.render_as_string(hide_password=False), create=False))
    with factory() as session, session.begin():
        run = session.get(results_db.Run, args.resume)
        if run is None:
            raise UsageError(f"bench_runner run: no run {args.resume} in this database")
        if run.status in ("finished", "cancelled"):
            raise UsageError(f"bench_runner run: run {run.id} has {run.status}; nothing to resume")
        if run.status in ("queued", "running", "cancelling") and sweep.process_alive(run):
            raise UsageError(f"bench_runner run: run {run.id} is still {run.status} (pid {run.pid})")
        sel = sweep.Selection.from_options(run.options)
        cells = sweep.plan(catalogue, sel)
        missing, rounds = run.cells_total - run.cells_done, run.rounds
        if args.detach:
            return _detach(args)
        store.reopen_run(session, run.id, os.getpid())
    policy = _policy(args, sel.suite)
    print(f"run {args.resume} resumed: {missing} of its {len(cells) * rounds} measurements ({len(cells)} cells × "
          f"{rounds} round{'s' * (rounds > 1)}) are missing", file=sys.stderr)
    return _sweep(args, factory, args.resume, policy, cells, sel.suite)


def _policy(args, suite: str):
    """The suite's timing policy, with the L2 flush, energy and settling as the command asked."""
    policy = dataclasses.replace(sweep.POLICIES[suite], flush_l2=not args.warm_l2,
                                 energy=bool(getattr(args, "energy", False)))
    if getattr(args, "settle", None) is not None:
        policy = dataclasses.replace(policy, settle_s=args.settle)
    if getattr(args, "retakes", None) is not None:
        policy = dataclasses.replace(policy, retakes=args.retakes)
    if getattr(args, "one_at_a_time", False):
        policy = dataclasses.replace(policy, interleave=False)
    return policy


def _sweep(args, factory, run_id: int, policy, cells, suite: str) -> int:
    """Wait for this machine's earlier runs, run the cells in the run's rounds, and record how the
    run ended."""
    with factory() as session:
        run = session.get(results_db.Run, run_id)
        rounds, seed, done = run.rounds, run.seed or 0, run.cells_done
        # Workers run with the thread count the run stored (a resumed run keeps its own). On Ray the
        # driver's default says nothing about the nodes: only an explicit --threads counts there.
        threads = getattr(args, "threads", None) or (
            (run.provenance or {}).get("threads") if getattr(args, "executor", "local") == "local" else None)
    try:
        sweep.wait_for_turn(factory, run_id, on_wait=lambda ahead: print(
            f"run {run_id} waits for run {', '.join(map(str, ahead))} on this machine", file=sys.stderr))
        counts = _execute_with_progress(factory, run_id, policy, cells, quiet=args.quiet,
                                        isolate=not args.in_process,
                                        timeout_s=args.cell_timeout or sweep.CELL_TIMEOUT_S[suite],
                                        rounds=rounds, seed=seed, done=done,
                                        threads=threads, ray=_ray_options(args))
    except KeyboardInterrupt:
        with factory() as session, session.begin():
            store.finish_run(session, run_id, "interrupted", "stopped by the user")
        print(f"run {run_id} interrupted; finished cells are kept", file=sys.stderr)
        return 130
    except BaseException as exc:
        with factory() as session, session.begin():
            store.finish_run(session, run_id, "failed", f"{type(exc).__name__}: {exc}"[:500])
        raise
    with factory() as session, session.begin():
        ended = "cancelled" if store.run_status(session, run_id) == "cancelling" else "finished"
        store.finish_run(session, run_id, ended)
    print(f"run {run_id} {ended}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
          file=sys.stderr)
    with factory() as session:
        retakes = stats.retake_text(queries.round_states(session, [run_id]), run_id)
    if retakes:
        print(f"run {run_id}: {retakes}", file=sys.stderr)
    _refresh_history(factory, run_id, args.quiet)
    return 0


def _refresh_history(factory, run_id: int, quiet: bool) -> None:
    """Bring the run's fingerprint's history points up to date, so `history`, `gate` and the
    History page read stored points. Its results are already committed: a failure here costs
    nothing but time (the next reader recomputes), so it is reported, not raised."""
    try:
        with factory() as session, session.begin():
            fingerprint = session.get(results_db.Run, run_id).machine.fingerprint
            points = bench_history.refresh(session, fingerprint)
        if points and not quiet:
            print(f"history: {len(points)} points and their cells' change points brought up to date",
                  file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 -- never lose a finished run over a derived cache
        print(f"history not brought up to date ({type(exc).__name__}: {exc}); the next reader will",
              file=sys.stderr)


def _executor_flags(p) -> None:
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local: one cell at a time in a worker process here (default); ray: every round's cells "
                        "as Ray tasks, each with a GPU (CUDA) or the run's threads in CPUs to itself (docs/team.md)")
    p.add_argument("--ray-address", metavar="ADDRESS",
                   help="the Ray cluster to use (as `ray start` printed it; default: start one here for the run)")
    p.add_argument("--ray-resource", action="append", default=[], metavar="NAME=AMOUNT",
                   help="run the cells only on Ray nodes that offer this custom resource (repeatable)")
    p.add_argument("--accelerator-type", metavar="TYPE",
                   help="run the cells only on Ray nodes with this accelerator type (H100, A100, ...)")


def _ray_options(args) -> dict | None:
    """The Ray executor's settings from the run's (or agent's) flags, or None for the local executor."""
    verb = f"bench_runner {getattr(args, 'verb', 'run')}"
    if getattr(args, "executor", "local") != "ray":
        if getattr(args, "ray_address", None) or getattr(args, "ray_resource", None) \
                or getattr(args, "accelerator_type", None):
            raise UsageError(f"{verb}: --ray-address, --ray-resource and --accelerator-type need --executor ray")
        return None
    if args.in_process:
        raise UsageError(f"{verb}: --in-process and --executor ray exclude each other")
    if importlib.util.find_spec("ray") is None:
        from .ray_executor import INSTALL

        raise UsageError(f"{verb}: {INSTALL}")
    resources = {}
    for text in args.ray_resource:
        name, _, amount = text.partition("=")
        try:
            resources[name.strip()] = float(amount) if amount else 1.0
        except ValueError:
            raise UsageError(f"{verb}: --ray-resource {text!r}: expected NAME=AMOUNT, e.g. bench_gpu=1") from None
        if not name.strip() or resources[name.strip()] <= 0:
            raise UsageError(f"{verb}: --ray-resource {text!r}: expected NAME=AMOUNT with AMOUNT above 0")
    return {"address": args.ray_address, "resources": resources, "accelerator_type": args.accelerator_type,
            "plugins_env": {plugins.ENV_VAR: os.environ[plugins.ENV_VAR]} if os.environ.get(plugins.ENV_VAR) else {}}


def _execute_with_progress(factory, run_id, policy, cells, quiet: bool, isolate: bool = True,
                           timeout_s: float | None = None, rounds: int = 1, seed: int = 0,
                           done: int = 0, threads: int | None = None, ray: dict | None = None) -> dict[str, int]:
    from tqdm import tqdm

    with tqdm(total=len(cells) * rounds, initial=done, unit="cell", disable=quiet, dynamic_ncols=True) as bar:
        def on_cell(cell, status):
            bar.set_postfix_str(f"{cell.benchmark}/{cell.method}/{cell.backend} {status}", refresh=False)
            bar.update()

        retaken = [0, 0]  # (settled, tried): the bar is full by then, so the postfix counts them

        def on_retake(cell, settled):
            retaken[0] += settled
            retaken[1] += 1
            bar.set_postfix_str(f"retaking cells timed in a slow spell: {retaken[0]} of {retaken[1]} settled")

        passes = dict(rounds=rounds, seed=seed, retakes=policy.retakes, on_retake=on_retake,
                      interleave=policy.interleave and ray is None)  # a Ray task runs one cell

        if ray is not None:
            from .ray_executor import RayExecutor

            bar.set_postfix_str("starting Ray" if not ray["address"] else f"connecting to Ray at {ray['address']}")
            try:
                executor = RayExecutor(CATALOGUE_REF, policy, timeout_s, threads=threads, **ray)
            except RuntimeError as exc:
                raise UsageError(f"bench_runner run: {exc}") from None
            with executor:
                bar.set_postfix_str("calibrating the ceilings on a Ray node")
                try:
                    ceilings = sweep.calibrate(factory, run_id, cells, measure=executor.calibrate)
                except RuntimeError as exc:  # no node can take the cells
                    raise UsageError(f"bench_runner run: {exc}") from None
                return sweep.execute(factory, run_id, cells, executor, on_cell=on_cell, ceilings=ceilings,
                                     **passes)
        bar.set_postfix_str("calibrating the devices' ceilings")
        ceilings = sweep.calibrate(factory, run_id, cells)
        if not isolate:
            return sweep.execute(factory, run_id, cells, sweep.in_process(catalogue, policy),
                                 on_cell=on_cell, ceilings=ceilings, **passes)
        bar.set_postfix_str("starting the worker process")
        with IsolatedRunner(CATALOGUE_REF, policy, timeout_s, threads=threads) as run_one:
            return sweep.execute(factory, run_id, cells, run_one, on_cell=on_cell, ceilings=ceilings, **passes)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _detach(args) -> int:
    """Start this same run as a separate process that outlives the caller."""
    argv = [a for a in sys.argv[1:] if a not in ("--detach", "--if-empty")]
    what = f"run {args.resume}" if getattr(args, "resume", None) else f"the {args.suite} suite"
    # Beside its SQLite file (a scratch database keeps its logs to itself), else in results/;
    # check_url refuses an SQLite URL that names no file.
    url = results_db.check_url(results_db.resolve_url(args.db))
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


def _cmd_export(args) -> int:
    url = results_db.check_url(results_db.resolve_url(args.db))
    if url.get_backend_name() == "sqlite" and not Path(url.database).exists():
        raise UsageError(f"bench_runner export: no results database at {url.database}")
    engine = results_db.open_engine(url.render_as_string(hide_password=False), create=False)
    if args.run is not None:
        with sessionmaker(engine)() as session:
            if session.get(results_db.Run, args.run) is None:
                raise UsageError(f"bench_runner export: no run {args.run} in this database")
    out = sys.stdout if args.out == "-" else args.out
    if args.format in ("bundle", "pytest-benchmark"):
        write = bundle.export_bundle if args.format == "bundle" else pytest_bench.export
        with sessionmaker(engine)() as session:
            data = write(session, [args.run] if args.run else None)
        dirty = bundle.dirty_runs(data) if args.format == "bundle" else []
        if dirty and not args.allow_dirty:
            raise UsageError(f"bench_runner export: {len(dirty)} of the runs were measured from a checkout with "
                             f"local changes, so no commit reproduces them; --allow-dirty exports them anyway, "
                             f"and the bundle says so")
        if dirty:
            data["dirty"] = {"runs_started_at": dirty, "note": "measured from a checkout with uncommitted changes"}
        if args.out == "-":
            print(json.dumps(data, indent=1, allow_nan=False))
        else:
            bundle.write_file(data, args.out)
            what = f"{len(data['runs'])} runs" if "runs" in data else f"{len(data['benchmarks'])} benchmarks"
            print(f"wrote {what} to {args.out}", file=sys.stderr)
        return 0
    with sessionmaker(engine)() as session:  # one row per cell: csv and json, with its speed-up
        frame = queries.export_frame(session, run_id=args.run, with_ids=True)
        frame = speedups.with_speedups(frame, queries.catalogue_frame(session),
                                       queries.samples_of(session, frame.loc[frame["status"] == "ok", "result_id"]))
    frame = frame.drop(columns="result_id")
    if args.format == "csv":
        queries.spreadsheet_safe(frame).to_csv(out, index=False)
    else:
        frame.to_json(out, orient="records", date_format="iso", indent=1)
    if args.out != "-":
        print(f"wrote {len(frame)} rows to {args.out}", file=sys.stderr)
    return 0


def _cmd_import(args) -> int:
    url = results_db.check_url(results_db.resolve_url(args.db))
    try:
        data = bundle.read_file(args.file)
        kind = pytest_bench if pytest_bench.looks_like(data) else bundle
        if kind is bundle and "format" not in data:
            raise bundle.BundleError(f"{args.file} is neither a Hadamard Bench bundle nor a pytest-benchmark JSON")
        kind.validate(data)  # before the database is opened or created
    except bundle.BundleError as exc:
        raise UsageError(f"bench_runner import: {exc}") from None
    engine = results_db.open_engine(url.render_as_string(hide_password=False))
    store_runs = pytest_bench.import_file if kind is pytest_bench else bundle.import_bundle
    with sessionmaker(engine)() as session, session.begin():
        # The code's catalogue first: a bundle's own (older) records must not decide how its cells read.
        store.sync_catalogue(session, *sweep.catalogue_rows(catalogue))
        added, skipped = store_runs(session, data, source=Path(args.file).name, label=args.label)
    print(f"imported {len(added)} runs from {args.file}" + (f"; {skipped} were already here" if skipped else ""),
          file=sys.stderr)
    return 0


def _cmd_db(args) -> int:
    from results_db import schema

    url = results_db.check_url(results_db.resolve_url(args.db))
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database)
        if not path.exists():
            raise UsageError(f"bench_runner db: no results database at {path}")
        revision = schema.sqlite_revision(path)
    else:
        from sqlalchemy import create_engine
        from sqlalchemy.exc import OperationalError

        try:
            revision = schema.engine_revision(create_engine(url))
        except OperationalError as exc:
            raise results_db.engine.cannot_reach(args.db, exc) from None
    if args.action == "status":
        state = "empty" if revision is None else f"schema {revision}" + (
            "" if revision == schema.head() else f", older than this code's {schema.head()} (run `db upgrade`)")
        print(f"{shown}: {state}")
        return 0
    results_db.open_engine(url.render_as_string(hide_password=False), create=False).dispose()
    print(f"{shown}: " + ("already at schema " + schema.head() if revision == schema.head()
                          else f"migrated from schema {revision} to {schema.head()}"))
    return 0


def _cmd_submit(args) -> int:
    if not args.suite:
        raise UsageError("bench_runner submit: the argument --suite is required")
    url = results_db.check_url(results_db.resolve_url(args.db))
    sel = selection(args, args.device or ["cuda"])
    cells = sweep.plan(catalogue, sel)  # only catalogue ids and the suites' own sizes get queued
    factory = sessionmaker(results_db.open_engine(url.render_as_string(hide_password=False)))
    with factory() as session, session.begin():
        store.sync_catalogue(session, *sweep.catalogue_rows(catalogue))
        rounds = args.rounds or sweep.ROUNDS[sel.suite]
        run_id = store.submit_run(session, args.label, sel.suite, sel.as_options(), len(cells) * rounds,
                                  rounds=rounds, seed=sweep.new_seed()).id
    print(f"run {run_id}: {len(cells)} cells of the {sel.suite} suite, {rounds} rounds, queued for agent "
          f"{args.label!r}")
    return 0


def _cmd_agent(args) -> int:
    from .agent import serve

    url = results_db.check_url(results_db.resolve_url(args.db))
    _ray_options(args)  # a bad executor flag is refused before the agent registers
    factory = sessionmaker(results_db.open_engine(url.render_as_string(hide_password=False)))

    def run_claimed(run_id: int) -> int:
        with factory() as session, session.begin():
            run = session.get(results_db.Run, run_id)
            sel = sweep.Selection.from_options(run.options)
            try:
                cells = sweep.plan(catalogue, sel)
            except sweep.SelectionError as exc:  # submitted by a newer or older catalogue
                store.finish_run(session, run_id, "failed", f"this agent's catalogue refuses it: {exc}"[:500])
                return 1
            policy = _policy(args, sel.suite)
            store.sync_catalogue(session, *sweep.catalogue_rows(catalogue))
            run.provenance, run.cells_total = sweep.provenance_for(policy), len(cells) * run.rounds
        return _sweep(args, factory, run_id, policy, cells, sel.suite)

    return serve(factory, args.label, run_claimed, once=args.once, poll_s=args.poll,
                 say=lambda line: print(line, file=sys.stderr))


COMMANDS = {"list": _cmd_list, "run": _cmd_run, "export": _cmd_export, "import": _cmd_import, "db": _cmd_db,
            "submit": _cmd_submit, "agent": _cmd_agent, **{verb: m.run for verb, m in VERB_MODULES.items()}}


def main(argv: list[str] | None = None) -> int:
    try:
        args = _build_parser().parse_args(argv)
        if args.verb != "ab":  # ab imports its plugin from each side's worktree, not from here
            plugins.load(catalogue, args.plugin)  # before anything is written: a broken plugin stops here
        return COMMANDS[args.verb](args)
    except (UsageError, sweep.SelectionError, results_db.BadDatabaseURL, results_db.SchemaError,
            results_db.CannotOpen, plugins.PluginError) as exc:
        message = str(exc)
        if not message.startswith("bench_runner"):
            message = f"bench_runner: error: {message}"
        print(message, file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader stopped early (`compare --format csv | head`): nothing of ours failed. Standard
        # output goes to /dev/null so that flushing it at exit does not raise the same error again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
