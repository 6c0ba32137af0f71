"""One cell of a sweep: check a backend against its reference, then measure it.

A cell is (benchmark, method, backend, size, device, dtype, mode). Whatever
happens inside, the cell ends as a `CellOutcome` with a status, so one failing
cell never stops a sweep.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from hadamard_bench import vocabulary
from hadamard_impls import BACKENDS, Catalogue, size_label

from . import defaults, flops, kernels, linker, machine, memory, reference, settle, telemetry, timing

DTYPES = dict(zip(vocabulary.DTYPES, (torch.float32, torch.bfloat16, torch.float16)))
MODES = vocabulary.MODES

@dataclass(frozen=True)
class Cell:
    benchmark: str
    method: str
    backend: str
    size: tuple[tuple[str, int], ...]  # ordered (param, value) pairs, hashable
    device: str
    dtype: str
    mode: str

    @property
    def size_dict(self) -> dict[str, int]:
        return dict(self.size)

    def key(self) -> dict[str, str]:
        """The cell's identity as stored: the same words as the CLI flags."""
        return dict(benchmark=self.benchmark, method=self.method, backend=self.backend,
                    device=self.device, dtype=self.dtype, mode=self.mode,
                    size=size_label(self.size_dict))

    def group(self) -> tuple:
        """The cell's comparison group: the methods and backends of one benchmark, size, device,
        dtype and mode, the cells whose ratios the tool reports (and which take turns)."""
        return self.benchmark, self.size, self.device, self.dtype, self.mode


@dataclass
class CellOutcome:
    status: str  # ok, error, oom, mismatch, skipped
    message: str | None = None
    samples: list[float] | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    provenance: dict | None = None  # what ran it (machine.cell_provenance, the check; finish adds the kernels chosen)
    unsettled: bool = False  # timed while the cores were still slow to work together (bench_runner.settle)
    # Timed in turns with its comparison group (cell.run_group): sample i comes from cycle i.
    interleaved: bool = False


def device_unavailable(device: str) -> str | None:
    if device == "cuda" and not torch.cuda.is_available():
        return "no CUDA device"
    return None


def dtype_unsupported(device: str, dtype: str) -> str | None:
    if device == "cuda" and torch.cuda.is_available() and dtype == "bfloat16" \
            and not torch.cuda.is_bf16_supported():
        return f"{torch.cuda.get_device_name(0)} has no bfloat16 support"
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text)


def _require_grad(module: torch.nn.Module, inputs: tuple) -> list[torch.Tensor]:
    """What a train call differentiates, each now requiring a gradient: the floating-point
    inputs and the module's parameters."""
    return [t.requires_grad_(True) for t in inputs if t.is_floating_point()] + list(module.parameters())


def _mode_call(fn: Callable, module: torch.nn.Module, inputs: tuple, mode: str) -> Callable[[], object]:
    """The zero-argument callable that is timed: inference, or forward and backward."""
    if mode == "forward":
        def forward():
            with torch.no_grad():
                return fn(*inputs)
        return forward

    leaves = _require_grad(module, inputs)
    # Only its shape is wanted, but the output is taken with gradients on, as the timed
    # calls run: a compiled function then reuses their graph instead of tracing another.
    grad_out = torch.ones_like(fn(*inputs))

    def train():
        for t in leaves:  # as optimizer.zero_grad(set_to_none=True) would
            t.grad = None
        fn(*inputs).backward(grad_out)
    return train


def not_in(catalogue: Catalogue, cell: Cell) -> str | None:
    """Why `catalogue` has no such cell, or None. Cells are planned from one catalogue; an `ab`
    side is another version of the project or of a plugin, which may lack a benchmark, method or
    backend added since, or size a benchmark by other parameters. That side skips the cell: had
    it failed, the method the head adds would read as fixed (failed on the base, `ok` on the
    head), and one the head removes as broken."""
    benchmark = catalogue.benchmarks.get(cell.benchmark)
    if benchmark is None:
        return f"this version's catalogue has no benchmark {cell.benchmark!r}"
    method = benchmark.methods.get(cell.method)
    if method is None:
        return f"this version's catalogue has no method {cell.method!r} in {cell.benchmark}"
    if cell.backend not in method.backends or cell.backend not in BACKENDS:
        return f"this version's catalogue has no backend {cell.backend!r} for {cell.benchmark}/{cell.method}"
    if set(cell.size_dict) != set(benchmark.params):
        return (f"this version's {cell.benchmark} is sized by {', '.join(benchmark.params)}, "
                f"not {', '.join(cell.size_dict)}")
    return None


