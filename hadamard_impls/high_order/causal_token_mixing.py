"""Causal token mixing: masks as Hadamard products, and their linear forms (catalogue section 1).

A causal mask can be applied by multiplication (M ∈ {0, 1}) or by addition (−∞
above the diagonal); linear attention and retention have a parallel form with
an N×N mask and a recurrent form with running sums.
"""

import math

import torch
import torch.nn.functional as F

from ..layers import HeadProjections, attention_flops, elu_feature_map, scores_bytes, token_bytes
from ..registry import catalogue

causal_token_mixing = catalogue.benchmark(
    "causal_token_mixing",
    domain="high_order",
    title="Causal token mixing: Hadamard masks, additive masks and linear recurrences",
    contract="X (B, N, C) → (B, N, C), token n sees tokens ≤ n",
    params=("B", "N", "C", "H"),
    sweeps={
        "smoke": [{"B": 1, "N": 32, "C": 32, "H": 2}],
        "quick": [{"B": 1, "N": n, "C": 128, "H": 4} for n in (256, 512, 1024, 2048)],
        "full": [{"B": 1, "N": n, "C": 512, "H": 8} for n in (256, 1024, 4096, 8192, 16384)],
    },
    make_inputs=lambda s, g: (torch.randn(s["B"], s["N"], s["C"], generator=g),),
    x_param="N",
)


def causal_mask(n: int, device) -> torch.Tensor:
    return torch.ones(n, n, device=device, dtype=torch.bool).tril()  # (N, N), 1 on and below the diagonal


def scaled_scores(q, k):  # (B, H, N, d) twice → (B, H, N, N)
    return (q @ k.transpose(-2, -1)) * (1 / math.sqrt(q.shape[-1]))


class HadamardMaskAttention(HeadProjections):
    def forward(self, x):  # (B, N, C)
        q, k, v = self.split(x)
        s = scaled_scores(q, k)
        p = torch.exp(s - s.amax(dim=-1, keepdim=True)) * causal_mask(s.shape[-1], s.device)  # mask by ⊙
        return self.merge((p / p.sum(dim=-1, keepdim=True)) @ v)


class AdditiveMaskAttention(HeadProjections):
    def forward(self, x):  # (B, N, C)
        q, k, v = self.split(x)
        s = scaled_scores(q, k)
        minus_inf = torch.zeros_like(s[0, 0]).masked_fill(~causal_mask(s.shape[-1], s.device), float("-inf"))
        return self.merge((s + minus_inf).softmax(dim=-1) @ v)


class SDPACausal(HeadProjections):
    def forward(self, x):  # (B, N, C)
        q, k, v = self.split(x)
        return self.merge(F.scaled_dot_product_attention(q, k, v, is_causal=True))


class LinearAttentionParallel(HeadProjections):
    def forward(self, x):  # (B, N, C)
        q, k, v = self.split(x)
        q, k = elu_feature_map(q), elu_feature_map(k)
        a = (q @ k.transpose(-2, -1)) * causal_mask(q.shape[2], q.device)  # (B, H, N, N)
        return self.merge((a @ v) / a.sum(dim=-1, keepdim=True))


class LinearAttentionRecurrent(HeadProjections):
    def forward(self, x):  # (B, N, C)
        q, k, v = self.split(x)
        q, k = elu_feature_map(q), elu_feature_map(k)
        # Sₙ = Σ_{m≤n} φ(kₘ)ᵀvₘ and zₙ = Σ_{m≤n} φ(kₘ): the recurrence, unrolled as prefix sums.
        state = torch.cumsum(k.unsqueeze(-1) * v.unsqueeze(-2), dim=2)  # (B, H, N, d, d)
        z = torch.cumsum(k, dim=2)  # (B, H, N, d)
        num = (q.unsqueeze(-2) @ state).squeeze(-2)  # (B, H, N, d)
        return self.merge(num / (q * z).sum(dim=-1, keepdim=True))


class RetentionParallel(HeadProjections):
    def forward(self, x):  # (B, N, C)
        q, k, v = self.split(x)
        n, h = q.shape[2], q.shape[1]
        gamma = 1 - 2.0 ** (-5 - torch.arange(h, device=x.device, dtype=x.dtype))  # one decay per head
        distance = torch.arange(n, device=x.device)
        distance = (distance[:, None] - distance[None, :]).to(x.dtype)  # (N, N), i − j
        decay = gamma[:, None, None] ** distance.clamp(min=0) * causal_mask(n, x.device)  # (H, N, N)
        return self.merge(((q @ k.transpose(-2, -1)) * decay) @ v)  # decay applied by ⊙


def _scores(s) -> int:
    return s["B"] * s["H"] * s["N"] ** 2


