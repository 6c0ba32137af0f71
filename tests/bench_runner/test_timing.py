import random
import statistics

import pytest

from bench_runner.defaults import TimingPolicy
from bench_runner.timing import Measurement, measure


class FakeClock:
    """Each call costs a seeded random time around `per_call`; nothing really runs."""

    def __init__(self, per_call: float, jitter: float = 0.0, seed: int = 0):
        self.per_call, self.jitter = per_call, jitter
        self.rng = random.Random(seed)
        self.calls = 0

    def time_block(self, fn, calls):
        self.calls += calls
        return sum(self.per_call * (1 + self.rng.uniform(-self.jitter, self.jitter)) for _ in range(calls))


def test_statistics_come_from_the_raw_samples():
    m = Measurement(samples=(1.0, 2.0, 3.0, 4.0, 100.0), calls_per_sample=1)
    assert m.median == 3.0
    assert m.min == 1.0
    assert m.mean == 22.0
    assert m.iqr == pytest.approx(2.0)  # inclusive quartiles of 1..4,100: 2 and 4
    assert m.noisy


def test_a_steady_clock_is_not_noisy():
    m = Measurement(samples=(1.0, 1.01, 0.99, 1.0), calls_per_sample=1)
    assert not m.noisy


def test_blocks_are_sized_above_the_clock_resolution():
    clock = FakeClock(per_call=1e-6)
    policy = TimingPolicy(warmup_s=1e-4, min_block_s=1e-3, budget_s=0.02, min_samples=5)
    m = measure(lambda: None, clock, policy)
    assert m.calls_per_sample * 1e-6 >= 1e-3
    assert m.median == pytest.approx(1e-6)
    assert m.warmup_calls in (100, 101)  # 1e-4 s of warm-up at 1e-6 s a call, give or take rounding


def test_sampling_stops_at_the_budget_but_not_before_min_samples():
    policy = TimingPolicy(warmup_s=0.0, min_block_s=0.0, budget_s=0.05, min_samples=3, max_samples=1000,
                          target_rel_ci=0.0)  # never satisfied: only the budget stops
    fast = measure(lambda: None, FakeClock(per_call=0.012), policy)
    assert len(fast.samples) == 5  # four samples spend 0.048 s, under the budget; the fifth passes it
    slow = measure(lambda: None, FakeClock(per_call=1.0), policy)
    assert len(slow.samples) == 3


def test_the_same_seed_gives_the_same_measurement():
    policy = TimingPolicy(warmup_s=0.0, min_block_s=0.0, budget_s=0.1, min_samples=5, target_rel_ci=0.0)
    a = measure(lambda: None, FakeClock(0.01, jitter=0.5, seed=7), policy)
    b = measure(lambda: None, FakeClock(0.01, jitter=0.5, seed=7), policy)
    assert a.samples == b.samples
    assert a.median == statistics.median(a.samples)
    assert a.iqr > 0


def test_a_real_callable_is_called_for_every_sample():
    calls = []
    m = measure(lambda: calls.append(1), FakeClock(per_call=0.01),
                TimingPolicy(warmup_s=0.0, min_block_s=0.0, budget_s=0.0, min_samples=4))
    # The fake clock does not call fn; the real clocks do. Check the contract on the wall clock.
    from bench_runner.timing import WallClock

    WallClock().time_block(lambda: calls.append(1), 3)
    assert len(calls) == 3
    assert len(m.samples) == 4


def test_a_steady_clock_stops_as_soon_as_the_median_is_known():
    policy = TimingPolicy(warmup_s=0.0, min_block_s=0.0, budget_s=10.0, min_samples=5, target_rel_ci=0.02)
    m = measure(lambda: None, FakeClock(per_call=0.01, jitter=0.0), policy)
    assert len(m.samples) == 5
    assert m.rel_ci == 0.0


def test_a_noisy_clock_samples_until_the_interval_is_narrow_enough():
    policy = TimingPolicy(warmup_s=0.0, min_block_s=0.0, budget_s=100.0, min_samples=5, max_samples=10_000,
                          target_rel_ci=0.02)
    m = measure(lambda: None, FakeClock(per_call=0.01, jitter=0.3, seed=3), policy)
    assert 5 < len(m.samples) < 10_000
    assert m.rel_ci <= 0.02
    shorter = Measurement(m.samples[:-1], m.calls_per_sample)
    assert shorter.rel_ci > 0.02  # it stopped at the first sample that met the target


def test_the_median_interval_uses_order_statistics():
    from bench_runner.timing import median_rel_ci

    samples = list(range(1, 101))  # median 50.5; ranks 50 ∓ 9.8 → 40 and 60 → values 41 and 60
    assert median_rel_ci(samples) == pytest.approx((60 - 41) / 2 / 50.5)
    assert median_rel_ci([1.0]) == float("inf")


class CollectorWatchingClock(FakeClock):
    """Records whether Python's garbage collector was on during each timed block."""

    def __init__(self, per_call: float):
        super().__init__(per_call)
        self.collector_on = []

    def time_block(self, fn, calls):
        import gc

        self.collector_on.append(gc.isenabled())
        return super().time_block(fn, calls)


def test_the_garbage_collector_is_off_while_timing_and_restored_after():
    import gc

    policy = TimingPolicy(warmup_s=0.0, min_block_s=0.0, budget_s=0.01, min_samples=3)
    assert gc.isenabled()
    clock = CollectorWatchingClock(per_call=0.001)
    measure(lambda: None, clock, policy)
    assert clock.collector_on and not any(clock.collector_on)  # warm-up and every sample
    assert gc.isenabled()
    # A caller that had switched it off itself finds it off still, even after a failure.
    gc.disable()
    try:
        with pytest.raises(ZeroDivisionError):
            measure(lambda: None, type("Broken", (), {"time_block": lambda self, fn, calls: 1 / 0})(), policy)
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(ZeroDivisionError):
        measure(lambda: None, type("Broken", (), {"time_block": lambda self, fn, calls: 1 / 0})(), policy)
    assert gc.isenabled()
