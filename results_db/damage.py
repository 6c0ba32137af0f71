"""A damaged SQLite results file: found, named and contained; checked, backed up and salvaged.

A bad disk, a copy cut short or a crash of the machine can leave pages of the file that SQLite
cannot read. Nothing of ours may then end in a traceback, or write new results beside the
garbage: every verb and page turns the damage into one line (DamagedDatabase) that says what to
do; `run`, `import` and a migration check the file first (require_intact, SQLite's
`PRAGMA quick_check`, which reads every page once); `db check` finds where the damage is
(`PRAGMA integrity_check`, table by table); `db backup` copies a file consistently while a run
writes to it (SQLite's online backup API); `db recover` salvages every row it can still read into
a new file. PostgreSQL keeps its own pages: there, `pg_dump` and `pg_amcheck` do this work.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from hadamard_bench.errors import BadInput

from .schema import SchemaError

# What SQLite (and SQLAlchemy around it) says when a file's pages cannot be read as a database.
DAMAGE_SIGNS = ("malformed", "file is not a database", "could not decode", "database corrupt",
                "invalid page number", "file is encrypted")
# What it says when a sound file cannot be written: a full disk (or a file-size limit, which
# reads as an I/O error), a file or folder that is read-only.
WRITE_SIGNS = ("database or disk is full", "disk i/o error", "readonly database")
# What a database server's dropped connection reads as (a restart, a failover, an administrator).
LOST_SIGNS = ("terminating connection", "server closed the connection", "connection is closed",
              "consuming input failed", "connection refused", "connection timed out")

Progress = Callable[[str], None]


class DamagedDatabase(SchemaError):
    """A results file whose pages SQLite cannot read: one line, what to do, nothing written. A
    SchemaError, as the other files we must not open (newer, foreign): every verb and the
    dashboard refuse it the same way."""


class StorageFailed(BadInput):
    """A sound database that failed the verb: a write the disk or file refused (full, read-only),
    or a server that dropped the connection. One line; what was stored before is kept."""


def _said(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).lower()


def is_damage(exc: BaseException) -> bool:
    """Whether an error (SQLAlchemy's or sqlite3's) says the file itself is damaged."""
    return any(sign in _said(exc) for sign in DAMAGE_SIGNS)


def is_write_failure(exc: BaseException) -> bool:
    """Whether an error says the disk or the file refused a write (full, read-only)."""
    return any(sign in _said(exc) for sign in WRITE_SIGNS)


def explained(where: str, exc: BaseException) -> BadInput | None:
    """The one line for a storage error met mid-verb (damage, a server gone, a write refused), else None."""
    if is_damage(exc):
        return damaged(where, exc)
    if any(sign in _said(exc) for sign in LOST_SIGNS):
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return StorageFailed(
            f"lost the connection to the results database {where} ({detail[0][:120] if detail else 'dropped'}): "
            "what it stored before is kept; once the server is back, `run --resume RUN_ID` finishes a run this "
            "stopped")
    if is_write_failure(exc):
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return StorageFailed(
            f"could not write to the results database {where} ({detail[0][:120] if detail else 'refused'}): is "
            "its disk full, or the file read-only? What it held before is kept; make room (or fix its "
            "permissions), then `run --resume RUN_ID` finishes a run this stopped")
    return None


def damaged(where: str | os.PathLike, exc: BaseException | str) -> DamagedDatabase:
    """The one line a damaged file ends in, naming it, what is wrong and what to do."""
    detail = [line for line in str(getattr(exc, "orig", None) or exc).strip().splitlines()
              if line.strip() and not line.startswith("***")]  # quick_check opens with "*** in database main ***"
    return DamagedDatabase(
        f"the results database {where} is damaged ({detail[0][:120] if detail else 'unreadable'}); it was left "
        f"untouched. `hadamard-bench db check` says where, `db recover NEW.db` salvages every run it can still "
        f"read into a new file, or restore a backup (`db backup`)")


def _read_only(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise FileNotFoundError(f"no results database at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.text_factory = bytes  # text that is not UTF-8 is damage to count, not an exception mid-query
    return conn


def database_of(url_text: str | None) -> str:
    """The file (or, password hidden, the server) a --db value or $HADAMARD_BENCH_DB names."""
    from sqlalchemy.engine import make_url

    from .engine import resolve_url

    url = make_url(resolve_url(url_text))
    return url.database if url.get_backend_name() == "sqlite" else url.render_as_string(hide_password=True)


def quick_check(path: Path) -> list[str]:
    """SQLite's PRAGMA quick_check of the file: [] when every page reads, else what it found."""
    try:
        with closing(_read_only(path)) as conn:
            found = [_text(r[0]) for r in conn.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    return [] if found == ["ok"] else found


def require_intact(path: Path) -> None:
    """DamagedDatabase unless quick_check finds nothing: what `run`, `import` and a migration
    call before their first write. A file that does not exist yet is intact."""
    if not path.exists() or path.stat().st_size == 0:
        return
    from .schema import sqlite_revision

    sqlite_revision(path)  # not SQLite, cut short, foreign, newer: said as such, from the header first
    problems = quick_check(path)
    if problems:
        raise damaged(path, problems[0])


def check(path: Path, progress: Progress | None = None) -> list[str]:
    """PRAGMA integrity_check, one table (with its indexes) at a time so that a big file shows
    its progress: [] when the file is sound, else SQLite's findings, each naming a page."""
    from .models import Base

    problems = []
    tables = [t.name for t in Base.metadata.sorted_tables]
    try:
        with closing(_read_only(path)) as conn:
            present = {_text(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for i, name in enumerate(t for t in tables if t in present):
                if progress:
                    progress(f"checking table {name} ({i + 1} of {len(present & set(tables))})")
                try:
                    found = [_text(r[0]) for r in conn.execute(f'PRAGMA integrity_check("{name}")')]
                except sqlite3.DatabaseError as exc:  # a page so damaged that the check itself stops
                    found = [str(exc)]
                problems += [f"{name}: {line}" for p in found if p != "ok" for line in p.splitlines()
                             if line.strip() and not line.startswith("***")]
    except sqlite3.DatabaseError as exc:
        problems.append(str(exc))
    return problems


def backup(path: Path, target: Path, progress: Progress | None = None) -> int:
    """A consistent copy of the file at `target` (which must not exist), through SQLite's
    online backup API: a run writing meanwhile is copied as of one moment, its write-ahead log
    included. The copy is checked before it takes its name. Returns its size in bytes."""
    if target.exists():
        raise BadInput(f"{target} exists already; a backup never overwrites a file")
    if not path.exists():
        raise FileNotFoundError(f"no results database at {path}")
    partial = target.with_name(target.name + ".partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        source, copy = sqlite3.connect(path), sqlite3.connect(partial)
        try:
            def step(_status, remaining, total):
                if progress and total:
                    progress(f"copied {total - remaining} of {total} pages")
            source.backup(copy, pages=1024, progress=step)
            # The copy is one file: no write-ahead log beside it to lose when it is moved or mailed
            # (opened by the tool again, it returns to WAL mode).
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            source.close()
            copy.close()
        problems = quick_check(partial)
        if problems:
            raise damaged(path, problems[0])
        os.replace(partial, target)
    finally:
        for leftover in (partial, *(partial.with_name(partial.name + end) for end in ("-wal", "-shm", "-journal"))):
            leftover.unlink(missing_ok=True)
    return target.stat().st_size


@dataclass
class Salvage:
    """What `recover` carried over, per table: rows kept, rows lost (unreadable, or whose run or
    machine was lost with them), and the id ranges that could not be read."""

    kept: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"{table} {self.kept[table]:,} kept" + (f", {self.lost[table]:,} lost" if self.lost.get(table) else "")
                 for table in self.kept if self.kept[table] or self.lost.get(table)]
        return "; ".join(parts)


# Tables recover rebuilds instead of copying: the latest result of each cell is derived from the
# results (store.keep_latest), and history points are a cache the next History read refills.
DERIVED = ("latest_result", "history_point")


def recover(path: Path, target_url: str, progress: Progress | None = None) -> Salvage:
    """Every row of `path` SQLite can still read, copied into a new database at `target_url`
    (an SQLite file that must not exist yet), table by table in the order their foreign keys
    need; a row whose parent row was lost goes with it. Raw values are copied as stored."""
    from sqlalchemy.orm import Session

    from . import open_engine, store
    from .engine import check_url
    from .models import Base

    target = Path(check_url(target_url).database or "")
    if target.exists():
        raise BadInput(f"{target} exists already; recover writes a new file")
    if not path.exists():
        raise FileNotFoundError(f"no results database at {path}")
    scratch = tempfile.TemporaryDirectory()
    source = _readable_copy(path, Path(scratch.name))
    engine = open_engine(target_url)  # the current schema, empty
    salvage, kept_keys = Salvage(), {}
    try:
        with engine.begin() as conn:
            out = conn.connection.driver_connection
            for table in Base.metadata.sorted_tables:
                if table.name in DERIVED:
                    continue
                if progress:
                    progress(f"salvaging table {table.name}")
                _copy_table(source, out, table, salvage, kept_keys)
        with Session(engine) as session:
            store.keep_latest(session)
            session.commit()
    except BaseException:  # a recovery cut short leaves no half-filled file to be taken for the result
        engine.dispose()
        for part in (target, *(target.with_name(target.name + end) for end in ("-wal", "-shm"))):
            part.unlink(missing_ok=True)
        raise
    finally:
        source.close()
        engine.dispose()
        scratch.cleanup()
    return salvage


def _readable_copy(path: Path, scratch: Path) -> sqlite3.Connection:
    """A connection on a copy of the file (its write-ahead log beside it), which recover may
    change as SQLite needs to read it, leaving the original as it is. A copy cut short is padded
    with empty pages to the length its header gives: SQLite refuses a whole file whose tables'
    first pages lie past its end, but reads the tables whose pages are all still there."""
    copy = scratch / path.name
    shutil.copyfile(path, copy)
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
    with open(copy, "rb+") as f:
        header = f.read(100)
        if len(header) == 100:
            page_size = int.from_bytes(header[16:18], "big")
            page_size = 65536 if page_size == 1 else page_size
            pages = int.from_bytes(header[28:32], "big")
            f.seek(0, os.SEEK_END)
            if f.tell() < pages * page_size:
                f.write(bytes(pages * page_size - f.tell()))
    conn = sqlite3.connect(copy)
    conn.text_factory = bytes
    return conn


def _insert_rows(out: sqlite3.Connection, insert: str, rows: list, table: str, salvage: Salvage) -> None:
    inserted = out.executemany(insert, rows).rowcount if rows else 0
    salvage.kept[table] += inserted
    salvage.lost[table] += len(rows) - inserted


def _copy_table(source: sqlite3.Connection, out: sqlite3.Connection, table, salvage: Salvage,
                kept_keys: dict[tuple[str, str], set]) -> None:
    """One table's readable rows into `out`, less those whose parent rows were not kept."""
    columns = [c.name for c in table.columns]
    try:
        stored = {_text(r[1]) for r in source.execute(f'PRAGMA table_info("{table.name}")')}
    except sqlite3.DatabaseError:
        stored = set()
    columns = [c for c in columns if c in stored]
    salvage.kept[table.name], salvage.lost[table.name] = 0, 0
    if not columns:
        return
    parents = [(columns.index(fk.parent.name), (fk.column.table.name, fk.column.name))
               for fk in table.foreign_keys if fk.parent.name in columns]
    referenced = {fk.column.name for t in table.metadata.tables.values() for fk in t.foreign_keys
                  if fk.column.table is table and fk.column.name in columns}
    for name in referenced:
        kept_keys[(table.name, name)] = set()
    # OR IGNORE: a page cut short can read as a row with NULL where the schema forbids it, or as a
    # second copy of a key; such garbage is counted lost (rowcount says what went in), not fatal.
    insert = (f'INSERT OR IGNORE INTO "{table.name}" ({", ".join(columns)}) '
              f'VALUES ({", ".join("?" for _ in columns)})')
    rows, gaps = _readable_rows(source, table.name, columns)
    keep = []
    for row in rows():
        values = _decoded(row)
        if values is None or any(values[i] is not None and values[i] not in kept_keys.get(key, ())
                                 for i, key in parents):
            salvage.lost[table.name] += 1
            continue
        keep.append(values)
        for name in referenced:
            kept_keys[(table.name, name)].add(values[columns.index(name)])
        if len(keep) == 1000:
            _insert_rows(out, insert, keep, table.name, salvage)
            keep = []
    _insert_rows(out, insert, keep, table.name, salvage)
    salvage.lost[table.name] += sum(high - low + 1 for low, high in gaps)
    if gaps:
        salvage.unreadable[table.name] = gaps


def _readable_rows(source: sqlite3.Connection, table: str, columns: list[str],
                   batch: int = 500) -> tuple[Callable[[], Iterator[tuple]], list[tuple[int, int]]]:
    """The rows of `table` in rowid order, stepping over every stretch of rowids that cannot be
    read (returned as (first, last) pairs once the rows are consumed). Rowids are the tables'
    autoincrementing ids, so a stretch is about as many rows as were lost."""
    query = f'SELECT rowid, {", ".join(columns)} FROM "{table}" WHERE rowid > ? ORDER BY rowid LIMIT ?'
    gaps: list[tuple[int, int]] = []

    def fetch(after: int, limit: int):
        try:
            return source.execute(query, (after, limit)).fetchall()
        except sqlite3.DatabaseError:
            return None

    def rows() -> Iterator[tuple]:
        after = 0  # the tables' ids count from 1
        while True:
            found = fetch(after, batch)
            if found is None:  # damage within the next batch: up to it one row at a time
                found = fetch(after, 1)
                if found is None:
                    resume = _next_readable(fetch, after)
                    if resume is None:
                        return
                    gaps.append((after + 1, resume - 1))
                    after = resume - 1
                    continue
            if not found or found[-1][0] <= after:  # none, or a damaged tree that leads back: the end
                return
            for row in found:
                yield row[1:]
            after = found[-1][0]

    return rows, gaps  # `gaps` fills as rows() is consumed


def _next_readable(fetch, after: int) -> int | None:
    """The first rowid past a damaged stretch that starts after `after`: found by doubling the
    step until a read succeeds, then bisecting back to the stretch's end. None: nothing after it
    can be read (or nothing is there)."""
    step, found = 1, None
    while after + step < 2**62:
        found = fetch(after + step, 1)
        if found is not None:
            break
        step *= 2
    if found is None or not found:
        return None
    low, high = after + step // 2, after + step  # a read from `low` fails, from `high` succeeds
    while high - low > 1:
        middle = (low + high) // 2
        if fetch(middle, 1) is None:
            low = middle
        else:
            high = middle
    first = fetch(high, 1)
    return first[0][0] if first else None


def _decoded(row: tuple) -> tuple | None:
    """A row read as bytes, its text decoded; None when some text is not UTF-8 (a damaged cell)."""
    try:
        return tuple(v.decode("utf-8") if isinstance(v, bytes) else v for v in row)
    except UnicodeDecodeError:
        return None


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
