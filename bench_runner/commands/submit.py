"""`submit --label LABEL`: queue a run in the database for the agents of that machine label;
the selection is checked against the catalogue now, nothing runs here."""

from __future__ import annotations

from hadamard_bench.vocabulary import counted

from . import UsageError, checked_url, sessions_on
from .flags import (catalogue_with_plugins, db_flag, label, more_rounds_flag, plugin_flag, rounds_flag, selected,
                    selection_flags)


def add_parser(verbs) -> None:
    p = verbs.add_parser("submit", help="queue a run for the agents of a machine label",
                         description="Queue a run in the database for `bench_runner agent --label LABEL` "
                                     "on a benchmark machine to claim and run. The selection is checked "
                                     "against the catalogue now; nothing runs here.")
    p.add_argument("--label", required=True, type=label, help="the agents' machine label, e.g. gpu-server")
    selection_flags(p, "default: cuda (the agent's GPU)")
    rounds_flag(p)
    more_rounds_flag(p)  # the agent's run takes them, as it takes the rounds
    db_flag(p)
    plugin_flag(p)


def run(args) -> int:
    from results_db import store

    from .. import defaults, selection

    catalogue = catalogue_with_plugins(args)
    if not args.suite:
        raise UsageError("the argument --suite is required")
    url = checked_url(args.db)
    sel = selected(args, args.device or ["cuda"])
    cells = selection.plan(catalogue, sel)  # only catalogue ids and the suites' own sizes get queued
    factory = sessions_on(url)
    with factory() as session, session.begin():
        store.sync_catalogue(session, *selection.catalogue_rows(catalogue))
        rounds = args.rounds or defaults.ROUNDS[sel.suite]
        options = sel.as_options() | ({} if args.more_rounds is None else {"more_rounds": args.more_rounds})
        run_id = store.submit_run(session, args.label, sel.suite, options, len(cells) * rounds,
                                  rounds=rounds, seed=selection.new_seed()).id
    more = "" if args.more_rounds is None else f" (up to {args.more_rounds} more where a speed-up is undecided)"
    print(f"run {run_id}: {counted(len(cells), 'cell')} of the {sel.suite} suite, "
          f"{counted(rounds, 'round')}{more}, queued for agent {args.label!r}")
    return 0
