"""Every way a cell can end, on a small catalogue built for the purpose."""

import dataclasses
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sqlalchemy.orm import sessionmaker

import results_db
from bench_runner import cell as cells
from bench_runner import flops, reference, selection, sweep
from bench_runner.cell import Cell, run_cell, run_group
from bench_runner.executor import InProcess
from results_db import queries
from tests.bench_runner.toy import FAST, TOY_METHOD, Scale, toy_catalogue

def cell(method, device="cpu", mode="forward"):
    return Cell("toy", method, "eager", (("n", 8),), device, "float32", mode)


def test_a_working_method_is_measured():
    outcome = run_cell(toy_catalogue(), cell("double"), FAST)
    assert outcome.status == "ok"
    assert outcome.metrics["flops"] == 8
    assert outcome.metrics["flops_counted"] == 8
    assert outcome.metrics["time_median_s"] > 0
    # the 32-byte output, plus at most a few bytes of scalar temporaries
    assert 8 * 4 <= outcome.metrics["peak_mem_bytes"] < 8 * 4 + 64


def test_train_mode_counts_the_backward_too():
    forward = run_cell(toy_catalogue(), cell("double"), FAST)
    train = run_cell(toy_catalogue(), cell("double", mode="train"), FAST)
    assert train.status == "ok"
    assert train.metrics["flops_counted"] > forward.metrics["flops_counted"]
    assert train.metrics["flops"] == 3 * forward.metrics["flops"]


def test_a_raising_method_is_an_error_with_its_message():
    outcome = run_cell(toy_catalogue(), cell("raises"), FAST)
    assert outcome.status == "error"
    assert outcome.message == "ValueError: this method is broken on purpose"


def test_exhausted_memory_is_oom():
    outcome = run_cell(toy_catalogue(), cell("exhausts"), FAST)
    assert outcome.status == "oom"
    assert "allocate" in outcome.message


def test_a_wrong_result_is_a_mismatch_and_is_not_timed():
    outcome = run_cell(toy_catalogue(), cell("drifts"), FAST)
    assert outcome.status == "mismatch"
    assert "float64 reference" in outcome.message
    assert outcome.metrics == {}


def _with_a_formula(formula):
    """The toy catalogue with one more method, `scaled`: Scale(2.0), checked against `formula`."""
    catalogue = toy_catalogue()

    def scaled(size):
        """A toy method whose float64 reference is a formula of its own."""
        return Scale(2.0)
    catalogue.benchmarks["toy"].method("scaled", role="baseline", float64_reference=formula, **TOY_METHOD)(scaled)
    return catalogue


def test_a_method_with_a_float64_formula_is_checked_against_it_and_says_so():
    right = run_cell(_with_a_formula(lambda module, a: 2 * a), cell("scaled"), FAST)
    assert right.status == "ok"
    assert right.provenance["check"] == reference.FLOAT64_HERE + reference.BY_ITS_FORMULA
    # The formula, not the module run in float64, is what the output must match.
    wrong = run_cell(_with_a_formula(lambda module, a: 3 * a), cell("scaled"), FAST)
    assert wrong.status == "mismatch"
    assert "float64 reference" in wrong.message


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a CUDA device")
def test_cuda_without_a_device_is_skipped_with_the_reason():
    outcome = run_cell(toy_catalogue(), cell("double", device="cuda"), FAST)
    assert (outcome.status, outcome.message) == ("skipped", "no CUDA device")


def test_a_size_that_cannot_fit_is_skipped_before_it_runs(monkeypatch):
    monkeypatch.setattr(reference, "available_memory", lambda device: 10)  # bytes: less than any cell needs
    outcome = run_cell(toy_catalogue(), cell("double"), FAST)
    assert outcome.status == "skipped"
    assert outcome.message.startswith("needs about")


def test_failing_cells_do_not_stop_the_sweep(db_url):
    cat = toy_catalogue()
    sel = selection.Selection(suite="smoke", benchmarks=["toy"])
    cells = selection.plan(cat, sel)
    factory = sessionmaker(results_db.open_engine(db_url))
    run_id = sweep.start(factory, cat, sel, cells)
    counts = sweep.execute(factory, run_id, cells, InProcess(cat, FAST))
    assert counts == {"ok": 2, "error": 2, "oom": 2, "mismatch": 2}
    with factory() as session:
        frame = queries.results_frame(session)
    assert len(frame) == 8
    # The cells after the failures ran: every method reached its second size.
    assert set(frame[frame["size"] == "n=16"]["method"]) == {"double", "raises", "exhausts", "drifts"}


