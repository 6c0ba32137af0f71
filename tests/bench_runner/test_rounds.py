"""Rounds: every cell measured once per round in a reproducibly shuffled order, samples stored
with their round, machine state per round, and partial rounds finished by a resume."""

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

import results_db
from bench_runner import selection, sweep
from bench_runner.executor import Executor, InProcess
from bench_runner.cell import CellOutcome
from hadamard_impls import catalogue as real_catalogue
from results_db import RoundRecord, Run, queries
from tests.bench_runner.toy import FAST, toy_catalogue


def test_the_order_is_shuffled_per_round_reproducibly_and_keeps_a_size_together():
    cells = selection.plan(real_catalogue, selection.Selection(suite="quick", benchmarks=["gated_ffn", "elementwise"],
                                                       backends=["eager"]))
    first = selection.round_order(cells, seed=42, round_index=0)
    assert sorted(first, key=str) == sorted(cells, key=str)
    assert first == selection.round_order(cells, seed=42, round_index=0)
    assert first != selection.round_order(cells, seed=42, round_index=1)
    assert first != selection.round_order(cells, seed=43, round_index=0)
    # The methods of one benchmark and size run back to back, whatever the shuffle.
    groups = [(c.benchmark, c.size) for c in first]
    runs_of = [g for i, g in enumerate(groups) if i == 0 or groups[i - 1] != g]
    assert len(runs_of) == len(set(groups))


class Recording(Executor):
    """The in-process runner, remembering which calls checked and which only timed; it can
    fail one cell in one round, or stop the sweep (as a kill would) after `stop_after` calls."""

    def __init__(self, cat, fail=None, stop_after=None):
        self.inner, self.fail, self.stop_after = InProcess(cat, FAST), fail, stop_after
        self.calls, self.round = [], -1

    def restart(self):
        self.round += 1

    def drift(self, devices):
        return {"cpu": {"copy_s": 1e-3, "matmul_s": 2e-3}}

    def _count(self, cell, kind):
        if self.stop_after is not None and len(self.calls) >= self.stop_after:
            raise KeyboardInterrupt
        self.calls.append((kind, cell.method, cell.size_dict["n"]))

    def measure(self, cell, check=True):
        self._count(cell, "checked" if check else "timed")
        if not check and self.fail == (cell.method, cell.size_dict["n"], self.round):
            return CellOutcome("crashed", "the worker died of SIGSEGV")
        return self.inner.measure(cell, check)


def _run(db_url, rounds, runner_for, seed=5):
    cat = toy_catalogue()
    sel = selection.Selection(suite="smoke", benchmarks=["toy"])
    cells = selection.plan(cat, sel)
    factory = sessionmaker(results_db.open_engine(db_url))
    run_id = sweep.start(factory, cat, sel, cells, rounds=rounds, seed=seed)
    return cat, cells, factory, run_id, runner_for(cat)


def test_three_rounds_store_every_sample_with_its_round_and_the_machine_state(db_url):
    cat, cells, factory, run_id, runner = _run(db_url, 3, lambda cat: Recording(cat, fail=("double", 16, 2)))
    told = []
    counts = sweep.execute(factory, run_id, cells, runner, rounds=3, seed=5,
                           on_cell=lambda cell, status, cell_rounds: told.append((cell.method, status, cell_rounds)))
    assert counts == {"ok": 2, "error": 2, "oom": 2, "mismatch": 2}  # each cell counted once
    # A progress bar fed by on_cell ends at the run's total: a cell failed at once counts its three
    # rounds then, one that failed later still counts each round it was tried in.
    assert sum(n for *_, n in told) == 24 and sorted(n for *_, n in told) == [1] * 6 + [3] * 6
    # Only the first measurement checks; the two working cells are timed again in rounds 2 and 3,
    # the failed ones never again.
    assert sum(k == "checked" for k, *_ in runner.calls) == 8
    assert sorted(c for c in runner.calls if c[0] == "timed") == \
        sorted([("timed", "double", 8)] * 2 + [("timed", "double", 16)] * 2)
    with factory() as session:
        results = {(r.method, r.size): r for r in session.scalars(select(results_db.Result))}
        ok = results[("double", "n=8")]
        assert sorted(set(ok.sample_rounds)) == [0, 1, 2] and len(ok.sample_rounds) == len(ok.samples)
        metrics = {m.name: m.value for m in ok.metrics}
        assert metrics["rounds"] == 3 and metrics["samples"] == len(ok.samples)
        assert metrics["flops"] == 8  # the first round's counts stay
        crashed_later = results[("double", "n=16")]
        assert crashed_later.status == "ok" and sorted(set(crashed_later.sample_rounds)) == [0, 1]
        assert "round 3: crashed" in crashed_later.message
        records = list(session.scalars(select(RoundRecord).order_by(RoundRecord.id)))
        assert [g.round for g in records] == [0, 1, 2] and all(g.seed == 5 for g in records)
        assert records[0].cells == 8 and records[1].cells == 2
        assert records[0].state["drift"] == {"cpu": {"copy_s": 1e-3, "matmul_s": 2e-3}}
        assert {"other_cpu_share", "steal_share", "wall_s"} <= set(records[0].state)
        run = session.get(Run, run_id)
        assert (run.rounds, run.cells_done, run.cells_total) == (3, 24, 24)


