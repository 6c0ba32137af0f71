"""GPU paths of the measurement core. They need a CUDA device and skip without one;
scripts/gpu_check.sh runs them on a lent GPU."""

import pytest
import torch

from bench_runner import defaults, timing
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
def test_the_l2_flush_stays_outside_the_timed_window():
    # Zeroing 256 MiB takes tens of µs even at 4 TB/s; a 4 MiB product, a few. Were the flush
    # inside the events, every cold sample would carry it. (A first version compared cold
    # against warm back-to-back calls; on an H200 the warm ones measured 17 µs of launch gaps
    # against 6 µs cold, so that comparison tested the host, not the flush.)
    a = torch.randn(1 << 20, device="cuda")
    policy = defaults.TimingPolicy(warmup_s=0.01, min_block_s=0.0, budget_s=0.05, min_samples=20)
    clock = timing.CudaEventClock(flush_l2=True)
    flush = timing.measure(lambda: clock._scratch.zero_(), timing.CudaEventClock(flush_l2=False), policy).median
    cold = timing.measure(lambda: a * a, clock, policy).median
    assert 0 < cold < flush / 2


@needs_cuda
def test_a_cuda_cell_reports_its_graph_replay_and_allocator_peak():
    size = catalogue.benchmarks["elementwise"].sizes("smoke")[0]
    outcome = run_cell(catalogue, Cell("elementwise", "hadamard", "eager", tuple(size.items()), "cuda", "float32",
                                       "forward"), defaults.TimingPolicy(budget_s=0.02))
    assert outcome.status == "ok", outcome.message
    assert outcome.metrics["time_graph_median_s"] > 0
    assert outcome.metrics["peak_mem_bytes"] >= size["n"] * 4


def test_the_cpu_gets_the_wall_clock():
    assert isinstance(timing.clock_for(torch.device("cpu")), timing.WallClock)


@needs_cuda
@pytest.mark.parametrize("mode, launch", [("forward", "cuda graph"), ("train", "direct: gradients are being recorded")])
def test_a_triton_cell_replays_its_inference_from_a_graph_and_counts_its_memory(mode, launch):
    size = catalogue.benchmarks["elementwise"].sizes("smoke")[0]
    outcome = run_cell(catalogue, Cell("elementwise", "hadamard", "triton", tuple(size.items()), "cuda", "float32",
                                       mode), defaults.TimingPolicy(budget_s=0.02))
    assert outcome.status == "ok", outcome.message
    assert outcome.provenance["launch"] == launch
    # A replay allocates nothing; the peak is taken from direct launches, so the output counts.
    assert outcome.metrics["peak_mem_bytes"] >= size["n"] * 4
