"""`noise`: measure how far runs taken at different times move apart on this machine, per cell,
and store it as the machine's noise floor. Comparisons across time (`compare` of two runs,
`gate`, History) then judge each cell at max(threshold, its drift) and say so; cells that took
turns in one session (`ab`, one run's methods) share the drift and keep the threshold."""

from __future__ import annotations

import signal
import subprocess
import sys

from . import Stopped, UsageError, checked_url, existing_db, sessions_on
from .flags import db_flag, plugin_flag, positive_int, rounds_flag, selection_flags

RUN_FLAGS = ("suite", "benchmark", "method", "backend", "size", "device", "dtype", "mode", "plugin")


def add_parser(verbs) -> None:
    p = verbs.add_parser(
        "noise", help="measure how far separate runs drift apart here, per cell: the floor comparisons across time use",
        description="Run the selection REPEAT times, one run after another (each as `run` would), or take "
                    "runs already stored (--from), and store for each cell measured in two or more of them how "
                    "far its median moves between runs taken at different times, as a margin two identical runs' "
                    "interval lies within 80% of the time (0.1% of such pairs move beyond it), from the spread "
                    "of its runs' medians, moderated towards the other cells' (three runs know one cell's "
                    "spread poorly). A run whose drift controls read more than 20% from the runs' median, "
                    "where two or more runs agree and outnumber it, is left out and named: the floors would count the "
                    "machine's other state as drift. `compare` of two runs, `gate` and History then "
                    "judge each cell at the larger of --threshold and this drift, and say which floor they "
                    "used. A new measurement replaces a cell's floor; --show lists what is stored.")
    selection_flags(p, "default: as `run`, cuda when available, else cpu")
    p.add_argument("--repeat", type=positive_int("number of runs (2 or more)"), default=3, metavar="N",
                   help="how many runs of the selection to take, one after another (default: 3); as many more "
                        "again, once, as read the machine otherwise than the others")
    rounds_flag(p)
    p.add_argument("--from", dest="runs", nargs="+", type=positive_int("run id"), metavar="RUN",
                   help="measure from these stored runs of one machine instead of running anything (two or more, "
                        "taken at different times: not the two sides of one `ab` session)")
    p.add_argument("--show", action="store_true", help="list the noise floors stored, per hardware fingerprint")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    db_flag(p)
    plugin_flag(p)


def run(args) -> int:
    if args.show:
        return _show(args)
    if args.runs:
        if args.suite or args.benchmark or args.method or args.backend or args.size or args.device or args.rounds:
            raise UsageError("--from takes stored runs; give no selection flag with it")
        run_ids = args.runs
    else:
        if not args.suite:
            raise UsageError("one of --suite (runs to take) or --from (stored runs) is required")
        if args.repeat < 2:
            raise UsageError("--repeat 1 measures no spread between runs; give 2 or more")
        run_ids = _take_runs(args, args.repeat, [])
        odd = _odd_runs(args, run_ids)
        if odd:  # taken again once, so that the floors come from as many runs as asked where the machine allows
            print(f"noise: run{'s' * (len(odd) > 1)} {', '.join(map(str, odd))} of {args.repeat} read the machine "
                  f"otherwise than the others (drift controls); taking {len(odd)} more", file=sys.stderr)
            run_ids = _take_runs(args, len(odd), run_ids)
    return _measure_from(args, run_ids)


def _odd_runs(args, run_ids: list[int]) -> list[int]:
    """Which of the runs just taken (their places, from 1) comparison.odd_runs sets apart."""
    from results_db import queries

    from .. import comparison

    with existing_db(args.db)() as session:
        odd = comparison.odd_runs(queries.round_states(session, run_ids), run_ids)
    return [run_ids.index(r) + 1 for r in sorted(odd)]


