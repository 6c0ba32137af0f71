"""The command line's verbs, one module each (after asv's commands/). Each module has
`add_parser(verbs)`, which declares its flags, and `run(args) -> int`; the flags several verbs
share live in `flags`. A verb module imports only the standard library and torch-free constants
at its top, and what it needs (torch, SQLAlchemy, pandas) when it runs, so that `--help` and the
verbs that only read the database start in a fraction of a second.

Bad input ends in one line on stderr and exit status 2, before anything is written.
"""

from __future__ import annotations

from hadamard_bench.errors import BadInput

EXIT_USAGE = 2

# Verb → module, in the order `--help` lists them (`import` is a keyword, hence `import_`).
VERBS = {"list": "list", "run": "run", "ab": "ab", "noise": "noise", "compare": "compare", "history": "history", "gate": "gate",
         "mark": "mark", "doctor": "doctor", "serve": "serve", "plot": "plot", "export": "export",
         "import": "import_", "submit": "submit", "agent": "agent", "db": "db"}


# The command's one name in what it prints: `python -m bench_runner` runs the same command.
PROG = "hadamard-bench"


class UsageError(BadInput):
    """Bad input on the command line: reported in one line with exit status 2."""


# The exit status of a verb stopped before it finished: Ctrl-C's (128 + SIGINT), whatever stopped it.
EXIT_STOPPED = 130


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a cancelled CI job, `timeout`, a closed terminal) raised where the
    command is, as Ctrl-C raises KeyboardInterrupt, so that one path serves all three: the run
    keeps its finished cells and ends `interrupted`, its workers stop, an `ab` session's
    worktrees go. Left to the signal's default the process ended on the spot, its runs
    `running` for good and its worktrees registered in the user's repository."""

    def __init__(self, signal_name: str):
        super().__init__(f"stopped by {signal_name}")
        self.signal_name = signal_name


def stopped_why(exc: KeyboardInterrupt) -> str:
    """What stopped a command, for the run it leaves `interrupted` and the line it prints."""
    return str(exc) if isinstance(exc, Stopped) else "stopped by Ctrl-C"


def checked_url(url_text: str | None):
    """The database URL a verb was given (--db, else $HADAMARD_BENCH_DB, else the default file),
    refused in one line when it cannot work."""
    import results_db

    return results_db.check_url(results_db.resolve_url(url_text))


def no_file_yet(url) -> bool:
    """Whether a checked URL names an SQLite file that does not exist (yet)."""
    from pathlib import Path

    return url.get_backend_name() == "sqlite" and not Path(url.database).exists()


def existing_url(url_text: str | None):
    """checked_url, also refused when it names an SQLite file that does not exist."""
    url = checked_url(url_text)
    if no_file_yet(url):
        raise UsageError(f"no results database at {url.database}")
    return url


def sessions_on(url, create: bool = True, writes: bool = True):
    """Sessions on the database at a checked URL; without `create`, only one that exists is opened.
    A verb that `writes` first has an SQLite file read whole (results_db.damage.require_intact):
    a damaged one is refused in one line before anything is written to it."""
    from pathlib import Path

    from sqlalchemy.orm import sessionmaker

    import results_db
    from results_db import damage

    if writes and url.get_backend_name() == "sqlite":
        damage.require_intact(Path(url.database))
    return sessionmaker(results_db.open_engine(url.render_as_string(hide_password=False), create=create))


def existing_db(url_text: str | None, writes: bool = False):
    """Sessions on a database that must already exist (a read-only verb creates nothing)."""
    return sessions_on(existing_url(url_text), create=False, writes=writes)
