"""Conditioning a feature map on a vector: FiLM's Hadamard modulation against
concatenating the condition to every position (catalogue section 2)."""

import torch
from torch import nn

from ..backends import fused
from ..registry import catalogue

conditioning = catalogue.benchmark(
    "conditioning",
    domain="fusion",
    title="Conditioning: FiLM against concatenation",
    contract="x (B, C, H, W), c (B, dc) → (B, C, H, W), W = H",
    params=("B", "C", "H", "dc"),
    sweeps={
        "smoke": [{"B": 2, "C": 8, "H": 8, "dc": 4}],
        "quick": [{"B": 8, "C": 64, "H": h, "dc": 32} for h in (8, 16, 32, 64)],
        "full": [{"B": 32, "C": 256, "H": h, "dc": 128} for h in (16, 32, 64, 128)]
        + [{"B": 32, "C": c, "H": 64, "dc": 128} for c in (64, 128, 512, 1024)],
    },
    make_inputs=lambda s, g: (torch.randn(s["B"], s["C"], s["H"], s["H"], generator=g),
                              torch.randn(s["B"], s["dc"], generator=g)),
    x_param="H",
)


class FiLM(nn.Module):
    def __init__(self, C: int, dc: int):
        super().__init__()
        self.gamma = nn.Linear(dc, C)
        self.beta = nn.Linear(dc, C)

    def forward(self, x, c):  # (B, C, H, W), (B, dc)
        gamma, beta = self.gamma(c)[:, :, None, None], self.beta(c)[:, :, None, None]  # (B, C, 1, 1)
        return gamma * x + beta  # feature-wise modulation: one ⊙ and one add per element

    def forward_triton(self, x, c):
        return fused().film(x, self.gamma(c), self.beta(c))


class ConcatConditioning(nn.Module):
    def __init__(self, C: int, dc: int):
        super().__init__()
        self.mix = nn.Conv2d(C + dc, C, kernel_size=1, bias=False)

    def forward(self, x, c):  # (B, C, H, W), (B, dc)
        tiled = c[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])  # (B, dc, H, W)
        return self.mix(torch.cat([x, tiled], dim=1))


def _positions(s) -> int:
    return s["B"] * s["H"] ** 2


def _bytes(s, item, weights: int) -> int:
    return (2 * _positions(s) * s["C"] + s["B"] * s["dc"] + weights) * item


@conditioning.method(
    "film", role="hadamard",
    latex=r"y = \gamma(c) \odot x + \beta(c)",
    # γ and β from c with their biases, then ⊙ and + per element of x.
    flops=lambda s: 2 * (2 * s["B"] * s["dc"] * s["C"] + s["B"] * s["C"]) + 2 * _positions(s) * s["C"],
    bytes=lambda s, item: _bytes(s, item, 2 * s["C"] * (s["dc"] + 1)),
    exponents={"B": 1, "C": 1, "H": 2},
    backends=("eager", "compile", "triton"),
)
def film(size):
    """γ(c) * x + β(c): feature-wise linear modulation (FiLM), Perez et al. AAAI 2018."""
    return FiLM(size["C"], size["dc"])


@conditioning.method(
    "concat_conditioning", role="baseline", cudnn=("eager", "compile"),
    latex=r"y = W \circledast_{1\times1} [x; \operatorname{tile}(c)]",
    flops=lambda s: 2 * _positions(s) * (s["C"] + s["dc"]) * s["C"],
    bytes=lambda s, item: _bytes(s, item, (s["C"] + s["dc"]) * s["C"]),
    exponents={"B": 1, "C": 2, "H": 2},
)
def concat_conditioning(size):
    """1×1 conv over [x; c tiled over H×W]: conditioning by concatenation."""
    return ConcatConditioning(size["C"], size["dc"])
