"""Shaping stored results for charts and tables: plain pandas, no Streamlit and no torch, so the
dashboard's pages and the command line's `plot` draw from the same rows."""

from __future__ import annotations

import pandas as pd

from hadamard_bench import vocabulary

from .analysis import with_size_columns

CELL_KEY = [*vocabulary.CELL_KEY, "machine"]
CONTEXT = ["machine", "device", "dtype", "mode"]  # what must match for two results to compare

METRICS = vocabulary.METRICS  # column → (label, unit)


def add_derived(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-cell rates and one `size_<param>` column per size parameter."""
    frame = frame.copy()
    time = pd.to_numeric(frame["time_median_s"], errors="coerce")
    # The runner stores these; results imported from elsewhere may lack them.
    if "gflops" not in frame:
        frame["gflops"] = pd.to_numeric(frame["flops"], errors="coerce") / time / 1e9
    if "gbps" not in frame:
        frame["gbps"] = pd.to_numeric(frame["bytes"], errors="coerce") / time / 1e9
    if "energy_j_per_call" in frame:  # measured with --energy only
        frame["gflops_per_j"] = (pd.to_numeric(frame["flops"], errors="coerce")
                                 / pd.to_numeric(frame["energy_j_per_call"], errors="coerce") / 1e9)
    if "intensity" not in frame:
        frame["intensity"] = pd.to_numeric(frame["flops"], errors="coerce") / pd.to_numeric(frame["bytes"], errors="coerce")
    return with_size_columns(frame)


def latest_ok(frame: pd.DataFrame) -> pd.DataFrame:
    """For each cell on each machine, its most recent successful measurement."""
    ok = frame[frame["status"] == "ok"]
    return ok.sort_values("result_id").drop_duplicates(CELL_KEY, keep="last")


def size_params(frame: pd.DataFrame) -> list[str]:
    return [c.removeprefix("size_") for c in frame.columns if c.startswith("size_")]


def varying_params(frame: pd.DataFrame) -> list[str]:
    return [p for p in size_params(frame) if frame[f"size_{p}"].nunique() > 1]


def hold_fixed(frame: pd.DataFrame, x_param: str, fixed: dict[str, int]) -> pd.DataFrame:
    """The rows where every size parameter but `x_param` has its chosen value."""
    keep = pd.Series(True, index=frame.index)
    for param, value in fixed.items():
        if param != x_param:
            keep &= frame[f"size_{param}"] == value
    return frame[keep]


def speedups(frame: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Baseline time / method time, per size and backend: above 1 means faster than the baseline."""
    base = frame[frame["method"] == baseline][CONTEXT + ["backend", "size", "time_median_s"]]
    merged = frame.merge(base, on=CONTEXT + ["backend", "size"], suffixes=("", "_baseline"))
    merged["speedup"] = merged["time_median_s_baseline"] / merged["time_median_s"]
    return merged
