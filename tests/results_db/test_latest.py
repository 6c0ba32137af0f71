"""The latest-result table the store keeps at write time: the pages read it instead of every
result, so it must name exactly the results that a scan of every result would pick."""

import random

from sqlalchemy.orm import sessionmaker

import results_db
from app.shaping import latest_ok
from results_db import LatestResult, bundle, history_queries, queries, store
from tests.conftest import FACTS

CELL = dict(benchmark="b", method="m", backend="eager", device="cpu", dtype="float32", mode="forward", size="n=1")


def picked(session, latest: bool) -> set[int]:
    return set(latest_ok(queries.results_frame(session, latest=latest))["result_id"])


def test_the_table_picks_what_a_scan_of_every_result_picks(store_url):
    """Random runs on three machines (two share a label), with failures, a demoted cell and
    float32 GPU cells with and without TF32: the latest `ok` result of each cell is the same
    read through the table as computed from every result, and a TF32 cell stands beside its
    float32 namesake instead of hiding it."""
    rng = random.Random(3)
    factory = sessionmaker(results_db.open_engine(store_url))
    machines = [({**FACTS, "key": f"k{i}", "torch_version": f"2.1{i}"}, "shared" if i < 2 else "other")
                for i in range(3)]
    with factory() as session, session.begin():
        hosts = [store.get_or_create_machine(session, facts, label) for facts, label in machines]
        for _ in range(12):
            run = store.start_run(session, rng.choice(hosts), "quick", {}, 8)
            for size in ("n=1", "n=2"):
                for device in ("cpu", "cuda"):
                    tf32 = rng.choice([None, "off", "matmul"]) if device == "cuda" else None
                    status = rng.choice(["ok", "ok", "ok", "error"])
                    result = store.record_result(session, run.id, {**CELL, "size": size, "device": device}, status,
                                                 metrics={"time_median_s": rng.random()},
                                                 provenance={"tf32": tf32} if tf32 else None)
                    if status == "ok" and rng.random() < 0.15:  # a later round found it implausible
                        store.demote(session, result, "implausible", "faster than the machine can go")
    with factory() as session:
        everything = queries.results_frame(session)
        assert (everything["status"] == "implausible").any() and (everything["dtype"] == "tf32").any()
        assert picked(session, latest=True) == picked(session, latest=False)
        latest = latest_ok(queries.results_frame(session, latest=True))
    # Per label, one row per cell: float32 and tf32 GPU cells apart, the two machines labelled alike merged.
    assert not latest.duplicated(["machine", "size", "device", "dtype"]).any()
    assert set(latest["machine"]) == {"shared", "other"}


def test_a_demoted_result_gives_its_cell_back_to_the_one_before(store_url):
    factory = sessionmaker(results_db.open_engine(store_url))
    with factory() as session, session.begin():
        host = store.get_or_create_machine(session, FACTS, "x")
        first = store.record_result(session, store.start_run(session, host, "quick", {}, 1).id, CELL, "ok").id
        second = store.record_result(session, store.start_run(session, host, "quick", {}, 1).id, CELL, "ok")
        assert session.query(LatestResult.result_id).scalar() == second.id
        store.demote(session, second, "implausible", "too fast")
        assert session.query(LatestResult.result_id).scalar() == first
    with factory() as session:
        assert list(queries.results_frame(session, latest=True)["result_id"]) == [first]


def test_an_imported_run_updates_the_table(store_url, tmp_path):
    """A bundle's results land through bundle.store_results: the newest of each cell counts."""
    source = sessionmaker(results_db.open_engine(f"sqlite:///{tmp_path}/source.db"))
    with source() as session, session.begin():
        host = store.get_or_create_machine(session, FACTS, "x")
        store.record_result(session, store.start_run(session, host, "quick", {}, 1).id, CELL, "ok",
                            metrics={"time_median_s": 1.0})
        shipped = bundle.export_bundle(session)
    with sessionmaker(results_db.open_engine(store_url))() as session, session.begin():
        bundle.import_bundle(session, shipped, source="test")
        frame = queries.results_frame(session, latest=True)
    assert list(frame["time_median_s"]) == [1.0] and list(frame["machine"]) == ["x"]


def test_the_cheap_reads_the_pages_use_agree_with_the_results(store_url):
    """What the pages ask of the run table and LatestResult instead of every result: machines and
    benchmarks with an `ok` result, a fingerprint's runs with one (oldest first), run progress."""
    factory = sessionmaker(results_db.open_engine(store_url))
    with factory() as session, session.begin():
        good = store.get_or_create_machine(session, FACTS, "good")
        bad = store.get_or_create_machine(session, {**FACTS, "key": "k2", "cpu_model": "Other CPU"}, "bad")
        runs = [store.start_run(session, host, "quick", {}, 1).id for host in (good, bad, good, good)]
        for run_id, status in zip(runs, ["ok", "ok", "error", "ok"]):
            store.record_result(session, run_id, {**CELL, "benchmark": "b" if run_id != runs[1] else "c"},
                                status if run_id != runs[1] else "error")
        fingerprint = good.fingerprint
    with factory() as session:
        assert queries.machines_with_results(session) == ["good"]
        assert queries.benchmarks_with_results(session) == ["b"]
        assert list(history_queries.history_runs(session, fingerprint)["run_id"]) == [runs[0], runs[3]]
        assert list(history_queries.history_cells(session, fingerprint)["benchmark"]) == ["b"]
        assert queries.runs_with_results(session, "b") == [runs[3], runs[0]]
        full, light = queries.runs_frame(session), queries.runs_frame(session, counts=False)
        assert list(full["run_id"]) == list(light["run_id"]) == runs[::-1]
        assert list(full["cells_done"]) == list(light["cells_done"]) == [1, 1, 1, 1]
        assert list(full["cells_ok"]) == [1, 0, 0, 1] and "cells_ok" not in light
        fingerprints = history_queries.fingerprints_frame(session)
        assert list(fingerprints["fingerprint"]) == [fingerprint] and fingerprints["runs"].iloc[0] == 2


def test_newest_before_reads_only_the_runs_a_gate_needs(store_url):
    """Each cell's N newest `ok` results before a run's start, on one fingerprint, oldest first."""
    factory = sessionmaker(results_db.open_engine(store_url))
    with factory() as session, session.begin():
        here = store.get_or_create_machine(session, FACTS, "here")
        there = store.get_or_create_machine(session, {**FACTS, "key": "k2", "cpu_model": "Other CPU"}, "there")
        ids = {}
        for i, (host, status) in enumerate([(here, "ok"), (here, "ok"), (there, "ok"), (here, "error"), (here, "ok"),
                                            (here, "ok")]):
            run = store.start_run(session, host, "quick", {}, 2)
            for size in ("n=1", "n=2"):
                if size == "n=2" and i == 4:
                    continue  # a run that skipped a cell: that cell's window reaches further back
                ids[i, size] = store.record_result(session, run.id, {**CELL, "size": size}, status, samples=[1.0]).id
        judged = run.id  # the last run is the one judged: only runs started before it count
        fingerprint, before = here.fingerprint, run.started_at
    with factory() as session:
        frame = history_queries.newest_before(session, fingerprint, before, per_cell=2)
    assert judged not in set(frame["run_id"])
    assert list(frame.loc[frame["size"] == "n=1", "result_id"]) == [ids[1, "n=1"], ids[4, "n=1"]]
    assert list(frame.loc[frame["size"] == "n=2", "result_id"]) == [ids[0, "n=2"], ids[1, "n=2"]]
    assert frame["samples"].map(len).eq(1).all()
