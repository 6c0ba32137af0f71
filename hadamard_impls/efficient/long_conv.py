"""Long convolutions: a Hadamard product in the frequency domain against the
direct convolution (catalogue section 4)."""

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import catalogue

long_conv = catalogue.benchmark(
    "long_conv",
    domain="efficient",
    title="Long convolution: FFT (a Hadamard product of spectra) against direct convolution",
    contract="x (B, C, N), a causal kernel (C, N) per channel → (B, C, N)",
    params=("B", "C", "N"),
    sweeps={
        "smoke": [{"B": 1, "C": 4, "N": 32}],
        "quick": [{"B": 1, "C": 32, "N": n} for n in (128, 512, 2048, 8192)],
        "full": [{"B": 8, "C": 256, "N": n} for n in (1024, 4096, 16384, 65536)],
    },
    make_inputs=lambda s, g: (torch.randn(s["B"], s["C"], s["N"], generator=g),),
    x_param="N",
)


class DirectConv(nn.Module):
    def __init__(self, C: int, N: int):
        super().__init__()
        self.kernel = nn.Parameter(torch.randn(C, N) / N ** 0.5)  # h, one length-N filter per channel

    def forward(self, x):  # (B, C, N)
        N = x.shape[-1]
        # y[t] = Σ_{s ≤ t} h[s] x[t − s]: left-pad for causality, flip because conv1d correlates.
        return F.conv1d(F.pad(x, (N - 1, 0)), self.kernel.flip(-1)[:, None, :], groups=x.shape[1])


class FFTConv(DirectConv):
    def forward(self, x):  # (B, C, N)
        N = x.shape[-1]
        spectrum = torch.fft.rfft(x, n=2 * N) * torch.fft.rfft(self.kernel, n=2 * N)  # zero-padded: linear, not circular
        return torch.fft.irfft(spectrum, n=2 * N)[..., :N]


def _bytes(s, item) -> int:
    return (2 * s["B"] * s["C"] * s["N"] + s["C"] * s["N"]) * item


def _fft_flops(s) -> float:
    import math

    B, C, N = s["B"], s["C"], s["N"]
    per_transform = 2.5 * 2 * N * math.log2(2 * N)  # a real transform of length 2N
    return int(per_transform * B * C) * 2 + int(per_transform * C) + 6 * B * C * (N + 1)


@long_conv.method(
    "fft_conv", role="hadamard", bytes=_bytes, flops=_fft_flops,
    exponents={"B": 1, "C": 1, "N": 1},  # N log N
    latex=r"y = \mathcal{F}^{-1}\left(\mathcal{F}(x) \odot \mathcal{F}(h)\right)",
)
def fft_conv(size):
    """F⁻¹(F(x) * F(h)), zero-padded to 2N: the long convolution of GFNet and Hyena, O(N log N)."""
    return FFTConv(size["C"], size["N"])


@long_conv.method(
    "direct_conv", role="baseline", cudnn=("eager", "compile"), bytes=_bytes,
    flops=lambda s: 2 * s["B"] * s["C"] * s["N"] ** 2,
    # The input's gradient is a full convolution over the 2N − 1 padded positions, twice the
    # forward; the kernel's gradient once more: 6 × forward in all.
    train_flops=lambda s: 6 * 2 * s["B"] * s["C"] * s["N"] ** 2,
    exponents={"B": 1, "C": 1, "N": 2},
    latex=r"y_t = \textstyle\sum_{s \le t} h_s\, x_{t-s}",
    # Checked against the same convolution by FFT in float64 (fft_conv's formula on this module's
    # kernel; within 3e-12 of conv1d's at N = 8192): conv1d has no fast float64 kernel on a CPU. At
    # the quick suite's N = 8192 it took 1.8 s in a worker (7.7 s with glibc's default allocator)
    # against 0.12 s in float32 and 0.014 s by FFT, and 2-15 s of a quick run's first round went to
    # it (a 2-vCPU AMD EPYC VM, 2026-12-07).
    float64_reference=FFTConv.forward,
)
def direct_conv(size):
    """conv1d with the length-N kernel, causal: the direct O(N²) convolution."""
    return DirectConv(size["C"], size["N"])
