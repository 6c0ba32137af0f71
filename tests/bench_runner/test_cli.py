"""The command line as a user meets it: real processes, a temporary SQLite file."""

import contextlib
import io
import os
import shlex
import subprocess
import sys
import types
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

import results_db
from bench_runner.cli import main
from hadamard_bench import columns
from hadamard_impls import catalogue
from results_db import history_queries, queries
from tests.conftest import seed

ROOT = Path(__file__).resolve().parents[2]


def cli_process(*args, env=None):
    """The command line as a user runs it: a process of its own (one test per exit path)."""
    return subprocess.run([sys.executable, "-m", "bench_runner", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


def cli(*args, env=None):
    """The command line in this process, as a finished process reads: returncode, stdout, stderr.
    The verbs are the same code as in a process of their own, without a second start of torch."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env or {}), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # --help
            code = exc.code
    return types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def test_list_shows_every_method_with_its_role():
    out = cli("list")
    assert out.returncode == 0
    for method in catalogue.methods():
        line = next(l for l in out.stdout.splitlines() if l.split()[:1] == [method.id])
        assert method.role in line


@pytest.mark.parametrize("verb", [[], ["list"], ["run"], ["export"], ["history"], ["compare"], ["gate"], ["noise"]])
def test_every_verb_has_help(verb):
    out = cli(*verb, "--help")
    assert out.returncode == 0
    assert "usage: hadamard-bench" in out.stdout
    assert "%%" not in out.stdout  # a description is printed as written; only help= strings are %-formatted


# The smoke run the tests below share: three benchmarks on eager, enough for every kind of row
# they read (a Hadamard method and its baseline, attention's kernels, a convolution).
SMOKE = ("elementwise", "token_mixing", "spatial_mixing")


@pytest.fixture(scope="module")
def smoke_db(tmp_path_factory):
    """One real smoke run, in a process of its own, shared by the tests below: the path `make run`
    takes (test_a_smoke_run_covers_every_backend runs the whole suite, in make test-all)."""
    path = tmp_path_factory.mktemp("smoke") / "smoke.db"
    out = cli_process("run", "--suite", "smoke", "--backend", "eager", *(f"--benchmark={b}" for b in SMOKE),
                      "--db", f"sqlite:///{path}")
    assert out.returncode == 0, out.stderr
    return f"sqlite:///{path}", out


@pytest.mark.slow
def test_a_smoke_run_covers_every_backend(tmp_path):
    """Every method on every backend but compile, and compile on one method: the runner's path
    through a compiled module is one for all methods, each benchmark's first method is compiled
    by the catalogue's runner cells, and every method's compiled forward and backward are checked
    against eager by the gradient tests (a compile costs seconds here, more with a cold cache:
    all 58 took two minutes of this test)."""
    url = f"sqlite:///{tmp_path / 'smoke.db'}"
    others = sorted({b for m in catalogue.methods() for b in m.backends} - {"compile"})
    compiled = ("elementwise", "hadamard")
    for selection in ([f"--backend={b}" for b in others],
                      ["--backend=compile", f"--benchmark={compiled[0]}", f"--method={compiled[1]}"]):
        out = cli_process("run", "--suite", "smoke", *selection, "--db", url)
        assert out.returncode == 0, out.stderr
        assert "leaked semaphore" not in out.stderr  # the worker that compiled exited on its own
    with sessionmaker(results_db.open_engine(url))() as session:
        frame = queries.results_frame(session)
    expected = {(m.benchmark, m.id, b) for m in catalogue.methods() for b in m.backends
                if b != "compile" or (m.benchmark, m.id) == compiled}
    assert set(zip(frame["benchmark"], frame["method"], frame["backend"])) == expected
    assert {b for m in catalogue.methods() for b in m.backends} == set(frame["backend"])
    assert (frame["status"] == "ok").all(), frame[["method", "backend", "message"]]
    assert (frame.loc[frame["backend"] == "compile", "first_call_s"] > 0).all()


def test_a_smoke_run_stores_a_filled_row_for_every_method(smoke_db):
    url, out = smoke_db
    assert "finished" in out.stderr
    with sessionmaker(results_db.open_engine(url))() as session:
        frame = queries.results_frame(session)
    expected = {(m.benchmark, m.id, "eager") for m in catalogue.methods() if m.benchmark in SMOKE}
    assert set(zip(frame["benchmark"], frame["method"], frame["backend"])) == expected
    assert (frame["status"] == "ok").all(), frame[["method", "backend", "message"]]
    for column in ("time_median_s", "time_iqr_s", "time_min_s", "samples", "peak_mem_bytes", "flops",
                   "flops_counted", "bytes"):
        assert frame[column].notna().all(), column
    assert (frame["time_median_s"] > 0).all()
    assert set(frame.loc[frame["is_baseline"], "method"]) == {m.id for m in catalogue.methods()
                                                              if m.is_baseline and m.benchmark in SMOKE}
    assert {"copy", "softmax_attention", "sdpa"} <= set(frame.loc[frame["is_baseline"], "method"])
    assert (frame["roofline_fraction"] > 0).all()  # every cell placed under the calibrated ceilings
    hadamard = frame[(frame["method"] == "hadamard") & (frame["backend"] == "eager")].iloc[0]
    assert hadamard["intensity"] == pytest.approx(1 / 12)  # 1 FLOP per 3 float32 values moved
    assert hadamard["gbps"] == pytest.approx(hadamard["bytes"] / hadamard["time_median_s"] / 1e9)


def test_a_finished_run_leaves_its_history_up_to_date(smoke_db):
    url, out = smoke_db
    assert "points and their cells' change points brought up to date" in out.stderr
    with sessionmaker(results_db.open_engine(url))() as session:
        assert history_queries.stale_cells(session) == []
        points = history_queries.history_frame(session, samples=False)
        ok = (queries.results_frame(session)["status"] == "ok").sum()
        machine = session.scalars(select(results_db.Machine)).one()
    assert len(points) == ok > 0
    assert points["time_median_s"].notna().all() and (points["ci_low"] <= points["ci_high"]).all()
    assert machine.memory_gib and machine.memory_gib > 0 and len(machine.fingerprint) == 16


def test_every_cell_records_what_ran_it(smoke_db):
    url, _ = smoke_db
    with sessionmaker(results_db.open_engine(url))() as session:
        results = {(r.benchmark, r.method, r.backend): r for r in session.scalars(select(results_db.Result))}
        frame = queries.results_frame(session)
    assert all(r.provenance for r in results.values())
    sdpa = results[("token_mixing", "sdpa", "eager")].provenance
    assert sdpa["tf32"] == "off" and sdpa["torch"].startswith("2.13") and sdpa["threads"] >= 1
    assert sdpa["kernels"] == ["sdpa: flash (CPU)"] and len(sdpa["commit"]) == 40
    assert results[("spatial_mixing", "conv1x1", "eager")].provenance["kernels"][0].startswith("convolution: ")
    assert (frame["commit"].str.len() == 40).all() and (frame["tf32"] == "off").all()


def test_a_run_stores_its_provenance_and_ceilings(smoke_db):
    url, _ = smoke_db
    from sqlalchemy import select

    from results_db.models import Run

    with sessionmaker(results_db.open_engine(url))() as session:
        run = session.scalars(select(Run)).one()
        assert run.provenance["torch"].startswith("2.13")
        assert run.provenance["threads"] >= 1
        assert "pointwise" in run.provenance["flop_convention"]
        assert len(run.provenance["git_commit"] or "") >= 40
        assert run.calibration["cpu"]["copy_gbps"] > 0
        assert run.calibration["cpu"]["matmul_gflops"]["float32"] > 0


def test_export_round_trips_through_csv(smoke_db, tmp_path):
    url, _ = smoke_db
    out = cli("export", "--db", url, "--format", "csv", "--out", str(tmp_path / "r.csv"))
    assert out.returncode == 0, out.stderr
    exported = pd.read_csv(tmp_path / "r.csv")
    with sessionmaker(results_db.open_engine(url))() as session:
        stored = queries.export_frame(session)
    assert list(exported.columns[:20]) == [
        "benchmark", "method", "backend", "is_baseline", "role", "device", "dtype", "tf32", "mode", "size",
        "time_median_s", "time_iqr_s", "time_min_s", "samples", "peak_mem_bytes", "flops",
        "flops_counted", "bytes", "status", "message"]
    assert {"run_id", "machine", "commit", "kernels"} <= set(exported.columns)
    # docs/columns.md says what each of them holds, in the order they come.
    assert [c for c in columns.COLUMNS if c in exported.columns] == list(exported.columns)
    assert (exported["tf32"] == "off").all() and exported["commit"].notna().all()
    assert len(exported) == len(stored)
    pd.testing.assert_series_equal(exported["time_median_s"], stored["time_median_s"].astype(float),
                                   check_names=False)
    assert list(exported["size"]) == list(stored["size"])
    # Each Hadamard method's speed-up over its baseline, paired: the smoke run timed each group in turns.
    judged = exported.dropna(subset=["baseline"])
    # Every Hadamard method's cell and every yardstick's, against its benchmark's baseline; no baseline's.
    assert len(judged) == (exported["role"] != "baseline").sum() > 10
    assert set(judged["role"]) == {"hadamard", "reference"}
    assert judged["speedup_paired"].all()
    assert judged["speedup_rounds_apart"].isna().all()  # the smoke run's one round: no rounds to set apart
    assert ((judged["speedup_ci_low"] <= judged["speedup"]) & (judged["speedup"] <= judged["speedup_ci_high"])).all()
    assert set(judged["speedup_verdict"]) <= {"faster", "slower", "no change", "inconclusive"}
    assert exported.loc[exported["role"] == "baseline", "speedup"].isna().all()


def test_if_empty_starts_nothing_on_a_database_with_runs(smoke_db):
    url, _ = smoke_db
    out = cli("run", "--suite", "smoke", "--db", url, "--if-empty")
    assert out.returncode == 0
    assert "nothing started" in out.stdout
    with sessionmaker(results_db.open_engine(url))() as session:
        assert len(queries.runs_frame(session)) == 1


BAD_INPUTS = [
    (["run", "--suite", "nope"], "invalid choice"),
    (["run"], "--suite or --resume is required"),
    (["run", "--resume", "1", "--suite", "smoke"], "give no other selection flag"),
    (["run", "--resume", "0"], "'0' is not a run id"),
    (["run", "--suite", "smoke", "--rounds", "two"], "'two' is not a positive number of rounds"),
    (["run", "--suite", "smoke", "--benchmark", "nope"], "unknown benchmark 'nope'"),
    (["run", "--suite", "smoke", "--method", "nope"], "unknown method 'nope'"),
    (["run", "--suite", "smoke", "--benchmark", "elementwise", "--method", "swiglu"], "matches no cell"),
    (["run", "--suite", "smoke", "--backend", "nope"], "invalid choice"),
    (["run", "--suite", "smoke", "--dtype", "float8"], "invalid choice"),
    (["run", "--suite", "smoke", "--device", "tpu"], "invalid choice"),
    (["run", "--suite", "smoke", "--settle", "-1"], "not a non-negative number of seconds"),
    (["run", "--suite", "smoke", "--more-rounds", "-1"], "'-1' is not a whole number of rounds"),
    (["run", "--resume", "1", "--more-rounds", "0"], "measures as the run did"),
    (["run", "--suite", "smoke", "--settle", "inf"], "not a non-negative number of seconds"),
    (["run", "--suite", "smoke", "--wait-quiet", "-5"], "not a non-negative number of seconds"),
    (["run", "--suite", "smoke", "--db", "notaurl"], "malformed database URL"),
    (["run", "--suite", "smoke", "--db", "nosuchdriver://x"], "no database driver"),
    (["export", "--out", "x.csv", "--format", "xml"], "invalid choice"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize("args, words", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(args, words, tmp_path):
    db = tmp_path / "never.db"
    args = [a if a != "x.csv" else str(tmp_path / "x.csv") for a in args]
    out = cli(*args, env={"HADAMARD_BENCH_DB": f"sqlite:///{db}"})
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1, out.stderr
    assert words in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_input_in_a_process_of_its_own_is_one_line_exit_2(tmp_path):
    out = cli_process("run", "--suite", "smoke", "--rounds", "two", "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "'two' is not a positive number" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_export_of_a_missing_database_is_refused(tmp_path):
    out = cli("export", "--db", f"sqlite:///{tmp_path / 'absent.db'}", "--out", str(tmp_path / "x.csv"))
    assert out.returncode == 2
    assert "no results database" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_unsupported_dtype_is_refused_before_anything_is_written(monkeypatch, tmp_path, capsys):
    from bench_runner import cell, cli as cli_module

    monkeypatch.setattr(cell, "dtype_unsupported",  # what `run` asks when it runs
                        lambda device, dtype: "no bfloat16 here" if dtype == "bfloat16" else None)
    code = cli_module.main(["run", "--suite", "smoke", "--dtype", "bfloat16",
                            "--db", f"sqlite:///{tmp_path / 'x.db'}"])
    assert code == 2
    assert "cannot run on cpu: no bfloat16 here" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_wait_quiet_looks_until_the_machine_is_quiet_or_the_time_is_up(monkeypatch):
    from bench_runner import machine_state

    now = [0.0]
    looks = iter([["other processes took 60% of the CPUs"]] * 3 + [[]])

    def busy_now(window_s):
        now[0] += window_s
        return next(looks)

    monkeypatch.setattr(machine_state, "busy_now", busy_now)
    assert machine_state.wait_until_quiet(60, clock=lambda: now[0]) == ([], 2.0)  # quiet at the fourth look
    now[0] = 0.0
    monkeypatch.setattr(machine_state, "busy_now", lambda window_s: now.__setitem__(0, now[0] + window_s) or ["busy"])
    assert machine_state.wait_until_quiet(1.2, clock=lambda: now[0]) == (["busy"], 1.5)  # gave up, still busy
    now[0] = 0.0
    assert machine_state.wait_until_quiet(0, clock=lambda: now[0]) == (["busy"], 0.5)  # one look, no wait


def test_a_run_that_waited_for_quiet_is_not_stored_as_started_busy(monkeypatch, tmp_path, capsys):
    from bench_runner import cli as cli_module
    from bench_runner import machine_state

    asked = []

    def wait(max_s, window_s=0.5, clock=None):
        asked.append(max_s)
        return ([], 12.0) if max_s else (["other processes took 60% of the CPUs"], 0.5)

    monkeypatch.setattr(machine_state, "wait_until_quiet", wait)
    url = f"sqlite:///{tmp_path / 'w.db'}"
    flags = ["--benchmark", "elementwise", "--method", "copy", "--backend", "eager", "--device", "cpu",
             "--in-process", "--quiet", "--db", url]
    assert cli_module.main(["run", "--suite", "smoke", "--wait-quiet", "30", *flags]) == 0
    assert "waited 12 s for the machine to be quiet" in capsys.readouterr().err
    assert cli_module.main(["run", "--suite", "smoke", *flags]) == 0
    assert "this machine is busy (other processes took 60% of the CPUs)" in capsys.readouterr().err
    assert asked == [30.0, 0.0]
    with sessionmaker(results_db.open_engine(url))() as session:
        assert queries.busy_at_start(session) == {2: ["other processes took 60% of the CPUs"]}


def test_a_reader_that_stops_early_is_not_an_error(smoke_db):
    url, _ = smoke_db
    out = subprocess.run(f"{shlex.quote(sys.executable)} -m bench_runner history --format csv "
                         f"--db {shlex.quote(url)} | head -n 1", shell=True, capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.stdout.startswith("benchmark,method,backend")
    assert out.stdout.count("\n") == 1
    assert "Traceback" not in out.stderr and "BrokenPipeError" not in out.stderr, out.stderr


def test_help_and_the_verbs_that_only_read_never_import_torch(seeded_db, tmp_path):
    """`--help` of every verb, and compare, history, gate, mark --list, export and db status on a
    database, run without torch (2.8 s of a slow VM's 7.5 s before each verb imported lazily);
    `--help` without SQLAlchemy or pandas either."""
    seed(seeded_db)  # a second run, for compare
    code = f"""
import contextlib, io, sys
from bench_runner import cli
from bench_runner.commands import VERBS

def loaded():
    return sorted(m for m in ("torch", "sqlalchemy", "pandas", "scipy", "hadamard_impls") if m in sys.modules)

for verb in VERBS:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            cli.main([verb, "--help"])
        except SystemExit as exc:
            assert exc.code == 0, verb
print("help", loaded())
db = {seeded_db!r}
for argv in (["compare", "1", "2"], ["history"], ["gate", "1"], ["mark", "--list"], ["db", "status"],
             ["export", "--out", {str(tmp_path / 'out.csv')!r}]):
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli.main([*argv, "--db", db])
    assert code == 0, (argv, code)
print("read", loaded())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert lines["help"] == "[]"
    assert "torch" not in lines["read"] and "hadamard_impls" not in lines["read"], lines["read"]


def test_a_run_names_the_cells_that_failed_as_it_ends(tmp_path, monkeypatch, capsys):
    from bench_runner import cli as cli_module
    from bench_runner import executor
    from bench_runner.cell import CellOutcome

    monkeypatch.setattr(executor, "run_cell", lambda *a, **k: CellOutcome("mismatch", "max abs error 2 > 0.001\nmore"))
    url = f"sqlite:///{tmp_path / 'f.db'}"
    assert cli_module.main(["run", "--suite", "smoke", "--benchmark", "elementwise", "--method", "relu", "--backend",
                            "eager", "--device", "cpu", "--dtype", "float32", "--mode", "forward", "--in-process",
                            "--quiet", "--db", url]) == 0
    err = capsys.readouterr().err
    assert "run 1 finished: 1 mismatch" in err
    assert "failed: elementwise/relu/eager cpu float32 forward n=4096: mismatch (max abs error 2 > 0.001)\n" in err


def test_a_run_names_a_cell_that_failed_in_a_later_round_and_keeps_its_other_rounds(tmp_path, monkeypatch, capsys):
    from bench_runner import cli as cli_module
    from bench_runner import executor
    from bench_runner.cell import CellOutcome

    outcomes = iter([CellOutcome("ok", samples=[2e-3, 2.1e-3, 1.9e-3] * 3), CellOutcome("timeout", "no answer in 60 s"),
                     CellOutcome("ok", samples=[2e-3, 2.2e-3, 1.8e-3] * 3)])
    monkeypatch.setattr(executor, "run_cell", lambda *a, **k: next(outcomes))
    url = f"sqlite:///{tmp_path / 'f.db'}"
    assert cli_module.main(["run", "--suite", "smoke", "--benchmark", "elementwise", "--method", "relu", "--backend",
                            "eager", "--device", "cpu", "--dtype", "float32", "--mode", "forward", "--rounds", "3",
                            "--in-process", "--quiet", "--db", url]) == 0
    err = capsys.readouterr().err
    assert "run 1 finished: 1 ok" in err
    assert "failed: elementwise/relu/eager cpu float32 forward n=4096: 1 round failed (round 2: timeout " \
           "(no answer in 60 s))\n" in err
    with sessionmaker(results_db.open_engine(url))() as session:
        frame = queries.results_frame(session, run_id=1)
    assert frame["status"].tolist() == ["ok"] and frame["failed_rounds"].tolist() == [1.0]
    assert frame["samples"].tolist() == [18]  # rounds 1 and 3
