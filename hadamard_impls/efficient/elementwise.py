"""The Hadamard product itself and its element-wise relatives, against a memory
copy, the bandwidth ceiling (catalogue section 4)."""

import torch
import torch.nn.functional as F
from torch import nn

from ..backends import fused
from ..registry import catalogue

elementwise = catalogue.benchmark(
    "elementwise",
    domain="efficient",
    title="Element-wise products, multiplicative activations and dropout masks",
    contract="a, b, c (n,) → (n,); each method reads what it needs",
    params=("n",),
    sweeps={
        "smoke": [{"n": 2**12}],
        "quick": [{"n": 2**k} for k in (14, 18, 22)],
        "full": [{"n": 2**k} for k in range(16, 29, 2)],
    },
    make_inputs=lambda s, g: tuple(torch.randn(s["n"], generator=g) for _ in range(3)),
)

DROP = 0.1  # dropout probability


class Hadamard(nn.Module):
    def forward(self, a, b, c):  # (n,) each
        return a * b

    def forward_triton(self, a, b, c):
        return fused().hadamard(a, b)


class HadamardChain(nn.Module):
    def forward(self, a, b, c):
        return a * torch.sigmoid(b) + c  # three kernels in eager mode, one when fused

    def forward_triton(self, a, b, c):
        return fused().hadamard_chain(a, b, c)


class Activation(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, a, b, c):
        return self.fn(a)


class DropoutMask(nn.Module):
    def forward(self, a, b, c):
        keep = torch.empty_like(a).bernoulli_(1 - DROP)  # a fresh 0/1 mask each call
        return a * keep / (1 - DROP)


class Dropout(nn.Module):
    def forward(self, a, b, c):
        return F.dropout(a, DROP, training=True)


class Copy(nn.Module):
    def forward(self, a, b, c):
        return a.clone()


def dropout_check(inputs, output) -> None:
    """Random output: every element is dropped (0) or kept and rescaled by 1/(1 − p), and the
    kept fraction is within five standard deviations of 1 − p."""
    a = inputs[0].to(torch.float64)
    out = output.to(torch.float64)
    kept = out != 0
    torch.testing.assert_close(out[kept], a[kept] / (1 - DROP), rtol=1e-2, atol=1e-3)
    n = a.numel()
    sigma = (n * DROP * (1 - DROP)) ** 0.5
    if abs(kept.sum().item() - n * (1 - DROP)) > 5 * sigma + 1:
        raise AssertionError(f"kept {kept.sum().item()} of {n} elements, expected about {n * (1 - DROP):.0f}")


def _bytes(reads: int):
    return lambda s, item: (reads + 1) * s["n"] * item


_LINEAR = {"n": 1}
_FUSED = ("eager", "compile", "triton")


@elementwise.method("hadamard", role="hadamard", latex=r"y = a \odot b", flops=lambda s: s["n"],
                    bytes=_bytes(2), exponents=_LINEAR, against=("copy",),
                    backends=_FUSED)
def hadamard(size):
    """a * b: the Hadamard product, n FLOPs over 3n values, bandwidth-bound."""
    return Hadamard()


# Element-wise backwards are not twice their forwards, so each states its own training count:
# forward plus the backward ops autograd runs (as counted).
@elementwise.method("hadamard_chain", role="hadamard", latex=r"y = a \odot \sigma(b) + c",
                    flops=lambda s: 3 * s["n"], bytes=_bytes(3), exponents=_LINEAR, against=("copy",), backends=_FUSED,
                    train_flops=lambda s: 6 * s["n"])  # ∂a: g⊙σ(b); ∂b: g⊙a, then σ's backward (2)
def hadamard_chain(size):
    """a * σ(b) + c: a chain of element-wise ops; eager runs three kernels, compile fuses them."""
    return HadamardChain()


@elementwise.method("silu", role="hadamard", latex=r"y = a \odot \sigma(a)",
                    flops=lambda s: s["n"], bytes=_bytes(1), exponents=_LINEAR, against=("relu",),
                    train_flops=lambda s: 7 * s["n"])  # SiLU's backward decomposes into six element-wise ops
def silu(size):
    """a * σ(a): SiLU / swish, a multiplicative activation, Elfwing et al. 2018; Ramachandran et al. 2017."""
    return Activation(F.silu)


@elementwise.method("gelu", role="hadamard", latex=r"y = a \odot \Phi(a)",
                    flops=lambda s: s["n"], bytes=_bytes(1), exponents=_LINEAR, against=("relu",),
                    train_flops=lambda s: 2 * s["n"])  # one fused gelu_backward
def gelu(size):
    """a * Φ(a): GELU, a multiplicative activation, Hendrycks & Gimpel 2016."""
    return Activation(F.gelu)


@elementwise.method("relu", role="baseline", latex=r"y = \max(a, 0)",
                    flops=lambda s: s["n"], bytes=_bytes(1), exponents=_LINEAR,
                    train_flops=lambda s: 2 * s["n"])  # one threshold_backward
def relu(size):
    """max(a, 0): ReLU, the non-multiplicative activation."""
    return Activation(torch.relu)


@elementwise.method("dropout_mask", role="hadamard", latex=r"y = a \odot m / (1 - p),\; m \sim \mathrm{Bernoulli}(1 - p)",
                    flops=lambda s: 2 * s["n"],  # ⊙ and rescale; random draws count 0
                    train_flops=lambda s: 4 * s["n"],  # the backward repeats both
                    bytes=_bytes(1), exponents=_LINEAR, check=dropout_check, against=("dropout",))
def dropout_mask(size):
    """a * m / (1 − p), p = 0.1: dropout written as a Hadamard product with a fresh mask, Srivastava et al. 2014."""
    return DropoutMask()


@elementwise.method("dropout", role="baseline", latex=r"y = \operatorname{dropout}_p(a)",
                    flops=lambda s: 2 * s["n"], bytes=_bytes(1), exponents=_LINEAR, check=dropout_check,
                    train_flops=lambda s: 3 * s["n"])  # one fused native_dropout_backward
def dropout(size):
    """torch.nn.functional.dropout, p = 0.1: PyTorch's own dropout kernel."""
    return Dropout()


@elementwise.method("copy", role="reference", latex=r"y = a", flops=lambda s: 0, bytes=_bytes(1),
                    exponents=_LINEAR)
def copy(size):
    """y = a: a memory copy, the bandwidth ceiling for element-wise work."""
    return Copy()
