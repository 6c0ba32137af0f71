"""Statistics of timing samples, as pure functions: numbers in, numbers out. The runner, the
CLI, the dashboard and benchmarks/ all call these, so a verdict reads the same everywhere;
bench_runner.comparison builds tables of them and bench_runner.wording explains them.

A cell's samples come in rounds, each measured in a fresh worker process. Samples of
one round are not independent draws of the machine: they share one process's memory
layout, one allocator history, one stretch of machine state. So the uncertainty of a
median comes from a hierarchical bootstrap, rounds first and samples within them
(Davison & Hinkley, Bootstrap Methods and their Application, 1997, §3.8), and a verdict
needs its whole 95% confidence interval beyond a practical floor, or its whole 90% interval
inside it, as an equivalence test at 5% does (Schuirmann's two one-sided tests, 1987).
p-values across cells are adjusted by Benjamini & Hochberg (1995). A history's change points are searched in
bench_runner.step_detect on top of these. Torch-free (numpy, scipy): the dashboard imports it.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from hadamard_bench.vocabulary import INCONCLUSIVE, NO_CHANGE, RUN_WORDS, STATISTICS

from .defaults import FLOOR


def _sps():
    """scipy.stats, imported at its first use: the import takes about 0.8 s, which every worker
    process paid at its start for the one function of this module it calls (median_rel_ci,
    which needs none of scipy)."""
    from scipy import stats

    return stats


ALPHA = 0.05  # false-discovery rate across the cells compared at once
NOISY_IQR = 0.10  # torch.utils.benchmark's threshold: within-round IQR above 10% of the median
NOISY_ROUND_SPREAD = 0.10  # round medians more than 10% of the median apart
N_BOOT = 1000
LEVEL = 0.95  # the intervals reported, and the one a change must clear 1 with
# "No change" is an equivalence test: two one-sided tests, each at 5% (Schuirmann, "A comparison of
# the two one-sided tests procedure and the power approach for assessing the equivalence of
# average bioavailability", J. Pharmacokinetics and Biopharmaceutics 1987), which is the 90%
# interval lying within the floor. Read off the 95% interval, each test ran at 2.5%: stricter
# than the 5% the verdict is stated at, and it left identical code inconclusive the more often
# (docs/notes/2026-12-05-equivalence-at-five-percent.md).
EQUIVALENCE_LEVEL = 0.90


def split_rounds(samples: Sequence[float], sample_rounds: Sequence[int] | None = None) -> list[np.ndarray]:
    """Samples grouped by round, in round order; without round labels, one round."""
    values = np.asarray(samples if samples is not None else [], dtype=float)
    if sample_rounds is None or len(sample_rounds) != len(values):
        return [values] if len(values) else []
    labels = np.asarray(sample_rounds)
    return [values[labels == r] for r in sorted(set(labels.tolist()))]


def median_rel_ci(samples) -> float:
    """Half-width of a distribution-free 95% confidence interval of the median, over the median.

    The interval runs between the order statistics at ranks n/2 ∓ 0.98·√n (the binomial
    approximation), so it assumes nothing about the shape of the timing distribution. It
    describes one round only: how well that process's median is known."""
    n = len(samples)
    if n < 2:
        return float("inf")
    ordered = sorted(samples)
    half = 0.98 * math.sqrt(n)
    lo, hi = ordered[max(0, math.floor(n / 2 - half))], ordered[min(n - 1, math.ceil(n / 2 + half) - 1)]
    median = float(np.median(ordered))
    return (hi - lo) / 2 / median if median > 0 else float("inf")


def _iqr(values: np.ndarray) -> float:
    if len(values) < 2:
        return 0.0
    q1, q3 = np.quantile(values, [0.25, 0.75])
    return float(q3 - q1)


