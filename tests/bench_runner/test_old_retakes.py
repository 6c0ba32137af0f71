"""Retakes: after the rounds, a cell-round a slow spell of the cores left unsettled is timed
again once the spell has passed, and a settled retake takes that round's place."""


import pandas as pd
import pytest
from sqlalchemy import select

from bench_runner import cli, comparison, defaults, sweep, wording
from bench_runner.commands import run as run_verb
from bench_runner.cell import CellOutcome
from bench_runner.worker import IsolatedRunner
from results_db import Result, RoundRecord, queries
from tests.bench_runner.test_rounds import Recording, _run
from tests.bench_runner.test_settle import Script, settler
from tests.bench_runner.toy import FAST


def test_calm_waits_for_a_spell_to_pass_without_spending_the_rounds_budget():
    script = Script(60e-6, 58e-6, 46e-6)
    s = settler(script, reference=46e-6)
    assert s.calm(30.0) == (0.5, True) and not script.readings
    assert s.summary()["waited_s"] == 0.0 and s.summary()["cells_unsettled"] == 0


def test_calm_gives_up_when_the_spell_outlasts_it():
    s = settler(Script(*[60e-6] * 10), reference=46e-6)
    assert s.calm(1.0) == (1.0, False)


class Spelled(Recording):
    """Samples that say which pass timed them (round r: r + 1 ms) and are unsettled in the
    passes named; `calm` answers as told. Regular rounds are 0–2, retake passes 3 on."""

    def __init__(self, cat, unsettled=(1,), calm=True):
        super().__init__(cat)
        self.unsettled, self.calm_answer, self.calms, self.spelled = set(unsettled), calm, 0, 0

    def measure(self, cell, check=True):
        if check:
            return super().measure(cell, check)
        self._count(cell, "timed")
        self.spelled += self.round in self.unsettled
        return CellOutcome("ok", samples=[(self.round + 1) * 1e-3] * 4, unsettled=self.round in self.unsettled)

    def settle_summary(self):
        summary = {"probe_best_s": 46e-6, "waited_s": 0.0, "cells_waited": 0, "cells_unsettled": self.spelled}
        self.spelled = 0
        return summary

    def calm(self, max_wait_s):
        self.calms += 1
        return (0.25, True) if self.calm_answer else (max_wait_s, False)


def _stored(factory, run_id):
    with factory() as session:
        results = [r for r in session.scalars(select(Result).where(Result.run_id == run_id)) if r.status == "ok"]
        records = list(session.scalars(select(RoundRecord).where(RoundRecord.run_id == run_id)
                                       .order_by(RoundRecord.id)))
        return ([(list(r.samples), list(r.sample_rounds), {m.name: m.value for m in r.metrics}, r.provenance)
                 for r in results], [(g.round, g.cells, g.state) for g in records])


def test_a_settled_retake_takes_the_place_of_the_unsettled_round(db_url):
    cat, cells, factory, run_id, runner = _run(db_url, 3, lambda cat: Spelled(cat, unsettled=(1,)))
    seen = []
    sweep.execute(factory, run_id, cells, runner, rounds=3, seed=5, retakes=2,
                  on_retake=lambda cell, settled: seen.append(settled))
    results, records = _stored(factory, run_id)
    assert len(results) == 2 and seen == [True, True]  # the two `ok` cells, retaken once each
    for samples, labels, metrics, provenance in results:
        round_2 = [x for x, r in zip(samples, labels) if r == 1]
        assert round_2 == [4e-3] * 4  # timed in the first retake pass (worker 4), not in the spell (2e-3)
        assert [x for x, r in zip(samples, labels) if r == 2] == [3e-3] * 4
        assert metrics["unsettled_rounds"] == 0 and metrics["rounds"] == 3
        assert provenance["retaken_rounds"] == [2]
    assert [(r, n) for r, n, _ in records] == [(0, 8), (1, 2), (2, 2), (3, 2)]  # one pass: nothing left after it
    retake = records[-1][2]
    assert (retake["retake"], retake["retake_cells"], retake["retaken"]) == (1, 2, 2)
    assert "settle_cells_unsettled" not in retake and retake["settle_probe_best_s"] == 46e-6
    assert records[1][2]["settle_cells_unsettled"] == 2
    assert runner.calms == 1


def test_a_retake_in_a_spell_changes_nothing_and_the_next_pass_tries_again(db_url):
    cat, cells, factory, run_id, runner = _run(db_url, 3, lambda cat: Spelled(cat, unsettled=(1, 3)))
    sweep.execute(factory, run_id, cells, runner, rounds=3, seed=5, retakes=2)
    results, records = _stored(factory, run_id)
    for samples, labels, metrics, _ in results:
        assert [x for x, r in zip(samples, labels) if r == 1] == [5e-3] * 4  # the second pass's
        assert metrics["unsettled_rounds"] == 0
    assert [g["retaken"] for _, _, g in records[3:]] == [0, 2]


def test_retakes_stop_at_the_number_asked_and_leave_the_spell_counted(db_url):
    cat, cells, factory, run_id, runner = _run(db_url, 3, lambda cat: Spelled(cat, unsettled=(1, 3)))
    sweep.execute(factory, run_id, cells, runner, rounds=3, seed=5, retakes=1)
    results, records = _stored(factory, run_id)
    for samples, labels, metrics, provenance in results:
        assert [x for x, r in zip(samples, labels) if r == 1] == [2e-3] * 4
        assert metrics["unsettled_rounds"] == 1 and "retaken_rounds" not in provenance
    assert len(records) == 4


