"""Triton kernels for the Hadamard token mixers: pool over tokens, then gate every token.

Poly-SA, Poly-NL and AFT all reduce a product of two (B, H, N, D) tensors over
the N tokens to one (B, H, D) vector, and multiply it back into every token.
Three kernels cover the forward and backward passes of all of them:

- pool:   out[b,h,d]   = Σₙ w[b,h,n] · f(A)[b,h,n,d] · B[b,h,n,d]
- spread: out[b,h,n,d] = f(A)[b,h,n,d] · B[b,h,n,d] · w[b,h,n] · m[b,h,d]
- rowdot: out[b,h,n]   = Σ_d A[b,h,n,d] · B[b,h,n,d] · m[b,h,d]   (the gradients of w)

with f the identity, σ or σ′, and B and w optional. The kernels take any strides,
so Q, K and V are read straight from the fused QKV projection without copies. AFT
weights its pooling by a softmax over tokens, computed online in one pass.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

IDENTITY, SIGMOID, SIGMOID_SLOPE = 0, 1, 2
BLOCK_N = 32  # tokens per tile
CHUNK = 256  # tokens per program in a pooling pass; partial sums meet in a small second pass


def _block_d(D: int) -> int:
    return min(triton.next_power_of_2(D), 128)


def _strides(t: torch.Tensor | None, ndim: int) -> tuple[int, ...]:
    return tuple(t.stride()) if t is not None else (0,) * ndim


@triton.jit
def _f(a, F: tl.constexpr):
    if F == 1:
        return tl.sigmoid(a)
    elif F == 2:
        s = tl.sigmoid(a)
        return s * (1 - s)
    else:
        return a


@triton.jit
def _pool_kernel(a_ptr, b_ptr, w_ptr, part_ptr, H, N, D,
                 sa_b, sa_h, sa_n, sa_d, sb_b, sb_h, sb_n, sb_d, sw_b, sw_h, sw_n,
                 F: tl.constexpr, HAS_B: tl.constexpr, HAS_W: tl.constexpr,
                 CHUNK_N: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    r, split = tl.program_id(0), tl.program_id(2)
    bi, hi = (r // H).to(tl.int64), (r % H).to(tl.int64)
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    dmask = d < D
    acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    for start in range(0, CHUNK_N, BLOCK_N):
        n = split * CHUNK_N + start + tl.arange(0, BLOCK_N)
        nmask = n < N
        mask = nmask[:, None] & dmask[None, :]
        a = tl.load(a_ptr + bi * sa_b + hi * sa_h + n[:, None] * sa_n + d[None, :] * sa_d, mask=mask, other=0.0)
        term = _f(a.to(tl.float32), F)
        if HAS_B:
            term *= tl.load(b_ptr + bi * sb_b + hi * sb_h + n[:, None] * sb_n + d[None, :] * sb_d,
                            mask=mask, other=0.0).to(tl.float32)
        if HAS_W:
            term *= tl.load(w_ptr + bi * sw_b + hi * sw_h + n * sw_n, mask=nmask, other=0.0).to(tl.float32)[:, None]
        acc += tl.sum(tl.where(mask, term, 0.0), axis=0)
    tl.store(part_ptr + (r * tl.num_programs(2) + split) * D + d, acc, mask=dmask)


def pool_raw(a, b=None, w=None, f: int = IDENTITY) -> torch.Tensor:
    """Σₙ w · f(a) · b over the token axis of (B, H, N, D) tensors → (B, H, D), in a's dtype."""
    B, H, N, D = a.shape
    splits = triton.cdiv(N, CHUNK)
    part = torch.empty(B * H, splits, D, device=a.device, dtype=torch.float32)
    block_d = _block_d(D)
    _pool_kernel[(B * H, triton.cdiv(D, block_d), splits)](
        a, b if b is not None else a, w if w is not None else a, part, H, N, D,
        *a.stride(), *_strides(b, 4), *_strides(w, 3),
        F=f, HAS_B=b is not None, HAS_W=w is not None,
        CHUNK_N=CHUNK, BLOCK_N=BLOCK_N, BLOCK_D=block_d)
    return part.sum(dim=1).view(B, H, D).to(a.dtype)