def _unavailable(catalogue: Catalogue, cell: Cell) -> CellOutcome | tuple[str, str]:
    """Why the cell cannot run here as a `skipped` outcome, or where its reference runs."""
    reason = (not_in(catalogue, cell) or device_unavailable(cell.device) or dtype_unsupported(cell.device, cell.dtype)
              or BACKENDS[cell.backend].unavailable(torch.device(cell.device)))
    if reason:
        return CellOutcome("skipped", reason)
    method = catalogue.benchmarks[cell.benchmark].methods[cell.method]
    plan = reference.check_plan(method, cell.size_dict, cell.device, DTYPES[cell.dtype], cell.mode)
    return CellOutcome("skipped", plan) if isinstance(plan, str) else plan


def failed(exc: BaseException) -> CellOutcome:
    """The outcome of a cell that raised: `oom` or `error`, with the exception in one line."""
    return CellOutcome("oom" if _is_oom(exc) else "error", _one_line(exc))


# The `compile` backend (vocabulary.BACKENDS): its first call has Inductor build C++ kernels with g++,
# so it is the one the linker matters to.
COMPILE = "compile"


def process_settings(backends: Iterable[str] = (COMPILE,)) -> None:
    """What a process sets before it runs cells of `backends` (each round's worker, an `ab` side, a
    process compiling ahead, an in-process run): the same in all, since Inductor's cache key holds them."""
    # float32 cells compute in float32: PyTorch lets cuDNN convolutions use TF32 tensor
    # cores by default (matmuls not), which put a GPU partial_conv cell 2e-3 off its
    # float64 reference, past float32 tolerances, and would time a cheaper format.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    # Only for Inductor: finding its cache folder, where the linker's script lives, imports it
    # (0.85 s), which a process of eager cells never needs. With _forget_compiled's check, the sides
    # of an `ab` session of 48 eager cells spent 3.7 s a round preparing them, not 5.1 (2026-12-05).
    if COMPILE in backends:
        linker.use_faster_linker()


def _one_more(x: torch.Tensor) -> torch.Tensor:
    return x + 1


@functools.cache
def _start_compiler(device_type: str) -> None:
    """Once a process and device, before its first `compile` cell's first call: a tiny function
    compiled and called, so that torch.compile's one-time start in a process (what Dynamo and
    Inductor set up on first use, Inductor's probe of the CPU's vector instructions in child
    processes) is not counted in that cell's first_call_s. Measured on a 2-vCPU VM with every
    kernel in the cache (2026-12-07): a worker's first compiled cell took 2.0-2.5 s to its first
    call where the next took 0.04-0.09 s; after this, 0.13 s. Its code is cached like a cell's.
    A compiler that fails here fails the cell itself next, which says why."""
    try:
        torch.compile(_one_more)(torch.ones(8, device=device_type))
    except Exception:  # noqa: BLE001 -- the cell's own compile reports it
        pass


def _forget_compiled() -> None:
    """Before a cell, or a whole group: nothing compiled for an earlier one is kept."""
    # Dynamo caches compiled code per `forward` code object. Kept, earlier sizes would pile up
    # to its recompile limit, past which it silently runs eager code, and a new size would have
    # it build a kernel for dynamic shapes. Not between a group's members, which share a size:
    # a reset there threw away the members compiled before, and each compiled again at its
    # next call (half the compiles of a quick round, 2026-12-03). A process that has not imported
    # Dynamo has compiled nothing, and importing it to reset it took 0.85 s (Inductor with it).
    if "torch._dynamo" in sys.modules:
        torch._dynamo.reset()


def release(devices) -> None:
    """After a cell or a group: what its device holds cached is handed back."""
    if "cuda" in devices:  # hand cached blocks back so the next cell's peak starts clean
        gc.collect()
        torch.cuda.empty_cache()


