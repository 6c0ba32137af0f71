"""Scaling analysis on result tables: fitted exponents and crossover sizes.

Plain pandas and numpy, no Streamlit, so the dashboard and the scripts under
benchmarks/ share one implementation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hadamard_bench.vocabulary import INCONCLUSIVE, METHOD_WORDS


def parse_size(label: str) -> dict[str, int]:
    """`B=1 N=64` → {"B": 1, "N": 64}: the inverse of hadamard_impls.size_label."""
    return {k: int(v) for k, v in (part.split("=", 1) for part in label.split())}


def with_size_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """One `size_<param>` column per size parameter (empty where a benchmark lacks it)."""
    frame = frame.drop(columns=[c for c in frame.columns if c.startswith("size_")])
    sizes = pd.DataFrame([parse_size(s) for s in frame["size"]], index=frame.index)
    return pd.concat([frame, sizes.add_prefix("size_")], axis=1)


@dataclass(frozen=True)
class Fit:
    exponent: float  # slope of log(y) against log(x)
    stderr: float  # its standard error from the residuals (nan with two points)
    points: int


def fit_exponent(x, y) -> Fit:
    """Least-squares slope of log y against log x, with its standard error."""
    lx, ly = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    n = len(lx)
    if n < 2 or np.ptp(lx) == 0:
        return Fit(float("nan"), float("nan"), n)
    slope, intercept = np.polyfit(lx, ly, 1)
    if n < 3:
        return Fit(float(slope), float("nan"), n)
    residuals = ly - (slope * lx + intercept)
    stderr = np.sqrt(residuals @ residuals / (n - 2) / ((lx - lx.mean()) ** 2).sum())
    return Fit(float(slope), float(stderr), n)


def asymptotic_fit(x, y, min_points: int = 3) -> Fit:
    """The fit over the upper half of the sizes: small sizes measure fixed overheads, not growth."""
    order = np.argsort(np.asarray(x, dtype=float))
    x, y = np.asarray(x, dtype=float)[order], np.asarray(y, dtype=float)[order]
    keep = max(min_points, (len(x) + 1) // 2)
    return fit_exponent(x[-keep:], y[-keep:])


@dataclass(frozen=True)
class Crossover:
    kind: str  # "crossover", "always_faster", "never_faster", "unsure" (judged_crossover only)
    at: float | None = None  # the size where the method becomes faster, interpolated in log space

    def describe(self, param: str) -> str:
        if self.kind == "crossover":
            return f"{param} ≈ {self.at:.0f}"
        return {"always_faster": "faster throughout the range",
                "unsure": "unsure: inconclusive at the largest size"}.get(self.kind, "none in range")


def _interpolated(x: np.ndarray, log_speedup: np.ndarray, i: int) -> float:
    """Where log_speedup crosses 0 between sizes i and i + 1, linearly in log x."""
    lx0, lx1 = np.log(x[i]), np.log(x[i + 1])
    return float(np.exp(lx0 + (lx1 - lx0) * (-log_speedup[i]) / (log_speedup[i + 1] - log_speedup[i])))


def find_crossover(x, method_time, baseline_time) -> Crossover:
    """The size from which the method stays faster than the baseline up to the largest size."""
    order = np.argsort(np.asarray(x, dtype=float))
    x = np.asarray(x, dtype=float)[order]
    ratio = np.log(np.asarray(baseline_time, dtype=float)[order] / np.asarray(method_time, dtype=float)[order])
    if ratio[-1] <= 0:
        return Crossover("never_faster")
    slower = np.nonzero(ratio <= 0)[0]
    if len(slower) == 0:
        return Crossover("always_faster")
    i = slower[-1]  # the last size where the method was not faster; it is faster from i + 1 on
    return Crossover("crossover", _interpolated(x, ratio, i))


def judged_crossover(x, speedup, verdicts) -> Crossover:
    """Where the method overtakes the baseline, from each size's verdict (stats' METHOD_WORDS,
    `no change`, `inconclusive`: its speed-up's interval against the floor) rather than from
    its point estimate, so a size the noise could put either side never moves the crossover.

    The method is faster from the first size after which every size was judged faster. The size
    reported lies between the last size not judged faster and the next: where the estimates
    cross 1 there, interpolated in log space as find_crossover does, else that next size. Not
    judged faster at the largest size: `never_faster` (judged slower or no change there) or
    `unsure` (inconclusive there)."""
    order = np.argsort(np.asarray(x, dtype=float))
    x = np.asarray(x, dtype=float)[order]
    log_speedup = np.log(np.asarray(speedup, dtype=float)[order])
    verdicts = np.asarray(verdicts, dtype=object)[order]
    faster = verdicts == METHOD_WORDS[1]
    if not faster[-1]:
        return Crossover("unsure" if verdicts[-1] == INCONCLUSIVE else "never_faster")
    if faster.all():
        return Crossover("always_faster")
    i = np.nonzero(~faster)[0][-1]
    if log_speedup[i] <= 0 < log_speedup[i + 1]:
        return Crossover("crossover", _interpolated(x, log_speedup, i))
    return Crossover("crossover", float(x[i + 1]))


def sweeps(rows: pd.DataFrame, param: str) -> list[tuple[dict, pd.DataFrame]]:
    """Groups of rows in which only `param` varies (the other size parameters held fixed)."""
    others = [c for c in rows.columns if c.startswith("size_") and c != f"size_{param}"
              and rows[c].notna().any()]
    groups = rows.groupby(others, dropna=True) if others else [((), rows)]
    out = []
    for key, group in groups:
        if group[f"size_{param}"].nunique() >= 2:
            key = key if isinstance(key, tuple) else (key,)
            out.append(({o.removeprefix("size_"): v for o, v in zip(others, key)}, group))
    return out


def longest_sweep(rows: pd.DataFrame, param: str) -> tuple[dict, pd.DataFrame] | None:
    found = sweeps(rows, param)
    return max(found, key=lambda item: item[1][f"size_{param}"].nunique()) if found else None


def fitted_exponents(rows: pd.DataFrame, methods: pd.DataFrame, param: str,
                     metric: str = "time_median_s", mismatch: float = 0.3) -> list[dict]:
    """Per method of one benchmark (one backend, device, dtype, mode in `rows`): the exponent of
    `metric` against `param` over its longest sweep, beside the catalogue's theoretical one."""
    found = longest_sweep(rows.dropna(axis=1, how="all"), param) if f"size_{param}" in rows else None
    if not found or metric not in found[1]:  # no cell of the sweep has it (results without memory peaks)
        return []
    fixed, sweep = found
    held = ", ".join(f"{k}={int(v)}" for k, v in fixed.items())
    out = []
    for m in methods.itertuples():
        g = sweep[sweep["method"] == m.method].dropna(subset=[metric])
        if g[f"size_{param}"].nunique() < 2:
            continue
        fit = asymptotic_fit(g[f"size_{param}"], pd.to_numeric(g[metric]))
        theory = m.exponents.get(param, float("nan")) if metric == "time_median_s" else float("nan")
        out.append(dict(method=m.method, role=m.role, param=param, held=held, measured=fit.exponent,
                        stderr=fit.stderr, points=fit.points, theory=theory,
                        flag=bool(np.isfinite(theory) and abs(fit.exponent - theory) > mismatch)))
    return out
