"""Every setting a user can change, with its default, in one torch-free module: how hard each
suite measures, how many rounds it takes, how long a cell may run, and the practical floor
of a comparison. The command line reads them for its help text without importing torch, and
docs/measurement.md's table of defaults is generated from them (scripts/catalogue_docs.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TimingPolicy:
    """How a run measures its cells: each round (bench_runner.timing reads it), and the rounds it adds."""

    warmup_s: float = 0.05  # keep calling until this much time has passed (at least one call)
    min_block_s: float = 1e-3  # a sample lasts at least this long, far above clock resolution
    budget_s: float = 0.5  # stop sampling after this much measured time ...
    min_samples: int = 5  # ... but not before this many samples
    max_samples: int = 200
    # ... and earlier, once the median is known this well: the half-width of its 95%
    # confidence interval over the median (0: no early stop).
    target_rel_ci: float = 0.02
    flush_l2: bool = True  # CUDA: start every timed call from a cold L2
    cuda_graphs: bool = True  # CUDA, forward mode: also time a CUDA-graph replay
    energy: bool = False  # also the energy per call (a second of repeated calls per cell; bench_runner.telemetry)
    # CPU, several threads: wait up to this long before timing a cell while the machine's cores
    # are slow to work together (bench_runner.settle); 0: never wait.
    settle_s: float = 0.0
    # The machine's ceilings at a run's start (bench_runner.calibration): the best of tries repeated
    # for this long, so that a neighbour busy for a second cannot halve them; 0: one try.
    ceiling_window_s: float = 0.0
    # Time the members of a comparison group (the methods and backends of one benchmark, size,
    # device, dtype and mode) in turns, block by block (interleave); False: one after the other.
    interleave: bool = True
    # After a run's rounds, up to this many more for each method whose speed-up over its baseline is
    # still inconclusive, and that baseline, judged again after each, within a share of the rounds'
    # time (bench_runner.sweep.execute); 0: none. Three rounds leave a sixth of the quick suite's
    # speed-ups undecided, and two more settle most of them (docs/measurement.md).
    more_rounds: int = 0


# How hard each suite measures per round: smoke proves the path works, full is for papers.
POLICIES = {
    "smoke": TimingPolicy(warmup_s=0.005, min_block_s=1e-4, budget_s=0.02, min_samples=3),
    "quick": TimingPolicy(warmup_s=0.01, min_block_s=5e-4, budget_s=0.025, min_samples=5, settle_s=2.0,
                          ceiling_window_s=2.0, more_rounds=2),
    "full": TimingPolicy(warmup_s=0.1, min_block_s=1e-3, budget_s=1.0, min_samples=10, settle_s=2.0,
                         ceiling_window_s=2.0, more_rounds=3),
    "paper": TimingPolicy(warmup_s=0.05, min_block_s=1e-3, budget_s=0.5, min_samples=10, settle_s=2.0,
                          ceiling_window_s=2.0, more_rounds=3),
}

# How many rounds each suite measures, each in a fresh worker: one process is one draw of
# the machine's and the allocator's state, so a verdict across runs needs several.
ROUNDS = {"smoke": 1, "quick": 3, "full": 5, "paper": 5}
# An `ab` session's: more, since a side's process can hold it slower for a whole round, and only
# rounds average that out; each round times a cell until its ratio is known (bench_runner/ab.py
# says what was measured, and why quick takes 16).
AB_ROUNDS = {"smoke": 4, "quick": 16, "full": 20, "paper": 20}

# How long one cell may take before its worker is stopped and the cell stored as `timeout`.
CELL_TIMEOUT_S = {"smoke": 300.0, "quick": 300.0, "full": 1800.0, "paper": 1800.0}

# A change smaller than this fraction counts as no change (compare, gate, the dashboard's verdicts).
FLOOR = 0.05


def markdown_table() -> str:
    """The defaults per suite as a Markdown table: docs/measurement.md holds it, written by
    scripts/catalogue_docs.py (a test fails when it is out of date)."""
    rows = [("rounds (each in a fresh worker)", lambda s: f"{ROUNDS[s]}"),
            ("warm-up per cell, s", lambda s: f"{POLICIES[s].warmup_s:g}"),
            ("shortest sample (a block of calls), s", lambda s: f"{POLICIES[s].min_block_s:g}"),
            ("timed budget per cell and round, s", lambda s: f"{POLICIES[s].budget_s:g}"),
            ("samples per cell and round", lambda s: f"{POLICIES[s].min_samples}–{POLICIES[s].max_samples}"),
            ("stop sampling once the median is known to ±", lambda s: f"{POLICIES[s].target_rel_ci:.0%}"),
            ("`--settle`: wait for slow cores, s", lambda s: f"{POLICIES[s].settle_s:g}"),
            ("`--cell-timeout`, s", lambda s: f"{CELL_TIMEOUT_S[s]:g}"),
            ("the ceilings: best of tries over, s", lambda s: f"{POLICIES[s].ceiling_window_s:g}"),
            ("group members take turns", lambda s: "yes" if POLICIES[s].interleave else "no"),
            ("`--more-rounds`: up to, where a speed-up is undecided", lambda s: f"{POLICIES[s].more_rounds}")]
    suites = list(POLICIES)
    lines = ["| setting | " + " | ".join(suites) + " |", "| --- |" + " --- |" * len(suites)]
    lines += [f"| {name} | " + " | ".join(cell(s) for s in suites) + " |" for name, cell in rows]
    lines += ["", f"Every suite: a change under {FLOOR:.0%} counts as none (`--threshold`); on CUDA the L2 cache is flushed before each timed call "
                  f"(`--warm-l2` keeps it warm) and forward cells are also timed as a CUDA-graph replay."]
    return "\n".join(lines)
