"""Storage for benchmark results: the only package that talks SQL."""

from .engine import BadDatabaseURL, CannotOpen, check_url, open_engine, resolve_url
from .models import (Base, HistoryPoint, LatestResult, Machine, Mark, Metric, NoiseFloor, Result, RoundRecord,
                     Run)
from .schema import SchemaError

__all__ = ["BadDatabaseURL", "Base", "CannotOpen", "HistoryPoint", "LatestResult", "Machine", "Mark", "Metric", "NoiseFloor", "Result", "RoundRecord", "Run", "SchemaError", "check_url",
           "open_engine", "resolve_url"]