def summarize(samples: Sequence[float], sample_rounds: Sequence[int] | None = None) -> dict[str, float]:
    """A cell's timing metrics from all its rounds.

    `time_iqr_s` is the median of the rounds' IQRs (the spread within one process);
    `round_spread` is the range of the round medians over the median (the spread between
    processes); `noisy` when either exceeds 10%."""
    rounds = split_rounds(samples, sample_rounds)
    pooled = np.concatenate(rounds) if rounds else np.array([])
    if not len(pooled):
        return {}
    median = float(np.median(pooled))
    round_medians = np.array([np.median(r) for r in rounds])
    iqr = float(np.median([_iqr(r) for r in rounds]))
    spread = float(np.ptp(round_medians) / median) if len(rounds) > 1 and median > 0 else 0.0
    rel_ci = float(np.median([median_rel_ci(r) for r in rounds]))
    return {
        "time_median_s": median, "time_iqr_s": iqr, "time_min_s": float(pooled.min()),
        "time_mean_s": float(pooled.mean()), "samples": float(len(pooled)), "rounds": float(len(rounds)),
        "round_spread": spread, "median_rel_ci": rel_ci,
        "noisy": float(iqr > NOISY_IQR * median or spread > NOISY_ROUND_SPREAD),
    }


def bootstrap_medians(rounds: Sequence[np.ndarray], n_boot: int = N_BOOT,
                      rng: np.random.Generator | None = None, quantile: float = 0.5) -> np.ndarray:
    """`n_boot` medians (or another `quantile`) of hierarchical resamples: draw as many rounds as
    there are, with replacement, then within each drawn round as many samples as it has, with
    replacement."""
    rng = rng or np.random.default_rng(0)
    rounds = [np.asarray(r, dtype=float) for r in rounds if len(r)]
    if not rounds:
        return np.full(n_boot, np.nan)
    lengths = np.array([len(r) for r in rounds])
    padded = np.full((len(rounds), lengths.max()), np.nan)
    for i, r in enumerate(rounds):
        padded[i, :len(r)] = r
    chosen = rng.integers(0, len(rounds), size=(n_boot, len(rounds)))  # (B, R)
    n = lengths[chosen]  # (B, R)
    picks = (rng.random((n_boot, len(rounds), lengths.max())) * n[..., None]).astype(int)
    values = padded[chosen[..., None], picks]  # (B, R, max n)
    # A shorter round fills fewer slots: the empty ones hold +inf, which sorts last, so the
    # quantile of each resample's real values is read at its own rank (numpy's linear rule).
    values[np.arange(lengths.max()) >= n[..., None]] = np.inf
    ordered = np.sort(values.reshape(n_boot, -1), axis=1)
    position = quantile * (n.sum(axis=1) - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, n.sum(axis=1) - 1)
    rows = np.arange(n_boot)
    return ordered[rows, low] + (ordered[rows, high] - ordered[rows, low]) * (position - low)


@dataclass(frozen=True)
class Comparison:
    """`after` against `before`: the ratio of medians with its bootstrap 95% CI and a rank test,
    and the 90% interval (`eq_low`, `eq_high`) that the equivalence test reads."""

    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    rounds: int  # the fewer rounds of the two sides
    eq_low: float = float("nan")
    eq_high: float = float("nan")
    # Paired only: the lowest and highest of the rounds' own ratios, and how far apart the rounds
    # lie against what their cycles explain (rounds_apart).
    round_low: float = float("nan")
    round_high: float = float("nan")
    rounds_apart: float = float("nan")


def _widened_interval(estimate: float, log_boot: np.ndarray, rounds: int, level: float = LEVEL
                      ) -> tuple[float, float]:
    """The `level` percentile interval of log-scale bootstrap values around `estimate`, widened for
    few rounds: resampling R rounds from R understates the spread between them by (R − 1)/R in
    variance (three rounds cover the truth about 84% of the time, not 95%), so the deviations
    are scaled by √(R / (R − 1))."""
    widen = math.sqrt(rounds / (rounds - 1)) if rounds > 1 else 1.0
    centre = math.log(estimate)
    tail = (1 - level) / 2
    lo, hi = np.exp(centre + widen * (np.quantile(log_boot, [tail, 1 - tail]) - centre))
    return float(lo), float(hi)


