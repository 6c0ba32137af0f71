"""The survey's cost claims, stated once and judged against stored results.

Figures S3 and S4 of the survey (reproduced from Babiloni et al. 2023) claim that
the Hadamard forms of spatial and token mixing cost about a linear layer while
non-local blocks and self-attention grow quadratically. Each claim here names the
benchmark, the methods and the measurement that decides it, and the thresholds
it is judged by: a growth exponent within 1.3 counts as linear, one above 1.7 as
quadratic (in positions N = H·W or tokens N).

Plain pandas, no Streamlit: the "Survey claims" page and benchmarks/gpu_summary.py
share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .analysis import asymptotic_fit, find_crossover, longest_sweep, with_size_columns

LINEAR_AT_MOST = 1.3
QUADRATIC_ABOVE = 1.7


@dataclass(frozen=True)
class Claim:
    id: str
    figure: str
    statement: str
    benchmark: str
    param: str  # the size parameter the sweep grows
    per_param: float  # exponent in `param` per exponent in positions/tokens: H grows N = H² → 2
    metric: str  # the column judged: time_median_s, peak_mem_bytes, flops_counted
    hadamard: str
    quadratic: tuple[str, ...]  # the methods claimed to grow quadratically
    yardstick: str  # the linear layer the Hadamard method is claimed to cost about as much as
    strongest: str  # the hardest baseline: where the Hadamard method overtakes it is reported


CLAIMS = (
    Claim("s3_runtime", "Figure S3",
          "Poly-NL's runtime grows linearly in the number of positions N = H·W; "
          "a non-local block's grows quadratically.",
          "spatial_mixing", "H", 2.0, "time_median_s", "poly_nl", ("non_local",), "conv1x1", "non_local"),
    Claim("s3_memory", "Figure S3",
          "Poly-NL's peak memory grows linearly in the number of positions; a non-local block's quadratically.",
          "spatial_mixing", "H", 2.0, "peak_mem_bytes", "poly_nl", ("non_local",), "conv1x1", "non_local"),
    Claim("s4_runtime", "Figure S4",
          "Poly-SA's runtime grows linearly in the number of tokens, like a linear layer's; "
          "self-attention's grows quadratically.",
          "token_mixing", "N", 1.0, "time_median_s", "poly_sa", ("softmax_attention",), "linear", "sdpa"),
    Claim("s4_flops", "Figure S4",
          "Poly-SA's FLOPs grow linearly in the number of tokens, comparable to a linear layer; "
          "self-attention's grow quadratically.",
          "token_mixing", "N", 1.0, "flops_counted", "poly_sa", ("softmax_attention", "sdpa"), "linear", "sdpa"),
)


def _exponent(sweep: pd.DataFrame, claim: Claim, method: str) -> float:
    g = sweep[sweep["method"] == method].dropna(subset=[claim.metric])
    if g[f"size_{claim.param}"].nunique() < 2:
        return float("nan")
    fit = asymptotic_fit(g[f"size_{claim.param}"], pd.to_numeric(g[claim.metric], errors="coerce"))
    return fit.exponent / claim.per_param


def judge(claim: Claim, rows: pd.DataFrame) -> dict:
    """One claim against result rows of one machine, device, dtype, mode and backend.

    Returns the measured exponents (in positions or tokens), the ratio of the Hadamard
    method to its linear yardstick at the largest size, the crossover against the
    strongest baseline and a verdict: holds, does not hold, or not measured."""
    out = dict(claim=claim.id, figure=claim.figure, statement=claim.statement, benchmark=claim.benchmark,
               metric=claim.metric, hadamard=claim.hadamard, verdict="not measured", why="", held="",
               hadamard_exponent=np.nan, quadratic_exponent=np.nan, yardstick_ratio=np.nan,
               crossover="", largest="")
    ok = rows[(rows["benchmark"] == claim.benchmark) & (rows["status"] == "ok")]
    if ok.empty:
        out["why"] = f"no {claim.benchmark} results"
        return out
    found = longest_sweep(with_size_columns(ok).dropna(axis=1, how="all"), claim.param)
    if found is None:
        out["why"] = f"no sweep over {claim.param}"
        return out
    fixed, sweep = found
    out["held"] = ", ".join(f"{k}={int(v)}" for k, v in fixed.items())
    col = f"size_{claim.param}"
    mine = _exponent(sweep, claim, claim.hadamard)
    theirs = [e for e in (_exponent(sweep, claim, m) for m in claim.quadratic) if np.isfinite(e)]
    out["hadamard_exponent"] = mine
    out["quadratic_exponent"] = min(theirs) if theirs else np.nan
    by = {m: g.dropna(subset=[claim.metric]).set_index(col)[claim.metric].astype(float)
          for m, g in sweep.groupby("method")}
    if claim.hadamard in by and claim.yardstick in by:
        both = by[claim.hadamard].index.intersection(by[claim.yardstick].index)
        if len(both):
            top = both.max()
            out["yardstick_ratio"] = by[claim.hadamard][top] / by[claim.yardstick][top]
            out["largest"] = f"{claim.param}={int(top)}"
    if claim.metric == "time_median_s" and claim.hadamard in by and claim.strongest in by:
        pair = pd.concat([by[claim.hadamard], by[claim.strongest]], axis=1, join="inner").sort_index()
        if len(pair) >= 2:
            cross = find_crossover(pair.index, pair.iloc[:, 0], pair.iloc[:, 1])
            out["crossover"] = cross.describe(claim.param)
    if not np.isfinite(mine) or not theirs:
        out["why"] = "too few sizes of the methods the claim names"
        return out
    linear, quadratic = mine <= LINEAR_AT_MOST, out["quadratic_exponent"] > QUADRATIC_ABOVE
    out["verdict"] = "holds" if linear and quadratic else "does not hold"
    reasons = []
    if not linear:
        reasons.append(f"{claim.hadamard} grows with exponent {mine:.2f} > {LINEAR_AT_MOST}")
    if not quadratic:
        reasons.append(f"{'/'.join(claim.quadratic)} grows with exponent {out['quadratic_exponent']:.2f} "
                       f"≤ {QUADRATIC_ABOVE}")
    out["why"] = "; ".join(reasons) or (f"{claim.hadamard} {mine:.2f} ≤ {LINEAR_AT_MOST}, "
                                        f"{'/'.join(claim.quadratic)} {out['quadratic_exponent']:.2f} > "
                                        f"{QUADRATIC_ABOVE}")
    return out


def judge_all(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame([judge(c, rows) for c in CLAIMS])
