"""Runs stored before December 2026 timed again, after their rounds, the cells a slow spell of
the cores had left unsettled, and stored each such pass as a round record marked `retake`.
Runs no longer do (they retook almost nothing: docs/notes/2026-12-02-retakes-retook-nothing.md),
but those records must still read right: a pass is not a round, and what it retook settled
leaves the count of cells timed unsettled."""

import dataclasses

import pandas as pd
from sqlalchemy import select

from bench_runner import cli, comparison, sweep
from results_db import Result, RoundRecord
from tests.bench_runner.test_rounds import Recording, _run


def _states():
    """An old run: three rounds (8 cell-rounds unsettled), then two retake passes that retook all 8."""
    return pd.DataFrame({
        "run_id": [1, 1, 1, 1, 1], "round": [1, 2, 3, 4, 5], "cells": [10, 10, 10, 6, 2],
        "settle_cells_unsettled": [0, 6, 2, None, None], "retake": [None, None, None, 1, 2],
        "retake_cells": [None, None, None, 8, 2], "retaken": [None, None, None, 6, 2],
        "retake_calm_waited_s": [None, None, None, 0.25, 0.0], "settle_waited_s": [0.0, 10.0, 4.0, 1.0, 0.0],
        "drift_cpu_probe_s": [46e-6, 47e-6, 46e-6, 10e-6, 10e-6]})


def test_what_an_old_run_retook_leaves_the_unsettled_count_and_a_pass_is_not_a_round():
    states = _states()
    assert comparison.unsettled_share(states, [1]) == (0, 30)
    assert comparison.unsettled_share(states.iloc[:4], [1]) == (2, 30)  # the second pass's 2 not retaken
    assert comparison.drift_ratios(states, [1], [1]) == {"cpu probe": 1.0}  # the passes' calm probes stay out


def test_the_runs_page_counts_an_old_runs_rounds_without_its_passes():
    from app import judging

    out = judging.run_conditions(_states(), {}).set_index("run_id")
    assert out.loc[1, "rounds_measured"] == 3 and out.loc[1, "settle_cells_unsettled"] == 0
    assert out.loc[1, "drift_cpu_probe_s"] == 46e-6


class Spelled(Recording):
    """Every cell timed unsettled in round 1, as a slow spell of the cores would leave it."""

    def measure(self, cell, check=True):
        return dataclasses.replace(super().measure(cell, check), unsettled=self.round == 1)


def test_a_run_in_a_spell_stores_its_rounds_only_and_keeps_the_spell_counted(db_url):
    cat, cells, factory, run_id, runner = _run(db_url, 3, Spelled)
    sweep.execute(factory, run_id, cells, runner, rounds=3, seed=5)
    with factory() as session:
        records = list(session.scalars(select(RoundRecord).where(RoundRecord.run_id == run_id)))
        results = [r for r in session.scalars(select(Result).where(Result.run_id == run_id)) if r.status == "ok"]
        assert sorted(r.round for r in records) == [0, 1, 2]
        assert results and all({m.name: m.value for m in r.metrics}["unsettled_rounds"] == 1 for r in results)


def test_retakes_are_no_longer_a_flag(capsys):
    assert cli.main(["run", "--suite", "smoke", "--retakes", "3"]) == 2
    # Named with its verb, as every other bad flag is, and where to look.
    assert capsys.readouterr().err == ("hadamard-bench run: unrecognized arguments: --retakes 3 "
                                       "(`hadamard-bench run --help` lists its flags)\n")
