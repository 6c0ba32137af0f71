"""`agent --label LABEL`: claim the runs `submit` queued for this machine's label, one at a time,
and measure each here as `run` does (bench_runner.agent keeps the queue)."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from . import checked_url, sessions_on
from .flags import catalogue_with_plugins, db_flag, label, measure_flags, plugin_flag, seconds


def add_parser(verbs) -> None:
    p = verbs.add_parser("agent", help="run the runs queued for this machine's label",
                         description="Poll the database for runs submitted for LABEL, claim one at a time "
                                     "(no run is taken twice, whatever the number of agents) and run it "
                                     "here, cell by cell; the dashboard shows the agent alive while it runs.")
    p.add_argument("--label", required=True, type=label, help="this machine's label, e.g. gpu-server")
    db_flag(p)
    p.add_argument("--poll", type=seconds(), default=5.0, metavar="SECONDS",
                   help="how often to look for queued runs (default: 5)")
    p.add_argument("--once", action="store_true", help="stop when the queue is empty instead of waiting")
    p.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    measure_flags(p)  # with --executor ray, an agent on a Ray cluster's head runs each claimed run over it
    plugin_flag(p)


def run(args) -> int:
    import results_db
    from results_db import store

    from .. import selection, sweep
    from ..agent import serve
    from .run import devices_lacking, measure, policy_for, ray_options

    catalogue = catalogue_with_plugins(args)
    url = checked_url(args.db)
    ray_options(args)  # a bad executor flag is refused before the agent registers
    factory = sessions_on(url)

    def refused(session, run_id: int, why: str) -> int:
        """The claimed run ends `failed` with why, said on the run and here; nothing is measured."""
        store.finish_run(session, run_id, "failed", why[:500])
        print(f"agent {args.label!r}: run {run_id} failed: {why}", file=sys.stderr)
        return 1

    def run_claimed(run_id: int) -> int:
        with factory() as session, session.begin():
            run = session.get(results_db.Run, run_id)
            sel = selection.Selection.from_options(run.options)
            try:
                cells = selection.plan(catalogue, sel)
            except selection.SelectionError as exc:  # submitted by a newer or older catalogue
                return refused(session, run_id, f"this agent's catalogue refuses it: {exc}")
            lacking = devices_lacking(sel.devices, args.executor)
            if lacking:  # queued for another machine of this label, most likely
                return refused(session, run_id, f"this agent's machine refuses it: {lacking}")
            policy = policy_for(args, sel.suite)
            if run.options.get("more_rounds") is not None:  # `submit --more-rounds`, as its rounds
                policy = dataclasses.replace(policy, more_rounds=run.options["more_rounds"])
            store.sync_catalogue(session, *selection.catalogue_rows(catalogue))
            run.provenance, run.cells_total = sweep.provenance_for(policy), len(cells) * run.rounds
        return measure(args, factory, run_id, policy, cells, sel.suite, catalogue)

    return serve(factory, args.label, run_claimed, once=args.once, poll_s=args.poll,
                 say=lambda line: print(line, file=sys.stderr))
