"""`noise`: a machine's measured drift between runs, stored per cell, and the floor `compare`,
`gate` and History then judge each cell at, on planted runs whose drift is known."""

import json

import numpy as np
import pytest
from scipy.stats import chi2
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

import results_db
from bench_runner.cli import main
from results_db import Run, history_queries, store
from tests.conftest import BENCHMARKS, FACTS, METHODS, planted_samples

SIZES = [f"B=1 N={n} C=64 H=4" for n in (64, 128, 256, 512)]
# Runs 1-3: one machine on three days, each cell at the day's level, tight within a run (the
# drift is between runs); runs 4 and 5: two more days, the same code (an A/A across time);
# runs 6-8: a lasting step of 25%.
LEVELS = [1.0, 1.1, 0.92, 1.0, 1.12, 1.25, 1.25, 1.25]


def cell(size: str, method: str = "poly_sa") -> dict:
    return dict(benchmark="token_mixing", method=method, backend="eager", device="cpu", dtype="float32",
                mode="forward", size=size)


def plant(db_url: str, levels=LEVELS, facts=FACTS, label="testhost") -> list[int]:
    factory = sessionmaker(results_db.open_engine(db_url))
    ids = []
    with factory() as session, session.begin():
        store.sync_catalogue(session, BENCHMARKS, METHODS)
        host = store.get_or_create_machine(session, facts, label)
        for level in levels:
            run = store.start_run(session, host, "quick", {"suite": "quick"}, cells_total=len(SIZES), rounds=3)
            for k, size in enumerate(SIZES):
                samples, rounds = planted_samples(1e-3 * (k + 1) * level, 0.003)
                store.record_result(session, run.id, cell(size), "ok", samples=samples, sample_rounds=rounds,
                                    metrics={"time_median_s": 1e-3})
            store.finish_run(session, run.id)
            ids.append(run.id)
    return ids


