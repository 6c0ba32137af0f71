"""Section 4 of the catalogue: efficient operators."""

from . import elementwise, long_conv, low_rank_update  # noqa: F401,I001
