"""Which schema a database has, and bringing it to this code's (Alembic migrations).

Opening a database goes through here first. A new one gets the current schema;
one made by an earlier version of Hadamard Bench is migrated (an SQLite file is
copied beside itself first, `NAME.before-REV`); one newer than this code, one
that is not ours, and a damaged file are refused with a one-line SchemaError and
left exactly as they were: SQLite files are inspected read-only, before any
connection that could change them (switching to WAL writes the file header).
"""

from __future__ import annotations

import functools
import os
import sqlite3
import sys
import threading
from collections import OrderedDict
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from hadamard_bench.errors import BadInput

from .models import Base

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
OUR_TABLES = {"machine", "run", "benchmark", "method", "result", "metric"}
LATER_TABLES = {"agent", "round", "mark", "history_point", "latest_result", "noise_floor"}  # migrations 0003 to 0009
SQLITE_HEADER = b"SQLite format 3\x00"


class SchemaError(BadInput):
    """A database this code must not open: newer, foreign or damaged. One line, says which."""


def _config(connection=None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    # The migration files are read once per process, not on every open and check.
    return ScriptDirectory.from_config(_config())


def head() -> str:
    return _scripts().get_current_head()


def known_revisions() -> list[str]:
    return [s.revision for s in _scripts().walk_revisions()]


def _revision_of(tables: set[str], version: str | None, run_columns: set[str], where: str) -> str | None:
    """The schema revision of a database with these tables; None when it is empty."""
    if not tables - {"alembic_version"}:
        return None
    if not OUR_TABLES <= tables:
        if version is None and tables <= OUR_TABLES | LATER_TABLES | {"alembic_version"}:
            return None  # a creation cut short (the process died mid-way): ensure() finishes it
        foreign = ", ".join(sorted(tables - OUR_TABLES)[:5]) or ", ".join(sorted(tables))
        raise SchemaError(f"{where} is not a Hadamard Bench database (it has tables {foreign}); it was left untouched")
    if version is None:  # made before migrations existed (0001 or 0002): tell them by their columns
        return "0002" if "provenance" in run_columns else "0001"
    if version not in known_revisions():
        raise SchemaError(f"{where} was written by a newer Hadamard Bench (schema {version}; this one knows up to "
                          f"{head()}); update Hadamard Bench to open it. It was left untouched")
    return version


# POSIX drops every fcntl lock a process holds on a file as soon as the process closes *any*
# descriptor of that file, and SQLite's locks are fcntl locks. A plain open() and close() of the
# database beside a live connection of this process lets another process take the file for
# unused: its last connection checkpoints and deletes the WAL under ours, which then reads a
# stale snapshot and would write into a deleted log (sqlite.org/howtocorrupt.html, §2.2; seen when
# `noise` read the database between the `run` processes it started). So this code's own reads
# of the file (its header) and its flock go through one descriptor per file, kept open.
_KEPT: OrderedDict[str, int] = OrderedDict()
KEPT_FILES = 64  # a process uses one or two databases; a test process a new one per test
_KEPT_LOCK = threading.Lock()


def kept_descriptor(path: Path, create: bool = False) -> int:
    """A descriptor of the file at `path` that this process keeps open (see _KEPT), reopened when
    the file was replaced; with `create`, an empty file is made where none is."""
    key = str(path.resolve())
    with _KEPT_LOCK:
        fd = _KEPT.get(key)
        if fd is not None:
            try:
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    _KEPT.move_to_end(key)
                    return fd
            except FileNotFoundError:
                pass
            os.close(_KEPT.pop(key))  # a file since replaced or removed: its locks went with it
        fd = os.open(path, os.O_RDONLY | (os.O_CREAT if create else 0), 0o644)  # reading is all it does
        _KEPT[key] = fd
        while len(_KEPT) > KEPT_FILES:
            os.close(_KEPT.popitem(last=False)[1])
        return fd


def sqlite_revision(path: Path) -> str | None:
    """The revision of the SQLite file at `path`, read without changing a byte of it."""
    where = str(path)
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        header = os.pread(kept_descriptor(path), 100, 0)
    except OSError as exc:
        raise SchemaError(f"cannot read {where}: {exc.strerror}") from None
    if header[:len(SQLITE_HEADER)] != SQLITE_HEADER:
        raise SchemaError(f"{where} is not an SQLite database; it was left untouched")
    if _cut_short(header, path.stat().st_size):
        from .damage import damaged

        raise damaged(where, "shorter than its header says: a copy cut short")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = (db.execute("SELECT version_num FROM alembic_version").fetchone() or [None])[0] \
                if "alembic_version" in tables else None
            run_columns = {r[1] for r in db.execute("PRAGMA table_info(run)")}
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        if "unable to open" in str(exc) and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
            raise SchemaError(f"cannot open the results database {where}: it or its folder is read-only here, and "
                              f"SQLite must write a file beside it ({path.name}-shm) even to read it; copy it to a "
                              f"folder you can write and give the copy to --db. It was left untouched") from None
        from .damage import damaged

        raise damaged(where, exc) from None
    return _revision_of(tables, version, run_columns, where)


def _cut_short(header: bytes, size: int) -> bool:
    """Whether the file is shorter than the pages its header counts: a copy cut short. Read from
    the header in constant time; PRAGMA quick_check, which reads every page, took 1.7 s on a file
    of a million results, paid on every open by the dashboard and every command."""
    if len(header) < 100:
        return True
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count is valid only when the header's change counter matches (SQLite's file format, §1.3.7).
    counted = header[24:28] == header[92:96] and pages > 0
    return counted and size < pages * page_size


def engine_revision(engine: Engine) -> str | None:
    """The revision of a server database (PostgreSQL), through the engine."""
    where = engine.url.render_as_string(hide_password=True)
    found = inspect(engine)
    tables = set(found.get_table_names())
    version = None
    if "alembic_version" in tables:
        with engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    run_columns = {c["name"] for c in found.get_columns("run")} if "run" in tables else set()
    return _revision_of(tables, version, run_columns, where)


def ensure(engine: Engine, revision: str | None, sqlite_path: Path | None = None) -> str:
    """Bring a database at `revision` (None: empty) to the current schema; returns what it did."""
    current = head()
    if revision == current:
        return "current"
    if revision is not None and sqlite_path is not None:
        _keep_before(sqlite_path, revision)
    with engine.begin() as conn:
        config = _config(conn)
        if revision is None:
            Base.metadata.create_all(conn)
            command.stamp(config, current)
            return "created"
        if not inspect(conn).has_table("alembic_version"):
            command.stamp(config, revision)
        command.upgrade(config, current)
    return f"migrated from {revision} to {current}"


def _keep_before(path: Path, revision: str) -> Path:
    """The file as it was, copied beside it (NAME.before-REVISION, or .1, .2 … where that is
    taken) through SQLite's backup API, write-ahead log included and checked, and said on stderr:
    a migration does not go back. A damaged file is refused first: it is not migrated."""
    from .damage import backup, require_intact

    require_intact(path)
    target = path.with_name(f"{path.name}.before-{revision}")
    n = 0
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.before-{revision}.{n}")
    backup(path, target)
    print(f"migrating {path} from schema {revision} to {head()}; the file as it was is {target}", file=sys.stderr)
    return target

