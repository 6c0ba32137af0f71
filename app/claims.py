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

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench_runner import comparison, stats

from .analysis import asymptotic_fit, longest_sweep, with_size_columns
from .judging import crossover

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


NAN_CI = (float("nan"), float("nan"))


@dataclass(frozen=True)
class Judgement:
    """One claim judged against one machine's rows: the measured facts, the verdict, and `why` in
    one sentence; the Survey claims page and benchmarks/gpu_summary.py lay it out their own way."""

    claim: str
    verdict: str = "not measured"  # holds, does not hold, inconclusive, not measured
    why: str = ""
    held_sizes: dict = field(default_factory=dict)  # the other size parameters, held at these values
    hadamard_exponent: float = float("nan")  # growth in positions or tokens, with its 95% interval
    hadamard_ci: tuple[float, float] = NAN_CI
    quadratic_exponent: float = float("nan")  # the slowest-growing of the methods claimed quadratic
    quadratic_ci: tuple[float, float] = NAN_CI
    hadamard_kernel_exponent: float = float("nan")  # from CUDA-graph replays, where they exist
    quadratic_kernel_exponent: float = float("nan")
    yardstick_ratio: float = float("nan")  # the Hadamard method ÷ its linear yardstick at the largest size
    yardstick_ci: tuple[float, float] = NAN_CI  # its 95% interval, where the two cells' samples are given
    yardstick_paired: bool = False  # from their per-cycle ratios: the two took turns in one run
    largest_size: int | None = None
    crossover_kind: str = ""  # analysis.Crossover's: always_faster, never_faster, crossover, unsure
    crossover_at: float = float("nan")
    crossover: str = ""  # the crossover in words
    crossover_judged: bool = False  # from each size's verdict (judged_crossover), not from medians


def judge(claim: Claim, rows: pd.DataFrame, samples: dict | None = None) -> Judgement:
    """One claim against result rows of one machine, device, dtype, mode and backend.

    The measured exponents (in positions or tokens) have 95% intervals where samples are given
    (result id → (samples, sample_rounds)). The verdict: holds, does not hold, inconclusive (an
    interval straddles a threshold), or not measured. Runtime is judged on per-call times;
    kernel-only exponents (CUDA-graph replays) are reported beside them where they exist."""
    ok = rows[(rows["benchmark"] == claim.benchmark) & (rows["status"] == "ok")]
    if ok.empty:
        return Judgement(claim.id, why=f"no {claim.benchmark} results")
    found = longest_sweep(with_size_columns(ok).dropna(axis=1, how="all"), claim.param)
    if found is None:
        return Judgement(claim.id, why=f"no sweep over {claim.param}")
    fixed, sweep = found
    if claim.metric not in sweep:  # no cell of the sweep has it: results without counted FLOPs, say
        return Judgement(claim.id, why=f"no `{claim.metric}` in the {claim.benchmark} results")
    facts = dict(held_sizes={k: int(v) for k, v in fixed.items()}, **_exponents(claim, sweep, samples),
                 **_against_others(claim, sweep, samples))
    if not np.isfinite(facts["hadamard_exponent"]) or not np.isfinite(facts.get("quadratic_exponent", np.nan)):
        return Judgement(claim.id, why="too few sizes of the methods the claim names", **facts)
    return Judgement(claim.id, *_verdict(claim, facts), **facts)


def _exponents(claim: Claim, sweep: pd.DataFrame, samples: dict | None) -> dict:
    """The Hadamard method's growth exponent and the slowest-growing quadratic method's, with
    their intervals, and the kernel-only exponents where CUDA-graph replays were timed."""
    mine, mine_lo, mine_hi = _exponent(sweep, claim, claim.hadamard, samples=samples)
    theirs = sorted((e for e in (_exponent(sweep, claim, m, samples=samples) for m in claim.quadratic)
                     if np.isfinite(e[0])), key=lambda e: e[0])
    out = dict(hadamard_exponent=mine, hadamard_ci=(mine_lo, mine_hi))
    if theirs:  # the slowest-growing of the quadratic methods is the one that must be quadratic
        out.update(quadratic_exponent=theirs[0][0], quadratic_ci=(theirs[0][1], theirs[0][2]))
    if claim.metric == "time_median_s" and "time_graph_median_s" in sweep:
        kernel = [_exponent(sweep, claim, m, "time_graph_median_s")[0] for m in claim.quadratic]
        kernel = [k for k in kernel if np.isfinite(k)]
        out.update(hadamard_kernel_exponent=_exponent(sweep, claim, claim.hadamard, "time_graph_median_s")[0],
                   quadratic_kernel_exponent=min(kernel) if kernel else float("nan"))
    return out


def _against_others(claim: Claim, sweep: pd.DataFrame, samples: dict | None = None) -> dict:
    """The Hadamard method ÷ its yardstick at the largest size both reached (for runtime with
    samples, with its interval: _ratio_of_samples), and (for runtime) where it overtakes the
    strongest baseline."""
    out = {}
    col = f"size_{claim.param}"
    by = {m: g.dropna(subset=[claim.metric]).set_index(col)[claim.metric].astype(float)
          for m, g in sweep.groupby("method")}
    if claim.hadamard in by and claim.yardstick in by:
        both = by[claim.hadamard].index.intersection(by[claim.yardstick].index)
        if len(both):
            top = both.max()
            out.update(yardstick_ratio=by[claim.hadamard][top] / by[claim.yardstick][top], largest_size=int(top))
            if claim.metric == "time_median_s" and samples and "result_id" in sweep:
                out.update(_ratio_of_samples(sweep[sweep[col] == top], claim.yardstick, claim.hadamard, samples))
    if claim.metric == "time_median_s" and claim.hadamard in by and claim.strongest in by:
        out.update(_overtakes(claim, sweep, samples))
    return out


