"""Merging two branches: StarNet's element-wise product against a sum (catalogue section 3)."""

import torch
from torch import nn

from ..registry import catalogue

branch_merge = catalogue.benchmark(
    "branch_merge",
    domain="modulation",
    title="Branch merge: the star operation against a sum",
    contract="X (1, tokens, C) → (1, tokens, h)",
    params=("tokens", "C", "h"),
    sweeps={
        "smoke": [{"tokens": 64, "C": 16, "h": 64}],
        "quick": [{"tokens": t, "C": 128, "h": 512} for t in (256, 1024, 4096, 16384)],
        "full": [{"tokens": t, "C": 512, "h": 2048} for t in (4096, 16384, 65536, 262144)],
    },
    make_inputs=lambda s, g: (torch.randn(1, s["tokens"], s["C"], generator=g),),
    x_param="tokens",
)


class Star(nn.Module):
    def __init__(self, C: int, h: int):
        super().__init__()
        self.W1 = nn.Linear(C, h)
        self.W2 = nn.Linear(C, h)

    def forward(self, x):  # (1, T, C)
        return self.W1(x) * self.W2(x)  # implicitly a map into the C²-dimensional pair space


class BranchSum(Star):
    def forward(self, x):  # (1, T, C)
        return self.W1(x) + self.W2(x)


def _flops(s) -> int:
    T, C, h = s["tokens"], s["C"], s["h"]
    return 2 * (2 * T * C * h + T * h) + T * h  # two biased products, then the merge


def _bytes(s, item) -> int:
    return (s["tokens"] * (s["C"] + s["h"]) + 2 * (s["C"] + 1) * s["h"]) * item


@branch_merge.method("star", role="hadamard", flops=_flops, bytes=_bytes,
                     exponents={"tokens": 1, "C": 1, "h": 1}, latex=r"y = (W_1 x) \odot (W_2 x)")
def star(size):
    """(W₁x) * (W₂x): the star operation, StarNet, Ma et al. CVPR 2024."""
    return Star(size["C"], size["h"])


@branch_merge.method("branch_sum", role="baseline", flops=_flops, bytes=_bytes,
                     exponents={"tokens": 1, "C": 1, "h": 1}, latex=r"y = (W_1 x) + (W_2 x)")
def branch_sum(size):
    """(W₁x) + (W₂x): the same two branches merged by a sum."""
    return BranchSum(size["C"], size["h"])
