"""Fusing two modalities: Hadamard fusion against concatenation, sums and the
full bilinear map it factorises (catalogue section 2)."""

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import catalogue

bimodal_fusion = catalogue.benchmark(
    "bimodal_fusion",
    domain="fusion",
    title="Bimodal fusion: low-rank and sketched bilinear pooling against full bilinear maps",
    contract="x (B, d), q (B, d) → f (B, o); rank or hidden width k",
    params=("B", "d", "k", "o"),
    sweeps={
        "smoke": [{"B": 8, "d": 16, "k": 32, "o": 16}],
        "quick": [{"B": 64, "d": d, "k": 256, "o": 128} for d in (32, 128, 512)],
        "full": [{"B": 512, "d": d, "k": 1024, "o": 256} for d in (128, 256, 512, 1024, 2048)],
    },
    make_inputs=lambda s, g: (torch.randn(s["B"], s["d"], generator=g), torch.randn(s["B"], s["d"], generator=g)),
    x_param="d",
)


class MLB(nn.Module):
    def __init__(self, d: int, k: int, o: int):
        super().__init__()
        self.U = nn.Linear(d, k, bias=False)
        self.V = nn.Linear(d, k, bias=False)
        self.P = nn.Linear(k, o, bias=False)
        self.act = torch.tanh

    def forward(self, x, q):  # (B, d), (B, d)
        return self.P(self.act(self.U(x)) * self.act(self.V(q)))  # rank-k bilinear pooling


class SumFusion(MLB):
    def forward(self, x, q):  # (B, d), (B, d)
        return self.P(self.act(self.U(x)) + self.act(self.V(q)))


class CountSketch(nn.Module):
    """Ψx: each input coordinate i adds s[i]·x[i] into bucket h[i] of D."""

    def __init__(self, d: int, D: int, generator: torch.Generator):
        super().__init__()
        self.D = D
        self.register_buffer("h", torch.randint(D, (d,), generator=generator))
        self.register_buffer("s", torch.randint(2, (d,), generator=generator).float() * 2 - 1)

    def forward(self, x):  # (B, d) → (B, D)
        return x.new_zeros(x.shape[0], self.D).index_add_(1, self.h, x * self.s.to(x.dtype))


class MCB(nn.Module):
    def __init__(self, d: int, D: int):
        super().__init__()
        g = torch.Generator().manual_seed(7)
        self.sketch_x, self.sketch_q = CountSketch(d, D, g), CountSketch(d, D, g)

    def forward(self, x, q):  # (B, d), (B, d)
        D = self.sketch_x.D
        fx = torch.fft.rfft(self.sketch_x(x), n=D)
        fq = torch.fft.rfft(self.sketch_q(q), n=D)
        return torch.fft.irfft(fx * fq, n=D)  # circular convolution of the sketches, (B, D)


class PolyFusion(nn.Module):
    def __init__(self, d: int, k: int, o: int, degree: int = 3):
        super().__init__()
        self.Ax = nn.ModuleList([nn.Linear(d, k, bias=False) for _ in range(degree)])
        self.Aq = nn.ModuleList([nn.Linear(d, k, bias=False) for _ in range(degree)])
        self.S = nn.ModuleList([nn.Linear(k, k, bias=False) for _ in range(degree - 1)])
        self.b = nn.Parameter(torch.randn(degree, k) * 0.1 + 1)
        self.C = nn.Linear(k, o, bias=False)

    def forward(self, x, q):  # (B, d), (B, d)
        y = (self.Ax[0](x) + self.Aq[0](q)) * self.b[0]  # (B, k)
        for Ax, Aq, S, b in zip(self.Ax[1:], self.Aq[1:], self.S, self.b[1:]):
            y = (Ax(x) + Aq(q)) * (S(y) + b)  # each step multiplies in both modalities once more
        return self.C(y)


class Concat(nn.Module):
    def __init__(self, d: int, o: int):
        super().__init__()
        self.W = nn.Linear(2 * d, o, bias=False)

    def forward(self, x, q):  # (B, d), (B, d)
        return self.W(torch.cat([x, q], dim=1))


class FullBilinear(nn.Module):
    def __init__(self, d: int, o: int):
        super().__init__()
        self.W = nn.Parameter(torch.randn(o, d, d) / d)

    def forward(self, x, q):  # (B, d), (B, d)
        return torch.einsum("bi,oij,bj->bo", x, self.W, q)

    def forward_library(self, x, q):
        return F.bilinear(x, q, self.W)


def _bytes(s, item, weights: int) -> int:
    return (2 * s["B"] * s["d"] + s["B"] * s["o"] + weights) * item


def _low_rank(s) -> int:
    return 2 * 2 * s["B"] * s["d"] * s["k"] + 2 * s["B"] * s["k"] * s["o"]  # Uᵀx, Vᵀq and P


_EXPONENTS_LINEAR_IN_D = {"B": 1, "d": 1, "k": 1, "o": 1}


