"""The statistics on synthetic samples whose answers are known."""

import numpy as np
import pytest

from bench_runner import comparison, stats, step_detect, wording
from hadamard_bench.vocabulary import METHOD_WORDS


def cell(rng, median=1e-3, rounds=3, samples=20, round_sd=0.03, sample_sd=0.02):
    """Rounds of timings: each round's level drawn around `median` (a process's own state),
    samples log-normal around that level."""
    out = []
    for _ in range(rounds):
        level = median * np.exp(rng.normal(0, round_sd))
        out.append(level * np.exp(rng.normal(0, sample_sd, samples)))
    return out


def test_summary_separates_spread_within_and_between_rounds():
    steady = stats.summarize([1.0, 1.01, 0.99, 1.0, 1.0, 1.01, 0.99, 1.0], [0, 0, 0, 0, 1, 1, 1, 1])
    assert steady["rounds"] == 2 and steady["time_median_s"] == pytest.approx(1.0)
    assert steady["round_spread"] == pytest.approx(0.0) and steady["noisy"] == 0.0
    apart = stats.summarize([1.0, 1.0, 1.0, 1.3, 1.3, 1.3], [0, 0, 0, 1, 1, 1])
    assert apart["round_spread"] == pytest.approx(0.3 / 1.15) and apart["noisy"] == 1.0
    assert apart["time_iqr_s"] == pytest.approx(0.0)  # each round alone is perfectly steady
    legacy = stats.summarize([1.0, 2.0, 3.0])  # no round labels: one round
    assert legacy["rounds"] == 1 and legacy["round_spread"] == 0.0


def test_bootstrap_is_hierarchical_and_reproducible():
    rounds = [np.full(10, 1.0), np.full(10, 2.0)]
    a = stats.bootstrap_medians(rounds, 2000, np.random.default_rng(1))
    b = stats.bootstrap_medians(rounds, 2000, np.random.default_rng(1))
    assert np.array_equal(a, b)
    # Drawing whole rounds: a quarter of the resamples hold only the fast round, a quarter only the slow one.
    assert np.mean(a == 1.0) == pytest.approx(0.25, abs=0.04) and np.mean(a == 2.0) == pytest.approx(0.25, abs=0.04)
    uneven = stats.bootstrap_medians([np.array([1.0]), np.arange(1.0, 30.0)], 500)
    assert np.isfinite(uneven).all()


def test_a_cells_interval_does_not_depend_on_the_cells_beside_it():
    """The bootstrap is seeded from the cell's own samples (stats.data_seed): the same pair gives
    the same interval alone, first or last among others, unpaired and paired alike."""
    rng = np.random.default_rng(16)
    pair = (cell(rng, samples=7, round_sd=0.05), cell(rng, samples=7, round_sd=0.05))
    others = [(cell(rng), cell(rng)) for _ in range(4)]
    labels = lambda rounds: np.repeat(range(len(rounds)), [len(r) for r in rounds])  # noqa: E731
    entry = lambda rounds: (np.concatenate(rounds), labels(rounds))  # noqa: E731
    intervals = lambda found: (found["ci_low"], found["ci_high"])  # noqa: E731
    alone = stats.compare_all([pair])[0]
    assert intervals(stats.compare_all(others + [pair])[-1]) == intervals(alone)
    assert intervals(stats.compare_all([pair] + others)[0]) == intervals(alone)
    # Paired: two cells that took turns, cycle numbers given, in one run (turns 1).
    paired = lambda b, a: tuple((*entry(r), np.tile(range(7), len(r)), 1) for r in (b, a))  # noqa: E731
    both = [paired(*p) for p in others]
    alone = stats.compare_entries([paired(*pair)])[0]
    assert alone["paired"] and intervals(stats.compare_entries(both + [paired(*pair)])[-1]) == intervals(alone)
    # A different draw of the same cell is another bootstrap, not a shifted copy of this one.
    assert stats.data_seed(pair[0], pair[1]) != stats.data_seed(pair[1], pair[0])


