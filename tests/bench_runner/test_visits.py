"""Visits: a worker holds several comparison groups built at once and passes over them, each
visit taking a share of a group's cycles, so that a group's cycles are spread over the round."""

import dataclasses
import random

import pytest

from bench_runner import cell as cell_module
from bench_runner import executor as executor_module
from bench_runner import timing
from bench_runner.cell import Cell, run_groups
from bench_runner.defaults import TimingPolicy
from bench_runner.executor import InProcess
from tests.bench_runner.toy import FAST, toy_catalogue


def _cell(method: str, n: int, backend: str = "eager", benchmark: str = "toy") -> Cell:
    return Cell(benchmark, method, backend, (("n", n),), "cpu", "float32", "forward")


def _turns(seconds: float):
    return lambda: (seconds, 1)


@pytest.mark.parametrize("policy, cycles_after", [
    # The minimum of samples alone: 7 cycles in three visits of 3, 2 and 2.
    (TimingPolicy(min_samples=7, budget_s=0.0, target_rel_ci=0.0), [3, 5, 7]),
    # The budget: two members of 1 ms blocks spend 2 ms a cycle against 2 x 10 ms in all.
    (TimingPolicy(min_samples=2, budget_s=0.01, target_rel_ci=0.0), [4, 7, 10]),
    # The cap: at most 5 samples, so 2, 4, then 5.
    (TimingPolicy(min_samples=9, budget_s=0.0, max_samples=5, target_rel_ci=0.0), [2, 4, 5]),
])
def test_each_visit_takes_its_share_of_the_cycles_and_all_of_them_add_up_to_one_visit(policy, cycles_after):
    taking = timing.Turns([_turns(1e-3), _turns(1e-3)], policy, random.Random(0))
    seen = []
    for visit in (1, 2, 3):
        taking.visit(visit / 3)
        seen.append(taking.cycles)
    assert seen == cycles_after
    assert all(len(s) == cycles_after[-1] for s in taking.samples)
    once = timing.take_turns([_turns(1e-3), _turns(1e-3)], policy, random.Random(0))
    assert [len(s) for s in once] == [cycles_after[-1]] * 2


def _twins(n: int) -> list[tuple[Cell, bool]]:
    # Two working members, unchecked: `drifts` fails only its check against the reference.
    return [(_cell("double", n), False), (_cell("drifts", n), False)]


@pytest.fixture
def visits_seen(monkeypatch):
    """Each visit as (which group's turns, numbered as built; the share it went to), in the order taken."""
    seen, built = [], []
    real_init, real_visit = timing.Interleaved.__init__, timing.Interleaved.visit

    def init(self, *args):
        real_init(self, *args)
        self.label = len(built)
        built.append(self)

    def visit(self, share):
        seen.append((self.label, share))
        real_visit(self, share)

    monkeypatch.setattr(timing.Interleaved, "__init__", init)
    monkeypatch.setattr(timing.Interleaved, "visit", visit)
    return seen


def test_held_groups_are_visited_in_turn_and_each_member_keeps_a_sample_per_cycle(visits_seen):
    policy = dataclasses.replace(FAST, min_samples=4, visits=2)
    outcomes = run_groups(toy_catalogue(), [_twins(8), _twins(16)], policy, [random.Random(1), random.Random(2)])
    # Both groups built first, then pass after pass over both: each group's two visits lie apart.
    assert visits_seen == [(0, 0.5), (1, 0.5), (0, 1.0), (1, 1.0)]
    for group in outcomes:
        assert [o.status for o in group] == ["ok", "ok"] and all(o.interleaved for o in group)
        assert [len(o.samples) for o in group] == [4, 4]
        assert all(o.metrics["interleaved"] == 2 for o in group)


def test_a_group_that_does_not_fit_beside_the_held_ones_is_timed_after_them_on_its_own(monkeypatch, visits_seen):
    from bench_runner import reference

    # Each group needs 200 bytes of 300 free: it fits alone (under 90%), not beside another (50%).
    monkeypatch.setattr(cell_module, "memory_need", lambda catalogue, cell: 100)
    monkeypatch.setattr(reference, "available_memory", lambda device: 300)
    monkeypatch.setattr(reference, "check_plan", lambda *a: ("cpu", reference.FLOAT64_HERE))
    policy = dataclasses.replace(FAST, min_samples=4, visits=2)
    outcomes = run_groups(toy_catalogue(), [_twins(8), _twins(16)], policy, [random.Random(1), random.Random(2)])
    assert visits_seen == [(0, 0.5), (0, 1.0), (1, 0.5), (1, 1.0)]
    assert all(o.status == "ok" and o.interleaved for group in outcomes for o in group)


def test_a_benchmark_compiled_at_two_sizes_is_never_held_twice():
    held = [_cell("double", 8, "compile")]
    assert cell_module._compiles_again([_cell("double", 16, "compile")], held)
    assert not cell_module._compiles_again([_cell("double", 16, "eager")], held)  # nothing compiled
    assert not cell_module._compiles_again([_cell("double", 16, "compile", "other")], held)  # other code
    assert not cell_module._compiles_again([_cell("double", 16, "compile")], [_cell("double", 8, "eager")])


@pytest.mark.parametrize("visits, batches", [(1, []), (2, [2])])
def test_a_round_holds_the_groups_that_follow_each_other_only_when_it_visits_them_more_than_once(
        monkeypatch, visits, batches):
    seen = []
    real = executor_module.run_groups

    def spy(catalogue, works, policy, rngs, clock=None):
        seen.append(len(works))
        return real(catalogue, works, policy, rngs, clock)

    monkeypatch.setattr(executor_module, "run_groups", spy)
    policy = dataclasses.replace(FAST, visits=visits)
    work = _twins(8) + _twins(16) + [(_cell("double", 32), False)]  # the last has no one to take turns with
    found = list(InProcess(toy_catalogue(), policy).run_round(work, "7:0"))
    assert seen == batches
    assert [c for c, _ in found] == [c for c, _ in work]  # every cell, in the round's order
    assert [o.interleaved for _, o in found] == [True] * 4 + [False]
