"""FLOPs as counted by running the method, element-wise work included.

``torch.utils.flop_counter.FlopCounterMode`` counts matrix products,
convolutions and attention kernels but not element-wise ops, so on its own it
misses the very Hadamard product this tool is about. ``HadamardFlopCounter``
adds: one FLOP per output element for every op tagged ``torch.Tag.pointwise``,
and fixed per-element costs for the normalisations the catalogue uses
(``CONVENTION`` states them; it is stored beside every count).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten

# How far a method's analytic FLOP formula may stray from the count taken while it runs: a
# test holds every method of the catalogue (plugins included) to it.
AGREEMENT = 0.10

CONVENTION = (
    "matmul (m×k)(k×n) = 2mkn (torch.utils.flop_counter), + 1 per output for a fused bias "
    "(convolutions alike); a sparse operand: 2 per stored value and output column; random draws = 0; pointwise ops = 1 per output element; "
    "copies = 0; softmax = 5 per element (max, subtract, exp, sum, divide), its backward = 4; "
    "layer norm = 5 per element (+2 with affine), its backward = 10; "
    "fused attention = its two products + 5 per score for the softmax; "
    "reductions (sum, mean, max, cumsum, index_add) = 1 per input element; "
    "complex pointwise: multiply = 6, others = 2 per element; "
    "FFT of length n = 5·n·log2(n) complex, 2.5·n·log2(n) real-to-complex and back; "
    "train = forward + backward as counted (analytic: 3 × forward)"
)


def _numel(shape) -> int:
    return math.prod(shape)


def _softmax(x_shape, *args, out_shape=None, **kwargs) -> int:
    return 5 * _numel(x_shape)


def _softmax_backward(grad_shape, *args, out_shape=None, **kwargs) -> int:
    return 4 * _numel(grad_shape)


def _layer_norm(x_shape, normalized_shape, weight_shape=None, bias_shape=None, *args,
                out_shape=None, **kwargs) -> int:
    affine = (weight_shape is not None) + (bias_shape is not None)
    return (5 + affine) * _numel(x_shape)


def _layer_norm_backward(grad_shape, *args, out_shape=None, **kwargs) -> int:
    return 10 * _numel(grad_shape)


def _cpu_flash_attention(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    b, h, s_q, _ = q_shape
    s_k = k_shape[-2]
    return flop_counter.sdpa_flop_count(q_shape, k_shape, v_shape) + 5 * b * h * s_q * s_k


def _cpu_flash_attention_backward(grad_shape, q_shape, k_shape, v_shape, *args,
                                  out_shape=None, **kwargs) -> int:
    b, h, s_q, _ = q_shape
    s_k = k_shape[-2]
    return (flop_counter.sdpa_backward_flop_count(grad_shape, q_shape, k_shape, v_shape)
            + 4 * b * h * s_q * s_k)


def _with_softmax(formula: Callable) -> Callable:
    """flop_counter counts only the products of a fused attention kernel; add its softmax."""

    def count(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
        b, h, s_q, _ = q_shape
        return (formula(q_shape, k_shape, v_shape, *args, out_shape=out_shape, **kwargs)
                + 5 * b * h * s_q * k_shape[-2])

    return count


def _per_input_element(x_shape, *args, out_shape=None, **kwargs) -> int:
    return _numel(x_shape)


def _index_add(x_shape, dim, index_shape, source_shape, *args, out_shape=None, **kwargs) -> int:
    return _numel(source_shape)


def _fft_cost(x_shape, dims, length_of, per_point: float) -> int:
    total = 0
    for d in dims:
        n = length_of(d)
        total += per_point * n * math.log2(max(n, 2)) * (_numel(x_shape) / x_shape[d])
    return int(total)


def _fft_r2c(x_shape, dim, *args, out_shape=None, **kwargs) -> int:
    return _fft_cost(x_shape, dim, lambda d: x_shape[d], 2.5)


def _fft_c2r(x_shape, dim, normalization, last_dim_size, *args, out_shape=None, **kwargs) -> int:
    # The last transformed dimension is stored halved; its real length is given.
    return _fft_cost(out_shape, dim, lambda d: out_shape[d], 2.5)


def _fft_c2c(x_shape, dim, *args, out_shape=None, **kwargs) -> int:
    return _fft_cost(x_shape, dim, lambda d: x_shape[d], 5.0)


def _addmm(bias_shape, a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    # flop_counter counts only the product; the bias is one add per output element.
    return flop_counter.addmm_flop(bias_shape, a_shape, b_shape) + _numel(out_shape)


def _convolution(x_shape, w_shape, bias_shape, *args, out_shape=None, **kwargs) -> int:
    # As for addmm: flop_counter leaves out the bias add.
    products = flop_counter.conv_flop.__wrapped__(x_shape, w_shape, bias_shape, *args, out_shape=out_shape, **kwargs)
    return products + (_numel(out_shape) if bias_shape is not None else 0)


_EXTRA: dict = {
    aten.addmm: _addmm,
    aten.convolution: _convolution,
    aten._convolution: _convolution,
    aten.sum: _per_input_element,
    aten.mean: _per_input_element,
    aten.amax: _per_input_element,
    aten.max: _per_input_element,
    aten.cumsum: _per_input_element,
    aten.index_add: _index_add,
    aten.index_add_: _index_add,
    aten._fft_r2c: _fft_r2c,
    aten._fft_c2r: _fft_c2r,
    aten._fft_c2c: _fft_c2c,
    aten._softmax: _softmax,
    aten._log_softmax: _softmax,
    aten._softmax_backward_data: _softmax_backward,
    aten.native_layer_norm: _layer_norm,
    aten.native_layer_norm_backward: _layer_norm_backward,
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_flash_attention_backward,
}
for _op in (aten._scaled_dot_product_efficient_attention, aten._scaled_dot_product_flash_attention,
            aten._scaled_dot_product_cudnn_attention):
    _EXTRA[_op] = _with_softmax(flop_counter.flop_registry[_op].__wrapped__)


_PRODUCTS = {aten.mm, aten.addmm, aten.matmul}


def _is_sparse(a) -> bool:
    return isinstance(a, torch.Tensor) and a.layout != torch.strided  # COO, CSR, CSC (a transposed CSR), ...


def _sparse_product(args, out) -> int:
    sparse = next(a for a in args if _is_sparse(a))
    columns = out.shape[-1] if sparse is args[-2 if len(args) == 3 else 0] else out.shape[0]
    return 2 * sparse._nnz() * columns


# Tagged pointwise but pure data movement: a copy does no arithmetic.
_MOVES = {aten.clone, aten.copy_, aten._to_copy, aten.fill_, aten.fill}


@lru_cache(maxsize=None)
def _is_pointwise(packet) -> bool:
    if packet in _MOVES:
        return False
    return any(torch.Tag.pointwise in getattr(packet, name).tags for name in packet.overloads())


class HadamardFlopCounter(FlopCounterMode):
    """FlopCounterMode that also counts element-wise ops (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(display=False, custom_mapping=_EXTRA)
        self.pointwise_flops = 0

    # FlopCounterMode routes every executed op through here; ops it has no formula
    # for are counted by their output size when they are element-wise.
    def _count_flops(self, func_packet, out, args, kwargs):
        if func_packet in _PRODUCTS and any(_is_sparse(a) for a in args):
            self.pointwise_flops += _sparse_product(args, out)  # only the stored values are multiplied
            return out
        if func_packet not in self.flop_registry and _is_pointwise(func_packet):
            for t in torch.utils._pytree.tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    per_element = (6 if func_packet is aten.mul else 2) if t.is_complex() else 1
                    self.pointwise_flops += per_element * t.numel()
        return super()._count_flops(func_packet, out, args, kwargs)

    def get_total_flops(self) -> int:
        return super().get_total_flops() + self.pointwise_flops


def count_flops(call: Callable[[], object]) -> int:
    """FLOPs executed by one call of `call`, by the convention above."""
    with HadamardFlopCounter() as counter:
        call()
    return counter.get_total_flops()
