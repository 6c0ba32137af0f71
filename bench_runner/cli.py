"""The command line, `python -m bench_runner VERB` (or `hadamard-bench VERB`): this module only
assembles the parser from the verbs' modules under commands/ and turns bad input into one line.

Every bad input ends in one line on stderr and exit status 2, before anything is written.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from hadamard_bench.errors import BadInput

from .commands import EXIT_USAGE, PROG, VERBS, UsageError


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


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra:  # argparse would name only the program; the verb's --help lists what it takes
            raise UsageError(f"{PROG} {args.verb}: unrecognized arguments: {' '.join(extra)} "
                             f"(`{PROG} {args.verb} --help` lists its flags)")
        return args.handler(args)
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
