"""Interleaved timing: the members of a comparison group take turns block by block, in seeded
random orders, and each sample keeps its cycle, so that two cells' ratio pairs what was timed
side by side."""

import dataclasses
import random

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

import results_db
from bench_runner import defaults, selection, stats, sweep, timing
from bench_runner.cell import ALONE_NOTE, run_group
from bench_runner.executor import InProcess
from hadamard_bench.vocabulary import METHOD_WORDS
from results_db import Result, store
from tests.bench_runner.toy import FAST, toy_catalogue


class SharedDriftClock:
    """A clock whose every call costs `cost[fn]` times a machine speed that drifts slowly (the
    same for whoever runs at that moment), with a little independent jitter; it records the
    order in which the callables were timed."""

    def __init__(self, costs: dict, seed: int = 0, drift: float = 0.3, jitter: float = 0.01):
        self.costs, self.rng, self.drift, self.jitter = costs, random.Random(seed), drift, jitter
        self.t, self.timed = 0.0, []

    def speed(self) -> float:
        return 1 + self.drift * np.sin(self.t / 0.05)  # a swing of ±30% over a tenth of a second

    def time_block(self, fn, calls):
        self.timed.append(fn)
        total = 0.0
        for _ in range(calls):
            spent = self.costs[fn] * self.speed() * (1 + self.rng.uniform(-self.jitter, self.jitter))
            self.t += spent
            total += spent
        return total


POLICY = defaults.TimingPolicy(warmup_s=0.0, min_block_s=1e-3, budget_s=0.05, min_samples=5, max_samples=200,
                             target_rel_ci=0.0)


def _members():
    def a(): return None
    def b(): return None
    def c(): return None
    return a, b, c


def test_each_member_gets_one_block_per_cycle_in_a_reproducible_random_order():
    a, b, c = _members()
    clock = SharedDriftClock({a: 1e-4, b: 2e-4, c: 5e-4})
    found = timing.interleave([a, b, c], clock, POLICY, random.Random("7:0:group"))
    assert len({len(m.samples) for m in found}) == 1  # one sample per member per cycle
    cycles = len(found[0].samples)
    assert cycles >= POLICY.min_samples
    # Each cycle times each member once (after its warm-up and block-sizing blocks).
    timed = clock.timed[-3 * cycles:]
    orders = [tuple(f.__name__ for f in timed[i:i + 3]) for i in range(0, len(timed), 3)]
    assert all(sorted(o) == ["a", "b", "c"] for o in orders)
    assert len(set(orders)) > 1  # the order changes from cycle to cycle
    again = SharedDriftClock({a: 1e-4, b: 2e-4, c: 5e-4})
    timing.interleave([a, b, c], again, POLICY, random.Random("7:0:group"))
    assert [f.__name__ for f in again.timed] == [f.__name__ for f in clock.timed]
    other = SharedDriftClock({a: 1e-4, b: 2e-4, c: 5e-4})
    timing.interleave([a, b, c], other, POLICY, random.Random("8:0:group"))
    assert [f.__name__ for f in other.timed] != [f.__name__ for f in clock.timed]


def test_a_switch_costs_untimed_warm_up_calls_before_each_block(monkeypatch):
    monkeypatch.setattr(timing, "SWITCH_WARMUP_S", 0.0)  # the calls alone, not the time they fill
    calls = {"a": 0, "b": 0}

    def a(): calls["a"] += 1
    def b(): calls["b"] += 1
    clock = SharedDriftClock({a: 1e-3, b: 1e-3}, drift=0.0)
    found = timing.interleave([a, b], clock, POLICY, random.Random(1))
    # The fake clock never calls the functions: every call seen is an untimed warm-up.
    assert calls["a"] == calls["b"] == len(found[0].samples) * timing.SWITCH_WARMUP_CALLS


def test_a_member_whose_call_is_long_takes_its_turns_without_untimed_calls(monkeypatch):
    monkeypatch.setattr(timing, "SWITCH_WARMUP_S", 0.0)
    calls = {"short": 0, "long": 0}

    def short(): calls["short"] += 1
    def long(): calls["long"] += 1
    clock = SharedDriftClock({short: 1e-3, long: 2 * timing.LONG_CALL_S}, drift=0.0)
    found = timing.interleave([short, long], clock, POLICY, random.Random(1))
    assert calls == {"short": len(found[0].samples) * timing.SWITCH_WARMUP_CALLS, "long": 0}
    assert len(found[1].samples) == len(found[0].samples)  # still one block per cycle


