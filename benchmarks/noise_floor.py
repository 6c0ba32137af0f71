"""Does a measured noise floor keep a comparison across time honest?

The selection of benchmarks/reproducibility.py (the quick suite's eager cells of six
benchmarks, 110 cells) is measured by `hadamard-bench noise` (three runs one after another:
runs 1-3, the machine's drift between runs, per cell; a fourth where one of them read the
machine otherwise), then run twice more (runs 4 and 5, or 5 and 6). Nothing changed between
those two, so every `regression` or `improvement` when `compare` sets them against each other
is a false change. The two are compared at the plain 5%
threshold and at each cell's measured floor (max(threshold, drift)): cells changed,
inconclusive, no change, and the floors themselves. With `--disturb` a neighbour streams
memory on one core for the whole measurement (benchmarks/speedup_aa.py's).

    python benchmarks/noise_floor.py              # about 15 minutes on 2 cores
    python benchmarks/noise_floor.py --disturb    # beside an intermittent memory-bound load
    python benchmarks/noise_floor.py --rounds 5   # five rounds a run (what compare advises for runs apart)
    python benchmarks/noise_floor.py --db URL     # re-read the five runs an earlier call stored there

The table goes into docs/benchmarks.md, one section per condition.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench_runner import comparison, defaults, history, stats, wording  # noqa: E402
from bench_runner.commands import compare  # noqa: E402
from bench_runner.commands.flags import positive_int  # noqa: E402
from docs_section import write_section  # noqa: E402
from reproducibility import SELECTION, bench_runner, scratch_db  # noqa: E402
from results_db import Run, history_queries  # noqa: E402
from sqlalchemy import select  # noqa: E402
from neighbour import DISTURB_HELP, DISTURBED, disturbance  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"


def measure_runs(disturb: bool, rounds: int) -> tuple[str, float]:
    """`noise` over the selection (runs 1-3, or 1-4), then two plain runs, each of `rounds`
    rounds, into a scratch database; its URL and the minutes it all took."""
    url = scratch_db("noise_floor")
    started = time.perf_counter()
    each = [*SELECTION, "--rounds", str(rounds), "--db", url]
    with disturbance(disturb):
        bench_runner("noise", *each)
        bench_runner("run", *each)
        bench_runner("run", *each)
    return url, (time.perf_counter() - started) / 60


def row(name: str, table: pd.DataFrame) -> str:
    counts = table["verdict"].value_counts()
    changed = sum(int(counts.get(v, 0)) for v in stats.RUN_WORDS)
    n = len(table)
    return (f"| {name} | {n} | {changed} ({changed / n:.0%}) | {int(counts.get(stats.INCONCLUSIVE, 0)) / n:.0%} | "
            f"{int(counts.get(stats.NO_CHANGE, 0)) / n:.0%} | ±{table['floor'].median():.1%} |")


def noise_kept(floors: pd.DataFrame, taken: list[int]) -> str:
    """`; floors from runs 2, 3, 4` where `noise` left some of the runs it took out (comparison.odd_runs)."""
    kept = sorted({int(r) for runs in floors["run_ids"] for r in runs})
    return f"; floors from runs {', '.join(map(str, kept))}" if kept != taken else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disturb", action="store_true", help=DISTURB_HELP)
    parser.add_argument("--rounds", type=positive_int("count of rounds"), default=defaults.ROUNDS["quick"],
                        help=f"rounds in each run (default: the quick suite's {defaults.ROUNDS['quick']}; "
                             f"its own table for any other)")
    parser.add_argument("--db", help="re-read the five runs an earlier call stored at this URL")
    args = parser.parse_args()
    url, minutes = (args.db, float("nan")) if args.db else measure_runs(args.disturb, args.rounds)
    sessions = compare.existing_db(url)
    with sessions() as session:
        # `noise` takes a run again where one read the machine otherwise: the two plain runs are the last two.
        ids = sorted(session.scalars(select(Run.id)))
        taken, (a, b) = ids[:-2], ids[-2:]
        before, _, _ = compare.side(session, str(a))
        after, _, _ = compare.side(session, str(b))
        drift, floors, _ = history.measured_drift(session, [a, b])
        machine_drift = compare.machine_change(session, [a], [b])[0]
        assert len(history_queries.run_fingerprints(session, ids)) == 1
        first, last = session.get(Run, ids[0]), session.get(Run, b)
        if np.isnan(minutes):
            minutes = (last.finished_at - first.started_at).total_seconds() / 60
        commit = (first.provenance or {}).get("git_commit") or "unknown"
        rounds = first.rounds
    other = rounds != defaults.ROUNDS["quick"]  # another count of rounds has a table of its own
    condition = ("disturbed" if args.disturb else "quiet") + (f"-{rounds}-rounds" if other else "")
    plain = comparison.comparison_table(before, after, machine_drift=machine_drift)
    floored = comparison.comparison_table(before, after, drift=drift, machine_drift=machine_drift)
    moved = np.abs(np.log(plain["ratio"]))
    lines = [
        f"Measured {first.started_at:%Y-%m-%d %H:%M} UTC at {commit[:7]} on this machine's CPU ({os.cpu_count()} "
        f"cores), {DISTURBED if args.disturb else 'quiet'}; the quick suite's eager cells of six benchmarks: "
        f"`noise` (runs {taken[0]}-{taken[-1]}{noise_kept(floors, taken)}), then runs {a} and {b}, {rounds} rounds a "
        f"run, {minutes:.0f} minutes in all.",
        "",
        f"| runs {b} against {a} judged at | cells | changed (false) | inconclusive | no change | median floor |",
        "| --- | --- | --- | --- | --- | --- |",
        row(f"the {defaults.FLOOR:.0%} threshold", plain),
        row("each cell's measured floor", floored),
        "",
        f"Drift between runs as `noise` measured it, over {len(floors)} cells: median ±{floors['drift'].median():.1%}, "
        f"90th percentile ±{floors['drift'].quantile(0.9):.1%}, largest ±{floors['drift'].max():.1%}; "
        f"{int((floors['drift'] > defaults.FLOOR).sum())} cells above the threshold. Runs {a} and {b} moved apart by a "
        f"median {np.expm1(moved.median()):.1%}, {np.mean(moved > np.log1p(floored['floor'])):.0%} of cells by more "
        f"than their floor. The drift controls, run {b} ÷ {a}: "
        f"{wording.drift_text(machine_drift) or 'none recorded'}; "
        f"{int(floored['machine_moved'].sum())} cells' changes held inconclusive at their floor, their intervals "
        f"not clearing the machine's own move.",
    ]
    table = "\n".join(lines)
    print(table)
    flags = (" --disturb" if args.disturb else "") + (f" --rounds {rounds}" if other else "")
    write_section(DOC, f"noise-floor-{condition}", table,
                  heading=f"## Runs compared across time, at a measured noise floor, {condition.replace('-', ' ')}\n\n"
                          f"`python benchmarks/noise_floor.py{flags}`:")
    return 0


if __name__ == "__main__":
    sys.exit(main())
