"""Do speed-ups reproduce? Interleaved against one-at-a-time timing, quiet and disturbed.

The selection of benchmarks/reproducibility.py (the quick suite's eager cells of six
benchmarks, 110 cells) is run twice per way back to back into one database, the ways
taking turns; by default the two ways of timing a comparison group: its members taking turns block by block (the default,
bench_runner.timing.interleave) and one after the other (`run --one-at-a-time`). Within
each run every method's speed-up over its baseline is worked out as the exports carry it
(bench_runner.speedups), and each way's two runs are compared: verdicts that flip between
faster and slower, intervals that do not overlap, how far a speed-up moves, how many are
inconclusive, and what each way cost in minutes. With `--disturb` a neighbour streams memory
on one core, one second on, one second off, for the whole measurement (a laptop's browser, a
cloud VM's neighbour).

With `--ways settling` the two ways are instead the run's default, waiting for a slow spell of
the cores to pass before timing a cell (`--settle`), and not waiting (`--settle 0`): whether
settling earns its minutes.

    python benchmarks/speedup_aa.py              # about 10 minutes on 2 cores
    python benchmarks/speedup_aa.py --disturb    # the same beside an intermittent memory-bound load
    python benchmarks/speedup_aa.py --ways settling [--disturb]
    python benchmarks/speedup_aa.py --db URL     # re-read the runs an earlier call stored there

The table goes into docs/benchmarks.md, one section per comparison and condition.
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

from bench_runner import comparison, speedups, stats  # noqa: E402
from hadamard_bench.vocabulary import CELL_KEY  # noqa: E402
from bench_runner.commands import compare  # noqa: E402
from docs_section import write_section  # noqa: E402
from neighbour import DISTURB_HELP, DISTURBED, disturbance  # noqa: E402
from reproducibility import SELECTION, bench_runner, scratch_db, verdict_rates  # noqa: E402
from results_db import Run, queries  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
# The ways of running each comparison, taking turns over the runs: ways[0], ways[1], …, ways[0], ways[1], ….
WAYS = {"timing": {"interleaved": [], "one at a time": ["--one-at-a-time"]},
        "settling": {"settle (default)": [], "neither": ["--settle", "0"]}}
# Each comparison's section of docs/benchmarks.md: its marker and its heading.
SECTIONS = {"timing": ("speedup-aa", "Speed-ups measured twice"),
            "settling": ("settle-aa", "Settling against neither")}
KEY = list(CELL_KEY)


def speedup_table(session, run_id: int) -> pd.DataFrame:
    frame = speedups.judged(session, queries.export_frame(session, run_id=run_id, with_ids=True))
    return frame.dropna(subset=["speedup"]).set_index(KEY)


def pair_figures(first: pd.DataFrame, second: pd.DataFrame) -> dict:
    both = first.merge(second, left_index=True, right_index=True, suffixes=("_1", "_2"))
    v1, v2 = both["speedup_verdict_1"], both["speedup_verdict_2"]
    flips = int((((v1 == "faster") & (v2 == "slower")) | ((v1 == "slower") & (v2 == "faster"))).sum())
    overlap = ((both["speedup_ci_low_1"] <= both["speedup_ci_high_2"])
               & (both["speedup_ci_low_2"] <= both["speedup_ci_high_1"])).mean()
    moved = np.abs(np.log(both["speedup_1"].astype(float) / both["speedup_2"].astype(float)))
    half = lambda f: np.sqrt(f["speedup_ci_high"].astype(float) / f["speedup_ci_low"].astype(float)) - 1  # noqa: E731
    return {"speed-ups": len(both), "flips": flips, "overlap": float(overlap),
            "moved": float(np.expm1(moved.median())), "moved_over_5": float((np.expm1(moved) > 0.05).mean()),
            "inconclusive": [float((f["speedup_verdict"] == "inconclusive").mean()) for f in (first, second)],
            "half_width": [float(half(f).median()) for f in (first, second)],
            "paired": [float(f["speedup_paired"].astype(bool).mean()) for f in (first, second)]}


def round_ratios(session, run_id: int) -> dict[tuple, list[float]]:
    """Each paired speed-up of a run as its rounds give it: per round, the median of the per-cycle
    log ratios of method over baseline (stats.paired_log_ratios), for speed-ups with two rounds or more."""
    frame = queries.export_frame(session, run_id=run_id, with_ids=True)
    samples = queries.samples_of(session, frame.loc[frame["status"] == "ok", "result_id"])
    found = {}
    for index, (_, base, result) in speedups.baseline_results(frame, queries.catalogue_frame(session)).items():
        rounds = stats.paired_log_ratios(samples[base], samples[result])
        if len(rounds) >= 2:
            found[tuple(frame.loc[index, KEY])] = [float(np.median(x)) for x in rounds]
    return found


def runs_apart(first: dict, second: dict) -> tuple[float, float] | None:
    """How a way's two runs' speed-ups vary: the median over speed-ups of their rounds' spread (the
    SD of a round's log ratio within a run), and the share of speed-ups whose two runs differ by more
    than their rounds do (a one-way analysis of variance of the rounds' log ratios, run as the
    factor, at 5%: about 5% of them where a run adds nothing of its own). None for a way whose
    runs paired nothing (one at a time)."""
    from scipy.stats import f_oneway

    shared = [k for k in first.keys() & second.keys() if len(first[k]) == len(second[k])]
    if not shared:
        return None
    spread = np.median([np.std(r[k], ddof=1) for k in shared for r in (first, second)])
    apart = np.mean([f_oneway(first[k], second[k]).pvalue < 0.05 for k in shared])
    return float(np.expm1(spread)), float(apart)


def time_ratio(session, interleaved: int, alone: int) -> tuple[float, float]:
    """A cell's median per call interleaved ÷ one at a time (runs minutes apart): the median
    over all cells, and over the fastest third (where a switch costs most)."""
    frame = queries.export_frame(session)
    frame = frame[frame["status"] == "ok"].set_index(["run_id", *KEY])["time_median_s"].astype(float)
    ratio = (frame.loc[interleaved] / frame.loc[alone]).dropna()
    fast = frame.loc[alone].loc[ratio.index]
    return float(ratio.median()), float(ratio[fast <= fast.quantile(1 / 3)].median())


def order(ways: dict) -> list[str]:
    return [*ways] * 2  # run ids 1 to 2 × len(ways)


def run_ids(ways: dict) -> list[int]:
    return list(range(1, len(order(ways)) + 1))


def measure_runs(ways: dict, disturb: bool) -> tuple[str, dict[int, float]]:
    """Two runs of each way, the ways taking turns, into a scratch database (beside the neighbour when
    `disturb`): its URL and each run's minutes."""
    url, minutes = scratch_db("speedup_aa"), {}
    with disturbance(disturb):
        for run_id, way in enumerate(order(ways), start=1):
            started = time.perf_counter()
            bench_runner("run", *SELECTION, *ways[way], "--db", url)
            minutes[run_id] = (time.perf_counter() - started) / 60
    return url, minutes


