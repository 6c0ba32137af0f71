"""The command line, `python -m bench_runner VERB` (or `hadamard-bench VERB`): this module only
assembles the parser from the verbs' modules under commands/ and turns bad input into one line.

Every bad input ends in one line on stderr and exit status 2, before anything is written.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys

from hadamard_bench.errors import BadInput

from .commands import EXIT_STOPPED, EXIT_USAGE, PROG, VERBS, Stopped, UsageError, stopped_why


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage block before the error; one line is enough.
    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG,
                     description="Measure Hadamard-product primitives against the operators they replace.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, module_name in VERBS.items():
        module = importlib.import_module(f"{__package__}.commands.{module_name}")
        module.add_parser(verbs)
        verbs.choices[verb].set_defaults(handler=module.run)  # not `run`: a flag of export
    return parser


@contextlib.contextmanager
def _stopped_by_signals():
    """SIGTERM and SIGHUP raise Stopped while the verb runs (its handlers restored after): a signal
    this process was started ignoring (`nohup`) stays ignored, and a second one while the first is
    being cleaned up after ends the process as the signal's default does."""
    def stop(signum, frame):
        signal.signal(signum, signal.SIG_DFL)
        raise Stopped(signal.Signals(signum).name)

    before = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # not the main thread: the caller's signals are its own
            if signal.getsignal(signum) is not signal.SIG_IGN:
                before[signum] = signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra:  # argparse would name only the program; the verb's --help lists what it takes
            raise UsageError(f"{PROG} {args.verb}: unrecognized arguments: {' '.join(extra)} "
                             f"(`{PROG} {args.verb} --help` lists its flags)")
        with _stopped_by_signals():
            return args.handler(args)
    except KeyboardInterrupt as exc:  # what the verb had finished is kept; it said so, or says so here
        verb = getattr(args, "verb", None)
        print(f"{PROG}{' ' + verb if verb else ''}: {stopped_why(exc)}", file=sys.stderr)
        return EXIT_STOPPED
    except BrokenPipeError:
        # The reader stopped early (`compare --format csv | head`): nothing of ours failed. Standard
        # output goes to /dev/null so that flushing it at exit does not raise the same error again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if not isinstance(exc, BadInput):
            exc = _as_storage_error(exc, args)
        message = str(exc)
        if not message.startswith(PROG):  # argparse's own messages already name the verb
            verb = getattr(args, "verb", None)
            message = f"{PROG} {verb}: {message}" if verb else f"{PROG}: {message}"
        print(message, file=sys.stderr)
        return EXIT_USAGE


def _as_storage_error(exc: Exception, args) -> BadInput:
    """A storage error met mid-verb (a page SQLite cannot read, a full disk) as its one line;
    any other error is a bug of ours, and its traceback is what a report needs."""
    from results_db import damage

    found = damage.explained(damage.database_of(getattr(args, "db", None)), exc)
    if found is None:
        raise exc
    return found