@triton.jit
def _spread_kernel(a_ptr, b_ptr, w_ptr, m_ptr, out_ptr, H, N, D,
                   sa_b, sa_h, sa_n, sa_d, sb_b, sb_h, sb_n, sb_d, sw_b, sw_h, sw_n, sm_b, sm_h, sm_d,
                   so_b, so_h, so_n, so_d,
                   F: tl.constexpr, HAS_B: tl.constexpr, HAS_W: tl.constexpr,
                   BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    r = tl.program_id(0)
    bi, hi = (r // H).to(tl.int64), (r % H).to(tl.int64)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    d = tl.program_id(2) * BLOCK_D + tl.arange(0, BLOCK_D)
    nmask, dmask = n < N, d < D
    mask = nmask[:, None] & dmask[None, :]
    a = tl.load(a_ptr + bi * sa_b + hi * sa_h + n[:, None] * sa_n + d[None, :] * sa_d, mask=mask, other=0.0)
    m = tl.load(m_ptr + bi * sm_b + hi * sm_h + d * sm_d, mask=dmask, other=0.0).to(tl.float32)
    y = _f(a.to(tl.float32), F) * m[None, :]
    if HAS_B:
        y *= tl.load(b_ptr + bi * sb_b + hi * sb_h + n[:, None] * sb_n + d[None, :] * sb_d,
                     mask=mask, other=0.0).to(tl.float32)
    if HAS_W:
        y *= tl.load(w_ptr + bi * sw_b + hi * sw_h + n * sw_n, mask=nmask, other=0.0).to(tl.float32)[:, None]
    tl.store(out_ptr + bi * so_b + hi * so_h + n[:, None] * so_n + d[None, :] * so_d,
             y.to(out_ptr.dtype.element_ty), mask=mask)


def spread_raw(a, m, b=None, w=None, f: int = IDENTITY, out=None) -> torch.Tensor:
    """f(a) · b · w · m broadcast over tokens → (B, H, N, D), written into `out` when given."""
    B, H, N, D = a.shape
    if out is None:
        out = torch.empty(B, H, N, D, device=a.device, dtype=a.dtype)
    block_d = _block_d(D)
    _spread_kernel[(B * H, triton.cdiv(N, BLOCK_N), triton.cdiv(D, block_d))](
        a, b if b is not None else a, w if w is not None else a, m, out, H, N, D,
        *a.stride(), *_strides(b, 4), *_strides(w, 3), *m.stride(), *out.stride(),
        F=f, HAS_B=b is not None, HAS_W=w is not None, BLOCK_N=BLOCK_N, BLOCK_D=block_d)
    return out


@triton.jit
def _rowdot_kernel(a_ptr, b_ptr, m_ptr, out_ptr, H, N, D,
                   sa_b, sa_h, sa_n, sa_d, sb_b, sb_h, sb_n, sb_d, sm_b, sm_h, sm_d,
                   BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    r = tl.program_id(0)
    bi, hi = (r // H).to(tl.int64), (r % H).to(tl.int64)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = n < N
    acc = tl.zeros([BLOCK_N], dtype=tl.float32)
    for start in range(0, D, BLOCK_D):
        d = start + tl.arange(0, BLOCK_D)
        dmask = d < D
        mask = nmask[:, None] & dmask[None, :]
        a = tl.load(a_ptr + bi * sa_b + hi * sa_h + n[:, None] * sa_n + d[None, :] * sa_d, mask=mask, other=0.0)
        b = tl.load(b_ptr + bi * sb_b + hi * sb_h + n[:, None] * sb_n + d[None, :] * sb_d, mask=mask, other=0.0)
        m = tl.load(m_ptr + bi * sm_b + hi * sm_h + d * sm_d, mask=dmask, other=0.0)
        acc += tl.sum(a.to(tl.float32) * b.to(tl.float32) * m.to(tl.float32)[None, :], axis=1)
    tl.store(out_ptr + r.to(tl.int64) * N + n, acc, mask=nmask)


def rowdot_raw(a, b, m) -> torch.Tensor:
    """Σ_d a · b · m → (B, H, N) in float32."""
    B, H, N, D = a.shape
    out = torch.empty(B, H, N, device=a.device, dtype=torch.float32)
    _rowdot_kernel[(B * H, triton.cdiv(N, BLOCK_N))](
        a, b, m, out, H, N, D, *a.stride(), *b.stride(), *m.stride(),
        BLOCK_N=BLOCK_N, BLOCK_D=_block_d(D))
    return out


class _Pool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, w):
        ctx.save_for_backward(a, b, w)
        return pool_raw(a, b, w)

    @staticmethod
    def backward(ctx, dm):
        a, b, w = ctx.saved_tensors
        da = spread_raw(b, dm, w=w) if ctx.needs_input_grad[0] else None
        db = spread_raw(a, dm, w=w) if ctx.needs_input_grad[1] else None
        dw = rowdot_raw(a, b, dm).to(w.dtype) if ctx.needs_input_grad[2] else None
        return da, db, dw


def pool(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
    """Σₙ w[n] · a[n] ⊙ b[n] for (B, H, N, D) tensors a, b and token weights w (B, H, N) → (B, H, D);
    no w: a plain sum.

    w may be an expanded view (stride 0 over the batch); autograd sums its gradient back."""
    return _Pool.apply(a, b, w)


class _Gate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, w, m, f, layout):
        B, H, N, D = a.shape
        # "tokens" layout: the output is stored as (B, N, H, D), so that merging the heads
        # back into channels is a free view instead of a transpose copy.
        out = (torch.empty(B, N, H, D, device=a.device, dtype=a.dtype).transpose(1, 2)
               if layout == "tokens" else None)
        ctx.save_for_backward(a, w, m)
        ctx.f = f
        return spread_raw(a, m, w=w, f=f, out=out)

    @staticmethod
    def backward(ctx, g):
        a, w, m = ctx.saved_tensors
        da = dw = dm = None
        if ctx.needs_input_grad[0]:
            da = spread_raw(g, m, w=w) if ctx.f == IDENTITY else spread_raw(a, m, b=g, w=w, f=SIGMOID_SLOPE)
        if ctx.needs_input_grad[2]:
            dm = pool_raw(a, g, w, f=ctx.f)
        if w is not None and ctx.needs_input_grad[1]:
            dw = rowdot_raw(a, g, m).to(w.dtype)  # only the identity gate has token weights
        return da, dw, dm, None, None


def gate(a: torch.Tensor, m: torch.Tensor, w: torch.Tensor | None = None, activation: str = "identity",
         layout: str = "heads") -> torch.Tensor:
    """f(a)[n] ⊙ w[n] · m: a pooled (B, H, D) vector multiplied back into every token of
    a (B, H, N, D); f is the identity or σ (AFT's gate)."""
    f = {"identity": IDENTITY, "sigmoid": SIGMOID}[activation]
    if f != IDENTITY and w is not None:
        raise ValueError("gate: token weights go with the identity gate only")
    return _Gate.apply(a, w, m, f, layout)


@triton.jit
def _softmax_pool_kernel(k_ptr, v_ptr, pm_ptr, pl_ptr, pa_ptr, H, N, D,
                         sk_b, sk_h, sk_n, sk_d, sv_b, sv_h, sv_n, sv_d,
                         CHUNK_N: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    # Online softmax over this program's chunk of tokens: a running maximum, the sum of
    # exponentials and the weighted sum of V, each rescaled when the maximum grows.
    r, split = tl.program_id(0), tl.program_id(2)
    bi, hi = (r // H).to(tl.int64), (r % H).to(tl.int64)
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    dmask = d < D
    run_max = tl.full([BLOCK_D], float("-inf"), dtype=tl.float32)
    run_sum = tl.zeros([BLOCK_D], dtype=tl.float32)
    run_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    for start in range(0, CHUNK_N, BLOCK_N):
        n = split * CHUNK_N + start + tl.arange(0, BLOCK_N)
        nmask = n < N
        mask = nmask[:, None] & dmask[None, :]
        k = tl.load(k_ptr + bi * sk_b + hi * sk_h + n[:, None] * sk_n + d[None, :] * sk_d,
                    mask=mask, other=float("-inf")).to(tl.float32)
        k = tl.where(dmask[None, :], k, 0.0)  # padded channels stay finite
        v = tl.load(v_ptr + bi * sv_b + hi * sv_h + n[:, None] * sv_n + d[None, :] * sv_d,
                    mask=mask, other=0.0).to(tl.float32)
        new_max = tl.maximum(run_max, tl.max(k, axis=0))
        new_max = tl.where(new_max == float("-inf"), 0.0, new_max)  # a tile past the last token
        scale = tl.exp(run_max - new_max)
        p = tl.exp(k - new_max[None, :])
        run_sum = run_sum * scale + tl.sum(p, axis=0)
        run_acc = run_acc * scale + tl.sum(p * v, axis=0)
        run_max = new_max
    at = (r * tl.num_programs(2) + split) * D + d
    tl.store(pm_ptr + at, run_max, mask=dmask)
    tl.store(pl_ptr + at, run_sum, mask=dmask)
    tl.store(pa_ptr + at, run_acc, mask=dmask)


@triton.jit
def _softmax_pool_bwd_kernel(k_ptr, v_ptr, ctx_ptr, lse_ptr, dctx_ptr, dk_ptr, dv_ptr, H, N, D,
                             sk_b, sk_h, sk_n, sk_d, sv_b, sv_h, sv_n, sv_d,
                             BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    # p = softmax(k) over tokens, recomputed from the saved log-sum-exp; out = Σ p v, so
    # ∂v = g·p and ∂k = p·(v − out)·g, channel by channel.
    r = tl.program_id(0)
    bi, hi = (r // H).to(tl.int64), (r % H).to(tl.int64)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    d = tl.program_id(2) * BLOCK_D + tl.arange(0, BLOCK_D)
    nmask, dmask = n < N, d < D
    mask = nmask[:, None] & dmask[None, :]
    k = tl.load(k_ptr + bi * sk_b + hi * sk_h + n[:, None] * sk_n + d[None, :] * sk_d, mask=mask, other=0.0)
    v = tl.load(v_ptr + bi * sv_b + hi * sv_h + n[:, None] * sv_n + d[None, :] * sv_d, mask=mask, other=0.0)
    lse = tl.load(lse_ptr + r * D + d, mask=dmask, other=0.0)
    out = tl.load(ctx_ptr + r * D + d, mask=dmask, other=0.0)
    g = tl.load(dctx_ptr + r * D + d, mask=dmask, other=0.0)
    p = tl.exp(k.to(tl.float32) - lse[None, :])
    dv = g[None, :] * p
    dk = dv * (v.to(tl.float32) - out[None, :])
    at = ((bi * H + hi) * N + n[:, None]) * D + d[None, :]  # gradients are stored dense
    tl.store(dk_ptr + at, dk.to(dk_ptr.dtype.element_ty), mask=mask)
    tl.store(dv_ptr + at, dv.to(dv_ptr.dtype.element_ty), mask=mask)


class _SoftmaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, k, v):
        B, H, N, D = k.shape
        splits = triton.cdiv(N, CHUNK)
        pm, pl, pa = (torch.empty(B * H, splits, D, device=k.device, dtype=torch.float32) for _ in range(3))
        block_d = _block_d(D)
        _softmax_pool_kernel[(B * H, triton.cdiv(D, block_d), splits)](
            k, v, pm, pl, pa, H, N, D, *k.stride(), *v.stride(),
            CHUNK_N=CHUNK, BLOCK_N=BLOCK_N, BLOCK_D=block_d)
        # Merge the chunks: rescale each to the overall maximum.
        top = pm.amax(dim=1, keepdim=True)
        weight = torch.exp(pm - top)
        total = (pl * weight).sum(dim=1)
        out = (pa * weight).sum(dim=1) / total  # (B·H, D), float32
        lse = top.squeeze(1) + torch.log(total)
        ctx.save_for_backward(k, v, out, lse)
        return out.view(B, H, D).to(k.dtype)

    @staticmethod
    def backward(ctx, dout):
        k, v, out, lse = ctx.saved_tensors
        B, H, N, D = k.shape
        dk = torch.empty(B, H, N, D, device=k.device, dtype=k.dtype)
        dv = torch.empty(B, H, N, D, device=v.device, dtype=v.dtype)
        block_d = _block_d(D)
        _softmax_pool_bwd_kernel[(B * H, triton.cdiv(N, BLOCK_N), triton.cdiv(D, block_d))](
            k, v, out, lse, dout.to(torch.float32).contiguous(), dk, dv, H, N, D, *k.stride(), *v.stride(),
            BLOCK_N=BLOCK_N, BLOCK_D=block_d)
        return dk, dv


def softmax_pool(k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Σₙ softmaxₙ(k)[n] ⊙ v[n] per channel, for (B, H, N, D) tensors → (B, H, D), in one pass."""
    return _SoftmaxPool.apply(k, v)


@triton.jit
def _fm_kernel(s_ptr, q_ptr, out_ptr, K, BLOCK_K: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    acc = tl.zeros([BLOCK_K], dtype=tl.float32)
    for start in range(0, K, BLOCK_K):
        f = start + tl.arange(0, BLOCK_K)
        mask = f < K
        s = tl.load(s_ptr + row * K + f, mask=mask, other=0.0).to(tl.float32)
        q = tl.load(q_ptr + row * K + f, mask=mask, other=0.0).to(tl.float32)
        acc += s * s - q
    tl.store(out_ptr + row, (0.5 * tl.sum(acc, axis=0)).to(out_ptr.dtype.element_ty))


@triton.jit
def _fm_bwd_kernel(g_ptr, s_ptr, ds_ptr, dq_ptr, K, BLOCK_K: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    g = tl.load(g_ptr + row).to(tl.float32)
    for start in range(0, K, BLOCK_K):
        f = start + tl.arange(0, BLOCK_K)
        mask = f < K
        s = tl.load(s_ptr + row * K + f, mask=mask, other=0.0).to(tl.float32)
        tl.store(ds_ptr + row * K + f, (g * s).to(ds_ptr.dtype.element_ty), mask=mask)
        tl.store(dq_ptr + row * K + f, tl.full([BLOCK_K], -0.5, tl.float32) * g, mask=mask)


class _FMInteraction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s, q):
        s, q = s.contiguous(), q.contiguous()
        out = torch.empty(s.shape[0], device=s.device, dtype=s.dtype)
        _fm_kernel[(s.shape[0],)](s, q, out, s.shape[1], BLOCK_K=_block_d(s.shape[1]))
        ctx.save_for_backward(s)
        return out

    @staticmethod
    def backward(ctx, g):
        (s,) = ctx.saved_tensors
        ds, dq = torch.empty_like(s), torch.empty_like(s)
        _fm_bwd_kernel[(s.shape[0],)](g.contiguous(), s, ds, dq, s.shape[1], BLOCK_K=_block_d(s.shape[1]))
        return ds, dq


def fm_interaction(square_of: torch.Tensor, sum_of_squares: torch.Tensor) -> torch.Tensor:
    """½ Σ_f (s_f² − q_f) per row, for s = xV and q = x²V² of shape (B, k) → (B,): the
    square, the difference, the sum and the halving of a factorization machine in one pass."""
    return _FMInteraction.apply(square_of, sum_of_squares)

