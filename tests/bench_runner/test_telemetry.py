"""Telemetry and energy, with an injected source: no GPU and no RAPL needed."""

import time

import pytest
from sqlalchemy import select

import results_db
from bench_runner import sweep, telemetry
from bench_runner.cell import Cell, run_cell
from bench_runner.executor import InProcess
from hadamard_impls import catalogue
from tests.bench_runner.toy import FAST


class FakeSource:
    """A device drawing `watts` whatever it does, whose clocks were held down by its power cap."""

    why_not = None

    def __init__(self, watts: float = 50.0, throttled=("sw_power_cap",)):
        self.watts, self.throttled, self.start = watts, list(throttled), time.perf_counter()

    def sample(self):
        return {"sm_clock_mhz": 1980, "power_w": self.watts, "throttled": self.throttled}

    def energy_j(self):
        return self.watts * (time.perf_counter() - self.start)


@pytest.fixture
def fake_cpu():
    source = FakeSource()
    telemetry.use("cpu", source)
    yield source
    telemetry.use("cpu", None)


def test_energy_per_call_is_the_counter_over_a_window_of_calls():
    source = FakeSource(watts=40.0, throttled=())
    calls, spent = 0, 0.0

    def call():  # a 2 ms sleep, however long a busy machine lets it run: the test times it itself
        nonlocal calls, spent
        started = time.perf_counter()
        time.sleep(0.002)
        spent += time.perf_counter() - started
        calls += 1

    out = telemetry.energy_metrics(call, lambda: None, source, window_s=0.2)
    assert out["avg_power_w"] == pytest.approx(40.0, rel=0.05)
    assert calls >= 8 and out["energy_j_per_call"] == pytest.approx(40.0 * spent / calls, rel=0.05)
    assert "throttled" not in out
    assert telemetry.energy_metrics(lambda: None, lambda: None, telemetry.Absent("none here")) == {}


def test_a_cell_measured_with_energy_stores_it_and_says_where_from(fake_cpu):
    import dataclasses

    bench = catalogue.benchmarks["elementwise"]
    cell = Cell("elementwise", "hadamard", "eager", tuple(bench.sizes("smoke")[0].items()), "cpu", "float32", "forward")
    outcome = run_cell(catalogue, cell, dataclasses.replace(FAST, energy=True))
    assert outcome.status == "ok", outcome.message
    assert outcome.metrics["avg_power_w"] == pytest.approx(50.0, rel=0.05)
    assert outcome.metrics["energy_j_per_call"] > 0 and outcome.metrics["throttled"] == 1.0
    assert outcome.provenance["energy"] == "measured"


def test_without_a_counter_energy_is_absent_with_the_reason():
    import dataclasses

    telemetry.use("cpu", telemetry.Absent("RAPL energy is not readable here"))
    try:
        bench = catalogue.benchmarks["elementwise"]
        cell = Cell("elementwise", "hadamard", "eager", tuple(bench.sizes("smoke")[0].items()), "cpu", "float32",
                    "forward")
        outcome = run_cell(catalogue, cell, dataclasses.replace(FAST, energy=True))
    finally:
        telemetry.use("cpu", None)
    assert "energy_j_per_call" not in outcome.metrics
    assert outcome.provenance["energy"] == "RAPL energy is not readable here"


def test_each_round_keeps_the_devices_telemetry_and_the_run_its_idle_power(db_url, fake_cpu):
    from tests.bench_runner.test_rounds import _run

    cat, cells, factory, run_id, runner = _run(db_url, 1, lambda cat: InProcess(cat, FAST))
    ceilings = sweep.calibrate(factory, run_id, cells)
    assert ceilings["cpu"]["idle_power_w"] == pytest.approx(50.0, rel=0.05)
    sweep.execute(factory, run_id, cells, runner, ceilings=ceilings, rounds=1)
    with factory() as session:
        record = session.scalars(select(results_db.RoundRecord)).one()
    assert record.state["telemetry"]["cpu"]["before"]["sm_clock_mhz"] == 1980
    assert record.state["telemetry"]["cpu"]["after"]["throttled"] == ["sw_power_cap"]


def test_the_real_sources_say_why_they_cannot_measure_here():
    source = telemetry.source_for("cpu")
    if source.energy_j() is None:
        assert "RAPL" in source.why_not
    gpu = telemetry.source_for("cuda")
    if gpu.energy_j() is None:
        assert gpu.why_not.startswith("NVML is not usable here")