@pytest.mark.parametrize("low, high, p, expected", [
    (1.10, 1.30, 0.001, "regression"),
    (1.10, 1.30, 0.20, "inconclusive"),  # the rank test does not back it
    (0.70, 0.90, 0.001, "improvement"),
    (0.97, 1.04, 0.001, "no change"),  # significant but inside the floor: no practical change
    (1.02, 1.09, 0.001, "inconclusive"),  # straddles the floor
    (float("nan"), 1.0, 0.5, "inconclusive"),
])
def test_verdicts(low, high, p, expected):
    assert stats.verdict(low, high, p) == expected
    if expected in stats.RUN_WORDS:
        assert stats.verdict(low, high, p, words=METHOD_WORDS) == \
            METHOD_WORDS[stats.RUN_WORDS.index(expected)]


def test_no_change_reads_the_90_percent_interval():
    # A 95% interval past the floor, its 90% interval within it: equivalent at 5% (two one-sided
    # tests), though not at 2.5%; a change still needs the 95% interval.
    assert stats.verdict(0.96, 1.06, 0.5, eq_low=0.97, eq_high=1.045) == "no change"
    assert stats.verdict(0.96, 1.06, 0.5) == "inconclusive"
    assert stats.verdict(0.96, 1.06, 0.5, eq_low=0.97, eq_high=1.055) == "inconclusive"
    assert stats.verdict_paired(1.0, 0.96, 1.06, eq_low=0.97, eq_high=1.045) == "no change"
    assert stats.verdict_paired(1.07, 1.04, 1.10, eq_low=1.05, eq_high=1.09) == "regression"
    rng = np.random.default_rng(4)
    c = stats.compare(cell(rng), cell(rng))
    assert c.ci_low < c.eq_low < c.ratio < c.eq_high < c.ci_high
    found = stats.compare_all([(cell(rng), cell(rng))])[0]
    assert found["eq_low"] > found["ci_low"] and found["eq_high"] < found["ci_high"]


@pytest.mark.parametrize("paired", [True, False])
def test_at_the_floor_no_change_is_said_at_most_5_percent_of_the_time(paired):
    """The equivalence test's size: where the true ratio is the floor itself (1.05), `no change`
    is wrong, and two one-sided tests at 5% say it at most 5% of the time; at a true 1.0 (an A/A
    as wide) most of the time."""
    rng = np.random.default_rng(3)
    said = {}
    for true in (1.05, 1.0):
        shift = np.log(true)
        if paired:  # twelve rounds of 20 cycles, each round's ratio off by 2%, each cycle by 2%
            found = [stats.compare_paired([rng.normal(shift + rng.normal(0, 0.02), 0.02, 20) for _ in range(12)],
                                          seed=i) for i in range(300)]
            verdicts = [stats.verdict_paired(c.ratio, c.ci_low, c.ci_high, eq_low=c.eq_low, eq_high=c.eq_high)
                        for c in found]
        else:  # five rounds a side, 1% between rounds
            verdicts = [f["verdict"] for f in stats.compare_all(
                [(cell(rng, rounds=5, round_sd=0.01), [r * true for r in cell(rng, rounds=5, round_sd=0.01)])
                 for _ in range(300)])]
        said[true] = np.mean(np.array(verdicts) == "no change")
    assert said[1.05] <= 0.05 and said[1.0] >= 0.6, said


def test_benjamini_hochberg_matches_the_textbook():
    p = [0.01, 0.04, 0.03, 0.005, float("nan")]
    adjusted = stats.adjust(p)
    assert adjusted[:4] == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert np.isnan(adjusted[4])


