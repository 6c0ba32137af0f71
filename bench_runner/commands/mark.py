"""`mark`: a person's word on a history. A change at RUN is expected (with a note: "torch 2.14
upgrade"), or RUN starts a new distribution; either way the gate judges later runs against runs
from RUN on, and change points are searched separately on either side of a new start."""

from __future__ import annotations

from hadamard_bench.vocabulary import CELL_KEY, MARK_KINDS, counted

from . import UsageError, existing_db
from .flags import db_flag, positive_int

SCOPE = CELL_KEY  # a mark narrows to cells by any part of their key


def add_parser(verbs) -> None:
    p = verbs.add_parser(
        "mark", help="mark a run's change as expected, or a run as the start of a new distribution",
        description="Mark RUN on its fingerprint's history: --expected (the change at RUN is explained; the gate "
                    "reports it without failing) or --new-distribution (RUN starts a new level; change points are "
                    "searched on either side separately). Either way the gate's baseline for later runs starts "
                    "at RUN. Narrow a mark to some cells with the cell flags (exact values, as `history` prints "
                    "them); without them it covers all of RUN's cells. --list shows the marks, --delete ID "
                    "removes one.")
    p.add_argument("run", metavar="RUN", nargs="?", type=positive_int("run id"), help="the run to mark")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--expected", dest="kind", action="store_const", const="expected")
    kind.add_argument("--new-distribution", dest="kind", action="store_const", const="new_distribution")
    kind.add_argument("--list", dest="kind", action="store_const", const="list", help="list the marks")
    kind.add_argument("--delete", metavar="ID", type=positive_int("mark id"), help="remove mark ID")
    p.add_argument("--note", default="", metavar="TEXT", help='why, e.g. "torch 2.14 upgrade"')
    for column in SCOPE:
        p.add_argument(f"--{column}", metavar="VALUE", help=f"only cells whose {column} is VALUE")
    db_flag(p)


def run(args) -> int:
    from results_db import history_queries

    from .. import history

    sessions = existing_db(args.db, writes=True)
    if args.delete is not None:
        with sessions() as session, session.begin():
            try:
                mark = history.delete_mark(session, args.delete)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            said = f"removed mark {args.delete} ({mark.kind.replace('_', ' ')} on run {mark.run_id})"
        print(said)
        return 0
    if args.kind == "list":
        with sessions() as session:
            marks = history_queries.marks_frame(session)
        if marks.empty:
            print("no marks")
        else:
            print(marks[["id", "run_id", "kind", "note", "cells", "fingerprint"]].to_string(index=False))
        return 0
    if args.run is None or args.kind not in MARK_KINDS:
        raise UsageError("give RUN and one of --expected, --new-distribution (or --list, --delete ID)")
    cells = {c: getattr(args, c) for c in SCOPE if getattr(args, c) is not None}
    with sessions() as session, session.begin():
        try:
            mark, covered = history.add_mark(session, args.run, args.kind, args.note, cells)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        mark_id = mark.id
    print(f"mark {mark_id}: run {args.run} {args.kind.replace('_', ' ')}"
          + (f" ({args.note})" if args.note else "") + f", covering {counted(covered, 'cell')}")
    return 0