@bimodal_fusion.method(
    "mlb", role="hadamard",
    latex=r"f = P^\top\left(\tanh(U^\top x) \odot \tanh(V^\top q)\right)",
    flops=lambda s: _low_rank(s) + 3 * s["B"] * s["k"],  # two tanh and the product
    bytes=lambda s, item: _bytes(s, item, 2 * s["d"] * s["k"] + s["k"] * s["o"]),
    exponents=_EXPONENTS_LINEAR_IN_D,
)
def mlb(size):
    """Pᵀ(tanh(Uᵀx) * tanh(Vᵀq)): low-rank bilinear pooling (MLB), Kim et al. ICLR 2017."""
    return MLB(size["d"], size["k"], size["o"])


def _mcb_flops(s) -> float:
    import math

    D, B = s["o"], s["B"]
    fft = 2.5 * D * math.log2(D) * B  # one real transform of length D per row
    return 2 * 2 * B * s["d"] + 3 * int(fft) + 6 * B * (D // 2 + 1)  # sketches, 2 FFTs + 1 inverse, ⊙


@bimodal_fusion.method(
    "mcb", role="hadamard",
    latex=r"f = \mathcal{F}^{-1}\left(\mathcal{F}(\Psi_1 x) \odot \mathcal{F}(\Psi_2 q)\right)",
    flops=_mcb_flops,
    bytes=lambda s, item: _bytes(s, item, 0),
    exponents={"B": 1, "d": 1, "o": 1},
)
def mcb(size):
    """F⁻¹(F(Ψ₁x) * F(Ψ₂q)), sketches to D = o: compact bilinear pooling (MCB), Fukui et al. EMNLP 2016."""
    return MCB(size["d"], size["o"])


@bimodal_fusion.method(
    "poly_fusion", role="hadamard",
    latex=r"y_n = (A_n^{I\top} x + A_n^{II\top} q) \odot (S_n^\top y_{n-1} + b_n),\quad f = C y_3",
    # three steps of Aˣx + Aᵠq (4·B·d·k + B·k), two Sᵀy (2·B·k²) with the bias add, three ⊙, and C.
    flops=lambda s: 3 * (4 * s["B"] * s["d"] * s["k"] + s["B"] * s["k"]) + 2 * (2 * s["B"] * s["k"] ** 2 + s["B"] * s["k"])
    + 3 * s["B"] * s["k"] + 2 * s["B"] * s["k"] * s["o"],
    bytes=lambda s, item: _bytes(s, item, 6 * s["d"] * s["k"] + 2 * s["k"] ** 2 + s["k"] * s["o"]),
    exponents=_EXPONENTS_LINEAR_IN_D,
)
def poly_fusion(size):
    """yₙ = (Aₙᴵᵀx + Aₙᴵᴵᵀq) * (Sₙᵀyₙ₋₁ + bₙ), degree 3: the survey's multimodal polynomial recursion."""
    return PolyFusion(size["d"], size["k"], size["o"])


@bimodal_fusion.method(
    "concat", role="baseline",
    latex=r"f = W^\top [x; q]",
    flops=lambda s: 2 * s["B"] * 2 * s["d"] * s["o"],
    bytes=lambda s, item: _bytes(s, item, 2 * s["d"] * s["o"]),
    exponents={"B": 1, "d": 1, "o": 1},
)
def concat(size):
    """Wᵀ[x; q]: late fusion by concatenation, no interaction between the modalities."""
    return Concat(size["d"], size["o"])


@bimodal_fusion.method(
    "sum", role="baseline",
    latex=r"f = P^\top\left(\tanh(U^\top x) + \tanh(V^\top q)\right)",
    flops=lambda s: _low_rank(s) + 3 * s["B"] * s["k"],
    bytes=lambda s, item: _bytes(s, item, 2 * s["d"] * s["k"] + s["k"] * s["o"]),
    exponents=_EXPONENTS_LINEAR_IN_D,
)
def sum_fusion(size):
    """Pᵀ(tanh(Uᵀx) + tanh(Vᵀq)): MLB's layers with a sum in place of the Hadamard product."""
    return SumFusion(size["d"], size["k"], size["o"])


@bimodal_fusion.method(
    "bilinear_full", role="baseline",
    latex=r"f_o = x^\top W_o\, q",
    flops=lambda s: 2 * s["B"] * s["d"] ** 2 * s["o"] + 2 * s["B"] * s["d"] * s["o"],
    bytes=lambda s, item: _bytes(s, item, s["d"] ** 2 * s["o"]),
    exponents={"B": 1, "d": 2, "o": 1},
    backends=("eager", "compile", "library"),
    memory=lambda s, item: 3 * (s["d"] ** 2 * s["o"] + s["B"] * s["d"] * s["o"]) * item,
)
def bilinear_full(size):
    """xᵀWₒq with a full d×d×o tensor: the bilinear map MLB factorises (library: torch.nn.functional.bilinear)."""
    return FullBilinear(size["d"], size["o"])
