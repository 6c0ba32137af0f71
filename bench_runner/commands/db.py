"""`db status | upgrade | check | backup FILE | recover FILE`: the results database itself: its
schema version, a migration of one made by an earlier Hadamard Bench (opening one does it too;
an SQLite file is copied first), whether every page of an SQLite file reads, a consistent copy of
it, and a new file with every row a damaged one still holds (results_db.damage)."""

from __future__ import annotations

import sys

from . import PROG, UsageError, existing_url
from .flags import db_flag

ACTIONS = {
    "status": "the schema version",
    "upgrade": "migrate a database made by an earlier Hadamard Bench (an SQLite file is copied to "
               "NAME.before-VERSION first)",
    "check": "read every page of an SQLite file and say where one is damaged (exit 1 if one is)",
    "backup": "copy an SQLite file to FILE, consistent while a run writes to it",
    "recover": "salvage every run, result and sample a damaged SQLite file still holds into the new file FILE",
}


def add_parser(verbs) -> None:
    p = verbs.add_parser("db", help="the results database itself: schema, check, backup, recover",
                         description="; ".join(f"{a}: {what}" for a, what in ACTIONS.items()) + ".")
    p.add_argument("action", choices=list(ACTIONS))
    p.add_argument("file", nargs="?", metavar="FILE", help="backup and recover: the new file to write")
    db_flag(p)


def run(args) -> int:
    url = existing_url(args.db)
    if (args.file is None) != (args.action not in ("backup", "recover")):
        raise UsageError(f"{PROG} db {args.action}: " + (
            "FILE names the new file to write" if args.file is None else "takes no FILE"))
    if args.action in ("status", "upgrade"):
        return _schema(args, url)
    if url.get_backend_name() != "sqlite":
        raise UsageError(f"{PROG} db {args.action}: for SQLite files; PostgreSQL keeps its own pages: "
                         "`pg_amcheck` checks them, `pg_dump` backs them up, and `hadamard-bench export "
                         "--format bundle --out FILE` writes every run to a file this tool imports")
    return {"check": _check, "backup": _backup, "recover": _recover}[args.action](args, url)


def _progress(line: str) -> None:
    if sys.stderr.isatty():
        print(f"\r{line}\033[K", end="", file=sys.stderr, flush=True)


def _done_progress() -> None:
    if sys.stderr.isatty():
        print("\r\033[K", end="", file=sys.stderr, flush=True)


def _check(args, url) -> int:
    from pathlib import Path

    from results_db import damage

    path = Path(url.database)
    problems = damage.check(path, _progress)
    _done_progress()
    if not problems:
        print(f"{path}: every page reads; the file is sound")
        return 0
    print(f"{path} is damaged; SQLite found:")
    for line in problems[:20]:
        print(f"  {line}")
    if len(problems) > 20:
        print(f"  … and {len(problems) - 20} more")
    print(f"`hadamard-bench db recover NEW.db --db {path}` salvages every run it can still read; or restore a backup.")
    return 1


def _backup(args, url) -> int:
    from pathlib import Path

    from results_db import damage

    size = damage.backup(Path(url.database), Path(args.file), _progress)
    _done_progress()
    print(f"backed up {url.database} to {args.file} ({size / 2**20:.1f} MiB, checked)")
    return 0


def _recover(args, url) -> int:
    from pathlib import Path

    from results_db import damage

    target = Path(args.file)
    salvage = damage.recover(Path(url.database), f"sqlite:///{target.resolve()}", _progress)
    _done_progress()
    lost = sum(salvage.lost.values())
    print(f"recovered into {target}: {salvage.summary()}")
    for table, gaps in salvage.unreadable.items():
        print(f"  {table}: ids " + ", ".join(f"{a}–{b}" if a != b else f"{a}" for a, b in gaps[:10])
              + " could not be read")
    print("nothing was lost" if not lost else
          f"{lost:,} rows could not be carried over; point --db (or $HADAMARD_BENCH_DB) at {target} to use it")
    return 0


def _schema(args, url) -> int:
    from pathlib import Path

    import results_db
    from results_db import schema

    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        revision = schema.sqlite_revision(Path(url.database))
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