def test_a_turn_times_at_least_as_long_as_its_untimed_calls():
    """The suite's shortest block is 1 ms here; a block taking turns lasts SWITCH_WARMUP_S (2 ms)."""
    a, b, _ = _members()
    clock = SharedDriftClock({a: 1e-4, b: 5e-4}, drift=0.0, jitter=0.0)
    found = timing.interleave([a, b], clock, POLICY, random.Random(1))
    assert [m.calls_per_sample for m in found] == [20, 4]
    alone = timing.measure(a, SharedDriftClock({a: 1e-4}, drift=0.0, jitter=0.0), POLICY)
    assert alone.calls_per_sample == 10  # one at a time, the suite's own block


def test_a_member_whose_warm_up_call_lasts_a_block_times_no_block_to_size_it():
    a, b, _ = _members()
    clock = SharedDriftClock({a: 1e-4, b: 3e-3}, drift=0.0, jitter=0.0)
    found = timing.interleave([a, b], clock, dataclasses.replace(POLICY, warmup_s=5e-3),
                              random.Random(1))
    cycles = len(found[1].samples)
    # b: two warm-up calls (5 ms), then only its turns' blocks; a: its warm-up, sizing blocks, turns.
    assert clock.timed.count(b) == found[1].warmup_calls + cycles == 2 + cycles
    assert found[1].calls_per_sample == 1
    assert clock.timed.count(a) > found[0].warmup_calls + cycles


def test_on_cuda_every_timed_call_is_a_block_of_its_own():
    """min_block_s 0, as the cell sets it on CUDA, where each call is timed after its L2 flush."""
    a, b, _ = _members()
    clock = SharedDriftClock({a: 1e-5, b: 2e-5}, drift=0.0, jitter=0.0)
    found = timing.interleave([a, b], clock, dataclasses.replace(POLICY, min_block_s=0.0),
                              random.Random(1))
    assert [m.calls_per_sample for m in found] == [1, 1]


def _entry(times, rounds, cycles):
    return list(times), list(rounds), list(cycles)


def test_paired_ratios_share_the_drift_that_unpaired_ones_carry():
    """A shared drift of ±30%: the A/A ratio from pairs is 1 with a narrow interval that holds it,
    the unpaired one is far wider; a 1.1x shift is found by the pairs and only by them."""
    rng = np.random.default_rng(3)
    found = {}
    for shift in (1.0, 1.1):
        pairs = []
        for cell in range(40):
            base_t, head_t, rounds, cycles = [], [], [], []
            for r in range(3):
                level = rng.uniform(0.7, 1.3)  # each round (worker, minute) runs at its own speed
                for c in range(10):
                    machine = level * (1 + 0.3 * np.sin(c + cell))  # shared by both members of a cycle
                    base_t.append(1e-3 * machine * rng.normal(1, 0.01))
                    head_t.append(1e-3 * shift * machine * rng.normal(1, 0.01))
                    rounds.append(r)
                    cycles.append(c)
            pairs.append((_entry(base_t, rounds, cycles), _entry(head_t, rounds, cycles)))
        paired = stats.compare_entries(pairs, words=METHOD_WORDS)
        unpaired = stats.compare_entries([((b[0], b[1]), (a[0], a[1])) for b, a in pairs], words=METHOD_WORDS)
        found[shift] = paired, unpaired
    aa, aa_unpaired = found[1.0]
    assert all(r["paired"] for r in aa) and not any(r["paired"] for r in aa_unpaired)
    assert sum(r["ci_low"] <= 1 <= r["ci_high"] for r in aa) >= 36  # about 95% of honest intervals hold 1
    assert all(r["verdict"] == stats.NO_CHANGE for r in aa)  # within ±5%, all of them
    widths = lambda rows: np.median([r["ci_high"] / r["ci_low"] for r in rows])  # noqa: E731
    assert widths(aa) < 1.05 < widths(aa_unpaired)
    shifted, shifted_unpaired = found[1.1]
    assert all(r["verdict"] == "slower" for r in shifted)
    assert np.median([r["ratio"] for r in shifted]) == pytest.approx(1.1, rel=0.01)
    assert sum(r["verdict"] == "slower" for r in shifted_unpaired) < 20