@pytest.mark.parametrize("kwargs, words", [
    (dict(suite="nope"), "unknown suite"),
    (dict(suite="smoke", benchmarks=["nope"]), "unknown benchmark"),
    (dict(suite="smoke", methods=["nope"]), "unknown method"),
    (dict(suite="smoke", backends=["nope"]), "unknown backend"),
    (dict(suite="smoke", dtypes=["float8"]), "unknown dtype"),
    (dict(suite="smoke", modes=["sideways"]), "unknown mode"),
    (dict(suite="smoke", backends=["compile"]), "matches no cell"),
])
def test_bad_selections_are_refused(kwargs, words):
    with pytest.raises(selection.SelectionError, match=words):
        selection.plan(toy_catalogue(), selection.Selection(**kwargs))


@pytest.mark.parametrize("mode, calls", [("forward", 1), ("train", 3)])
def test_preparing_a_cell_calls_it_only_as_often_as_its_mode_needs(monkeypatch, mode, calls):
    """A forward cell's one call before its warm-up is its first (compile, check): an `ab` side
    prepares every cell again each round, one side after the other. A train cell also takes its
    output's shape and compiles its backward graph."""
    from bench_runner import cell as cells
    from tests.bench_runner import toy

    made = []
    real_forward = toy.Scale.forward
    monkeypatch.setattr(toy.Scale, "forward", lambda self, a: made.append(1) or real_forward(self, a))
    prepared = cells.prepare(toy_catalogue(), cell("double", mode=mode), FAST, check=False)
    assert not isinstance(prepared, cells.CellOutcome), prepared
    assert len(made) == calls
    prepared.call()
    assert len(made) == calls + 1


def test_train_mode_produces_fresh_gradients_on_every_call():
    from bench_runner.cell import _mode_call
    from hadamard_impls import catalogue as real

    bench = real.benchmarks["gated_ffn"]
    size = bench.sizes("smoke")[0]
    module = bench.methods["swiglu"].build(size)
    inputs = bench.inputs(size, "cpu", torch.float32)
    call = _mode_call(module, module, inputs, "train")
    call()
    first = [p.grad.clone() for p in module.parameters()]
    call()  # gradients are set to None between calls, so they do not accumulate
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    for before, p in zip(first, module.parameters()):
        torch.testing.assert_close(p.grad, before)
    assert inputs[0].grad is not None


def test_a_compiled_train_cell_traces_only_the_graph_it_times():
    """Its first call (compile, check) runs with gradients on, as the timed calls do: under
    no_grad Dynamo would trace and Inductor build an inference graph besides, never timed."""
    from torch._dynamo.utils import counters
    from hadamard_impls import catalogue as real

    size = real.benchmarks["gated_ffn"].sizes("smoke")[0]
    cells._start_compiler("cpu")  # its tiny graph, where this is the process's first compiled cell
    counters.clear()
    outcome = run_cell(real, Cell("gated_ffn", "swiglu", "compile", tuple(size.items()), "cpu", "float32", "train"),
                       FAST)
    assert outcome.status == "ok", outcome.message
    assert outcome.metrics["first_call_s"] > 0
    assert counters["stats"]["unique_graphs"] == 1


def test_a_process_starts_the_compiler_before_its_first_compiled_cell_and_not_for_eager_ones(monkeypatch):
    """torch.compile's one-time start in a process (2.0-2.5 s on a 2-vCPU VM) is taken before the
    first compiled cell's first call, so that its first_call_s is its own, as every later cell's is."""
    import functools

    from hadamard_impls import BACKENDS
    from hadamard_impls import catalogue as real

    events = []
    monkeypatch.setattr(cells, "_start_compiler", functools.cache(lambda device: events.append(f"start {device}")))
    compile_ = BACKENDS["compile"]

    def prepare(module):
        fn = compile_.prepare(module)
        return lambda *args: (events.append("call"), fn(*args))[1]

    monkeypatch.setitem(BACKENDS, "compile", dataclasses.replace(compile_, prepare=prepare))
    size = tuple(real.benchmarks["gated_ffn"].sizes("smoke")[0].items())
    assert run_cell(real, Cell("gated_ffn", "swiglu", "eager", size, "cpu", "float32", "forward"), FAST).status == "ok"
    assert events == []
    for method in ("swiglu", "geglu"):
        outcome = run_cell(real, Cell("gated_ffn", method, "compile", size, "cpu", "float32", "forward"), FAST)
        assert outcome.status == "ok", outcome.message
    assert events[0] == "start cpu" and events.count("start cpu") == 1 and events.count("call") > 2


