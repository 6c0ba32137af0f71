"""Results bundles: a lossless round trip between databases, strict checks on what is read,
and the reference bundle shipped under results/reference/."""

import copy
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

import results_db
from bench_runner.cli import main
from results_db import bundle, bundle_format, queries
from results_db.models import Metric, Result, Run

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference"


def factory(url):
    return sessionmaker(results_db.open_engine(url))


def exported(url) -> dict:
    with factory(url)() as session:
        return bundle.export_bundle(session)


def counts(url) -> tuple[int, int, int]:
    with factory(url)() as session:
        return tuple(session.scalar(select(func.count()).select_from(t)) for t in (Run, Result, Metric))


def test_a_bundle_carries_runs_across_databases_unchanged(seeded_db, store_url):
    other = store_url  # an SQLite file, then a PostgreSQL database
    data = exported(seeded_db)
    with factory(other)() as session, session.begin():
        added, skipped = bundle.import_bundle(session, data, source="test")
    assert (len(added), skipped) == (1, 0)
    with factory(seeded_db)() as a, factory(other)() as b:
        before, after = queries.export_frame(a), queries.export_frame(b)
        samples = sorted(tuple(s) for s in b.scalars(select(Result.samples)))
    columns = [c for c in before.columns if c not in ("run_id", "created_at")]
    assert before[columns].sort_values(["method", "size"]).reset_index(drop=True).equals(
        after[columns].sort_values(["method", "size"]).reset_index(drop=True))
    assert samples and all(len(s) == 15 for s in samples)
    assert counts(seeded_db) == counts(other)


def test_a_bundle_keeps_each_samples_round_and_the_rounds_records(seeded_db, tmp_path):
    from results_db.models import RoundRecord

    with factory(seeded_db)() as session, session.begin():
        session.add(RoundRecord(run_id=1, round=0, seed=7, pid=1, cells=8,
                                state={"other_cpu_share": 0.01, "drift": {"cpu": {"copy_s": 1e-3}}}))
        session.get(Run, 1).rounds, session.get(Run, 1).seed = 3, 7
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with factory(other)() as session, session.begin():
        bundle.import_bundle(session, exported(seeded_db), source="test")
    with factory(seeded_db)() as a, factory(other)() as b:
        for mine, theirs in zip(a.scalars(select(Result).order_by(Result.id)), b.scalars(select(Result).order_by(Result.id))):
            assert theirs.sample_rounds == mine.sample_rounds and set(theirs.sample_rounds) == {0, 1, 2}
        run = b.scalars(select(Run)).one()
        assert (run.rounds, run.seed, run.cells_done) == (3, 7, 8)
        record = b.scalars(select(RoundRecord)).one()
        assert (record.round, record.seed, record.state["drift"]) == (0, 7, {"cpu": {"copy_s": 1e-3}})


def test_a_bundle_whose_rounds_do_not_match_its_samples_is_refused(seeded_db):
    data = exported(seeded_db)
    data["runs"][0]["results"][0]["sample_rounds"] = [0, 1]
    with pytest.raises(bundle_format.BundleError, match="one per sample"):
        bundle_format.validate(data)


def test_importing_a_run_twice_adds_it_once(seeded_db):
    data = exported(seeded_db)
    before = counts(seeded_db)
    with factory(seeded_db)() as session, session.begin():
        added, skipped = bundle.import_bundle(session, data, source="test")
    assert (added, skipped) == ([], 1)  # the run came from this very database
    assert counts(seeded_db) == before


def test_the_label_names_only_machines_the_database_has_not_met(seeded_db, tmp_path):
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with factory(other)() as session, session.begin():
        bundle.import_bundle(session, exported(seeded_db), source="x", label="Lab GPU")
    with factory(other)() as session:
        assert list(queries.machines(session)["label"]) == ["Lab GPU"]
        assert not queries.has_runs(session)  # imported runs are not this database's own


def _broken(data, change):
    data = copy.deepcopy(data)
    change(data)
    return data


def test_a_bundle_carries_the_marks_on_its_runs(seeded_db, tmp_path):
    """People's word on a history (a change expected, a new distribution) travels with its run,
    onto the run's new id, and once however often the run is imported."""
    from bench_runner import history
    from results_db.models import Mark

    with factory(seeded_db)() as session, session.begin():
        history.add_mark(session, 1, "expected", "torch 2.14", {"method": "poly_sa"})
        history.add_mark(session, 1, "new_distribution")
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with factory(other)() as session, session.begin():  # a run of its own first: the imported one gets id 2
        run = Run(machine=results_db.Machine(key="k", label="x", fingerprint="f", hostname="h", cpu_model="c",
                                             cpu_cores=1, torch_version="t", os="o", python_version="p"), suite="smoke")
        session.add(run)
    for _ in range(2):
        with factory(other)() as session, session.begin():
            bundle.import_bundle(session, exported(seeded_db), source="test")
    with factory(other)() as session:
        marks = [(m.run_id, m.kind, m.note, m.cells) for m in session.scalars(select(Mark).order_by(Mark.id))]
    assert marks == [(2, "expected", "torch 2.14", {"method": "poly_sa"}), (2, "new_distribution", "", {})]