def runs_of(ways: dict, way: str) -> list[int]:
    return [r for r, w in enumerate(order(ways), start=1) if w == way]


def time_aa(session, ways: dict) -> dict[str, dict]:
    """Each way's two runs' times compared as `compare` does (its verdict counts): an A/A."""
    runs = run_ids(ways)
    sides = {r: compare.side(session, str(r))[0] for r in runs}
    spelled = comparison.runs_in_spells(queries.round_states(session, runs), runs)
    return {way: verdict_rates(comparison.comparison_table(
        *(sides[r] for r in runs_of(ways, way)), spelled_runs=spelled,
        machine_drift=compare.machine_change(session, *([r] for r in runs_of(ways, way)))[0])) for way in ways}


def way_row(ways: dict, way: str, tables: dict, minutes: dict[int, float], aa: dict) -> str:
    """One way's row: its two runs' speed-ups set against each other (pair_figures), and their
    times (time_aa)."""
    first, second = runs_of(ways, way)
    f = pair_figures(tables[first], tables[second])
    changed = sum(aa[way][w] for w in stats.RUN_WORDS)
    return (f"| {way} | {first}, {second} | {changed} of {aa[way]['cells']} | "
            f"{aa[way][stats.INCONCLUSIVE] / aa[way]['cells']:.0%} | {f['speed-ups']} | {f['flips']} | {f['overlap']:.0%} | "
            f"{f['moved']:.1%} | {f['moved_over_5']:.0%} | "
            + ", ".join(f"{v:.0%}" for v in f["inconclusive"]) + " | "
            + ", ".join(f"±{v:.1%}" for v in f["half_width"]) + " | "
            + ", ".join(f"{v:.0%}" for v in f["paired"]) + " | "
            + ", ".join(f"{minutes[r]:.1f}" for r in (first, second)) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disturb", action="store_true", help=DISTURB_HELP)
    parser.add_argument("--ways", choices=list(WAYS), default="timing",
                        help="timing: interleaved against one at a time (default); settling: the run's settling "
                             "against none")
    parser.add_argument("--db", help="re-read the runs an earlier call stored at this URL")
    args = parser.parse_args()
    condition, ways = "disturbed" if args.disturb else "quiet", WAYS[args.ways]
    url, minutes = (args.db, {}) if args.db else measure_runs(ways, args.disturb)
    sessions = compare.existing_db(url)
    with sessions() as session:
        runs, n = run_ids(ways), len(ways)
        tables = {r: speedup_table(session, r) for r in runs}
        ratios = time_ratio(session, 1, 2), time_ratio(session, 1 + n, 2 + n)  # ways[0] ÷ ways[1], twice
        aa = time_aa(session, ways)
        apart = {way: runs_apart(*(round_ratios(session, r) for r in runs_of(ways, way))) for way in ways}
        if not minutes:  # re-read: the runs' own start and end
            minutes = {r: (run.finished_at - run.started_at).total_seconds() / 60
                       for r in runs for run in [session.get(Run, r)]}
        first = session.get(Run, 1)
        when, commit = first.started_at, (first.provenance or {}).get("git_commit") or "unknown"
    lines = [
        f"Measured {when:%Y-%m-%d %H:%M} UTC at {commit[:7]} on this machine's CPU ({os.cpu_count()} cores), "
        f"{DISTURBED if args.disturb else condition}; the quick suite's eager cells of six benchmarks, "
        f"runs 1-{len(runs)} back to back, the ways taking turns.",
        "",
        f"| {args.ways} | runs | times changed (false) | times inconclusive | speed-ups | verdict flips | "
        "intervals overlap | median move | moved > 5% | speed-ups inconclusive | median half-width | paired | minutes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *[way_row(ways, way, tables, minutes, aa) for way in ways],
        "",
        f"A cell's median per call {' ÷ '.join(list(ways)[:2])} (runs 1 ÷ 2, {1 + n} ÷ {2 + n}; minutes apart): "
        f"{ratios[0][0]:.3f} and {ratios[1][0]:.3f} over all cells, {ratios[0][1]:.3f} and {ratios[1][1]:.3f} over "
        f"the fastest third.",
        "",
        "Where the speed-ups moved (bench_runner's rounds, each speed-up's per-round log ratio): "
        + "; ".join(f"{way}: a round ±{found[0]:.1%} from the next (median), and {found[1]:.0%} of speed-ups whose "
                    f"two runs differ beyond their rounds (5% where a run adds nothing)" if found else
                    f"{way}: no speed-up paired, so no round's ratio" for way, found in apart.items()) + ".",
    ]
    table = "\n".join(lines)
    print(table)
    flags = ("" if args.ways == "timing" else f" --ways {args.ways}") + (" --disturb" if args.disturb else "")
    section, what = SECTIONS[args.ways]
    write_section(DOC, f"{section}-{condition}", table,
                  heading=f"## {what}, {condition}\n\n`python benchmarks/speedup_aa.py{flags}`:")
    return 0


if __name__ == "__main__":
    sys.exit(main())