def test_an_effect_drawn_once_per_round_widens_the_interval_as_far_as_honesty_needs():
    """A/A where each round's processes hold one side 3% faster or slower for the whole round
    (drawn afresh each round) beside 2% noise per cycle: from three rounds the bootstrap alone
    held 1 in about 82% of such intervals; with Student's t over the rounds about 95% do."""
    rng = np.random.default_rng(5)
    found = [stats.compare_paired([rng.normal(rng.normal(0, 0.03), 0.02, 40) for _ in range(3)], seed=i)
             for i in range(300)]
    held = np.mean([c.ci_low <= 1 <= c.ci_high for c in found])
    assert 0.92 <= held <= 0.99
    # No effect between rounds: the t interval adds little and the floor still calls nothing changed.
    steady = [stats.compare_paired([rng.normal(0, 0.02, 40) for _ in range(3)], seed=i) for i in range(50)]
    assert all(stats.verdict_paired(c.ratio, c.ci_low, c.ci_high) == stats.NO_CHANGE for c in steady)

def test_from_ten_rounds_one_round_far_off_cannot_spread_the_interval():
    """A 12-round A/A where one side's process ran 2.2x slower for one round (as dropout_mask did
    beside a neighbour): Student's t over the rounds spreads past the floor, Yuen's trimmed t does
    not, and the session calls nothing changed. Below ten rounds the interval is still t's."""
    rng = np.random.default_rng(11)
    rounds = [rng.normal(rng.normal(0, 0.01), 0.02, 30) for _ in range(12)]
    rounds[4] = rounds[4] + np.log(2.2)
    medians = [float(np.median(r)) for r in rounds]
    student = 2.201 * np.std(medians, ddof=1) / np.sqrt(12)  # t(0.975, 11)
    assert stats._round_half_width(medians) < 0.04 < np.log(1.05) < student
    c = stats.compare_paired(rounds)
    assert stats.verdict_paired(c.ratio, c.ci_low, c.ci_high) == stats.NO_CHANGE
    assert stats._round_half_width(medians[:9]) == pytest.approx(
        2.306 * np.std(medians[:9], ddof=1) / 3, rel=1e-3)  # t(0.975, 8): nine rounds are not trimmed


def test_from_ten_rounds_the_trimmed_interval_holds_an_a_a_and_finds_a_shift():
    """Twelve rounds each holding one side 3% off (drawn afresh) beside 2% noise per cycle: the
    trimmed interval holds 1 about 95% of the time, and a 1.1x shift is found in every session."""
    rng = np.random.default_rng(7)
    for shift, check, sessions in ((0.0, "held", 200), (np.log(1.1), "found", 50)):
        found = [stats.compare_paired([rng.normal(shift + rng.normal(0, 0.03), 0.02, 20) for _ in range(12)], seed=i)
                 for i in range(sessions)]
        if check == "held":
            assert 0.92 <= np.mean([c.ci_low <= 1 <= c.ci_high for c in found]) <= 0.995
        else:
            assert all(stats.verdict_paired(c.ratio, c.ci_low, c.ci_high) == "regression" for c in found)


