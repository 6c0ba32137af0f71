"""Convolution over images with holes: masks applied by Hadamard products (catalogue section 3)."""

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import catalogue

HOLES = 0.25  # the fraction of pixels the inputs' masks remove

masked_conv = catalogue.benchmark(
    "masked_conv",
    domain="modulation",
    title="Masked convolution for inpainting: gated and partial convolutions against a plain one",
    contract="x (B, C, H, W), mask (B, 1, H, W) in {0, 1} → (B, C, H, W), W = H",
    params=("B", "C", "H"),
    sweeps={
        "smoke": [{"B": 2, "C": 4, "H": 8}],
        "quick": [{"B": 4, "C": 32, "H": h} for h in (16, 32, 64, 128)],
        "full": [{"B": 16, "C": 128, "H": h} for h in (64, 128, 256, 512)],
    },
    make_inputs=lambda s, g: (
        torch.randn(s["B"], s["C"], s["H"], s["H"], generator=g),
        (torch.rand(s["B"], 1, s["H"], s["H"], generator=g) >= HOLES).float(),
    ),
    x_param="H",
)


class Conv(nn.Module):
    def __init__(self, C: int):
        super().__init__()
        self.conv = nn.Conv2d(C, C, kernel_size=3, padding=1)

    def forward(self, x, mask):  # (B, C, H, W), (B, 1, H, W): the plain conv ignores the mask
        return self.conv(x)

    def extra_metrics(self, x, mask) -> dict[str, float]:
        return {"mask_density": float(mask.float().mean())}


class GatedConv(Conv):
    def __init__(self, C: int):
        super().__init__(C)
        self.gate = nn.Conv2d(C, C, kernel_size=3, padding=1)

    def forward(self, x, mask):
        holed = x * mask  # (B, C, H, W)
        return F.elu(self.conv(holed)) * torch.sigmoid(self.gate(holed))  # a learned soft mask


class PartialConv(Conv):
    def forward(self, x, mask):
        # How much of each 3×3 window is valid. The border counts as valid, so an
        # all-ones mask gives exactly the plain convolution.
        ones = torch.ones(1, 1, 3, 3, dtype=x.dtype, device=x.device)
        valid = F.conv2d(F.pad(mask, (1, 1, 1, 1), value=1.0), ones)  # (B, 1, H, W)
        seen = (valid > 0).to(x.dtype)
        rescale = 9 / valid.clamp(min=1) * seen
        out = F.conv2d(x * mask, self.conv.weight, padding=1)  # the hole is masked by ⊙
        return out * rescale + self.conv.bias[None, :, None, None] * seen


def _conv(s) -> int:
    return 2 * s["B"] * s["H"] ** 2 * s["C"] ** 2 * 9 + s["B"] * s["C"] * s["H"] ** 2  # 3×3 with bias


def _pixels(s) -> int:
    return s["B"] * s["H"] ** 2


def _bytes(s, item, convs: int = 1) -> int:
    return (2 * _pixels(s) * s["C"] + _pixels(s) + convs * (9 * s["C"] + 1) * s["C"]) * item


_EXPONENTS = {"B": 1, "C": 2, "H": 2}


@masked_conv.method(
    "gated_conv", role="hadamard", cudnn=("eager", "compile"), exponents=_EXPONENTS,
    latex=r"y = \phi(W_f \circledast x) \odot \sigma(W_g \circledast x)",
    flops=lambda s: 2 * _conv(s) + _pixels(s) * s["C"] * 4,  # x⊙mask, ELU, σ, the gate's ⊙
    bytes=lambda s, item: _bytes(s, item, 2),
)
def gated_conv(size):
    """ELU(W_f ⊛ x) * σ(W_g ⊛ x): gated convolution, Yu et al. ICCV 2019."""
    return GatedConv(size["C"])


@masked_conv.method(
    "partial_conv", role="hadamard", cudnn=("eager", "compile"), exponents=_EXPONENTS,
    latex=r"y = W^\top (X \odot M)\,\frac{\operatorname{sum}(\mathbf{1})}{\operatorname{sum}(M)} + b \;\text{ where } \operatorname{sum}(M) > 0",
    # the conv without its bias; x⊙mask, ·rescale, bias⊙seen and + per element; the window
    # count (a 1-channel 3×3 conv) and 5 ops per pixel to turn it into the rescale.
    flops=lambda s: _conv(s) + 3 * _pixels(s) * s["C"] + 2 * 9 * _pixels(s) + 5 * _pixels(s),
    bytes=_bytes,
)
def partial_conv(size):
    """Wᵀ(X * M)·sum(1)/sum(M) + b: partial convolution, Liu et al. ECCV 2018."""
    return PartialConv(size["C"])


@masked_conv.method(
    "conv", role="baseline", cudnn=("eager", "compile"), exponents=_EXPONENTS, flops=_conv, bytes=_bytes,
    latex=r"y = W \circledast x + b",
)
def conv(size):
    """The plain 3×3 convolution, blind to the mask."""
    return Conv(size["C"])
