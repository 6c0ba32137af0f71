"""`import FILE`: store the runs of a results bundle (`export --format bundle`, or
results/reference/*.json) or of a pytest-benchmark JSON. The file is checked in full first: a bad
file writes nothing; runs already present are skipped."""

from __future__ import annotations

import sys
from pathlib import Path

from hadamard_bench.vocabulary import counted

from . import UsageError, checked_url, sessions_on
from .flags import catalogue_with_plugins, db_flag, plugin_flag


def add_parser(verbs) -> None:
    p = verbs.add_parser("import", help="store the runs of a results bundle or a pytest-benchmark JSON",
                         description="Store the runs of a bundle written by `export --format bundle` "
                                     "(a GPU server's results, or results/reference/*.json), or the file "
                                     "`pytest --benchmark-json` writes. Checked in full first: a bad file "
                                     "writes nothing. Runs already present are skipped.")
    p.add_argument("file", metavar="FILE")
    db_flag(p)
    p.add_argument("--label", help="the name charts give the bundle's machine, if this database has not seen it")
    plugin_flag(p)


def run(args) -> int:
    from results_db import bundle, bundle_format, pytest_bench, store

    from ..selection import catalogue_rows

    catalogue = catalogue_with_plugins(args)
    url = checked_url(args.db)
    try:
        data = bundle_format.read_file(args.file)
        kind = pytest_bench if pytest_bench.looks_like(data) else bundle
        if kind is bundle and "format" not in data:
            raise bundle_format.BundleError(f"{args.file} is neither a Hadamard Bench bundle nor a pytest-benchmark JSON")
        kind.validate(data)  # before the database is opened or created
    except bundle_format.BundleError as exc:
        raise UsageError(str(exc)) from None
    store_runs = pytest_bench.import_file if kind is pytest_bench else bundle.import_bundle
    with sessions_on(url)() as session, session.begin():
        # The code's catalogue first: a bundle's own (older) records must not decide how its cells read.
        store.sync_catalogue(session, *catalogue_rows(catalogue))
        added, skipped = store_runs(session, data, source=Path(args.file).name, label=args.label)
    print(f"imported {counted(len(added), 'run')} from {args.file}"
          + (f"; {skipped} {'was' if skipped == 1 else 'were'} already here" if skipped else ""),
          file=sys.stderr)
    return 0
