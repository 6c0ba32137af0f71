"""Element-wise Triton kernels: each reads its operands once and writes once.

Eager PyTorch runs `a * torch.sigmoid(b) + c` as three kernels with two
intermediate tensors; one fused kernel moves only the bytes the formula needs,
which is what decides the speed of a memory-bound op. Each op is an autograd
Function whose backward is one fused kernel too.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# Elements per program: 4 warps × 32 threads × 8 values each. A module-level constexpr, so the
# kernels and the launch grids read one number.
BLOCK = tl.constexpr(1024)

# Activation codes shared by the gated kernels (constexpr: one compiled kernel per code).
SILU, GELU, SIGMOID = 0, 1, 2
ACTIVATIONS = {"silu": SILU, "gelu": GELU, "sigmoid": SIGMOID}


def _grid(n: int):
    return (triton.cdiv(n, BLOCK.value),)


def _flat(*tensors: torch.Tensor) -> list[torch.Tensor]:
    # The flat kernels index memory as one dense vector.
    return [t.contiguous() for t in tensors]


class _Op:
    """A fused element-wise op: its forward kernel (operands…, y, n) and its backward kernel
    (∂y, the first two operands, their two gradients, n), with compile-time constants."""

    def __init__(self, forward, backward, **consts):
        self.forward, self.backward, self.consts = forward, backward, consts


class _Pointwise(torch.autograd.Function):
    """y = op(operands) in one kernel and both gradients in one more. An operand past the
    first two enters y as a plain sum (the chain's + c): its gradient is ∂y itself."""

    @staticmethod
    def forward(ctx, op, *operands):
        operands = _flat(*operands)
        y = torch.empty_like(operands[0])
        op.forward[_grid(y.numel())](*operands, y, y.numel(), **op.consts)
        ctx.op, ctx.summed = op, len(operands) - 2
        ctx.save_for_backward(*operands[:2])
        return y

    @staticmethod
    def backward(ctx, g):
        saved, g = ctx.saved_tensors, g.contiguous()
        grads = [torch.empty_like(t) for t in saved]
        ctx.op.backward[_grid(g.numel())](g, *saved, *grads, g.numel(), **ctx.op.consts)
        return (None, *grads, *[g] * ctx.summed)


@triton.jit
def _offsets(n):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    return offs, offs < n


@triton.jit
def _mul_fwd(a_ptr, b_ptr, y_ptr, n):
    offs, mask = _offsets(n)
    a = tl.load(a_ptr + offs, mask=mask).to(tl.float32)
    b = tl.load(b_ptr + offs, mask=mask).to(tl.float32)
    tl.store(y_ptr + offs, (a * b).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _mul_bwd(g_ptr, a_ptr, b_ptr, da_ptr, db_ptr, n):
    offs, mask = _offsets(n)
    g = tl.load(g_ptr + offs, mask=mask).to(tl.float32)
    a = tl.load(a_ptr + offs, mask=mask).to(tl.float32)
    b = tl.load(b_ptr + offs, mask=mask).to(tl.float32)
    tl.store(da_ptr + offs, (g * b).to(da_ptr.dtype.element_ty), mask=mask)
    tl.store(db_ptr + offs, (g * a).to(db_ptr.dtype.element_ty), mask=mask)




_MUL = _Op(_mul_fwd, _mul_bwd)


def hadamard(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a ⊙ b for two tensors of one shape."""
    return _Pointwise.apply(_MUL, a, b)


@triton.jit
def _chain_fwd(a_ptr, b_ptr, c_ptr, y_ptr, n):
    offs, mask = _offsets(n)
    a = tl.load(a_ptr + offs, mask=mask).to(tl.float32)
    b = tl.load(b_ptr + offs, mask=mask).to(tl.float32)
    c = tl.load(c_ptr + offs, mask=mask).to(tl.float32)
    tl.store(y_ptr + offs, (a * tl.sigmoid(b) + c).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _chain_bwd(g_ptr, a_ptr, b_ptr, da_ptr, db_ptr, n):
    offs, mask = _offsets(n)
    g = tl.load(g_ptr + offs, mask=mask).to(tl.float32)
    a = tl.load(a_ptr + offs, mask=mask).to(tl.float32)
    s = tl.sigmoid(tl.load(b_ptr + offs, mask=mask).to(tl.float32))
    tl.store(da_ptr + offs, (g * s).to(da_ptr.dtype.element_ty), mask=mask)
    tl.store(db_ptr + offs, (g * a * s * (1 - s)).to(db_ptr.dtype.element_ty), mask=mask)




_CHAIN = _Op(_chain_fwd, _chain_bwd)


def hadamard_chain(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """a ⊙ σ(b) + c in one pass."""
    return _Pointwise.apply(_CHAIN, a, b, c)


@triton.jit
def _activation(x, ACT: tl.constexpr):
    """act(x) and act'(x), in float32."""
    if ACT == 0:  # SiLU: x σ(x)
        s = tl.sigmoid(x)
        return x * s, s * (1 + x * (1 - s))
    elif ACT == 1:  # GELU, the exact (erf) form F.gelu uses by default
        cdf = 0.5 * (1 + tl.erf(x * 0.7071067811865476))
        return x * cdf, cdf + x * 0.3989422804014327 * tl.exp(-0.5 * x * x)
    else:  # sigmoid
        s = tl.sigmoid(x)
        return s, s * (1 - s)


@triton.jit
def _gated_fwd(g_ptr, u_ptr, y_ptr, n, ACT: tl.constexpr):
    offs, mask = _offsets(n)
    act, _ = _activation(tl.load(g_ptr + offs, mask=mask).to(tl.float32), ACT)
    u = tl.load(u_ptr + offs, mask=mask).to(tl.float32)
    tl.store(y_ptr + offs, (act * u).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _gated_bwd(dy_ptr, g_ptr, u_ptr, dg_ptr, du_ptr, n, ACT: tl.constexpr):
    offs, mask = _offsets(n)
    dy = tl.load(dy_ptr + offs, mask=mask).to(tl.float32)
    act, slope = _activation(tl.load(g_ptr + offs, mask=mask).to(tl.float32), ACT)
    u = tl.load(u_ptr + offs, mask=mask).to(tl.float32)
    tl.store(dg_ptr + offs, (dy * u * slope).to(dg_ptr.dtype.element_ty), mask=mask)
    tl.store(du_ptr + offs, (dy * act).to(du_ptr.dtype.element_ty), mask=mask)




_GATED = {name: _Op(_gated_fwd, _gated_bwd, ACT=code) for name, code in ACTIVATIONS.items()}


def gated(gate: torch.Tensor, up: torch.Tensor, activation: str) -> torch.Tensor:
    """act(gate) ⊙ up, the element-wise half of a gated linear unit (SwiGLU, GEGLU, GLU);
    the matrix products around it stay with cuBLAS."""
    return _Pointwise.apply(_GATED[activation], gate, up)


@triton.jit
def _ccp_fwd(u_ptr, x_ptr, y_ptr, n):
    offs, mask = _offsets(n)
    u = tl.load(u_ptr + offs, mask=mask).to(tl.float32)
    x = tl.load(x_ptr + offs, mask=mask).to(tl.float32)
    tl.store(y_ptr + offs, (u * x + x).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _ccp_bwd(g_ptr, u_ptr, x_ptr, du_ptr, dx_ptr, n):
    offs, mask = _offsets(n)
    g = tl.load(g_ptr + offs, mask=mask).to(tl.float32)
    u = tl.load(u_ptr + offs, mask=mask).to(tl.float32)
    x = tl.load(x_ptr + offs, mask=mask).to(tl.float32)
    tl.store(du_ptr + offs, (g * x).to(du_ptr.dtype.element_ty), mask=mask)
    tl.store(dx_ptr + offs, (g * (u + 1)).to(dx_ptr.dtype.element_ty), mask=mask)




_CCP = _Op(_ccp_fwd, _ccp_bwd)


def ccp_step(u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """u ⊙ x + x: one degree of a CCP polynomial, the product and the skip in one pass."""
    return _Pointwise.apply(_CCP, u, x)


# FiLM: x is (rows, S) with one (γ, β) pair per row, rows = B·C and S = H·W.
@triton.jit
def _film_fwd(x_ptr, gamma_ptr, beta_ptr, y_ptr, S, BLOCK_S: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK_S + tl.arange(0, BLOCK_S)
    mask = offs < S
    gamma = tl.load(gamma_ptr + row).to(tl.float32)
    beta = tl.load(beta_ptr + row).to(tl.float32)
    x = tl.load(x_ptr + row * S + offs, mask=mask).to(tl.float32)
    tl.store(y_ptr + row * S + offs, (gamma * x + beta).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _film_bwd(g_ptr, x_ptr, gamma_ptr, dx_ptr, dgamma_ptr, dbeta_ptr, S, BLOCK_S: tl.constexpr):
    # One program per row: it writes ∂x and sums the row for ∂γ and ∂β.
    row = tl.program_id(0).to(tl.int64)
    gamma = tl.load(gamma_ptr + row).to(tl.float32)
    acc_gamma = tl.zeros([BLOCK_S], dtype=tl.float32)
    acc_beta = tl.zeros([BLOCK_S], dtype=tl.float32)
    for start in range(0, S, BLOCK_S):
        offs = start + tl.arange(0, BLOCK_S)
        mask = offs < S
        g = tl.load(g_ptr + row * S + offs, mask=mask, other=0.0).to(tl.float32)
        x = tl.load(x_ptr + row * S + offs, mask=mask, other=0.0).to(tl.float32)
        tl.store(dx_ptr + row * S + offs, (g * gamma).to(dx_ptr.dtype.element_ty), mask=mask)
        acc_gamma += g * x
        acc_beta += g
    tl.store(dgamma_ptr + row, tl.sum(acc_gamma, axis=0).to(dgamma_ptr.dtype.element_ty))
    tl.store(dbeta_ptr + row, tl.sum(acc_beta, axis=0).to(dbeta_ptr.dtype.element_ty))


class _FiLM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gamma, beta):
        x, gamma, beta = _flat(x, gamma, beta)
        rows, S = gamma.numel(), x.numel() // gamma.numel()
        y = torch.empty_like(x)
        _film_fwd[(rows, triton.cdiv(S, BLOCK.value))](x, gamma, beta, y, S, BLOCK_S=BLOCK.value)
        ctx.save_for_backward(x, gamma)
        return y

    @staticmethod
    def backward(ctx, g):
        x, gamma = ctx.saved_tensors
        g = g.contiguous()
        rows, S = gamma.numel(), x.numel() // gamma.numel()
        dx, dgamma, dbeta = torch.empty_like(x), torch.empty_like(gamma), torch.empty_like(gamma)
        _film_bwd[(rows,)](g, x, gamma, dx, dgamma, dbeta, S, BLOCK_S=BLOCK.value)
        return dx, dgamma, dbeta


def film(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """γ ⊙ x + β with x (B, C, H, W) and γ, β (B, C), broadcast over H·W without
    materialising the (B, C, H, W) copies eager broadcasting reads."""
    if gamma.shape != x.shape[:2] or beta.shape != gamma.shape:
        raise ValueError(f"film: γ and β must be {tuple(x.shape[:2])}, got {tuple(gamma.shape)} and {tuple(beta.shape)}")
    return _FiLM.apply(x, gamma, beta)