def test_aa_draws_call_a_change_at_most_at_the_nominal_rate():
    rng = np.random.default_rng(7)
    pairs = [(cell(rng), cell(rng)) for _ in range(300)]
    found = stats.compare_all(pairs)
    changed = sum(f["verdict"] in stats.RUN_WORDS for f in found)
    assert changed / len(found) <= stats.ALPHA
    # The ratio's interval covers the truth (1) for nearly every cell.
    covered = np.mean([f["ci_low"] <= 1 <= f["ci_high"] for f in found])
    assert covered >= 0.9


def test_a_1_3x_shift_is_found():
    rng = np.random.default_rng(8)
    pairs = [(cell(rng), cell(rng, median=1.3e-3)) for _ in range(200)]
    found = stats.compare_all(pairs)
    assert np.mean([f["verdict"] == "regression" for f in found]) >= 0.95
    assert np.median([f["ratio"] for f in found]) == pytest.approx(1.3, rel=0.03)
    faster = stats.compare_all([(b, a) for a, b in pairs[:50]], words=METHOD_WORDS)
    assert all(f["verdict"] in ("faster", "inconclusive") for f in faster)
    assert np.mean([f["verdict"] == "faster" for f in faster]) >= 0.95


def test_one_round_per_side_gives_a_narrow_interval_and_says_so():
    rng = np.random.default_rng(9)
    found = stats.compare(cell(rng, rounds=1), cell(rng, rounds=1))
    assert found.rounds == 1


def test_the_growth_exponent_and_its_interval():
    rng = np.random.default_rng(3)
    x = np.array([256, 512, 1024, 2048, 4096])
    for slope in (1.0, 2.0):
        rounds = [cell(rng, median=1e-6 * n**slope, round_sd=0.02) for n in x]
        estimate, low, high = stats.exponent_interval(x, rounds)
        assert estimate == pytest.approx(slope, abs=0.05)
        assert low <= slope <= high and high - low < 0.2


def test_comparison_table_merges_cells_and_keeps_their_keys():
    import pandas as pd

    rng = np.random.default_rng(4)
    rows = []
    for side, factor in (("before", 1.0), ("after", 2.0)):
        for method in ("a", "b"):
            rounds = cell(rng, median=1e-3 * (factor if method == "a" else 1.0))
            rows.append(dict(side=side, run_id=1 if side == "before" else 2, benchmark="x", method=method,
                             backend="eager", device="cpu", dtype="float32", mode="forward", size="n=1",
                             samples=[v for r in rounds for v in r],
                             sample_rounds=[k for k, r in enumerate(rounds) for _ in r]))
    frame = pd.DataFrame(rows)
    table = comparison.comparison_table(frame[frame["side"] == "before"], frame[frame["side"] == "after"])
    verdicts = table.set_index("method")["verdict"].to_dict()
    assert verdicts["a"] == "regression" and verdicts["b"] in ("no change", "inconclusive")
    assert stats.geomean(table["ratio"]) == pytest.approx(np.sqrt(2), rel=0.05)


def test_the_tenth_percentile_ignores_slow_disturbances_the_median_does_not():
    # Two runs of one steady cell; in the second, 60% of the calls were slowed 1.5× by a neighbour.
    rng = np.random.default_rng(11)
    steady = [1e-3 * np.exp(rng.normal(0, 0.01, 40)) for _ in range(3)]
    disturbed = []
    for _ in range(3):
        r = 1e-3 * np.exp(rng.normal(0, 0.01, 40))
        r[:24] *= 1.5
        disturbed.append(r)
    assert stats.compare(steady, disturbed).ratio > 1.1
    p10 = stats.compare(steady, disturbed, statistic="p10")
    assert p10.ratio == pytest.approx(1.0, abs=0.03) and p10.ci_low <= 1.0 <= p10.ci_high


