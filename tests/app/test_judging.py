"""The dashboard's judgements as pure functions (app/judging.py): headlines, speed-ups with their
intervals and verdicts, held where a slow spell could have made them, paired where the two took
turns; and the exports' speed-ups, which must say the same."""

import numpy as np
import pandas as pd
import pytest

from app import analysis, judging
from bench_runner import comparison, speedups, stats


def test_headlines_pick_the_largest_common_size():
    frame = pd.DataFrame({
        "result_id": range(4), "benchmark": "b", "method": ["h", "h", "base", "base"],
        "backend": "eager", "device": "cpu", "dtype": "float32", "mode": "forward",
        "size": ["n=1", "n=100", "n=1", "n=10"], "machine": "m", "status": "ok",
        "time_median_s": [1.0, 5.0, 2.0, 9.0], "peak_mem_bytes": [1, 1, 1, 1],
    })
    catalogue = pd.DataFrame({"benchmark": ["b", "b"], "method": ["h", "base"], "role": ["hadamard", "baseline"]})
    h = judging.headlines(frame, catalogue)
    assert len(h) == 1
    assert h.iloc[0]["size"] == "n=1"  # n=100 has no baseline, n=10 no Hadamard result
    assert h.iloc[0]["speedup"] == 2.0


def test_parse_size_inverts_size_label():
    from hadamard_impls import size_label

    size = {"B": 1, "N": 256, "C": 64, "H": 4}
    assert analysis.parse_size(size_label(size)) == size


def test_a_headline_built_on_a_noisy_timing_says_so():
    frame = pd.DataFrame({
        "result_id": range(2), "benchmark": "b", "method": ["h", "base"], "backend": "eager", "device": "cpu",
        "dtype": "float32", "mode": "forward", "size": "n=1", "machine": "m", "status": "ok",
        "time_median_s": [1.0, 2.0], "peak_mem_bytes": [1, 1], "noisy": [False, True],
    })
    catalogue = pd.DataFrame({"benchmark": ["b", "b"], "method": ["h", "base"], "role": ["hadamard", "baseline"]})
    assert judging.headlines(frame, catalogue).iloc[0]["noisy"]
    frame["noisy"] = False
    assert not judging.headlines(frame, catalogue).iloc[0]["noisy"]


@pytest.mark.parametrize("factor, spread, verdict, words", [
    (0.5, 0.01, "faster", "is 2.00× ["),
    (2.0, 0.01, "slower", "is 2.00× ["),
    (1.0, 0.01, "no change", "runs as fast as **base** (within ±5% at 90% confidence; 95% interval ["),
    (0.96, 0.2, "inconclusive", "inconclusive: measure again"),
])
def test_speedups_and_headlines_say_faster_only_when_the_verdict_does(factor, spread, verdict, words):
    from tests.conftest import planted_samples

    frame = pd.DataFrame({
        "result_id": [1, 2], "benchmark": "b", "method": ["h", "base"], "backend": "eager", "device": "cpu",
        "dtype": "float32", "mode": "forward", "size": "n=1", "machine": "m", "status": "ok",
        "time_median_s": [factor * 1e-3, 1e-3], "peak_mem_bytes": [1, 1], "noisy": [False, False],
    })
    samples = {1: planted_samples(factor * 1e-3, spread), 2: planted_samples(1e-3, 0.01)}
    speed = judging.speedup_intervals(frame, "base", samples)
    assert list(speed["verdict"]) == [verdict]
    row = speed.iloc[0]
    assert row["speedup_low"] <= row["speedup"] <= row["speedup_high"]
    assert judging.speedup_label(row).endswith("?") == (verdict == "inconclusive")
    catalogue = pd.DataFrame({"benchmark": ["b", "b"], "method": ["h", "base"], "role": ["hadamard", "baseline"]})
    headline = judging.headline_verdicts(judging.headlines(frame, catalogue), samples).iloc[0]
    text = judging.headline_text(headline)
    assert words in text and ("faster" in text) == (verdict == "faster")


