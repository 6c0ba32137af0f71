"""The run-end refresh searches a cell's history from its last search window on, and finds the
change points a search of the whole history finds (step_detect.search, history.refresh)."""

import datetime as dt
import random

import numpy as np
from sqlalchemy import insert, select, update
from sqlalchemy.orm import sessionmaker

import results_db
from bench_runner import history, step_detect
from results_db import history_queries, store
from results_db.models import HistoryPoint, Result, Run
from tests.conftest import BENCHMARKS, FACTS, METHODS, planted_cell

CELLS = [planted_cell(n) for n in (256, 1024)]


def _level(run: int, cell: int) -> float:
    """A cell's true time at a run: steps at runs 40 and 95 (a window's edge lies near each), and in the
    second cell a spell of twelve slower runs from 70 that ends again."""
    level = 1e-3 * (1.3 if run >= 40 else 1.0) * (0.7 if run >= 95 else 1.0)
    return level * (1.25 if cell == 1 and 70 <= run < 82 else 1.0)


def _series(n: int, seed: int):
    rng = np.random.default_rng(seed)
    rounds = [[_level(i, 1) * np.exp(rng.normal(0.01 * r, 0.02, 5)) for r in range(3)] for i in range(n)]
    return [float(np.median(np.concatenate(r))) for r in rounds], rounds


def test_a_full_window_is_final_and_the_last_window_searched_alone_finds_the_same_change_points():
    values, rounds = _series(130, seed=3)
    whole = step_detect.search(values, rounds=rounds)
    assert whole.change_points == [40, 70, 82, 95]
    for n in (45, 60, 71, 99, 120):  # the history as it stood after run n
        before = step_detect.search(values[:n], rounds=rounds[:n])
        # What lies before its last window is final: the longer history keeps it as it was.
        assert [c for c in whole.change_points if c < before.last_window] == \
            [c for c in before.change_points if c < before.last_window]
        # And the longer history searched from there alone finds the same change points after it
        # (one at the window's first run was found by the window before, and is final too).
        tail = step_detect.search(values[before.last_window:], rounds=rounds[before.last_window:])
        assert [before.last_window + c for c in tail.change_points] == \
            [c for c in whole.change_points if c > before.last_window]
        assert before.last_window + tail.last_window == whole.last_window


def _add_runs(factory, host_id: int, first: int, count: int, rng: random.Random, started=None) -> None:
    with factory() as session, session.begin():
        for run_index in range(first, first + count):
            run = store.start_run(session, session.get(results_db.Machine, host_id), "quick", {"rounds": 3},
                                  len(CELLS), rounds=3)
            if started is not None:
                session.execute(update(Run).where(Run.id == run.id).values(started_at=started))
            rows = [dict(run_id=run.id, **cell, status="ok", sample_rounds=[r for r in range(3) for _ in range(5)],
                         samples=[_level(run_index, k) * rng.lognormvariate(0.01 * r, 0.02)
                                  for r in range(3) for _ in range(5)]) for k, cell in enumerate(CELLS)]
            session.execute(insert(Result), rows)
            store.finish_run(session, run.id)


def _stored_and_whole(factory) -> tuple[list, list]:
    """Every point's change_point and search_from flags as stored, and as a whole search finds them."""
    with factory() as session:
        frame = history_queries.history_frame(session, details=False)
        marks = history_queries.marks_frame(session)
        stored, whole = [], []
        for key, cell in frame.groupby(history.CELL, sort=False):
            stored += [(int(r.result_id), bool(r.change_point), bool(r.search_from)) for r in cell.itertuples()]
            starts = {int(m.run_id) for m in history.covering(marks, dict(zip(history.CELL, key)), "new_distribution")}
            whole += [(p["result_id"], p["change_point"], p["search_from"])
                      for p in history.cell_points(cell, starts)]
    return stored, whole


def test_refreshing_run_by_run_keeps_the_change_points_a_whole_search_finds(store_url):
    factory = sessionmaker(results_db.open_engine(store_url))
    with factory() as session, session.begin():
        store.sync_catalogue(session, BENCHMARKS, METHODS)
        host_id = store.get_or_create_machine(session, FACTS, "testhost").id
    rng, added, written = random.Random(0), 0, []
    for count in (45, 1, 1, 10, 30, 1, 40, 2):  # runs arrive one at a time and in batches (imports)
        _add_runs(factory, host_id, added, count, rng)
        added += count
        with factory() as session, session.begin():
            written.append(len(history.refresh(session)))
    assert written[0] == 2 * 45  # the first refresh searches every run
    assert written[1] <= 2 * 2 + 2  # one run later: its two points, and a flag or two that moved
    stored, whole = _stored_and_whole(factory)
    assert stored == whole
    change_points = {(rid - 1) // 2 for rid, change, _ in stored if change}
    assert {40, 95} <= change_points  # rows are stored two a run (cell 0, cell 1), runs from 0


def _history(db_url, runs: int, seed: int):
    factory = sessionmaker(results_db.open_engine(db_url))
    with factory() as session, session.begin():
        store.sync_catalogue(session, BENCHMARKS, METHODS)
        host_id = store.get_or_create_machine(session, FACTS, "testhost").id
    rng = random.Random(seed)
    _add_runs(factory, host_id, 0, runs, rng)
    with factory() as session, session.begin():
        history.refresh(session)
    return factory, host_id, rng


def _refreshed_as_whole(factory) -> None:
    with factory() as session, session.begin():
        history.refresh(session)
    with factory() as session:
        assert history_queries.stale_cells(session) == []
    stored, whole = _stored_and_whole(factory)
    assert stored == whole


def test_an_older_run_imported_searches_its_cells_whole(db_url):
    factory, host_id, rng = _history(db_url, 80, seed=1)
    with factory() as session:
        first = min(session.scalars(select(Run.started_at)))
    _add_runs(factory, host_id, 0, 1, rng, started=first - dt.timedelta(days=1))  # older than every run
    _add_runs(factory, host_id, 80, 5, rng)
    _refreshed_as_whole(factory)


def test_a_new_start_marked_on_a_new_run_searches_its_cell_whole(db_url):
    factory, host_id, rng = _history(db_url, 80, seed=2)
    _add_runs(factory, host_id, 80, 12, rng)
    with factory() as session, session.begin():  # as an import brings a run with its marks
        store.add_mark(session, 86, "new_distribution", cells=CELLS[0])
    _refreshed_as_whole(factory)


def test_points_cached_before_search_from_existed_are_searched_whole_at_the_next_run(db_url):
    factory, host_id, rng = _history(db_url, 70, seed=3)
    with factory() as session, session.begin():  # as migration 0010 leaves them: no search_from point
        session.execute(update(HistoryPoint).values(search_from=False, change_point=False))
    _add_runs(factory, host_id, 70, 1, rng)
    _refreshed_as_whole(factory)
    stored, _ = _stored_and_whole(factory)
    assert sum(change for _, change, _ in stored) >= 2  # the step at run 40, in both cells, found again
