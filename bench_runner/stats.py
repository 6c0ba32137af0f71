"""Statistics of timing samples, in one place: the runner, the CLI, the dashboard and
benchmarks/ all call these functions, so a verdict reads the same everywhere.

A cell's samples come in rounds, each measured in a fresh worker process. Samples of
one round are not independent draws of the machine: they share one process's memory
layout, one allocator history, one stretch of machine state. So the uncertainty of a
median comes from a hierarchical bootstrap, rounds first and samples within them, and
a verdict needs its whole confidence interval beyond (or inside) a practical floor.

Torch-free (numpy and scipy), so the dashboard can import it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Collection, Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps



from hadamard_bench.vocabulary import CELL_KEY, STATISTICS

from .defaults import FLOOR

ALPHA = 0.05  # false-discovery rate across the cells compared at once
NOISY_IQR = 0.10  # torch.utils.benchmark's threshold: within-round IQR above 10% of the median
NOISY_ROUND_SPREAD = 0.10  # round medians more than 10% of the median apart
N_BOOT = 1000


# Between two runs (after ÷ before) and between two methods (method ÷ baseline).
RUN_WORDS = ("regression", "improvement")
METHOD_WORDS = ("slower", "faster")
NO_CHANGE, INCONCLUSIVE = "no change", "inconclusive"


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
    """`after` against `before`: the ratio of medians with its bootstrap 95% CI and a rank test."""

    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    rounds: int  # the fewer rounds of the two sides


def _widened_interval(estimate: float, log_boot: np.ndarray, rounds: int) -> tuple[float, float]:
    """The 95% percentile interval of log-scale bootstrap values around `estimate`, widened for
    few rounds: resampling R rounds from R understates the spread between them by (R − 1)/R in
    variance (three rounds cover the truth about 84% of the time, not 95%), so the deviations
    are scaled by √(R / (R − 1))."""
    widen = math.sqrt(rounds / (rounds - 1)) if rounds > 1 else 1.0
    centre = math.log(estimate)
    lo, hi = np.exp(centre + widen * (np.quantile(log_boot, [0.025, 0.975]) - centre))
    return float(lo), float(hi)


def compare(before: Sequence[np.ndarray], after: Sequence[np.ndarray], n_boot: int = N_BOOT,
            seed: int = 0, statistic: str = "median") -> Comparison:
    """Ratio of medians (after ÷ before), its 95% CI by a hierarchical bootstrap of both sides,
    and a two-sided Mann–Whitney U test.

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
    if np.ptp(np.concatenate([pooled_a, pooled_b])) == 0:
        p = 1.0
    else:
        p = float(sps.mannwhitneyu(pooled_a, pooled_b, alternative="two-sided").pvalue)
    return Comparison(ratio, lo, hi, p, rounds)


