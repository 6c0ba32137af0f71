"""Histories on a hardware fingerprint, their cached points, marks, and the gate that respects them."""

import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

import results_db
from bench_runner import history
from bench_runner.cli import main
from results_db import HistoryPoint, history_queries, store
from tests.bench_runner.test_compare import _history_db, _run, plant_session
from tests.conftest import BENCHMARKS, FACTS, METHODS

N256 = "B=1 N=256 C=64 H=4"


def history_json(db_url, capsys, *args) -> list[dict]:
    capsys.readouterr()  # what came before
    assert main(["history", "--db", db_url, "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_fingerprint_is_the_hardware_and_leaves_out_the_host_and_the_software():
    base = {**FACTS, "memory_gib": 24, "gpu_name": "NVIDIA H200", "driver_version": "550.54.15"}
    fp = store.fingerprint_of(base)
    same = [{**base, "hostname": "node-2", "key": "other"}, {**base, "torch_version": "2.14.0"},
            {**base, "python_version": "3.12", "os": "Linux 6.8"}, {**base, "driver_version": "550.90.07"}]
    assert all(store.fingerprint_of(f) == fp for f in same)
    differ = [{**base, "cpu_model": "Other CPU"}, {**base, "cpu_cores": 4}, {**base, "memory_gib": 48},
              {**base, "gpu_name": "NVIDIA H100"}, {**base, "driver_version": "560.28.03"}]
    assert len({store.fingerprint_of(f) for f in differ} | {fp}) == len(differ) + 1


def _two_hosts_db(db_url, other_memory=None):
    """Runs 1–3 on testhost with torch 2.13.0; runs 4–6 1.6× slower (N=256) on node-2, an identical
    node with torch 2.14.0; with `other_memory`, node-2 has a different memory size."""
    factory = sessionmaker(results_db.open_engine(db_url))
    with factory() as session, session.begin():
        store.sync_catalogue(session, BENCHMARKS, METHODS)
        host = store.get_or_create_machine(session, FACTS, "testhost (Test CPU)")
        node = store.get_or_create_machine(session, {**FACTS, "key": "node-2", "hostname": "node-2",
                                                     "torch_version": "2.14.0", "memory_gib": other_memory},
                                           "node-2 (Test CPU)")
        for machine, factor, torch in ((host, 1.0, "2.13.0"),) * 3 + ((node, 1.6, "2.14.0"),) * 3:
            run_id = _run(session, machine, lambda f, factor=factor: factor if f == 1.0 else 1.0, lambda s: 0.01)
            session.get(results_db.Run, run_id).provenance = {"torch": torch, "git_commit": f"c{run_id}"}
    return db_url


def test_identical_nodes_share_a_history_and_a_torch_upgrade_is_annotated_not_split(db_url, capsys):
    rows = [r for r in history_json(_two_hosts_db(db_url), capsys, "--size", "N=256")]
    assert [r["run_id"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert len({r["fingerprint"] for r in rows}) == 1
    assert [r["machine"] for r in rows] == ["testhost (Test CPU)"] * 3 + ["node-2 (Test CPU)"] * 3
    assert [r["change_point"] for r in rows] == [False, False, False, True, False, False]
    assert rows[3]["annotation"] == "torch 2.13.0 → 2.14.0"
    assert "commit c3 → c4" in rows[3]["differs"] and rows[4]["annotation"] == ""
    # Selecting by one host's label keeps the whole fingerprint: the other node's runs too.
    assert len(history_json(db_url, capsys, "--size", "N=256", "--machine", "testhost (Test CPU)")) == 6


def test_a_change_of_openmp_setting_is_listed_but_a_run_that_never_recorded_one_is_not():
    old, default, spinning = {"threads": 2}, {"threads": 2, "openmp": "defaults"}, {
        "threads": 2, "openmp": "OMP_WAIT_POLICY=active"}
    assert history.differences(default, spinning) == ["openmp defaults → OMP_WAIT_POLICY=active"]
    assert history.differences(old, default) == [] and history.differences(spinning, old) == []
    assert history.differences(old, {"threads": 1}) == ["threads 2 → 1"]  # facts recorded all along still count
    facts = history.run_facts(type("Row", (), {"provenance": {"openmp": "defaults"}, "options": {},
                                               "driver_version": None})())
    assert facts["openmp"] == "defaults"


def test_different_hardware_is_a_history_of_its_own(db_url, capsys):
    rows = history_json(_two_hosts_db(db_url, other_memory=64), capsys, "--size", "N=256")
    assert len({r["fingerprint"] for r in rows}) == 2 and not any(r["change_point"] for r in rows)
    assert [r["run_id"] for r in history_json(db_url, capsys, "--size", "N=256", "--machine",
                                               "node-2 (Test CPU)")] == [4, 5, 6]


def _points(db_url) -> int:
    with sessionmaker(results_db.open_engine(db_url))() as session:
        return session.scalar(select(func.count()).select_from(HistoryPoint))


def test_points_are_cached_and_a_new_run_makes_its_cells_stale_until_refreshed(db_url, capsys):
    _history_db(db_url, (1.0, 1.01, 0.99, 1.0))
    assert _points(db_url) == 0
    assert not any(r["change_point"] for r in history_json(db_url, capsys))
    assert _points(db_url) == 16  # 4 cells × 4 runs, kept
    factory = sessionmaker(results_db.open_engine(db_url))
    with factory() as session, session.begin():
        host = session.get(results_db.Run, 1).machine
        for _ in range(2):
            _run(session, host, lambda f: 1.6 if f == 1.0 else 1.0, lambda s: 0.01)
    with factory() as session, session.begin():
        assert len(history_queries.stale_cells(session)) == 4
        # Searched from each cell's search_from point (its first run: four runs are one window), and
        # only what changed is written: the two new runs' points; no earlier point moved.
        assert sorted(p["result_id"] for p in history.refresh(session)) == list(range(17, 25))
        assert history_queries.stale_cells(session) == []
    rows = history_json(db_url, capsys, "--size", "N=256")
    assert [r["change_point"] for r in rows] == [False] * 4 + [True, False]


def test_an_expected_mark_lets_the_gate_pass_and_says_why(db_url, tmp_path, capsys):
    _history_db(db_url, (1.0, 1.01, 0.99, 1.0, 1.6))
    assert main(["gate", "5", "--db", db_url]) == 1
    capsys.readouterr()
    assert main(["mark", "5", "--expected", "--note", "torch 2.14 upgrade", "--size", N256, "--db", db_url]) == 0
    assert "covering 1 cell" in capsys.readouterr().out
    summary = tmp_path / "gate.md"
    assert main(["gate", "5", "--db", db_url, "--markdown", str(summary)]) == 0
    assert "N=256 C=64 H=4: 1.6" in (out := capsys.readouterr().out)
    assert "(marked expected: torch 2.14 upgrade)" in out
    assert "No cell regressed" in summary.read_text()
    assert "1 regression is marked expected: torch 2.14 upgrade" in summary.read_text()
    rows = history_json(db_url, capsys, "--size", "N=256")
    assert rows[4]["annotation"] == "marked expected: torch 2.14 upgrade"
    assert main(["mark", "--list", "--db", db_url]) == 0
    assert "torch 2.14 upgrade" in capsys.readouterr().out
    assert main(["mark", "--delete", "1", "--db", db_url]) == 0
    assert main(["gate", "5", "--db", db_url]) == 1


def test_a_new_distribution_starts_the_baseline_and_splits_the_history(db_url, capsys):
    _history_db(db_url, (1.0, 1.01, 0.99, 1.0, 1.6, 1.6, 1.62))
    assert main(["gate", "6", "--db", db_url, "--against", "5"]) == 1  # runs 1–5 as baseline: still slower
    capsys.readouterr()
    assert [r["change_point"] for r in history_json(db_url, capsys, "--size", "N=256")][4]
    assert main(["mark", "5", "--new-distribution", "--db", db_url]) == 0
    capsys.readouterr()
    assert main(["gate", "6", "--db", db_url, "--against", "5"]) == 0  # judged against run 5 alone
    assert main(["gate", "5", "--db", db_url]) == 0  # the new start itself has nothing to judge against
    rows = history_json(db_url, capsys, "--size", "N=256")
    assert not any(r["change_point"] for r in rows)  # the step is the marked split, not a found one
    assert rows[4]["annotation"] == "marked new distribution"


@pytest.mark.parametrize("args, words", [
    (["mark", "9", "--expected"], "no run 9"),
    (["mark", "1"], "give RUN and one of"),
    (["mark", "--delete", "7"], "no mark 7"),
    (["mark", "1", "--expected", "--new-distribution"], "not allowed with"),
])
def test_mark_bad_input_is_one_line_and_exit_2_and_writes_nothing(db_url, capsys, args, words):
    _history_db(db_url, (1.0,))
    assert main([*args, "--db", db_url]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    with sessionmaker(results_db.open_engine(db_url))() as session:
        assert history_queries.marks_frame(session).empty


def _latest_runs(db_url) -> set[int]:
    with sessionmaker(results_db.open_engine(db_url))() as session:
        return set(results_db.queries.results_frame(session, latest=True)["run_id"])


def test_an_ab_session_is_neither_the_latest_results_nor_the_history_nor_a_baseline(db_url, capsys):
    """Its sides ran on huge pages, taking turns (0.7× the plain runs' times here, as a 2-vCPU VM
    showed for large elementwise cells): a plain run gated against them would read as a 1.4×
    regression."""
    _history_db(db_url, (1.0, 1.0, 1.0))
    assert plant_session(db_url, scale=0.7) == (4, 5)
    assert _latest_runs(db_url) == {3}  # the Overview and `compare machine:` keep the plain run's cells
    _history_db(db_url, (1.0,))  # run 6, plain
    assert _latest_runs(db_url) == {6}
    capsys.readouterr()
    assert main(["gate", "6", "--db", db_url]) == 0
    assert "4 no change" in capsys.readouterr().out
    rows = history_json(db_url, capsys, "--size", "N=256")
    assert [r["run_id"] for r in rows] == [1, 2, 3, 6] and not any(r["change_point"] for r in rows)
    with sessionmaker(results_db.open_engine(db_url))() as session:
        assert history_queries.fingerprints_frame(session)["runs"].tolist() == [4]
        assert history_queries.stale_cells(session) == []  # the sides' results never wait for a point
    capsys.readouterr()
    assert main(["compare", "3", "5", "--db", db_url]) == 0  # chosen by hand, a side is compared, with a word
    assert "run 5 is a side of an `ab` session, timed in turns with run 4 (on huge pages" in capsys.readouterr().out
    assert main(["compare", "4", "5", "--db", db_url, "--format", "csv"]) == 0
    assert "is a side of" not in "".join(capsys.readouterr())  # the session itself, paired


def test_a_database_of_ab_sessions_alone_has_no_history_and_says_why(db_url, capsys):
    plant_session(db_url)
    assert main(["history", "--db", db_url]) == 2
    assert "no plain run has `ok` results, and an `ab` session's two runs are not part of a history" in (
        capsys.readouterr().err)


def test_gate_judges_an_ab_side_as_its_session_and_mark_and_resume_refuse_one(db_url, capsys, tmp_path):
    """Judged as the session, a side gets `ab`'s paired verdicts, one planted per cell."""
    _history_db(db_url, (1.0, 1.0))
    base, head = plant_session(db_url)
    summary = tmp_path / "gate.md"
    for side in (base, head):
        capsys.readouterr()
        assert main(["gate", str(side), "--db", db_url, "--markdown", str(summary)]) == 1
        out = capsys.readouterr().out
        assert f"run {head} (head) judged against run {base} (base)" in out
        assert "verdicts: 1 regression, 1 improvement, 1 no change, 1 inconclusive" in out
        assert f"run {head} against run {base}, taking turns" in summary.read_text()
    assert main(["mark", str(head), "--expected", "--db", db_url]) == 2
    err = capsys.readouterr().err
    assert f"run {head} is a side of an `ab` session (with run {base})" in err and err.count("\n") == 1
    assert main(["run", "--resume", str(base), "--db", db_url]) == 2  # alone, it would not take turns
    err = capsys.readouterr().err
    assert f"run {base} is a side of an `ab` session (with run {head}), which is not resumed" in err
    with sessionmaker(results_db.open_engine(db_url))() as session:
        assert history_queries.marks_frame(session).empty


def test_a_mark_that_covers_no_cell_is_refused_before_the_history_is_searched(db_url, capsys, monkeypatch):
    _history_db(db_url, (1.0, 1.0))
    monkeypatch.setattr(history, "refresh", lambda *a, **k: pytest.fail("searched a history for a refused mark"))
    assert main(["mark", "2", "--expected", "--method", "Poly_sa", "--db", db_url]) == 2
    assert "run 2 has no `ok` or failed cell with method 'Poly_sa' to mark" in capsys.readouterr().err


def test_the_geometric_mean_line_is_relative_to_the_first_run_chosen(db_url):
    _history_db(db_url, (1.0, 1.0, 1.6))
    with sessionmaker(results_db.open_engine(db_url))() as session, session.begin():
        points = history.history_table(session)
    line = history.geomean_series(points, 1, 3)
    assert list(line["run_id"]) == [1, 2, 3] and list(line["cells"]) == [4, 4, 4]
    # One of four cells 1.6× slower: the geometric mean is 1.6 ** (1/4).
    assert line["geomean"].iloc[0] == pytest.approx(1.0)
    assert line["geomean"].iloc[2] == pytest.approx(1.6 ** 0.25, rel=0.01)
    assert history.geomean_series(points, 3, 99).empty


def test_a_result_without_samples_is_a_gap_not_a_point_nor_forever_stale(db_url, capsys):
    _history_db(db_url, (1.0, 1.01, 0.99, 1.0, 1.6, 1.6))
    factory = sessionmaker(results_db.open_engine(db_url))
    with factory() as session, session.begin():  # run 3's N=256 cell kept no samples (an old import, say)
        row = session.scalars(select(results_db.Result).where(results_db.Result.run_id == 3,
                                                              results_db.Result.size == N256)).one()
        row.samples, row.sample_rounds = None, None
    rows = history_json(db_url, capsys, "--size", "N=256")
    assert rows[2]["time_median_s"] is None and [r["change_point"] for r in rows][4]
    with factory() as session:
        assert history_queries.stale_cells(session) == []


def test_history_reads_and_prints_one_benchmark_at_a_time_as_one_table_csv_or_json(db_url, capsys, monkeypatch):
    _history_db(db_url, (1.0, 1.01, 0.99, 1.0, 1.6, 1.6))
    factory = sessionmaker(results_db.open_engine(db_url))
    with factory() as session, session.begin():  # a second benchmark, in runs 1 and 2
        store.sync_catalogue(session, [dict(BENCHMARKS[0], id="elementwise")], [])
        for run_id in (1, 2):
            store.record_result(session, run_id, dict(benchmark="elementwise", method="hadamard", backend="eager",
                                                      device="cpu", dtype="float32", mode="forward", size="n=4096"),
                                "ok", samples=[1e-4] * 5, sample_rounds=[0] * 5, metrics={"time_median_s": 1e-4})
    read = []
    real = history.history_table
    monkeypatch.setattr(history, "history_table", lambda session, **kw: read.append(kw["benchmark"]) or real(
        session, **kw))
    rows = history_json(db_url, capsys)
    assert read == ["elementwise", "token_mixing"]  # never the whole fingerprint at once
    assert [(r["benchmark"], r["run_id"]) for r in rows[:3]] == [("elementwise", 1), ("elementwise", 2),
                                                                 ("token_mixing", 1)]
    assert len(rows) == 2 + 4 * 6 and sum(r["change_point"] for r in rows) == 1
    assert main(["history", "--db", db_url, "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("benchmark,") and len(lines) == 1 + 2 + 4 * 6  # one header
    assert main(["history", "--db", db_url]) == 0
    out = capsys.readouterr().out
    assert out.count("time_median_s") == 2 and "1 change point in 5 cells" in out  # a block per benchmark


@pytest.mark.parametrize("copy_s, threads, stepped", [
    ((5e-4, 5e-4), (2, 2), True),  # the machine steady: the code's step of 1.3x is a change point
    ((5e-4, 7.5e-4), (2, 2), False),  # the machine itself 1.5x slower from run 4 on: held, as compare holds it
    ((5e-4, 7.5e-4), (2, 1), True),  # runs 4-6 timed their controls on one thread: that is the setting's move
])
def test_a_step_within_the_machines_own_move_is_no_change_point(db_url, capsys, copy_s, threads, stepped):
    from tests.bench_runner.test_compare import _plant_rounds, _set_provenance

    _history_db(db_url, (1.0, 1.0, 1.0, 1.3, 1.3, 1.3))  # the N=256 cell 1.3x slower from run 4 on
    _plant_rounds(db_url, {r: [0, 0, 0] for r in range(1, 7)}, copy_s={r: copy_s[r > 3] for r in range(1, 7)})
    _set_provenance(db_url, **{f"run{r}": {"threads": threads[r > 3]} for r in range(1, 7)})
    rows = history_json(db_url, capsys, "--size", "N=256")
    assert [r["change_point"] for r in rows] == [False, False, False, stepped, False, False]
    # compare of the runs either side of the step says the same of the cell.
    capsys.readouterr()
    main(["compare", "3", "4", "--db", db_url, "--format", "json"])
    cell = next(c for c in json.loads(capsys.readouterr().out)["cells"] if c["size"] == N256)
    assert (cell["verdict"] == "regression") == stepped


def test_a_history_searched_from_its_last_window_holds_the_machines_move_too(db_url, capsys):
    """Runs added to a cached history are searched from the cell's search_from point (refresh's
    resume): the step they bring, within the machine's own move, is held there as in a whole search."""
    from tests.bench_runner.test_compare import _plant_rounds

    _history_db(db_url, (1.0, 1.0, 1.0, 1.0))
    _plant_rounds(db_url, {r: [0, 0, 0] for r in range(1, 5)}, copy_s={r: 5e-4 for r in range(1, 5)})
    assert not any(r["change_point"] for r in history_json(db_url, capsys, "--size", "N=256"))
    factory = sessionmaker(results_db.open_engine(db_url))
    with factory() as session, session.begin():
        host = session.get(results_db.Run, 1).machine
        for _ in range(3):
            _run(session, host, lambda f: 1.3 if f == 1.0 else 1.0, lambda s: 0.01)
    _plant_rounds(db_url, {r: [0, 0, 0] for r in range(5, 8)}, copy_s={r: 7.5e-4 for r in range(5, 8)})
    with factory() as session, session.begin():
        resumed = history.refresh(session)
    assert resumed and all(p["result_id"] > 16 for p in resumed)  # the new runs' points only: resumed, not redone
    assert not any(r["change_point"] for r in history_json(db_url, capsys, "--size", "N=256"))
