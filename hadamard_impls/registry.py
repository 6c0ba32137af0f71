"""The catalogue as an explicit object: benchmark → method → backend.

A benchmark declares its input contract and size sweeps once; a method is one
decorated function that builds an ``nn.Module`` for a size. Nothing here knows
about timing or storage: ``bench_runner`` reads this registry, never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Mapping, Sequence

import torch
from torch import nn

from hadamard_bench.vocabulary import DOMAINS, EVERY_BENCHMARK, SUITES  # noqa: F401  (re-exported)

Size = Mapping[str, int]
Role = Literal["hadamard", "baseline", "reference"]  # vocabulary.ROLES


def size_label(size: Size) -> str:
    """`B=1 N=256 C=64`: the readable form used in tables and exports."""
    return " ".join(f"{k}={v}" for k, v in size.items())


@dataclass(frozen=True)
class Method:
    """One formula that does a benchmark's task."""

    id: str
    benchmark: str
    role: Role
    summary: str  # the docstring's first line: formula and paper
    latex: str
    build: Callable[[Size], nn.Module]
    flops: Callable[[Size], float]  # forward pass, FLOP conventions of bench_runner/flops.py
    bytes: Callable[[Size, int], float]  # minimum bytes moved, given the dtype's itemsize
    exponents: Mapping[str, float]  # theoretical time exponent per size parameter
    backends: tuple[str, ...] = ("eager", "compile")
    # Peak bytes of one forward call, where it exceeds a few times the minimum bytes
    # (an N×N score matrix, say); the runner skips sizes that cannot fit.
    memory: Callable[[Size, int], float] | None = None
    # For a method whose output is random (dropout): asserts on (inputs, output) that
    # replace the comparison with a float64 reference.
    check: Callable[[tuple, torch.Tensor], None] | None = None
    # The correctness check's float64 reference computed another way than by running the module in
    # float64, from (the module built in float64, its float64 inputs): for a method whose float64 run
    # has no fast kernel (a direct convolution), the same function by a formula exact to far below
    # the checks' tolerances. None: the module itself, in float64.
    float64_reference: Callable[..., torch.Tensor] | None = None
    # Forward and backward; by default the usual 3 × forward (the backward computes
    # gradients for both the inputs and the weights, twice the forward's work).
    train_flops: Callable[[Size], float] | None = None
    # The methods a Hadamard method is judged against; empty: every baseline of its benchmark.
    against: tuple[str, ...] = ()
    # The backends whose calls reach cuDNN on a GPU (convolutions, RNNs): TF32 there follows
    # torch.backends.cudnn.allow_tf32, not the matmul flag. A test checks it against the ops run.
    cudnn: tuple[str, ...] = ()
    origin: str = ""  # the plugin that registered it; empty: this catalogue

    def training_flops(self, size: Size) -> float:
        return self.train_flops(size) if self.train_flops is not None else 3 * self.flops(size)

    def memory_estimate(self, size: Size, itemsize: int) -> float:
        if self.memory is not None:
            return self.memory(size, itemsize)
        return 4 * self.bytes(size, itemsize)

    @property
    def is_baseline(self) -> bool:
        return self.role != "hadamard"


