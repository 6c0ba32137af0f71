"""Schema versions: new databases get the current schema, old ones are migrated and still read,
and newer, foreign or damaged files are refused and left byte for byte as they were."""

import hashlib
import math
import subprocess
import sys
import sqlite3
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, inspect, select
from sqlalchemy.orm import sessionmaker

import results_db
from bench_runner.cli import main
from results_db import queries, schema, store
from results_db.models import BenchmarkInfo
from tests.conftest import unescaped


@contextmanager
def sqlite(path):
    """A connection that commits and closes on exit: one left open would checkpoint its
    write-ahead log into the file later, in the middle of a test of that file's bytes."""
    db = sqlite3.connect(path)
    try:
        with db:
            yield db
    finally:
        db.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def first_schema_db(url: str, stamped: bool) -> None:
    """A database as the walking skeleton wrote it: schema 0001 and one result with metrics."""
    from alembic import command
    from sqlalchemy import text

    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(schema._config(conn), "0001")
        if not stamped:  # made with create_all, before migrations existed
            conn.execute(text("DROP TABLE alembic_version"))
        for row in (
            "INSERT INTO machine VALUES (1, 'k', 'old box (CPU)', 'old', 'CPU', 2, '2.5', NULL, NULL, 'Linux', '3.11')",
            "INSERT INTO run VALUES (1, 1, 'quick', 'finished', '{}', 1, 1, NULL, NULL, '2025-01-01 00:00:00', NULL)",
            "INSERT INTO benchmark VALUES ('elementwise', 'efficient', 'E', 'a, b', '[\"n\"]', 'n')",
            "INSERT INTO method VALUES ('elementwise', 'hadamard', 'hadamard', 'a*b', 'a b', '{\"n\": 1}', "
            "'[\"eager\"]')",
            "INSERT INTO result VALUES (1, 1, 'elementwise', 'hadamard', 'eager', 'cpu', 'float32', 'forward', "
            "'n=4096', 'ok', NULL, '[0.001]', '2025-01-01 00:00:00')",
            "INSERT INTO metric VALUES (1, 'time_median_s', 0.001)",
        ):
            conn.execute(text(row))
    engine.dispose()


@pytest.mark.parametrize("stamped", [True, False], ids=["stamped", "from-create_all"])
def test_a_first_schema_database_is_migrated_and_its_results_still_read(store_url, tmp_path, stamped, capsys):
    first_schema_db(store_url, stamped)
    assert schema.engine_revision(create_engine(store_url)) == "0001"
    engine = results_db.open_engine(store_url)
    assert schema.engine_revision(engine) == schema.head()
    with sessionmaker(engine)() as session:
        frame = queries.export_frame(session)
        catalogue = queries.catalogue_frame(session)
    assert list(frame["method"]) == ["hadamard"] and frame["time_median_s"].iloc[0] == 0.001
    with sessionmaker(engine)() as session:  # 0007 filled the latest-result table from what was stored
        assert list(queries.results_frame(session, latest=True)["result_id"]) == [1]
    assert catalogue["against"].iloc[0] == []  # a column the first schema lacked, filled as the models write
    with sessionmaker(engine)() as session:  # 0005 gave the old machine a fingerprint from what it recorded
        machine = session.get(results_db.Machine, 1)
        assert machine.memory_gib is None and machine.driver_version is None
        assert machine.fingerprint == store.fingerprint_of({"cpu_model": "CPU", "cpu_cores": 2}) != ""
    if store_url.startswith("sqlite"):  # the file as it was, kept beside it, whole and readable
        kept = tmp_path / "store.db.before-0001"
        assert schema.sqlite_revision(kept) == "0001"
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith("store.db.before")] == [kept.name]
        assert f"the file as it was is {kept}" in capsys.readouterr().err  # and the user is told where


