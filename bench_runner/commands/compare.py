"""`compare BEFORE AFTER`: every cell measured in both, with the ratio of medians, its 95% CI,
an adjusted p-value and a verdict (bench_runner.stats) at each cell's floor: the threshold, or
the cell's drift between runs where `noise` measured a larger one; below them, the cells `ok` in
BEFORE that failed in AFTER (and those fixed the other way), and those that failed in AFTER
with no result in BEFORE; exit 1 on a regression or a cell that failed when asked."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from hadamard_bench.vocabulary import STATISTICS, counted

from .. import defaults
from . import PROG, UsageError, existing_db
from .flags import db_flag, fail_on_regression_flag, threshold_flag

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.orm import Session


def add_parser(verbs) -> None:
    p = verbs.add_parser(
        "compare", help="two runs or two machines cell by cell, with confidence intervals and verdicts",
        description="Compare every cell measured in both BEFORE and AFTER: ratio of medians (after ÷ before) "
                    "with a 95% interval from a hierarchical bootstrap (rounds, then samples), a Mann–Whitney U "
                    "p-value adjusted by Benjamini–Hochberg across the cells, and a verdict: regression, "
                    "improvement, no change (the whole 90% interval, columns eq_low and eq_high, within the "
                    "threshold: an equivalence test at 5%) or inconclusive. Two runs "
                    "of one machine are timed at different times: a cell whose drift between runs `noise` measured "
                    "larger than the threshold is judged at that drift instead (column `floor`). Cells that took "
                    "turns in one `ab` session are paired, and keep the threshold.")
    p.add_argument("before", metavar="BEFORE", help="a run id, or machine:LABEL for that machine's latest cells")
    p.add_argument("after", metavar="AFTER", help="a run id, or machine:LABEL")
    db_flag(p)
    threshold_flag(p)
    p.add_argument("--statistic", choices=list(STATISTICS), default="median",
                   help="what the ratio is taken of: the median (default), or the 10th percentile, which "
                        "reproduces better on shared or virtual machines, whose disturbances only add time")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    fail_on_regression_flag(p, "AFTER")


def side(session: Session, spec: str) -> tuple[pd.DataFrame, list[int], str]:
    """The cells of `spec` (a run id or machine:LABEL), the runs they come from, and a name."""
    from results_db import Run, queries

    if spec.startswith("machine:"):
        label = spec.removeprefix("machine:")
        frame = queries.samples_frame(session, machine=label)
        if frame.empty and queries.failures_frame(session, machine=label).empty:
            # Quoted: a label holds spaces and brackets ("vm (AMD EPYC)"), which the shell must keep together.
            known = ", ".join(f"'machine:{m}'" for m in sorted(queries.machines(session)["label"]))[:300] or "none"
            raise UsageError(f"no machine {label!r} with results (known: {known})")
        if queries.label_fingerprints(session, label) > 1:
            print(f"{PROG} compare: machines of different hardware are labelled {label!r}; its side holds "
                  f"the cells of the one measured last", file=sys.stderr)
        return frame, sorted(frame["run_id"].unique().tolist()), f"machine {label}"
    try:
        run_id = int(spec)
    except ValueError:
        raise UsageError(f"{spec[:60]!r} is neither a run id nor machine:LABEL") from None
    if session.get(Run, run_id) is None:
        raise UsageError(f"no run {run_id} in this database")
    return queries.samples_frame(session, run_id=run_id), [run_id], f"run {run_id}"


def failures(session: Session, spec: str) -> pd.DataFrame:
    """The failed cells of a side (results_db.queries.failures_frame): a run's, or a machine's
    cells whose newest measurement failed."""
    from results_db import queries

    if spec.startswith("machine:"):
        return queries.failures_frame(session, machine=spec.removeprefix("machine:"))
    return queries.failures_frame(session, int(spec))


def machine_change(session: Session, before_runs: list[int], after_runs: list[int],
                   names: tuple[str, str] = ("before", "after")
                   ) -> tuple[dict[str, float], str | None, list[int], str | None, str | None]:
    """How much the machine itself changed between the sides (their drift controls' ratio; none
    where the sides ran the controls under different settings), a caveat when either side was
    timed in a slow spell it could not wait out, the runs such a spell outlasted
    (comparison.runs_in_spells), a caveat when either side's rounds ran on a busy machine
    (wording.busy_caveat), and one when the controls' settings differ (wording.controls_note)."""
    from results_db import queries

    from .. import comparison, wording

    states = queries.round_states(session, before_runs + after_runs)
    if states.empty:
        return {}, None, [], None, None
    sides = dict(zip(names, (before_runs, after_runs)))  # one entry when a run is compared with itself
    return (comparison.drift_ratios(states, before_runs, after_runs), wording.settling_caveat(states, sides),
            comparison.runs_in_spells(states, before_runs + after_runs), wording.busy_caveat(states, sides),
            wording.controls_note(comparison.control_settings_differ(states, before_runs, after_runs)))


