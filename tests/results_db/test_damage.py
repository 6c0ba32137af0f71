"""A damaged SQLite results file: every verb refuses it in one line and writes nothing; `db check`
finds the damage, `db backup` copies a sound file consistently, `db recover` salvages the rest."""

import gc
import hashlib
import json
import random
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from bench_runner.cli import main
from results_db import damage
from tests.conftest import seed

ROOT = Path(__file__).resolve().parents[2]
RUNS = 12  # twelve runs of eight results: the result table spans several pages


def rows(path: Path, table: str) -> dict[int, tuple]:
    with closing(sqlite3.connect(path)) as db:
        return {r[0]: r[1:] for r in db.execute(f"SELECT rowid, * FROM {table} ORDER BY rowid")}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def sound(tmp_path) -> Path:
    """A results file of RUNS runs, its write-ahead log folded in: every byte in the file itself."""
    path = tmp_path / "results.db"
    for _ in range(RUNS):
        seed(f"sqlite:///{path}")
    gc.collect()  # the seeding engines' pooled connections, closed
    with closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE result SET message = 'THE-DAMAGED-PAGE' WHERE id = 50")
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def overwrite_page(path: Path, marker: bytes = b"THE-DAMAGED-PAGE") -> None:
    """4 KiB of noise over the page that holds `marker`, as a bad disk or a torn copy leaves it."""
    data = path.read_bytes()
    page_size = int.from_bytes(data[16:18], "big")
    start = data.index(marker) // page_size * page_size
    noise = random.Random(0).randbytes(page_size)
    path.write_bytes(data[:start] + noise + data[start + page_size:])


@pytest.fixture
def damaged_file(sound, tmp_path) -> tuple[Path, Path]:
    """(the damaged file, a copy of it before the damage)."""
    before = tmp_path / "before.db"
    before.write_bytes(sound.read_bytes())
    overwrite_page(sound)
    return sound, before


VERBS = {
    "compare": ["compare", "6", "7"],  # result 50, on the damaged page, is run 7's
    "export": ["export", "--format", "csv", "--out", "-"],
    "gate": ["gate", "12"],
    "run": ["run", "--suite", "smoke", "--benchmark", "elementwise", "--method", "copy"],
    "import": ["import", str(ROOT / "results" / "reference" / "nvidia-h200.json")],
    "mark": ["mark", "3", "--expected", "--note", "a torch upgrade"],
}


