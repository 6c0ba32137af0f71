"""Fused Triton kernels behind the `triton` backend, forward and backward.

Triton is optional: only a method's `forward_triton` imports this package, and
the backend reports itself unavailable, with its reason, where Triton or a GPU is
missing. Under TRITON_INTERPRET=1 the same kernels run in Triton's interpreter on
the CPU, which is how the test suite checks them on machines without a GPU.

Every kernel loads its operands in their own dtype, computes in float32 and stores
in the output's dtype, as PyTorch's own element-wise kernels do.
"""

from .dual_gemm import gated_linear
from .pointwise import ccp_step, film, gated, hadamard, hadamard_chain
from .pooling import fm_interaction, gate, pool, softmax_pool

__all__ = ["ccp_step", "film", "fm_interaction", "gate", "gated", "gated_linear", "hadamard", "hadamard_chain", "pool",
           "softmax_pool"]