def test_rounds_apart_tells_rounds_that_read_different_ratios_from_rounds_that_share_one():
    """Sixteen rounds of 10 cycles: differing by the cycles' noise alone, the rounds lie about as far
    apart as their cycles explain, under ROUNDS_APART in every one of 200 sessions; with a neighbour
    that holds one side 1.9x slower in half the rounds (as one thread against two beside a busy
    core), far beyond it. Each round's own ratio is reported, lowest and highest."""
    rng = np.random.default_rng(3)
    steady = [stats.rounds_apart([rng.normal(0, 0.05, 10) for _ in range(16)]) for _ in range(200)]
    assert max(steady) < stats.ROUNDS_APART and 0.7 < np.median(steady) < 1.2
    rounds = [rng.normal(np.log(1.9) if r % 2 else 0.0, 0.05, 10) for r in range(16)]
    c = stats.compare_paired(rounds)
    assert c.rounds_apart > 5 * stats.ROUNDS_APART
    medians = np.exp([np.median(r) for r in rounds])
    assert (c.round_low, c.round_high) == (pytest.approx(medians.min()), pytest.approx(medians.max()))
    assert 0.9 < c.round_low < 1.1 and 1.7 < c.round_high < 2.1
    assert np.isnan(stats.rounds_apart([rng.normal(0, 0.05, 10)]))  # one round: nothing to compare
    assert np.isnan(stats.rounds_apart([np.zeros(5), np.zeros(5)]))
    assert stats.rounds_apart([np.zeros(5), np.ones(5)]) == np.inf  # rounds apart, cycles without spread


def sequential_verdict(rounds: list[np.ndarray], look: int, seed: int) -> tuple[str, bool]:
    """A session's verdict as `ab` reaches it, and whether it was decided at the look: a cell decided
    after `look` rounds is judged from those, at the usual levels; any other from all its rounds."""
    decided = stats.decided_early(rounds[:look])
    c = stats.compare_paired(rounds[:look] if decided else rounds, seed=seed)
    return stats.verdict_paired(c.ratio, c.ci_low, c.ci_high, eq_low=c.eq_low, eq_high=c.eq_high), decided


def test_a_look_halfway_decides_clear_cells_and_keeps_the_error_rates():
    """Sixteen rounds of 20 cycles, each round's ratio off by 3% (drawn afresh) beside 2% per cycle,
    looked at after eight: an A/A is decided `no change` at the look in most sessions and never called
    changed; a 1.1x shift is decided a regression in every one; where the truth is the floor itself
    (1.05), `no change`, which is wrong there, is said at most about as often as without the look (5%)."""
    rng = np.random.default_rng(12)
    said = {}
    for true, sessions in ((1.0, 200), (1.1, 50), (1.05, 300)):
        found = [sequential_verdict([rng.normal(np.log(true) + rng.normal(0, 0.03), 0.02, 20) for _ in range(16)],
                                    8, seed=i) for i in range(sessions)]
        said[true] = ([v for v, _ in found], np.mean([s for _, s in found]))
    verdicts, decided = said[1.0]
    assert verdicts.count(stats.NO_CHANGE) >= 180 and not set(verdicts) & set(stats.RUN_WORDS) and decided >= 0.5
    verdicts, decided = said[1.1]
    assert verdicts == ["regression"] * 50 and decided == 1.0
    verdicts, _ = said[1.05]
    assert verdicts.count(stats.NO_CHANGE) / len(verdicts) <= 0.06
    assert "improvement" not in verdicts


def test_the_look_is_stricter_than_the_last_round():
    """Eight rounds whose medians spread so that the 90% interval lies within the floor and the
    look's stricter one does not: `no change` at the end of a session, not yet decided at its look;
    with a quarter of the spread it is decided."""
    medians = 0.011 * np.array([-7, -5, -3, -1, 1, 3, 5, 7])
    rounds = [np.full(10, m) for m in medians]
    c = stats.compare_paired(rounds)
    assert stats.verdict_paired(c.ratio, c.ci_low, c.ci_high, eq_low=c.eq_low, eq_high=c.eq_high) == stats.NO_CHANGE
    assert not stats.decided_early(rounds)
    assert stats.decided_early([r / 4 for r in rounds])


def test_pairs_match_round_and_cycle_and_skip_samples_timed_alone():
    base = _entry([1.0, 2.0, 4.0, 8.0], [0, 0, 1, 1], [0, 1, 0, 1])
    head = _entry([2.0, 4.0, 4.0, 8.0], [0, 0, 1, 1], [1, 0, 0, store.UNPAIRED])
    logs = stats.paired_log_ratios(base, head)
    # round 0: cycle 0 pairs 1.0 with 4.0, cycle 1 pairs 2.0 with 2.0; round 1: only cycle 0.
    assert [list(np.exp(r)) for r in logs] == [pytest.approx([4.0, 1.0]), pytest.approx([1.0])]
    assert stats.paired_log_ratios(base, ([1.0], [0], None)) == []


