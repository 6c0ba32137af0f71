"""The machine's ceilings, measured at the start of a run: copy bandwidth and
matrix-product throughput per dtype. Every cell is then placed under them, as a
fraction of the roofline min(peak FLOP/s, intensity × bandwidth)."""

from __future__ import annotations

import torch

from . import timing

# Large enough to leave the caches (CPU) and to saturate the device (GPU), small
# enough to take well under a second.
COPY_BYTES = {"cpu": 64 * 2**20, "cuda": 1024 * 2**20}
MATMUL_SIZE = {"cpu": 1024, "cuda": 8192}
POLICY = timing.TimingPolicy(warmup_s=0.05, min_block_s=1e-3, budget_s=0.2, min_samples=5)


def calibrate(device: str, dtypes: list[str], clock: timing.Clock | None = None) -> dict[str, object]:
    """{"copy_gbps": …, "matmul_gflops": {dtype: …}} for `device`, from medians of timed calls."""
    clock = clock or timing.clock_for(torch.device(device))
    n = COPY_BYTES[device] // 4
    result: dict[str, object] = {"copy_gbps": 2 * n * 4 / _copy_seconds(device, n, clock) / 1e9,
                                 "matmul_gflops": {}}
    m = MATMUL_SIZE[device]
    for name in dtypes:
        dtype = getattr(torch, name)
        a, b = torch.randn(m, m, device=device, dtype=dtype), torch.randn(m, m, device=device, dtype=dtype)
        matmul_s = timing.measure(lambda: a @ b, clock, POLICY).median
        result["matmul_gflops"][name] = 2 * m**3 / matmul_s / 1e9
    return result


def _copy_seconds(device: str, n: int, clock: timing.Clock) -> float:
    """Median time to copy n float32 values into a buffer allocated once (freed on return)."""
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    return timing.measure(lambda: dst.copy_(src), clock, POLICY).median


def roofline_fraction(flops: float | None, bytes_moved: float | None, seconds: float,
                      ceilings: dict[str, object], dtype: str) -> float | None:
    """Achieved over attainable: FLOP/s over min(peak, intensity × bandwidth), or for work
    without FLOPs (a copy) bandwidth over bandwidth."""
    bandwidth = ceilings.get("copy_gbps")
    peak = ceilings.get("matmul_gflops", {}).get(dtype)
    if not seconds or not bandwidth or not bytes_moved:
        return None
    if not flops:
        return bytes_moved / seconds / 1e9 / bandwidth
    if not peak:
        return None
    attainable = min(peak, flops / bytes_moved * bandwidth)
    return flops / seconds / 1e9 / attainable
