"""Fixtures shared by the test packages: a temporary SQLite file per test and a
seeder that fills it with synthetic results through results_db's own writes."""

from __future__ import annotations

import functools
import importlib
import math
import os
import re
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

import torch

ROOT = Path(__file__).resolve().parent.parent

# Without a GPU, the Triton kernels run in Triton's interpreter (read when a kernel is
# defined, so before hadamard_impls.kernels is imported): the same kernel code, checked
# on the CPU. On a GPU the tests run the compiled kernels.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
# Test databases hold what each test puts there; the shipped reference runs are tested apart.
os.environ.setdefault("HADAMARD_BENCH_REFERENCE", "off")

import results_db  # noqa: E402
from results_db import store  # noqa: E402

# Every AppTest Streamlit starts reads the metadata of every installed distribution, looking for
# the dashboard components they might ship (a served dashboard does so once, as it starts): 0.1 s
# a render here, a fifth of test_pages' time. What is installed does not change while the
# tests run, so they look once. (A Streamlit without that scanner runs the tests as before.)
try:
    from streamlit.components.v2 import manifest_scanner
except ImportError:
    manifest_scanner = None
if hasattr(manifest_scanner, "scan_component_manifests"):
    manifest_scanner.scan_component_manifests = functools.cache(manifest_scanner.scan_component_manifests)


def required_in_ci(module: str, reason: str):
    """The module, as pytest.importorskip gives it; but under CI=true, where .ci/run installs
    everything the tests use, a missing module fails the tests that need it rather than
    skipping them unseen."""
    if os.environ.get("CI") == "true":
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=reason)


def unescaped(markdown: str) -> str:
    """What a Markdown string the dashboard made inert (app/text.py) reads as on the page."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


FACTS = {"key": "testmachine", "hostname": "testhost", "cpu_model": "Test CPU", "cpu_cores": 2,
         "torch_version": "2.13.0", "cuda_version": None, "gpu_name": None, "os": "Linux",
         "python_version": "3.11"}

BENCHMARKS = [dict(id="token_mixing", domain="high_order", title="Token mixing", contract="X (B, N, C)",
                   params=["B", "N", "C", "H"], x_param="N")]
METHODS = [
    dict(benchmark="token_mixing", id="poly_sa", role="hadamard", summary="Poly-SA", latex="Y = Q \\odot m",
         exponents={"N": 1, "C": 2}, backends=["eager", "compile"], against=["softmax_attention"]),
    dict(benchmark="token_mixing", id="softmax_attention", role="baseline", summary="attention",
         latex="Y = \\mathrm{softmax}(QK^T)V", exponents={"N": 2, "C": 2}, backends=["eager", "compile"]),
]
SIZES = [64, 128, 256, 512]


@pytest.fixture(autouse=True)
def _main_module_kept():
    """Streamlit's AppTest leaves the dashboard's entry script as `__main__`, and a worker process
    spawned later (multiprocessing re-imports the parent's main script in the child) then ran the
    dashboard on start, which opened the checkout's default database: every `make test` left a
    results/hadamard_bench.db behind. Each test gets back the `__main__` it started with."""
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'results.db'}"


def synthetic_time(method: str, n: int) -> float:
    """Linear for the Hadamard method, quadratic for attention: a planted crossover at N=128."""
    return 1e-6 * n if method == "poly_sa" else 1e-6 * n * n / 128


def planted_cell(n: int, method: str = "poly_sa") -> dict:
    """The key of a planted token_mixing cell at N=n, as store.record_result takes it."""
    return dict(benchmark="token_mixing", method=method, backend="eager", device="cpu", dtype="float32",
                mode="forward", size=f"B=1 N={n} C=64 H=4")


def planted_samples(t: float, round_effect: float = 0.01) -> tuple[list[float], list[int]]:
    """Three rounds of five samples around `t`, offset by ±round_effect between rounds, whose
    pooled median is exactly `t`."""
    samples, rounds = [], []
    for k, r in enumerate((-round_effect, 0.0, round_effect)):
        for s in (-0.02, -0.01, 0.0, 0.01, 0.02):
            samples.append(t * (1 + r + s))
            rounds.append(k)
    return samples, rounds


def seed(url: str, statuses: str = "ok", slow_method: str | None = None, slow_size: int | None = None) -> None:
    """Fill `url` with one finished run of token_mixing results on a fake machine; with `slow_method`
    and `slow_size`, that one cell is three times slower (a planted regression)."""
    factory = sessionmaker(results_db.open_engine(url))
    with factory() as session, session.begin():
        store.sync_catalogue(session, BENCHMARKS, METHODS)
        host = store.get_or_create_machine(session, FACTS, "testhost (Test CPU)")
        run = store.start_run(session, host, "quick", {"suite": "quick"}, cells_total=2 * len(SIZES))
        for method in ("poly_sa", "softmax_attention"):
            for n in SIZES:
                cell = planted_cell(n, method)
                t = synthetic_time(method, n) * (3 if (method, n) == (slow_method, slow_size) else 1)
                if statuses == "ok":
                    samples, rounds = planted_samples(t)
                    store.record_result(session, run.id, cell, "ok", samples=samples, sample_rounds=rounds, metrics={
                        "time_median_s": t, "time_iqr_s": t / 20, "time_min_s": min(samples), "samples": 15,
                        "rounds": 3,
                        "peak_mem_bytes": 1000 * n * (1 if method == "poly_sa" else n / 64),
                        "flops": 1e3 * n, "flops_counted": 1e3 * n, "bytes": 4e3 * n})
                else:
                    store.record_result(session, run.id, cell, "error", "RuntimeError: boom")
        store.finish_run(session, run.id)
    assert math.isclose(synthetic_time("poly_sa", 128), synthetic_time("softmax_attention", 128))


@pytest.fixture
def seeded_db(db_url) -> str:
    seed(db_url)
    return db_url


PG_ENV = "HADAMARD_BENCH_TEST_PG"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    """An empty database of each kind the storage code supports: an SQLite file, and a fresh
    database on the PostgreSQL server $HADAMARD_BENCH_TEST_PG names (.ci/run starts one)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    admin_url = os.environ.get(PG_ENV)
    if not admin_url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must test PostgreSQL: ${PG_ENV} is unset (.ci/run sets it)")
        pytest.skip(f"no PostgreSQL server: set {PG_ENV}=postgresql+psycopg://USER:PASSWORD@HOST/postgres "
                    "(a role allowed to create databases; scripts/ci_postgres.sh starts one)")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"hb_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"the PostgreSQL server at {PG_ENV} is not reachable: {type(exc).__name__}")
    yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def seeded_store(store_url) -> str:
    seed(store_url)
    return store_url


# The modules whose tests take longest on CI (a fresh clone: every torch.compile cold), run first,
# longest first: the parallel workers (pytest-xdist, a module at a time) then finish together with
# the short modules, not with one of them starting the Ray cluster's minutes or the compile matrix
# while the others have nothing left to do.
LONGEST_FIRST = ("test_ray", "test_ray_node_loss", "test_catalogue", "test_checks", "test_browser", "test_faults",
                 "test_plugins", "test_cli", "test_concurrency", "test_resume", "test_ab", "test_worker", "test_pages",
                 "test_agents", "test_bundle", "test_noise", "test_triton_kernels", "test_install", "test_damage")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.module.__name__.rsplit(".", 1)[-1], len(rank)))