def test_a_run_stopped_mid_round_is_finished_by_a_resume_without_doubles(db_url):
    cat, cells, factory, run_id, runner = _run(db_url, 3, lambda cat: Recording(cat, stop_after=10))
    with pytest.raises(KeyboardInterrupt):  # eight first measurements, then two of round 2
        sweep.execute(factory, run_id, cells, runner, rounds=3, seed=5)
    with factory() as session:
        before = {r.method + r.size: list(r.sample_rounds) for r in session.scalars(select(results_db.Result))
                  if r.status == "ok"}
        stopped = session.scalars(select(RoundRecord).order_by(RoundRecord.id.desc())).first()
    assert sorted(len(set(v)) for v in before.values()) == [2, 2]
    # The part of round 3 that was stopped stored no end, but kept the drift controls timed as it began.
    assert (stopped.round, stopped.finished_at) == (2, None)
    assert stopped.state["drift"] == {"cpu": {"copy_s": 1e-3, "matmul_s": 2e-3}}

    resumed = Recording(cat)
    sweep.execute(factory, run_id, cells, resumed, rounds=3, seed=5)
    assert all(kind == "timed" for kind, *_ in resumed.calls)  # nothing checked twice
    assert len(resumed.calls) == 2  # the one round each working cell still lacked
    with factory() as session:
        for r in session.scalars(select(results_db.Result)):
            if r.status == "ok":
                assert sorted(set(r.sample_rounds)) == [0, 1, 2]
                # Round 1's samples are the ones stored before the stop, not measured again.
                assert r.sample_rounds[:len(before[r.method + r.size])] == before[r.method + r.size]
        assert session.get(Run, run_id).cells_done == 24
        assert len(queries.samples_frame(session, run_id=run_id)) == 2


def test_compare_reads_the_rounds_back(db_url):
    from bench_runner import comparison

    cat, cells, factory, run_id, runner = _run(db_url, 2, lambda cat: InProcess(cat, FAST))
    sweep.execute(factory, run_id, cells, runner, rounds=2, seed=1)
    with factory() as session:
        frame = queries.samples_frame(session, run_id=run_id)
    # Against its own samples as another result would hold them (a result against itself is left out).
    table = comparison.comparison_table(frame, frame.drop(columns="result_id"))
    assert list(table["rounds"]) == [2, 2] and list(table["ratio"]) == [1.0, 1.0]


class Planted(Executor):
    """Outcomes without timing anything: every member of a group takes twelve turns, `double` at
    `ratios[n][round]` times the others' time in each, give or take 0.2%. (Its baseline, `raises`,
    raises nothing here: nothing is built; `drifts` is a baseline of no speed-up of these.)"""

    def __init__(self, ratios, first_round=0):
        self.ratios, self.round, self.clock = ratios, first_round - 1, 0.0

    def restart(self):
        self.round += 1

    def measure(self, cell, check=True):
        return self.run_group([(cell, check)], "")[0]

    def run_group(self, work, order_key):
        out = []
        for cell, _ in work:
            self.clock += 1.0  # a second a cell, on the clock sweep keeps rounds more by
            ratio = self.ratios[cell.size_dict["n"]][self.round] if cell.method == "double" else 1.0
            wobble = [1 + 0.002 * ((i * 7) % 5) if cell.method == "double" else 1.0 for i in range(12)]
            out.append(CellOutcome("ok", samples=[1e-3 * ratio * w for w in wobble], interleaved=len(work) > 1))
        return out


def _planted_run(db_url, ratios, more_rounds, monkeypatch, share=1.0):
    monkeypatch.setattr(sweep, "MORE_ROUNDS_SHARE", share)
    executor = Planted(ratios)
    monkeypatch.setattr(sweep, "_now", lambda: executor.clock)
    cat = toy_catalogue()
    sel = selection.Selection(suite="smoke", benchmarks=["toy"], methods=["double", "raises", "drifts"])
    cells = selection.plan(cat, sel)
    factory = sessionmaker(results_db.open_engine(db_url))
    run_id = sweep.start(factory, cat, sel, cells, rounds=3, seed=5)
    looks = []
    sweep.execute(factory, run_id, cells, executor, rounds=3, seed=5, interleave=True,
                  more_rounds=more_rounds, on_more=lambda r, n: looks.append((r, n)))
    with factory() as session:
        rounds = {(r.method, r.size): sorted(set(r.sample_rounds)) for r in session.scalars(select(results_db.Result))}
        run = session.get(Run, run_id)
        records = [g.cells for g in session.scalars(select(RoundRecord).order_by(RoundRecord.id))]
        return rounds, looks, (run.cells_done, run.cells_total), records


