"""Which kernel a dispatcher chose for a cell: PyTorch picks among several for attention
(flash, memory-efficient, cuDNN, math), convolutions (cuDNN, oneDNN, native) and RNNs (cuDNN,
oneDNN, native), and the choice changes what a number means. Read from the profiler's record
of one call: the dispatcher's choice shows as the aten op it called."""

from __future__ import annotations

from typing import Callable, Iterable

from torch import nn

from .memory import ops_in, profiled

CHOICES = {
    "aten::_scaled_dot_product_flash_attention": "sdpa: flash",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "sdpa: flash (CPU)",
    "aten::_scaled_dot_product_efficient_attention": "sdpa: memory-efficient",
    "aten::_scaled_dot_product_cudnn_attention": "sdpa: cuDNN",
    "aten::_scaled_dot_product_attention_math": "sdpa: math",
    "aten::cudnn_convolution": "convolution: cuDNN",
    "aten::mkldnn_convolution": "convolution: oneDNN",
    "aten::_slow_conv2d_forward": "convolution: native",
    "aten::slow_conv3d_forward": "convolution: native",
    "aten::_nnpack_spatial_convolution": "convolution: NNPACK",
    "aten::_cudnn_rnn": "rnn: cuDNN",
    "aten::mkldnn_rnn_layer": "rnn: oneDNN",
    "aten::miopen_rnn": "rnn: MIOpen",
}


def chosen(ops: Iterable[str]) -> list[str]:
    """The dispatchers' choices among a call's ops (memory.profile_call's), e.g. ["sdpa: flash
    (CPU)"]; empty when it made none."""
    return sorted({CHOICES[name] for name in ops if name in CHOICES})


def reaches_cudnn(call: Callable[[], object], module: nn.Module) -> bool:
    """Whether the call would reach cuDNN on a GPU: it runs a convolution, or one of the
    module's recurrent layers (which go to cuDNN's RNN on CUDA, elsewhere to other kernels)."""
    fired = []
    hooks = [m.register_forward_hook(lambda *_: fired.append(True)) for m in module.modules()
             if isinstance(m, nn.RNNBase)]
    try:
        ops = ops_in(profiled(call))
    finally:
        for hook in hooks:
            hook.remove()
    return bool(fired) or "aten::convolution" in ops