def test_floors_stored_at_the_99_percent_width_are_widened_to_the_margin(store_url):
    """0011: a floor `noise` stored as the change 99% of pairs stay within (2.576 standard errors)
    becomes the margin it would store from the same runs now (1.96 + 1.2816), in log space."""
    from alembic import command
    from sqlalchemy import text

    engine = create_engine(store_url)
    with engine.begin() as conn:
        command.upgrade(schema._config(conn), "0010")
        for drift, size in ((0.2, "n=1"), (0.05, "n=2")):
            conn.execute(text("INSERT INTO noise_floor VALUES ('f', 'elementwise', 'hadamard', 'eager', 'cpu', "
                              f"'float32', 'forward', '{size}', {drift}, '[1, 2, 3]', '2026-12-04 00:00:00')"))
    engine.dispose()
    with sessionmaker(results_db.open_engine(store_url))() as session:
        floors = dict(session.execute(select(results_db.NoiseFloor.size, results_db.NoiseFloor.drift)).all())
    s = math.log1p(0.2) / (2.576 * math.sqrt(2))  # the spread the stored floor came from
    assert floors["n=1"] == pytest.approx(math.expm1(3.2416 * math.sqrt(2) * s), rel=1e-9)  # 25.8%
    assert floors["n=2"] == pytest.approx(math.expm1(math.log1p(0.05) * 3.2416 / 2.576), rel=1e-9)


def test_ab_sides_leave_the_latest_results_and_their_cells_history_points(store_url):
    """0012: a latest result that pointed at an `ab` side falls back to the newest plain run's, and
    the cached points of every cell a side measured go, to be searched again without the sides."""
    from alembic import command

    from tests.conftest import BENCHMARKS, FACTS, METHODS

    engine = create_engine(store_url)
    with engine.begin() as conn:
        command.upgrade(schema._config(conn), "0011")
    cells = [dict(benchmark="elementwise", method="hadamard", backend="eager", device="cpu", dtype="float32",
                  mode="forward", size=f"n={n}") for n in (1, 2)]
    with sessionmaker(engine)() as session, session.begin():
        store.sync_catalogue(session, BENCHMARKS, METHODS)
        host = store.get_or_create_machine(session, FACTS, "testhost")
        runs = [store.start_run(session, host, "quick", {}, 2).id for _ in range(3)]
        for run_id in runs:  # runs 2 and 3 become a session after their results land, as 0011 knew them
            for cell in cells if run_id != 3 else cells[:1]:
                store.record_result(session, run_id, cell, "ok", samples=[1e-3], sample_rounds=[0])
        session.get(results_db.Run, 2).paired_with, session.get(results_db.Run, 3).paired_with = 3, 2
        session.flush()
        store.write_history_points(session, [{"result_id": r, "time_median_s": 1e-3, "ci_low": 1e-3,
                                              "ci_high": 1e-3, "change_point": False} for r in range(1, 6)])
        other = store.get_or_create_machine(session, {**FACTS, "key": "other"}, "otherhost")
        store.record_result(session, store.start_run(session, other, "quick", {}, 1).id,
                            {**cells[0], "benchmark": "token_mixing"}, "ok", samples=[1e-3], sample_rounds=[0])
        store.write_history_points(session, [{"result_id": 6, "time_median_s": 1e-3, "ci_low": 1e-3,
                                              "ci_high": 1e-3, "change_point": False}])
    with sessionmaker(engine)() as session:
        assert sorted(queries.results_frame(session, latest=True)["run_id"]) == [2, 3, 4]  # sides' among them
    engine.dispose()
    with sessionmaker(results_db.open_engine(store_url))() as session:
        latest = queries.results_frame(session, latest=True)
        assert sorted(zip(latest["run_id"], latest["size"])) == [(1, "n=1"), (1, "n=2"), (4, "n=1")]
        assert list(session.scalars(select(results_db.HistoryPoint.result_id))) == [6]


def test_the_migrations_build_the_schema_the_models_create(tmp_path):
    old, new = tmp_path / "old.db", tmp_path / "new.db"
    first_schema_db(f"sqlite:///{old}", stamped=True)
    results_db.open_engine(f"sqlite:///{old}")
    results_db.open_engine(f"sqlite:///{new}")

    def shape(path):
        found = inspect(create_engine(f"sqlite:///{path}"))
        return {t: ({(c["name"], c["nullable"]) for c in found.get_columns(t)},
                    {i["name"] for i in found.get_indexes(t)})
                for t in found.get_table_names()}

    assert shape(old) == shape(new)


def test_the_db_command_reports_and_upgrades(tmp_path, capsys):
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    first_schema_db(url, stamped=False)
    assert main(["db", "status", "--db", url]) == 0
    assert "schema 0001, older than this code's" in capsys.readouterr().out
    assert main(["db", "upgrade", "--db", url]) == 0
    assert f"migrated from schema 0001 to {schema.head()}" in capsys.readouterr().out
    assert main(["db", "upgrade", "--db", url]) == 0
    assert "already at schema" in capsys.readouterr().out


