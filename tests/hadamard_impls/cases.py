"""The (method, backend, mode) cases the catalogue's tests run, in two tiers. The fast tier
(`make test`) runs every method on eager and library, and one case per benchmark on compile and
on Triton: its first method, in train mode (forward and backward) through the runner's own
cell. The rest of the Triton matrix, and every gradient check through a compiled backend, are
marked `compile_matrix` (`make test-all`): each torch.compile case costs seconds on a 2-core
machine, and Triton runs in its interpreter on a CPU.

The runner's cell takes compile only there, in neither tier beyond each benchmark's first
method in train mode: its path through a compiled module is the same for every method and
mode, and every method's compiled forward and backward are checked against the float64
reference by test_checks' gradient test. That test builds the same training graphs as the
train cells, linked the same way, so where both run, the second finds the first's kernels in
Inductor's cache. A forward cell compiled an inference graph that nothing else reads: 16 cold
compiles, 99 s of a 2-core machine's test-all, which checked nothing the gradient test and the
smoke run's compiled cell (test_cli) do not."""

import pytest

from hadamard_impls import catalogue

EXPENSIVE = ("compile", "triton")
SAMPLED_MODE = "train"


def backend_cases(modes: tuple[str, ...] = ()) -> list:
    """pytest params (method, backend) or, with `modes`, (method, backend, mode)."""
    cases, sampled = [], set()
    for m in catalogue.methods():
        for backend in m.backends:
            for mode in modes or (None,):
                chosen = backend in EXPENSIVE and mode == SAMPLED_MODE and (m.benchmark, backend) not in sampled
                if chosen:
                    sampled.add((m.benchmark, backend))
                if modes and backend == "compile" and not chosen:  # the sampled case is the runner's only one
                    continue
                marks = pytest.mark.compile_matrix if backend in EXPENSIVE and not chosen else ()
                values = (m, backend) if mode is None else (m, backend, mode)
                cases.append(pytest.param(*values, marks=marks,
                                          id=".".join(str(v) for v in (m.benchmark, m.id, backend, mode) if v)))
    return cases
