"""Channel gating: the squeeze-and-excitation gate's overhead on a conv block (catalogue section 3)."""

import torch
from torch import nn

from ..registry import catalogue

channel_gating = catalogue.benchmark(
    "channel_gating",
    domain="modulation",
    title="Channel gating: squeeze-and-excitation against the same conv block ungated",
    contract="x (B, C, H, W) → (B, C, H, W), W = H",
    params=("B", "C", "H"),
    sweeps={
        "smoke": [{"B": 2, "C": 16, "H": 8}],
        "quick": [{"B": 8, "C": 64, "H": h} for h in (8, 16, 32, 56)],
        "full": [{"B": 64, "C": 256, "H": h} for h in (14, 28, 56, 112)],
    },
    make_inputs=lambda s, g: (torch.randn(s["B"], s["C"], s["H"], s["H"], generator=g),),
    x_param="H",
)

REDUCTION = 16


class ConvBlock(nn.Module):
    def __init__(self, C: int):
        super().__init__()
        self.conv = nn.Conv2d(C, C, kernel_size=3, padding=1, bias=False)

    def forward(self, x):  # (B, C, H, W)
        return self.conv(x)


class SqueezeExcitation(ConvBlock):
    def __init__(self, C: int):
        super().__init__(C)
        self.squeeze = nn.Linear(C, C // REDUCTION)
        self.excite = nn.Linear(C // REDUCTION, C)

    def forward(self, x):  # (B, C, H, W)
        y = self.conv(x)
        gate = torch.sigmoid(self.excite(torch.relu(self.squeeze(y.mean(dim=(2, 3))))))  # (B, C)
        return y * gate[:, :, None, None]  # rescale each channel by its gate


def _conv_flops(s) -> int:
    return 2 * s["B"] * s["H"] ** 2 * s["C"] ** 2 * 9  # 3×3, C → C


def _gate_flops(s) -> int:
    B, C, r = s["B"], s["C"], s["C"] // REDUCTION
    # the mean over positions and the rescale; squeeze and excite with their biases, ReLU, sigmoid.
    return 2 * B * s["H"] ** 2 * C + (2 * B * C * r + B * r) + (2 * B * r * C + B * C) + B * r + B * C


def _bytes(s, item) -> int:
    return (2 * s["B"] * s["H"] ** 2 * s["C"] + 9 * s["C"] ** 2) * item


@channel_gating.method("squeeze_excitation", role="hadamard", cudnn=("eager", "compile"), bytes=_bytes,
                       flops=lambda s: _conv_flops(s) + _gate_flops(s),
                       exponents={"B": 1, "C": 2, "H": 2},
                       latex=r"y = \operatorname{conv}(x) \odot \sigma\!\left(W_2 \operatorname{ReLU}(W_1 \operatorname{GAP}(\operatorname{conv}(x)))\right)")
def squeeze_excitation(size):
    """conv(x) * σ(W₂ReLU(W₁GAP(conv(x)))), r = 16: squeeze-and-excitation, Hu et al. CVPR 2018."""
    return SqueezeExcitation(size["C"])


@channel_gating.method("conv_block", role="baseline", cudnn=("eager", "compile"), bytes=_bytes, flops=_conv_flops,
                       exponents={"B": 1, "C": 2, "H": 2}, latex=r"y = \operatorname{conv}_{3\times3}(x)")
def conv_block(size):
    """The same 3×3 conv block without the gate: the yardstick for the gate's overhead."""
    return ConvBlock(size["C"])
