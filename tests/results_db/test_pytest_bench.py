"""pytest-benchmark interop: its own JSON imported, our export read by its own `compare`."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

import results_db
from bench_runner.cli import main
from results_db import queries

PYTEST_FILE = '''
import pytest

@pytest.mark.parametrize("n", [10, 1000])
@pytest.mark.parametrize("kind", ["list", "range"])
def test_sum(benchmark, n, kind):
    data = list(range(n)) if kind == "list" else range(n)
    benchmark.extra_info["elements"] = n
    benchmark(sum, data)
'''


@pytest.fixture(scope="module")
def pytest_benchmark_json(tmp_path_factory) -> Path:
    """A file that pytest-benchmark itself wrote."""
    folder = tmp_path_factory.mktemp("pb")
    (folder / "test_sums.py").write_text(PYTEST_FILE)
    out = folder / "out.json"
    # pytest-benchmark switches itself off where it sees an xdist worker's variables, which a
    # `make test` run in parallel hands down to this pytest of its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "test_sums.py"),
                           f"--benchmark-json={out}", "--benchmark-max-time=0.05", "-o", "addopts="],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def frame(url):
    with sessionmaker(results_db.open_engine(url))() as session:
        return queries.results_frame(session), queries.runs_frame(session)


def test_a_file_pytest_benchmark_wrote_is_stored_as_a_run(pytest_benchmark_json, db_url, capsys):
    theirs = json.loads(pytest_benchmark_json.read_text())
    assert main(["import", str(pytest_benchmark_json), "--db", db_url]) == 0
    assert capsys.readouterr().err == f"imported 1 run from {pytest_benchmark_json}\n"
    results, runs = frame(db_url)
    assert list(runs["suite"]) == ["pytest-benchmark"] and len(results) == 4
    assert set(results["benchmark"]) == {"test_sums"}
    assert set(results["method"]) == {"test_sum[kind=list]", "test_sum[kind=range]"}
    assert set(results["size"]) == {"n=10", "n=1000"}
    for bench in theirs["benchmarks"]:
        row = results[(results["method"] == f"test_sum[kind={bench['params']['kind']}]")
                      & (results["size"] == f"n={bench['params']['n']}")].iloc[0]
        assert row["time_median_s"] == pytest.approx(bench["stats"]["median"])
        assert row["samples"] == bench["stats"]["rounds"] and row["elements"] == bench["params"]["n"]
    assert main(["import", str(pytest_benchmark_json), "--db", db_url]) == 0
    assert capsys.readouterr().err == f"imported 0 runs from {pytest_benchmark_json}; 1 was already here\n"


def test_our_export_is_read_by_pytest_benchmark_compare(seeded_db, tmp_path):
    path = tmp_path / "ours.json"
    assert main(["export", "--db", seeded_db, "--format", "pytest-benchmark", "--out", str(path)]) == 0
    done = subprocess.run([sys.executable, "-m", "pytest_benchmark", "compare", str(path), "--columns=min,median",
                           f"--csv={tmp_path / 'compared'}"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "poly_sa[eager-cpu-float32-forward-1-512-64-4]" in done.stdout
    rows = (tmp_path / "compared.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 8  # a header and the eight seeded cells
    # And back: what compare read is what we stored.
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert main(["import", str(path), "--db", other]) == 0
    ours, _ = frame(seeded_db)
    back, _ = frame(other)
    assert sorted(back["time_median_s"]) == pytest.approx(sorted(ours["time_median_s"]))


def _entry(d):
    return d["benchmarks"][0]


BAD = {
    "no median": (lambda d: _entry(d)["stats"].pop("median"), "its stats have no median"),
    "median as text": (lambda d: _entry(d)["stats"].update(median="fast"), "stats.median must be a number"),
    "data not numbers": (lambda d: _entry(d)["stats"].update(data=["a"]), "a stats.data value must be a number"),
    "name missing": (lambda d: _entry(d).pop("name"), "field 'name' must be non-empty text"),
    "name too long": (lambda d: _entry(d).update(name="t" * 600), "longer than 500 characters"),
    "twice": (lambda d: d["benchmarks"].append(copy.deepcopy(_entry(d))), "appears twice"),
    "huge rounds": (lambda d: _entry(d)["stats"].update(rounds=10**30), "too large to store exactly"),
    "bad time": (lambda d: d.update(datetime="soon"), "'datetime' must be an ISO 8601 time"),
    "neither": (lambda d: d.pop("machine_info"), "neither a Hadamard Bench bundle nor a pytest-benchmark JSON"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_pytest_benchmark_file_is_refused_and_nothing_is_written(pytest_benchmark_json, tmp_path, capsys,
                                                                       case):
    change, message = BAD[case]
    data = json.loads(pytest_benchmark_json.read_text())
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    db = tmp_path / "results.db"
    assert main(["import", str(path), "--db", f"sqlite:///{db}"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not db.exists()
