"""What a selection plans: the paper suite, size filters, and the triton backend's reasons."""

import importlib.util

import pytest
import torch

from bench_runner import selection
from bench_runner.cli import main
from hadamard_impls import BACKENDS, catalogue


def test_the_paper_suite_holds_figures_s3_and_s4_only():
    cells = selection.plan(catalogue, selection.Selection("paper", backends=["eager"]))
    assert {c.benchmark for c in cells} == {"spatial_mixing", "token_mixing"}
    tokens = sorted({dict(c.size)["N"] for c in cells if c.benchmark == "token_mixing"})
    assert tokens == [512, 1024, 2048, 4096, 8192, 16384]
    assert {c.method for c in cells} >= {"poly_nl", "non_local", "conv1x1", "poly_sa", "softmax_attention",
                                         "sdpa", "linear"}


def test_a_benchmark_outside_the_paper_suite_is_named_in_the_error():
    with pytest.raises(selection.SelectionError, match="the paper suite holds only spatial_mixing, token_mixing"):
        selection.plan(catalogue, selection.Selection("paper", benchmarks=["elementwise"]))


def test_a_size_filter_keeps_the_matching_sizes_of_every_selected_benchmark():
    cells = selection.plan(catalogue, selection.Selection("full", benchmarks=["elementwise"], methods=["hadamard"],
                                                  sizes=["n=67108864"]))
    assert {dict(c.size)["n"] for c in cells} == {2**26} and {c.backend for c in cells} == {"eager", "compile",
                                                                                           "triton"}
    cells = selection.plan(catalogue, selection.Selection("full", benchmarks=["spatial_mixing"], sizes=["H=64,C=512",
                                                                                                "H=16"]))
    assert sorted({(dict(c.size)["H"], dict(c.size)["C"]) for c in cells}) == [(16, 256), (64, 512)]


@pytest.mark.parametrize("size, message", [
    ("n=abc", "not of the form NAME=INT"),
    ("n", "not of the form NAME=INT"),
    ("q=3", "unknown size parameter 'q' (known: n)"),
    ("n=5", "the selection matches no cell"),
])
def test_a_bad_size_filter_is_one_line_and_exit_2(db_url, capsys, size, message):
    assert main(["run", "--suite", "smoke", "--benchmark", "elementwise", "--size", size, "--db", db_url]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_triton_is_skipped_with_its_reason_where_it_cannot_run(monkeypatch):
    unavailable = BACKENDS["triton"].unavailable
    if torch.cuda.is_available():
        assert unavailable(torch.device("cuda")) is None
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    if importlib.util.find_spec("triton") is not None:
        assert "need a CUDA GPU" in unavailable(torch.device("cpu"))
        monkeypatch.setenv("TRITON_INTERPRET", "1")
        assert unavailable(torch.device("cpu")) is None
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert "Triton is not installed" in unavailable(torch.device("cpu"))
