"""Token mixing: attention against its Hadamard replacements (catalogue section 1)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import HeadProjections, attention_flops, elu_feature_map, scores_bytes, token_bytes
from ..backends import fused
from ..registry import catalogue

token_mixing = catalogue.benchmark(
    "token_mixing",
    domain="high_order",
    title="Token mixing: attention and its Hadamard replacements",
    contract="X (B, N, C) → (B, N, C)",
    params=("B", "N", "C", "H"),
    sweeps={
        "smoke": [{"B": 1, "N": 64, "C": 32, "H": 2}],
        "quick": [{"B": 1, "N": n, "C": 128, "H": 4} for n in (256, 512, 1024, 2048)],
        "full": [{"B": 1, "N": n, "C": 512, "H": 8} for n in (256, 1024, 4096, 8192, 16384)],
        # Figure S4 (Babiloni et al. 2023): runtime and FLOPs over the number of tokens.
        "paper": [{"B": 1, "N": n, "C": 512, "H": 8} for n in (512, 1024, 2048, 4096, 8192, 16384)],
    },
    make_inputs=lambda s, g: (torch.randn(s["B"], s["N"], s["C"], generator=g),),
    x_param="N",
)


class PolySA(HeadProjections):
    def __init__(self, N: int, C: int, H: int):
        super().__init__(C, H)
        # Per-token weights start near mean pooling, with noise so tests see every token.
        g = torch.Generator().manual_seed(1)
        self.p1 = nn.Parameter(1 + 0.1 * torch.randn(H, N, generator=g))
        self.p2 = nn.Parameter((1 + 0.1 * torch.randn(H, N, generator=g)) / N)
        self.norm = nn.LayerNorm(C // H)

    def forward(self, x):  # (B, N, C)
        q, k, v = self.split(x)  # (B, H, N, d)
        m = self.norm(torch.einsum("hn,bhnd->bhd", self.p2, k * v))  # pooled K ⊙ V, (B, H, d)
        y = q * (self.p1[None, :, :, None] * m[:, :, None, :])  # (B, H, N, d)
        return self.merge(y)

    def forward_triton(self, x):  # pooling and gating read Q, K, V in place: no (B, H, N, d) temporaries
        K = fused()
        q, k, v = self.split(x)
        B, H, N, _ = q.shape
        m = self.norm(K.pool(k, v, self.p2.expand(B, H, N)))
        return self.merge(K.gate(q, m, w=self.p1.expand(B, H, N), layout="tokens"))


class AFTSimple(HeadProjections):
    def forward(self, x):  # (B, N, C)
        B, N, C = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # (B, N, C): AFT mixes per channel, no heads
        context = (k.softmax(dim=1) * v).sum(dim=1, keepdim=True)  # (B, 1, C)
        return self.out(torch.sigmoid(q) * context)  # the query gates the pooled context

    def forward_triton(self, x):  # one online-softmax pass over the tokens, then the gate
        K = fused()
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        context = K.softmax_pool(k[:, None], v[:, None])  # (B, 1, C)
        return self.out(K.gate(q[:, None], context, activation="sigmoid")[:, 0])


class LinearAttention(HeadProjections):
    def forward(self, x):  # (B, N, C)
        q, k, v = self.split(x)
        q, k = elu_feature_map(q), elu_feature_map(k)  # (B, H, N, d)
        kv = k.transpose(-2, -1) @ v  # (B, H, d, d): one d×d summary instead of N×N scores
        normaliser = q @ k.sum(dim=2, keepdim=True).transpose(-2, -1)  # (B, H, N, 1)
        return self.merge((q @ kv) / normaliser)


class Linear(HeadProjections):
    def forward(self, x):  # (B, N, C)
        q, _, _ = self.split(x)  # all three projections are one product; only Q flows on
        return self.merge(q)


class SoftmaxAttention(HeadProjections):
    def forward(self, x):  # (B, N, C)
        q, k, v = self.split(x)
        scores = (q @ k.transpose(-2, -1)) * (1 / math.sqrt(q.shape[-1]))  # (B, H, N, N)
        return self.merge(scores.softmax(dim=-1) @ v)


class SDPA(HeadProjections):
    def forward(self, x):  # (B, N, C)
        q, k, v = self.split(x)
        return self.merge(F.scaled_dot_product_attention(q, k, v))


@token_mixing.method(
    "poly_sa", role="hadamard",
    latex=r"Y_n = Q_n \odot \left(p_1[n]\, \mathrm{LN}\!\left(\textstyle\sum_{n'} p_2[n'] (K_{n'} \odot V_{n'})\right)\right)",
    # K⊙V, the p₂-weighted pooling (2 per element), p₁·m and Q⊙: 5 per element of (B, N, C);
    # LayerNorm with affine: 7 per pooled element.
    flops=lambda s: attention_flops(s) + 5 * s["B"] * s["N"] * s["C"] + 7 * s["B"] * s["C"],
    bytes=lambda s, item: token_bytes(s, item) + 2 * s["H"] * s["N"] * item,
    exponents={"N": 1, "C": 2},
    backends=("eager", "compile", "triton"),
)
def poly_sa(size):
    """Q * (p₁·LN(Σ p₂ K*V)): Poly-SA, third-order polynomial attention, Babiloni et al. T-PAMI 2023."""
    return PolySA(size["N"], size["C"], size["H"])


@token_mixing.method(
    "softmax_attention", role="baseline",
    latex=r"Y = \operatorname{softmax}\!\left(QK^\top/\sqrt{d}\right) V",
    # QKᵀ and AV: 4·B·N²·C; the scale (1) and softmax (5) per score.
    flops=lambda s: attention_flops(s) + 4 * s["B"] * s["N"] ** 2 * s["C"]
    + 6 * s["B"] * s["H"] * s["N"] ** 2,
    bytes=token_bytes,
    exponents={"N": 2, "C": 2},
    memory=scores_bytes,
)
def softmax_attention(size):
    """softmax(QKᵀ/√d)V written out: scaled dot-product attention, Vaswani et al. 2017."""
    return SoftmaxAttention(size["C"], size["H"])


@token_mixing.method(
    "sdpa", role="baseline",
    latex=r"Y = \operatorname{SDPA}(Q, K, V)",
    # The fused kernel scales inside the softmax: 5 per score, no separate product.
    flops=lambda s: attention_flops(s) + 4 * s["B"] * s["N"] ** 2 * s["C"]
    + 5 * s["B"] * s["H"] * s["N"] ** 2,
    bytes=token_bytes,
    exponents={"N": 2, "C": 2},
    memory=lambda s, item: scores_bytes(s, item, copies=1),  # the CPU math path holds the scores
)
def sdpa(size):
    """torch.nn.functional.scaled_dot_product_attention: the fused attention kernel, the strong baseline."""
    return SDPA(size["C"], size["H"])


@token_mixing.method(
    "aft_simple", role="hadamard",
    latex=r"Y_t = \sigma(Q_t) \odot \textstyle\sum_{t'} \operatorname{softmax}(K)_{t'} \odot V_{t'}",
    # softmax over tokens (5), its product with V and the sum (2), sigmoid and gate (2): per element.
    flops=lambda s: attention_flops(s) + 9 * s["B"] * s["N"] * s["C"],
    bytes=token_bytes,
    exponents={"N": 1, "C": 2},
    backends=("eager", "compile", "triton"),
)
def aft_simple(size):
    """σ(Q) * Σ softmax(K) * V: AFT-simple, Attention Free Transformer, Zhai et al. 2021."""
    return AFTSimple(size["C"], size["H"])


@token_mixing.method(
    "linear_attention", role="hadamard",
    latex=r"Y = \frac{\phi(Q)\left(\phi(K)^\top V\right)}{\phi(Q) \sum_n \phi(K_n)^\top}",
    # φ on Q and K (2 each), φ(K)ᵀV and φ(Q)·KV (2·N·d² each per head), the key sum,
    # the normaliser product (2) and the division: per element of (B, N, C).
    flops=lambda s: attention_flops(s) + 4 * s["B"] * s["N"] * s["C"] * (s["C"] // s["H"])
    + 8 * s["B"] * s["N"] * s["C"],
    bytes=token_bytes,
    exponents={"N": 1, "C": 2},
)
def linear_attention(size):
    """φ(Q)(φ(K)ᵀV) normalised, φ = elu + 1: linear attention, Katharopoulos et al. ICML 2020."""
    return LinearAttention(size["C"], size["H"])


@token_mixing.method(
    "linear", role="reference",
    latex=r"Y = X W_Q W_O",
    flops=attention_flops,
    bytes=token_bytes,
    exponents={"N": 1, "C": 2},
)
def linear(size):
    """The Q, K, V and O projections alone: the linear-cost yardstick, no token mixing."""
    return Linear(size["C"], size["H"])
