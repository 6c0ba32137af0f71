"""Building blocks shared by several benchmarks' methods."""

import torch.nn.functional as F
from torch import nn


class HeadProjections(nn.Module):
    """Q, K, V and output projections shared by every token mixer, so that methods
    built from the same seed hold the same weights and differ only in how they mix."""

    def __init__(self, C: int, H: int):
        super().__init__()
        self.heads = H
        self.qkv = nn.Linear(C, 3 * C, bias=False)
        self.out = nn.Linear(C, C, bias=False)

    def split(self, x):  # (B, N, C) → three (B, H, N, d)
        B, N, C = x.shape
        return self.qkv(x).view(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)

    def merge(self, y):  # (B, H, N, d) → (B, N, C)
        B, H, N, d = y.shape
        return self.out(y.transpose(1, 2).reshape(B, N, H * d))


def elu_feature_map(x):
    """φ(x) = elu(x) + 1: the positive feature map of Katharopoulos et al. 2020."""
    return F.elu(x) + 1


def attention_flops(s) -> int:
    """Q, K, V and O projections: four C×C products per token."""
    return 8 * s["B"] * s["N"] * s["C"] ** 2


def token_bytes(s, item) -> int:
    """X in, Y out, and the four C×C weights, each moved once."""
    return (2 * s["B"] * s["N"] * s["C"] + 4 * s["C"] ** 2) * item


def scores_bytes(s, item, copies: int = 3) -> int:
    """A method that materialises B·H·N×N scores holds a few copies at its peak."""
    return copies * s["B"] * s["H"] * s["N"] ** 2 * item + 4 * token_bytes(s, item)
