"""Compiling a run's torch.compile cells on every core before its first round: which cells, and
that the round's own first call then reads the code they left in Inductor's cache."""

import json
import multiprocessing

import pytest
import torch

from bench_runner import precompile, reference
from bench_runner.cell import Cell
from hadamard_impls import catalogue as real
from tests.bench_runner.toy import FAST

SIZE = tuple(real.benchmarks["gated_ffn"].sizes("smoke")[0].items())


def _cells(backend: str, methods=("swiglu", "geglu", "glu", "ffn_gelu", "ffn_relu")) -> list[Cell]:
    return [Cell("gated_ffn", m, backend, SIZE, "cpu", "float32", "forward") for m in methods]


@pytest.fixture(autouse=True)
def cold_cache(tmp_path, monkeypatch):
    """An empty Inductor cache, and so an empty ledger, for this process and those it spawns."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))


def test_only_compiled_cells_are_compiled_ahead_and_only_with_cores_and_cells_to_share():
    cells = _cells("eager") + _cells("compile")
    assert precompile.worth_it(real, cells, 2, 1) == _cells("compile")
    assert precompile.worth_it(real, cells, 1, 1) == []  # no core to spare
    assert precompile.worth_it(real, cells, 3, 1) == []  # 5 cells: not 2 for each of 3 processes


def test_a_run_with_too_few_compiled_cells_never_looks_for_the_ledger(monkeypatch):
    # Finding the ledger imports Inductor, two seconds of every eager run's start.
    monkeypatch.setattr(precompile, "ledger", lambda threads: pytest.fail("the ledger was looked for"))
    assert precompile.worth_it(real, _cells("eager") + _cells("compile", ("swiglu",)), 2, 1) == []


def test_cells_the_ledger_lists_for_this_thread_count_are_not_compiled_ahead_again():
    cells = _cells("compile")
    path = precompile.ledger(4)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([json.dumps(cells[0].key(), sort_keys=True)]))
    assert precompile.worth_it(real, cells, 2, 4) == cells[1:]
    assert precompile.worth_it(real, cells, 2, 2) == cells


def test_a_cell_too_large_to_build_in_every_process_at_once_is_left_to_its_round(monkeypatch):
    cells = _cells("compile")
    need = {c: real.benchmarks["gated_ffn"].methods[c.method].memory_estimate(dict(SIZE), 4) for c in cells}
    smallest = min(need.values())
    # Half the free memory holds the smallest cell in each of 2 processes at once, and no larger one.
    monkeypatch.setattr(reference, "available_memory", lambda device: 4 * smallest)
    assert precompile.worth_it(real, cells, 2, 1) == [c for c in cells if need[c] == smallest]
    assert len(set(need.values())) > 1  # so that some were left out
    monkeypatch.setattr(reference, "available_memory", lambda device: smallest)
    assert precompile.worth_it(real, cells, 2, 1) == []


def test_a_cell_that_outlasts_the_cell_timeout_stops_the_pass_and_its_processes():
    """Here no cell can finish in 10 ms: the processes are still starting."""
    cells = _cells("compile", ("swiglu", "ffn_relu"))
    done = precompile.compile_ahead(cells, FAST, torch.get_num_threads(), 2, 0.01)
    assert done["cells"] == 0 and done["stopped"] == "a cell took over 0.01 s"
    assert json.loads(precompile.ledger(torch.get_num_threads()).read_text()) == []
    assert multiprocessing.active_children() == []


@pytest.mark.slow
def test_a_finished_pass_lets_its_processes_exit_instead_of_terminating_them(monkeypatch):
    """Terminated (SIGTERM), a process never unlinks the semaphores Inductor made in it, and the
    run ended on multiprocessing's "leaked semaphore" warning. Eager cells: how the processes
    end does not depend on what they built."""
    context, pools = multiprocessing.get_context("spawn"), []
    real_pool = context.Pool

    def pool(*args, **kwargs):
        pools.append(real_pool(*args, **kwargs))
        return pools[-1]

    monkeypatch.setattr(context, "Pool", pool)
    done = precompile.compile_ahead(_cells("eager", ("swiglu", "glu", "ffn_relu")), FAST, 1, 2, 300)
    assert done["cells"] == 3 and "stopped" not in done
    assert [p.exitcode for p in pools[0]._pool] == [0, 0]  # -15 when terminated


@pytest.mark.slow
def test_the_processes_compiling_ahead_print_no_warnings(capfd):
    """mcb's FFT has Inductor warn, in each process, that it makes no code for complex operators.
    One process is enough: each is started alike (precompile._start); two built the same cell at
    once, 44-71 s of a cold .ci/run, for nothing more."""
    size = tuple(real.benchmarks["bimodal_fusion"].sizes("smoke")[0].items())
    cells = [Cell("bimodal_fusion", "mcb", "compile", size, "cpu", "float32", "forward")]
    done = precompile.compile_ahead(cells, FAST, 1, 1, 300)
    assert done["cells"] == 1 and done["processes"] == 1
    assert "Warning" not in capfd.readouterr().err


@pytest.mark.slow  # a real run's compiles, 40 s of the fast tier's five minutes
def test_a_new_run_compiles_ahead_says_so_and_its_round_builds_nothing_more(tmp_path, monkeypatch):
    """The round's worker finds every graph the pass built in Inductor's cache, and writes no new
    one: the pass ran with the worker's threads and float32 settings, both part of the cache key
    (without the float32 settings the worker missed)."""
    from sqlalchemy.orm import sessionmaker

    import results_db
    from tests.bench_runner.test_cli import cli

    graphs = lambda: sorted(str(p) for p in (tmp_path / "inductor" / "fxgraph").rglob("*") if p.is_file())  # noqa: E731
    after_pass, real_pass = [], precompile.compile_ahead

    def compile_ahead(*args, **kwargs):
        done = real_pass(*args, **kwargs)
        after_pass.extend(graphs())
        return done

    monkeypatch.setattr(precompile, "compile_ahead", compile_ahead)
    monkeypatch.setattr(precompile, "processes", lambda: 2)  # whatever this machine has
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    out = cli("run", "--suite", "smoke", "--benchmark", "gated_ffn", "--backend", "compile", "--db", url)
    assert out.returncode == 0, out.stderr
    with sessionmaker(results_db.open_engine(url))() as session:
        run = session.get(results_db.Run, 1)
        done, threads = run.provenance["compiled_ahead"], run.provenance["threads"]
        cells = [Cell(r.benchmark, r.method, r.backend, SIZE, r.device, r.dtype, r.mode)
                 for r in session.query(results_db.Result)]
        statuses = {r.status for r in session.query(results_db.Result)}
    assert done["cells"] == done["of"] == 5 and done["processes"] == 2 and "stopped" not in done
    assert statuses == {"ok"}
    assert len(after_pass) >= 5 and graphs() == after_pass
    # The ledger lists them, for this thread count only: a later run does not compile them ahead again.
    assert json.loads(precompile.ledger(threads).read_text()) == sorted(json.dumps(c.key(), sort_keys=True)
                                                                        for c in cells)
    assert not precompile.ledger(threads + 1).exists()
