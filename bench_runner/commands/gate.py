"""`gate RUN`: RUN's cells against the same cells' recent history on the same machine; exit 1 on a
significant regression beyond the threshold, for CI. The statistics are `compare`'s: the earlier
runs' rounds together form the "before" side, so their run-to-run spread widens the interval."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from results_db import Run, queries

from .. import stats
from . import UsageError, db_flag, existing_db, threshold_flag


def add_parser(verbs) -> None:
    p = verbs.add_parser(
        "gate", help="fail (exit 1) when a run regressed against its recent history, for CI",
        description="Compare RUN's cells with the same cells in the N runs before it on the same machine: the "
                    "earlier runs' rounds pooled as the baseline, the ratio of medians with a 95%% interval, "
                    "Benjamini–Hochberg across the cells. Exit 1 when any cell is a regression beyond the "
                    "threshold, 0 otherwise; 2 on bad input.")
    p.add_argument("run", metavar="RUN", type=_run_id, help="the run to judge")
    p.add_argument("--against", type=_count, default=5, metavar="N",
                   help="how many earlier runs of each cell form the baseline (default: 5)")
    threshold_flag(p)
    p.add_argument("--markdown", metavar="FILE", help="also write a summary fit for a pull-request comment")
    db_flag(p)


def _run_id(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a run id")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a positive number of runs")
    return int(text)


def baseline_frame(history: pd.DataFrame, run_id: int, started_at, against: int) -> pd.DataFrame:
    """Per cell, the samples of its `against` latest runs before `run_id`, each run's rounds kept
    apart (round labels offset per run), in samples_frame's shape."""
    earlier = history[(history["run_id"] != run_id) & (history["started_at"] < started_at)]
    rows = []
    for key, cell in earlier.groupby(queries.CELL_COLUMNS, sort=False):
        samples, labels, offset = [], [], 0
        for r in cell.tail(against).itertuples():
            rounds = stats.split_rounds(r.samples, r.sample_rounds)
            for k, values in enumerate(rounds):
                samples += list(values)
                labels += [offset + k] * len(values)
            offset += len(rounds)
        rows.append({**dict(zip(queries.CELL_COLUMNS, key)), "samples": samples, "sample_rounds": labels,
                     "runs": min(len(cell), against)})
    return pd.DataFrame(rows, columns=[*queries.CELL_COLUMNS, "samples", "sample_rounds", "runs"])


def markdown(table: pd.DataFrame, run_id: int, against: int, threshold: float) -> str:
    lines = [f"### Hadamard Bench: run {run_id} against up to {against} earlier runs", "",
             "| benchmark | cells | geometric mean (this ÷ before) | regressions |", "| --- | --- | --- | --- |"]
    for bench, group in table.groupby("benchmark"):
        lines.append(f"| {bench} | {len(group)} | {stats.geomean(group['ratio']):.3f}× | "
                     f"{int((group['verdict'] == 'regression').sum())} |")
    regressed = table[table["verdict"] == "regression"].sort_values("ratio", ascending=False)
    if regressed.empty:
        lines += ["", f"No cell regressed beyond {threshold:.0%}."]
    else:
        lines += ["", f"**{len(regressed)} cells regressed** beyond {threshold:.0%}:", "",
                  "| cell | ratio | 95% interval | p (adjusted) |", "| --- | --- | --- | --- |"]
        for r in regressed.itertuples():
            lines.append(f"| {r.benchmark} · {r.method} · {r.backend} · {r.device} · {r.dtype} · {r.mode} · {r.size} "
                         f"| {r.ratio:.3f}× | [{r.ci_low:.3f}, {r.ci_high:.3f}] | {r.p_adjusted:.2g} |")
    return "\n".join(lines) + "\n"


def run(args) -> int:
    sessions = existing_db(args.db, "gate")
    with sessions() as session:
        run_row = session.get(Run, args.run)
        if run_row is None:
            raise UsageError(f"bench_runner gate: no run {args.run} in this database")
        machine, started_at = run_row.machine.label, run_row.started_at
        mine = queries.samples_frame(session, run_id=args.run)
        history = queries.history_frame(session, machine=machine)
    if mine.empty:
        raise UsageError(f"bench_runner gate: run {args.run} has no `ok` cells to judge")
    baseline = baseline_frame(history, args.run, started_at, args.against)
    table = stats.comparison_table(baseline, mine, args.threshold)
    if table.empty:
        print(f"run {args.run}: none of its cells was measured before on {machine}; nothing to judge")
        return 0
    counts = table["verdict"].value_counts()
    for bench, group in table.groupby("benchmark"):
        print(f"{bench}: geometric mean {stats.geomean(group['ratio']):.3f}× over {len(group)} cells")
    print("verdicts: " + ", ".join(f"{int(counts.get(v, 0))} {v}" for v in
                                   (*stats.RUN_WORDS, stats.NO_CHANGE, stats.INCONCLUSIVE)))
    regressed = table[table["verdict"] == "regression"]
    for r in regressed.itertuples():
        print(f"regression: {r.benchmark}/{r.method}/{r.backend} {r.size}: {r.ratio:.3f}× "
              f"[{r.ci_low:.3f}, {r.ci_high:.3f}]")
    if args.markdown:
        Path(args.markdown).write_text(markdown(table, args.run, args.against, args.threshold), encoding="utf-8")
    return 1 if len(regressed) else 0
