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


@pytest.fixture(scope="module")
def sound_bytes(tmp_path_factory) -> bytes:
    """A results file of RUNS runs, its write-ahead log folded in: every byte in the file itself.
    Made once for the module (twelve seedings, about a second), and copied for each test."""
    path = tmp_path_factory.mktemp("sound") / "results.db"
    for _ in range(RUNS):
        seed(f"sqlite:///{path}")
    gc.collect()  # the seeding engines' pooled connections, closed
    with closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE result SET message = 'THE-DAMAGED-PAGE' WHERE id = 50")
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.read_bytes()


@pytest.fixture
def sound(sound_bytes, tmp_path) -> Path:
    """The sound file, this test's own copy."""
    path = tmp_path / "results.db"
    path.write_bytes(sound_bytes)
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
    assert isinstance(said, damage.StorageFailed) and not damage.is_damage(refused.value)
    assert str(said).startswith(f"could not write to the results database {sound} (attempt to write a readonly")
    assert damage.explained(str(sound), ValueError("a bug of ours")) is None  # anything else: a traceback