@pytest.mark.parametrize("ratio, lo, hi, expected", [
    (1.08, 1.02, 1.15, "slower"),  # interval above 1, estimate beyond the floor
    (1.04, 1.01, 1.07, "inconclusive"),  # above 1, but the estimate within the floor and the interval past it
    (1.02, 1.01, 1.04, "no change"),  # changed, but by less than the floor: equivalent
    (0.90, 0.85, 0.96, "faster"),
    (0.93, 0.85, 1.02, "inconclusive"),  # holds 1
])
def test_the_paired_verdict_rule(ratio, lo, hi, expected):
    assert stats.verdict_paired(ratio, lo, hi, words=METHOD_WORDS) == expected


def test_a_group_in_process_stores_cycles_that_pair_and_replays_its_orders(db_url):
    cat = toy_catalogue()
    sel = selection.Selection(suite="smoke", benchmarks=["toy"], methods=["double", "drifts", "raises"])
    cells = selection.plan(cat, sel)
    factory = sessionmaker(results_db.open_engine(db_url))
    run_id = sweep.start(factory, cat, sel, cells, rounds=2, seed=11)
    counts = sweep.execute(factory, run_id, cells, InProcess(cat, FAST), rounds=2, seed=11, interleave=True)
    assert counts == {"ok": 2, "mismatch": 2, "error": 2}  # a failing member does not stop its group
    with factory() as session:
        ok = session.scalars(select(Result).where(Result.status == "ok")).all()
        assert {r.method for r in ok} == {"double"}
        for r in ok:  # its partners failed: left alone, it had no one to take turns with
            assert r.sample_cycles is None and set(r.sample_rounds) == {0, 1}
    # A group of the toy's two working methods: both have a sample in every cycle of every round.
    group = [c for c in cells if c.size_dict["n"] == 8 and c.method == "double"]
    twin = [(group[0], True), (group[0], True)]
    outcomes = run_group(cat, twin, FAST, random.Random("x"))
    assert [o.status for o in outcomes] == ["ok", "ok"] and all(o.interleaved for o in outcomes)
    assert len(outcomes[0].samples) == len(outcomes[1].samples) >= FAST.min_samples


def test_a_group_too_large_to_hold_at_once_is_timed_one_member_at_a_time(monkeypatch):
    from bench_runner import reference

    cat = toy_catalogue()
    cells = selection.plan(cat, selection.Selection(suite="smoke", benchmarks=["toy"], methods=["double"]))
    monkeypatch.setattr(reference, "available_memory", lambda device: 1)  # one byte free
    monkeypatch.setattr(reference, "check_plan", lambda *a: ("cpu", reference.FLOAT64_HERE))
    outcomes = run_group(cat, [(cells[0], True), (cells[0], True)], FAST, random.Random(0))
    assert [o.status for o in outcomes] == ["ok", "ok"]
    assert not any(o.interleaved for o in outcomes)
    assert all(o.provenance["timed"] == ALONE_NOTE for o in outcomes)


def test_a_round_timed_alone_leaves_its_samples_unpaired(db_url):
    factory = sessionmaker(results_db.open_engine(db_url))
    cat = toy_catalogue()
    sel = selection.Selection(suite="smoke", benchmarks=["toy"], methods=["double"])
    cells = selection.plan(cat, sel)
    run_id = sweep.start(factory, cat, sel, cells, rounds=1, seed=1)
    with factory() as session, session.begin():
        result = store.record_result(session, run_id, cells[0].key(), "ok", samples=[1.0, 2.0, 3.0, 4.0],
                                     sample_rounds=[0, 0, 1, 1], sample_cycles=[0, 1, 0, 1])
        store.add_round(session, result, [6.0, 7.0], 2, [0, 1])
        assert result.sample_cycles == [0, 1, 0, 1, 0, 1]
        store.add_round(session, result, [8.0], 3)  # timed alone
        assert result.sample_cycles == [0, 1, 0, 1, 0, 1, store.UNPAIRED] and result.sample_rounds[-1] == 3
