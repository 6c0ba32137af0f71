"""Section 2 of the catalogue: multimodal fusion."""

from . import bimodal_fusion, conditioning  # noqa: F401,I001
