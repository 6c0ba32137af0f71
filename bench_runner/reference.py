"""Whether a cell's output is right: where its reference runs, and the check against it.

A cell's module is built again from the same seed and weights in float64 (float32 where float64
fits nowhere), on its device or, where that cannot hold it, on the host; the cell's output must
match its output (or the method's `float64_reference`, the same function computed a faster way)
within the cell dtype's tolerance. Methods whose output is random (dropout) bring their own
structural check instead.
"""

from __future__ import annotations

import torch

from hadamard_bench import proc

# Against a float64 reference computed from the same (already rounded) weights and
# inputs, so only the arithmetic of the cell's dtype is judged.
TOLERANCES = {
    torch.float32: dict(rtol=1e-3, atol=1e-3),
    torch.bfloat16: dict(rtol=5e-2, atol=5e-2),
    torch.float16: dict(rtol=1e-2, atol=1e-2),
}


def available_memory(device: str) -> int | None:
    """Bytes free for a new allocation on `device`, or None when unknown."""
    if device == "cuda":
        return torch.cuda.mem_get_info()[0]
    return proc.kib_bytes(proc.fields("/proc/meminfo").get("MemAvailable"))


FLOAT64_HERE = "float64 reference"
FLOAT64_ON_HOST = "float64 reference on the host (the device could not hold it)"
FLOAT32_REFERENCE = "float32 reference (float64 fits nowhere)"
OWN_CHECK = "the method's own structural check"
BY_ITS_FORMULA = ", by the method's float64 formula"  # after a label above: Method.float64_reference


def check_label(method, plan: tuple[str, str]) -> str:
    """What a cell's output was checked against, as its provenance says."""
    if method.check is not None:
        return OWN_CHECK
    return plan[1] + (BY_ITS_FORMULA if method.float64_reference is not None else "")


def reference_plan(need_cell: float, need_float64: float, need_float32: float, dtype: torch.dtype,
                   device: str, free_device: float | None, free_host: float | None) -> tuple[str, str] | str:
    """Where a cell's correctness reference runs, and which it is: (device, label), or why the
    cell cannot be checked at all. At the sizes where a claim turns quadratic (a non-local
    block at H = 192: a 36864² score matrix) the float64 reference no longer fits a GPU: it
    runs on the host, which has more memory; a 16-bit cell falls back to a float32 reference."""
    fits = lambda need, free: free is None or need <= 0.9 * free  # noqa: E731
    if not fits(need_cell, free_device):
        return f"needs about {need_cell / 2**30:.1f} GiB, {free_device / 2**30:.1f} GiB free on {device}"
    if fits(need_float64, free_device):
        return device, FLOAT64_HERE
    if device != "cpu" and fits(need_float64, free_host):
        return "cpu", FLOAT64_ON_HOST
    if dtype != torch.float32 and fits(need_float32, free_device):
        return device, FLOAT32_REFERENCE
    return (f"its float64 reference needs about {need_float64 / 2**30:.1f} GiB, more than {device}"
            + (" or the host" if device != "cpu" else "") + " has free")


def cell_need(method, size, itemsize: int, mode: str) -> float:
    """Bytes a cell holds once built (its method's estimate), three times that to train."""
    return method.memory_estimate(size, itemsize) * (3 if mode == "train" else 1)


def check_plan(method, size, device: str, dtype: torch.dtype, mode: str) -> tuple[str, str] | str:
    """reference_plan for a cell, from its method's estimates before anything is allocated: a
    string says why the cell cannot fit or be checked."""
    need = cell_need(method, size, dtype.itemsize, mode)
    return reference_plan(need, method.memory_estimate(size, 8), method.memory_estimate(size, 4), dtype, device,
                          available_memory(device), available_memory("cpu") if device != "cpu" else None)


def _build(method, size, device, dtype, where, precision) -> torch.nn.Module:
    """The cell's module again, from the same seed and rounded to the same dtype, in the
    reference's precision on `where`: only the arithmetic of the cell's dtype and backend is judged."""
    torch.manual_seed(0)
    return method.build(size).to(device=device, dtype=dtype).to(device=where, dtype=precision)


class LastExpected:
    """The latest reference output, kept for the next cell of the same method, size, device and
    dtype: a comparison group checks each of a method's backends (eager, compile) against the
    same reference. Computed once per method, the checks of a quick round (one process, 458
    cells) took 17.9 s instead of 36.9. One output at most is held, so a group's memory need
    does not grow with it."""

    def __init__(self):
        self.key, self.output = None, None

    def get(self, key: tuple, compute) -> torch.Tensor:
        if key != self.key:
            self.key, self.output = None, None  # the old output freed before the new one is made
            self.output, self.key = compute(), key
        return self.output


def check(method, size, device, dtype, inputs, actual, plan: tuple[str, str],
          last: LastExpected | None = None) -> str | None:
    """Why the output is wrong, or None: against the reference `plan` names (where, which), or
    the method's own structural check when its output is random. `last`: a reference output
    kept from the cell before, used when it is this cell's (the inputs are the same for every
    method and backend of a benchmark at a size)."""
    where, label = plan
    precision = torch.float32 if label == FLOAT32_REFERENCE else torch.float64

    def compute() -> torch.Tensor:
        module = _build(method, size, device, dtype, where, precision)
        args = [t.to(device=where, dtype=precision) if t.is_floating_point() else t.to(where) for t in inputs]
        return module(*args) if method.float64_reference is None else method.float64_reference(module, *args)

    try:
        if method.check is not None:
            method.check(inputs, actual)
        else:
            key = (method.benchmark, method.id, tuple(sorted(size.items())), str(device), dtype, where, precision)
            expected = (last or LastExpected()).get(key, compute)
            torch.testing.assert_close(actual.to(device=where, dtype=torch.float64), expected.to(torch.float64),
                                       **TOLERANCES[dtype])
    except AssertionError as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        return f"output differs from the float64 reference: {detail}"[:500]
    return None
