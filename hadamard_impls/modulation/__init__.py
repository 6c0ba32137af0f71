"""Section 3 of the catalogue: adaptive modulation, gating and masking."""

from . import gated_ffn  # noqa: F401,I001
