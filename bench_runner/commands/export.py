"""`export`: the stored results as one row per cell (CSV or JSON, with each cell's speed-up
against its baseline), or whole runs as a bundle `import` reads, or pytest-benchmark's layout."""

from __future__ import annotations

import json
import sys

from hadamard_bench.vocabulary import counted

from . import UsageError, existing_db
from .flags import db_flag, out_file, out_path


def add_parser(verbs) -> None:
    p = verbs.add_parser("export", help="write the stored results as a table",
                         description="Write the stored results, one row per cell, as CSV or JSON (docs/columns.md "
                                     "says what each column holds); or whole runs as a bundle that `import` reads "
                                     "into another database.")
    db_flag(p)
    p.add_argument("--format", choices=["csv", "json", "bundle", "pytest-benchmark"], default="csv",
                   help="csv, json: one row per cell; bundle: whole runs with their machine, provenance, "
                        "calibration and samples, lossless; pytest-benchmark: the layout of "
                        "`pytest --benchmark-json`, for `pytest-benchmark compare`")
    p.add_argument("--out", required=True, type=out_file(stdout_allowed=True), metavar="FILE",
                   help="where to write ('-' for stdout); missing folders are made")
    p.add_argument("--run", type=int, metavar="RUN_ID", help="only this run")
    p.add_argument("--label",
                   help="bundle only: the name the bundle gives its runs' machine, as shipped reference results "
                        "say 'NVIDIA H200 (reference)'; the database keeps its own")
    p.add_argument("--allow-dirty", action="store_true",
                   help="export a bundle of runs measured from a checkout with local changes (the bundle says so)")


def run(args) -> int:
    import results_db

    sessions = existing_db(args.db)
    if args.run is not None:
        with sessions() as session:
            if session.get(results_db.Run, args.run) is None:
                raise UsageError(f"no run {args.run} in this database")
    if args.label is not None and args.format != "bundle":
        raise UsageError("--label names a bundle's machine; add --format bundle")
    if args.label is not None and not 0 < len(args.label.strip()) <= 200:
        raise UsageError("--label takes 1 to 200 characters")
    if args.format in ("bundle", "pytest-benchmark"):
        return _runs(args, sessions)
    return _cells(args, sessions)


def _runs(args, sessions) -> int:
    """Whole runs: a bundle, or pytest-benchmark's JSON."""
    from results_db import bundle, pytest_bench

    write = bundle.export_bundle if args.format == "bundle" else pytest_bench.export
    with sessions() as session:
        data = write(session, [args.run] if args.run else None)
    dirty = bundle.dirty_runs(data) if args.format == "bundle" else []
    if dirty and not args.allow_dirty:
        raise UsageError(f"{len(dirty)} of the runs were measured from a checkout with "
                         f"local changes, so no commit reproduces them; --allow-dirty exports them anyway, "
                         f"and the bundle says so")
    if args.label:
        for run in data["runs"]:
            run["machine"]["label"] = args.label
    if dirty:
        data["dirty"] = {"runs_started_at": dirty, "note": "measured from a checkout with uncommitted changes"}
    if args.out == "-":
        print(json.dumps(data, indent=1, allow_nan=False))
    else:
        bundle.write_file(data, out_path(args.out))
        what = counted(len(data["runs"]), "run") if "runs" in data else counted(len(data["benchmarks"]), "benchmark")
        print(f"wrote {what} to {args.out}", file=sys.stderr)
    return 0


def _cells(args, sessions) -> int:
    """One row per cell, CSV or JSON, with its speed-up against its baseline."""
    from results_db import queries

    from .. import comparison, speedups

    with sessions() as session:
        frame = queries.export_frame(session, run_id=args.run, with_ids=True)
        runs = sorted({int(r) for r in frame["run_id"]}) if "run_id" in frame else []
        spelled = comparison.runs_in_spells(queries.round_states(session, runs), runs) if runs else []
        frame = speedups.judged(session, frame, comparison.cells_in_spell(frame, spelled))
    frame = frame.drop(columns="result_id")
    out = sys.stdout if args.out == "-" else out_path(args.out)
    if args.format == "csv":
        queries.spreadsheet_safe(frame).to_csv(out, index=False)
    else:
        frame.to_json(out, orient="records", date_format="iso", indent=1)
    if args.out != "-":
        print(f"wrote {counted(len(frame), 'row')} to {args.out}", file=sys.stderr)
    return 0