def _take_runs(args, count: int, taken: list[int]) -> list[int]:
    """Run the selection `count` times more through `run`, each a process of its own, one after
    another, after the runs `taken` before; the ids of all of them."""
    import results_db
    from sqlalchemy import select

    url = checked_url(args.db)
    factory = sessions_on(url)  # a damaged file is refused before the first run writes to it
    argv = ["--db", url.render_as_string(hide_password=False)] + (["--quiet"] if args.quiet else [])
    for flag in RUN_FLAGS:
        values = getattr(args, flag)
        for value in values if isinstance(values, list) else [values] if values else []:
            argv += [f"--{flag}", str(value)]
    if args.rounds:
        argv += ["--rounds", str(args.rounds)]
    taken, total = list(taken), len(taken) + count
    for i in range(len(taken), total):
        print(f"noise: run {i + 1} of {total}", file=sys.stderr)
        # In a session of its own, so that a signal reaches it once, through this process: Ctrl-C or a
        # SIGTERM to the group would otherwise reach it directly too, and again while it cleans up.
        proc = subprocess.Popen([sys.executable, "-m", "bench_runner", "run", *argv], start_new_session=True)
        try:
            proc.wait()
        except KeyboardInterrupt as exc:  # its run ends `interrupted`, keeping its finished cells, as this one stops
            # The signal this process got, so that the run says what stopped it: Ctrl-C, not the SIGTERM
            # that passing every stop on as one had it say.
            proc.send_signal(getattr(signal, exc.signal_name) if isinstance(exc, Stopped) else signal.SIGINT)
            proc.wait()
            raise
        if proc.returncode != 0:
            raise UsageError(f"run {i + 1} of {total} ended with status {proc.returncode}; "
                             f"the runs before it are kept ({', '.join(map(str, taken)) or 'none'}): "
                             f"`noise --from` can measure from them and more")
        with factory() as session:  # the run that process stored: the newest of its pid
            taken.append(session.scalars(select(results_db.Run.id).where(results_db.Run.pid == proc.pid)
                                         .order_by(results_db.Run.id.desc())).first())
    return taken


def _measure_from(args, run_ids: list[int]) -> int:
    """Every cell's drift from the runs' samples, stored on their fingerprint, and the cells'
    history change points searched again at their new floor."""
    from results_db import Run, history_queries, queries, store

    from .. import comparison, history, wording

    if len(set(run_ids)) < 2:
        raise UsageError("a spread between runs needs two or more different runs")
    sessions = existing_db(args.db, writes=True)
    with sessions() as session, session.begin():
        runs = [session.get(Run, r) for r in run_ids]
        missing = [r for r, row in zip(run_ids, runs) if row is None]
        if missing:
            raise UsageError(f"no run {', '.join(map(str, missing))} in this database")
        sides = [r for r in runs if not r.plain]
        if sides:
            raise UsageError(f"run {sides[0].id} is a side of an `ab` session (with run "
                             f"{sides[0].paired_with}), timed in turns on huge pages: the floor is the drift between "
                             f"plain runs, which `compare`, `gate` and History judge")
        fingerprints = {r.machine.fingerprint for r in runs}
        if len(fingerprints) > 1:
            raise UsageError(f"the runs were measured on {len(fingerprints)} different hardware "
                             f"fingerprints ({', '.join(sorted(fingerprints))}); give runs of one machine")
        fingerprint = fingerprints.pop()
        settings = comparison.timing_settings(r.provenance if isinstance(r.provenance, dict) else {} for r in runs)
        differ = {k: sorted(v) for k, v in settings.items() if len(v) > 1}
        if differ:
            raise UsageError("the runs were timed under different settings (" + "; ".join(
                f"{k} {', '.join(v)}" for k, v in differ.items()) + "): their spread would be the settings', not "
                "time's; give runs of one setting")
        states = queries.round_states(session, run_ids)
        odd = comparison.odd_runs(states, run_ids)
        kept = sorted(r for r in run_ids if r not in odd)
        table = comparison.drift_table([queries.samples_frame(session, run_id=r) for r in kept])
        if table.empty:
            raise UsageError("no cell has `ok` results in two or more of these runs")
        store.write_noise_floors(session, fingerprint, table.to_dict("records"), kept)
        history.refresh(session, cells=[(fingerprint, *key) for key in
                                        table[queries.CELL_COLUMNS].itertuples(index=False, name=None)])
        floors = history_queries.noise_floors(session, fingerprint)
        moved = wording.control_spread_note(comparison.control_spread(states, kept))
    print(f"noise floor of fingerprint {fingerprint}, from runs {', '.join(map(str, kept))}:")
    print(wording.noise_summary(floors))
    for said in (wording.odd_runs_note(odd, kept), moved and moved[0].upper() + moved[1:] + "."):
        if said:
            print(said)
    return 0


def _show(args) -> int:
    from results_db import history_queries

    from .. import wording

    sessions = existing_db(args.db)
    with sessions() as session:
        fingerprints = history_queries.fingerprints_frame(session)
        shown = 0
        for row in fingerprints.itertuples():
            floors = history_queries.noise_floors(session, row.fingerprint)
            if len(floors):
                print(f"fingerprint {row.fingerprint} ({', '.join(row.labels)}: {row.hardware}):")
                print(wording.noise_summary(floors))
                shown += 1
    if not shown:
        print("no noise floor stored: `hadamard-bench noise --suite quick` measures this machine's")
    return 0

