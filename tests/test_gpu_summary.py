"""benchmarks/gpu_summary.py's verdicts on the GPU targets, from planted results: the
summary is what a GPU session reads its targets from, so its arithmetic is tested here."""

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def summary():
    # The script imports its sibling docs_section as a script would (its folder first on the path):
    # handed to it here under that name instead.
    saved = sys.modules.get("docs_section")
    sys.modules["docs_section"] = _load("docs_section")
    try:
        yield _load("gpu_summary")
    finally:
        if saved is None:
            sys.modules.pop("docs_section", None)
        else:
            sys.modules["docs_section"] = saved


def cell(method, size, per_call_us, graph_us=None, mb=1.0, backend="triton", dtype="float32",
         benchmark="elementwise"):
    return {"benchmark": benchmark, "method": method, "backend": backend, "dtype": dtype, "mode": "forward",
            "size": size, "status": "ok", "bytes": mb * 2**20, "time_median_s": per_call_us * 1e-6,
            "time_graph_median_s": None if graph_us is None else graph_us * 1e-6}


def test_launch_overhead_judges_large_cells_by_ratio_and_small_ones_by_microseconds(summary):
    results = pd.DataFrame([
        cell("hadamard", "n=1", 105, 100, mb=8),   # 1.05×, large: met
        cell("hadamard", "n=2", 120, 100, mb=8),   # 1.2×, large: missed
        cell("hadamard", "n=3", 19, 4, mb=1),      # +15 µs, small: met though 4.75×
        cell("hadamard", "n=4", 34, 4, mb=1),      # +30 µs, small: missed
        cell("hadamard", "n=5", 50, None, mb=1),   # no graph replay: not judged
        cell("hadamard", "n=6", 50, 1, backend="eager"),  # not triton: not judged
    ])
    table, verdict = summary.launch_overhead(results)
    assert list(table.sort_values("size")["met"]) == ["yes", "no", "yes", "no"]
    assert verdict.startswith("missed: 2 of 4 cells within target; the largest ratio 8.50×")


def test_the_fused_ffn_target_is_compile_over_triton_in_bfloat16(summary):
    rows = []
    for size, compile_us, triton_us in (("tokens=4096 C=1024", 1200, 1000), ("tokens=16384 C=4096", 1050, 1000)):
        for backend, us in (("compile", compile_us), ("triton", triton_us)):
            rows.append(cell("swiglu", size, us, backend=backend, dtype="bfloat16", benchmark="gated_ffn"))
    rows.append(cell("swiglu", "tokens=8192 C=256", 10, backend="triton", dtype="bfloat16", benchmark="gated_ffn"))
    table, verdict = summary.fused_ffn(pd.DataFrame(rows))
    assert sorted(table["compile / triton"].round(2)) == [1.05, 1.2]
    assert verdict == "missed: the dual GEMM is at least 1.05× torch.compile per call over 2 of 8 cells"