def cli(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def floors_in(db_url: str):
    factory = sessionmaker(results_db.open_engine(db_url, create=False))
    with factory() as session:
        fingerprint = session.scalars(select(results_db.Machine.fingerprint)).first()
        return history_queries.noise_floors(session, fingerprint)


def test_noise_from_stored_runs_stores_each_cells_drift(db_url, capsys):
    plant(db_url)
    code, out, err = cli(capsys, "noise", "--from", "1", "2", "3", "--db", db_url)
    assert code == 0, err
    floors = floors_in(db_url)
    assert sorted(floors["size"]) == sorted(SIZES)
    # Every cell moved alike between the three runs (log medians 0, log 1.1, log 0.92), and the
    # variance is moderated towards the cells' median one, itself scaled by the chi-square
    # median's share for two degrees of freedom (stats.drift_floors).
    var = np.var(np.log([1.0, 1.1, 0.92]), ddof=1)
    moderated = (4 * var / (chi2.median(2) / 2) + 2 * var) / 6
    assert floors["drift"].to_numpy() == pytest.approx(np.expm1((1.96 + 1.2816) * np.sqrt(2 * moderated)), rel=1e-6)
    assert all(list(r) == [1, 2, 3] for r in floors["run_ids"])
    assert "token_mixing: 4 cells, drift median" in out and "from runs 1, 2, 3" in out
    code, out, _ = cli(capsys, "noise", "--show", "--db", db_url)
    assert code == 0 and "token_mixing: 4 cells" in out


def test_compare_of_runs_apart_judges_each_cell_at_its_measured_drift(db_url, capsys):
    plant(db_url)
    code, out, _ = cli(capsys, "compare", "4", "5", "--format", "json", "--db", db_url)
    before = json.loads(out)
    assert {c["verdict"] for c in before["cells"]} == {"regression"}  # a 12% day-to-day drift, tight runs
    assert "no noise floor is measured on this hardware" in before["floor_note"]
    assert {c["floor"] for c in before["cells"]} == {0.05}

    assert cli(capsys, "noise", "--from", "1", "2", "3", "--db", db_url)[0] == 0
    code, out, _ = cli(capsys, "compare", "4", "5", "--format", "json", "--db", db_url)
    after = json.loads(out)
    assert {c["verdict"] for c in after["cells"]} <= {"no change", "inconclusive"}
    assert all(c["floor"] > 0.2 for c in after["cells"])
    assert "4 of 4 cells timed apart were judged at more" in after["floor_note"]
    code, out, _ = cli(capsys, "compare", "4", "5", "--db", db_url)
    assert "floor" in out.splitlines()[1] and "4 of 4 cells timed apart" in out


def test_a_floor_is_not_carried_to_other_hardware(db_url, capsys):
    plant(db_url)
    plant(db_url, levels=[1.12], facts={**FACTS, "key": "other", "cpu_model": "Other CPU"}, label="otherhost")
    assert cli(capsys, "noise", "--from", "1", "2", "3", "--db", db_url)[0] == 0
    code, out, _ = cli(capsys, "compare", "4", "9", "--format", "json", "--db", db_url)
    found = json.loads(out)
    assert "different hardware" in found["floor_note"]
    assert {c["floor"] for c in found["cells"]} == {0.05}


def test_history_and_gate_use_the_measured_floor(db_url, tmp_path, capsys):
    plant(db_url)
    code, out, _ = cli(capsys, "history", "--db", db_url)
    assert code == 0 and "4 change points in 4 cells" in out  # the 25% step at run 6
    assert "no noise floor is measured" in out
    assert cli(capsys, "gate", "6", "--db", db_url)[0] == 1
    assert cli(capsys, "noise", "--from", "1", "2", "3", "--db", db_url)[0] == 0  # drift ±39%: a 25% step is within
    code, out, _ = cli(capsys, "history", "--db", db_url)
    assert "0 change points in 4 cells" in out
    assert "beyond the cell's drift between runs as measured on this hardware" in out and "4 of these 4 cells" in out
    summary = tmp_path / "gate.md"
    code, out, _ = cli(capsys, "gate", "6", "--db", db_url, "--markdown", str(summary))
    assert code == 0 and "0 regression" in out and "judged at more" in out
    assert "No cell regressed beyond its floor" in summary.read_text()


@pytest.mark.parametrize("args, said", [
    (["--from", "1"], "two or more different runs"),
    (["--from", "1", "1"], "two or more different runs"),
    (["--from", "1", "99"], "no run 99"),
    (["--from", "1", "9"], "2 different hardware fingerprints"),
    (["--from", "1", "2", "--suite", "quick"], "give no selection flag"),
    ([], "one of --suite"),
    (["--suite", "smoke", "--repeat", "1"], "--repeat 1 measures no spread"),
    (["--from", "1", "x"], "'x' is not a run id"),
])
def test_bad_input_is_one_line_and_stores_nothing(db_url, capsys, args, said):
    plant(db_url)
    plant(db_url, levels=[1.0], facts={**FACTS, "key": "other", "cpu_model": "Other CPU"}, label="otherhost")
    code, out, err = cli(capsys, "noise", *args, "--db", db_url)
    assert code == 2 and said in err and len(err.strip().splitlines()) == 1
    assert floors_in(db_url).empty


def test_runs_timed_under_different_settings_are_refused(db_url, capsys):
    """A run on one thread among runs on two: their spread would be the thread count's. A setting
    one run did not record (OpenMP's, in older runs) differs from nothing."""
    plant(db_url)
    factory = sessionmaker(results_db.open_engine(db_url))
    with factory() as session, session.begin():
        for run_id, provenance in {1: {"threads": 2, "openmp": "defaults"}, 2: {"threads": 2},
                                   3: {"threads": 1, "openmp": "defaults"}}.items():
            run = session.get(Run, run_id)
            run.provenance = {**(run.provenance or {}), **provenance}
    code, out, err = cli(capsys, "noise", "--from", "1", "2", "3", "--db", db_url)
    assert code == 2 and err.strip().splitlines() == [
        "hadamard-bench noise: the runs were timed under different settings (threads 1, 2): their spread would be "
        "the settings', not time's; give runs of one setting"]
    assert floors_in(db_url).empty
    assert cli(capsys, "noise", "--from", "1", "2", "--db", db_url)[0] == 0
    assert not floors_in(db_url).empty


@pytest.mark.parametrize("runs", [["1", "2", "3"], ["2", "3"]], ids=["both-sides", "one-side"])
def test_a_side_of_an_ab_session_is_refused(db_url, capsys, runs):
    """Its sides took turns on huge pages: neither shows the drift between plain runs, with its
    partner or without it."""
    plant(db_url)
    factory = sessionmaker(results_db.open_engine(db_url))
    with factory() as session, session.begin():
        session.get(results_db.Run, 1).paired_with = 2
        session.get(results_db.Run, 2).paired_with = 1
    code, _, err = cli(capsys, "noise", "--from", *runs, "--db", db_url)
    assert code == 2 and "is a side of an `ab` session" in err and len(err.strip().splitlines()) == 1
    assert floors_in(db_url).empty


def test_noise_without_a_database_says_so(tmp_path, capsys):
    missing = tmp_path / "none.db"
    code, _, err = cli(capsys, "noise", "--from", "1", "2", "--db", f"sqlite:///{missing}")
    assert code == 2 and "no results database at" in err and not missing.exists()


@pytest.mark.slow
def test_noise_takes_its_runs_one_after_another_and_again_where_one_read_the_machine_otherwise(
        db_url, capsys, monkeypatch):
    """Two smoke runs of one cell group, each a `run` process of its own, one after another; the
    first reads the machine otherwise (its drift controls, planted here), so `noise` takes a
    third, and the floors come from the two that agree. (One test for both: each run is a
    process that imports torch, seconds of CI's two cores.)"""
    from bench_runner import comparison

    monkeypatch.setattr(comparison, "odd_runs", lambda states, runs, bound=None: {runs[0]: {"cpu copy": 0.6}})
    code, out, err = cli(capsys, "noise", "--suite", "smoke", "--benchmark", "elementwise", "--method",
                         "hadamard", "--backend", "eager", "--repeat", "2", "--rounds", "1", "--quiet",
                         "--db", db_url)
    assert code == 0, err
    assert "noise: run 1 of 2\nnoise: run 2 of 2\n" in err
    assert "noise: run 1 of 2 read the machine otherwise than the others (drift controls); taking 1 more" in err
    assert "noise: run 3 of 3" in err and "noise: run 4" not in err
    assert "from runs 2, 3:" in out and "Left out run 1 (cpu copy 0.600×)" in out
    floors = floors_in(db_url)
    assert len(floors) >= 1 and (floors["drift"] > 0).all()
    assert all(list(r) == [2, 3] for r in floors["run_ids"])


def test_noise_says_when_the_machine_itself_moved_between_its_runs(db_url, capsys):
    from tests.bench_runner.test_compare import _plant_rounds

    plant(db_url)
    # The copy control: steady over runs 1-3 (within 10%), then 1.5 times as slow in run 4.
    _plant_rounds(db_url, {r: [0, 0, 0] for r in (1, 2, 3, 4)}, copy_s={1: 5e-4, 2: 5.5e-4, 3: 5.2e-4, 4: 7.5e-4})
    code, out, _ = cli(capsys, "noise", "--from", "1", "2", "3", "--db", db_url)
    assert code == 0 and ("The drift controls across these runs, largest ÷ smallest run median: cpu copy 1.100×, "
                          "cpu probe 1.000×.\n") in out
    code, out, _ = cli(capsys, "noise", "--from", "3", "4", "--db", db_url)  # two runs: neither is the odd one
    assert code == 0 and "cpu copy 1.442×" in out and "Left out" not in out
    assert "the machine itself moved between the runs by more than 20%, and the floors count that move" in out
    code, out, _ = cli(capsys, "noise", "--from", "5", "6", "--db", db_url)  # no round recorded its controls
    assert code == 0 and "drift controls" not in out


def test_noise_leaves_out_a_run_whose_controls_set_it_apart_from_the_others(db_url, capsys):
    """Of three runs, the one whose copy control read 1.36 times the runs' median (the VM's other
    state): its floors would be the state's move; they are the two that agree's, and it says so."""
    from tests.bench_runner.test_compare import _plant_rounds

    plant(db_url)
    _plant_rounds(db_url, {r: [0, 0, 0] for r in (2, 3, 4)}, copy_s={2: 5.5e-4, 3: 5.2e-4, 4: 7.5e-4})
    code, out, _ = cli(capsys, "noise", "--from", "2", "3", "--db", db_url)
    alone = floors_in(db_url).set_index("size")["drift"]
    code, out, _ = cli(capsys, "noise", "--from", "2", "3", "4", "--db", db_url)
    assert code == 0 and "from runs 2, 3:" in out
    assert ("Left out run 4 (cpu copy 1.364×): its drift controls read that many times the runs' median, the "
            "machine running otherwise than in runs 2, 3") in out
    assert "moved between the runs by more than 20%" not in out  # of the runs kept, 1.058
    floors = floors_in(db_url)
    assert all(list(r) == [2, 3] for r in floors["run_ids"])
    assert np.allclose(floors.set_index("size")["drift"].loc[alone.index], alone)


@pytest.mark.parametrize("copy_s", [
    {1: 4e-4, 2: 4e-4, 3: 8e-4, 4: 8e-4},  # two against two: no run is the odd one
    {1: 4e-4, 2: 6e-4, 3: 9e-4},  # every run apart from the median (0.67×, 1.5×) but its own
])
def test_noise_keeps_every_run_where_none_is_the_odd_one(db_url, capsys, copy_s):
    from tests.bench_runner.test_compare import _plant_rounds

    plant(db_url)
    _plant_rounds(db_url, {r: [0, 0, 0] for r in copy_s}, copy_s=copy_s)
    runs = [str(r) for r in copy_s]
    code, out, _ = cli(capsys, "noise", "--from", *runs, "--db", db_url)
    assert code == 0 and "Left out" not in out and f"from runs {', '.join(runs)}:" in out
    assert "the machine itself moved between the runs by more than 20%" in out
    assert all(list(r) == list(copy_s) for r in floors_in(db_url)["run_ids"])