def run_cell(catalogue: Catalogue, cell: Cell, policy: defaults.TimingPolicy,
             clock: timing.Clock | None = None, check: bool = True) -> CellOutcome:
    """Check a cell against its reference, time it, count its memory and FLOPs. With
    `check=False` (a later round of a cell that passed all that) only warm up and time it."""
    try:
        prepared = prepare(catalogue, cell, policy, check, clock)
        if isinstance(prepared, CellOutcome):
            return prepared
        unsettled = settle.before_timing(cell.device, policy.settle_s)
        return finish(prepared, timing.measure(prepared.call, prepared.clock, prepared.policy), unsettled)
    except Exception as exc:  # noqa: BLE001 -- every failure becomes a stored status
        return failed(exc)
    finally:
        release({cell.device})


def prepare(catalogue: Catalogue, cell: Cell, policy: defaults.TimingPolicy, check: bool,
            clock: timing.Clock | None = None) -> Prepared | CellOutcome:
    """One cell on its own, ready to time: the process's settings set, nothing compiled for an
    earlier cell kept, the cell built, checked against its reference (with `check`) and warmed
    through its first call; or the outcome that says why it cannot run. run_cell times it one
    way; an `ab` side and the pass that compiles ahead start from it too. release() after."""
    process_settings({cell.backend})
    plan = _unavailable(catalogue, cell)
    if isinstance(plan, CellOutcome):
        return plan
    try:
        _forget_compiled()
        return _prepare(catalogue, cell, policy, clock, check, plan)
    except Exception as exc:  # noqa: BLE001 -- every failure becomes a stored status
        return failed(exc)


def finish(prepared: Prepared, measured: timing.Measurement, unsettled: bool = False,
           members: int = 0) -> CellOutcome:
    """The outcome of a prepared cell once timed (_finish: memory and FLOPs counted after the
    timing), or of the failure that stopped it."""
    try:
        return _finish(prepared, measured, unsettled, members)
    except Exception as exc:  # noqa: BLE001
        return failed(exc)


def memory_need(catalogue: Catalogue, cell: Cell) -> float:
    """Bytes a cell holds once built (reference.cell_need, as check_plan reads it)."""
    method = catalogue.benchmarks[cell.benchmark].methods[cell.method]
    return reference.cell_need(method, cell.size_dict, DTYPES[cell.dtype].itemsize, cell.mode)


def group_fits(catalogue: Catalogue, cells: list[Cell]) -> bool:
    """Whether a group's members, built and held at once, fit their device (their memory_need,
    added up): a group that does not is timed one member at a time."""
    need = {}
    for cell in cells:
        need[cell.device] = need.get(cell.device, 0) + memory_need(catalogue, cell)
    free = {device: reference.available_memory(device) for device in need}
    return all(free[d] is None or n <= 0.9 * free[d] for d, n in need.items())


ALONE_NOTE = "timed one at a time: its group does not fit in memory together"


def run_group(catalogue: Catalogue, work: list[tuple[Cell, bool]], policy: defaults.TimingPolicy,
              rng: random.Random, clock: timing.Clock | None = None) -> list[CellOutcome]:
    """The members of one comparison group (`work`: each cell with whether to check it), timed
    in turns (timing.interleave): each is built, checked and warmed up, then all are timed
    cycle by cycle in `rng`'s orders, then each is finished (memory, FLOPs) on its own. A member
    that cannot run ends as its own outcome and the others go on; a group too large to hold at
    once, or one whose turns fail, is timed one member at a time (its outcomes say so)."""
    process_settings({cell.backend for cell, _ in work})
    outcomes: list[CellOutcome | None] = [None] * len(work)
    plans = {}
    for i, (cell, _) in enumerate(work):
        plan = _unavailable(catalogue, cell)
        if isinstance(plan, CellOutcome):
            outcomes[i] = plan
        else:
            plans[i] = plan
    if len(plans) < 2 or not group_fits(catalogue, [work[i][0] for i in plans]):
        return [outcomes[i] or _alone(catalogue, work[i], policy, clock, len(plans) > 1)
                for i in range(len(work))]
    try:
        _forget_compiled()
        prepared, last = {}, reference.LastExpected()
        # A method's backends one after another, so each checks against the reference kept from the last.
        for i in sorted(plans, key=lambda i: work[i][0].method):
            try:
                found = _prepare(catalogue, work[i][0], policy, clock, work[i][1], plans[i], last)
            except Exception as exc:  # noqa: BLE001 -- one member's failure is its own
                found = failed(exc)
            if isinstance(found, CellOutcome):
                outcomes[i] = found
            else:
                prepared[i] = found
        if not prepared:
            return outcomes
        prepared = {i: prepared[i] for i in sorted(prepared)}  # the members in their order in `work`
        unsettled = settle.before_timing(work[next(iter(prepared))][0].device, policy.settle_s)
        try:
            members = list(prepared.values())
            measured = timing.interleave([p.call for p in members], members[0].clock, members[0].policy, rng)
        except Exception:  # noqa: BLE001 -- a failing member: each is timed alone, to say which
            measured = None
        counted_flops = {}  # a group shares its mode, so a method's count serves all its backends
        for n, (i, p) in enumerate(prepared.items()):
            try:
                if measured is None:
                    outcomes[i] = _finish(p, timing.measure(p.call, p.clock, p.policy),
                                          settle.before_timing(p.cell.device, policy.settle_s),
                                          counted_flops=counted_flops)
                else:
                    outcomes[i] = _finish(p, measured[n], unsettled, members=len(prepared) if len(prepared) > 1 else 0,
                                          counted_flops=counted_flops)
            except Exception as exc:  # noqa: BLE001
                outcomes[i] = failed(exc)
        return outcomes
    finally:
        release({c.device for c, _ in work})


