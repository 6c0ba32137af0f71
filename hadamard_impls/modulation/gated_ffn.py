"""Gated feed-forward blocks against a plain one (catalogue section 3)."""

import torch
import torch.nn.functional as F
from torch import nn

from ..backends import fused
from ..registry import catalogue

gated_ffn = catalogue.benchmark(
    "gated_ffn",
    domain="modulation",
    title="Gated feed-forward block against a plain one, parameters matched",
    contract="X (1, tokens, C) → (1, tokens, C)",
    params=("tokens", "C"),
    sweeps={
        "smoke": [{"tokens": 64, "C": 32}],
        "quick": [{"tokens": t, "C": 256} for t in (256, 1024, 4096)]
        + [{"tokens": 1024, "C": 512}],
        "full": [{"tokens": t, "C": 1024} for t in (1024, 4096, 16384, 65536)]
        + [{"tokens": 8192, "C": c} for c in (256, 512, 2048, 4096)]
        # Where the fused dual GEMM is judged against torch.compile (benchmarks/gpu_summary.py).
        + [{"tokens": t, "C": 4096} for t in (4096, 16384)],
    },
    make_inputs=lambda s, g: (torch.randn(1, s["tokens"], s["C"], generator=g),),
    x_param="tokens",
)


def plain_hidden(C: int) -> int:
    return 4 * C


def gated_hidden(C: int) -> int:
    # Three C×h matrices instead of two C×4C ones: h = ⅔·4C keeps the parameters equal.
    return round(8 * C / 3)


class FFN(nn.Module):
    def __init__(self, C: int, hidden: int, act):
        super().__init__()
        self.up = nn.Linear(C, hidden, bias=False)
        self.down = nn.Linear(hidden, C, bias=False)
        self.act = act

    def forward(self, x):  # (1, T, C)
        return self.down(self.act(self.up(x)))


class GatedFFN(nn.Module):
    def __init__(self, C: int, hidden: int, act, bias: bool = False):
        super().__init__()
        self.act_name = {F.silu: "silu", F.gelu: "gelu", torch.sigmoid: "sigmoid"}[act]
        self.gate = nn.Linear(C, hidden, bias=bias)
        self.up = nn.Linear(C, hidden, bias=bias)
        self.down = nn.Linear(hidden, C, bias=False)
        self.act = act

    def forward(self, x):  # (1, T, C)
        return self.down(self.act(self.gate(x)) * self.up(x))  # the gate is a Hadamard product

    def forward_triton(self, x):  # both projections and the gate in one dual-GEMM kernel
        return self.down(fused().gated_linear(x, self.gate, self.up, self.act_name))


def _gated_flops(s):
    T, C, h = s["tokens"], s["C"], gated_hidden(s["C"])
    return 3 * 2 * T * C * h + 2 * T * h  # three matmuls; activation and product


def _ffn_flops(s):
    T, C, h = s["tokens"], s["C"], plain_hidden(s["C"])
    return 2 * 2 * T * C * h + T * h  # two matmuls; activation


def _gated_bytes(s, item):
    return (2 * s["tokens"] * s["C"] + 3 * s["C"] * gated_hidden(s["C"])) * item


def _ffn_bytes(s, item):
    return (2 * s["tokens"] * s["C"] + 2 * s["C"] * plain_hidden(s["C"])) * item


_EXPONENTS = {"tokens": 1, "C": 2}
_FUSED = ("eager", "compile", "triton")


@gated_ffn.method("swiglu", role="hadamard", flops=_gated_flops, bytes=_gated_bytes,
                  exponents=_EXPONENTS, backends=_FUSED,
                  latex=r"y = \left(\operatorname{SiLU}(xW) \odot xV\right) W_2")
def swiglu(size):
    """(SiLU(xW) * xV) W₂: SwiGLU, Shazeer 2020."""
    return GatedFFN(size["C"], gated_hidden(size["C"]), F.silu)


@gated_ffn.method("geglu", role="hadamard", flops=_gated_flops, bytes=_gated_bytes,
                  exponents=_EXPONENTS, backends=_FUSED,
                  latex=r"y = \left(\operatorname{GELU}(xW) \odot xV\right) W_2")
def geglu(size):
    """(GELU(xW) * xV) W₂: GEGLU, Shazeer 2020."""
    return GatedFFN(size["C"], gated_hidden(size["C"]), F.gelu)


@gated_ffn.method("ffn_gelu", role="baseline", flops=_ffn_flops, bytes=_ffn_bytes,
                  exponents=_EXPONENTS, latex=r"y = \operatorname{GELU}(xW_1) W_2")
def ffn_gelu(size):
    """GELU(xW₁) W₂: the plain transformer feed-forward block, hidden 4C."""
    return FFN(size["C"], plain_hidden(size["C"]), F.gelu)


@gated_ffn.method("glu", role="hadamard", bytes=_gated_bytes, exponents=_EXPONENTS, backends=_FUSED,
                  # three matmuls; the two biases, the sigmoid and the product
                  flops=lambda s: _gated_flops(s) + 2 * s["tokens"] * gated_hidden(s["C"]),
                  latex=r"y = \left((xW + b) \odot \sigma(xV + c)\right) W_2")
def glu(size):
    """((xW + b) * σ(xV + c)) W₂: the gated linear unit, Dauphin et al. ICML 2017."""
    return GatedFFN(size["C"], gated_hidden(size["C"]), torch.sigmoid, bias=True)


@gated_ffn.method("ffn_relu", role="baseline", flops=_ffn_flops, bytes=_ffn_bytes,
                  exponents=_EXPONENTS, latex=r"y = \operatorname{ReLU}(xW_1) W_2")
def ffn_relu(size):
    """ReLU(xW₁) W₂: the original transformer feed-forward block, hidden 4C."""
    return FFN(size["C"], plain_hidden(size["C"]), torch.relu)