@dataclass
class Benchmark:
    """A task with one input/output contract and one size sweep per suite."""

    id: str
    domain: str
    title: str
    contract: str
    params: tuple[str, ...]
    sweeps: Mapping[str, Sequence[Size]]
    make_inputs: Callable[[Size, torch.Generator], tuple[torch.Tensor, ...]]
    x_param: str  # the size parameter a chart puts on its x-axis by default
    methods: dict[str, Method] = field(default_factory=dict)
    origin: str = ""  # the plugin that registered it; empty: this catalogue

    def method(
        self,
        id: str,
        *,
        role: Role,
        latex: str,
        flops: Callable[[Size], float],
        bytes: Callable[[Size, int], float],
        exponents: Mapping[str, float],
        backends: tuple[str, ...] = ("eager", "compile"),
        memory: Callable[[Size, int], float] | None = None,
        check: Callable[[tuple, torch.Tensor], None] | None = None,
        float64_reference: Callable[..., torch.Tensor] | None = None,
        train_flops: Callable[[Size], float] | None = None,
        against: tuple[str, ...] = (),
        cudnn: tuple[str, ...] = (),
    ) -> Callable[[Callable[[Size], nn.Module]], Callable[[Size], nn.Module]]:
        """Register the decorated builder as method `id` of this benchmark."""

        def register(build: Callable[[Size], nn.Module]) -> Callable[[Size], nn.Module]:
            if id in self.methods:
                raise ValueError(f"method {id!r} is registered twice in {self.id!r}")
            doc = (build.__doc__ or "").strip().splitlines()
            if not doc:
                raise ValueError(f"method {id!r} needs a docstring naming its formula and paper")
            unknown = set(exponents) - set(self.params)
            if unknown:
                raise ValueError(f"method {id!r}: exponents for unknown size parameters {unknown}")
            self.methods[id] = Method(
                id=id, benchmark=self.id, role=role, summary=doc[0], latex=latex,
                build=build, flops=flops, bytes=bytes, exponents=dict(exponents),
                backends=backends, memory=memory, check=check, float64_reference=float64_reference,
                train_flops=train_flops,
                against=tuple(against), cudnn=tuple(cudnn),
            )
            return build

        return register

    def compared_with(self, method: Method) -> list[str]:
        """What a Hadamard method is measured against: its own list, else every baseline here."""
        if method.role != "hadamard":
            return []
        return list(method.against) or [m.id for m in self.methods.values() if m.role == "baseline"]

    def sizes(self, suite: str) -> list[dict[str, int]]:
        """The suite's sizes; none where the benchmark is not part of it (paper)."""
        return [dict(s) for s in self.sweeps.get(suite, ())]

    def inputs(self, size: Size, device: torch.device | str, dtype: torch.dtype, seed: int = 0):
        """Inputs for `size`, identical for every method, moved to `device` and `dtype`."""
        generator = torch.Generator().manual_seed(seed)
        tensors = self.make_inputs(size, generator)
        return tuple(
            t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device)
            for t in tensors
        )


class Catalogue:
    """All benchmarks by id; modules register into one instance at import."""

    def __init__(self) -> None:
        self.benchmarks: dict[str, Benchmark] = {}

    def benchmark(
        self,
        id: str,
        *,
        domain: str,
        title: str,
        contract: str,
        params: tuple[str, ...],
        sweeps: Mapping[str, Sequence[Size]],
        make_inputs: Callable[[Size, torch.Generator], tuple[torch.Tensor, ...]],
        x_param: str | None = None,
    ) -> Benchmark:
        if id in self.benchmarks:
            raise ValueError(f"benchmark {id!r} is registered twice")
        if domain not in DOMAINS:
            raise ValueError(f"benchmark {id!r}: unknown domain {domain!r}")
        missing = set(EVERY_BENCHMARK) - set(sweeps)
        if missing:
            raise ValueError(f"benchmark {id!r}: no sweep for suites {sorted(missing)}")
        for suite, sizes in sweeps.items():
            for s in sizes:
                if tuple(s) != params:
                    raise ValueError(f"benchmark {id!r}, suite {suite}: size {dict(s)} "
                                     f"must give {params} in that order")
        bench = Benchmark(id=id, domain=domain, title=title, contract=contract, params=params,
                          sweeps=sweeps, make_inputs=make_inputs, x_param=x_param or params[0])
        self.benchmarks[id] = bench
        return bench

    def methods(self) -> list[Method]:
        return [m for b in self.benchmarks.values() for m in b.methods.values()]

    def find_method(self, method_id: str) -> list[Method]:
        return [m for m in self.methods() if m.id == method_id]


# The one catalogue the domain modules register into; tests may build their own.
catalogue = Catalogue()
