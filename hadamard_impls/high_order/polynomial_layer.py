"""Polynomial layers (Π-nets) against an MLP of the same width (catalogue section 1)."""

import torch
from torch import nn

from ..backends import fused
from ..registry import catalogue

polynomial_layer = catalogue.benchmark(
    "polynomial_layer",
    domain="high_order",
    title="Polynomial layer: degree-N interactions through Hadamard products",
    contract="z (B, d) → y (B, d); hidden width k = d",
    params=("B", "d", "degree"),
    sweeps={
        "smoke": [{"B": 4, "d": 16, "degree": 2}],
        "quick": [{"B": 64, "d": d, "degree": 4} for d in (64, 256, 1024)]
        + [{"B": 64, "d": 256, "degree": 8}],
        "full": [{"B": 512, "d": d, "degree": 8} for d in (256, 512, 1024, 2048, 4096)]
        + [{"B": 512, "d": 1024, "degree": n} for n in (2, 4, 16, 32)],
    },
    make_inputs=lambda s, g: (torch.randn(s["B"], s["d"], generator=g),),
    x_param="d",
)


def _stack(n: int, fan_in: int, fan_out: int) -> nn.Parameter:
    """n weight matrices at nn.Linear's scale, kept as one tensor for the recursion."""
    bound = fan_in ** -0.5
    return nn.Parameter(torch.empty(n, fan_in, fan_out).uniform_(-bound, bound))


class CCP(nn.Module):
    def __init__(self, d: int, k: int, degree: int):
        super().__init__()
        self.U = _stack(degree, d, k)
        self.C = nn.Linear(k, d)  # its bias is β

    def forward(self, z):  # (B, d)
        x = z @ self.U[0]  # (B, k)
        for U in self.U[1:]:
            x = (z @ U) * x + x  # one more degree per step: a Hadamard product and a skip
        return self.C(x)

    def forward_triton(self, z):
        x = z @ self.U[0]
        for U in self.U[1:]:
            x = fused().ccp_step(z @ U, x)
        return self.C(x)


class NCP(nn.Module):
    def __init__(self, d: int, k: int, degree: int):
        super().__init__()
        self.A = _stack(degree, d, k)
        self.S = _stack(degree - 1, k, k)
        # Bₙᵀbₙ enters only as a vector, so it is learned as one.
        self.b = nn.Parameter(torch.randn(degree, k) * 0.1 + 1)
        self.C = nn.Linear(k, d)

    def forward(self, z):  # (B, d)
        x = (z @ self.A[0]) * self.b[0]  # (B, k)
        for A, S, b in zip(self.A[1:], self.S, self.b[1:]):
            x = (z @ A) * (x @ S + b)
        return self.C(x)


class MLP(nn.Module):
    def __init__(self, d: int, k: int, degree: int):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(d, k, bias=False)]
                                    + [nn.Linear(k, k, bias=False) for _ in range(degree - 1)])
        self.C = nn.Linear(k, d)

    def forward(self, z):  # (B, d)
        x = z
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.C(x)


def _head(s) -> int:
    """The output layer C with its bias β, shared by all three methods."""
    return 2 * s["B"] * s["d"] * s["d"] + s["B"] * s["d"]


def _bytes(s, item) -> int:
    # z in, y out, and the degree-many d×k weight matrices (k = d) plus C.
    return (2 * s["B"] * s["d"] + (s["degree"] + 1) * s["d"] ** 2) * item


@polynomial_layer.method(
    "ccp", role="hadamard",
    latex=r"x_n = (U_n^\top z) \odot x_{n-1} + x_{n-1},\quad y = C x_N + \beta",
    flops=lambda s: 2 * s["B"] * s["d"] ** 2 * s["degree"] + 2 * s["B"] * s["d"] * (s["degree"] - 1) + _head(s),
    bytes=_bytes,
    exponents={"B": 1, "d": 2, "degree": 1},
    backends=("eager", "compile", "triton"),
)
def ccp(size):
    """xₙ = (Uₙᵀz) * xₙ₋₁ + xₙ₋₁: Π-net CCP, Chrysos et al. CVPR 2020."""
    return CCP(size["d"], size["d"], size["degree"])


@polynomial_layer.method(
    "ncp", role="hadamard",
    latex=r"x_n = (A_n^\top z) \odot (S_n^\top x_{n-1} + B_n^\top b_n),\quad y = C x_N + \beta",
    # Aₙᵀz every step, Sₙᵀx for all but the first, the bias add and the Hadamard product.
    flops=lambda s: 2 * s["B"] * s["d"] ** 2 * (2 * s["degree"] - 1)
    + s["B"] * s["d"] * (2 * s["degree"] - 1) + _head(s),
    bytes=lambda s, item: _bytes(s, item) + (s["degree"] - 1) * s["d"] ** 2 * item,
    exponents={"B": 1, "d": 2, "degree": 1},
)
def ncp(size):
    """xₙ = (Aₙᵀz) * (Sₙᵀxₙ₋₁ + Bₙᵀbₙ): Π-net NCP, nested coupled polynomial, Chrysos et al. CVPR 2020."""
    return NCP(size["d"], size["d"], size["degree"])


@polynomial_layer.method(
    "mlp_relu", role="baseline",
    latex=r"x_n = \operatorname{ReLU}(W_n x_{n-1}),\quad y = C x_N + \beta",
    flops=lambda s: 2 * s["B"] * s["d"] ** 2 * s["degree"] + s["B"] * s["d"] * s["degree"] + _head(s),
    bytes=_bytes,
    exponents={"B": 1, "d": 2, "degree": 1},
)
def mlp_relu(size):
    """N ReLU layers of width k: the MLP with CCP's parameter count when d = k."""
    return MLP(size["d"], size["d"], size["degree"])