@pytest.mark.parametrize("verb", list(VERBS))
def test_a_damaged_file_is_one_line_exit_2_and_nothing_is_written(damaged_file, capsys, verb):
    path, _ = damaged_file
    before = digest(path)
    assert main([*VERBS[verb], "--db", f"sqlite:///{path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"the results database {path} is damaged" in err and "db recover" in err and "left untouched" in err
    assert digest(path) == before


def test_db_check_names_the_damaged_table_and_passes_a_sound_file(damaged_file, capsys):
    path, before = damaged_file
    assert main(["db", "check", "--db", f"sqlite:///{before}"]) == 0
    assert "the file is sound" in capsys.readouterr().out
    assert main(["db", "check", "--db", f"sqlite:///{path}"]) == 1
    out = capsys.readouterr().out
    assert "is damaged" in out and "\n  result: " in out and "db recover" in out


def test_db_recover_salvages_every_row_off_the_damaged_page(damaged_file, tmp_path, capsys):
    path, before = damaged_file
    out = tmp_path / "recovered.db"
    assert main(["db", "recover", str(out), "--db", f"sqlite:///{path}"]) == 0
    said = capsys.readouterr().out
    original, salvaged = rows(before, "result"), rows(out, "result")
    lost = set(original) - set(salvaged)
    assert 50 in lost and 0 < len(lost) < len(original) // 2  # the damaged page's rows, no more
    assert all(salvaged[i] == original[i] for i in salvaged)  # what came back is as it was stored
    assert rows(out, "run") == rows(before, "run")  # every run survives
    kept_metrics = rows(out, "metric")
    assert kept_metrics and all(m[0] in salvaged for m in kept_metrics.values())  # no metric of a lost result
    assert f"result {len(salvaged):,} kept, {len(lost):,} lost" in said
    # The new file is a results database the tool reads: its cells compare, its latest results rebuilt.
    assert main(["compare", "1", "12", "--format", "json", "--db", f"sqlite:///{out}"]) == 0
    assert json.loads(capsys.readouterr().out)["cells"]
    assert main(["db", "check", "--db", f"sqlite:///{out}"]) == 0
    # It never overwrites: a second recovery into the same file is refused.
    assert main(["db", "recover", str(out), "--db", f"sqlite:///{path}"]) == 2
    assert "exists already" in capsys.readouterr().err


def test_db_recover_of_a_file_cut_short_keeps_what_it_holds(sound, tmp_path, capsys):
    data = sound.read_bytes()
    sound.write_bytes(data[: len(data) * 3 // 4])
    out = tmp_path / "recovered.db"
    assert main(["db", "recover", str(out), "--db", f"sqlite:///{sound}"]) == 0
    assert 0 < len(rows(out, "result")) <= RUNS * 8


def test_db_backup_copies_what_the_write_ahead_log_still_holds(sound, tmp_path, capsys):
    url = f"sqlite:///{sound}"
    seed(url)  # one more run, committed into the log beside the file, not yet into the file
    with closing(sqlite3.connect(sound)) as db:  # a reader holds the log open, as a dashboard does
        db.execute("PRAGMA journal_mode=WAL")
        assert db.execute("SELECT count(*) FROM run").fetchone()[0] == RUNS + 1
        copy = tmp_path / "copy.db"
        assert main(["db", "backup", str(copy), "--db", url]) == 0
    assert "checked" in capsys.readouterr().out
    assert rows(copy, "result") == rows(sound, "result") and len(rows(copy, "run")) == RUNS + 1
    assert damage.quick_check(copy) == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("copy")) == ["copy.db"]  # one file
    assert main(["db", "backup", str(copy), "--db", url]) == 2  # never over a file
    assert "never overwrites" in capsys.readouterr().err


def test_postgresql_is_pointed_to_its_own_tools(capsys, monkeypatch):
    assert main(["db", "check", "--db", "postgresql+psycopg://u:secret@127.0.0.1:1/none"]) == 2
    err = capsys.readouterr().err
    assert "pg_amcheck" in err and "pg_dump" in err and "secret" not in err


def test_the_dashboard_says_the_file_is_damaged_and_writes_nothing(damaged_file, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import unescaped

    path, _ = damaged_file
    before = digest(path)
    monkeypatch.setenv("HADAMARD_BENCH_DB", f"sqlite:///{path}")
    monkeypatch.setenv("HADAMARD_BENCH_REFERENCE", "on")  # it would add the shipped runs to a sound file
    at = AppTest.from_file("../../app/streamlit_app.py", default_timeout=60).run()
    assert not at.exception
    assert f"the results database {path} is damaged" in unescaped(at.error[0].value)
    assert digest(path) == before


@pytest.mark.slow
def test_a_disk_that_fills_mid_run_stops_it_in_one_line_and_resume_finishes_it(tmp_path):
    """A file-size limit stands in for a full disk: SQLite's writes past it fail as on a full one."""
    import os
    import resource
    import signal
    import subprocess
    import sys

    path = tmp_path / "results.db"
    url = f"sqlite:///{path}"
    seed(url)
    gc.collect()
    before = rows(path, "result")
    limit = path.stat().st_size + 60_000  # room for a few cells, not the whole run

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    argv = [sys.executable, "-m", "bench_runner", "run", "--suite", "smoke", "--benchmark", "elementwise",
            "--db", url, "--quiet"]
    full = subprocess.run(argv, cwd=ROOT, preexec_fn=small_disk, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HADAMARD_BENCH_REFERENCE": "off"})
    assert full.returncode == 2, full.stderr
    said = full.stderr.strip().splitlines()  # the run's own opening lines, then one for the failure
    ours = [i for i, line in enumerate(said) if line.startswith("bench_runner: error: could not write to the "
                                                                 "results database")]
    assert ours and "run --resume 2" in said[ours[0]], full.stderr
    # (What multiprocessing's resource tracker may print after it, at exit under the same limit, is not ours.)
    assert not any("Traceback" in line for line in said[:ours[0]]), full.stderr
    assert damage.quick_check(path) == []  # the file is sound
    with closing(sqlite3.connect(path)) as db:
        status, done, total = db.execute("SELECT status, cells_done, cells_total FROM run WHERE id = 2").fetchone()
    assert status == "failed" and 0 < done < total
    assert {i: r for i, r in rows(path, "result").items() if i in before} == before  # nothing earlier lost
    resumed = subprocess.run([*argv[:4], "--resume", "2", "--db", url, "--quiet"], cwd=ROOT, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT status, cells_done FROM run WHERE id = 2").fetchone() == ("finished", total)


def test_a_process_killed_in_the_middle_of_an_import_leaves_nothing_of_it(tmp_path):
    """The dashboard adds bundles, and `import` stores them, in one transaction each: a process
    killed between two of a bundle's runs (os._exit, no cleanup, as SIGKILL) leaves none of them,
    the file sound and the earlier runs as they were; importing again adds them all."""
    import subprocess
    import sys

    source, target = tmp_path / "source.db", tmp_path / "target.db"
    for _ in range(5):
        seed(f"sqlite:///{source}")
    bundle_file = tmp_path / "five.json"
    assert main(["export", "--format", "bundle", "--out", str(bundle_file), "--db", f"sqlite:///{source}"]) == 0
    seed(f"sqlite:///{target}")
    gc.collect()
    before = rows(target, "result")
    killed = f"""
import os, sys
import results_db.bundle as bundle
stored = bundle.store_results
calls = []
def store_results(*args):
    calls.append(1)
    if len(calls) == 3:  # the third run's results: two runs already written in this transaction
        os._exit(137)
    stored(*args)
bundle.store_results = store_results
from bench_runner.cli import main
sys.exit(main(["import", {str(bundle_file)!r}, "--db", {f"sqlite:///{target}"!r}]))
"""
    done = subprocess.run([sys.executable, "-c", killed], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 137, done.stderr
    assert damage.quick_check(target) == []
    assert rows(target, "result") == before and len(rows(target, "run")) == 1
    assert main(["import", str(bundle_file), "--db", f"sqlite:///{target}"]) == 0
    assert len(rows(target, "run")) == 6 and len(rows(target, "result")) == len(before) * 6


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_server_that_drops_the_run_mid_sweep_stops_it_in_one_line_and_resume_finishes_it(store_url):
    """As a PostgreSQL restart does: the server ends the run's connections after a few cells. The
    run stops in one line, no cell is stored twice, and `--resume` completes it."""
    import os
    import subprocess
    import sys
    import time

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    argv = [sys.executable, "-m", "bench_runner", "run", "--suite", "smoke", "--benchmark", "elementwise",
            "--db", store_url, "--quiet"]
    runner = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "HADAMARD_BENCH_REFERENCE": "off"})
    engine = create_engine(store_url, pool_pre_ping=True)
    database = make_url(store_url).database
    stored = 0
    for _ in range(600):  # until three cells are stored (at most a minute)
        try:
            with engine.connect() as conn:
                stored = conn.execute(text("SELECT count(*) FROM result")).scalar()
        except Exception:  # noqa: BLE001 -- the run has not made its tables yet
            stored = 0
        if stored >= 3:
            break
        time.sleep(0.1)
    assert stored >= 3
    with engine.connect() as conn:  # every connection to the run's database but this one, ended
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": database})
    said = runner.communicate(timeout=600)[1]
    lines = said.strip().splitlines()
    if runner.returncode != 0:  # it stopped (it may also have finished, had the cut fallen between cells)
        ours = [i for i, line in enumerate(lines)
                if line.startswith("bench_runner: error: lost the connection to the results database")]
        assert runner.returncode == 2 and ours, said
        # (psycopg's own notes on the dropped connection, and multiprocessing's at exit, are not ours)
        assert not any("Traceback" in line for line in lines[:ours[0]]), said
        assert "run --resume 1" in lines[ours[0]] and ":hadamard@" not in lines[ours[0]]  # no password
        resumed = subprocess.run([*argv[:4], "--resume", "1", "--db", store_url, "--quiet"], cwd=ROOT,
                                 capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stderr
    with engine.connect() as conn:
        status, done, total = conn.execute(text("SELECT status, cells_done, cells_total FROM run")).one()
        cells = conn.execute(text("SELECT count(*), count(DISTINCT (benchmark, method, backend, size, device, "
                                  "dtype, mode)) FROM result")).one()
    engine.dispose()
    assert (status, done) == ("finished", total) and cells[0] == cells[1] == total


def test_a_recovery_cut_short_leaves_no_half_filled_file(damaged_file, tmp_path, monkeypatch):
    path, _ = damaged_file
    out = tmp_path / "recovered.db"
    monkeypatch.setattr(damage, "_copy_table", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))  # Ctrl-C
    with pytest.raises(KeyboardInterrupt):
        damage.recover(path, f"sqlite:///{out}")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("recovered")]  # a second try may begin


def test_a_write_a_read_only_file_refuses_is_said_as_such_not_as_damage(sound):
    """As root (as CI runs) permissions stop no write, so SQLite's read-only mode stands in for a
    read-only file: the error it raises reads as a write refused, with what to do."""
    with closing(sqlite3.connect(f"file:{sound}?mode=ro", uri=True)) as db:
        with pytest.raises(sqlite3.OperationalError) as refused:
            db.execute("DELETE FROM mark")
    said = damage.explained(str(sound), refused.value)
    assert isinstance(said, damage.CannotWrite) and not damage.is_damage(refused.value)
    assert str(said).startswith(f"could not write to the results database {sound} (attempt to write a readonly")
    assert damage.explained(str(sound), ValueError("a bug of ours")) is None  # anything else: a traceback