@pytest.mark.parametrize("quantile", [0.5, 0.1])
def test_the_fast_bootstrap_reads_each_resample_at_its_own_rank(quantile):
    # Rounds of unequal length: the result must equal numpy's quantile of each resample's values.
    rng = np.random.default_rng(0)
    rounds = [rng.random(k) for k in (5, 9, 12)]
    fast = stats.bootstrap_medians(rounds, 300, np.random.default_rng(1), quantile)
    draw = np.random.default_rng(1)
    chosen = draw.integers(0, 3, size=(300, 3))
    lengths = np.array([5, 9, 12])
    picks = (draw.random((300, 3, 12)) * lengths[chosen][..., None]).astype(int)
    expected = [np.quantile(np.concatenate([rounds[c][picks[b, i, :lengths[c]]] for i, c in enumerate(chosen[b])]),
                            quantile) for b in range(300)]
    assert fast == pytest.approx(expected)


@pytest.mark.slow  # 400 searches; the fast tier keeps the change-point tests below
def test_a_planted_step_is_found_at_its_run_and_stationary_noise_rarely_gives_one():
    rng = np.random.default_rng(5)
    found_at_step, spurious = 0, 0
    for i in range(200):
        step = np.r_[np.ones(6), np.full(4, 1.3)] * np.exp(rng.normal(0, 0.03, 10))
        found_at_step += step_detect.change_points(step, seed=i) == [6]
        spurious += bool(step_detect.change_points(np.exp(rng.normal(0, 0.03, 10)), seed=i))
    assert found_at_step / 200 >= 0.95
    assert spurious / 200 <= 0.05


def test_change_points_ignore_steps_below_the_floor_and_find_two():
    flat_but_tiny = np.r_[np.ones(8), np.full(8, 1.02)]
    assert step_detect.change_points(flat_but_tiny) == []  # real, but under 5%: no practical change
    two = np.r_[np.ones(6), np.full(6, 1.5), np.full(6, 1.0)] * np.exp(np.random.default_rng(2).normal(0, 0.01, 18))
    assert step_detect.change_points(two) == [6, 12]


def test_with_their_rounds_five_runs_are_enough_to_place_a_step():
    rng = np.random.default_rng(6)
    placed, spurious = 0, 0
    for i in range(100):
        steady = [cell(rng, round_sd=0.02) for _ in range(5)]
        stepped = steady[:3] + [cell(rng, median=1.3e-3, round_sd=0.02) for _ in range(2)]
        medians = lambda runs: [np.median(np.concatenate(r)) for r in runs]  # noqa: E731
        placed += step_detect.change_points(medians(stepped), rounds=stepped, seed=i) == [3]
        spurious += bool(step_detect.change_points(medians(steady), rounds=steady, seed=i))
    assert placed >= 95 and spurious <= 5


