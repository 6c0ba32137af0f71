"""Section 4 of the catalogue: efficient operators."""

from . import elementwise  # noqa: F401,I001