@pytest.mark.slow
def test_starting_the_compiler_takes_inductors_probe_of_the_cpu(tmp_path):
    """What the start is for, in a process of its own: Inductor's probe of the CPU's vector
    instructions (child processes that load a test library, 1.2 s of the 2.0-2.5) done by it."""
    script = """
import torch
from torch._inductor import cpu_vec_isa
from bench_runner import cell
print(cpu_vec_isa.valid_vec_isa_list.cache_info().currsize)
cell._start_compiler("cpu")
print(cpu_vec_isa.valid_vec_isa_list.cache_info().currsize)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                          text=True, timeout=300)
    assert done.stdout.split() == ["0", "1"], done.stderr


def test_a_group_compiles_each_of_its_compiled_members_once():
    """Dynamo's cache is cleared before a group, not between its members: a reset between them
    threw away the members compiled before, which compiled again at their next call. Three of
    gated_ffn's methods share one `forward` (an activation apart), the case that recompiles."""
    import random

    from torch._dynamo.utils import counters
    from hadamard_impls import catalogue as real

    size = tuple(real.benchmarks["gated_ffn"].sizes("smoke")[0].items())
    work = [(Cell("gated_ffn", m, b, size, "cpu", "float32", "forward"), True)
            for m in ("swiglu", "geglu", "glu") for b in ("eager", "compile")]
    cells._start_compiler("cpu")
    counters.clear()
    outcomes = run_group(real, work, FAST, random.Random(0))
    assert [o.status for o in outcomes] == ["ok"] * len(work), [o.message for o in outcomes]
    assert counters["stats"]["unique_graphs"] == 3

GIB = 2**30


def test_a_group_checks_and_counts_each_method_once_and_still_catches_a_wrong_one(monkeypatch):
    """A method's backends share its float64 reference and its FLOP count (of the eager module)."""
    from hadamard_impls import catalogue

    built, build = [], reference._build
    monkeypatch.setattr(reference, "_build", lambda method, *rest: built.append(method.id) or build(method, *rest))
    counts, count = [], flops.count_flops
    monkeypatch.setattr(flops, "count_flops", lambda call: counts.append(call) or count(call))
    size = tuple(catalogue.benchmarks["bimodal_fusion"].sizes("smoke")[0].items())
    # bilinear_full's two backends apart in the group's order: prepared one after the other all the same.
    members = [Cell("bimodal_fusion", m, b, size, "cpu", "float32", "forward")
               for m, b in (("bilinear_full", "eager"), ("mlb", "eager"), ("bilinear_full", "library"))]
    outcomes = run_group(catalogue, [(c, True) for c in members], FAST, random.Random(0))
    assert [o.status for o in outcomes] == ["ok", "ok", "ok"]
    assert sorted(built) == ["bilinear_full", "mlb"] and len(counts) == 2
    assert outcomes[0].metrics["flops_counted"] == outcomes[2].metrics["flops_counted"] > 0
    # The kept reference is a method's own: drifts, after double, is checked against its own and fails.
    outcomes = run_group(toy_catalogue(), [(cell("double"), True), (cell("drifts"), True)], FAST, random.Random(0))
    assert [o.status for o in outcomes] == ["ok", "mismatch"]


