"""Where does a paired speed-up vary: between turns on one build, between builds, or between processes?

A speed-up's interval comes from the top level that varies (Kalibera & Jones, ISMM 2013), and
in a run that level is the round: each round's worker builds a comparison group's members once
and times them in turns for a few cycles (one *visit*), so three rounds give three draws of
whatever a visit fixes. This script asks what a visit fixes, so that the suite knows what to
repeat to narrow an interval. The quick suite's eager CPU groups of four benchmarks are visited
in several worker processes; each visit builds its members afresh (new modules and tensors) and
times them in turns twice, back to back on the same build (two *repeats*). The median per-cycle
log ratio of every method over its baseline, per repeat, is then split into nested parts, as a
balanced analysis of variance does:

- repeats: turns back to back on one build (their cycles' sampling, and what the machine did
  in that fraction of a second);
- build: visits in one process, beyond their repeats (where the tensors landed, the weights drawn);
- process: the workers, beyond their visits (a process's layout and allocator history).

A few cycles' sampling is not split off on its own: with 5-7 cycles of heavy-tailed log ratios
a bootstrap of one repeat's median overstated it (beside a neighbour, ±32% for the median
speed-up whose visits moved ±14%).

A last worker visits the groups with four times the suite's timed budget, to show what more
cycles in one visit buy. With `--disturb` a neighbour streams memory on one core throughout.

    python benchmarks/ratio_variance.py            # about 6 minutes on 2 cores
    python benchmarks/ratio_variance.py --disturb

The table goes into docs/benchmarks.md, one section per condition.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import itertools
import json
import math
import os
import random
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench_runner import defaults, selection, speedups, timing  # noqa: E402
from bench_runner.cell import prepare  # noqa: E402
from docs_section import current_commit, write_section  # noqa: E402
from hadamard_bench.plugins import loaded_catalogue  # noqa: E402
from neighbour import DISTURB_HELP, DISTURBED, disturbance  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
BENCHMARKS = ["gated_ffn", "bimodal_fusion", "token_mixing", "elementwise"]
PROCESSES, VISITS, REPEATS = 3, 4, 2
MORE_BUDGET = 4  # the last worker's timed budget, in multiples of the quick suite's


def groups(catalogue) -> list[list]:
    cells = selection.plan(catalogue, selection.Selection(suite="quick", benchmarks=BENCHMARKS,
                                                          backends=["eager"], devices=["cpu"]))
    ordered = sorted(cells, key=lambda c: (c.group(), c.method))
    return [list(g) for _, g in itertools.groupby(ordered, key=lambda c: c.group())]


def visit_all(worker: int, visits: int, repeats: int, budget_factor: float) -> None:
    """In this process: every group visited `visits` times, each visit a fresh build timed in
    turns `repeats` times back to back; one JSON line per repeat (per-call samples by method).
    The members are built as a run's worker builds them (cell.prepare, unchecked) and timed by
    the run's own timing.interleave, with the quick suite's policy and no settling."""
    catalogue = loaded_catalogue()
    base = defaults.POLICIES["quick"]
    policy = dataclasses.replace(base, settle_s=0.0, budget_s=base.budget_s * budget_factor)
    for visit in range(visits):
        for group in groups(catalogue):
            prepared = [prepare(catalogue, c, policy, check=False) for c in group]
            for repeat in range(repeats):
                rng = random.Random(f"{worker}-{visit}-{repeat}-{group[0].group()}")
                measured = timing.interleave([p.call for p in prepared], prepared[0].clock, policy, rng)
                print(json.dumps({"worker": worker, "visit": visit, "repeat": repeat,
                                  "benchmark": group[0].benchmark, "size": str(group[0].size),
                                  "samples": {c.method: list(m.samples) for c, m in zip(group, measured)}}),
                      flush=True)
            del prepared
            gc.collect()


def run_worker(worker: int, visits: int, repeats: int, budget_factor: float) -> list[dict]:
    out = subprocess.run([sys.executable, __file__, "--worker", str(worker), "--visits", str(visits),
                          "--repeats", str(repeats), "--budget-factor", str(budget_factor)],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def log_ratios(lines: list[dict], catalogue) -> pd.DataFrame:
    """One row per speed-up and repeat: worker, visit, repeat, the pair, the median per-cycle log
    ratio (method ÷ baseline) and the cycles."""
    frame = pd.DataFrame([dict(benchmark=b.id, method=m.id, role=m.role, against=m.against)
                          for b in catalogue.benchmarks.values() for m in b.methods.values()])
    against = speedups.baselines(frame)
    rows = []
    for line in lines:
        for method, samples in line["samples"].items():
            base = against.get((line["benchmark"], method))
            if base not in line["samples"]:
                continue
            lr = np.log(np.asarray(samples) / np.asarray(line["samples"][base]))
            rows.append(dict(worker=line["worker"], visit=line["visit"], repeat=line["repeat"],
                             pair=(line["benchmark"], line["size"], method), median=float(np.median(lr)),
                             cycles=len(lr)))
    return pd.DataFrame(rows)


def components(frame: pd.DataFrame) -> pd.DataFrame:
    """Per speed-up, the variance of each nested level beyond the levels below it (balanced
    nested ANOVA on the repeats' medians: worker > visit > repeat), negative estimates kept so
    that pooling stays unbiased."""
    rows = []
    for pair, f in frame.groupby("pair"):
        y = f.pivot_table(index=["worker", "visit"], columns="repeat", values="median")
        if y.isna().any().any() or y.shape[1] < 2:
            continue
        w, v, r = y.index.get_level_values(0).nunique(), y.index.get_level_values(1).nunique(), y.shape[1]
        repeats = float(y.var(axis=1, ddof=1).mean())
        visit_means = y.mean(axis=1)
        visits = float(visit_means.groupby(level=0).var(ddof=1).mean())  # build + repeats / r
        workers = float(visit_means.groupby(level=0).mean().var(ddof=1)) if w > 1 else float("nan")
        rows.append(dict(pair=pair, repeats=repeats, build=visits - repeats / r, process=workers - visits / v))
    return pd.DataFrame(rows)


def sd(values: pd.Series) -> tuple[float, float]:
    """A variance component as a speed-up's sd: pooled over the speed-ups (√ of the mean), and the
    median over speed-ups (a negative estimate counts as 0)."""
    return math.sqrt(max(values.mean(), 0.0)), float(np.median(np.sqrt(values.clip(lower=0))))


def visit_spread(frame: pd.DataFrame) -> tuple[float, float, float]:
    """One visit's speed-up from visit to visit in one process (first repeats only): pooled sd,
    median sd over speed-ups, median cycles."""
    first = frame[frame["repeat"] == 0]
    var = first.groupby(["pair", "worker"])["median"].var(ddof=1).groupby(level=0).mean()
    return math.sqrt(var.mean()), float(np.median(np.sqrt(var))), float(first["cycles"].median())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disturb", action="store_true", help=DISTURB_HELP)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--visits", type=int, default=VISITS, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=REPEATS, help=argparse.SUPPRESS)
    parser.add_argument("--budget-factor", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        visit_all(args.worker, args.visits, args.repeats, args.budget_factor)
        return 0
    condition = "disturbed" if args.disturb else "quiet"
    commit = current_commit(ROOT)
    catalogue = loaded_catalogue()
    when = datetime.now(timezone.utc)
    with disturbance(args.disturb):
        nested = [line for w in range(PROCESSES) for line in run_worker(w, VISITS, REPEATS, 1.0)]
        longer = run_worker(PROCESSES, VISITS, 1, MORE_BUDGET)
    nested_ratios = log_ratios(nested, catalogue)
    parts = components(nested_ratios)
    names = {"repeats": "repeats: turns back to back on one build", "build": "the build: visits in one process",
             "process": "the process: workers"}
    redrawn = {"repeats": "more cycles, turns a moment later", "build": "fresh modules and tensors",
               "process": "a fresh worker"}
    rows = [f"| {names[c]} | {redrawn[c]} | ±{sd(parts[c])[0]:.1%} | ±{sd(parts[c])[1]:.1%} |" for c in names]
    quick, more = visit_spread(nested_ratios), visit_spread(log_ratios(longer, catalogue))
    lines = [
        f"Measured {when:%Y-%m-%d %H:%M} UTC at {commit} on this machine's CPU ({os.cpu_count()} cores), "
        f"{DISTURBED if args.disturb else condition}; the quick suite's eager groups of {', '.join(BENCHMARKS)}: "
        f"{len(parts)} speed-ups, {PROCESSES} workers × {VISITS} visits × {REPEATS} repeats. Each level's sd of a "
        "speed-up (its log ratio) beyond the levels below it: pooled over the speed-ups, and the median speed-up's.",
        "",
        "| what varies | redrawn by | pooled sd | median speed-up's sd |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
        f"A visit's speed-up from visit to visit in one worker: ±{quick[0]:.1%} pooled, ±{quick[1]:.1%} the median "
        f"speed-up's, with the quick suite's budget ({quick[2]:.0f} cycles a visit); ±{more[0]:.1%} and "
        f"±{more[1]:.1%} with {MORE_BUDGET} times it ({more[2]:.0f} cycles).",
    ]
    table = "\n".join(lines)
    print(table)
    write_section(DOC, f"ratio-variance-{condition}", table,
                  heading=f"## Where a speed-up varies, {condition}\n\n"
                          f"`python benchmarks/ratio_variance.py{' --disturb' if args.disturb else ''}`:")
    return 0


if __name__ == "__main__":
    sys.exit(main())
