"""Every number says what ran it: per-cell provenance, TF32 read per cell, and the shipped GPU
results no longer present TF32 cells as float32."""

import json

import pandas as pd
import pytest
from sqlalchemy.orm import sessionmaker

import results_db
from bench_runner.cli import main
from bench_runner.selection import catalogue_rows
from hadamard_impls import catalogue
from results_db import bundle, bundle_format, queries, store
from tests.conftest import FACTS, ROOT

H200_FP32_TFLOPS = 67.0
REFERENCE = ROOT / "results/reference/nvidia-h200.json"


@pytest.mark.parametrize("recorded, run_record, device, dtype, cudnn, expected", [
    ("off", "cudnn", "cuda", "float32", True, "off"),  # the cell's own record wins
    ("matmul+cudnn", False, "cuda", "float32", False, "matmul"),  # cuDNN's switch matters only to cuDNN
    (None, "cudnn", "cuda", "float32", True, "cudnn"),  # the run's record, for a cell that reaches cuDNN
    (None, "cudnn", "cuda", "float32", False, "off"),
    (None, None, "cuda", "float32", True, "cudnn"),  # no record at all: PyTorch's default then
    (None, False, "cuda", "float32", True, "off"),
    (None, "cudnn", "cuda", "bfloat16", True, "off"),  # TF32 is a float32 matter
    (None, "cudnn", "cpu", "float32", True, "off"),
])
def test_tf32_is_read_per_cell(recorded, run_record, device, dtype, cudnn, expected):
    assert queries.tf32_of(recorded, run_record, device, dtype, cudnn) == expected


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('shipped') / 'shipped.db'}"
    factory = sessionmaker(results_db.open_engine(url))
    with factory() as session, session.begin():
        store.sync_catalogue(session, *catalogue_rows(catalogue))
        bundle.import_bundle(session, bundle_format.read_file(ROOT / "results/reference/nvidia-h200.json"),
                             source="results/reference/nvidia-h200.json")
    with factory() as session:
        return queries.results_frame(session)


def _imported_by_the_cli(url, monkeypatch):
    assert main(["import", str(REFERENCE), "--db", url]) == 0
    return [REFERENCE]


def _opened_by_the_dashboard(url, monkeypatch):
    from app import data

    monkeypatch.setenv("HADAMARD_BENCH_REFERENCE", "on")  # the tests keep it off elsewhere
    data.import_reference.clear()
    assert data.import_reference(url) == []
    return sorted(REFERENCE.parent.glob("*.json"))  # every shipped bundle


@pytest.mark.parametrize("fill", [_imported_by_the_cli, _opened_by_the_dashboard])
def test_a_database_the_bundle_alone_filled_labels_its_tf32_cells_too(fill, tmp_path, monkeypatch):
    # The bundle's own catalogue predates the cuDNN declarations; the code's must decide.
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    filled_from = fill(url, monkeypatch)
    with sessionmaker(results_db.open_engine(url, create=False))() as session:
        frame = queries.results_frame(session)
    assert len(frame) == sum(len(run["results"]) for path in filled_from for run in bundle_format.read_file(path)["runs"])
    test_no_shipped_float32_gpu_cell_is_faster_than_float32_can_be(frame)


def test_no_shipped_float32_gpu_cell_is_faster_than_float32_can_be(shipped):
    gpu = shipped[(shipped["status"] == "ok") & (shipped["device"] == "cuda")]
    float32 = gpu[gpu["dtype"] == "float32"]
    tflops = pd.to_numeric(float32["flops"]) / float32["time_median_s"] / 1e12
    assert tflops.max() < H200_FP32_TFLOPS
    tf32 = gpu[gpu["dtype"] == "tf32"]
    assert (tf32["tf32"] == "cudnn").all()
    # The convolutions ran TF32 (conv1x1 up to ~329 TFLOP/s); attention and matmuls did not.
    assert {"conv1x1", "conv", "partial_conv", "gated_conv"} <= set(tf32["method"])
    assert not {"sdpa", "softmax_attention", "swiglu", "poly_nl"} & set(tf32["method"])
    assert (tf32["backend"][tf32["method"].isin(["lstm", "gru", "rnn_tanh"])] == "library").all()


def _one_result(db_url, provenance, run_provenance=None, method="conv1x1", benchmark="spatial_mixing"):
    factory = sessionmaker(results_db.open_engine(db_url))
    with factory() as session, session.begin():
        store.sync_catalogue(session, *catalogue_rows(catalogue))
        host = store.get_or_create_machine(session, FACTS, "testhost")
        run = store.start_run(session, host, "quick", {}, 1, provenance=run_provenance or {"git_commit": "runcommit"})
        store.record_result(session, run.id, dict(benchmark=benchmark, method=method, backend="eager", device="cuda",
                                                  dtype="float32", mode="forward", size="B=1 C=8 H=8"),
                            "ok", samples=[1e-3] * 5, metrics={"time_median_s": 1e-3}, provenance=provenance)
    return factory


def test_a_cell_says_its_own_commit_tf32_and_kernels_and_exports_them(db_url, tmp_path):
    factory = _one_result(db_url, {"commit": "cellcommit", "dirty": False, "tf32": "off",
                                   "kernels": ["convolution: cuDNN"]})
    with factory() as session:
        row = queries.results_frame(session).iloc[0]
    assert (row["commit"], row["tf32"], row["kernels"], row["dtype"]) == ("cellcommit", "off", "convolution: cuDNN",
                                                                          "float32")
    out = tmp_path / "cells.csv"
    assert main(["export", "--db", db_url, "--format", "csv", "--out", str(out)]) == 0
    csv = pd.read_csv(out)
    assert {"commit", "tf32", "kernels"} <= set(csv.columns) and csv["commit"].iloc[0] == "cellcommit"


def test_a_cell_with_tf32_in_force_is_not_shown_as_float32(db_url):
    factory = _one_result(db_url, {"commit": "c", "tf32": "cudnn"})
    with factory() as session:
        row = queries.results_frame(session).iloc[0]
    assert (row["dtype"], row["tf32"]) == ("tf32", "cudnn")


def test_bundles_carry_each_cells_provenance_and_refuse_a_dirty_tree_unless_told(db_url, tmp_path):
    _one_result(db_url, {"commit": "c", "dirty": True, "diff_sha": "abc", "tf32": "off"},
                run_provenance={"git_commit": "c-dirty"})
    path = tmp_path / "bundle.json"
    assert main(["export", "--db", db_url, "--format", "bundle", "--out", str(path)]) == 2
    assert not path.exists()
    assert main(["export", "--db", db_url, "--format", "bundle", "--out", str(path), "--allow-dirty"]) == 0
    data = json.loads(path.read_text())
    assert data["dirty"]["note"].startswith("measured from a checkout with uncommitted changes")
    assert data["runs"][0]["results"][0]["provenance"]["diff_sha"] == "abc"
    assert next(m for m in data["catalogue"]["methods"] if m["id"] == "conv1x1")["cudnn"] == ["eager", "compile"]
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert main(["import", str(path), "--db", other]) == 0
    with sessionmaker(results_db.open_engine(other))() as session:
        assert session.get(results_db.Result, 1).provenance["diff_sha"] == "abc"
