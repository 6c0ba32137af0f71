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

from bench_runner import stats

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


def _exponent(sweep: pd.DataFrame, claim: Claim, method: str, metric: str | None = None,
              samples: dict | None = None) -> tuple[float, float, float]:
    """(estimate, low, high) of `method`'s growth exponent in positions or tokens, over the upper
    half of the sweep (asymptotic_fit's points). For runtime with stored samples the interval
    comes from bootstrapping each size's rounds; otherwise it is the point itself."""
    metric = metric or claim.metric
    g = sweep[sweep["method"] == method].dropna(subset=[metric])
    if g[f"size_{claim.param}"].nunique() < 2:
        return float("nan"), float("nan"), float("nan")
    x, y = g[f"size_{claim.param}"].astype(float), pd.to_numeric(g[metric], errors="coerce")
    estimate = asymptotic_fit(x, y).exponent / claim.per_param
    if metric != "time_median_s" or not samples or "result_id" not in g:
        return estimate, estimate, estimate
    top = g.assign(_x=x).sort_values("_x").tail(max(3, (len(g) + 1) // 2))
    rounds = [stats.rounds_of(samples.get(rid, ([], None))) for rid in top["result_id"]]
    if any(not r for r in rounds):
        return estimate, estimate, estimate
    _, lo, hi = stats.exponent_interval(top["_x"], rounds)
    return estimate, lo / claim.per_param, hi / claim.per_param


def _side(lo: float, hi: float, threshold: float, above: bool) -> str:
    """Whether an exponent's interval lies above (or at most at) a threshold: yes, no or unsure."""
    if above:
        return "yes" if lo > threshold else "no" if hi <= threshold else "unsure"
    return "yes" if hi <= threshold else "no" if lo > threshold else "unsure"


def judge(claim: Claim, rows: pd.DataFrame, samples: dict | None = None) -> dict:
    """One claim against result rows of one machine, device, dtype, mode and backend.

    Returns the measured exponents (in positions or tokens) with 95% intervals where samples
    are given (result id → (samples, sample_rounds)), the ratio of the Hadamard method to its
    linear yardstick at the largest size, the crossover against the strongest baseline and a
    verdict: holds, does not hold, inconclusive (an interval straddles a threshold), or not
    measured. Runtime is judged on per-call times; kernel-only exponents (CUDA-graph replays)
    are reported beside them where they exist."""
    out = dict(claim=claim.id, figure=claim.figure, statement=claim.statement, benchmark=claim.benchmark,
               metric=claim.metric, hadamard=claim.hadamard, verdict="not measured", why="", held="",
               hadamard_exponent=np.nan, hadamard_ci=(np.nan, np.nan), quadratic_exponent=np.nan,
               quadratic_ci=(np.nan, np.nan), hadamard_kernel_exponent=np.nan, quadratic_kernel_exponent=np.nan,
               judged_on="per call" if claim.metric == "time_median_s" else claim.metric,
               yardstick_ratio=np.nan, crossover="", largest="",
               # The same facts structured, for pages that filter or word them their own way.
               held_sizes={}, crossover_kind="", crossover_at=np.nan)
    ok = rows[(rows["benchmark"] == claim.benchmark) & (rows["status"] == "ok")]
    if ok.empty:
        out["why"] = f"no {claim.benchmark} results"
        return out
    found = longest_sweep(with_size_columns(ok).dropna(axis=1, how="all"), claim.param)
    if found is None:
        out["why"] = f"no sweep over {claim.param}"
        return out
    fixed, sweep = found
    out["held_sizes"] = {k: int(v) for k, v in fixed.items()}
    out["held"] = ", ".join(f"{k}={v}" for k, v in out["held_sizes"].items())
    col = f"size_{claim.param}"
    mine, mine_lo, mine_hi = _exponent(sweep, claim, claim.hadamard, samples=samples)
    theirs = sorted((e for e in (_exponent(sweep, claim, m, samples=samples) for m in claim.quadratic)
                     if np.isfinite(e[0])), key=lambda e: e[0])
    out["hadamard_exponent"], out["hadamard_ci"] = mine, (mine_lo, mine_hi)
    if theirs:  # the slowest-growing of the quadratic methods is the one that must be quadratic
        out["quadratic_exponent"], out["quadratic_ci"] = theirs[0][0], (theirs[0][1], theirs[0][2])
    if claim.metric == "time_median_s" and "time_graph_median_s" in sweep:
        out["hadamard_kernel_exponent"] = _exponent(sweep, claim, claim.hadamard, "time_graph_median_s")[0]
        kernel = [_exponent(sweep, claim, m, "time_graph_median_s")[0] for m in claim.quadratic]
        kernel = [k for k in kernel if np.isfinite(k)]
        out["quadratic_kernel_exponent"] = min(kernel) if kernel else np.nan
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
            out["crossover_kind"], out["crossover_at"] = cross.kind, cross.at if cross.at is not None else np.nan
    if not np.isfinite(mine) or not theirs:
        out["why"] = "too few sizes of the methods the claim names"
        return out
    linear = _side(mine_lo, mine_hi, LINEAR_AT_MOST, above=False)
    quadratic = _side(*out["quadratic_ci"], QUADRATIC_ABOVE, above=True)
    out["verdict"] = ("holds" if linear == quadratic == "yes" else
                      "does not hold" if "no" in (linear, quadratic) else "inconclusive")
    q_name, q = "/".join(claim.quadratic), out["quadratic_exponent"]
    shown = lambda e, ci: f"{e:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci[0] != ci[1] else "")  # noqa: E731
    reasons = {
        "no": (f"{claim.hadamard} grows with exponent {shown(mine, out['hadamard_ci'])} > {LINEAR_AT_MOST}",
               f"{q_name} grows with exponent {shown(q, out['quadratic_ci'])} ≤ {QUADRATIC_ABOVE}"),
        "unsure": (f"{claim.hadamard}'s exponent {shown(mine, out['hadamard_ci'])} straddles {LINEAR_AT_MOST}",
                   f"{q_name}'s exponent {shown(q, out['quadratic_ci'])} straddles {QUADRATIC_ABOVE}"),
    }
    why = [reasons[state][i] for i, state in enumerate((linear, quadratic)) if state != "yes"
           and (out["verdict"] != "does not hold" or state == "no")]
    out["why"] = "; ".join(why) or (f"{claim.hadamard} {shown(mine, out['hadamard_ci'])} ≤ {LINEAR_AT_MOST}, "
                                    f"{q_name} {shown(q, out['quadratic_ci'])} > {QUADRATIC_ABOVE}")
    return out


def estimate_text(estimate: float) -> str:
    return f"{estimate:.2f}" if np.isfinite(estimate) else "n/a"


def interval_text(ci: tuple[float, float]) -> str | None:
    """`[0.97, 1.08]`, or None where there is no interval (counted FLOPs, a single round)."""
    if not all(np.isfinite(ci)) or ci[0] == ci[1]:
        return None
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def judge_all(rows: pd.DataFrame, samples: dict | None = None) -> pd.DataFrame:
    return pd.DataFrame([judge(c, rows, samples) for c in CLAIMS])
