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


def existing_db(url_text: str | None, verb: str) -> sessionmaker[Session]:
    """Sessions on a database that must already exist (a read-only verb creates nothing)."""
    url = results_db.check_url(results_db.resolve_url(url_text))
    if url.get_backend_name() == "sqlite" and not Path(url.database).exists():
        raise UsageError(f"bench_runner {verb}: no results database at {url.database}")
    return sessionmaker(results_db.open_engine(url.render_as_string(hide_password=False), create=False))
