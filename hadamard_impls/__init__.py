"""The catalogue of Hadamard-product primitives and their baselines.

Importing the package registers every benchmark of the domain modules into
``catalogue``. `python -m bench_runner list` prints every id with its formula; each
method's docstring names its formula and paper.
"""

# Imported in the catalogue's section order, which is the order `list` and the dashboard show.
from . import high_order, fusion, modulation, efficient  # noqa: F401,I001  (registration)
from .backends import BACKENDS, Backend
from .registry import DOMAINS, SUITES, Benchmark, Catalogue, Method, catalogue, size_label

__all__ = ["BACKENDS", "Backend", "DOMAINS", "SUITES", "Benchmark", "Catalogue", "Method",
           "catalogue", "size_label"]
