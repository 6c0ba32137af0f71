"""gMLP's spatial gating unit for Hadamard Bench: one Hadamard method and its ablation, registered
into the `token_mixing` benchmark (X (B, N, C) → (B, N, C)) with the catalogue's own decorator."""

import torch
from torch import nn


class SpatialGating(nn.Module):
    """[u, v] = X W_in; v ← W_s LN(v) + b, mixing tokens; Y = (u ⊙ v) W_out. Ungated (the
    ablation): v = X W_in, mixed the same way, and Y = v W_out."""

    def __init__(self, N: int, C: int, gated: bool = True):
        super().__init__()
        self.gated = gated
        self.proj_in = nn.Linear(C, 2 * C if gated else C)
        self.norm = nn.LayerNorm(C)
        g = torch.Generator().manual_seed(2)
        # gMLP starts W_s near zero and b at one, so the unit starts close to an identity on u.
        self.spatial = nn.Parameter(0.02 * torch.randn(N, N, generator=g))
        self.bias = nn.Parameter(torch.ones(N))
        self.proj_out = nn.Linear(C, C)

    def forward(self, x):  # (B, N, C)
        h = self.proj_in(x)
        u, v = h.chunk(2, dim=-1) if self.gated else (None, h)
        v = torch.einsum("mn,bnc->bmc", self.spatial, self.norm(v)) + self.bias[None, :, None]
        return self.proj_out(u * v if self.gated else v)


def _bytes(s, item, in_width):
    # X in, Y out, the two projections and the N×N token-mixing weights, each moved once.
    return (2 * s["B"] * s["N"] * s["C"] + (in_width + 1) * s["C"] ** 2 + s["N"] ** 2) * item


def register(catalogue) -> None:
    """Add `sgu` and `token_mlp` to token_mixing."""
    bench = catalogue.benchmarks["token_mixing"]

    @bench.method(
        "sgu", role="hadamard",
        latex=r"Y = \left(U \odot (W_s\,\mathrm{LN}(V) + b)\right) W_{out},\quad [U, V] = X W_{in}",
        # In-projection C→2C and out-projection C→C with biases: 6BNC² + 3BNC; LayerNorm with
        # affine 7, the token bias 1 and the gate 1 per element; token mixing 2BN²C.
        flops=lambda s: 6 * s["B"] * s["N"] * s["C"] ** 2 + 2 * s["B"] * s["N"] ** 2 * s["C"]
        + 12 * s["B"] * s["N"] * s["C"],
        bytes=lambda s, item: _bytes(s, item, 2),
        exponents={"N": 2, "C": 2},
        against=("softmax_attention", "token_mlp"),
    )
    def sgu(size):
        """(U * (W_s·LN(V) + b))·W_out: gMLP's spatial gating unit, Liu et al. NeurIPS 2021."""
        return SpatialGating(size["N"], size["C"], gated=True)

    @bench.method(
        "token_mlp", role="baseline",
        latex=r"Y = (W_s\,\mathrm{LN}(X W_{in}) + b) W_{out}",
        flops=lambda s: 4 * s["B"] * s["N"] * s["C"] ** 2 + 2 * s["B"] * s["N"] ** 2 * s["C"]
        + 10 * s["B"] * s["N"] * s["C"],
        bytes=lambda s, item: _bytes(s, item, 1),
        exponents={"N": 2, "C": 2},
    )
    def token_mlp(size):
        """(W_s·LN(X·W_in) + b)·W_out: the spatial gating unit without its gate, the gMLP ablation."""
        return SpatialGating(size["N"], size["C"], gated=False)