def _newer(path):
    results_db.open_engine(f"sqlite:///{path}").dispose()
    with sqlite(path) as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")


def _foreign(path):
    with sqlite(path) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO users VALUES (1, 'ada')")


def _not_sqlite(path):
    path.write_text("name,value\na,1\n")


def _truncated(path):
    results_db.open_engine(f"sqlite:///{path}").dispose()
    with sqlite(path) as db:
        db.execute("PRAGMA journal_mode=DELETE")  # everything in the main file, no -wal beside it
        db.execute("CREATE TABLE filler (x BLOB)")
        db.executemany("INSERT INTO filler VALUES (?)", [(b"x" * 4000,) for _ in range(50)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_FILES = {
    "newer": (_newer, "was written by a newer Hadamard Bench (schema 9999"),
    "foreign": (_foreign, "is not a Hadamard Bench database (it has tables users)"),
    "not sqlite": (_not_sqlite, "is not an SQLite database"),
    "truncated": (_truncated, "is damaged (shorter than its header says"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
@pytest.mark.parametrize("argv", [["run", "--suite", "smoke", "--benchmark", "elementwise", "--method", "copy"],
                                  ["export", "--out", "-"], ["db", "upgrade"],
                                  ["import", "results/reference/nvidia-h200.json"]],
                         ids=["run", "export", "db-upgrade", "import"])
def test_a_database_we_must_not_open_is_refused_in_one_line_and_left_untouched(tmp_path, capsys, case, argv):
    make, message = BAD_FILES[case]
    path = tmp_path / "their.db"
    make(path)
    before = digest(path)
    argv = [a if not a.startswith("results/") else str(Path(__file__).resolve().parents[2] / a) for a in argv]
    assert main([*argv, "--db", f"sqlite:///{path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "left untouched" in err and len(err.splitlines()) == 1, err
    assert digest(path) == before
    # Nothing beside it but SQLite's own shared-memory files, which reading a WAL database makes.
    assert {p.name for p in tmp_path.iterdir()} - {"their.db-wal", "their.db-shm"} == {"their.db"}


def test_the_dashboard_says_why_it_cannot_open_a_foreign_file(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    path = tmp_path / "their.db"
    _foreign(path)
    before = digest(path)
    monkeypatch.setenv("HADAMARD_BENCH_DB", f"sqlite:///{path}")
    at = AppTest.from_file("../../app/streamlit_app.py", default_timeout=60).run()
    assert not at.exception
    assert "is not a Hadamard Bench database (it has tables users)" in unescaped(at.error[0].value)
    assert digest(path) == before


def test_a_creation_cut_short_is_finished_not_refused(tmp_path):
    from tests.conftest import seed

    path = tmp_path / "half.db"
    half = create_engine(f"sqlite:///{path}")  # what a process killed while creating the schema leaves
    for table in ("machine", "run"):
        results_db.Base.metadata.tables[table].create(half)
    half.dispose()
    engine = results_db.open_engine(f"sqlite:///{path}")
    assert schema.sqlite_revision(path) == schema.head()
    assert schema.OUR_TABLES <= set(inspect(engine).get_table_names())
    seed(f"sqlite:///{path}")  # and it holds results


WRITE_FROM_ELSEWHERE = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("INSERT INTO benchmark VALUES (?, 'high_order', 'From another process', 'X', '[]', 'n')", (sys.argv[2],))
db.commit()
db.close()  # the last connection, as it believes: it checkpoints and deletes the WAL
"""


def test_opening_a_database_again_keeps_this_process_connections_current(tmp_path):
    """A plain open() and close() of the file drops every SQLite lock this process holds on it
    (POSIX fcntl locks): another process's last close then deletes the WAL under a live pooled
    connection, which goes on reading a stale snapshot. Opening a second engine reads the header
    and takes the flock; what other processes write afterwards must still be seen by both."""
    path = tmp_path / "results.db"
    first = sessionmaker(results_db.open_engine(f"sqlite:///{path}"))
    second = sessionmaker(results_db.open_engine(f"sqlite:///{path}", create=False))
    for written in range(1, 4):
        subprocess.run([sys.executable, "-c", WRITE_FROM_ELSEWHERE, str(path), f"b{written}"], check=True)
        for factory in (first, second):
            with factory() as session:
                assert session.scalar(select(func.count()).select_from(BenchmarkInfo)) == written