def test_no_retake_while_the_spell_is_still_on(db_url):
    cat, cells, factory, run_id, runner = _run(db_url, 3, lambda cat: Spelled(cat, unsettled=(1,), calm=False))
    sweep.execute(factory, run_id, cells, runner, rounds=3, seed=5, retakes=3)
    results, records = _stored(factory, run_id)
    assert all(m["unsettled_rounds"] == 1 for _, _, m, _ in results)
    assert len(records) == 4 and runner.calms == 1  # one pass, which found no calm and stopped
    assert (records[-1][1], records[-1][2]["retake_cells"], records[-1][2]["retaken"]) == (0, 0, 0)
    assert records[-1][2]["retake_calm_waited_s"] == defaults.CALM_WAIT_S
    assert sum(kind == "timed" for kind, *_ in runner.calls) == 4  # rounds 2 and 3 only


def test_a_run_without_spells_or_without_retakes_has_no_pass(db_url):
    cat, cells, factory, run_id, runner = _run(db_url, 2, lambda cat: Spelled(cat, unsettled=()))
    sweep.execute(factory, run_id, cells, runner, rounds=2, seed=5, retakes=3)
    assert len(_stored(factory, run_id)[1]) == 2 and runner.calms == 0
    cat, cells, factory, run_id, runner = _run(db_url, 2, lambda cat: Spelled(cat, unsettled=(1,)))
    sweep.execute(factory, run_id, cells, runner, rounds=2, seed=5)
    assert len(_stored(factory, run_id)[1]) == 2 and runner.calms == 0


def _states():
    return pd.DataFrame({
        "run_id": [1, 1, 1, 1, 1], "round": [1, 2, 3, 4, 5], "cells": [10, 10, 10, 6, 2],
        "settle_cells_unsettled": [0, 6, 2, None, None], "retake": [None, None, None, 1, 2],
        "retake_cells": [None, None, None, 8, 2], "retaken": [None, None, None, 6, 2],
        "retake_calm_waited_s": [None, None, None, 0.25, 0.0], "settle_waited_s": [0.0, 10.0, 4.0, 1.0, 0.0],
        "drift_cpu_probe_s": [46e-6, 47e-6, 46e-6, 10e-6, 10e-6]})


def test_what_was_retaken_leaves_the_unsettled_count_and_a_pass_is_not_a_round():
    states = _states()
    assert comparison.unsettled_share(states, [1]) == (0, 30)
    assert comparison.unsettled_share(states.iloc[:4], [1]) == (2, 30)
    assert comparison.drift_ratios(states, [1], [1]) == {"cpu probe": 1.0}  # the passes' calm probes stay out
    assert wording.retake_text(states, 1) == "8 of the 8 cell-rounds timed in a slow spell were retaken settled, in 2 passes"
    stuck = states.iloc[:4].assign(retake_cells=[None, None, None, 0], retaken=[None, None, None, 0],
                                   retake_calm_waited_s=[None, None, None, 30.0])
    assert wording.retake_text(stuck, 1) == ("0 of the 8 cell-rounds timed in a slow spell were retaken settled, in 1 "
                                           "pass; the last pass found the spell still on after 30 s and retook nothing")
    assert wording.retake_text(states.iloc[:3], 1) is None


def test_the_runs_page_counts_rounds_and_retakes_apart():
    from app import judging

    out = judging.run_conditions(_states(), {}).set_index("run_id")
    assert out.loc[1, "rounds_measured"] == 3 and out.loc[1, "cells_retaken"] == 8
    assert out.loc[1, "settle_cells_unsettled"] == 0 and out.loc[1, "drift_cpu_probe_s"] == 46e-6


def test_the_suites_retake_unless_told_not_to(capsys):
    def policy(suite, *flags):  # the policy the run verb's flags ask for
        return run_verb.policy_for(cli.build_parser().parse_args(["run", "--suite", suite, *flags]), suite)

    assert policy("quick").retakes == 3 and policy("smoke").retakes == 0
    assert policy("full", "--retakes", "0").retakes == 0
    assert cli.main(["run", "--suite", "smoke", "--retakes", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "bench_runner run: argument --retakes: '-1' is not a number of retake passes (0 or more)"


@pytest.mark.slow
def test_the_worker_waits_for_calm_when_asked():
    with IsolatedRunner("tests.bench_runner.toy:toy_catalogue", FAST, 60, threads=2) as runner:
        runner._probe_best_s = 1e-9  # a reference no probe can reach: never calm
        runner.drift(["cpu"])
        assert runner.calm(0.5) == (0.5, False)


def test_a_run_says_what_it_retook(db_url, capsys):
    cat, cells, factory, run_id, runner = _run(db_url, 3, lambda cat: Spelled(cat, unsettled=(1,)))
    sweep.execute(factory, run_id, cells, runner, rounds=3, seed=5, retakes=2)
    with factory() as session:
        states = queries.round_states(session, [run_id])
    assert wording.retake_text(states, run_id) == ("2 of the 2 cell-rounds timed in a slow spell were retaken "
                                                 "settled, in 1 pass")