@pytest.mark.parametrize("unsettled, spelled_runs, verdict", [
    ({1: 0, 2: 0}, [], "faster"),
    ({1: 0, 2: 1}, [], "inconclusive"),  # the baseline kept a round timed in a slow spell: it may be the spell
    ({1: 1, 2: 0}, [], "faster"),  # the method was slowed, and still faster: the spell only understates it
    ({1: 0, 2: 0}, [7], "inconclusive"),  # a CPU cell of a run the spell outlasted
])
def test_a_method_is_not_called_faster_on_what_a_slow_spell_could_have_made(unsettled, spelled_runs, verdict):
    from tests.conftest import planted_samples

    frame = pd.DataFrame({
        "result_id": [1, 2], "run_id": 7, "benchmark": "b", "method": ["h", "base"], "backend": "eager",
        "device": "cpu", "dtype": "float32", "mode": "forward", "size": "n=1", "machine": "m", "status": "ok",
        "time_median_s": [0.5e-3, 1e-3], "peak_mem_bytes": [1, 1], "noisy": [False, False],
        "unsettled_rounds": [unsettled[1], unsettled[2]]})
    samples = {1: planted_samples(0.5e-3, 0.01), 2: planted_samples(1e-3, 0.01)}
    assert list(judging.speedup_intervals(frame, "base", samples, spelled_runs)["verdict"]) == [verdict]
    catalogue = pd.DataFrame({"benchmark": ["b", "b"], "method": ["h", "base"], "role": ["hadamard", "baseline"],
                              "against": [None, None]})
    headline = judging.headline_verdicts(judging.headlines(frame, catalogue), samples,
                                      comparison.cells_in_spell(frame, spelled_runs)).iloc[0]
    assert headline["verdict"] == verdict and ("faster" in judging.headline_text(headline)) == (verdict == "faster")
    # The CSV and JSON exports hold the same verdicts (one function, comparison.judge).
    exported = speedups.with_speedups(frame, catalogue, samples, comparison.cells_in_spell(frame, spelled_runs))
    assert list(exported["speedup_verdict"].dropna()) == [verdict]


def _paired_entries(factor: float, drift: float, noise: float = 0.005, run_id: int = 7) -> dict:
    """Two cells that took turns in one run: every cycle's machine speed (±`drift`, shared by
    both) scales them alike; the method costs `factor` times the baseline, give or take `noise`."""
    rng = np.random.default_rng(0)
    method, base, rounds, cycles = [], [], [], []
    for r in range(3):
        for c in range(8):
            speed = 1 + drift * rng.uniform(-1, 1)
            base.append(1e-3 * speed * rng.normal(1, noise))
            method.append(factor * 1e-3 * speed * rng.normal(1, noise))
            rounds.append(r)
            cycles.append(c)
    return {1: (method, rounds, cycles, run_id), 2: (base, rounds, cycles, run_id)}


@pytest.mark.parametrize("factor, noise, verdict", [(0.8, 0.005, "faster"), (1.25, 0.005, "slower"),
                                                    (1.01, 0.005, "no change"), (1.03, 0.1, "inconclusive")])
