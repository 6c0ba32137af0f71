"""The plausibility guard: a cell faster than its device can be is stored as `implausible`."""

import pytest
from sqlalchemy import select

import results_db
from bench_runner import plausibility, sweep
from bench_runner.executor import Executor, InProcess
from bench_runner.plausibility import Peaks
from tests.bench_runner.test_compare import FACTS
from tests.bench_runner.test_rounds import _run
from tests.bench_runner.test_timing import FakeClock
from tests.bench_runner.toy import FAST

TABLE = {"H200": Peaks(fp32_tflops=67.0, tf32_tflops=495.0, half_tflops=989.0, bandwidth_tbs=4.8)}


def cell(tflops: float, gigabytes: float = 0.001) -> dict:
    return {"time_median_s": 1e-3, "flops": tflops * 1e12 * 1e-3, "bytes": gigabytes * 1e9 * 1e-3 * 1e3}


def test_a_float32_cell_above_the_gpus_float32_peak_is_implausible():
    why = plausibility.check(cell(329.0), "cuda", "float32", name="NVIDIA H200", table=TABLE)
    assert why.startswith("implausible: 329 TFLOP/s is 4.91× the float32 (CUDA-core) peak of 67 TFLOP/s")
    assert "NVIDIA H200's datasheet" in why and "TF32" in why
    assert plausibility.check(cell(60.0), "cuda", "float32", name="NVIDIA H200", table=TABLE) is None
    assert plausibility.check(cell(329.0), "cuda", "bfloat16", name="NVIDIA H200", table=TABLE) is None
    assert plausibility.check(cell(1200.0), "cuda", "bfloat16", name="NVIDIA H200", table=TABLE).startswith(
        "implausible: 1.2e+03 TFLOP/s")


def test_bandwidth_is_judged_only_for_data_no_cache_holds():
    big = {"time_median_s": 2**30 / 10e12, "flops": 0, "bytes": 2**30}  # 1 GiB at 10 TB/s: twice the H200's HBM
    assert "memory bandwidth of 4800 GB/s" in plausibility.check(big, "cuda", "float32", name="NVIDIA H200",
                                                                 table=TABLE)
    small = {**big, "bytes": 2**20, "time_median_s": 2**20 / 10e12}  # the same rate from L2: possible
    assert plausibility.check(small, "cuda", "float32", name="NVIDIA H200", table=TABLE) is None


@pytest.mark.parametrize("name, key", [("NVIDIA H100 80GB HBM3", "H100"), ("NVIDIA H200", "H200"),
                                       ("NVIDIA A100-SXM4-80GB", "A100"), ("NVIDIA L4", "L4"),
                                       ("NVIDIA GeForce RTX 4090", "RTX 4090"), ("NVIDIA L40S", None)])
def test_device_names_find_their_datasheet(name, key):
    assert plausibility.known_peaks(name) == (plausibility.GPUS[key] if key else None)


def test_a_cpu_or_unknown_gpu_is_judged_against_its_calibration_with_a_wider_margin():
    ceilings = {"copy_gbps": 10.0, "matmul_gflops": {"float32": 100.0}}
    fast = {"time_median_s": 1.0, "flops": 500e9, "bytes": 1}
    assert "5.00× the float32 compute ceiling" in plausibility.check(fast, "cpu", "float32", ceilings)
    assert plausibility.check({**fast, "flops": 150e9}, "cpu", "float32", ceilings) is None
    assert plausibility.check(fast, "cuda", "float32", ceilings, name="Some New GPU") is not None
    assert plausibility.check(fast, "cpu", "float32", None) is None  # nothing to judge against


class Fast(InProcess):
    """The in-process runner on a planted clock that makes every call take a picosecond."""

    def __init__(self, cat):
        super().__init__(cat, FAST, clock=FakeClock(per_call=1e-12))


