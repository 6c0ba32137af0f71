"""`history`: every cell's median per run over time, with its 95% interval and where a change
point (E-divisive means, bench_runner.step_detect.change_points) starts a new level."""

from __future__ import annotations

import json
import sys

from hadamard_bench.vocabulary import CELL_KEY

from . import UsageError, existing_db
from .flags import db_flag

COLUMNS = [*CELL_KEY, "fingerprint", "machine", "run_id", "started_at", "commit", "time_median_s", "ci_low",
           "ci_high", "change_point", "differs", "annotation"]


def add_parser(verbs) -> None:
    p = verbs.add_parser(
        "history", help="each cell's median per run over time, with intervals and change points",
        description="One row per cell and run, oldest first: the run's median with a 95% interval from its rounds, "
                    "and change_point=true at the run where E-divisive means finds a new level (the step beyond 5% "
                    "and significant by compare's statistics on the rounds of the runs on either side). A cell's "
                    "history stays on one hardware fingerprint (CPU model, cores, memory, GPU, driver major): "
                    "identical nodes share it, and a torch or driver upgrade is annotated, not split off.")
    p.add_argument("--benchmark", metavar="ID")
    p.add_argument("--method", metavar="ID")
    p.add_argument("--backend", metavar="NAME")
    p.add_argument("--size", metavar="NAME=INT[,NAME=INT]", help="only sizes with these values, e.g. N=4096")
    p.add_argument("--machine", metavar="LABEL|FINGERPRINT",
                   help="only the runs on this machine's fingerprint (a label stands for its machines' fingerprints)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    db_flag(p)


def _size_matches(wanted: str | None):
    if not wanted:
        return lambda size: True
    pairs = {}
    for part in wanted.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip().isdigit():
            raise UsageError(f"bench_runner history: --size {wanted!r} is not of the form NAME=INT[,NAME=INT...]")
        pairs[key.strip()] = value.strip()
    return lambda size: pairs.items() <= dict(p.split("=", 1) for p in size.split()).items()


def run(args) -> int:
    import pandas as pd
    from results_db import history_queries, queries

    from .. import history, wording

    matches = _size_matches(args.size)
    sessions = existing_db(args.db, "history")
    with sessions() as session, session.begin():  # stale points are recomputed and kept
        known = set(history_queries.fingerprints_frame(session)["fingerprint"])
        by = {"fingerprint": args.machine} if args.machine in known else {"machine": args.machine}
        table = history.history_table(session, benchmark=args.benchmark, method=args.method, backend=args.backend,
                                      **by)
        floors = [history_queries.noise_floors(session, fp) for fp in sorted(set(table.get("fingerprint", [])))]
    table = table[table["size"].map(matches)] if not table.empty else table
    if table.empty:
        raise UsageError("bench_runner history: no `ok` results match the selection")
    table = table[COLUMNS]
    if args.format == "csv":
        table.to_csv(sys.stdout, index=False)
    elif args.format == "json":
        print(json.dumps(json.loads(table.to_json(orient="records", date_format="iso")), indent=1))
    else:
        shown = table.assign(**{c: table[c].map(lambda v: f"{v:.4g}") for c in ("time_median_s", "ci_low", "ci_high")},
                             commit=table["commit"].map(lambda c: (c or "")[:12]),
                             differs=table["differs"].where(table["change_point"], ""),  # where it matters
                             change_point=table["change_point"].map({True: "◆", False: ""}))
        print(shown.to_string(index=False))
        print(f"\n{int(table['change_point'].sum())} change points in "
              f"{table.groupby([*queries.CELL_COLUMNS, 'fingerprint']).ngroups} cells")
        print(wording.change_point_floor_note(table, pd.concat(floors, ignore_index=True)))
    return 0