def test_paired_speedups_read_through_a_drift_that_hides_unpaired_ones(factor, noise, verdict):
    """The machine swings ±30% from cycle to cycle: the paired speed-up still finds each verdict,
    where the same samples compared unpaired are inconclusive; a slow spell holds no paired
    verdict, since both sides of each cycle shared it."""
    frame = pd.DataFrame({
        "result_id": [1, 2], "run_id": 7, "benchmark": "b", "method": ["h", "base"], "backend": "eager",
        "device": "cpu", "dtype": "float32", "mode": "forward", "size": "n=1", "machine": "m", "status": "ok",
        "time_median_s": [factor * 1e-3, 1e-3], "peak_mem_bytes": [1, 1], "noisy": [False, False],
        "unsettled_rounds": [1, 1]})
    samples = _paired_entries(factor, drift=0.3, noise=noise)
    speed = judging.speedup_intervals(frame, "base", samples, spelled_runs=[7]).iloc[0]
    assert speed["paired"] and speed["verdict"] == verdict
    assert speed["speedup"] == pytest.approx(1 / factor, rel=3 * noise)
    unpaired = judging.speedup_intervals(frame, "base", {k: v[:2] for k, v in samples.items()}).iloc[0]
    assert not unpaired["paired"] and unpaired["verdict"] == "inconclusive"
    other_run = {1: samples[1], 2: (*samples[2][:3], 8)}  # the same cycle numbers, another run: no pairs
    assert not judging.speedup_intervals(frame, "base", other_run).iloc[0]["paired"]
    catalogue = pd.DataFrame({"benchmark": ["b", "b"], "method": ["h", "base"], "role": ["hadamard", "baseline"]})
    headline = judging.headline_verdicts(judging.headlines(frame, catalogue), samples,
                                      comparison.cells_in_spell(frame, [7])).iloc[0]  # the Overview's, in a spell: held for none
    assert headline["paired"] and headline["verdict"] == verdict
    assert ("faster" in judging.headline_text(headline)) == (verdict == "faster")


def test_a_paired_speedup_carries_its_rounds_as_speedups_and_how_far_apart_they_lie():
    """Three rounds where the method ran as fast as its baseline in two and 1.5x slower in the
    middle one (its process, or a neighbour there): the rounds read speed-ups of 0.67 and 1.00, far
    further apart than their cycles explain, and the speed-up is inconclusive; an unpaired one has
    no rounds of pairs."""
    frame = pd.DataFrame({
        "result_id": [1, 2], "run_id": 7, "benchmark": "b", "method": ["h", "base"], "backend": "eager",
        "device": "cpu", "dtype": "float32", "mode": "forward", "size": "n=1", "machine": "m", "status": "ok",
        "time_median_s": [1e-3, 1e-3], "peak_mem_bytes": [1, 1], "noisy": [False, False],
        "unsettled_rounds": [0, 0]})
    samples = _paired_entries(1.0, drift=0.3)
    method, rounds = np.array(samples[1][0]), np.array(samples[1][1])
    samples[1] = (list(np.where(rounds == 1, 1.5 * method, method)), *samples[1][1:])
    speed = judging.speedup_intervals(frame, "base", samples).iloc[0]
    assert speed["paired"] and speed["verdict"] == "inconclusive"
    assert speed["speedup_round_low"] == pytest.approx(1 / 1.5, rel=0.02)
    assert speed["speedup_round_high"] == pytest.approx(1.0, rel=0.02)
    assert speed["rounds_apart"] > 10 * stats.ROUNDS_APART
    unpaired = judging.speedup_intervals(frame, "base", {k: v[:2] for k, v in samples.items()}).iloc[0]
    assert np.isnan(unpaired["rounds_apart"]) and np.isnan(unpaired["speedup_round_low"])
    # The Overview's headline names the rounds' range instead of advising more rounds.
    catalogue = pd.DataFrame({"benchmark": ["b", "b"], "method": ["h", "base"], "role": ["hadamard", "baseline"],
                              "against": [None, None]})
    headline = judging.headline_verdicts(judging.headlines(frame, catalogue), samples).iloc[0]
    text = judging.headline_text(headline)
    assert "inconclusive: its rounds read 0.67× to 1.00×, further apart than their cycles explain" in text
    assert "more rounds" not in text
    # The exports carry the same figure, the unpaired speed-up none.
    exported = speedups.with_speedups(frame, catalogue, samples)
    assert exported["speedup_rounds_apart"].dropna().tolist() == [pytest.approx(speed["rounds_apart"])]
    exported = speedups.with_speedups(frame, catalogue, {k: v[:2] for k, v in samples.items()})
    assert exported["speedup_rounds_apart"].isna().all() and exported["speedup_paired"].tolist()[0] is False
