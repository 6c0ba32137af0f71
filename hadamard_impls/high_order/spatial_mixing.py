"""Spatial mixing in vision: Poly-NL against non-local blocks (catalogue section 1).

The survey's Figure S3 claim: the Hadamard form stays near linear cost in the
number of positions N = H·W while the non-local block grows quadratically.
"""

import torch
from torch import nn

from ..backends import fused
from ..registry import catalogue

spatial_mixing = catalogue.benchmark(
    "spatial_mixing",
    domain="high_order",
    title="Spatial mixing: Poly-NL against non-local blocks",
    contract="X (B, C, H, W) → (B, C, H, W), W = H",
    params=("B", "C", "H"),
    sweeps={
        "smoke": [{"B": 1, "C": 16, "H": 8}],
        "quick": [{"B": 1, "C": 64, "H": h} for h in (8, 16, 32, 64)],
        "full": [{"B": 4, "C": 256, "H": h} for h in (16, 32, 64, 96, 128)]
        + [{"B": 4, "C": c, "H": 64} for c in (64, 128, 512, 1024)],
        # Figure S3 (Babiloni et al. 2021/2023): runtime and peak memory over the spatial size,
        # then over the channels. H = 160 and 192 take the non-local block into its quadratic
        # regime on a GPU (its float64 reference then runs on the host; sizes that fit neither
        # are skipped with the reason).
        "paper": [{"B": 4, "C": 256, "H": h} for h in (16, 24, 32, 48, 64, 96, 128, 160, 192)]
        + [{"B": 4, "C": c, "H": 64} for c in (64, 128, 512, 1024)],
    },
    make_inputs=lambda s, g: (torch.randn(s["B"], s["C"], s["H"], s["H"], generator=g),),
    x_param="H",
)


def positions(x):  # (B, C, H, W) → (B, N, C)
    return x.flatten(2).transpose(1, 2)


def image(y, like):  # (B, N, C) → the shape of `like`
    return y.transpose(1, 2).reshape(like.shape)


class PolyNL(nn.Module):
    def __init__(self, C: int):
        super().__init__()
        self.W1 = nn.Linear(C, C, bias=False)
        self.W2 = nn.Linear(C, C, bias=False)
        self.W3 = nn.Linear(C, C, bias=False)
        self.alpha = nn.Parameter(torch.tensor(1.0))
        self.beta = nn.Parameter(torch.tensor(0.5))

    def forward(self, x):  # (B, C, H, W)
        X = positions(x)  # (B, N, C)
        g = (self.W1(X) * self.W2(X)).mean(dim=1, keepdim=True)  # second-order pooling, (B, 1, C)
        return image(self.alpha * X + self.beta * self.W3(X * g), x)  # third order, still O(N·C²)

    def forward_triton(self, x):  # the pooling and the gating in Triton, the products in cuBLAS
        K = fused()
        X = positions(x)[:, None]  # (B, 1, N, C): one "head"
        g = K.pool(self.W1(X), self.W2(X)) / X.shape[2]  # (B, 1, C)
        return image(self.alpha * X[:, 0] + self.beta * self.W3(K.gate(X, g)[:, 0]), x)


class NonLocal(nn.Module):
    def __init__(self, C: int):
        super().__init__()
        inner = C // 2
        self.theta = nn.Linear(C, inner, bias=False)
        self.phi = nn.Linear(C, inner, bias=False)
        self.g = nn.Linear(C, inner, bias=False)
        self.z = nn.Linear(inner, C, bias=False)

    def forward(self, x):  # (B, C, H, W)
        X = positions(x)  # (B, N, C)
        affinity = (self.theta(X) @ self.phi(X).transpose(1, 2)).softmax(dim=-1)  # (B, N, N)
        return image(X + self.z(affinity @ self.g(X)), x)


class Conv1x1(nn.Module):
    def __init__(self, C: int):
        super().__init__()
        self.conv = nn.Conv2d(C, C, kernel_size=1, bias=False)

    def forward(self, x):  # (B, C, H, W)
        return self.conv(x)


def _n(s) -> int:
    return s["B"] * s["H"] ** 2  # positions over the batch


def _bytes(s, item, weights: int) -> int:
    return (2 * _n(s) * s["C"] + weights * s["C"] ** 2) * item


@spatial_mixing.method(
    "poly_nl", role="hadamard",
    latex=r"Y = \alpha X + \beta\,\left(X \odot \operatorname{mean}_n(XW_1 \odot XW_2)\right) W_3",
    # three C×C products; per element: W₁⊙W₂, the mean, X⊙g, β·, α·, the sum.
    flops=lambda s: 6 * _n(s) * s["C"] ** 2 + 6 * _n(s) * s["C"],
    bytes=lambda s, item: _bytes(s, item, 3),
    exponents={"B": 1, "C": 2, "H": 2},
    backends=("eager", "compile", "triton"),
)
def poly_nl(size):
    """αX + β(X * mean(XW₁ * XW₂))W₃: Poly-NL, Babiloni et al. ICCV 2021."""
    return PolyNL(size["C"])


@spatial_mixing.method(
    "non_local", role="baseline",
    latex=r"Y = X + \operatorname{softmax}\!\left(XW_\theta (XW_\phi)^\top\right) XW_g W_z",
    # θ, φ, g (C → C/2) and z (C/2 → C); affinities and their product with g: N² · C/2 · 2 each;
    # the softmax (5 per affinity) and the residual.
    flops=lambda s: 4 * _n(s) * s["C"] ** 2 + 2 * _n(s) * s["H"] ** 2 * s["C"]
    + 5 * _n(s) * s["H"] ** 2 + _n(s) * s["C"],
    bytes=lambda s, item: _bytes(s, item, 2),
    exponents={"B": 1, "C": 2, "H": 4},
    memory=lambda s, item: 3 * s["B"] * s["H"] ** 4 * item + 8 * _n(s) * s["C"] * item,
)
def non_local(size):
    """X + softmax(XW_θ(XW_φ)ᵀ)XW_gW_z: non-local block, embedded Gaussian, Wang et al. CVPR 2018."""
    return NonLocal(size["C"])


@spatial_mixing.method(
    "conv1x1", role="reference", cudnn=("eager", "compile"),
    latex=r"Y = W \circledast_{1\times1} X",
    flops=lambda s: 2 * _n(s) * s["C"] ** 2,
    bytes=lambda s, item: _bytes(s, item, 1),
    exponents={"B": 1, "C": 2, "H": 2},
)
def conv1x1(size):
    """One 1×1 convolution C → C: the linear-cost yardstick."""
    return Conv1x1(size["C"])
