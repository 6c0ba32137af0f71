"""A cell faster than its device can physically be is not a result: the plausibility guard.

After timing, a cell's achieved FLOP/s and bytes/s are held against the peaks of its device and
dtype. A float32 cell above the GPU's float32 (CUDA-core) peak ran something else: TF32 tensor
cores, a missing synchronisation, a cached output, or an algorithm doing less arithmetic than
the formula counts (Winograd or FFT convolutions). Such a cell is stored as `implausible` with
the figures, not as `ok`.

Known GPUs are judged against their datasheets; a CPU or an unknown GPU against the run's own
calibrated ceilings, with a wider margin (what the calibration reached is not the machine's peak).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Peaks:
    """Dense peaks, the highest of a GPU's variants (SXM, PCIe, NVL), so a bound never
    flags a real result: float32 on CUDA cores, TF32 and 16-bit on tensor cores, memory TB/s."""

    fp32_tflops: float
    tf32_tflops: float
    half_tflops: float
    bandwidth_tbs: float


# From NVIDIA's datasheets (dense, without sparsity).
GPUS: dict[str, Peaks] = {
    "H200": Peaks(fp32_tflops=67.0, tf32_tflops=495.0, half_tflops=989.0, bandwidth_tbs=4.8),
    "H100": Peaks(fp32_tflops=67.0, tf32_tflops=495.0, half_tflops=989.0, bandwidth_tbs=3.9),  # NVL: 3.9 TB/s
    "A100": Peaks(fp32_tflops=19.5, tf32_tflops=156.0, half_tflops=312.0, bandwidth_tbs=2.04),
    "L4": Peaks(fp32_tflops=30.3, tf32_tflops=60.0, half_tflops=121.0, bandwidth_tbs=0.3),
    "RTX 4090": Peaks(fp32_tflops=82.6, tf32_tflops=82.6, half_tflops=330.0, bandwidth_tbs=1.008),
}
# A device name matches the first pattern it contains (so an "L40S" is not an "L4").
PATTERNS = [(re.compile(p), k) for p, k in ((r"H200", "H200"), (r"H100", "H100"), (r"A100", "A100"),
                                               (r"\bL4\b", "L4"), (r"4090", "RTX 4090"))]

MARGIN = 1.10  # against a datasheet: timing noise and clock boost headroom
CALIBRATED_MARGIN = 2.0  # against the run's own calibration: it is a measured matmul, not the peak
# Bytes per second are judged only when the minimum bytes moved cannot sit in any cache.
BANDWIDTH_FROM_BYTES = 512 * 2**20


def known_peaks(device_name: str | None, table: dict[str, Peaks] | None = None) -> Peaks | None:
    table = GPUS if table is None else table
    for pattern, key in PATTERNS:
        if device_name and pattern.search(device_name) and key in table:
            return table[key]
    return None


@functools.cache
def device_name(device: str) -> str | None:
    """The GPU's name for a `cuda` cell (None on the CPU)."""
    if device != "cuda":
        return None
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def with_machine_best(own: dict, earlier: Iterable[tuple[int, dict]]) -> dict:
    """One device's ceilings (`own`, this run's) with a `guard` entry for `check`: each ceiling at
    the highest this machine has measured, and the run that measured it (None: this one).

    A calibration only ever reads low (something else ran, the cores were in a slow spell): a
    calibration taken while other processes used half the CPUs stored a third of a run's correct
    cells as implausible. What the machine reached once, it can reach. The run's own ceilings stay
    what its roofline fractions are computed against."""
    guard = {"copy_gbps": [own.get("copy_gbps"), None],
             "matmul_gflops": {d: [v, None] for d, v in (own.get("matmul_gflops") or {}).items()}}
    for run, theirs in earlier:
        if (theirs.get("copy_gbps") or 0) > (guard["copy_gbps"][0] or 0):
            guard["copy_gbps"] = [theirs["copy_gbps"], run]
        for dtype, value in (theirs.get("matmul_gflops") or {}).items():
            if (value or 0) > (guard["matmul_gflops"].get(dtype, [None])[0] or 0):
                guard["matmul_gflops"][dtype] = [value, run]
    return {**own, "guard": guard}


def _whose(run: int | None) -> str:
    return "this run's calibration" if run is None else f"run {run}'s calibration, this machine's highest"


def check(metrics: dict, device: str, dtype: str, ceilings: dict | None = None, name: str | None = None,
          table: dict[str, Peaks] | None = None) -> str | None:
    """Why the cell's rates are impossible on its device, or None. `metrics` holds the cell's
    flops, bytes and time_median_s; `ceilings` the run's calibration of this device; `name`
    the GPU's name (looked up in `table`, default GPUS)."""
    seconds = metrics.get("time_median_s")
    if not seconds or seconds <= 0:
        return None
    flop_rate = (metrics.get("flops") or 0) / seconds
    byte_rate = (metrics.get("bytes") or 0) / seconds
    peaks = known_peaks(name, table) if device == "cuda" else None
    if peaks is not None:
        flop_peak = (peaks.fp32_tflops if dtype == "float32" else peaks.half_tflops) * 1e12
        byte_peak, margin, whose = peaks.bandwidth_tbs * 1e12, MARGIN, f"{name}'s datasheet"
        byte_whose = whose
        flop_what = "float32 (CUDA-core) peak" if dtype == "float32" else f"{dtype} tensor-core peak"
    else:
        ceilings = ceilings or {}
        guard = ceilings.get("guard") or with_machine_best(ceilings, [])["guard"]
        matmul, flop_run = guard["matmul_gflops"].get(dtype, [None, None])
        copy, byte_run = guard["copy_gbps"]
        flop_peak = matmul * 1e9 if matmul else None
        byte_peak = copy * 1e9 if copy else None
        margin, whose, byte_whose = CALIBRATED_MARGIN, _whose(flop_run), _whose(byte_run)
        flop_what = f"{dtype} compute ceiling (the faster of a matrix product and a convolution)"
    if flop_peak and flop_rate > margin * flop_peak:
        return (f"implausible: {flop_rate / 1e12:.3g} TFLOP/s is {flop_rate / flop_peak:.2f}× the {flop_what} of "
                f"{flop_peak / 1e12:.3g} TFLOP/s ({whose}); TF32 or another cheaper format, a missing "
                f"synchronisation, a cached output, or an algorithm doing less than the counted FLOPs")
    if byte_peak and (metrics.get("bytes") or 0) >= BANDWIDTH_FROM_BYTES and byte_rate > margin * byte_peak:
        return (f"implausible: {byte_rate / 1e9:.4g} GB/s is {byte_rate / byte_peak:.2f}× the memory bandwidth of "
                f"{byte_peak / 1e9:.4g} GB/s ({byte_whose}) for {metrics['bytes'] / 2**20:.0f} MiB that no cache "
                f"holds; a missing synchronisation or a cached output")
    return None