def test_a_change_a_spell_could_have_faked_is_held_inconclusive():
    import pandas as pd

    rng = np.random.default_rng(5)
    rows = []
    # (method, after ÷ before, rounds unsettled before, after); None: not recorded
    planted = [("settled", 1.3, 0, 0), ("after one of three", 1.3, 0, 1), ("after two of three", 1.3, 0, 2),
               ("before two of three", 1.3, 2, 0), ("improvement, before two", 0.7, 2, 0),
               ("improvement, after two", 0.7, 0, 2), ("unknown", 1.3, None, None)]
    for side in ("before", "after"):
        for method, factor, unsettled_before, unsettled_after in planted:
            rounds = cell(rng, median=1e-3 * (factor if side == "after" else 1.0))
            unsettled = unsettled_before if side == "before" else unsettled_after
            rows.append(dict(side=side, run_id=1 if side == "before" else 2, benchmark="x", method=method,
                             backend="eager", device="cpu", dtype="float32", mode="forward", size="n=1",
                             samples=[v for r in rounds for v in r],
                             sample_rounds=[k for k, r in enumerate(rounds) for _ in r],
                             unsettled_rounds=np.nan if unsettled is None else unsettled))
    frame = pd.DataFrame(rows)
    table = comparison.comparison_table(frame[frame["side"] == "before"], frame[frame["side"] == "after"]).set_index("method")
    verdicts = table["verdict"].to_dict()
    assert verdicts == {
        "settled": "regression", "unknown": "regression",  # recorded before settling kept count
        "after one of three": "inconclusive",  # a spell the run could not wait out slowed a stretch of it
        "after two of three": "inconclusive",  # a slowed after side can fake a regression
        "before two of three": "regression",  # a slowed before side only understates one
        "improvement, before two": "inconclusive",  # ... and can fake an improvement
        "improvement, after two": "improvement"}
    assert table.loc["after two of three", "unsettled"] == "after 2 of 3"
    assert table.loc["before two of three", "unsettled"] == "before 2 of 3" and table.loc["settled", "unsettled"] == ""
    assert table.loc["after two of three", "ratio"] == pytest.approx(1.3, rel=0.05)  # the figures stay as measured
    # A run a spell outlasted (comparison.runs_in_spells) holds what the spell could fake in all its CPU cells.
    before, after = frame[frame["side"] == "before"], frame[frame["side"] == "after"]
    held = comparison.comparison_table(before, after, spelled_runs=[2]).set_index("method")
    assert held.loc["settled", "verdict"] == "inconclusive" and held.loc["settled", "unsettled"] == "after: run 2"
    assert held.loc["improvement, after two", "verdict"] == "improvement"  # a spell only understates it
    on_gpu = comparison.comparison_table(before.assign(device="cuda"), after.assign(device="cuda"),
                                    spelled_runs=[2]).set_index("method")
    assert on_gpu.loc["settled", "verdict"] == "regression"  # a spell of the CPU's cores
    assert comparison.comparison_table(before, after, spelled_runs=[1]).set_index("method").loc[
        "settled", "verdict"] == "regression"  # the before side's spell cannot fake a regression


def test_coverage_tells_honest_intervals_from_runs_that_drift_more_than_their_rounds_show():
    import pandas as pd

    rng = np.random.default_rng(11)
    honest = pd.DataFrame(stats.compare_all([(cell(rng), cell(rng)) for _ in range(200)]))
    # Each "after" run also moved as a whole, by more than its rounds spread: nothing inside it shows that.
    drifted = pd.DataFrame(stats.compare_all([(cell(rng), cell(rng, median=1e-3 * np.exp(rng.normal(0, 0.08))))
                                              for _ in range(200)]))
    # Three rounds a side: the widened percentile interval holds 1 for about 87% of these cells.
    assert comparison.interval_coverage(honest) >= 0.8
    assert comparison.interval_coverage(drifted) <= 0.6
    assert np.isnan(comparison.interval_coverage(honest.iloc[:0]))


def test_the_half_width_is_read_around_the_ratio_on_a_log_scale():
    import pandas as pd

    table = pd.DataFrame({"ci_low": [0.96, 1.0 / 1.1, np.nan], "ci_high": [1.0 / 0.96, 1.1, 1.2]})
    widths = comparison.interval_half_width(table)
    assert widths.iloc[0] == pytest.approx(1 / 0.96 - 1)
    assert widths.iloc[1] == pytest.approx(0.1)
    assert np.isnan(widths.iloc[2])