def _quadratic(s) -> int:
    return attention_flops(s) + 4 * s["B"] * s["N"] ** 2 * s["C"]  # projections, QKᵀ and ·V


def _d(s) -> int:
    return s["C"] // s["H"]


_QUADRATIC = dict(bytes=token_bytes, exponents={"N": 2, "C": 2}, memory=scores_bytes)


@causal_token_mixing.method(
    "hadamard_mask_attention", role="hadamard",
    latex=r"P = \exp(S - \max S) \odot M,\quad Y = \frac{P}{P\mathbf{1}} V",
    # per score: scale, max, subtract, exp, ⊙M, row sum, divide.
    flops=lambda s: _quadratic(s) + 7 * _scores(s), **_QUADRATIC)
def hadamard_mask_attention(size):
    """Row-normalised exp(S − max) * M, M lower-triangular: causal attention masked by a Hadamard product."""
    return HadamardMaskAttention(size["C"], size["H"])


@causal_token_mixing.method(
    "additive_mask_attention", role="baseline",
    latex=r"Y = \operatorname{softmax}(S + M_{-\infty}) V",
    # per score: scale, + mask, softmax (5); building the −∞ mask: invert and fill, N² each.
    flops=lambda s: _quadratic(s) + 7 * _scores(s) + 2 * s["N"] ** 2, **_QUADRATIC)
def additive_mask_attention(size):
    """softmax(S + M₋∞)V: causal attention with an additive −∞ mask, as in GPT."""
    return AdditiveMaskAttention(size["C"], size["H"])


@causal_token_mixing.method(
    "sdpa_causal", role="baseline",
    latex=r"Y = \operatorname{SDPA}(Q, K, V; \text{causal})",
    # counted like sdpa: the kernel's two products over all N² pairs and 5 per score.
    flops=lambda s: _quadratic(s) + 5 * _scores(s),
    bytes=token_bytes, exponents={"N": 2, "C": 2}, memory=lambda s, item: scores_bytes(s, item, copies=1))
def sdpa_causal(size):
    """scaled_dot_product_attention(is_causal=True): the fused causal kernel, the strong baseline."""
    return SDPACausal(size["C"], size["H"])


@causal_token_mixing.method(
    "linear_attention_parallel", role="hadamard",
    latex=r"Y = \frac{(\phi(Q)\phi(K)^\top \odot M) V}{(\phi(Q)\phi(K)^\top \odot M)\mathbf{1}}",
    # φ on Q and K (2 per element each); per score: ⊙M, row sum; the division.
    flops=lambda s: _quadratic(s) + 2 * _scores(s) + 5 * s["B"] * s["N"] * s["C"], **_QUADRATIC)
def linear_attention_parallel(size):
    """(φ(Q)φ(K)ᵀ * M)V normalised: causal linear attention in parallel form, Katharopoulos et al. 2020."""
    return LinearAttentionParallel(size["C"], size["H"])


@causal_token_mixing.method(
    "linear_attention_recurrent", role="hadamard",
    latex=r"S_n = S_{n-1} + \phi(K_n)^\top V_n,\quad Y_n = \frac{\phi(Q_n) S_n}{\phi(Q_n) z_n}",
    # outer products and their prefix sum (2·N·d² per head), φ(Q)·Sₙ (2·N·d²), and per element:
    # φ on Q and K (4), the key prefix sum, φ(Q)⊙z and its sum, the division.
    flops=lambda s: attention_flops(s) + 4 * s["B"] * s["N"] * s["C"] * _d(s) + 8 * s["B"] * s["N"] * s["C"],
    bytes=token_bytes,
    exponents={"N": 1, "C": 2},
    memory=lambda s, item: 3 * s["B"] * s["N"] * s["C"] * _d(s) * item + 4 * token_bytes(s, item),
)
def linear_attention_recurrent(size):
    """Running sums of φ(K)ᵀV: causal linear attention as a recurrence, O(N·d²), Katharopoulos et al. 2020."""
    return LinearAttentionRecurrent(size["C"], size["H"])


@causal_token_mixing.method(
    "retention_parallel", role="hadamard",
    latex=r"Y = (QK^\top \odot D) V,\quad D_{ij} = \gamma^{i-j}\,[i \ge j]",
    # per score: ⊙ QKᵀ; per head and pair: γ^(i−j) and ⊙ causal; per pair: i − j and the clamp;
    # per head: γ itself (3).
    flops=lambda s: _quadratic(s) + _scores(s) + 2 * s["H"] * s["N"] ** 2 + 2 * s["N"] ** 2 + 3 * s["H"],
    **_QUADRATIC)
def retention_parallel(size):
    """(QKᵀ * D)V with Dᵢⱼ = γ^(i−j): retention in parallel form, RetNet, Sun et al. 2023."""
    return RetentionParallel(size["C"], size["H"])
