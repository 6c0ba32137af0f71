"""The measured noise floor's statistics on synthetic runs whose drift is known: how far a cell
moves between runs taken at different times (stats.drift_floors), and comparisons of two such
runs judged at it (stats.compare_entries' `drift`)."""

import numpy as np
import pytest

from bench_runner import stats

from .test_stats import cell


def drifting_runs(rng, cells: int, runs: int, drift_sd: float) -> list[np.ndarray]:
    """Per cell, the medians of `runs` runs, each at a level of its own (the machine that day)."""
    return [1e-3 * np.exp(rng.normal(0, drift_sd, runs)) for _ in range(cells)]


def test_the_floor_is_3_24_standard_errors_of_two_runs_log_ratio():
    rng = np.random.default_rng(11)
    floors = stats.drift_floors(drifting_runs(rng, 1000, 3, drift_sd=0.05))
    expected = np.expm1(3.2416 * np.sqrt(2) * 0.05)  # 26%
    assert np.median(floors) == pytest.approx(expected, rel=0.15)
    # Two fresh runs of each cell: their ratio leaves the floor about 0.1% of the time (more, as
    # three runs estimate a cell's spread loosely; far more at a 5% threshold).
    fresh = np.abs(rng.normal(0, 0.05, 1000) - rng.normal(0, 0.05, 1000))
    assert np.mean(fresh > np.log1p(floors)) <= 0.01
    assert np.mean(fresh > np.log1p(0.05)) > 0.4


def test_identical_runs_whose_rounds_explain_their_drift_mostly_read_no_change():
    """Each run's rounds drawn afresh (a process's own state, 4% SD) and nothing else moving
    between runs: the interval of two runs is then about as wide as their drift, and the floor must
    hold it with room to spare for "no change" to be reachable. At a 99% floor (z = 2.576) 45% of
    such identical pairs stayed inconclusive, at the floor sized for them 20%."""
    rng = np.random.default_rng(15)
    n, labels = 200, np.repeat(range(3), 7)
    run = lambda: cell(rng, round_sd=0.04, samples=7, sample_sd=0.03)  # noqa: E731
    noise_runs = [[np.median(np.concatenate(run())) for _ in range(3)] for _ in range(n)]
    entries = [((np.concatenate(run()), labels), (np.concatenate(run()), labels)) for _ in range(n)]
    share = lambda found, word: np.mean([f["verdict"] == word for f in found])  # noqa: E731
    found = stats.compare_entries(entries, drift=stats.drift_floors(noise_runs))
    assert share(found, "no change") >= 0.75
    assert share(found, "regression") + share(found, "improvement") == 0
    at_99 = stats.compare_entries(entries, drift=stats.drift_floors(noise_runs, z=2.576))
    assert share(at_99, "no change") < 0.6


def test_few_runs_are_moderated_towards_the_other_cells():
    rng = np.random.default_rng(12)
    runs = drifting_runs(rng, 50, 3, drift_sd=0.05)
    runs[0] = np.array([1e-3, 1e-3, 1e-3])  # three runs that happened to agree
    runs[1] = np.array([1e-3])  # one run: no spread to measure
    floors = stats.drift_floors(runs)
    assert floors[0] > 0.05  # not 0: three runs cannot show a cell never moves
    assert floors[0] < np.median(floors[2:])  # yet less than a cell that did move
    assert np.isnan(floors[1])
    unmoderated = stats.drift_floors(runs, prior_runs=0)
    assert unmoderated[0] == 0 and np.ptp(unmoderated[2:]) > np.ptp(floors[2:])


def test_runs_compared_at_their_measured_drift_rarely_call_a_change():
    """An A/A across time: every run at its own level (8% SD between runs), tight within. At the
    5% threshold most cells read as changed; at each cell's drift, measured from three other
    runs, at most a few percent do, and the floor each was judged at is returned."""
    rng = np.random.default_rng(13)
    n, drift_sd = 200, 0.08
    pairs = [(cell(rng, median=1e-3 * np.exp(rng.normal(0, drift_sd)), round_sd=0.005),
              cell(rng, median=1e-3 * np.exp(rng.normal(0, drift_sd)), round_sd=0.005)) for _ in range(n)]
    entries = [((np.concatenate(b), np.repeat(range(3), 20)), (np.concatenate(a), np.repeat(range(3), 20)))
               for b, a in pairs]
    changed = lambda found: np.mean([f["verdict"] in stats.RUN_WORDS for f in found])  # noqa: E731
    plain = stats.compare_entries(entries)
    drift = stats.drift_floors(drifting_runs(rng, n, 3, drift_sd))
    floored = stats.compare_entries(entries, drift=drift)
    assert changed(plain) > 0.3
    assert changed(floored) <= 0.02
    assert [f["floor"] for f in floored] == pytest.approx(np.fmax(0.05, drift))
    assert {f["floor"] for f in plain} == {0.05}


def test_a_paired_comparison_keeps_the_plain_floor():
    """Two cells that took turns share the drift: a time-separated floor does not apply to them."""
    rng = np.random.default_rng(14)
    samples = 1e-3 * np.exp(rng.normal(0, 0.01, 30))
    rounds, cycles = np.repeat(range(3), 10), np.tile(range(10), 3)
    entry = (samples, rounds, cycles, 7)
    found = stats.compare_entries([(entry, (samples * 1.2, rounds, cycles, 7))], drift=[0.5])
    assert found[0]["paired"] and found[0]["floor"] == 0.05 and found[0]["verdict"] == "regression"
