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