def _overtakes(claim: Claim, sweep: pd.DataFrame, samples: dict | None) -> dict:
    """Where the Hadamard method overtakes the strongest baseline (judging.crossover): from each
    size's speed-up verdict where every size the two share has samples, else from the medians.
    Nothing with fewer than two shared sizes."""
    col = f"size_{claim.param}"
    mine, theirs = (sweep[sweep["method"] == m].dropna(subset=[claim.metric]) for m in (claim.hadamard, claim.strongest))
    pair = mine.merge(theirs, on=col, suffixes=("", "_b"))
    if len(pair) < 2:
        return {}
    cross, judged = crossover(pair, col, samples, sweep)
    return dict(crossover=cross.describe(claim.param), crossover_kind=cross.kind, crossover_judged=judged is not None,
                crossover_at=cross.at if cross.at is not None else float("nan"))


def _ratio_of_samples(cells: pd.DataFrame, before: str, after: str, samples: dict) -> dict:
    """`after` ÷ `before` (methods of `cells`, one size) with its 95% interval, as Compare's
    speed-ups are judged (comparison.judge): from the two cells' per-cycle log ratios where they
    took turns in one run, else from their rounds. Nothing where either has no samples."""
    ids = cells.groupby("method")["result_id"].first()
    entry = lambda m: samples.get(int(ids[m]), ([], None))  # noqa: E731
    found = comparison.judge([(entry(before), entry(after))])[0]
    if not all(np.isfinite(found[k]) for k in ("ratio", "ci_low", "ci_high")):
        return {}
    return dict(yardstick_ratio=found["ratio"], yardstick_ci=(found["ci_low"], found["ci_high"]),
                yardstick_paired=bool(found["paired"]))


def _verdict(claim: Claim, facts: dict) -> tuple[str, str]:
    """(verdict, why): holds when the Hadamard exponent's interval lies at most at LINEAR_AT_MOST
    and the quadratic one's above QUADRATIC_ABOVE; does not hold when either lies on the wrong
    side; inconclusive when one straddles its threshold."""
    mine, mine_ci, q, q_ci = (facts["hadamard_exponent"], facts["hadamard_ci"], facts["quadratic_exponent"],
                              facts["quadratic_ci"])
    linear = _side(*mine_ci, LINEAR_AT_MOST, above=False)
    quadratic = _side(*q_ci, QUADRATIC_ABOVE, above=True)
    verdict = ("holds" if linear == quadratic == "yes" else
               "does not hold" if "no" in (linear, quadratic) else "inconclusive")
    q_name = "/".join(claim.quadratic)
    shown = lambda e, ci: f"{e:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci[0] != ci[1] else "")  # noqa: E731
    reasons = {
        "no": (f"{claim.hadamard} grows with exponent {shown(mine, mine_ci)} > {LINEAR_AT_MOST}",
               f"{q_name} grows with exponent {shown(q, q_ci)} ≤ {QUADRATIC_ABOVE}"),
        "unsure": (f"{claim.hadamard}'s exponent {shown(mine, mine_ci)} straddles {LINEAR_AT_MOST}",
                   f"{q_name}'s exponent {shown(q, q_ci)} straddles {QUADRATIC_ABOVE}"),
    }
    why = [reasons[state][i] for i, state in enumerate((linear, quadratic)) if state != "yes"
           and (verdict != "does not hold" or state == "no")]
    return verdict, "; ".join(why) or (f"{claim.hadamard} {shown(mine, mine_ci)} ≤ {LINEAR_AT_MOST}, "
                                       f"{q_name} {shown(q, q_ci)} > {QUADRATIC_ABOVE}")


def estimate_text(estimate: float) -> str:
    return f"{estimate:.2f}" if np.isfinite(estimate) else "n/a"


def interval_text(ci: tuple[float, float]) -> str | None:
    """`[0.97, 1.08]`, or None where there is no interval (counted FLOPs, a single round)."""
    if not all(np.isfinite(ci)) or ci[0] == ci[1]:
        return None
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def judge_all(rows: pd.DataFrame, samples: dict | None = None) -> list[Judgement]:
    """Every claim of CLAIMS, in order."""
    return [judge(c, rows, samples) for c in CLAIMS]


def held_text(j: Judgement) -> str:
    """`B=1, C=64, H=4`: the size parameters a claim's sweep held fixed."""
    return ", ".join(f"{k}={v}" for k, v in j.held_sizes.items())


def table(judgements: list[Judgement]) -> pd.DataFrame:
    """Judgements as rows, with each claim's figure, statement and metric beside them."""
    claims = {c.id: c for c in CLAIMS}
    return pd.DataFrame([{"figure": claims[j.claim].figure, "statement": claims[j.claim].statement,
                          "benchmark": claims[j.claim].benchmark, "hadamard": claims[j.claim].hadamard,
                          "metric": claims[j.claim].metric, "held": held_text(j),
                          "largest": f"{claims[j.claim].param}={j.largest_size}" if j.largest_size else "",
                          **dataclasses.asdict(j)} for j in judgements])