def test_the_inconclusive_note_says_how_small_a_change_the_intervals_can_tell():
    import pandas as pd

    table = pd.DataFrame({"ratio": [1.0, 1.03, 0.99], "ci_low": [0.9, 0.9, 0.9], "ci_high": [1.1, 1.1, 1.1],
                          "eq_low": [0.98, 1.0, 0.97], "eq_high": [1.0 / 0.98, 1.06, 1.01],
                          "verdict": ["no change", "inconclusive", "no change"]})
    note = wording.inconclusive_note(table, 0.05)
    # The 90% intervals' half-widths, which the equivalence test reads (not the 95% ones, ±10%):
    # 2.0%, about 3.0% and 2.0%; the median leaves 3% of the 5% floor for the change itself.
    assert note.startswith("1 of 3 cells are inconclusive") and "a median ±2.0% wide" in note
    assert "change under about 3.0% can be told from none" in note
    assert "as wide as the floor" in wording.inconclusive_note(table, 0.02)
    assert wording.inconclusive_note(table.assign(verdict="no change")) is None
    alone = pd.DataFrame({"ratio": [1.0], "ci_low": [np.nan], "ci_high": [np.nan], "eq_low": [np.nan],
                          "eq_high": [np.nan], "verdict": ["inconclusive"]})
    assert wording.inconclusive_note(alone).endswith("no interval (too few samples)")
    # Runs timed apart are pointed to `ab`, which times two versions in turns; cells that took turns are not.
    assert "`ab`, which times them in turns" in wording.inconclusive_note(table.assign(paired=False), 0.05)
    assert "`ab`" not in wording.inconclusive_note(table.assign(paired=True), 0.05) and "`ab`" not in note


def test_the_inconclusive_note_names_the_paired_cells_whose_rounds_read_different_ratios():
    import pandas as pd

    cell = dict(benchmark="gated_ffn", method="geglu", backend="eager", device="cpu", dtype="float32",
                mode="forward")
    table = pd.DataFrame([{**cell, "size": "tokens=1024 C=256", "ratio": 1.18, "ci_low": 0.92, "ci_high": 1.98,
                           "eq_low": 0.95, "eq_high": 1.8, "verdict": "inconclusive", "round_low": 0.86,
                           "round_high": 1.99, "rounds_apart": 5.6},
                          {**cell, "size": "tokens=256 C=256", "ratio": 1.02, "ci_low": 0.9, "ci_high": 1.1,
                           "eq_low": 0.92, "eq_high": 1.08, "verdict": "inconclusive", "round_low": 0.97,
                           "round_high": 1.06, "rounds_apart": 1.1},
                          {**cell, "size": "tokens=4096 C=256", "ratio": 1.9, "ci_low": 1.6, "ci_high": 2.3,
                           "eq_low": 1.7, "eq_high": 2.2, "verdict": "regression", "round_low": 1.0,
                           "round_high": 1.96, "rounds_apart": 2.7}])
    note = wording.inconclusive_note(table, 0.05)
    # Only the inconclusive cell whose rounds lie far apart is named; the regression and the cell
    # whose rounds agree are not.
    assert "1 of the inconclusive cells took rounds that read different ratios" in note
    assert "gated_ffn/geglu/eager cpu float32 forward tokens=1024 C=256: 0.86 to 1.99" in note
    assert "tokens=256" not in note and "tokens=4096" not in note
    assert "longer rounds not at all" in note
    assert wording.rounds_apart_note(table.assign(rounds_apart=1.9)) is None
    assert wording.rounds_apart_note(table.drop(columns=["rounds_apart"])) is None  # a table of unpaired cells
    many = pd.concat([table.iloc[:1].assign(size=f"tokens={n}") for n in range(5)], ignore_index=True)
    said = wording.rounds_apart_note(many)
    assert "5 of the inconclusive cells" in said and "; and 2 more)" in said


def test_a_spell_holds_only_the_change_it_could_have_made():
    verdicts = ["regression", "improvement", "regression", "improvement", "no change"]
    held = comparison.hold_spelled(verdicts, before_slowed=[True, True, False, False, True],
                              after_slowed=[False, False, True, True, True])
    assert held == ["regression", "inconclusive", "inconclusive", "improvement", "no change"]
    assert comparison.cell_in_spell(2, 1, "cuda", []) and not comparison.cell_in_spell(0, 1, "cpu", [2])
    assert comparison.cell_in_spell(float("nan"), 2, "cpu", [2]) and not comparison.cell_in_spell(None, 2, "cuda", [2])
