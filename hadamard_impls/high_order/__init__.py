"""Section 1 of the catalogue: high-order interactions (polynomial networks)."""

from . import polynomial_layer, spatial_mixing, token_mixing, causal_token_mixing, pairwise_interactions  # noqa: F401,I001
