"""GPU paths of the measurement core. They need a CUDA device and skip without one;
scripts/gpu_check.sh runs them on a lent GPU."""

import pytest
import torch

from bench_runner import timing
from bench_runner.cell import Cell, run_cell
from hadamard_impls import catalogue

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
@pytest.mark.parametrize("flush_l2", [True, False])
def test_cuda_events_time_a_kernel(flush_l2):
    a = torch.randn(1 << 24, device="cuda")
    clock = timing.CudaEventClock(flush_l2=flush_l2)
    seconds = clock.time_block(lambda: a * a, 3)
    assert 0 < seconds < 1


@needs_cuda
def test_a_flushed_l2_makes_a_small_kernel_slower_not_faster():
    a = torch.randn(1 << 20, device="cuda")  # 4 MiB: fits in L2 once warm
    policy = timing.TimingPolicy(warmup_s=0.01, min_block_s=0.0, budget_s=0.05, min_samples=20)
    cold = timing.measure(lambda: a * a, timing.CudaEventClock(flush_l2=True), policy).median
    warm = timing.measure(lambda: a * a, timing.CudaEventClock(flush_l2=False), policy).median
    assert cold >= 0.9 * warm


@needs_cuda
def test_a_cuda_cell_reports_its_graph_replay_and_allocator_peak():
    size = catalogue.benchmarks["elementwise"].sizes("smoke")[0]
    outcome = run_cell(catalogue, Cell("elementwise", "hadamard", "eager", tuple(size.items()), "cuda", "float32",
                                       "forward"), timing.TimingPolicy(budget_s=0.02))
    assert outcome.status == "ok", outcome.message
    assert outcome.metrics["time_graph_median_s"] > 0
    assert outcome.metrics["peak_mem_bytes"] >= size["n"] * 4


def test_the_cpu_gets_the_wall_clock():
    assert isinstance(timing.clock_for(torch.device("cpu")), timing.WallClock)
