"""The table of bad inputs: CLI arguments, database URLs and paths, files to import. Each one
gets one line on stderr and exit status 2, and the database it was pointed at is unchanged
(byte for byte), or not created at all."""

import gc
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from bench_runner.cli import main

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = str(ROOT / "results" / "reference" / "nvidia-h200.json")


def _files(tmp: Path) -> dict[str, Path]:
    """Files the import cases read, written fresh for each test."""
    good = json.loads(Path(REFERENCE).read_text())
    hostile = {**good, "runs": [{**good["runs"][0], "results": [{**good["runs"][0]["results"][0],
                                                                 "metrics": {"time_median_s": 10**400}}]}]}
    made = {"empty.json": "", "text.json": "hello", "array.json": "[]", "hostile.json": json.dumps(hostile),
            "other.json": json.dumps({"hello": "world"}), "newer.json": json.dumps({**good, "version": 7}),
            "nan.json": '{"format": "hadamard-bench-results", "version": 1, "runs": [{"x": NaN}]}'}
    for name, text in made.items():
        (tmp / name).write_text(text)
    (tmp / "folder.json").mkdir()
    (tmp / "a_file").write_text("not a folder")
    return {name: tmp / name for name in [*made, "folder.json", "a_file"]}


CASES = [
    # CLI arguments
    (["run", "--suite", "huge"], "invalid choice"),
    (["run", "--suite", "smoke", "--benchmark", "attention"], "unknown benchmark 'attention'"),
    (["run", "--suite", "smoke", "--method", "poly-sa"], "unknown method 'poly-sa'"),
    (["run", "--suite", "smoke", "--size", "N=1e9"], "not of the form NAME=INT"),
    (["run", "--suite", "smoke", "--size", "Q=1"], "unknown size parameter 'Q'"),
    (["run", "--suite", "smoke", "--threads", "-3"], "not a positive number"),
    (["run", "--suite", "smoke", "--cell-timeout", "soon"], "is not a number"),
    (["run", "--resume", "99"], "no run 99 in this database"),
    (["run", "--resume", "1"], "has finished; nothing to resume"),
    (["export", "--out", "-", "--run", "42"], "no run 42 in this database"),
    (["export", "--out", "-", "--format", "xlsx"], "invalid choice"),
    (["submit", "--label", "gpu server", "--suite", "smoke"], "is not a label"),
    (["submit", "--label", "gpu", "--suite", "smoke", "--backend", "cuda"], "invalid choice"),
    (["agent", "--label", "gpu", "--poll", "-1"], "not a positive number"),
    (["run", "--suite", "smoke", "--ray-resource", "x=1"], "need --executor ray"),
    (["run", "--suite", "smoke", "--executor", "ray", "--in-process"], "exclude each other"),
    (["agent", "--label", "x", "--once", "--ray-address", "here:6379"],
     "hadamard-bench agent: --ray-address, --ray-resource and --accelerator-type need --executor ray"),
    (["db", "downgrade"], "invalid choice"),
    (["mark", "1", "--expected", "--method", "Copy"], "run 1 has no `ok` or failed cell with method 'Copy' to mark"),
    # files to write, refused before anything is measured or read
    (["export", "--out", "{folder.json}"], "is a folder, not a file"),
    (["export", "--out", "{a_file}/rows.csv"], "is a file, so"),
    (["plot", "--benchmark", "elementwise", "--out", "{a_file}/deeper/chart.svg"], "is a file, so"),
    (["gate", "1", "--markdown", "{folder.json}"], "is a folder, not a file"),
    (["ab", "HEAD", "HEAD", "--suite", "smoke", "--markdown", "{a_file}/summary.md"], "is a file, so"),
    # files to import
    (["import", "{empty.json}"], "is not valid JSON"),
    (["import", "{text.json}"], "is not valid JSON"),
    (["import", "{array.json}"], "holds a JSON list, not an object"),
    (["import", "{other.json}"], "neither a Hadamard Bench bundle nor a pytest-benchmark JSON"),
    (["import", "{hostile.json}"], "too large to store exactly"),
    (["import", "{newer.json}"], "newer than this Hadamard Bench reads"),
    (["import", "{nan.json}"], "is not a number JSON allows"),
    (["import", "{folder.json}"], "cannot read"),
    (["import", "{missing.json}"], "cannot read"),
]