def _alone(catalogue: Catalogue, item: tuple[Cell, bool], policy: defaults.TimingPolicy,
           clock: timing.Clock | None, too_large: bool) -> CellOutcome:
    outcome = run_cell(catalogue, item[0], policy, clock, check=item[1])
    if too_large and outcome.status == "ok":
        outcome.provenance = {**(outcome.provenance or {}), "timed": ALONE_NOTE}
    return outcome


@dataclass
class Prepared:
    """A cell built, checked and warmed through its first call: what is timed, and what its
    metrics are counted from once it has been."""

    cell: Cell
    method: object
    module: torch.nn.Module
    inputs: tuple
    fn: Callable
    call: Callable[[], object]
    clock: timing.Clock
    policy: defaults.TimingPolicy
    check: bool
    provenance: dict | None
    first_call_s: float


def _graph_timing(call: Callable[[], object], clock: timing.Clock, policy: defaults.TimingPolicy) -> dict:
    """The same call replayed from a CUDA graph: what is left once launch overhead is gone."""
    try:
        replay = timing.cuda_graph(call)
    except Exception:  # noqa: BLE001 -- not every call can be captured (host syncs, CPU ops)
        return {}
    graphed = timing.measure(replay, clock, policy)
    return {"time_graph_median_s": graphed.median}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timing_metrics(measured: timing.Measurement) -> dict[str, float]:
    return {"time_median_s": measured.median, "time_iqr_s": measured.iqr,
            "time_min_s": measured.min, "time_mean_s": measured.mean,
            "samples": len(measured.samples), "calls_per_sample": measured.calls_per_sample,
            "noisy": float(measured.noisy), "median_rel_ci": measured.rel_ci}


def _prepare(catalogue: Catalogue, cell: Cell, policy: defaults.TimingPolicy, clock: timing.Clock | None,
             check: bool, plan: tuple[str, str], last: reference.LastExpected | None = None) -> Prepared | CellOutcome:
    bench = catalogue.benchmarks[cell.benchmark]
    method = bench.methods[cell.method]
    device, dtype, size = torch.device(cell.device), DTYPES[cell.dtype], cell.size_dict

    torch.manual_seed(0)
    module = method.build(size).to(device=device, dtype=dtype)
    inputs = bench.inputs(size, device, dtype)
    fn = BACKENDS[cell.backend].prepare(module)

    # The first call compiles, outside any timing, in the mode the timed calls run in: a
    # train cell's first call under no_grad would have Dynamo trace and Inductor build an
    # inference graph the timing never uses, and checking it would check the wrong code.
    train = cell.mode == "train"
    if train:
        _require_grad(module, inputs)
    if cell.backend == COMPILE:
        _start_compiler(device.type)
    with torch.set_grad_enabled(train):
        started = time.perf_counter()
        actual = fn(*inputs)
        _synchronize(device)
        first_call_s = time.perf_counter() - started
        provenance = None
        if check:
            with torch.no_grad():
                mismatch = reference.check(method, size, device, dtype, inputs, actual.detach(), plan, last)
            if mismatch:
                return CellOutcome("mismatch", mismatch)
            provenance = {**machine.cell_provenance(cell.device),
                          "check": reference.check_label(method, plan)}
        del actual

    call = _mode_call(fn, module, inputs, cell.mode)
    if train:
        # The backward graph compiles here, before timing. A forward call would only repeat the
        # first: its warm-up (timing) follows anyway, and in an `ab` session each side paid that
        # call again for every cell of every round, one side after the other (about 1 s a round
        # over the 110-cell selection on a 2-vCPU VM, 2026-12-06).
        call()
    if device.type == "cuda" and policy.flush_l2:
        # Each call is timed on its own after its flush; blocks would only repeat flushes.
        policy = dataclasses.replace(policy, min_block_s=0.0)
    clock = clock or timing.clock_for(device, policy.flush_l2)
    return Prepared(cell, method, module, inputs, fn, call, clock, policy, check, provenance, first_call_s)


