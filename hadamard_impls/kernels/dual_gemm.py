"""A gated linear unit's two projections in one pass over its input: a dual GEMM.

SwiGLU, GEGLU and GLU compute act(x Wᵍᵀ + bᵍ) ⊙ (x Wᵘᵀ + bᵘ). Run as two cuBLAS
products and an element-wise kernel, the input is read twice and both (tokens,
hidden) products are written to memory and read back. Here one program owns an
output tile: it walks K once, loads each tile of x once and feeds it to both
products, and applies the gate in the epilogue, so the two products never reach
memory at all in inference. With gradients wanted the epilogue also stores the
pre-activations, which the backward needs; the backward is the element-wise gated
kernel and four cuBLAS products, which is as fast as a GPU does those shapes.

float32 inputs multiply in IEEE float32 (no TF32), as every float32 cell of the
bench does: the number must mean what its dtype says.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from .pointwise import ACTIVATIONS, BLOCK, _activation, _gated_bwd

# Tile shapes, per input dtype: two float32 accumulators per program, so the N tile is half
# what a single GEMM would take. Measured on the GPU by autotuning over these; the
# interpreter (tests, on the CPU) takes the first only, since it cannot time anything.
_CONFIGS = [
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=4),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 32}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 64}, num_warps=8, num_stages=4),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 64}, num_warps=8, num_stages=3),
]
if os.environ.get("TRITON_INTERPRET") == "1":
    _CONFIGS = [triton.Config({"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 16})]


@triton.autotune(configs=_CONFIGS, key=["M", "N", "K", "IEEE"])
@triton.jit
def _dual_gemm_kernel(x_ptr, wg_ptr, wu_ptr, bg_ptr, bu_ptr, h_ptr, g_ptr, u_ptr, M, N, K,
                      sx_m, sx_k, sw_n, sw_k,
                      ACT: tl.constexpr, HAS_BIAS: tl.constexpr, SAVE: tl.constexpr, IEEE: tl.constexpr,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    ks = tl.arange(0, BLOCK_K)
    acc_g = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    acc_u = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for start in range(0, K, BLOCK_K):
        k = start + ks
        x = tl.load(x_ptr + rows[:, None] * sx_m + k[None, :] * sx_k,
                    mask=(rows[:, None] < M) & (k[None, :] < K), other=0.0)
        # Wᵀ tiles: (BLOCK_K, BLOCK_N) read from the (N, K) weights nn.Linear keeps.
        w_offsets = cols[None, :] * sw_n + k[:, None] * sw_k
        w_mask = (cols[None, :] < N) & (k[:, None] < K)
        wg = tl.load(wg_ptr + w_offsets, mask=w_mask, other=0.0)
        wu = tl.load(wu_ptr + w_offsets, mask=w_mask, other=0.0)
        if IEEE:
            acc_g = tl.dot(x, wg, acc_g, input_precision="ieee")
            acc_u = tl.dot(x, wu, acc_u, input_precision="ieee")
        else:
            acc_g = tl.dot(x, wg, acc_g)
            acc_u = tl.dot(x, wu, acc_u)
    if HAS_BIAS:
        acc_g += tl.load(bg_ptr + cols, mask=cols < N, other=0.0).to(tl.float32)[None, :]
        acc_u += tl.load(bu_ptr + cols, mask=cols < N, other=0.0).to(tl.float32)[None, :]
    act, _ = _activation(acc_g, ACT)
    offsets = rows[:, None] * N + cols[None, :]
    mask = (rows[:, None] < M) & (cols[None, :] < N)
    tl.store(h_ptr + offsets, (act * acc_u).to(h_ptr.dtype.element_ty), mask=mask)
    if SAVE:
        tl.store(g_ptr + offsets, acc_g.to(g_ptr.dtype.element_ty), mask=mask)
        tl.store(u_ptr + offsets, acc_u.to(u_ptr.dtype.element_ty), mask=mask)


def _launch(x, wg, wu, bg, bu, act: int, save: bool):
    M, K = x.shape
    N = wg.shape[0]
    h = torch.empty(M, N, device=x.device, dtype=x.dtype)
    g, u = (torch.empty_like(h), torch.empty_like(h)) if save else (h, h)  # unused unless SAVE
    wu = wu if wu.stride() == wg.stride() else wu.contiguous()  # one pair of strides serves both
    bias = bg is not None

    def grid(meta):
        return triton.cdiv(M, meta["BLOCK_M"]), triton.cdiv(N, meta["BLOCK_N"])

    _dual_gemm_kernel[grid](x, wg, wu, bg if bias else h, bu if bias else h, h, g, u, M, N, K,
                            *x.stride(), *wg.stride(),
                            ACT=act, HAS_BIAS=bias, SAVE=save, IEEE=x.dtype == torch.float32)
    return h, g, u


class _GatedLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, wg, wu, bg, bu, act, save):
        h, g, u = _launch(x, wg, wu, bg, bu, act, save)
        if save:
            ctx.act = act
            ctx.save_for_backward(x, wg, wu, g, u)
        return h

    @staticmethod
    def backward(ctx, dh):
        x, wg, wu, g, u = ctx.saved_tensors
        dh = dh.contiguous()
        dg, du = torch.empty_like(g), torch.empty_like(u)
        _gated_bwd[(triton.cdiv(dh.numel(), BLOCK.value),)](dh, g, u, dg, du, dh.numel(), ACT=ctx.act)
        dx = dg @ wg + du @ wu
        dwg, dwu = dg.t() @ x, du.t() @ x
        has_bias = ctx.needs_input_grad[3] or ctx.needs_input_grad[4]
        dbg, dbu = (dg.sum(0), du.sum(0)) if has_bias else (None, None)
        return dx, dwg, dwu, dbg, dbu, None, None


def gated_linear(x: torch.Tensor, gate: torch.nn.Linear, up: torch.nn.Linear, activation: str) -> torch.Tensor:
    """act(gate(x)) ⊙ up(x) for two nn.Linear layers of one shape, both products and the
    gate in one kernel; x is (..., C) and the result (..., hidden)."""
    if gate.weight.shape != up.weight.shape or (gate.bias is None) != (up.bias is None):
        raise ValueError(f"gated_linear: gate and up must have one shape, got {tuple(gate.weight.shape)} "
                         f"and {tuple(up.weight.shape)}")
    lead = x.shape[:-1]
    operands = (x.reshape(-1, x.shape[-1]), gate.weight, up.weight, gate.bias, up.bias)
    # Decided here: inside forward, autograd has switched gradients off.
    save = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in operands)
    h = _GatedLinear.apply(*operands, ACTIVATIONS[activation], save)
    return h.view(*lead, h.shape[-1])