def test_a_speed_up_left_undecided_takes_more_rounds_and_a_decided_one_none(db_url, monkeypatch):
    # n=8: double twice as fast as its baseline in every round (faster); n=16: its rounds disagree.
    undecided = [0.90, 1.10, 1.00, 0.90, 1.10]
    rounds, looks, progress, records = _planted_run(db_url, {8: [0.5] * 5, 16: undecided}, 2, monkeypatch)
    assert rounds == {("double", "n=8"): [0, 1, 2], ("raises", "n=8"): [0, 1, 2], ("drifts", "n=8"): [0, 1, 2],
                      ("double", "n=16"): [0, 1, 2, 3, 4], ("raises", "n=16"): [0, 1, 2, 3, 4],
                      ("drifts", "n=16"): [0, 1, 2]}  # in the group, but no side of the speed-up
    assert looks == [(3, 2), (4, 2)]  # the method and its baseline, in each round more
    assert records == [6, 6, 6, 2, 2]
    assert progress == (18, 18)  # the rounds more are beyond the run's total: its progress stays whole

    # Without rounds more, nothing is taken beyond the run's three.
    rounds, looks, _, _ = _planted_run(db_url.replace(".db", "-none.db"), {8: [0.5] * 5, 16: undecided}, 0,
                                       monkeypatch)
    assert looks == [] and max(max(r) for r in rounds.values()) == 2

    # Rounds more within a fifth of the rounds' time: 18 s of rounds, so one of 2 s, and not a second,
    # which would bring them to 4 s.
    rounds, looks, _, records = _planted_run(db_url.replace(".db", "-share.db"), {8: [0.5] * 5, 16: undecided},
                                             2, monkeypatch, share=0.2)
    assert looks == [(3, 2)] and records == [6, 6, 6, 2]


def test_a_speed_up_decided_by_a_round_more_takes_no_further_one(db_url, monkeypatch):
    # n=16: one round of three against the others, then two that agree with the two.
    rounds, looks, _, records = _planted_run(db_url, {8: [0.5] * 6, 16: [0.80, 0.95, 0.80, 0.80, 0.80, 0.80]},
                                             3, monkeypatch)
    assert looks == [(3, 2)] and records == [6, 6, 6, 2]
    assert rounds[("double", "n=16")] == [0, 1, 2, 3] and rounds[("double", "n=8")] == [0, 1, 2]


def _stop_at(index):
    def on_more(round_index, cells):
        if round_index == index:  # Ctrl-C as the round more begins, before it is recorded
            raise KeyboardInterrupt
    return on_more


@pytest.mark.parametrize("share, stop_at, taken", [
    (0.25, 3, [3, 4]),  # stopped after its rounds: two rounds more fit 4.5 s of 18, as without the stop
    (0.15, 4, []),  # stopped after its first round more: a second would bring them to 4 s of 2.7
    (0.25, 4, [4]),  # the same at 4.5 s: the second is taken, the first not announced again
])
def test_a_resumed_run_spends_the_share_of_the_rounds_it_stored(db_url, monkeypatch, share, stop_at, taken):
    cat = toy_catalogue()
    sel = selection.Selection(suite="smoke", benchmarks=["toy"], methods=["double", "raises", "drifts"])
    cells = selection.plan(cat, sel)
    factory = sessionmaker(results_db.open_engine(db_url))
    run_id = sweep.start(factory, cat, sel, cells, rounds=3, seed=5)
    ratios = {8: [0.5] * 5, 16: [0.90, 1.10, 1.00, 0.90, 1.10]}  # n=16's speed-up stays undecided
    monkeypatch.setattr(sweep, "MORE_ROUNDS_SHARE", 1.0)  # before the stop, every round more fits
    stopped = Planted(ratios)
    monkeypatch.setattr(sweep, "_now", lambda: stopped.clock)
    with pytest.raises(KeyboardInterrupt):
        sweep.execute(factory, run_id, cells, stopped, rounds=3, seed=5, interleave=True, more_rounds=2,
                      on_more=_stop_at(stop_at))
    with factory() as session, session.begin():  # a second a cell, as the planted clock keeps them
        for record in session.scalars(select(RoundRecord)):
            record.finished_at = record.started_at + timedelta(seconds=record.cells)
    monkeypatch.setattr(sweep, "MORE_ROUNDS_SHARE", share)
    resumed = Planted(ratios, first_round=stop_at)
    monkeypatch.setattr(sweep, "_now", lambda: resumed.clock)
    looks = []
    sweep.execute(factory, run_id, cells, resumed, rounds=3, seed=5, interleave=True, more_rounds=2,
                  on_more=lambda r, n: looks.append(r))
    assert looks == taken
    with factory() as session:
        assert sorted(set(session.scalars(select(RoundRecord.round)))) == list(range(max([stop_at - 1, *taken]) + 1))