def compare(before: Sequence[np.ndarray], after: Sequence[np.ndarray], n_boot: int = N_BOOT,
            seed: int = 0, statistic: str = "median") -> Comparison:
    """Ratio of medians (after ÷ before), its 95% CI by a hierarchical bootstrap of both sides
    (widened for few rounds), and a two-sided Mann–Whitney U test.

    Unlike compare_paired's, this interval takes no t floor over the rounds. On real runs (five
    sets of five runs of the same code on a 2-vCPU VM, three quiet and two beside a memory-bound
    neighbour, 2026-12-03; each run compared with each other run of its set, 110 cells a pair)
    it held 1 in a median 89-98% of cells per set; with Welch's t over the rounds as a floor,
    97-99%: wider than honest, at 2-18 points more of the cells inconclusive.

    The rank test runs on the pooled samples, not on round medians: with the three rounds of
    a quick run a test on round medians can never reach p < 0.05 (its smallest two-sided p
    with 3 against 3 is 0.1). Samples of one round are correlated, which makes that p-value
    optimistic; the verdict therefore also needs the bootstrap interval, which carries the
    spread between rounds, to clear the practical floor."""
    before = [np.asarray(r, dtype=float) for r in before if len(r)]
    after = [np.asarray(r, dtype=float) for r in after if len(r)]
    if not before or not after:
        return Comparison(float("nan"), float("nan"), float("nan"), float("nan"), 0)
    q = STATISTICS[statistic]
    pooled_b, pooled_a = np.concatenate(before), np.concatenate(after)
    ratio = float(np.quantile(pooled_a, q) / np.quantile(pooled_b, q))
    rng = np.random.default_rng(seed)  # fixed: the same data always give the same verdict
    log_boot = np.log(bootstrap_medians(after, n_boot, rng, q) / bootstrap_medians(before, n_boot, rng, q))
    rounds = min(len(before), len(after))
    lo, hi = _widened_interval(ratio, log_boot, rounds)
    eq_low, eq_high = _widened_interval(ratio, log_boot, rounds, EQUIVALENCE_LEVEL)
    if np.ptp(np.concatenate([pooled_a, pooled_b])) == 0:
        p = 1.0
    else:
        p = float(_sps().mannwhitneyu(pooled_a, pooled_b, alternative="two-sided").pvalue)
    return Comparison(ratio, lo, hi, p, rounds, eq_low, eq_high)


