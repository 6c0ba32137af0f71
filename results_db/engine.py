"""Where results live: resolving the database URL and opening it.

The default is an SQLite file under RESULTS_DIR; `--db` or HADAMARD_BENCH_DB take
any SQLAlchemy URL (PostgreSQL included). A URL is checked before anything is
created, so a bad one fails with a one-line message and writes nothing.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager, suppress
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from hadamard_bench.errors import BadInput
from hadamard_bench.vocabulary import DB_ENV_VAR

from . import schema

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _results_dir() -> Path:
    """results/ in a checkout (where `make run` keeps the database and its logs); once installed
    from a wheel, the user's data folder ($XDG_DATA_HOME/hadamard-bench, else
    ~/.local/share/hadamard-bench), never site-packages."""
    if (PROJECT_ROOT / "pyproject.toml").exists() and (PROJECT_ROOT / "hadamard_impls").is_dir():
        return PROJECT_ROOT / "results"
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "hadamard-bench"


RESULTS_DIR = _results_dir()
DEFAULT_PATH = RESULTS_DIR / "hadamard_bench.db"
_OPENING = threading.RLock()  # threads of one process opening a database, one at a time
SCHEMA_LOCK = 0x4841444D  # "HADM": the advisory lock id Hadamard Bench takes while it sets up a schema


class BadDatabaseURL(BadInput):
    """A URL SQLAlchemy cannot parse or has no driver for."""


class CannotOpen(BadInput):
    """A database that cannot be reached or created: a path that cannot hold a file, a server
    that does not answer or refuses the login. One line, says which."""


def resolve_url(url: str | None = None) -> str:
    """The URL given, else $HADAMARD_BENCH_DB, else the default SQLite file."""
    return url or os.environ.get(DB_ENV_VAR) or f"sqlite:///{DEFAULT_PATH}"


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
    # The timeout comes first: switching to WAL takes a lock that runners opening a new file
    # together contend for ("database is locked" at once, with the pragmas the other way round).
    # WAL is stored in the file, so only its first connection needs to switch.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _release_on_stop(context) -> None:
    """A Ctrl-C or a stopping signal inside a statement: SQLAlchemy then closes the connection
    rather than roll it back, and SQLite keeps a closed connection's transaction, and its write
    lock, while any of its statements is still held, as the interrupted cursor is by the
    traceback. The run's own "interrupted" record, written next, then waited 30 s for that lock
    and failed (CI, 2026-12-07). Closing the cursor lets the connection close and roll back."""
    if isinstance(context.original_exception, (KeyboardInterrupt, SystemExit)) and context.execution_context:
        with suppress(Exception):  # a cursor that cannot close must not stand in for the Ctrl-C
            context.execution_context.cursor.close()


@contextmanager
def _one_opener_at_a_time(path: Path):
    """An flock on the database file while its schema is checked and created or migrated:
    runners that start together on a new file would otherwise both create its tables
    ("table run already exists"). flock does not interfere with SQLite's own fcntl locks."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock, as before
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # Creates an empty file, which reads as a new database; the descriptor stays open, since
    # closing one would drop the SQLite locks of this process's connections (schema._KEPT).
    handle = schema.kept_descriptor(path, create=True)
    with _OPENING:  # flock does not exclude another thread holding the same descriptor
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _server_lock(engine: Engine):
    """On PostgreSQL, a session-level advisory lock while the schema is checked and created or
    migrated, the server's counterpart of the flock on an SQLite file."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK})
            conn.commit()


def open_engine(url: str | None = None, create: bool = True) -> Engine:
    """See _open; its OS and connection errors come out as one-line CannotOpen."""
    try:
        return _open(url, create)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and str(exc).startswith("no results database"):
            raise
        raise CannotOpen(f"cannot open the results database at {exc.filename or url}: "
                         f"{exc.strerror or exc}") from None
    except OperationalError as exc:
        raise cannot_reach(url, exc) from None


def cannot_reach(url: str | None, exc: OperationalError) -> CannotOpen:
    """A server's refusal (down, wrong password, no such database) in one line, password hidden."""
    where = make_url(resolve_url(url)).render_as_string(hide_password=True)
    text_ = str(exc.orig or exc).strip()
    return CannotOpen(f"cannot reach the results database at {where}: "
                      + (text_.splitlines()[0] if text_ else type(exc).__name__))


def _open(url: str | None, create: bool) -> Engine:
    """An engine on the resolved URL, its schema brought to this code's (schema.ensure).

    Without `create`, a database that does not exist yet is an error, not a new file.
    SchemaError: newer, foreign or damaged; nothing was changed."""
    parsed = check_url(resolve_url(url))
    server = parsed.get_backend_name() != "sqlite"
    # A server's pooled connection can die under it (a restart, a failover): each checkout tests
    # its connection first, so that a dashboard or an agent that outlives the restart reconnects.
    engine = create_engine(parsed, pool_pre_ping=server)
    if server:
        with _server_lock(engine):
            revision = schema.engine_revision(engine)
            if revision is None and not create:
                raise FileNotFoundError(f"no results database at {parsed.render_as_string(hide_password=True)}")
            schema.ensure(engine, revision)
        return engine
    path = Path(parsed.database)
    if not create and not path.exists():
        raise FileNotFoundError(f"no results database at {path}")
    with _one_opener_at_a_time(path):  # opens the file to lock it; its bytes stay as they are
        revision = schema.sqlite_revision(path)  # read-only, before any connection that could write
        if revision is None and not create:
            raise FileNotFoundError(f"no results database at {path}")
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "handle_error", _release_on_stop)
        schema.ensure(engine, revision, path)
    return engine
