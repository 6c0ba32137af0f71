"""Section 1 of the catalogue: high-order interactions (polynomial networks)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .registry import catalogue

token_mixing = catalogue.benchmark(
    "token_mixing",
    domain="high_order",
    title="Token mixing: attention and its Hadamard replacements",
    contract="X (B, N, C) → (B, N, C)",
    params=("B", "N", "C", "H"),
    sweeps={
        "smoke": [{"B": 1, "N": 64, "C": 32, "H": 2}],
        "quick": [{"B": 1, "N": n, "C": 128, "H": 4} for n in (64, 128, 256, 512, 1024, 2048)],
        "full": [{"B": 1, "N": n, "C": 512, "H": 8} for n in (256, 1024, 4096, 8192, 16384)],
    },
    make_inputs=lambda s, g: (torch.randn(s["B"], s["N"], s["C"], generator=g),),
    x_param="N",
)


class HeadProjections(nn.Module):
    """Q, K, V and output projections shared by every token mixer of this benchmark."""

    def __init__(self, C: int, H: int):
        super().__init__()
        self.heads = H
        self.qkv = nn.Linear(C, 3 * C, bias=False)
        self.out = nn.Linear(C, C, bias=False)

    def split(self, x):  # (B, N, C) → three (B, H, N, d)
        B, N, C = x.shape
        return self.qkv(x).view(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)

    def merge(self, y):  # (B, H, N, d) → (B, N, C)
        B, H, N, d = y.shape
        return self.out(y.transpose(1, 2).reshape(B, N, H * d))


class PolySA(HeadProjections):
    def __init__(self, N: int, C: int, H: int):
        super().__init__(C, H)
        # Per-token weights start near mean pooling, with noise so tests see every token.
        g = torch.Generator().manual_seed(1)
        self.p1 = nn.Parameter(1 + 0.1 * torch.randn(H, N, generator=g))
        self.p2 = nn.Parameter((1 + 0.1 * torch.randn(H, N, generator=g)) / N)
        self.norm = nn.LayerNorm(C // H)

    def forward(self, x):  # (B, N, C)
        q, k, v = self.split(x)  # (B, H, N, d)
        m = self.norm(torch.einsum("hn,bhnd->bhd", self.p2, k * v))  # pooled K ⊙ V, (B, H, d)
        y = q * (self.p1[None, :, :, None] * m[:, :, None, :])  # (B, H, N, d)
        return self.merge(y)


class SoftmaxAttention(HeadProjections):
    def forward(self, x):  # (B, N, C)
        q, k, v = self.split(x)
        scores = (q @ k.transpose(-2, -1)) * (1 / math.sqrt(q.shape[-1]))  # (B, H, N, N)
        return self.merge(scores.softmax(dim=-1) @ v)


class SDPA(HeadProjections):
    def forward(self, x):  # (B, N, C)
        q, k, v = self.split(x)
        return self.merge(F.scaled_dot_product_attention(q, k, v))


def _projection_flops(s):
    return 8 * s["B"] * s["N"] * s["C"] ** 2  # Q, K, V and O: four C×C products


def _bytes(s, item):
    return (2 * s["B"] * s["N"] * s["C"] + 4 * s["C"] ** 2) * item  # X in, Y out, weights


@token_mixing.method(
    "poly_sa", role="hadamard",
    latex=r"Y_n = Q_n \odot \left(p_1[n]\, \mathrm{LN}\!\left(\textstyle\sum_{n'} p_2[n'] (K_{n'} \odot V_{n'})\right)\right)",
    # K⊙V, the p₂-weighted pooling (2 per element), p₁·m and Q⊙: 5 per element of (B, N, C);
    # LayerNorm with affine: 7 per pooled element.
    flops=lambda s: _projection_flops(s) + 5 * s["B"] * s["N"] * s["C"] + 7 * s["B"] * s["C"],
    bytes=lambda s, item: _bytes(s, item) + 2 * s["H"] * s["N"] * item,
    exponents={"N": 1, "C": 2},
)
def poly_sa(size):
    """Q * (p₁·LN(Σ p₂ K*V)): Poly-SA, third-order polynomial attention, Babiloni et al. T-PAMI 2023."""
    return PolySA(size["N"], size["C"], size["H"])


@token_mixing.method(
    "softmax_attention", role="baseline",
    latex=r"Y = \operatorname{softmax}\!\left(QK^\top/\sqrt{d}\right) V",
    # QKᵀ and AV: 4·B·N²·C; the scale (1) and softmax (5) per score.
    flops=lambda s: _projection_flops(s) + 4 * s["B"] * s["N"] ** 2 * s["C"]
    + 6 * s["B"] * s["H"] * s["N"] ** 2,
    bytes=_bytes,
    exponents={"N": 2, "C": 2},
)
def softmax_attention(size):
    """softmax(QKᵀ/√d)V written out: scaled dot-product attention, Vaswani et al. 2017."""
    return SoftmaxAttention(size["C"], size["H"])


@token_mixing.method(
    "sdpa", role="baseline",
    latex=r"Y = \operatorname{SDPA}(Q, K, V)",
    # The fused kernel scales inside the softmax: 5 per score, no separate product.
    flops=lambda s: _projection_flops(s) + 4 * s["B"] * s["N"] ** 2 * s["C"]
    + 5 * s["B"] * s["H"] * s["N"] ** 2,
    bytes=_bytes,
    exponents={"N": 2, "C": 2},
)
def sdpa(size):
    """torch.nn.functional.scaled_dot_product_attention: the fused attention kernel, the strong baseline."""
    return SDPA(size["C"], size["H"])