def adjust(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (NaN stays NaN)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(len(p), np.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = _sps().false_discovery_control(p[finite], method="bh")
    return out


def _equivalent(ci_low: float, ci_high: float, eq_low: float, eq_high: float, floor: float) -> bool:
    """The equivalence test: the whole EQUIVALENCE_LEVEL interval (`eq_low`, `eq_high`; where not
    given, the 95% one) within [1 − floor, 1 + floor]."""
    if not (np.isfinite(eq_low) and np.isfinite(eq_high)):
        eq_low, eq_high = ci_low, ci_high
    return bool(np.isfinite(eq_low) and np.isfinite(eq_high) and eq_low >= 1 - floor and eq_high <= 1 + floor)


def verdict(ci_low: float, ci_high: float, p_adjusted: float, floor: float = FLOOR, alpha: float = ALPHA,
            words: tuple[str, str] = RUN_WORDS, eq_low: float = float("nan"), eq_high: float = float("nan")) -> str:
    """`regression` (or `slower`) when the whole 95% CI lies above 1 + floor and the rank test is
    significant after adjustment; `improvement` (`faster`) when it lies below 1 − floor;
    `no change` when the 90% interval (`eq_low`, `eq_high`; the 95% one where not given) lies
    inside [1 − floor, 1 + floor]; otherwise `inconclusive`."""
    if not (np.isfinite(ci_low) and np.isfinite(ci_high)):
        return INCONCLUSIVE
    significant = np.isfinite(p_adjusted) and p_adjusted < alpha
    if ci_low > 1 + floor and significant:
        return words[0]
    if ci_high < 1 - floor and significant:
        return words[1]
    return NO_CHANGE if _equivalent(ci_low, ci_high, eq_low, eq_high, floor) else INCONCLUSIVE


VERDICT_COLUMNS = ["ratio", "ci_low", "ci_high", "eq_low", "eq_high", "p_value", "p_adjusted", "rounds", "verdict"]
ROUND_COLUMNS = ["round_low", "round_high", "rounds_apart"]  # a paired comparison's rounds (Comparison)


def data_seed(*groups: Sequence[np.ndarray]) -> int:
    """A bootstrap's seed drawn from the values it resamples, so that a cell's interval depends
    on its own samples alone, not on which cells were compared beside it or in what order. Seeded
    by position, 5% of a quiet A/A's 110 verdicts changed with the seed at 1000 resamples
    (docs/notes/2026-12-05-a-floor-an-identical-pair-can-meet.md): a cell could read `no change`
    compared alone and `inconclusive` among the whole suite."""
    values = [np.asarray(r, dtype=np.float64) for group in groups for r in group]
    return zlib.crc32(np.concatenate(values).tobytes()) if values else 0


def compare_all(pairs: Iterable[tuple[Sequence[np.ndarray], Sequence[np.ndarray]]],
                floor: float | Sequence[float] = FLOOR, alpha: float = ALPHA, words: tuple[str, str] = RUN_WORDS,
                n_boot: int = N_BOOT, statistic: str = "median") -> list[dict]:
    """Every (before, after) pair compared, p-values adjusted together, each with its verdict at
    its `floor` (one for all, or one per pair)."""
    found = [compare(b, a, n_boot=n_boot, seed=data_seed(b, a), statistic=statistic) for b, a in pairs]
    adjusted = adjust([c.p_value for c in found])
    floors = np.broadcast_to(np.asarray(floor, dtype=float), (len(found),))
    return [dict(ratio=c.ratio, ci_low=c.ci_low, ci_high=c.ci_high, p_value=c.p_value, p_adjusted=float(p),
                 rounds=c.rounds, verdict=verdict(c.ci_low, c.ci_high, p, f, alpha, words, c.eq_low, c.eq_high),
                 floor=float(f), eq_low=c.eq_low, eq_high=c.eq_high)
            for c, p, f in zip(found, adjusted, floors)]


# The floor is the margin of an equivalence test ("no change") as well as the bar a change must
# clear, so it is sized as such a margin is for a given power (Julious, "Sample sizes for clinical
# trials with Normal data", Statistics in Medicine 2004): two identical runs' 95% interval lies
# inside it 80% of the time when it is z_0.975 + z_0.90 = 1.96 + 1.28 standard errors of their log
# ratio, and the 90% interval the equivalence test reads (EQUIVALENCE_LEVEL), 89% of the time.
# Resized for the 90% interval's 80% (1.645 + 1.28) it would let a drift that 0.3% of identical
# pairs reach pass for a change, where 3.24 lets 0.1%. Where a run's own rounds explain its drift,
# a 99% floor (z = 2.576), judged by the 95% interval, left 54% of synthetic identical pairs
# inconclusive and 41% of a quiet A/A's cells on the VM
# (docs/notes/2026-12-05-a-floor-an-identical-pair-can-meet.md); by the 90% interval, 45% of the
# synthetic pairs (tests/bench_runner/test_drift_floor.py).
DRIFT_Z = 1.96 + 1.2816


def drift_floors(run_medians: Sequence[Sequence[float]], z: float = DRIFT_Z, prior_runs: int = 4) -> np.ndarray:
    """Per cell, how far two of its runs taken at different times move apart on this machine,
    as a margin an equivalence test can meet: exp(z·√2·s) − 1, where s is the standard deviation
    of the log of the cell's median across runs (each a separate process at another time), √2·s
    that of two runs' log ratio, and z = DRIFT_Z (0.1% of such pairs move beyond it). A cell
    measured by few runs knows its own s poorly (three runs: two degrees of
    freedom), so each cell's variance is moderated towards all cells' by `prior_runs` degrees of
    freedom, as limma's moderated t does (Smyth, "Linear models and empirical Bayes methods for
    assessing differential expression", 2004). The prior is the cells' median variance, which a
    glitch in one cell cannot move, divided by the chi-square median's share of the mean (0.69
    for two degrees of freedom) so that it estimates the variance itself. NaN for a cell of
    fewer than two runs."""
    logs = [np.log(np.asarray(m, dtype=float)) for m in run_medians]
    df = np.array([len(x) - 1 for x in logs], dtype=float)
    var = np.array([np.var(x, ddof=1) if len(x) > 1 else np.nan for x in logs])
    known = np.isfinite(var)
    typical_df = float(np.median(df[known])) if known.any() else 1.0
    prior = float(np.median(var[known])) / (_sps().chi2.median(typical_df) / typical_df) if known.any() else np.nan
    moderated = (prior_runs * prior + df * var) / (prior_runs + df)
    return np.where(df > 0, np.expm1(z * np.sqrt(2 * moderated)), np.nan)


def rounds_of(entry) -> list[np.ndarray]:
    """A cell's samples by round from its entry (samples, sample_rounds[, sample_cycles, turns]),
    as results_db.queries.samples_of gives them."""
    return split_rounds(entry[0], entry[1])


def paired_log_ratios(before: Sequence, after: Sequence) -> list[np.ndarray]:
    """Per round, log(after ÷ before) of the samples two cells timed in the same cycle of that
    round (their entries: samples, sample_rounds, sample_cycles, turns: the run, or the `ab`
    session, whose cycles they are; see Result.sample_cycles and queries.turns_of). Cells of
    different turns, a round where they share no cycle, and a sample whose cycle is -1 (timed
    alone, as an old run's retake was) pair nothing."""
    def by_key(entry) -> dict[tuple[int, int], float]:
        samples, rounds, cycles = (list(entry) + [None, None])[:3]
        if not isinstance(cycles, (list, tuple, np.ndarray)) or samples is None or len(cycles) != len(samples):
            return {}
        rounds = rounds if rounds is not None and len(rounds) == len(samples) else [0] * len(samples)
        return {(int(r), int(c)): float(x) for x, r, c in zip(samples, rounds, cycles) if c >= 0 and x > 0}
    turns = lambda entry: entry[3] if len(entry) > 3 else None  # noqa: E731
    if turns(before) != turns(after):
        return []
    b, a = by_key(before), by_key(after)
    shared = sorted(b.keys() & a.keys())
    out: dict[int, list[float]] = {}
    for key in shared:
        out.setdefault(key[0], []).append(math.log(a[key] / b[key]))
    return [np.array(v) for _, v in sorted(out.items())]


MIN_PAIRS = 3  # fewer cycles shared than this: the two cells are compared unpaired


# From this many rounds on, the rounds' interval is Yuen's trimmed t: an `ab` session's 12, not a
# run's 3 or 5 (from 5 rounds, trimming one off each end left 2 degrees of freedom: about twice
# Student's width where the rounds are well-behaved).
TRIM_FROM_ROUNDS = 10
TRIM = 0.2  # the share of rounds trimmed off each end (Wilcox's usual 20%)


def _round_half_width(round_values: Sequence[float], level: float = LEVEL) -> float:
    """Half-width of a `level` interval of the centre of per-round values (log ratios): Student's t
    of their mean, from TRIM_FROM_ROUNDS rounds on Yuen's t of their 20% trimmed mean (Yuen,
    "The two-sample trimmed t for unequal population variances", Biometrika 1974; Wilcox,
    "Introduction to Robust Estimation and Hypothesis Testing", §4.4), which one round far off
    cannot spread.

    A process's memory layout can set one side's speed for all of that process's life: in an
    `ab` A/A (2026-12-03) one side ran bilinear_full at 8.0 ms a call for a whole round and
    5.1 in the next two, the other side 5.1, 4.8, 4.9. Such an effect is drawn once per round,
    so only the rounds see it, and from 3 of them the bootstrap's spread is a poor guess: with
    a 3% effect per round it held the truth 77-82% of the time on synthetic series, this
    interval 95% (t with R − 1 degrees of freedom, as Kalibera & Jones take the top level's
    interval). But t is the mean's: in a disturbed 12-round A/A one side ran dropout_mask 2.2×
    slower for one round while the other eleven read 0.96-1.05, and t spread ±15% around 1.00.
    Re-judged on five stored 12-round sessions (2026-12-03/04, docs/notes/2026-12-04-yuens-trimmed-t-
    for-the-rounds.md), the trimmed t left 2, 10, 15, 15 and 7 of 110 A/A cells inconclusive where t
    left 2, 13, 30, 33 and 14, holding 1 in 97-99% of them, and found 18 of 20 regressions of one
    thread against two beside a neighbour where t found 19. Zero for fewer than two rounds, where
    the rounds cannot say."""
    values = np.sort(np.asarray(round_values, dtype=float))
    n = len(values)
    if n < 2:
        return 0.0
    trimmed = int(TRIM * n) if n >= TRIM_FROM_ROUNDS else 0
    if not trimmed:
        return float(_sps().t.ppf((1 + level) / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))
    winsorized = np.clip(values, values[trimmed], values[n - trimmed - 1])
    kept = n - 2 * trimmed
    return float(_sps().t.ppf((1 + level) / 2, kept - 1) * winsorized.std(ddof=1) / ((1 - 2 * TRIM) * math.sqrt(n)))


# From this many times further apart than their cycles explain (rounds_apart), a paired cell's rounds
# measured different ratios, not one ratio with noise: on synthetic rounds that differ by their
# cycles' noise alone (normal or t with 3 degrees of freedom, 10 or 40 cycles a round) it is reached
# by 1.5-4% of cells of 3 rounds, 0.2% of 8 and none of 16 (`ab`'s sessions). In an `ab` session on a
# 2-vCPU VM beside a neighbour streaming memory on one core, a second on and a second off
# (2026-12-07, gated_ffn on one thread against two), the rounds of its cells of 5-46 ms read about
# 1.9× or about 1.0×, as the neighbour held its core or not, at 2.7-28 times; the three it left
# inconclusive among them. Of a quiet A/A's 110 cells that hour 11% reached it (a side's process
# slower for a whole round, the one inconclusive cell among them), beside the neighbour none.
ROUNDS_APART = 2.0


def rounds_apart(log_ratios: Sequence[np.ndarray]) -> float:
    """How many times further apart a paired cell's rounds lie than their own cycles explain: the
    standard deviation of the rounds' median log ratios over the standard error such a median has
    from its round's cycles alone (√(π/2)·σ/√n, σ from the cycles' median absolute deviation so that
    a stray cycle does not set it; the root mean square over the rounds). About 1 or less where
    rounds differ by their cycles' noise only; far above, what sets the ratio changed between rounds
    (a side's process, work beside it). NaN with fewer than two rounds of two cycles or more; inf
    where rounds differ and no round's cycles spread at all."""
    rounds = [np.asarray(r, dtype=float) for r in log_ratios if len(r) >= 2]
    if len(rounds) < 2:
        return float("nan")
    medians = np.array([np.median(r) for r in rounds])
    sigma = np.array([1.4826 * np.median(np.abs(r - np.median(r))) for r in rounds])
    explained = math.sqrt(float(np.mean((math.pi / 2) * sigma ** 2 / np.array([len(r) for r in rounds]))))
    between = float(np.std(medians, ddof=1))
    if explained == 0:
        return float("inf") if between > 0 else float("nan")
    return between / explained


def compare_paired(log_ratios: Sequence[np.ndarray], n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL,
                   eq_level: float = EQUIVALENCE_LEVEL) -> Comparison:
    """The ratio (after ÷ before) of two cells timed in turns: exp of the median of their
    per-cycle log ratios, with a 95% interval (`level`; and the equivalence test's 90% one,
    `eq_level`, drawn the same way) from a hierarchical bootstrap, rounds first, then cycles
    within a drawn round (Kalibera & Jones, "Rigorous benchmarking in reasonable time", ISMM 2013:
    resample at every level the variance lives at, the top one first), widened for few rounds as
    `_widened_interval` says, and never narrower than Student's t interval of the
    rounds' median log ratios (`_round_half_width`: Yuen's trimmed t from 10 rounds). Both samples
    of a cycle share the machine's state of that moment, so what drifts between cycles, rounds and
    runs cancels in each log ratio (the randomized multiple interleaved trials of Abedi & Brecht,
    ICPE 2017). The p-value is a Wilcoxon signed-rank test of the round medians' log ratios against
    0 where there are 6 or more rounds, else NaN: the verdict reads the interval alone
    (verdict_paired)."""
    rounds = [np.asarray(r, dtype=float) for r in log_ratios if len(r)]
    if not rounds:
        return Comparison(float("nan"), float("nan"), float("nan"), float("nan"), 0)
    estimate = float(np.median(np.concatenate(rounds)))
    log_boot = bootstrap_medians(rounds, n_boot, np.random.default_rng(seed))
    medians = [float(np.median(r)) for r in rounds]

    def interval(level: float) -> tuple[float, float]:
        lo, hi = _widened_interval(math.exp(estimate), log_boot, len(rounds), level) if np.ptp(log_boot) > 0 else (
            math.exp(estimate), math.exp(estimate))
        half = _round_half_width(medians, level)
        return min(lo, math.exp(estimate - half)), max(hi, math.exp(estimate + half))

    p = float(_sps().wilcoxon(medians).pvalue) if len(medians) >= 6 and np.ptp(medians) > 0 else float("nan")
    return Comparison(math.exp(estimate), *interval(level), p, len(rounds), *interval(eq_level),
                      math.exp(min(medians)), math.exp(max(medians)), rounds_apart(rounds))


def verdict_paired(ratio: float, ci_low: float, ci_high: float, floor: float = FLOOR,
                   words: tuple[str, str] = RUN_WORDS, eq_low: float = float("nan"),
                   eq_high: float = float("nan")) -> str:
    """`words[0]` (slower, regression) when the 95% interval lies above 1 and the ratio beyond
    1 + floor; `words[1]` (faster, improvement) when it lies below 1 and the ratio under
    1 − floor; `no change` when the whole 90% interval (`eq_low`, `eq_high`; the 95% one where
    not given) lies within [1 − floor, 1 + floor], an equivalence test (two one-sided tests at
    5%, as TOST); else `inconclusive`. No rank test besides: a paired interval carries the drift
    it shares."""
    if not all(np.isfinite(v) for v in (ratio, ci_low, ci_high)):
        return INCONCLUSIVE
    if ci_low > 1 and ratio > 1 + floor:
        return words[0]
    if ci_high < 1 and ratio < 1 - floor:
        return words[1]
    return NO_CHANGE if _equivalent(ci_low, ci_high, eq_low, eq_high, floor) else INCONCLUSIVE


# An `ab` session looks at its cells once, halfway through its rounds, and times no further a cell
# whose verdict is known by then at stricter levels: O'Brien & Fleming's boundaries for two equally
# spaced looks ("A multiple testing procedure for clinical trials", Biometrics 1979), a change at
# 0.52% (two-sided; z = 2.80) and each of the equivalence test's one-sided tests at 0.88% (z = 2.37),
# from the joint normal law of the two looks' statistics. A cell stopped at the look is judged by
# `compare` from the rounds it has, at the usual levels, which its stricter interval already met.
# The last look keeps the usual levels rather than O'Brien & Fleming's (4.8% and 4.7%), which
# raises the chance of a false change from 5% to about 5.2%, and of a false `no change` from 5%
# to about 5.3% (normal statistics; the rounds' t intervals are wider).
LOOK_LEVEL = 0.9948
LOOK_EQUIVALENCE_LEVEL = 0.9824


def decided_early(log_ratios: Sequence[np.ndarray], floor: float = FLOOR) -> bool:
    """Whether a cell timed in turns, its per-cycle log ratios by round so far, has a verdict other
    than inconclusive at the look's levels (LOOK_LEVEL, LOOK_EQUIVALENCE_LEVEL): a change
    whose stricter interval excludes 1, or no change whose stricter interval lies within `floor`."""
    c = compare_paired(log_ratios, seed=data_seed(log_ratios), level=LOOK_LEVEL,
                       eq_level=LOOK_EQUIVALENCE_LEVEL)
    return verdict_paired(c.ratio, c.ci_low, c.ci_high, floor, eq_low=c.eq_low, eq_high=c.eq_high) != INCONCLUSIVE


def compare_entries(pairs: Iterable[tuple[Sequence, Sequence]], floor: float = FLOOR, alpha: float = ALPHA,
                    words: tuple[str, str] = RUN_WORDS, n_boot: int = N_BOOT, statistic: str = "median",
                    drift: Sequence[float] | None = None) -> list[dict]:
    """Every (before, after) pair of cell entries (samples, sample_rounds[, sample_cycles, turns])
    compared: paired (compare_paired, verdict_paired) where the two cells took turns in at
    least MIN_PAIRS shared cycles, unpaired (compare_all, of `statistic`) otherwise; `paired`
    says which. An unpaired pair's two sides were timed at different times, so its floor is
    max(floor, its `drift`: how far the cell moves between runs, drift_floors) where one is
    known. VERDICT_COLUMNS, `floor`, `paired` and ROUND_COLUMNS (NaN where unpaired) for each, in order."""
    pairs = list(pairs)
    logs = [paired_log_ratios(b, a) for b, a in pairs]
    is_paired = [sum(len(r) for r in lr) >= MIN_PAIRS for lr in logs]
    drift = np.full(len(pairs), np.nan) if drift is None else np.asarray(drift, dtype=float)
    floors = np.fmax(floor, drift)  # fmax: a cell without a measured drift keeps `floor`
    unpaired = compare_all([(rounds_of(b), rounds_of(a)) for (b, a), p in zip(pairs, is_paired) if not p],
                           floor=[f for f, p in zip(floors, is_paired) if not p], alpha=alpha, words=words,
                           n_boot=n_boot, statistic=statistic)
    found = {i: compare_paired(lr, n_boot=n_boot, seed=data_seed(lr))
             for i, (lr, p) in enumerate(zip(logs, is_paired)) if p}
    adjusted = dict(zip(found, adjust([c.p_value for c in found.values()])))
    out, rest = [], iter(unpaired)
    for i in range(len(pairs)):
        if i not in found:
            out.append({**next(rest), "paired": False, **dict.fromkeys(ROUND_COLUMNS, float("nan"))})
            continue
        c = found[i]
        out.append(dict(ratio=c.ratio, ci_low=c.ci_low, ci_high=c.ci_high, p_value=c.p_value,
                        p_adjusted=float(adjusted[i]), rounds=c.rounds,
                        verdict=verdict_paired(c.ratio, c.ci_low, c.ci_high, floor, words, c.eq_low, c.eq_high),
                        floor=float(floor), paired=True, eq_low=c.eq_low, eq_high=c.eq_high,
                        round_low=c.round_low, round_high=c.round_high, rounds_apart=c.rounds_apart))
    return out


def geomean(ratios: Iterable[float]) -> float:
    values = np.asarray([r for r in ratios if r is not None and np.isfinite(r) and r > 0], dtype=float)
    return float(np.exp(np.log(values).mean())) if len(values) else float("nan")


def exponent_interval(x: Sequence[float], rounds_per_x: Sequence[Sequence[np.ndarray]], n_boot: int = N_BOOT,
                      seed: int = 0) -> tuple[float, float, float]:
    """The growth exponent (slope of log median time against log x) with a 95% CI, bootstrapping
    each size's rounds and samples; (estimate, low, high)."""
    lx = np.log(np.asarray(x, dtype=float))
    if len(lx) < 2 or np.ptp(lx) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    medians = np.array([np.median(np.concatenate([np.asarray(r, float) for r in rounds])) for rounds in rounds_per_x])
    boot = np.column_stack([bootstrap_medians(rounds, n_boot, rng) for rounds in rounds_per_x])  # (B, sizes)
    centred = lx - lx.mean()
    slope = lambda ly: (ly - ly.mean(axis=-1, keepdims=True)) @ centred / (centred @ centred)  # noqa: E731
    estimate = float(slope(np.log(medians)[None, :])[0])
    lo, hi = np.quantile(slope(np.log(boot)), [0.025, 0.975])
    return estimate, float(lo), float(hi)


def median_interval(rounds: Sequence[np.ndarray], n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float, float]:
    """A cell's median with its 95% interval from the hierarchical bootstrap (widened for few
    rounds as in `compare`): (median, low, high)."""
    rounds = [np.asarray(r, dtype=float) for r in rounds if len(r)]
    if not rounds:
        return float("nan"), float("nan"), float("nan")
    median = float(np.median(np.concatenate(rounds)))
    log_boot = np.log(bootstrap_medians(rounds, n_boot, np.random.default_rng(seed)))
    lo, hi = _widened_interval(median, log_boot, len(rounds))
    return median, lo, hi
