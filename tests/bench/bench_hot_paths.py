"""pytest-benchmark tests of the tool's own hot paths. `make bench` runs them (not `make test`:
their files are named bench_*.py) and writes results/bench.json, which
`python -m bench_runner import results/bench.json` shows on the dashboard."""

import torch
from sqlalchemy.orm import sessionmaker

import results_db
from bench_runner import defaults, timing
from bench_runner.cell import Cell, run_cell
from hadamard_impls import catalogue
from results_db import queries, store
from tests.conftest import seed

ONE_CALL = defaults.TimingPolicy(warmup_s=0.0, min_block_s=0.0, budget_s=0.0, min_samples=3)


def test_measurement_loop_of_a_small_kernel(benchmark):
    """timing.measure around a 4K-element product: the harness's own overhead per cell."""
    a, b = torch.randn(4096), torch.randn(4096)
    result = benchmark(timing.measure, lambda: a * b, timing.WallClock(), ONE_CALL)
    assert result.median > 0


def test_a_whole_smoke_cell(benchmark):
    """One cell end to end: build, float64 check, timing, peak memory, FLOP count."""
    size = catalogue.benchmarks["elementwise"].sizes("smoke")[0]
    cell = Cell("elementwise", "hadamard", "eager", tuple(size.items()), "cpu", "float32", "forward")
    outcome = benchmark(run_cell, catalogue, cell, ONE_CALL)
    assert outcome.status == "ok"


def test_a_result_write(benchmark, db_url):
    """One finished cell committed to SQLite in its own transaction, as the runner does."""
    factory = sessionmaker(results_db.open_engine(db_url))
    seed(db_url)
    counter = iter(range(10**9))

    def write():
        with factory() as session, session.begin():
            store.record_result(session, 1, dict(benchmark="token_mixing", method="poly_sa", backend="eager",
                                                 device="cpu", dtype="float32", mode="forward",
                                                 size=f"N={next(counter)}"), "ok", samples=[1e-3] * 5,
                                metrics={"time_median_s": 1e-3, "flops": 1.0, "bytes": 4.0})

    benchmark(write)


def test_a_dashboard_query(benchmark, seeded_db):
    """The pivot every page starts from: one row per result, every metric a column."""
    factory = sessionmaker(results_db.open_engine(seeded_db))

    def read():
        with factory() as session:
            return queries.results_frame(session)

    assert len(benchmark(read)) == 8
