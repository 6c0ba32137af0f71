"""The flags several verbs share (after asv's common_args), and the argparse types that check
their values: each bad value is refused in one line before anything runs. Torch-free and
SQLAlchemy-free: the parser is built before any verb runs."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from hadamard_bench import plugins, vocabulary

from .. import defaults


def positive_int(what: str, zero_allowed: bool = False):
    """An argparse type for a positive (or, with zero_allowed, non-negative) whole number:
    `positive_int("run id")` says "'x' is not a run id"."""
    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < (0 if zero_allowed else 1):
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a {what}")
        return int(text)
    return parse


def seconds(zero_allowed: bool = False):
    """An argparse type for a positive (or, with zero_allowed, non-negative) finite number of seconds."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (value >= 0 if zero_allowed else value > 0) or math.isinf(value):
            raise argparse.ArgumentTypeError(f"{text} is not a {'non-negative' if zero_allowed else 'positive'} "
                                             f"number of seconds")
        return value
    return parse


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction between 0 and 1 (0.05 is 5%)")
    return value


def out_file(stdout_allowed: bool = False):
    """An argparse type for a file a verb writes (`-`: stdout, where allowed), refused before
    anything runs when it cannot be written: a folder, or below a folder this user cannot write
    into. Folders missing on the way are made when it is written (out_path): `ab --markdown` once
    measured a whole session and then stopped on a traceback at a folder that did not exist."""
    def parse(text: str) -> str:
        if text == "-" and stdout_allowed:
            return text
        path = Path(text).absolute()
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text[:80]!r} is a folder, not a file")
        above = path.parent
        while not above.exists():
            above = above.parent
        if not above.is_dir():
            raise argparse.ArgumentTypeError(f"{str(above)[:80]!r} is a file, so {text[:80]!r} cannot be written")
        if not os.access(above, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise argparse.ArgumentTypeError(f"{text[:80]!r} cannot be written here (no permission, or a "
                                             f"read-only file system)")
        return text
    return parse


def out_path(text: str) -> Path:
    """A file out_file accepted, as a Path, with the folders missing above it made."""
    path = Path(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def label(text: str) -> str:
    if not 0 < len(text) <= 40 or not all(c.isalnum() or c in "._-" for c in text):
        raise argparse.ArgumentTypeError(f"{text[:60]!r} is not a label (1 to 40 letters, digits, '.', '_', '-')")
    return text


def db_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="URL",
                   help=f"SQLAlchemy URL (default: ${vocabulary.DB_ENV_VAR}, else sqlite:///results/hadamard_bench.db)")


def plugin_flag(p: argparse.ArgumentParser) -> None:
    """--plugin, for the verbs that measure or show the catalogue (they call `catalogue_with_plugins`)."""
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE[:CALLABLE]",
                   help=f"also register the methods of this module's callable (default name: register); "
                        f"installed plugins ({plugins.GROUP} entry points) and ${plugins.ENV_VAR} load always")


def catalogue_with_plugins(args):
    """The catalogue with every plugin loaded (installed, $HADAMARD_BENCH_PLUGINS and --plugin):
    a broken plugin stops the verb here, before anything is written. Imports torch."""
    from hadamard_impls import catalogue

    plugins.load(catalogue, args.plugin)
    return catalogue


def threshold_flag(p: argparse.ArgumentParser) -> None:
    """--threshold: the practical floor under which a change counts as none (compare, gate, ab)."""
    p.add_argument("--threshold", type=fraction, default=defaults.FLOOR, metavar="FRACTION",
                   help=f"the practical floor: smaller changes count as none (default: {defaults.FLOOR})")


def fail_on_regression_flag(p: argparse.ArgumentParser, after: str) -> None:
    """--fail-on-regression (compare, ab): exit 1 on a regression, or on a cell that failed on the
    `after` side where it was `ok` on the other (comparison.broken_cells) or where the other side
    has no result of it (comparison.new_failures)."""
    p.add_argument("--fail-on-regression", action="store_true",
                   help=f"exit with status 1 when any cell regressed, or failed in {after} (a failed check, an "
                        f"error, out of memory, a crash, a timeout) where it was `ok` on the other side or the "
                        f"other side has no `ok` or failed result of it (a method it lacks, a cell it skipped)")


