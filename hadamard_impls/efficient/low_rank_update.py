"""Low-rank weight updates: LoHa's Hadamard product of two low-rank matrices
against LoRA at the same parameter count (catalogue section 4)."""

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import catalogue

low_rank_update = catalogue.benchmark(
    "low_rank_update",
    domain="efficient",
    title="Low-rank updates: LoHa against LoRA at equal parameters",
    contract="x (B, m) → (B, m) through W₀ + ΔW, W₀ (m, m) frozen; ΔW from factors of rank r",
    params=("B", "m", "r"),
    sweeps={
        "smoke": [{"B": 4, "m": 16, "r": 2}],
        "quick": [{"B": 64, "m": m, "r": 8} for m in (256, 1024, 2048)] + [{"B": 64, "m": 1024, "r": r} for r in (4, 16)],
        "full": [{"B": 256, "m": m, "r": 16} for m in (1024, 4096, 8192)] + [{"B": 256, "m": 4096, "r": r} for r in (4, 8, 32)],
    },
    make_inputs=lambda s, g: (torch.randn(s["B"], s["m"], generator=g),),
    x_param="m",
)


def _factor(m: int, r: int) -> nn.Parameter:
    # Random, not LoRA's zero start: the benchmark measures what trained factors cost and reach.
    return nn.Parameter(torch.randn(m, r) / (m * r) ** 0.25)


class Update(nn.Module):
    def __init__(self, m: int):
        super().__init__()
        self.register_buffer("W0", torch.randn(m, m) / m ** 0.5)  # the frozen pretrained weight

    def forward(self, x):  # (B, m)
        return F.linear(x, self.W0 + self.delta())

    def extra_metrics(self, x) -> dict[str, float]:
        """The rank ΔW reaches, read off a random sketch ΔWΩ wide enough to hold it."""
        with torch.no_grad():
            delta = self.delta().to(torch.float64)
            width = min(delta.shape[1], self.max_rank + 8)
            sketch = delta @ torch.randn(delta.shape[1], width, dtype=delta.dtype, device=delta.device)
            return {"rank": float(torch.linalg.matrix_rank(sketch))}


class LoHa(Update):
    def __init__(self, m: int, r: int):
        super().__init__(m)
        self.A1, self.B1, self.A2, self.B2 = (_factor(m, r) for _ in range(4))
        self.max_rank = r * r

    def delta(self):  # (m, m), rank up to r²
        return (self.A1 @ self.B1.T) * (self.A2 @ self.B2.T)


class LoRA(Update):
    def __init__(self, m: int, r: int):
        super().__init__(m)
        self.B, self.A = _factor(m, 2 * r), _factor(m, 2 * r)  # rank 2r: LoHa's 4·m·r parameters
        self.max_rank = 2 * r

    def delta(self):  # (m, m), rank up to 2r
        return self.B @ self.A.T


def _apply(s) -> int:
    return s["m"] ** 2 + 2 * s["B"] * s["m"] ** 2  # W₀ + ΔW, then the product with x


def _bytes(s, item) -> int:
    return (2 * s["B"] * s["m"] + s["m"] ** 2 + 4 * s["m"] * s["r"]) * item


@low_rank_update.method(
    "loha", role="hadamard", bytes=_bytes, exponents={"B": 1, "m": 2, "r": 1},
    flops=lambda s: 2 * 2 * s["m"] ** 2 * s["r"] + s["m"] ** 2 + _apply(s),
    latex=r"\Delta W = (A_1 B_1^\top) \odot (A_2 B_2^\top)",
)
def loha(size):
    """ΔW = (A₁B₁ᵀ) * (A₂B₂ᵀ): LoHa / FedPara, rank up to r² from 4mr parameters, Hyeon-Woo et al. ICLR 2022."""
    return LoHa(size["m"], size["r"])


@low_rank_update.method(
    "lora", role="baseline", bytes=_bytes, exponents={"B": 1, "m": 2, "r": 1},
    flops=lambda s: 2 * s["m"] ** 2 * 2 * s["r"] + _apply(s),
    latex=r"\Delta W = B A^\top,\quad \operatorname{rank} 2r",
)
def lora(size):
    """ΔW = BAᵀ at rank 2r, LoHa's parameter count: LoRA, Hu et al. ICLR 2022."""
    return LoRA(size["m"], size["r"])
