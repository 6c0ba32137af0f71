"""`db status | upgrade`: the results database's schema version, or migrate one made by an
earlier Hadamard Bench (opening one does it too; an SQLite file is copied first)."""

from __future__ import annotations

from . import existing_url
from .flags import db_flag


def add_parser(verbs) -> None:
    p = verbs.add_parser("db", help="the database's schema: its version, or upgrade it",
                         description="status: the schema version of the results database. upgrade: migrate a "
                                     "database made by an earlier Hadamard Bench (opening one does it too; an "
                                     "SQLite file is copied to NAME.before-VERSION first).")
    p.add_argument("action", choices=["status", "upgrade"])
    db_flag(p)


def run(args) -> int:
    from pathlib import Path

    import results_db
    from results_db import schema

    url = existing_url(args.db, "db")
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