def adjust(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (NaN stays NaN)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(len(p), np.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = sps.false_discovery_control(p[finite], method="bh")
    return out


def verdict(ci_low: float, ci_high: float, p_adjusted: float, floor: float = FLOOR, alpha: float = ALPHA,
            words: tuple[str, str] = RUN_WORDS) -> str:
    """`regression` (or `slower`) when the whole CI lies above 1 + floor and the rank test is
    significant after adjustment; `improvement` (`faster`) when it lies below 1 − floor;
    `no change` when it lies inside [1 − floor, 1 + floor]; otherwise `inconclusive`."""
    if not (np.isfinite(ci_low) and np.isfinite(ci_high)):
        return INCONCLUSIVE
    significant = np.isfinite(p_adjusted) and p_adjusted < alpha
    if ci_low > 1 + floor and significant:
        return words[0]
    if ci_high < 1 - floor and significant:
        return words[1]
    if ci_low >= 1 - floor and ci_high <= 1 + floor:
        return NO_CHANGE
    return INCONCLUSIVE


VERDICT_COLUMNS = ["ratio", "ci_low", "ci_high", "p_value", "p_adjusted", "rounds", "verdict"]


def compare_all(pairs: Iterable[tuple[Sequence[np.ndarray], Sequence[np.ndarray]]], floor: float = FLOOR,
                alpha: float = ALPHA, words: tuple[str, str] = RUN_WORDS, n_boot: int = N_BOOT,
                statistic: str = "median") -> list[dict]:
    """Every (before, after) pair compared, p-values adjusted together, each with its verdict."""
    found = [compare(b, a, n_boot=n_boot, seed=i, statistic=statistic) for i, (b, a) in enumerate(pairs)]
    adjusted = adjust([c.p_value for c in found])
    return [dict(ratio=c.ratio, ci_low=c.ci_low, ci_high=c.ci_high, p_value=c.p_value, p_adjusted=float(p),
                 rounds=c.rounds, verdict=verdict(c.ci_low, c.ci_high, p, floor, alpha, words))
            for c, p in zip(found, adjusted)]


def rounds_of(entry) -> list[np.ndarray]:
    """A cell's samples by round from its entry (samples, sample_rounds[, sample_cycles, turns]),
    as results_db.queries.samples_of gives them."""
    return split_rounds(entry[0], entry[1])


def paired_log_ratios(before: Sequence, after: Sequence) -> list[np.ndarray]:
    """Per round, log(after ÷ before) of the samples two cells timed in the same cycle of that
    round (their entries: samples, sample_rounds, sample_cycles, turns: the run, or the `ab`
    session, whose cycles they are; see Result.sample_cycles and queries.turns_of). Cells of
    different turns, a round where they share no cycle, and a sample whose cycle is -1 (a
    retake) pair nothing."""
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


def compare_paired(log_ratios: Sequence[np.ndarray], n_boot: int = N_BOOT, seed: int = 0) -> Comparison:
    """The ratio (after ÷ before) of two cells timed in turns: exp of the median of their
    per-cycle log ratios, with a 95% interval from a hierarchical bootstrap, rounds first, then
    cycles within a drawn round (Kalibera & Jones, "Rigorous benchmarking in reasonable time",
    ISMM 2013: resample at every level the variance lives at, the top one first), widened for
    few rounds as `_widened_interval` says. Both samples of a cycle share the machine's state
    of that moment, so what drifts between cycles, rounds and runs cancels in each log ratio
    (the randomized multiple interleaved trials of Abedi & Brecht, ICPE 2017). The p-value is a
    Wilcoxon signed-rank test of the round medians' log ratios against 0 where there are 6 or
    more rounds, else NaN: the verdict reads the interval alone (verdict_paired)."""
    rounds = [np.asarray(r, dtype=float) for r in log_ratios if len(r)]
    if not rounds:
        return Comparison(float("nan"), float("nan"), float("nan"), float("nan"), 0)
    estimate = float(np.median(np.concatenate(rounds)))
    log_boot = bootstrap_medians(rounds, n_boot, np.random.default_rng(seed))
    lo, hi = _widened_interval(math.exp(estimate), log_boot, len(rounds)) if np.ptp(log_boot) > 0 else (
        math.exp(estimate), math.exp(estimate))
    medians = [float(np.median(r)) for r in rounds]
    p = float(sps.wilcoxon(medians).pvalue) if len(medians) >= 6 and np.ptp(medians) > 0 else float("nan")
    return Comparison(math.exp(estimate), lo, hi, p, len(rounds))


def verdict_paired(ratio: float, ci_low: float, ci_high: float, floor: float = FLOOR,
                   words: tuple[str, str] = RUN_WORDS) -> str:
    """`words[0]` (slower, regression) when the interval lies above 1 and the ratio beyond
    1 + floor; `words[1]` (faster, improvement) when it lies below 1 and the ratio under
    1 − floor; `no change` when the whole interval lies within [1 − floor, 1 + floor], an
    equivalence test (two one-sided tests, as TOST, at the interval's level); else
    `inconclusive`. No rank test besides: a paired interval carries the drift it shares."""
    if not all(np.isfinite(v) for v in (ratio, ci_low, ci_high)):
        return INCONCLUSIVE
    if ci_low > 1 and ratio > 1 + floor:
        return words[0]
    if ci_high < 1 and ratio < 1 - floor:
        return words[1]
    if ci_low >= 1 - floor and ci_high <= 1 + floor:
        return NO_CHANGE
    return INCONCLUSIVE


def compare_entries(pairs: Iterable[tuple[Sequence, Sequence]], floor: float = FLOOR, alpha: float = ALPHA,
                    words: tuple[str, str] = RUN_WORDS, n_boot: int = N_BOOT, statistic: str = "median") -> list[dict]:
    """Every (before, after) pair of cell entries (samples, sample_rounds[, sample_cycles, turns])
    compared: paired (compare_paired, verdict_paired) where the two cells took turns in at
    least MIN_PAIRS shared cycles, unpaired (compare_all, of `statistic`) otherwise; `paired`
    says which. VERDICT_COLUMNS and `paired` for each, in order."""
    pairs = list(pairs)
    logs = [paired_log_ratios(b, a) for b, a in pairs]
    is_paired = [sum(len(r) for r in lr) >= MIN_PAIRS for lr in logs]
    unpaired = compare_all([(rounds_of(b), rounds_of(a)) for (b, a), p in zip(pairs, is_paired) if not p],
                           floor=floor, alpha=alpha, words=words, n_boot=n_boot, statistic=statistic)
    found = {i: compare_paired(lr, n_boot=n_boot, seed=i) for i, (lr, p) in enumerate(zip(logs, is_paired)) if p}
    adjusted = dict(zip(found, adjust([c.p_value for c in found.values()])))
    out, rest = [], iter(unpaired)
    for i in range(len(pairs)):
        if i not in found:
            out.append({**next(rest), "paired": False})
            continue
        c = found[i]
        out.append(dict(ratio=c.ratio, ci_low=c.ci_low, ci_high=c.ci_high, p_value=c.p_value,
                        p_adjusted=float(adjusted[i]), rounds=c.rounds,
                        verdict=verdict_paired(c.ratio, c.ci_low, c.ci_high, floor, words), paired=True))
    return out


CELL = list(CELL_KEY)  # what identifies a cell, as results_db stores it


def _unsettled(row: pd.Series, side: str) -> tuple[int, int]:
    """(rounds the side's cell was timed unsettled in, its rounds); (0, rounds) where not recorded."""
    labels = row[f"sample_rounds_{side}"]
    rounds = len(set(labels)) if labels is not None and len(labels) else 1
    count = row.get(f"unsettled_rounds_{side}")
    return (int(count) if count is not None and np.isfinite(count) else 0), rounds


def comparison_table(before: pd.DataFrame, after: pd.DataFrame, floor: float = FLOOR,
                     words: tuple[str, str] = RUN_WORDS, on: Sequence[str] = CELL,
                     statistic: str = "median", spelled_runs: Iterable[int] = ()) -> pd.DataFrame:
    """One row per cell in both frames (with `samples` and `sample_rounds` columns, as
    results_db.queries.samples_frame gives them), with before_s, after_s and VERDICT_COLUMNS,
    and `unsettled`: which side was measured in a slow spell of its cores, if either.

    A side was, for a cell, when the cell still holds a round timed unsettled (bench_runner.settle:
    one its run could neither wait out nor retake), or when the cell ran on a CPU in one of
    `spelled_runs` (spelled_runs: runs a spell outlasted). Such a spell slows a whole stretch of
    the machine's time, the rounds the probe passed included: on 2026-11-29 a run left 77 of its
    330 cell-rounds unsettled after retakes, and three cells with one unsettled round of three
    each were slower in all three rounds than in the next run (their medians by 12–36%), so
    `compare` called them improvements. A spell only adds time, so it can fake a regression when
    it slowed the after side and an improvement when it slowed the before side: such a verdict is
    held `inconclusive`, since it would not survive measuring again. A change against the spell's
    direction stands (it is understated)."""
    merged = before.merge(after, on=list(on), suffixes=("_before", "_after"))
    found = compare_entries([(_entry(r, "before"), _entry(r, "after")) for _, r in merged.iterrows()],
                            floor=floor, words=words, statistic=statistic)
    table = merged[list(on)].copy()
    table["before_s"] = [float(np.median(s)) if len(s) else np.nan for s in merged["samples_before"]]
    table["after_s"] = [float(np.median(s)) if len(s) else np.nan for s in merged["samples_after"]]
    table = pd.concat([table, pd.DataFrame(found, columns=[*VERDICT_COLUMNS, "paired"], index=table.index)], axis=1)
    spelled_runs = set(spelled_runs)
    told, slowed = [], {"before": [], "after": []}
    for _, row in merged.iterrows():
        said = []
        for side in slowed:
            bad, n = _unsettled(row, side)
            run = row.get(f"run_id_{side}", row.get("run_id"))
            slowed[side].append(cell_in_spell(bad, run, row.get("device"), spelled_runs))
            if bad:
                said.append(f"{side} {bad} of {n}")
            elif slowed[side][-1]:
                said.append(f"{side}: run {run}")
        told.append(", ".join(said))
    table["unsettled"] = told
    # A paired cell's two sides took turns: a spell slowed both alike, and holds nothing.
    unpaired = ~table["paired"].astype(bool)
    table["verdict"] = hold_spelled(table["verdict"], pd.Series(slowed["before"], index=table.index) & unpaired,
                                    pd.Series(slowed["after"], index=table.index) & unpaired, words)
    return table


def _entry(row: pd.Series, side: str) -> tuple:
    """One side of a merged row as compare_entries takes it."""
    return (row[f"samples_{side}"], row[f"sample_rounds_{side}"], row.get(f"sample_cycles_{side}"),
            row.get(f"turns_{side}"))


def cell_in_spell(unsettled_rounds, run_id, device: str, spelled_runs: Collection[int]) -> bool:
    """Whether a cell was measured in a slow spell of its cores: it still holds a round timed
    unsettled, or it ran on a CPU in a run the spell outlasted (see comparison_table)."""
    unsettled = unsettled_rounds is not None and np.isfinite(unsettled_rounds) and unsettled_rounds > 0
    return bool(unsettled or (device == "cpu" and run_id in spelled_runs))


def hold_spelled(verdicts: Iterable[str], before_slowed: Iterable[bool], after_slowed: Iterable[bool],
                 words: tuple[str, str] = RUN_WORDS) -> list[str]:
    """Verdicts with what a slow spell could have made held `inconclusive`: a spell only adds time,
    so a `words[0]` (regression, slower) whose after side was measured in one, and a `words[1]`
    (improvement, faster) whose before side was."""
    return [INCONCLUSIVE if (v == words[0] and after) or (v == words[1] and before) else v
            for v, before, after in zip(verdicts, before_slowed, after_slowed)]


def interval_coverage(table: pd.DataFrame) -> float:
    """The share of compared cells whose interval holds 1 (NaN when none has one). Between two
    runs of the same code nothing changed, so honest 95% intervals hold 1 for about 95% of the
    cells; far fewer means the intervals are narrower than what moves between runs, and the
    verdicts they give will not survive measuring again."""
    known = table.dropna(subset=["ci_low", "ci_high"])
    if known.empty:
        return float("nan")
    return float(((known["ci_low"] <= 1) & (known["ci_high"] >= 1)).mean())


def interval_half_width(table: pd.DataFrame) -> pd.Series:
    """Each interval's half-width as a share of the ratio (the geometric mean of ci_high ÷ ratio
    and ratio ÷ ci_low, less 1): a cell can be `no change` only when its change and this fit
    inside the floor together."""
    return np.sqrt(table["ci_high"] / table["ci_low"]) - 1


def inconclusive_note(table: pd.DataFrame, floor: float = FLOOR) -> str | None:
    """Why the `inconclusive` cells of a comparison are, in its own figures: a cell is `no change`
    only when its change and its interval's half-width fit inside the floor together, so the
    median half-width says how small a change must be to be told from none (None when no cell is
    inconclusive). The same sentence for `compare` and the Diff page."""
    count = int((table["verdict"] == INCONCLUSIVE).sum())
    if not count:
        return None
    width = float(interval_half_width(table).median())
    text = (f"{count} of {len(table)} cells are inconclusive: a cell is `no change` only when its whole 95% "
            f"interval lies within ±{floor:.0%}")
    if not np.isfinite(width):
        return text + "; these cells have no interval (too few samples)"
    room = floor - width
    text += (f", and the intervals here are a median ±{width:.1%} wide, so only a measured change under about "
             f"{room:.1%} can be told from none" if room > 0.001 else
             f", and the intervals here are a median ±{width:.1%} wide: as wide as the floor")
    return text + ". More rounds on both sides narrow the intervals; a wider floor (`--threshold`) asks less of them"


def drift_ratios(states: pd.DataFrame, before_runs: Sequence[int], after_runs: Sequence[int]) -> dict[str, float]:
    """How much the machine itself changed: after ÷ before of the drift controls' medians, from
    the rounds' states (results_db.queries.round_states)."""
    out = {}
    states = states[regular_rounds(states)]  # a retake pass waited for calm: it would flatter the machine
    for column in [c for c in states.columns if c.startswith("drift_")]:
        b = states.loc[states["run_id"].isin(list(before_runs)), column].dropna()
        a = states.loc[states["run_id"].isin(list(after_runs)), column].dropna()
        if len(a) and len(b):
            out[column.removeprefix("drift_").removesuffix("_s").replace("_", " ")] = float(a.median() / b.median())
    return out


UNSETTLED_WARN = 0.10  # a side with more of its cell-rounds timed unsettled gets a caveat


def regular_rounds(states: pd.DataFrame) -> pd.Series:
    """Which rows of round states are a run's rounds, not its retake passes (bench_runner.sweep)."""
    if "retake" not in states:
        return pd.Series(True, index=states.index)
    return states["retake"].isna()


def retaken(states: pd.DataFrame, runs: Sequence[int]) -> int:
    """Cell-rounds of `runs` that retake passes (bench_runner.sweep) timed again settled."""
    if states.empty or "retaken" not in states:
        return 0
    return int(states.loc[states["run_id"].isin(list(runs)), "retaken"].fillna(0).sum())


def left_unsettled(states: pd.DataFrame, runs: Sequence[int]) -> int:
    """Cell-rounds of `runs` timed while the cores were still slow to work together and not
    retaken settled afterwards, from the rounds' states (bench_runner.settle)."""
    if states.empty or "settle_cells_unsettled" not in states:
        return 0
    mine = states[states["run_id"].isin(list(runs))]
    return int(mine.loc[regular_rounds(mine), "settle_cells_unsettled"].fillna(0).sum()) - retaken(mine, runs)


def unsettled_share(states: pd.DataFrame, runs: Sequence[int]) -> tuple[int, int]:
    """(left_unsettled, cell-rounds measured) over `runs`, counting only rounds that settled;
    (0, 0) where no round settled."""
    if states.empty or "settle_cells_unsettled" not in states:
        return 0, 0
    mine = states[states["run_id"].isin(list(runs))]
    rounds = mine[regular_rounds(mine) & mine["settle_cells_unsettled"].notna()]
    return left_unsettled(mine, runs), int(rounds["cells"].sum())


def retake_text(states: pd.DataFrame, run_id: int) -> str | None:
    """`12 of the 40 cell-rounds timed in a slow spell were retaken settled, in 2 passes`, for a
    run whose spells called for retakes; None otherwise."""
    mine = states[states["run_id"] == run_id] if not states.empty else states
    if mine.empty or "retake" not in mine or not mine["retake"].notna().any():
        return None
    rounds = mine[regular_rounds(mine)]
    spelled = int(rounds["settle_cells_unsettled"].fillna(0).sum()) if "settle_cells_unsettled" in rounds else 0
    passes = mine[mine["retake"].notna()]
    calm = "" if passes["retake_cells"].iloc[-1] else "; the last pass found the spell still on after " \
        f"{passes['retake_calm_waited_s'].iloc[-1]:.0f} s and retook nothing"
    return (f"{retaken(mine, [run_id])} of the {spelled} cell-rounds timed in a slow spell were retaken settled, "
            f"in {len(passes)} pass{'es' * (len(passes) > 1)}{calm}")


def _outlasted(share: tuple[int, int]) -> bool:
    """Whether (cell-rounds left unsettled, cell-rounds measured) is more than UNSETTLED_WARN:
    a spell of the cores outlasted what the runs could wait and retake."""
    bad, total = share
    return bool(total) and bad / total > UNSETTLED_WARN


def runs_in_spells(states: pd.DataFrame, runs: Iterable[int]) -> list[int]:
    """The runs a spell of their cores outlasted (_outlasted): comparison_table holds what it
    could fake."""
    return [int(run) for run in runs if _outlasted(unsettled_share(states, [run]))]


def settling_caveat(states: pd.DataFrame, sides: dict[str, Sequence[int]]) -> str | None:
    """A sentence when a side timed more than UNSETTLED_WARN of its cell-rounds unsettled: its
    cells of small threaded steps may have run up to 1.7× slower for the machine's sake, over
    stretches longer than the rounds, which the intervals cannot see. None otherwise."""
    counts = {name: unsettled_share(states, runs) for name, runs in sides.items()}
    if not any(_outlasted(share) for share in counts.values()):
        return None
    told = ", ".join(f"{name} {bad} of {total}" for name, (bad, total) in counts.items() if total)
    return (f"cell-rounds timed while the cores were slow to work together (unsettled): {told}; a change in a "
            f"threaded CPU cell may then be the machine's, not the code's: measure again before trusting it")


def drift_text(ratios: dict[str, float]) -> str:
    """`cpu copy 0.982×, cpu matmul 1.003×`."""
    return ", ".join(f"{name} {ratio:.3f}×" for name, ratio in sorted(ratios.items()))


def geomean(ratios: Iterable[float]) -> float:
    values = np.asarray([r for r in ratios if r is not None and np.isfinite(r) and r > 0], dtype=float)
    return float(np.exp(np.log(values).mean())) if len(values) else float("nan")


def explain_verdicts(floor: float = FLOOR) -> str:
    """One paragraph for a page or a table footer: what each verdict means."""
    return (f"Ratio of medians with a 95% interval from a hierarchical bootstrap (rounds, then samples "
            f"within them). A change is called only when the whole interval lies beyond ±{floor:.0%} and a "
            f"Mann–Whitney U test stays significant after Benjamini–Hochberg across the cells compared; "
            f"`no change` when the whole interval lies within ±{floor:.0%}; `inconclusive` when it straddles "
            f"that floor: measure again with more rounds to decide. A regression (an improvement) is also held "
            f"`inconclusive` when the after (before) side still holds a round timed while the cores were slow "
            f"to work together, or ran on a CPU in a run such a spell outlasted, since a spell only adds time "
            f"(column `unsettled`).")


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


def _divergence(z: np.ndarray, min_size: int) -> tuple[int, float]:
    """E-divisive's split statistic (Matteson & James 2014, α = 1) at its best split of `z`:
    (index where the new level starts, Q there). As in the paper, the segment after the split
    may end before the series does (z[:τ] against z[τ:κ]), so a level that rises and falls
    back is found too."""
    n = len(z)
    distances = np.abs(z[:, None] - z[None, :])
    s = np.zeros((n + 1, n + 1))
    s[1:, 1:] = distances.cumsum(0).cumsum(1)
    block = lambda a, b, c, d: s[b, d] - s[a, d] - s[b, c] + s[a, c]  # noqa: E731 -- sum of distances[a:b, c:d]
    tau, kappa = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    valid = (tau >= min_size) & (kappa - tau >= min_size)
    tau, kappa = tau[valid], kappa[valid]
    m = kappa - tau
    energy = (2 * block(0, tau, tau, kappa) / (tau * m) - block(0, tau, 0, tau) / (tau * (tau - 1))
              - block(tau, kappa, tau, kappa) / (m * (m - 1)))
    q = tau * m / kappa * energy
    best = int(np.argmax(q))
    return int(tau[best]), float(q[best])


def change_points(values: Sequence[float], alpha: float = ALPHA, floor: float = FLOOR, permutations: int = 199,
                  min_size: int = 2, seed: int = 0,
                  rounds: Sequence[Sequence[np.ndarray]] | None = None) -> list[int]:
    """Indices where a new level starts in a series of run medians. E-divisive means on the log
    medians finds the best split; it is kept when it is significant and the two sides' medians
    differ by more than the practical floor, then each side is searched again.

    Significance: with each run's rounds given (`rounds`, one list per value), the split is
    judged by `compare` on the rounds pooled on either side, so the uncertainty of every run
    counts and even five runs can show a step; without them, by a permutation test of the
    split statistic (which needs a longer series: with five values its p never falls below
    0.05). Seeded: the same history always gives the same change points."""
    z = np.log(np.asarray(values, dtype=float))
    rng = np.random.default_rng(seed)
    found: list[int] = []
    pending = [(0, len(z))]
    while pending:
        start, end = pending.pop()
        segment = z[start:end]
        if len(segment) < 2 * min_size:
            continue
        split, q = _divergence(segment, min_size)
        step = abs(np.median(segment[split:]) - np.median(segment[:split]))
        if step <= math.log(1 + floor):
            continue
        if rounds is not None:
            before = [r for run in rounds[start:start + split] for r in run]
            after = [r for run in rounds[start + split:end] for r in run]
            c = compare(before, after, seed=seed)
            significant = verdict(c.ci_low, c.ci_high, c.p_value, floor, alpha) in RUN_WORDS
        else:
            beaten = sum(_divergence(rng.permutation(segment), min_size)[1] >= q for _ in range(permutations))
            significant = (beaten + 1) / (permutations + 1) < alpha
        if significant:
            found.append(start + split)
            pending += [(start, start + split), (start + split, end)]
    return sorted(found)