def summary_lines(table: pd.DataFrame, machine_drift: dict[str, float], caveat: str | None = None,
                  threshold: float = defaults.FLOOR, floor_note: str | None = None,
                  busy: str | None = None, look: tuple[int, int] | None = None,
                  controls: str | None = None) -> list[str]:
    from .. import stats, wording

    counts = table["verdict"].value_counts()
    lines = [f"geometric mean of after ÷ before, {bench}: {stats.geomean(group['ratio']):.3f}× over "
             f"{counted(len(group), 'cell')}"
             for bench, group in table.groupby("benchmark")]
    lines.append("verdicts: " + ", ".join(f"{int(counts.get(v, 0))} {v}" for v in
                                          (*stats.RUN_WORDS, stats.NO_CHANGE, stats.INCONCLUSIVE)))
    if floor_note:
        lines.append(floor_note)
    for note in (wording.inconclusive_note(table, threshold), wording.look_note(table, look)):
        if note:
            lines.append(note)
    if machine_drift:
        lines.append("machine drift (drift controls, after ÷ before): " + wording.drift_text(machine_drift))
    if controls:
        lines.append(controls)
    moved = wording.machine_moved_note(table)
    if moved:
        lines.append(f"{moved}; compare runs the machine measured alike, or time both versions in one session "
                     f"with `ab`")
    if caveat:
        lines.append(caveat)
    if busy:
        lines.append(busy)
    held = int((table["unsettled"] != "").sum()) if "unsettled" in table else 0
    if held:
        lines.append(f"{counted(held, 'cell')} {'was' if held == 1 else 'were'} measured in a slow spell on a side "
                     f"(column `unsettled`: rounds timed "
                     f"unsettled, or a run the spell outlasted): a regression (improvement) there is held "
                     f"inconclusive when the after (before) side was, since a spell only adds time")
    if (table["rounds"] < 2).any():
        one = int((table["rounds"] < 2).sum())
        lines.append(f"{counted(one, 'cell')} {'has' if one == 1 else 'have'} one round on a side: "
                     f"{'its interval describes' if one == 1 else 'their intervals describe'} one process and may "
                     f"not reproduce")
    return lines


# The json's key for each field of comparison.CellChanges (a new failure is `failed_new` there).
CHANGES_IN_JSON = {"broken": "broken", "fixed": "fixed", "failed_new": "new", "only_before": "only_before",
                   "only_after": "only_after"}