def _result(d):
    return d["runs"][0]["results"][0]


BAD = {
    "not ours": (lambda d: d.update(format="something-else"), "not a Hadamard Bench results bundle"),
    "newer": (lambda d: d.update(version=99), "newer than this Hadamard Bench reads"),
    "version as text": (lambda d: d.update(version="1"), "'version' must be a whole number"),
    "runs not a list": (lambda d: d.update(runs={"a": 1}), "'runs' must be a list"),
    "run not an object": (lambda d: d["runs"].__setitem__(0, 7), "run 1: must be an object"),
    "no machine": (lambda d: d["runs"][0].pop("machine"), "field 'machine' must be an object"),
    "unknown run status": (lambda d: d["runs"][0].update(status="exploded"), "field 'status' is 'exploded'"),
    "bad time": (lambda d: d["runs"][0].update(started_at="yesterday"), "'started_at' must be an ISO 8601 time"),
    "cores as text": (lambda d: d["runs"][0]["machine"].update(cpu_cores="many"), "'cpu_cores' must be a whole"),
    "results missing": (lambda d: d["runs"][0].pop("results"), "field 'results' must be a list"),
    "unknown cell status": (lambda d: _result(d).update(status="great"), "run 1, result 1: field 'status'"),
    "method missing": (lambda d: _result(d).pop("method"), "field 'method' must be non-empty text"),
    "method a number": (lambda d: _result(d).update(method=5), "field 'method' must be non-empty text"),
    "huge text": (lambda d: _result(d).update(size="N=1 " * 100), "longer than 200 characters"),
    "metric as text": (lambda d: _result(d)["metrics"].update(time_median_s="fast"), "must be a number"),
    "metric a bool": (lambda d: _result(d)["metrics"].update(time_median_s=True), "must be a number"),
    "huge integer": (lambda d: _result(d)["metrics"].update(flops=10**400), "too large to store exactly"),
    "huge float": (lambda d: _result(d)["metrics"].update(flops=1e308), "finite number"),
    "samples not a list": (lambda d: _result(d).update(samples="1,2"), "'samples' must be a list"),
    "long metric name": (lambda d: _result(d)["metrics"].update({"x" * 65: 1.0}), "at most 64 characters"),
    "same cell twice": (lambda d: d["runs"][0]["results"].append(copy.deepcopy(_result(d))), "same cell twice"),
    "bad role": (lambda d: d["catalogue"]["methods"][0].update(role="hero"), "field 'role' is 'hero'"),
    "unknown mark kind": (lambda d: d["runs"][0].update(marks=[{"kind": "guess"}]), "run 1, mark 1: field 'kind'"),
    "mark on no cell column": (lambda d: d["runs"][0].update(marks=[{"kind": "expected", "cells": {"colour": "red"}}]),
                               "run 1, mark 1: field 'cells' narrows by the cell's benchmark"),
}


def _second_run_bad(d):
    # A good first run and a bad second one: the good one must not be written either.
    second = copy.deepcopy(d["runs"][0])
    second["started_at"] = "2030-01-01T00:00:00+00:00"
    second["results"][-1]["status"] = "great"
    d["runs"].append(second)


