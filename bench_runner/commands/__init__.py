"""The command line's verbs that have a module of their own (after asv's commands/): each
module has `add_parser(verbs)`, which declares its flags, and `run(args) -> int`.

Shared here: the one-line usage error every verb raises on bad input, and the --db flag.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

import results_db

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input: reported in one line with exit status 2."""


def db_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="URL",
                   help=f"SQLAlchemy URL (default: ${results_db.engine.ENV_VAR}, "
                        f"else sqlite:///results/hadamard_bench.db)")


def threshold_flag(p: argparse.ArgumentParser) -> None:
    """--threshold: the practical floor under which a change counts as none (compare, gate)."""
    from .. import stats

    p.add_argument("--threshold", type=_fraction, default=stats.FLOOR, metavar="FRACTION",
                   help=f"the practical floor: smaller changes count as none (default: {stats.FLOOR})")


def positive_int(what: str, zero_allowed: bool = False):
    """An argparse type for a positive (or, with zero_allowed, non-negative) whole number:
    `positive_int("run id")` says "'x' is not a run id"."""
    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < (0 if zero_allowed else 1):
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a {what}")
        return int(text)
    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction between 0 and 1 (0.05 is 5%)")
    return value


def existing_db(url_text: str | None, verb: str) -> sessionmaker[Session]:
    """Sessions on a database that must already exist (a read-only verb creates nothing)."""
    url = results_db.check_url(results_db.resolve_url(url_text))
    if url.get_backend_name() == "sqlite" and not Path(url.database).exists():
        raise UsageError(f"bench_runner {verb}: no results database at {url.database}")
    return sessionmaker(results_db.open_engine(url.render_as_string(hide_password=False), create=False))
