"""The catalogue itself: ids, baselines, parameter matching, FLOP formulas, and
every method and backend through the runner's own cell at its smallest size."""

import subprocess
import sys

import pytest
import torch

from bench_runner.cell import Cell, run_cell
from bench_runner import flops
from bench_runner.flops import count_flops
from bench_runner.defaults import TimingPolicy
from hadamard_impls import Catalogue, catalogue
from hadamard_impls.modulation.gated_ffn import gated_hidden
from tests.hadamard_impls.cases import backend_cases

FAST = TimingPolicy(warmup_s=0.0, min_block_s=0.0, budget_s=0.0, min_samples=2)


def test_every_method_declares_what_the_runner_and_the_dashboard_need():
    for method in catalogue.methods():
        assert {"eager", "compile"} <= set(method.backends)
        assert method.latex and method.summary
        assert set(method.exponents) <= set(catalogue.benchmarks[method.benchmark].params)


def test_every_method_runs_through_the_runner_without_a_word_on_stderr():
    """What a cell prints, every round's worker prints into the run's output, where a user reads
    it as the run's fault: PyTorch's "CSR support is in beta" (building pruned_linear), a float()
    of a tensor that requires grad (masked_conv's mask density in a train cell), c10's "Memory
    block of unknown size" (a train cell's memory profile). Each eager method in both modes, in
    a fresh process (PyTorch says some things once per process), warnings raised as errors."""
    script = ("import sys\n"
              "from bench_runner.cell import Cell, run_cell\n"
              "from bench_runner.defaults import TimingPolicy\n"
              "from hadamard_impls import catalogue\n"
              "fast = TimingPolicy(warmup_s=0.0, min_block_s=0.0, budget_s=0.0, min_samples=2)\n"
              "for bench in catalogue.benchmarks.values():\n"
              "    size = tuple(bench.sizes('smoke')[0].items())\n"
              "    for method in bench.methods.values():\n"
              "        for mode in ('forward', 'train'):\n"
              "            cell = Cell(bench.id, method.id, 'eager', size, 'cpu', 'float32', mode)\n"
              "            out = run_cell(catalogue, cell, fast)\n"
              "            if out.status not in ('ok', 'skipped'):\n"
              "                print(bench.id, method.id, mode, out.status, out.message)\n")
    done = subprocess.run([sys.executable, "-W", "error", "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", (done.stdout + done.stderr)[-3000:]


@pytest.mark.parametrize("C", [32, 256, 1024])
def test_gated_ffn_parameters_match_the_plain_ffn(C):
    size = {"tokens": 4, "C": C}
    bench = catalogue.benchmarks["gated_ffn"]
    count = {m: sum(p.numel() for p in bench.methods[m].build(size).parameters())
             for m in ("swiglu", "geglu", "ffn_gelu")}
    assert count["swiglu"] == count["geglu"] == 3 * C * gated_hidden(C)
    assert count["swiglu"] == pytest.approx(count["ffn_gelu"], rel=0.01)


@pytest.mark.parametrize("method", catalogue.methods(), ids=lambda m: f"{m.benchmark}.{m.id}")
def test_analytic_flops_match_the_counted_flops(method):
    bench = catalogue.benchmarks[method.benchmark]
    size = bench.sizes("smoke")[0]
    module = method.build(size)
    inputs = bench.inputs(size, "cpu", torch.float32)
    with torch.no_grad():
        counted = count_flops(lambda: module(*inputs))
    assert counted == pytest.approx(method.flops(size), rel=flops.AGREEMENT)


@pytest.mark.parametrize("method, backend, mode", backend_cases(modes=("forward", "train")))
def test_every_method_and_backend_runs_and_matches_its_reference(method, backend, mode):
    size = catalogue.benchmarks[method.benchmark].sizes("smoke")[0]
    cell = Cell(method.benchmark, method.id, backend, tuple(size.items()), "cpu", "float32", mode)
    outcome = run_cell(catalogue, cell, FAST)
    assert outcome.status == "ok", outcome.message
    assert outcome.metrics["time_median_s"] > 0
    assert outcome.metrics["peak_mem_bytes"] > 0
    assert outcome.metrics["flops_counted"] == pytest.approx(
        outcome.metrics["flops"], rel=0.15 if mode == "train" else 0.10)


@pytest.mark.parametrize("method", [m for m in catalogue.methods() if m.float64_reference is not None],
                         ids=lambda m: f"{m.benchmark}.{m.id}")
def test_a_declared_float64_formula_equals_the_module_run_in_float64(method):
    """What a cell's check runs instead of the module in float64 must be the same function: at the
    smoke size and the quick suite's two smallest (the largest would take the module seconds)."""
    bench = catalogue.benchmarks[method.benchmark]
    for size in bench.sizes("smoke") + bench.sizes("quick")[:2]:
        torch.manual_seed(0)
        module = method.build(size).to(torch.float64)
        inputs = bench.inputs(size, "cpu", torch.float64)
        with torch.no_grad():
            torch.testing.assert_close(method.float64_reference(module, *inputs), module(*inputs),
                                       rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_runs_within_its_tolerance(dtype):
    size = catalogue.benchmarks["gated_ffn"].sizes("smoke")[0]
    cell = Cell("gated_ffn", "swiglu", "eager", tuple(size.items()), "cpu", dtype, "forward")
    assert run_cell(catalogue, cell, FAST).status == "ok"


def test_poly_sa_mixes_tokens_in_linear_time_shape():
    """Changing one token changes every output token (it mixes), through one pooled vector."""
    torch.manual_seed(0)
    module = catalogue.benchmarks["token_mixing"].methods["poly_sa"].build({"B": 1, "N": 16, "C": 8, "H": 2})
    x = torch.randn(1, 16, 8)
    y = x.clone()
    y[0, 3] += 1.0
    with torch.no_grad():
        changed = (module(x) - module(y)).abs().sum(-1)[0]
    assert (changed > 0).all()


def test_the_registry_refuses_inconsistent_declarations():
    cat = Catalogue()
    sweeps = {s: [{"n": 1}] for s in ("smoke", "quick", "full")}
    bench = cat.benchmark("b", domain="efficient", title="t", contract="c", params=("n",), sweeps=sweeps,
                          make_inputs=lambda s, g: ())
    common = dict(role="hadamard", latex="", flops=lambda s: 0, bytes=lambda s, i: 0, exponents={"n": 1})

    def documented(size):
        """y = x."""

    bench.method("m", **common)(documented)
    with pytest.raises(ValueError, match="registered twice"):
        bench.method("m", **common)(documented)
    with pytest.raises(ValueError, match="docstring"):
        bench.method("undocumented", **common)(lambda size: None)
    with pytest.raises(ValueError, match="unknown size parameters"):
        bench.method("bad", **{**common, "exponents": {"N": 1}})(documented)
    with pytest.raises(ValueError, match="must give"):
        cat.benchmark("c", domain="efficient", title="t", contract="c", params=("n", "m"), sweeps=sweeps,
                      make_inputs=lambda s, g: ())
    with pytest.raises(ValueError, match="no sweep"):
        cat.benchmark("d", domain="efficient", title="t", contract="c", params=("n",),
                      sweeps={"smoke": [{"n": 1}]}, make_inputs=lambda s, g: ())


@pytest.mark.parametrize("method", catalogue.methods(), ids=lambda m: f"{m.benchmark}.{m.id}")
def test_each_method_declares_the_backends_that_reach_cudnn(method):
    """TF32 in cuDNN follows its own switch: which cells it could touch must be known, so a
    stored result's TF32 can be read per cell. Checked against what the calls run (on the CPU:
    a convolution op, or a recurrent layer, which go to cuDNN on a GPU); compile runs eager's ops."""
    from bench_runner import kernels
    from hadamard_impls import BACKENDS

    bench = catalogue.benchmarks[method.benchmark]
    size = bench.sizes("smoke")[0]
    inputs = bench.inputs(size, "cpu", torch.float32)
    reached = set()
    for backend in ("eager", "library"):
        if backend in method.backends:
            module = method.build(size)
            fn = BACKENDS[backend].prepare(module)
            with torch.no_grad():
                if kernels.reaches_cudnn(lambda: fn(*inputs), module):
                    reached |= {backend} | ({"compile"} if backend == "eager" and "compile" in method.backends
                                            else set())
    assert set(method.cudnn) == reached
