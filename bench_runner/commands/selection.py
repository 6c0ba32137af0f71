"""The selection flags `run`, `submit` and `ab` share (after asv's common_args): which cells, and
in how many rounds."""

from __future__ import annotations

import argparse

from hadamard_bench import vocabulary
from hadamard_impls import BACKENDS, SUITES

from .. import sweep
from ..cell import DTYPES, MODES
from . import positive_int


def selection_flags(p: argparse.ArgumentParser, device_help: str) -> None:
    p.add_argument("--suite", choices=SUITES,
                   help="smoke: seconds, for tests; quick: minutes on a laptop; full: the papers' sizes; "
                        "paper: the survey's Figures S3 and S4 (spatial and token mixing)")
    p.add_argument("--benchmark", action="append", default=[], metavar="ID", help="only this benchmark")
    p.add_argument("--method", action="append", default=[], metavar="ID", help="only this method")
    p.add_argument("--backend", action="append", default=[], choices=list(BACKENDS), help="only this backend")
    p.add_argument("--size", action="append", default=[], metavar="NAME=INT[,NAME=INT]",
                   help="only the suite's sizes with these values, e.g. n=67108864 or N=4096,C=512")
    p.add_argument("--device", action="append", default=[], choices=vocabulary.DEVICES, help=device_help)
    p.add_argument("--dtype", action="append", default=[], choices=list(DTYPES), help="default: float32")
    p.add_argument("--mode", action="append", default=[], choices=list(MODES),
                   help="forward (inference) or train (forward and backward); default: forward")


def rounds_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rounds", type=positive_int("positive number of rounds"), metavar="N",
                   help="measure every cell in N rounds, each in a fresh worker process and a new shuffled "
                        "order (default: " + ", ".join(f"{k} {v}" for k, v in sweep.ROUNDS.items()) + ")")


def selection(args, devices: list[str]) -> sweep.Selection:
    return sweep.Selection(suite=args.suite, benchmarks=args.benchmark, methods=args.method,
                           backends=args.backend, devices=devices, dtypes=args.dtype or ["float32"],
                           modes=args.mode or ["forward"], sizes=args.size)
