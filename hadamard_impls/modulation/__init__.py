"""Section 3 of the catalogue: adaptive modulation, gating and masking."""

from . import gated_ffn, branch_merge, channel_gating, recurrent_cell, masked_conv, pruned_linear  # noqa: F401,I001