def _finish(p: Prepared, measured: timing.Measurement, unsettled: bool, members: int = 0,
            counted_flops: dict | None = None) -> CellOutcome:
    """The outcome of a timed cell; `members`: how many took turns in its group (0: timed
    alone), its samples then being one per cycle. `counted_flops`: the group's FLOP counts by
    method, since they are counted on the eager module whatever the backend."""
    cell, policy, call = p.cell, p.policy, p.call
    device, dtype, size = torch.device(cell.device), DTYPES[cell.dtype], cell.size_dict
    timed = _timing_metrics(measured)
    if members:
        timed["interleaved"] = float(members)
    if not p.check:
        return CellOutcome("ok", samples=list(measured.samples), metrics=timed, unsettled=unsettled,
                           interleaved=bool(members))
    provenance = dict(p.provenance)
    # How the timed calls ran ("cuda graph", or direct and why), read before anything below
    # calls the function again: the graph timing captures it, and inside that capture a
    # replaying backend launches directly, which would then be all the provenance said.
    launch = getattr(p.fn, "launch", None)
    if launch is not None:
        provenance["launch"] = launch
    graph_metrics = _graph_timing(call, p.clock, policy) if (
        device.type == "cuda" and cell.mode == "forward" and policy.cuda_graphs) else {}
    energy_metrics = {}
    if policy.energy:
        source = telemetry.source_for(cell.device)
        energy_metrics = telemetry.energy_metrics(call, lambda: _synchronize(device), source)
        provenance["energy"] = source.why_not or "measured"
    if members:
        provenance["timed"] = f"interleaved: {members} members of its group took turns, block by block"
    # A backend that replays CUDA graphs (triton) keeps its plain launches as `direct`: the
    # profiler and the memory peak must see every kernel and allocation, not one replay.
    direct = getattr(p.fn, "direct", p.fn)
    method, module, inputs = p.method, p.module, p.inputs
    profiled = memory.profile_call(_mode_call(direct, module, inputs, cell.mode), device)
    provenance["kernels"] = kernels.chosen(profiled.ops)
    counted_flops = {} if counted_flops is None else counted_flops
    if cell.method not in counted_flops:
        counted_flops[cell.method] = flops.count_flops(_mode_call(module, module, inputs, cell.mode))
    counted = counted_flops[cell.method]
    analytic = method.training_flops(size) if cell.mode == "train" else method.flops(size)
    return CellOutcome(
        "ok",
        samples=list(measured.samples),
        provenance=provenance,
        unsettled=unsettled,
        interleaved=bool(members),
        metrics={
            **timed, "peak_mem_bytes": profiled.peak_bytes,
            "flops": analytic, "flops_counted": counted,
            "bytes": method.bytes(size, dtype.itemsize),
            **graph_metrics, **energy_metrics,
            # The first call: for `compile`, tracing and code generation, kept apart from the runtime.
            "first_call_s": p.first_call_s,
            # What only some methods have (a reached rank, a mask density), by name.
            **_extra_metrics(module, inputs),
        },
    )


def _extra_metrics(module: torch.nn.Module, inputs: tuple) -> dict[str, float]:
    """A method's own facts (a reached rank, a mask density), read without gradients: a train
    cell's inputs require them, and a float() of one warned in every round's worker."""
    if not hasattr(module, "extra_metrics"):
        return {}
    with torch.no_grad():
        return module.extra_metrics(*inputs)
