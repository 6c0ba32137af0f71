"""The Hadamard product itself against a memory copy (catalogue section 4)."""

import torch
from torch import nn

from ..registry import catalogue

elementwise = catalogue.benchmark(
    "elementwise",
    domain="efficient",
    title="Element-wise product of two vectors",
    contract="a, b (n,) → (n,)",
    params=("n",),
    sweeps={
        "smoke": [{"n": 2**12}],
        "quick": [{"n": 2**k} for k in (12, 16, 20, 22)],
        "full": [{"n": 2**k} for k in range(16, 29, 2)],
    },
    make_inputs=lambda s, g: (torch.randn(s["n"], generator=g), torch.randn(s["n"], generator=g)),
)


class Hadamard(nn.Module):
    def forward(self, a, b):  # (n,), (n,)
        return a * b


class Copy(nn.Module):
    def forward(self, a, b):  # (n,), (n,): b is unused, the contract is shared
        return a.clone()


@elementwise.method(
    "hadamard", role="hadamard", latex=r"y = a \odot b",
    flops=lambda s: s["n"],
    bytes=lambda s, item: 3 * s["n"] * item,  # read a and b, write y
    exponents={"n": 1},
)
def hadamard(size):
    """a * b: the Hadamard product, n FLOPs over 3n values, bandwidth-bound."""
    return Hadamard()


@elementwise.method(
    "copy", role="reference", latex=r"y = a",
    flops=lambda s: 0,
    bytes=lambda s, item: 2 * s["n"] * item,  # read a, write y
    exponents={"n": 1},
)
def copy(size):
    """y = a: a memory copy, the bandwidth ceiling for element-wise work."""
    return Copy()
