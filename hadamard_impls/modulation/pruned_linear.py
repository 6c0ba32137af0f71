"""Pruned weights: a mask applied by a Hadamard product against dense and sparse
storage of the same pruned matrix (catalogue section 3)."""

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import catalogue

pruned_linear = catalogue.benchmark(
    "pruned_linear",
    domain="modulation",
    title="Pruned linear layer: masked dense weights against dense and CSR",
    contract="x (B, n) → (B, n); sparsity in percent of weights removed",
    params=("B", "n", "sparsity"),
    sweeps={
        "smoke": [{"B": 4, "n": 16, "sparsity": 90}],
        "quick": [{"B": 64, "n": n, "sparsity": p} for n in (512, 2048) for p in (50, 90, 99)],
        "full": [{"B": 256, "n": n, "sparsity": p} for n in (4096, 16384) for p in (50, 90, 99)],
    },
    make_inputs=lambda s, g: (torch.randn(s["B"], s["n"], generator=g),),
    x_param="sparsity",
)


class Dense(nn.Module):
    def __init__(self, n: int, sparsity: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n, n) / n ** 0.5)
        # Magnitude pruning (Han et al. 2015): keep the largest weights.
        threshold = self.weight.detach().abs().flatten().kthvalue(max(1, round(n * n * sparsity / 100))).values
        self.register_buffer("mask", (self.weight.detach().abs() > threshold).to(self.weight.dtype))

    def forward(self, x):  # (B, n)
        return F.linear(x, self.weight)

    def extra_metrics(self, x) -> dict[str, float]:
        return {"density": float(self.mask.mean())}


class MaskedWeight(Dense):
    def forward(self, x):  # (B, n)
        return F.linear(x, self.weight * self.mask)  # pruning as a Hadamard product


class SparseCSR(Dense):
    def __init__(self, n: int, sparsity: int):
        super().__init__(n, sparsity)
        # The pruned weight is stored once, fixed: sparse storage has no dense gradient.
        with warnings.catch_warnings():
            # PyTorch says CSR support "is in beta" once in each process: every round's worker
            # printed it into the run's output, where it read as a fault of the run.
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            self.register_buffer("pruned", (self.weight.detach() * self.mask).to_sparse_csr())
        del self.weight

    def forward(self, x):  # (B, n)
        return (self.pruned @ x.T).T


def _nnz(s) -> float:
    return s["n"] * s["n"] * (1 - s["sparsity"] / 100)


_EXPONENTS = {"B": 1, "n": 2}


@pruned_linear.method(
    "masked_weight", role="hadamard", exponents=_EXPONENTS, latex=r"y = x\,(W \odot M)^\top",
    flops=lambda s: s["n"] ** 2 + 2 * s["B"] * s["n"] ** 2,
    bytes=lambda s, item: (2 * s["B"] * s["n"] + 2 * s["n"] ** 2) * item,
)
def masked_weight(size):
    """x(W * M)ᵀ: a pruned weight as a dense weight times a 0/1 mask, Han et al. 2015; lottery tickets."""
    return MaskedWeight(size["n"], size["sparsity"])


@pruned_linear.method(
    "dense", role="baseline", exponents=_EXPONENTS, latex=r"y = x W^\top",
    flops=lambda s: 2 * s["B"] * s["n"] ** 2,
    bytes=lambda s, item: (2 * s["B"] * s["n"] + s["n"] ** 2) * item,
)
def dense(size):
    """xWᵀ with the unpruned weight: what pruning must beat."""
    return Dense(size["n"], size["sparsity"])


@pruned_linear.method(
    "sparse_csr", role="baseline", exponents={"B": 1, "n": 2}, latex=r"y = x\,\operatorname{CSR}(W \odot M)^\top",
    flops=lambda s: 2 * s["B"] * _nnz(s),
    train_flops=lambda s: 2 * 2 * s["B"] * _nnz(s),  # the fixed weight needs no gradient: only the input's
    bytes=lambda s, item: (2 * s["B"] * s["n"] + 2 * _nnz(s) + s["n"]) * item,
)
def sparse_csr(size):
    """The pruned weight in compressed sparse rows: work proportional to the kept weights."""
    return SparseCSR(size["n"], size["sparsity"])
