"""Where results live: resolving the database URL and opening it.

The default is an SQLite file under results/; `--db` or HADAMARD_BENCH_DB take
any SQLAlchemy URL (PostgreSQL included). A URL is checked before anything is
created, so a bad one fails with a one-line message and writes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from .models import Base

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = PROJECT_ROOT / "results" / "hadamard_bench.db"
ENV_VAR = "HADAMARD_BENCH_DB"


class BadDatabaseURL(ValueError):
    """A URL SQLAlchemy cannot parse or has no driver for."""


def resolve_url(url: str | None = None) -> str:
    """The URL given, else $HADAMARD_BENCH_DB, else the default SQLite file."""
    return url or os.environ.get(ENV_VAR) or f"sqlite:///{DEFAULT_PATH}"


def check_url(url: str) -> URL:
    try:
        parsed = make_url(url)
        parsed.get_dialect()
    except (NoSuchModuleError, ImportError) as exc:  # NoSuchModuleError is an ArgumentError too
        raise BadDatabaseURL(f"no database driver for {url!r}: {exc}") from exc
    except (ArgumentError, ValueError) as exc:
        raise BadDatabaseURL(f"malformed database URL {url!r} (expected e.g. sqlite:///path/to/file.db)") from exc
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise BadDatabaseURL(f"database URL {url!r} names no file: results would be lost on exit")
    return parsed


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the dashboard read while a runner writes; the busy timeout makes a
    # writer wait for a lock instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def open_engine(url: str | None = None, create: bool = True) -> Engine:
    """An engine on the resolved URL, with the schema created when `create`."""
    parsed = check_url(resolve_url(url))
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database)
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            raise FileNotFoundError(f"no results database at {path}")
    engine = create_engine(parsed)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if create:
        Base.metadata.create_all(engine)
    return engine
