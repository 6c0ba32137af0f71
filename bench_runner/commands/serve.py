"""`serve`: the dashboard, from wherever the package is installed (`make run` uses it too)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hadamard_bench.vocabulary import DB_ENV_VAR, READ_ONLY_ENV_VAR, YES

from . import PROG, UsageError
from .flags import db_flag, plugin_flag


def add_parser(verbs) -> None:
    p = verbs.add_parser("serve", help="serve the dashboard (Streamlit) on http://localhost:PORT",
                         description="Serve the dashboard on this machine until Ctrl-C. It reads the database "
                                     "given by --db, else $HADAMARD_BENCH_DB, else the default SQLite file.")
    p.add_argument("--port", type=int, default=8501, help="the port to listen on (default: 8501)")
    p.add_argument("--address", default="localhost",
                   help="the address to listen on (default: localhost; 0.0.0.0 for every interface)")
    p.add_argument("--headless", action="store_true", help="do not open a browser")
    p.add_argument("--readonly", action="store_true",
                   help="for a dashboard shared with a team: no run, cancel, queue or mark controls, nothing "
                        "written to the database (HADAMARD_BENCH_READONLY=1 does the same); the default on an "
                        "address other than this machine's own")
    p.add_argument("--allow-runs", action="store_true",
                   help="on an address others can reach (--address 0.0.0.0), let whoever reaches it start, "
                        "cancel and queue runs and mark them too")
    db_flag(p)
    plugin_flag(p)


def run(args) -> int:
    import app  # torch-free: the dashboard's package, wherever it is installed
    import results_db

    from .flags import catalogue_with_plugins

    catalogue_with_plugins(args)  # a broken plugin stops here; a good one reaches the runs the page starts

    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port} is not a port (1 to 65535)")
    try:  # a URL that cannot work is said here, in one line, not in the browser
        url = results_db.check_url(results_db.resolve_url(args.db)).render_as_string(hide_password=False)
    except results_db.BadDatabaseURL as exc:
        raise UsageError(str(exc)) from None
    script = Path(app.__file__).resolve().parent / "streamlit_app.py"
    argv = [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(args.port),
            "--server.address", args.address, "--browser.gatherUsageStats", "false"]
    if args.headless:
        argv += ["--server.headless", "true"]
    env = {**os.environ, DB_ENV_VAR: url}
    if _read_only(args):
        env[READ_ONLY_ENV_VAR] = "1"
    # This process becomes the server: a service manager's SIGTERM, or a terminal's Ctrl-C,
    # reaches Streamlit itself, with no child left serving behind a parent that stopped.
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)


def _read_only(args) -> bool:
    """Whether the dashboard may write: never with --readonly; on an address only this machine
    reaches, yes; on one others can reach, only with --allow-runs, since whoever reaches the port
    could otherwise start and cancel runs on this machine."""
    if args.readonly and args.allow_runs:
        raise UsageError("--readonly and --allow-runs contradict each other")
    if args.readonly or os.environ.get(READ_ONLY_ENV_VAR, "").lower() in YES:
        return True
    if _loopback(args.address) or args.allow_runs:
        return False
    print(f"{PROG} serve: read-only on {args.address}, which others can reach: the pages start, cancel "
          "and mark nothing (--allow-runs lets them)", file=sys.stderr)
    return True


def _loopback(address: str) -> bool:
    import ipaddress

    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False

