from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

import pytest

import results_db
from results_db import BadDatabaseURL, queries, store
from results_db.models import Metric, Result, Run
from tests.conftest import FACTS, SIZES


def test_seeded_results_pivot_into_one_row_per_cell(seeded_store):
    with sessionmaker(results_db.open_engine(seeded_store))() as session:
        frame = queries.results_frame(session)
    assert len(frame) == 2 * len(SIZES)
    row = frame[(frame["method"] == "softmax_attention") & (frame["size"] == "B=1 N=256 C=64 H=4")].iloc[0]
    assert row["time_median_s"] == pytest.approx(1e-6 * 256 * 256 / 128)
    assert row["is_baseline"]
    assert row["machine"] == "testhost (Test CPU)"
    assert not frame[frame["method"] == "poly_sa"]["is_baseline"].any()


def test_a_cell_is_stored_once_per_run(store_url):
    factory = sessionmaker(results_db.open_engine(store_url))
    cell = dict(benchmark="b", method="m", backend="eager", device="cpu", dtype="float32",
                mode="forward", size="n=1")
    with factory() as session, session.begin():
        run = store.start_run(session, store.get_or_create_machine(session, FACTS, "x"), "smoke", {}, 1)
        run_id = run.id
        store.record_result(session, run_id, cell, "ok", metrics={"time_median_s": 1.0})
    with pytest.raises(IntegrityError):
        with factory() as session, session.begin():
            store.record_result(session, run_id, cell, "ok", metrics={"time_median_s": 2.0})
    with factory() as session:
        assert session.scalar(select(func.count(Result.id))) == 1
        assert session.scalar(select(Metric.value)) == 1.0
        assert session.get(Run, run_id).cells_done == 1


def test_the_same_machine_is_recorded_once(store_url):
    factory = sessionmaker(results_db.open_engine(store_url))
    with factory() as session, session.begin():
        a = store.get_or_create_machine(session, FACTS, "x")
        b = store.get_or_create_machine(session, FACTS, "x")
        assert a.id == b.id


def test_runs_frame_counts_ok_and_failed_cells(store_url):
    from tests.conftest import seed

    seed(store_url, statuses="error")
    with sessionmaker(results_db.open_engine(store_url))() as session:
        runs = queries.runs_frame(session)
    assert runs.iloc[0]["cells_ok"] == 0
    assert runs.iloc[0]["cells_failed"] == 2 * len(SIZES)
    assert runs.iloc[0]["status"] == "finished"


def test_sqlite_connections_use_wal(db_url):
    engine = results_db.open_engine(db_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


@pytest.mark.parametrize("url, words", [
    ("notaurl", "malformed"),
    ("foo://x", "no database driver"),
    ("sqlite://", "names no file"),
])
def test_bad_urls_are_refused_before_anything_is_created(url, words):
    with pytest.raises(BadDatabaseURL, match=words):
        results_db.open_engine(url)


def test_the_environment_variable_chooses_the_database(monkeypatch, db_url):
    monkeypatch.setenv("HADAMARD_BENCH_DB", db_url)
    assert results_db.resolve_url() == db_url
    assert results_db.resolve_url("sqlite:///other.db") == "sqlite:///other.db"


def test_csv_exports_neutralise_formulas_and_keep_numbers():
    import pandas as pd

    frame = pd.DataFrame({"message": ["=HYPERLINK(\"x\")", "+1", "@SUM(A1)", "-cmd", "fine", None],
                          "value": [-1.5, 2.0, 3.0, -4.0, 5.0, 6.0]})
    safe = queries.spreadsheet_safe(frame)
    assert list(safe["message"][:5]) == ["'=HYPERLINK(\"x\")", "'+1", "'@SUM(A1)", "'-cmd", "fine"]
    assert pd.isna(safe["message"].iloc[5])
    assert list(safe["value"]) == [-1.5, 2.0, 3.0, -4.0, 5.0, 6.0]
    assert list(frame["message"])[0].startswith("=")  # the caller's frame is left alone


def test_the_catalogue_sync_updates_in_place(store_url):
    """The upsert that lets runners start together: a second sync changes rows, adds none."""
    from tests.conftest import BENCHMARKS, METHODS

    factory = sessionmaker(results_db.open_engine(store_url))
    with factory() as session, session.begin():
        store.sync_catalogue(session, BENCHMARKS, METHODS)
    changed = [{**m, "summary": m["summary"] + " (v2)"} for m in METHODS]
    with factory() as session, session.begin():
        store.sync_catalogue(session, BENCHMARKS, changed)
    with factory() as session:
        catalogue = queries.catalogue_frame(session)
    assert len(catalogue) == len(METHODS) and catalogue["summary"].str.endswith("(v2)").all()


def test_a_run_survives_the_round_trip_through_either_database(seeded_store):
    from results_db import bundle

    with sessionmaker(results_db.open_engine(seeded_store))() as session:
        exported = bundle.export_bundle(session)
        provenance = session.get(Run, 1).provenance
    run = exported["runs"][0]
    assert len(run["results"]) == 2 * len(SIZES) and all(len(r["samples"]) == 15 for r in run["results"])
    assert run["started_at"].endswith("+00:00") and provenance == {}
