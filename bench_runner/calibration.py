"""The machine's ceilings, measured at the start of a run: copy bandwidth and
compute throughput per dtype (a matrix product, and on a CPU a convolution too). Every cell is then placed under them, as a
fraction of the roofline min(peak FLOP/s, intensity × bandwidth)."""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import torch

from . import defaults, settle, telemetry, timing
from .cell import device_unavailable, dtype_unsupported

# Large enough to leave the caches (CPU) and to saturate the device (GPU), small
# enough to take well under a second.
COPY_BYTES = {"cpu": 64 * 2**20, "cuda": 1024 * 2**20}
MATMUL_SIZE = {"cpu": 1024, "cuda": 8192}
CONV_SHAPE = {"cpu": (8, 256, 16)}  # batch, channels, side: a convolution oneDNN runs near its peak
POLICY = defaults.TimingPolicy(warmup_s=0.05, min_block_s=1e-3, budget_s=0.2, min_samples=5)


def calibrate(device: str, dtypes: list[str], clock: timing.Clock | None = None,
              window_s: float = 0.0) -> dict[str, object]:
    """{"copy_gbps": …, "matmul_gflops": {dtype: …}} for `device`, from medians of timed calls:
    each the best of tries repeated until `window_s` has passed (at least one try).

    A ceiling is what the machine reaches, and a neighbour can only hold it lower. On a 2-vCPU VM
    beside a process streaming memory on one core, a second on and a second off (2026-12-05),
    fifteen tries of 0.4-0.9 s read 148-155 GFLOP/s in 3 and 312-373 in the others, 8.5-11 GB/s
    of copy in 5 and 33-38 in the others; a quick run whose one try fell in the neighbour's second
    stored 19 correct cells (GEMMs at 0.31 TFLOP/s) as implausible. Tries over two seconds cover
    a phase of a neighbour that idles one second in two."""
    clock = clock or timing.clock_for(torch.device(device))
    until = time.perf_counter() + window_s
    # The tensors are made once, not every try: on the 2-vCPU VM (2026-12-05) filling the copy's
    # 64 MiB with random numbers took 0.1 s of each 0.4-0.5 s try, and a 2 s window held 4-5
    # tries where it now holds 6-8.
    n = COPY_BYTES[device] // 4
    copy = _copy_call(device, n)
    computes = {name: _compute_calls(device, getattr(torch, name)) for name in dtypes}
    copy_s, compute = math.inf, {name: 0.0 for name in dtypes}
    while True:
        copy_s = min(copy_s, timing.measure(copy, clock, POLICY).median)
        for name, calls in computes.items():
            compute[name] = max(compute[name], *(flop / timing.measure(call, clock, POLICY).median / 1e9
                                                 for call, flop in calls))
        if time.perf_counter() >= until:
            return {"copy_gbps": 2 * n * 4 / copy_s / 1e9, "matmul_gflops": compute}


def _compute_calls(device: str, dtype: torch.dtype) -> list[tuple[Callable[[], object], float]]:
    """(call, its FLOPs): a square matrix product and, on a CPU, a 3×3 convolution, the faster of
    which sets the ceiling: the libraries behind them do not reach the same peak everywhere. On a
    2-vCPU AMD EPYC, PyTorch's MKL matrix product took its AVX2 path (200 GFLOP/s) while oneDNN's
    convolutions used AVX-512 (440 GFLOP/s), so against the product alone correct convolution
    cells read 2× the ceiling and were stored as implausible."""
    m = MATMUL_SIZE[device]
    a, b = torch.randn(m, m, device=device, dtype=dtype), torch.randn(m, m, device=device, dtype=dtype)
    calls = [(lambda: a @ b, 2 * m**3)]
    if device in CONV_SHAPE:
        batch, channels, side = CONV_SHAPE[device]
        x = torch.randn(batch, channels, side, side, device=device, dtype=dtype)
        w = torch.randn(channels, channels, 3, 3, device=device, dtype=dtype)
        calls.append((lambda: torch.nn.functional.conv2d(x, w, padding=1), 2 * batch * channels**2 * 9 * side**2))
    return calls


def _copy_call(device: str, n: int) -> Callable[[], object]:
    """A copy of n float32 values into a buffer of its own, both held for as long as the call is."""
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    return lambda: dst.copy_(src)


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


# The drift controls: the same two small calls timed at the start of every round, so that a
# comparison across rounds and runs can tell how much the machine itself changed.
DRIFT_COPY_BYTES = {"cpu": 16 * 2**20, "cuda": 256 * 2**20}
DRIFT_MATMUL_SIZE = {"cpu": 256, "cuda": 4096}
DRIFT_POLICY = defaults.TimingPolicy(warmup_s=0.02, min_block_s=1e-3, budget_s=0.1, min_samples=7)


def drift_control(device: str, clock: timing.Clock | None = None) -> dict[str, float]:
    """{"copy_s": …, "matmul_s": …}: medians of a fixed float32 copy and matrix product; on the CPU
    also "probe_s", the small threaded product that bench_runner.settle waits on."""
    clock = clock or timing.clock_for(torch.device(device))
    n, m = DRIFT_COPY_BYTES[device] // 4, DRIFT_MATMUL_SIZE[device]
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    a, b = torch.randn(m, m, device=device), torch.randn(m, m, device=device)
    controls = {"copy_s": timing.measure(lambda: dst.copy_(src), clock, DRIFT_POLICY).median,
                "matmul_s": timing.measure(lambda: a @ b, clock, DRIFT_POLICY).median}
    if device == "cpu":  # how well the cores work together now (bench_runner.settle)
        controls["probe_s"] = settle.probe_s()
    return controls


def drift_controls(devices) -> dict:
    """device → drift_control(device), as a round's record stores them; {"error": why} where timing
    them failed: they are the round's context, never worth the round."""
    try:
        return {device: drift_control(device) for device in devices}
    except Exception as exc:  # noqa: BLE001 -- stored as the reason there are none
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}


def ceilings_here(cells: Sequence, window_s: float = 0.0) -> dict:
    """Each device's ceilings (the devices and dtypes the cells use), measured in this process,
    each the best of tries over `window_s` (calibrate)."""
    ceilings = {}
    for device in sorted({c.device for c in cells}):
        if device_unavailable(device):
            continue
        dtypes = sorted({c.dtype for c in cells if c.device == device and not dtype_unsupported(device, c.dtype)})
        ceilings[device] = calibrate(device, dtypes, window_s=window_s)
        idle = telemetry.idle_power_w(telemetry.source_for(device))  # a second, where there is a counter
        if idle is not None:
            ceilings[device]["idle_power_w"] = idle
    return ceilings
