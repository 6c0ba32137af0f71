import types

import pytest

from bench_runner import calibration
from tests.bench_runner.test_timing import FakeClock


class ConvSlower(FakeClock):
    """A convolution costs `factor` times a product or a copy."""

    def __init__(self, per_call, factor):
        super().__init__(per_call)
        self.factor = factor

    def time_block(self, fn, calls):
        return super().time_block(fn, calls) * (self.factor if "conv2d" in fn.__code__.co_names else 1)


CONV_FLOPS = 2 * 8 * 256**2 * 9 * 16**2  # calibration.CONV_SHAPE["cpu"], 3×3


def test_calibration_turns_medians_into_ceilings():
    assert calibration.CONV_SHAPE["cpu"] == (8, 256, 16)
    ceilings = calibration.calibrate("cpu", ["float32"], clock=ConvSlower(per_call=0.01, factor=4.0))
    n = calibration.COPY_BYTES["cpu"] // 4
    m = calibration.MATMUL_SIZE["cpu"]
    assert ceilings["copy_gbps"] == pytest.approx(2 * n * 4 / 0.01 / 1e9)
    assert ceilings["matmul_gflops"]["float32"] == pytest.approx(2 * m**3 / 0.01 / 1e9)


def test_a_convolution_faster_than_the_product_sets_the_cpu_ceiling():
    # As on an AMD CPU, where MKL's product takes its AVX2 path and oneDNN's convolution AVX-512.
    ceilings = calibration.calibrate("cpu", ["float32"], clock=ConvSlower(per_call=0.01, factor=0.5))
    assert ceilings["matmul_gflops"]["float32"] == pytest.approx(CONV_FLOPS / 0.005 / 1e9)


class Neighbour(FakeClock):
    """Calls cost twice as long for the first `busy_s` of the clock's own time, as beside a process
    that holds one of two cores and then lets go."""

    def __init__(self, per_call, busy_s):
        super().__init__(per_call)
        self.now, self.busy_s = 0.0, busy_s

    def time_block(self, fn, calls):
        took = super().time_block(fn, calls) * (2.0 if self.now < self.busy_s else 1.0)
        self.now += took
        return took


@pytest.mark.parametrize("window_s, factor", [(0.0, 2.0), (2.0, 1.0)])
def test_the_ceilings_are_the_best_of_tries_over_their_window(monkeypatch, window_s, factor):
    # One try in the neighbour's busy second reads half the machine; tries over two seconds find
    # the machine free again, and the ceiling is what it reached then.
    clock = Neighbour(per_call=0.01, busy_s=1.0)
    monkeypatch.setattr(calibration, "time", types.SimpleNamespace(perf_counter=lambda: clock.now))
    ceilings = calibration.calibrate("cpu", ["float32"], clock=clock, window_s=window_s)
    n = calibration.COPY_BYTES["cpu"] // 4
    assert ceilings["copy_gbps"] == pytest.approx(2 * n * 4 / (0.01 * factor) / 1e9)
    assert ceilings["matmul_gflops"]["float32"] == pytest.approx(CONV_FLOPS / (0.01 * factor) / 1e9)  # a call of each
    assert window_s <= clock.now < window_s + 1.5  # and then it stops


def test_the_tensors_are_made_once_however_many_tries_the_window_takes(monkeypatch):
    import torch

    clock = Neighbour(per_call=0.01, busy_s=0.0)
    monkeypatch.setattr(calibration, "time", types.SimpleNamespace(perf_counter=lambda: clock.now))
    made, randn = [], torch.randn
    monkeypatch.setattr(torch, "randn", lambda *shape, **kw: made.append(shape) or randn(*shape, **kw))
    timed, measure = [], calibration.timing.measure
    monkeypatch.setattr(calibration.timing, "measure", lambda fn, *a: timed.append(fn) or measure(fn, *a))
    calibration.calibrate("cpu", ["float32"], clock=clock, window_s=2.0)
    assert len(timed) >= 6 and len(timed) % 3 == 0  # two tries or more: a copy, a product, a convolution
    assert len(made) == 5  # the copy's source, the product's two factors, the convolution's input and weight


def test_the_suites_that_measure_for_results_try_their_ceilings_over_two_seconds():
    from bench_runner import defaults

    assert {s: p.ceiling_window_s for s, p in defaults.POLICIES.items()} == {
        "smoke": 0.0, "quick": 2.0, "full": 2.0, "paper": 2.0}


CEILINGS = {"copy_gbps": 10.0, "matmul_gflops": {"float32": 100.0}}


def test_a_bandwidth_bound_cell_is_judged_against_bandwidth():
    # 1 FLOP per 12 bytes: attainable = 10 GB/s × 1/12 FLOP/B; achieved 0.5 of it.
    flops, moved = 1e9, 12e9
    seconds = flops / (0.5 * 10 / 12 * 1e9)
    assert calibration.roofline_fraction(flops, moved, seconds, CEILINGS, "float32") == pytest.approx(0.5)


def test_a_compute_bound_cell_is_judged_against_the_peak():
    flops, moved = 1e12, 1e6  # intensity far above the ridge
    assert calibration.roofline_fraction(flops, moved, 20.0, CEILINGS, "float32") == pytest.approx(0.5)


def test_a_copy_is_judged_by_bandwidth_alone():
    assert calibration.roofline_fraction(0, 5e9, 1.0, CEILINGS, "float32") == pytest.approx(0.5)
    assert calibration.roofline_fraction(1e9, 5e9, 1.0, CEILINGS, "bfloat16") is None  # no peak measured