def test_a_planted_impossible_cell_is_stored_as_implausible_with_its_figures(db_url):
    cat, cells, factory, run_id, runner = _run(db_url, 1, Fast)
    ceilings = {"cpu": {"copy_gbps": 10.0, "matmul_gflops": {"float32": 100.0}}}
    counts = sweep.execute(factory, run_id, cells, runner, ceilings=ceilings, rounds=1)
    with factory() as session:
        rows = {(r.method, r.size): r for r in session.scalars(select(results_db.Result))}
    double = rows[("double", "n=8")]
    assert double.status == "implausible" and "compute ceiling" in double.message
    assert double.samples  # kept, for a look
    assert counts["implausible"] == 2 and {r.status for r in rows.values() if r.method == "double"} == {"implausible"}


def test_the_guard_uses_the_highest_ceilings_this_machine_has_measured():
    own = {"copy_gbps": 10.0, "matmul_gflops": {"float32": 100.0}}
    earlier = [(3, {"copy_gbps": 30.0, "matmul_gflops": {"float32": 90.0}}),
               (5, {"copy_gbps": 20.0, "matmul_gflops": {"float32": 250.0, "bfloat16": 400.0}})]
    guarded = plausibility.with_machine_best(own, earlier)
    assert guarded["copy_gbps"] == 10.0 and guarded["matmul_gflops"] == {"float32": 100.0}  # the run's own stay
    assert guarded["guard"] == {"copy_gbps": [30.0, 3], "matmul_gflops": {"float32": [250.0, 5], "bfloat16": [400.0, 5]}}
    fast = {"time_median_s": 1.0, "flops": 300e9, "bytes": 1}  # 3× this run's ceiling, 1.2× run 5's
    assert "3.00× the float32 compute ceiling" in plausibility.check(fast, "cpu", "float32", own)
    assert plausibility.check(fast, "cpu", "float32", guarded) is None
    impossible = {**fast, "flops": 600e9}
    message = plausibility.check(impossible, "cpu", "float32", guarded)
    assert "2.40× the float32 compute ceiling" in message
    assert "of 0.25 TFLOP/s (run 5's calibration, this machine's highest)" in message
    nothing_higher = plausibility.with_machine_best(own, [(2, {"copy_gbps": 5.0, "matmul_gflops": {"float32": 50.0}})])
    assert "(this run's calibration)" in plausibility.check(impossible, "cpu", "float32", nothing_higher)


def test_a_run_calibrated_on_a_busy_moment_is_guarded_by_its_machines_earlier_calibration(db_url):
    cat, cells, factory, run_id, runner = _run(db_url, 1, Fast)
    busy = {"cpu": {"copy_gbps": 10.0, "matmul_gflops": {"float32": 100.0}}}
    quiet = {"cpu": {"copy_gbps": 10.0, "matmul_gflops": {"float32": 1e15}}}  # fast enough for the planted clock
    # An earlier run of the same machine measured the high ceiling; one of another machine does not count.
    with factory() as session, session.begin():
        this = session.get(results_db.Run, run_id)
        other_machine = results_db.store.get_or_create_machine(session, {**FACTS, "key": "elsewhere"}, "elsewhere")
        session.add(results_db.Run(machine=other_machine, suite="toy", status="finished", options={}, provenance={},
                                   calibration={"cpu": {"matmul_gflops": {"float32": 1e18}}}, cells_total=0))
        earlier = results_db.Run(machine=this.machine, suite="toy", status="finished", options={}, provenance={},
                                 calibration=quiet, cells_total=0)
        session.add(earlier)
        session.flush()
        earlier_id = earlier.id
    class MeasuresBusy(Executor):  # the ceilings this run measured, in a busy moment
        def ceilings(self, cells):
            return None, busy

    ceilings = sweep.calibrate(factory, run_id, cells, MeasuresBusy())
    assert ceilings["cpu"]["guard"]["matmul_gflops"] == {"float32": [1e15, earlier_id]}  # not the other machine's
    assert ceilings["cpu"]["matmul_gflops"] == {"float32": 100.0}  # what the rooflines use: this run's own
    with factory() as session:
        assert results_db.store.run_calibration(session, run_id) == busy  # stored as measured
    counts = sweep.execute(factory, run_id, cells, runner, ceilings=ceilings, rounds=1)
    assert "implausible" not in counts