def selection_flags(p: argparse.ArgumentParser, device_help: str) -> None:
    """Which cells: `run`, `submit` and `ab`."""
    p.add_argument("--suite", choices=vocabulary.SUITES,
                   help="smoke: seconds, for tests; quick: minutes on a laptop; full: the papers' sizes; "
                        "paper: the survey's Figures S3 and S4 (spatial and token mixing)")
    p.add_argument("--benchmark", action="append", default=[], metavar="ID", help="only this benchmark")
    p.add_argument("--method", action="append", default=[], metavar="ID", help="only this method")
    p.add_argument("--backend", action="append", default=[], choices=vocabulary.BACKENDS, help="only this backend")
    p.add_argument("--size", action="append", default=[], metavar="NAME=INT[,NAME=INT]",
                   help="only the suite's sizes with these values, e.g. n=67108864 or N=4096,C=512")
    p.add_argument("--device", action="append", default=[], choices=vocabulary.DEVICES, help=device_help)
    p.add_argument("--dtype", action="append", default=[], choices=vocabulary.DTYPES, help="default: float32")
    p.add_argument("--mode", action="append", default=[], choices=vocabulary.MODES,
                   help="forward (inference) or train (forward and backward); default: forward")


def selected(args, devices: list[str]):
    """The selection.Selection the selection flags name, on `devices`."""
    from ..selection import Selection

    return Selection(suite=args.suite, benchmarks=args.benchmark, methods=args.method, backends=args.backend,
                     devices=devices, dtypes=args.dtype or ["float32"], modes=args.mode or ["forward"],
                     sizes=args.size)


def rounds_flag(p: argparse.ArgumentParser, per_suite: dict[str, int] = defaults.ROUNDS) -> None:
    p.add_argument("--rounds", type=positive_int("positive number of rounds"), metavar="N",
                   help="measure every cell in N rounds, each in a fresh worker process and a new shuffled "
                        "order (default: " + ", ".join(f"{k} {v}" for k, v in per_suite.items()) + ")")


def more_rounds_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--more-rounds", type=positive_int("whole number of rounds", zero_allowed=True), metavar="N",
                   help="after the rounds, up to N more for each method whose speed-up over its baseline is "
                        "still inconclusive, and that baseline, judged again after each; 0: none (default: "
                        + ", ".join(f"{k} {v.more_rounds}" for k, v in defaults.POLICIES.items()) + ")")


def measure_flags(p: argparse.ArgumentParser) -> None:
    """How a run measures: `run` and `agent`."""
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--cell-timeout", type=seconds(), metavar="SECONDS",
                   help="stop a cell's worker after this long and store the cell as `timeout` "
                        "(default: " + ", ".join(f"{k} {v:g} s" for k, v in defaults.CELL_TIMEOUT_S.items()) + ")")
    p.add_argument("--warm-l2", action="store_true",
                   help="CUDA: keep the L2 cache warm between timed calls (default: flush it before each)")
    p.add_argument("--energy", action="store_true",
                   help="also measure each cell's energy per call and mean power (NVML on a GPU, RAPL on a CPU "
                        "where readable): a second of repeated calls per cell")
    p.add_argument("--settle", type=seconds(zero_allowed=True), metavar="SECONDS",
                   help="CPU on several threads: before timing a cell, wait up to this long while a small "
                        "threaded probe reads more than 7%% above its median, twice in a row (a VM whose cores "
                        "are briefly slow to work together); 0 never waits (default: "
                        + ", ".join(f"{k} {v.settle_s:g}" for k, v in defaults.POLICIES.items()) + ")")
    p.add_argument("--one-at-a-time", action="store_true",
                   help="time each cell on its own, one after the other, instead of letting the methods and "
                        "backends of one benchmark, size, device, dtype and mode take turns block by block "
                        "(the default, which pairs their samples so speed-ups share the machine's drift)")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local: one cell at a time in a worker process here (default); ray: every round's cells "
                        "as Ray tasks, each with a GPU (CUDA) or the run's threads in CPUs to itself (docs/team.md)")
    p.add_argument("--ray-address", metavar="ADDRESS",
                   help="the Ray cluster to use (as `ray start` printed it; default: start one here for the run)")
    p.add_argument("--ray-resource", action="append", default=[], metavar="NAME=AMOUNT",
                   help="run the cells only on Ray nodes that offer this custom resource (repeatable)")
    p.add_argument("--accelerator-type", metavar="TYPE",
                   help="run the cells only on Ray nodes with this accelerator type (H100, A100, ...)")