BAD["second run bad"] = (_second_run_bad, "run 2, result 8: field 'status'")


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_bundle_is_refused_with_where_and_why_and_nothing_is_written(seeded_db, store_url, case):
    change, message = BAD[case]
    data = _broken(exported(seeded_db), change)
    other = store_url
    assert counts(other) == (0, 0, 0)
    with pytest.raises(bundle_format.BundleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        with factory(other)() as session, session.begin():
            bundle.import_bundle(session, data, source="bad")
    assert counts(other) == (0, 0, 0)


FILES = {
    "not json": ("{\"format\": ", "is not valid JSON"),
    "nan": ('{"format": "hadamard-bench-results", "version": 1, "runs": [], "x": NaN}', "is not a number JSON allows"),
    "a list": ("[1, 2]", "holds a JSON list, not an object"),
    "deep": ("[" * 100_000 + "]" * 100_000, "nests too deeply"),
    "not utf-8": (b"\xff\xfe\x00garbage", "not UTF-8 text"),
}


@pytest.mark.parametrize("case", list(FILES))
def test_the_import_command_refuses_bad_files_in_one_line_and_writes_nothing(db_url, tmp_path, capsys, case):
    content, message = FILES[case]
    path = tmp_path / "in.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["import", str(path), "--db", db_url]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not Path(db_url.removeprefix("sqlite:///")).exists()  # not even created


def test_the_import_command_refuses_an_unreadable_path(db_url, tmp_path, capsys):
    assert main(["import", str(tmp_path / "missing.json"), "--db", db_url]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_export_then_import_on_the_command_line(seeded_db, tmp_path, capsys):
    path = tmp_path / "runs.json"
    assert main(["export", "--db", seeded_db, "--format", "bundle", "--out", str(path)]) == 0
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert main(["import", str(path), "--db", other, "--label", "Lab"]) == 0
    assert main(["import", str(path), "--db", other]) == 0
    assert "1 was already here" in capsys.readouterr().err
    assert counts(other)[:2] == counts(seeded_db)[:2]


def test_an_exported_bundle_can_name_its_machine_and_nothing_else_takes_a_label(seeded_db, tmp_path, capsys):
    path = tmp_path / "runs.json"
    assert main(["export", "--db", seeded_db, "--format", "bundle", "--out", str(path),
                 "--label", "Test GPU (reference)"]) == 0
    runs = json.loads(path.read_text())["runs"]
    assert runs and {r["machine"]["label"] for r in runs} == {"Test GPU (reference)"}
    with factory(seeded_db)() as session:  # the database keeps its own name for the machine
        assert "Test GPU (reference)" not in set(queries.machines(session)["label"])
    table = tmp_path / "cells.csv"
    assert main(["export", "--db", seeded_db, "--out", str(table), "--label", "x"]) == 2
    assert main(["export", "--db", seeded_db, "--format", "bundle", "--out", str(table), "--label", " "]) == 2
    assert not table.exists()
    assert "--label" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted(REFERENCE.glob("*.json")), ids=lambda p: p.name)
def test_every_shipped_reference_bundle_imports_and_names_its_gpu(path, db_url):
    data = bundle_format.read_file(path)
    with factory(db_url)() as session, session.begin():
        added, _ = bundle.import_bundle(session, data, source=f"results/reference/{path.name}")
    with factory(db_url)() as session:
        [label] = queries.reference_machines(session)
        frame = queries.results_frame(session)
        gpus = set(queries.machines(session)["gpu_name"])
    assert label.startswith("NVIDIA H200") and label.endswith("(reference)")
    assert added and gpus == {"NVIDIA H200"}
    assert set(frame["device"]) == {"cuda"}
    assert (frame["status"] == "ok").mean() > 0.95
    json.dumps(data, allow_nan=False)  # finite throughout


def test_the_shipped_reference_bundles_cover_the_survey_figures_and_the_gated_ffns(db_url):
    named = set()
    with factory(db_url)() as session, session.begin():
        for path in sorted(REFERENCE.glob("*.json")):
            data = bundle_format.read_file(path)
            named |= {run["machine"]["label"] for run in data["runs"]}
            bundle.import_bundle(session, data, source=f"results/reference/{path.name}")
    with factory(db_url)() as session:
        benchmarks = set(queries.results_frame(session)["benchmark"])
        labels = queries.reference_machines(session)
    assert {"spatial_mixing", "token_mixing", "elementwise", "gated_ffn"} <= benchmarks
    # Two checks of one machine share its machine and its name; machines named apart stay apart.
    assert labels == sorted(named) and len(labels) >= 2


def test_an_ab_session_travels_whole_and_stays_a_session(seeded_db, tmp_path):
    """Exporting one side brings the other; imported, the two name each other again, so their
    cells still pair and neither becomes the machine's latest result; a bundle holding one side
    without the other is refused, nothing written."""
    from tests.bench_runner.test_compare import plant_session

    base, head = plant_session(seeded_db)
    with factory(seeded_db)() as session:
        data = bundle.export_bundle(session, [head])
        origins = [bundle.origin_of(session.get(Run, r).machine.key, session.get(Run, r).started_at)
                   for r in (base, head)]
    assert [r["paired_with"] for r in data["runs"]] == origins[::-1]
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with factory(other)() as session, session.begin():
        assert bundle.import_bundle(session, data, source="test") == ([1, 2], 0)
    with factory(other)() as session:
        assert [r.paired_with for r in session.scalars(select(Run).order_by(Run.id))] == [2, 1]
        assert queries.results_frame(session, latest=True).empty
        assert set(queries.samples_frame(session, run_id=2)["turns"]) == {1}  # as `compare` pairs them
    lonely = _broken(data, lambda d: d["runs"].pop(0))
    third = f"sqlite:///{tmp_path / 'third.db'}"
    with pytest.raises(bundle_format.BundleError, match="run 1: a side of an `ab` session whose other side"):
        with factory(third)() as session, session.begin():
            bundle.import_bundle(session, lonely, source="test")
    assert counts(third) == (0, 0, 0)