def report(table: pd.DataFrame, fmt: str, before_name: str, after_name: str, threshold: float,
           statistic: str = "median", machine_drift: dict | None = None, caveat: str | None = None,
           floor_note: str | None = None, busy: str | None = None, changes=None,
           look: tuple[int, int] | None = None, controls: str | None = None) -> None:
    """A comparison table on standard output as `--format` asks: table, csv or json. `busy`
    (wording.busy_caveat) and `machine_drift` are said only where some cell was compared unpaired:
    cells that took turns shared whatever kept the machine busy, and the drift controls of an `ab`
    session's two sides, each timed in its own process as a round began, are no move of the machine.
    `changes` (comparison.CellChanges: the cells broken, fixed, failed anew, or `ok` on one side
    only) are said below the table, on standard error beside a csv, and in the json's `broken`,
    `fixed`, `failed_new`, `only_before` and `only_after`; the table may then be empty. `look`: an
    `ab` session's look (wording.look_note); `controls`: wording.controls_note, where the sides
    timed their drift controls differently."""
    from .. import comparison, stats, wording

    apart = comparison.timed_apart(table)
    machine_drift = (machine_drift or {}) if apart else {}
    busy = busy if apart else None
    said, listed = "", dict.fromkeys(CHANGES_IN_JSON, [])
    if changes is not None:
        said = "\n".join(sentence for _, sentence in wording.change_notes(changes, before_name, after_name))
        listed = {key: json.loads(getattr(changes, field).to_json(orient="records"))
                  for key, field in CHANGES_IN_JSON.items()}
    if fmt == "csv":
        if not table.empty:
            table.to_csv(sys.stdout, index=False)
        if said:
            print(said, file=sys.stderr)
    elif fmt == "json":
        print(json.dumps({"before": before_name, "after": after_name, "threshold": threshold,
                          "statistic": statistic, "floor_note": floor_note,
                          "machine_drift": machine_drift, "controls_note": controls, "settling_caveat": caveat,
                          "busy_caveat": busy,
                          "cells": json.loads(table.to_json(orient="records")) if not table.empty else [],
                          **listed}, indent=1))
    elif table.empty:
        print(said)
    else:
        shown = table.assign(**{c: table[c].map(lambda v: f"{v:.3f}") for c in ("ratio", "ci_low", "ci_high")},
                             floor=table["floor"].map(lambda v: f"{v:.0%}"),
                             p_adjusted=table["p_adjusted"].map(lambda v: f"{v:.2g}"),
                             before_s=table["before_s"].map(lambda v: f"{v:.3g}"),
                             after_s=table["after_s"].map(lambda v: f"{v:.3g}")
                             ).drop(columns=["p_value", "eq_low", "eq_high", *stats.ROUND_COLUMNS],
                                    errors="ignore")  # in csv and json; the table stays narrow
        if (shown["unsettled"] == "").all():  # the usual case: say nothing of it
            shown = shown.drop(columns=["unsettled"])
        if not shown["machine_moved"].any():
            shown = shown.drop(columns=["machine_moved"])
        if (table["floor"] == threshold).all():  # no measured floor raised any cell's: the title says it
            shown = shown.drop(columns=["floor"])
        print(f"{after_name} against {before_name}, ratio of {statistic}s, threshold {threshold:.0%}")
        print(shown.to_string(index=False))
        print()
        print("\n".join(summary_lines(table, machine_drift, caveat, threshold, floor_note, busy, look, controls)))
        if said:
            print(said)


def run(args) -> int:
    from results_db import Run, queries
    from sqlalchemy import select

    from .. import comparison, history, stats, wording

    sessions = existing_db(args.db)
    with sessions() as session:
        before, before_runs, before_name = side(session, args.before)
        after, after_runs, after_name = side(session, args.after)
        if before_runs == after_runs:
            raise UsageError(f"{before_name} and {after_name} are the same measurements "
                             f"(run {', '.join(map(str, before_runs))}); compare two different runs or machines")
        machine_drift, caveat, spelled, busy, controls = machine_change(session, before_runs, after_runs,
                                                                        (before_name, after_name))
        drift, floors, fingerprints = history.measured_drift(session, before_runs + after_runs)
        rows = session.scalars(select(Run).where(Run.id.in_(before_runs + after_runs))).all()
        paired_with, rounds = {r.id: r.paired_with for r in rows}, {r.id: r.rounds for r in rows}
        timed_apart = wording.ab_side_note(before_runs, after_runs, paired_with)
        look = wording.session_look(before_runs, after_runs, paired_with, rounds, queries.session_looks(session))
        before_failed, after_failed = failures(session, args.before), failures(session, args.after)
        changes = comparison.cell_changes(before, after, before_failed, after_failed)
    table = comparison.comparison_table(before, after, args.threshold, statistic=args.statistic, spelled_runs=spelled,
                                        drift=drift, machine_drift=machine_drift)
    if table.empty and (changes.failed() or len(changes.fixed)):  # nothing to time against, but something to say
        report(table, args.format, before_name, after_name, args.threshold, changes=changes)
        return 1 if args.fail_on_regression and changes.failed() else 0
    if table.empty:
        same = set(before.get("result_id", ())) & set(after.get("result_id", ()))
        why = (" but the same stored ones" if same else f": {counted(len(changes.only_before), 'cell')} `ok` in "
               f"{before_name} alone, {len(changes.only_after)} in {after_name} alone")
        raise UsageError(f"no cell has `ok` results in both {before_name} and {after_name}{why}")
    table = comparison.in_cell_order(table)
    report(table, args.format, before_name, after_name, args.threshold, args.statistic, machine_drift, caveat,
           wording.floor_note(table, args.threshold, floors, fingerprints), busy, changes, look, controls)
    if timed_apart:  # below the table, or on stderr where stdout is data
        print(timed_apart, file=sys.stdout if args.format == "table" else sys.stderr)
    # A cell that fails after with nothing before is a kernel broken from its start: as bad as one that broke.
    regressed = (table["verdict"] == stats.RUN_WORDS[0]).any() or changes.failed()
    return 1 if args.fail_on_regression and regressed else 0
