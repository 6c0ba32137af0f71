"""The words Hadamard Bench uses from the command line to the database to the charts, spelled
once. Torch-free on purpose: the dashboard and the store import it without loading torch."""

from __future__ import annotations

import re

# What names one measured cell: a result row's key within its run, a URL's selection, an
# export's leading columns.
CELL_KEY = ("benchmark", "method", "backend", "device", "dtype", "mode", "size")


def size_order(size: str) -> str:
    """A size label's sort key: its numbers compared as numbers, not as text ("n=4096" before
    "n=65536" before "n=1048576"; "B=1 N=64" before "B=1 N=1024")."""
    return re.sub(r"\d+", lambda m: m.group().zfill(20), size)


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and its noun as a sentence says it: "1 run", "3 runs", "0 runs", "2 change points";
    `plural` where an s does not make the plural ("box", "boxes")."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


# smoke proves the path works; quick covers the catalogue in minutes on a 2-core CPU; full
# is the papers' sizes, for a GPU; paper holds only the benchmarks behind the survey's
# Figures S3 and S4, at sizes that show their growth.
SUITES = ("smoke", "quick", "full", "paper")
EVERY_BENCHMARK = ("smoke", "quick", "full")  # the suites that cover every benchmark

# The survey's four families, in the order the catalogue, `list` and the dashboard show them.
DOMAINS = {
    "high_order": "High-order interactions",
    "fusion": "Multimodal fusion",
    "modulation": "Adaptive modulation: gating and masking",
    "efficient": "Efficient operators",
}

ROLES = ("hadamard", "baseline", "reference")  # a Hadamard method, what it replaces, a yardstick
BACKENDS = ("eager", "compile", "library", "triton")
DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "bfloat16", "float16")
MODES = ("forward", "train")  # train: forward and backward

# How a cell ended, and how a run did. `implausible`: timed, but faster than its device can be
# (bench_runner.plausibility); its samples are kept for a look, not used as a result.
STATUSES = ("ok", "error", "oom", "mismatch", "skipped", "crashed", "timeout", "implausible")
FAILED = ("error", "oom", "mismatch", "crashed", "timeout", "implausible")
RUN_STATUSES = ("queued", "running", "finished", "failed", "interrupted", "cancelling", "cancelled")

# The environment variable that names the results database (a SQLAlchemy URL) when --db does not.
DB_ENV_VAR = "HADAMARD_BENCH_DB"
# The one that makes the dashboard read-only (set to one of YES: `serve --readonly` sets it).
READ_ONLY_ENV_VAR = "HADAMARD_BENCH_READONLY"
YES = ("1", "true", "yes", "on")

# What a comparison takes the ratio of, and its quantile: the median, or the 10th percentile,
# which shared and virtual machines reproduce better (their disturbances only ever add time).
STATISTICS = {"median": 0.5, "p10": 0.1}

# A comparison's verdicts: between two runs (after ÷ before) and between two methods (method ÷
# baseline), each worded by its direction, or neither.
RUN_WORDS = ("regression", "improvement")
METHOD_WORDS = ("slower", "faster")
NO_CHANGE, INCONCLUSIVE = "no change", "inconclusive"

# What a chart or `plot` can show: column → (label, unit).
METRICS = {
    "time_median_s": ("Runtime (median)", "s"),
    "peak_mem_bytes": ("Peak memory", "bytes"),
    "gflops": ("Throughput", "GFLOP/s"),
    "gbps": ("Bandwidth", "GB/s"),
    "flops": ("FLOPs (analytic)", "FLOP"),
    "energy_j_per_call": ("Energy per call", "J"),
    "gflops_per_j": ("Energy efficiency", "GFLOP/J"),
    "speedup": ("Speed-up against a baseline", "×"),
}

# A person's word on a history: the change at a run is expected, or a run starts a new level.
MARK_KINDS = ("expected", "new_distribution")