# Where the database itself is the bad input: these name their own --db.
URL_CASES = [
    (["run", "--suite", "smoke", "--db", "results.db"], "malformed database URL"),
    (["run", "--suite", "smoke", "--db", "mysql+nosuchdriver://x/y"], "no database driver"),
    (["run", "--suite", "smoke", "--db", "sqlite://"], "names no file"),
    (["run", "--suite", "smoke", "--db", "sqlite:///{a_file}/results.db"], "cannot open the results database"),
    (["export", "--out", "-", "--db", "sqlite:///{a_file}"], "is not an SQLite database"),
    (["db", "status", "--db", "postgresql+psycopg://nobody:secret@127.0.0.1:1/none"],
     "cannot reach the results database at postgresql+psycopg://nobody:***@127.0.0.1:1/none"),
]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def finished_once(tmp_path_factory) -> Path:
    """One finished run, measured once for the module."""
    path = tmp_path_factory.mktemp("finished") / "kept.db"
    assert main(["run", "--suite", "smoke", "--benchmark", "elementwise", "--method", "copy", "--backend", "eager",
                 "--device", "cpu", "--in-process", "--quiet", "--db", f"sqlite:///{path}"]) == 0
    # Close the run's pooled connections and fold the write-ahead log into the file now: left
    # to the garbage collector, that checkpoint would change the file mid-test, whatever the input.
    gc.collect()
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path


@pytest.fixture
def finished_db(finished_once, tmp_path) -> tuple[str, Path]:
    """A copy of a database holding one finished run, which every bad input must leave as it is."""
    path = tmp_path / "kept.db"
    shutil.copyfile(finished_once, path)
    return f"sqlite:///{path}", path


def _fill(argv: list[str], files: dict[str, Path], tmp: Path) -> list[str]:
    names = {**{k.split(".")[0]: str(v) for k, v in files.items()}, "missing": str(tmp / "missing.json")}
    out = []
    for a in argv:
        for key, value in names.items():
            a = a.replace("{" + key + ".json}", value).replace("{" + key + "}", value)
        out.append(a)
    return out


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_a_bad_input_leaves_the_database_as_it_was(finished_db, tmp_path, capsys, argv, message):
    url, path = finished_db
    files = _files(tmp_path)
    capsys.readouterr()
    before = digest(path)
    assert main([*_fill(argv, files, tmp_path), "--db", url]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert err.startswith(f"hadamard-bench {argv[0]}: "), err  # one name for the command, whichever way it ran
    assert digest(path) == before


@pytest.mark.parametrize("argv, message", URL_CASES, ids=[" ".join(a)[:60] for a, _ in URL_CASES])
def test_a_bad_database_url_or_path_is_refused_and_creates_nothing(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    files = _files(tmp_path)
    before = {p.name: digest(p) for p in tmp_path.iterdir() if p.is_file()}
    assert main(_fill(argv, files, tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert err.startswith(f"hadamard-bench {argv[0]}: "), err
    assert "secret" not in err
    assert {p.name: digest(p) for p in tmp_path.iterdir() if p.is_file()} == before


def test_folders_missing_above_a_file_to_write_are_made(finished_db, tmp_path, capsys):
    url, _ = finished_db
    out = tmp_path / "exports" / "today" / "rows.csv"
    assert main(["export", "--out", str(out), "--db", url]) == 0
    assert out.read_text().startswith("benchmark,method,backend")


def test_a_device_this_machine_lacks_is_refused_before_anything_is_stored(finished_db, monkeypatch, capsys):
    """Every cell would be stored `skipped` (as it was): the mistake is said at once instead. A Ray
    run is not judged by this machine's devices, since its workers bring their own."""
    import torch

    from bench_runner.commands.run import devices_lacking

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    url, path = finished_db
    before = digest(path)
    assert main(["run", "--suite", "smoke", "--device", "cuda", "--device", "cpu", "--db", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "hadamard-bench run: --device cuda cannot run here: no CUDA device; nothing was stored"
    assert digest(path) == before
    assert devices_lacking(["cuda"], "ray") is None and devices_lacking(["cpu"], "local") is None
