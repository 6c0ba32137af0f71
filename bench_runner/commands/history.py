"""`history`: every cell's median per run over time, with its 95% interval and where a change
point (E-divisive means, bench_runner.step_detect.change_points) starts a new level."""

from __future__ import annotations

import json
import sys

from hadamard_bench.vocabulary import CELL_KEY, counted

from . import UsageError, existing_db
from .flags import db_flag

COLUMNS = [*CELL_KEY, "fingerprint", "machine", "run_id", "started_at", "commit", "time_median_s", "ci_low",
           "ci_high", "change_point", "differs", "annotation"]


def add_parser(verbs) -> None:
    p = verbs.add_parser(
        "history", help="each cell's median per run over time, with intervals and change points",
        description="One row per cell and run, each cell's runs together, oldest first: the run's median with a 95% interval from its rounds, "
                    "and change_point=true at the run where E-divisive means finds a new level (the step beyond 5% "
                    "and significant by compare's statistics on the rounds of the runs on either side). A cell's "
                    "history stays on one hardware fingerprint (CPU model, cores, memory, GPU, driver major): "
                    "identical nodes share it, and a torch or driver upgrade is annotated, not split off. Rows "
                    "come one benchmark at a time, each read and printed before the next is read.")
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
            raise UsageError(f"--size {wanted!r} is not of the form NAME=INT[,NAME=INT...]")
        pairs[key.strip()] = value.strip()
    return lambda size: pairs.items() <= dict(p.split("=", 1) for p in size.split()).items()


def run(args) -> int:
    """Streamed a benchmark at a time: each is read, brought up to date (stale points computed and
    kept) and printed before the next is read, so a whole fingerprint's history is never held at
    once and the first rows come early."""
    import pandas as pd
    from results_db import Run, history_queries
    from sqlalchemy import select

    from .. import comparison, history, wording

    matches = _size_matches(args.size)
    sessions = existing_db(args.db)
    with sessions() as session:
        known = set(history_queries.fingerprints_frame(session)["fingerprint"])
        benchmarks = [args.benchmark] if args.benchmark else history_queries.history_benchmarks(session)
        sessions_only = not known and session.scalar(select(Run.id).where(~Run.plain).limit(1)) is not None
    by = {"fingerprint": args.machine} if args.machine in known else {"machine": args.machine}
    printed = _Printer(args.format)
    for benchmark in benchmarks:
        with sessions() as session, session.begin():  # stale points are recomputed and kept
            table = history.history_table(session, benchmark=benchmark, method=args.method, backend=args.backend,
                                          **by)
        table = table[table["size"].map(matches)] if not table.empty else table
        if not table.empty:  # each cell's runs together, oldest first
            printed.batch(comparison.in_cell_order(table, then=["fingerprint", "started_at", "run_id"])[COLUMNS])
    if not printed.rows:
        raise UsageError(
            "no plain run has `ok` results, and an `ab` session's two runs are not part of a history (`compare` "
            "reads them); `run` measures one" if sessions_only else "no `ok` results match the selection")
    printed.end()
    if args.format == "table":
        with sessions() as session:
            floors = [history_queries.noise_floors(session, fp) for fp in sorted(printed.fingerprints)]
        print(f"\n{counted(printed.change_points, 'change point')} in {counted(printed.cells, 'cell')}")
        print(wording.change_point_floor_note(pd.concat(printed.keys, ignore_index=True),
                                              pd.concat(floors, ignore_index=True)))
    return 0


class _Printer:
    """Prints history's rows a batch at a time in one format, as one table, CSV or JSON array
    would read whole, and keeps only what the closing lines need."""

    def __init__(self, fmt: str):
        self.fmt, self.rows, self.change_points, self.cells = fmt, 0, 0, 0
        self.fingerprints: set[str] = set()
        self.keys: list = []  # each batch's distinct cell keys, for the floor note

    def batch(self, table) -> None:
        import textwrap

        first = self.rows == 0
        if self.fmt == "csv":
            table.to_csv(sys.stdout, index=False, header=first)
        elif self.fmt == "json":  # the items of one array, as json.dumps(rows, indent=1) writes it
            items = json.loads(table.to_json(orient="records", date_format="iso"))
            print("[" if first else ",")
            print(",\n".join(textwrap.indent(json.dumps(item, indent=1), " ") for item in items), end="")
        else:
            shown = table.assign(**{c: table[c].map(lambda v: f"{v:.4g}") for c in ("time_median_s", "ci_low", "ci_high")},
                                 commit=table["commit"].map(lambda c: (c or "")[:12]),
                                 differs=table["differs"].where(table["change_point"], ""),  # where it matters
                                 change_point=table["change_point"].map({True: "◆", False: ""}))
            print(("" if first else "\n") + shown.to_string(index=False))
        self.rows += len(table)
        self.change_points += int(table["change_point"].sum())
        self.cells += table.groupby([*CELL_KEY, "fingerprint"]).ngroups
        self.fingerprints |= set(table["fingerprint"])
        self.keys.append(table[list(CELL_KEY)].drop_duplicates())

    def end(self) -> None:
        if self.fmt == "json":
            print("\n]")
