"""Compiling a run's torch.compile cells on every core before its first round: which cells, and
that the round's own first call then reads the code they left in Inductor's cache."""

import pytest
import torch
from torch._dynamo.utils import counters

from bench_runner import precompile, reference
from bench_runner.cell import Cell, run_cell
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


def test_the_rounds_first_call_reads_what_was_compiled_ahead():
    cells = _cells("compile", ("swiglu", "glu", "ffn_relu", "geglu"))
    seen = []
    done = precompile.compile_ahead(cells, FAST, torch.get_num_threads(), 2, on_cell=seen.append)
    assert done["cells"] == done["of"] == 4 and done["processes"] == 2
    assert seen == cells
    threads = torch.get_num_threads()
    # The ledger lists them: the next run compiles none of them ahead, but does for another thread count.
    assert precompile.worth_it(real, cells, 2, threads) == []
    assert precompile.worth_it(real, cells, 2, threads + 1) == cells
    counters.clear()
    outcome = run_cell(real, cells[0], FAST)
    assert outcome.status == "ok", outcome.message
    assert counters["inductor"]["fxgraph_cache_hit"] >= 1
    assert counters["inductor"]["fxgraph_cache_miss"] == 0


@pytest.mark.slow
def test_compiled_ahead_for_another_thread_count_the_round_compiles_its_own():
    """Inductor's CPU kernels are built for a thread count, which is part of its cache key: the
    processes must run with the round's."""
    cells = _cells("compile", ("swiglu", "glu", "ffn_relu", "geglu"))
    precompile.compile_ahead(cells, FAST, torch.get_num_threads() + 1, 2)
    counters.clear()
    outcome = run_cell(real, cells[0], FAST)
    assert outcome.status == "ok", outcome.message
    assert counters["inductor"]["fxgraph_cache_miss"] >= 1


def test_a_new_run_compiles_ahead_and_says_so(tmp_path, monkeypatch):
    from sqlalchemy.orm import sessionmaker

    import results_db
    from tests.bench_runner.test_cli import cli

    monkeypatch.setattr(precompile, "usable_cpus", lambda: 2)  # whatever this machine has
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    out = cli("run", "--suite", "smoke", "--benchmark", "gated_ffn", "--backend", "compile", "--db", url)
    assert out.returncode == 0, out.stderr
    with sessionmaker(results_db.open_engine(url))() as session:
        done = session.get(results_db.Run, 1).provenance["compiled_ahead"]
        statuses = {r.status for r in session.query(results_db.Result)}
    assert done["cells"] == done["of"] == 5 and done["processes"] == 2
    assert statuses == {"ok"}