@pytest.mark.parametrize("need, free_device, free_host, dtype, expected", [
    ((1, 2, 1), 10, 100, torch.float32, ("cuda", reference.FLOAT64_HERE)),
    ((1, 40, 20), 10, 100, torch.float32, ("cpu", reference.FLOAT64_ON_HOST)),  # non_local at H = 192, say
    ((1, 400, 5), 10, 100, torch.bfloat16, ("cuda", reference.FLOAT32_REFERENCE)),
    ((1, 400, 200), 10, 100, torch.float32, "its float64 reference needs about 400.0 GiB, more than cuda or the host has free"),
    ((20, 40, 20), 10, 100, torch.float32, "needs about 20.0 GiB, 10.0 GiB free on cuda"),
])
def test_the_reference_moves_to_the_host_when_the_gpu_cannot_hold_it(need, free_device, free_host, dtype, expected):
    cell_need, float64, float32 = (n * GIB for n in need)
    plan = reference.reference_plan(cell_need, float64, float32, dtype, "cuda", free_device * GIB, free_host * GIB)
    assert plan == expected


def test_a_cell_says_which_check_it_had():
    from hadamard_impls import catalogue

    outcomes = {}
    for bench, method in (("elementwise", "hadamard"), ("elementwise", "dropout")):
        size = catalogue.benchmarks[bench].sizes("smoke")[0]
        outcomes[method] = run_cell(catalogue, Cell(bench, method, "eager", tuple(size.items()), "cpu", "float32",
                                                    "forward"), FAST)
    assert outcomes["hadamard"].provenance["check"] == reference.FLOAT64_HERE
    assert outcomes["dropout"].provenance["check"] == reference.OWN_CHECK


def test_a_cell_records_how_its_timed_calls_ran_not_how_later_calls_did(monkeypatch):
    # On a GPU the graph timing and the energy window call the function again after the
    # timed calls; inside the graph capture a replaying backend launches directly. An H200
    # run stored "direct: inside another capture" for triton cells that were timed as
    # replays. Here a fake backend stands in for the replay and the energy window for the
    # calls made after timing.
    from bench_runner import cell as cell_module, telemetry
    from hadamard_impls.backends import Backend

    timing_done = []

    class Replaying:
        def __init__(self, module):
            self.direct, self.launch = module, "direct: not called yet"

        def __call__(self, *args):
            self.launch = "direct: called after timing" if timing_done else "cuda graph"
            return self.direct(*args)

    def energy_after_timing(call, sync, source, **_):
        timing_done.append(True)
        call()
        return {}

    monkeypatch.setitem(cell_module.BACKENDS, "eager", Backend("eager", "replays", Replaying, lambda d: None))
    monkeypatch.setattr(telemetry, "energy_metrics", energy_after_timing)
    outcome = run_cell(toy_catalogue(), Cell("toy", "double", "eager", (("n", 8),), "cpu", "float32", "forward"),
                       dataclasses.replace(FAST, energy=True))
    assert outcome.status == "ok", outcome.message
    assert timing_done, "the energy window never called the function"
    assert outcome.provenance["launch"] == "cuda graph"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a CUDA device")
def test_a_triton_cell_says_how_its_timed_calls_were_launched():
    pytest.importorskip("triton", reason="Triton is not installed")
    from hadamard_impls import catalogue

    size = catalogue.benchmarks["elementwise"].sizes("smoke")[0]
    outcome = run_cell(catalogue, Cell("elementwise", "hadamard", "triton", tuple(size.items()), "cpu", "float32",
                                       "forward"), FAST)
    assert outcome.status == "ok", outcome.message
    # The interpreter on the CPU: no graph to replay, and the cell records that it ran directly.
    assert outcome.provenance["launch"] == "direct: not on a CUDA device"
    assert outcome.metrics["peak_mem_bytes"] >= size["n"] * 4  # the output, seen through the direct launches


def test_preparing_an_eager_cell_imports_neither_dynamo_nor_inductor():
    # An `ab` side prepares every cell of every round in a fresh process, unchecked after the first:
    # importing Dynamo (and Inductor with it) for a reset or the linker cost it 0.85 s a round.
    script = """
import sys
from bench_runner import cell, defaults
from tests.bench_runner.toy import toy_catalogue
prepared = cell.prepare(toy_catalogue(), cell.Cell("toy", "double", "eager", (("n", 8),), "cpu", "float32", "forward"),
                        defaults.POLICIES["smoke"], check=False)
print(type(prepared).__name__, "torch._dynamo" in sys.modules, "torch._inductor" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["Prepared", "False", "False"], done.stderr
