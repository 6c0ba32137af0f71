"""The (method, backend, mode) cases the catalogue's tests run, in two tiers: the fast tier
(`make test`) runs every method on eager and library, and the first method of each benchmark
on compile and Triton in forward mode; the rest of that matrix is marked `compile_matrix`
(`make test-all`), since each torch.compile case costs seconds on a 2-core machine."""

import pytest

from hadamard_impls import catalogue

EXPENSIVE = ("compile", "triton")  # compiled: seconds per case (Triton runs in its interpreter on a CPU)


def backend_cases(modes=("forward",)) -> list:
    cases, first = [], set()
    for m in catalogue.methods():
        for backend in m.backends:
            for mode in modes:
                sampled = (m.benchmark, backend) not in first and mode == "forward"
                if backend in EXPENSIVE and sampled:
                    first.add((m.benchmark, backend))
                marks = pytest.mark.compile_matrix if backend in EXPENSIVE and not sampled else ()
                values = (m, backend, mode) if len(modes) > 1 else (m, backend)
                cases.append(pytest.param(*values, marks=marks,
                                          id=".".join((m.benchmark, m.id, backend, *([mode] if len(modes) > 1 else [])))))
    return cases
