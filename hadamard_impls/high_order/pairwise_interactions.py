"""Pairwise feature interactions: the factorization machine's O(n·k) identity
against the explicit O(n²·k) sum it computes (catalogue section 1)."""

import torch
from torch import nn

from ..backends import fused
from ..registry import catalogue

pairwise_interactions = catalogue.benchmark(
    "pairwise_interactions",
    domain="high_order",
    title="Pairwise interactions: factorization machine against the explicit pair sum",
    contract="x (B, n) → y (B,)",
    params=("B", "n", "k"),
    sweeps={
        "smoke": [{"B": 8, "n": 16, "k": 4}],
        "quick": [{"B": 256, "n": n, "k": 16} for n in (64, 256, 1024, 4096)],
        "full": [{"B": 4096, "n": n, "k": 64} for n in (256, 1024, 4096, 8192, 16384)],
    },
    make_inputs=lambda s, g: (torch.randn(s["B"], s["n"], generator=g),),
    x_param="n",
)


class FactorizationMachine(nn.Module):
    def __init__(self, n: int, k: int):
        super().__init__()
        self.linear = nn.Linear(n, 1)  # w₀ and wᵢ
        self.V = nn.Parameter(torch.randn(n, k) / n ** 0.5)

    def interactions(self, x):  # (B, n) → (B,)
        square_of_sum = (x @ self.V) ** 2  # (B, k)
        sum_of_squares = (x * x) @ (self.V * self.V)  # (B, k)
        return 0.5 * (square_of_sum - sum_of_squares).sum(dim=1)

    def forward(self, x):  # (B, n)
        return self.linear(x).squeeze(1) + self.interactions(x)

    def forward_triton(self, x):  # the squares and the interaction term in Triton
        K = fused()
        square_of_sum = x @ self.V
        sum_of_squares = K.hadamard(x, x) @ K.hadamard(self.V, self.V)
        return self.linear(x).squeeze(1) + K.fm_interaction(square_of_sum, sum_of_squares)


class PairwiseFM(FactorizationMachine):
    def interactions(self, x):  # (B, n) → (B,)
        pairs = torch.triu(self.V @ self.V.T, diagonal=1)  # ⟨vᵢ, vⱼ⟩ for i < j, (n, n)
        return ((x @ pairs) * x).sum(dim=1)


def _linear(s) -> int:
    return 2 * s["B"] * s["n"] + s["B"]  # Σᵢ wᵢxᵢ and + w₀


def _bytes(s, item) -> int:
    return (s["B"] * s["n"] + s["B"] + s["n"] * (s["k"] + 1)) * item


@pairwise_interactions.method(
    "fm", role="hadamard",
    latex=r"\hat y = w_0 + \sum_i w_i x_i + \tfrac12 \sum_f \left[\left(\sum_i v_{if} x_i\right)^2 - \sum_i v_{if}^2 x_i^2\right]",
    # xV and x²V² (2·B·n·k each), x², V², and per (B, k): square, subtract, sum, halve.
    flops=lambda s: _linear(s) + 4 * s["B"] * s["n"] * s["k"] + s["B"] * s["n"] + s["n"] * s["k"]
    + 3 * s["B"] * s["k"] + 2 * s["B"],
    bytes=_bytes,
    exponents={"B": 1, "n": 1, "k": 1},
    backends=("eager", "compile", "triton"),
)
def fm(size):
    """½Σ_f[(Σᵢv_{if}xᵢ)² − Σᵢv_{if}²xᵢ²]: the factorization machine identity, Rendle 2010."""
    return FactorizationMachine(size["n"], size["k"])


@pairwise_interactions.method(
    "fm_pairwise", role="baseline",
    latex=r"\hat y = w_0 + \sum_i w_i x_i + \sum_{i<j} \langle v_i, v_j\rangle x_i x_j",
    # VVᵀ (2·n²·k), x·pairs (2·B·n²), then ⊙x, the row sum and the final add.
    flops=lambda s: _linear(s) + 2 * s["n"] ** 2 * s["k"] + 2 * s["B"] * s["n"] ** 2 + 2 * s["B"] * s["n"] + s["B"],
    bytes=_bytes,
    exponents={"B": 1, "n": 2, "k": 1},
    memory=lambda s, item: (3 * s["n"] ** 2 + 4 * s["B"] * s["n"]) * item,
)
def fm_pairwise(size):
    """Σ_{i<j}⟨vᵢ, vⱼ⟩xᵢxⱼ written out: the explicit pairwise sum the FM identity avoids."""
    return PairwiseFM(size["n"], size["k"])
