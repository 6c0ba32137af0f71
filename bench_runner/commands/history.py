"""`history`: every cell's median per run over time, with its 95% interval and where a change
point (E-divisive means, bench_runner.stats.change_points) starts a new level."""

from __future__ import annotations

import json
import sys

import pandas as pd

from results_db import queries

from .. import stats
from . import UsageError, db_flag, existing_db

COLUMNS = [*queries.CELL_COLUMNS, "machine", "run_id", "started_at", "commit", "time_median_s", "ci_low", "ci_high",
           "change_point"]


def add_parser(verbs) -> None:
    p = verbs.add_parser(
        "history", help="each cell's median per run over time, with intervals and change points",
        description="One row per cell and run, oldest first: the run's median with a 95%% interval from its rounds, "
                    "and change_point=true at the run where E-divisive means finds a new level (the step beyond 5%% "
                    "and significant by compare's statistics on the rounds of the runs on either side). A cell's history stays on one machine label.")
    p.add_argument("--benchmark", metavar="ID")
    p.add_argument("--method", metavar="ID")
    p.add_argument("--backend", metavar="NAME")
    p.add_argument("--size", metavar="NAME=INT[,NAME=INT]", help="only sizes with these values, e.g. N=4096")
    p.add_argument("--machine", metavar="LABEL", help="only this machine's runs")
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


def history_table(frame: pd.DataFrame) -> pd.DataFrame:
    """history_frame's rows with each run's median, interval and change-point flag, per cell and machine."""
    rows = []
    for _, cell in frame.groupby([*queries.CELL_COLUMNS, "machine"], sort=True):
        medians, rounds = [], []
        for r in cell.itertuples():
            rounds.append(stats.split_rounds(r.samples, r.sample_rounds))
            median, low, high = stats.median_interval(rounds[-1])
            medians.append(median)
            rows.append({**{c: getattr(r, c) for c in queries.CELL_COLUMNS}, "machine": r.machine, "run_id": r.run_id,
                         "started_at": r.started_at, "commit": r.commit, "time_median_s": median, "ci_low": low,
                         "ci_high": high, "change_point": False})
        for index in stats.change_points(medians, rounds=rounds):
            rows[len(rows) - len(medians) + index]["change_point"] = True
    return pd.DataFrame(rows, columns=COLUMNS)


def run(args) -> int:
    matches = _size_matches(args.size)
    sessions = existing_db(args.db, "history")
    with sessions() as session:
        frame = queries.history_frame(session, args.benchmark, args.method, args.backend, args.machine)
    frame = frame[frame["size"].map(matches)] if not frame.empty else frame
    if frame.empty:
        raise UsageError("bench_runner history: no `ok` results match the selection")
    table = history_table(frame)
    if args.format == "csv":
        table.to_csv(sys.stdout, index=False)
    elif args.format == "json":
        print(json.dumps(json.loads(table.to_json(orient="records", date_format="iso")), indent=1))
    else:
        shown = table.assign(**{c: table[c].map(lambda v: f"{v:.4g}") for c in ("time_median_s", "ci_low", "ci_high")},
                             commit=table["commit"].map(lambda c: (c or "")[:12]),
                             change_point=table["change_point"].map({True: "◆", False: ""}))
        print(shown.to_string(index=False))
        print(f"\n{int(table['change_point'].sum())} change points in {table.groupby([*queries.CELL_COLUMNS, 'machine']).ngroups} cells")
    return 0
