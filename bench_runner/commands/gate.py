"""`gate RUN`: RUN's cells against the same cells' recent history on the same hardware fingerprint;
exit 1 on a significant regression beyond the cell's floor (the threshold, or the cell's drift
between runs where `noise` measured a larger one), on a cell that failed where its history
was `ok` (comparison.broken_cells), or on one that failed with no result in that history at all
(comparison.new_failures: a method added since whose kernel is wrong), that no mark explains, for CI. The
statistics are `compare`'s: the earlier runs' rounds together form the "before" side, so their
run-to-run spread widens the interval. A mark on an earlier run starts the baseline there; a mark
on RUN itself explains its changes (an `expected` one) or leaves nothing to judge (a new start).
The history is of plain runs: an `ab` session's sides took turns on huge pages, so their times are
not a plain run's, and a side given as RUN is judged as its session, head against base, paired."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from hadamard_bench.vocabulary import counted

from . import UsageError, existing_db
from .flags import db_flag, out_file, out_path, positive_int, threshold_flag

if TYPE_CHECKING:
    import pandas as pd


def add_parser(verbs) -> None:
    p = verbs.add_parser(
        "gate", help="fail (exit 1) when a run regressed against its recent history, for CI",
        description="Compare RUN's cells with the same cells in the N runs before it on the same hardware "
                    "fingerprint: the earlier runs' rounds pooled as the baseline, the ratio of medians with a 95% "
                    "interval, Benjamini–Hochberg across the cells. Marks (`bench_runner mark`) are respected: the "
                    "baseline starts at the latest marked run, and a regression at a run marked `expected` is "
                    "reported but does not fail. `ab` sessions are not part of the history; given one of their "
                    "runs, gate judges the session: its head side against its base side, paired. Exit 1 when any "
                    "other cell is a regression beyond the threshold, or failed in RUN (a failed check, an error, "
                    "out of memory, a crash, a timeout) where its baseline was `ok` or where the machine's history "
                    "has no result of it at all (a method added since); 0 otherwise; 2 on bad input.")
    p.add_argument("run", metavar="RUN", type=positive_int("run id"), help="the run to judge")
    p.add_argument("--against", type=positive_int("positive number of runs"), default=5, metavar="N",
                   help="how many earlier runs of each cell form the baseline (default: 5)")
    threshold_flag(p)
    p.add_argument("--markdown", type=out_file(), metavar="FILE",
                   help="also write a summary fit for a pull-request comment")
    db_flag(p)


def baseline_rows(history_rows: pd.DataFrame, run_id: int, started_at, against: int,
                  marks: pd.DataFrame | None = None) -> pd.DataFrame:
    """The history rows a baseline is made of: per cell, its `against` latest runs before
    `run_id`, none before the latest earlier run a mark covers."""
    import pandas as pd
    from results_db import queries

    from .. import history

    earlier = history_rows[(history_rows["run_id"] != run_id) & (history_rows["started_at"] < started_at)]
    marked = marks[marks["started_at"] < started_at] if marks is not None else pd.DataFrame()
    kept = []
    for key, cell in earlier.groupby(queries.CELL_COLUMNS, sort=False):
        starts = [m.started_at for m in history.covering(marked, dict(zip(queries.CELL_COLUMNS, key)))]
        if starts:
            cell = cell[cell["started_at"] >= max(starts)]
        kept.append(cell.tail(against))
    return pd.concat(kept) if kept else earlier.iloc[0:0]


def baseline_frame(chosen: pd.DataFrame) -> pd.DataFrame:
    """Per cell, the samples of the history rows baseline_rows chose, each run's rounds kept apart
    (round labels offset per run), and how many of their rounds failed, in samples_frame's shape."""
    import pandas as pd
    from results_db import queries

    from .. import stats

    rows = []
    for key, cell in chosen.groupby(queries.CELL_COLUMNS, sort=False):
        cell_key = dict(zip(queries.CELL_COLUMNS, key))
        samples, labels, offset = [], [], 0
        for r in cell.itertuples():
            rounds = stats.split_rounds(r.samples, r.sample_rounds)
            for k, values in enumerate(rounds):
                samples += list(values)
                labels += [offset + k] * len(values)
            offset += len(rounds)
        if samples:
            rows.append({**cell_key, "samples": samples, "sample_rounds": labels, "runs": len(cell),
                         "failed_rounds": cell["failed_rounds"].fillna(0).sum() if "failed_rounds" in cell else 0})
    return pd.DataFrame(rows, columns=[*queries.CELL_COLUMNS, "samples", "sample_rounds", "runs", "failed_rounds"])


def judged(cells: pd.DataFrame, marks: pd.DataFrame, run_id: int) -> pd.DataFrame:
    """The rows of `cells` (RUN's, `ok` or failed) that no `new_distribution` mark on RUN covers:
    a run marked as a new start has nothing before it to be judged against."""
    from .. import history

    return cells[[not history.covering(marks, history.cell_of(r), "new_distribution", run_id)
                  for r in cells.itertuples()]] if len(cells) else cells


def explained(table: pd.DataFrame, marks: pd.DataFrame, run_id: int) -> pd.Series:
    """Per compared cell, the note of an `expected` mark on `run_id` that covers it ("" if none)."""
    import pandas as pd

    from .. import history

    out = ["; ".join(m.note or "expected" for m in history.covering(marks, history.cell_of(r), "expected", run_id))
           for r in table.itertuples()]
    return pd.Series(out, index=table.index, dtype=object)


def markdown(table: pd.DataFrame, title: str, threshold: float, floor_note: str = "", busy: str | None = None,
             failed: Sequence[str] = (), controls: str | None = None) -> str:
    """The judgement for a pull request's comment; `failed`: the sentences of wording.broken_note
    and wording.new_failures_note that were said; `controls`: wording.controls_note's."""
    from .. import stats

    lines = [f"### Hadamard Bench: {title}", "",
             "| benchmark | cells | geometric mean (this ÷ before) | regressions |", "| --- | --- | --- | --- |"]
    for bench, group in table.groupby("benchmark"):
        lines.append(f"| {bench} | {len(group)} | {stats.geomean(group['ratio']):.3f}× | "
                     f"{int((group['verdict'] == 'regression').sum())} |")
    expected = table[(table["verdict"] == "regression") & (table["explained_by"] != "")]
    regressed = table[(table["verdict"] == "regression") & (table["explained_by"] == "")].sort_values(
        "ratio", ascending=False)
    if len(expected):
        lines += ["", f"{counted(len(expected), 'regression')} {'is' if len(expected) == 1 else 'are'} "
                  "marked expected: "
                  + "; ".join(sorted(set(expected["explained_by"])))]
    if regressed.empty:
        lines += ["", f"No cell regressed beyond its floor ({threshold:.0%}, or its measured drift where larger)."]
    else:
        whose = "its" if len(regressed) == 1 else "their"
        lines += ["", f"**{counted(len(regressed), 'cell')} regressed** beyond {whose} floor:", "",
                  "| cell | ratio | 95% interval | floor | p (adjusted) |", "| --- | --- | --- | --- | --- |"]
        for r in regressed.itertuples():
            lines.append(f"| {r.benchmark} · {r.method} · {r.backend} · {r.device} · {r.dtype} · {r.mode} · {r.size} "
                         f"| {r.ratio:.3f}× | [{r.ci_low:.3f}, {r.ci_high:.3f}] | {r.floor:.0%} | {r.p_adjusted:.2g} |")
    lines += [line for said in failed for line in ("", f"**Failed**: {said}.")]
    for said in (floor_note, busy, controls):
        if said:
            lines += ["", said[0].upper() + said[1:] + "."]
    return "\n".join(lines) + "\n"


def session_table(session, run_row, threshold: float) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, int, int]:
    """An `ab` side judged as its session: the head side's cells against the base side's, paired
    cycle by cycle (so at the threshold), as `ab` judged them, the cells `ok` on the base side
    that failed on the head side (comparison.broken_cells) and those that failed on the head side
    with no result on the base side (comparison.new_failures). Returns (table, broken, new, base, head)."""
    from results_db import queries

    from .. import comparison

    # The base side's run is started first (ab.start_runs), so it has the lower id.
    base, head = sorted((run_row.id, run_row.paired_with))
    before, after = (queries.samples_frame(session, run_id=run_id) for run_id in (base, head))
    table = comparison.comparison_table(before, after, threshold)
    # A cell the head fixed fails nothing, so only what broke and what failed anew are judged.
    failed = (queries.failures_frame(session, run_id) for run_id in (base, head))
    changes = comparison.cell_changes(before, after, *failed)
    return table, changes.broken, changes.new, base, head


def run(args) -> int:
    import pandas as pd
    from results_db import Run, history_queries, queries

    from .. import comparison, history, wording

    sessions = existing_db(args.db)
    with sessions() as session:
        run_row = session.get(Run, args.run)
        if run_row is None:
            raise UsageError(f"no run {args.run} in this database")
        if not run_row.plain:
            table, broken, new, base, head = session_table(session, run_row, args.threshold)
            if table.empty and broken.empty and new.empty:
                raise UsageError(f"the `ab` session of runs {base} and {head} has no cell "
                                 f"`ok` on both sides to judge")
            print(f"run {args.run} is a side of an `ab` session: run {head} (head) judged against run {base} "
                  f"(base), the two having taken turns, not against the machine's history")
            table["explained_by"], broken["explained_by"], new["explained_by"] = "", "", ""
            return verdict(table, args, f"run {head} against run {base}, taking turns in one `ab` session",
                           f"paired cells are judged at the threshold ({args.threshold:.0%}): their sides shared "
                           f"the machine's drift", {}, broken, new, (f"run {base}", f"run {head}"))
        fingerprint, label, started_at = run_row.machine.fingerprint, run_row.machine.label, run_row.started_at
        mine = queries.samples_frame(session, run_id=args.run)
        marks = history_queries.marks_frame(session, fingerprint)
        # Each cell's newest runs only: a mark can shorten them further, never reach past them.
        rows = history_queries.newest_before(session, fingerprint, started_at, args.against)
        floors = history_queries.noise_floors(session, fingerprint)
        chosen = baseline_rows(rows, args.run, started_at, args.against, marks)
        failed_here = history_queries.failed_before(session, fingerprint, started_at)
        before_runs = sorted({int(r) for r in chosen["run_id"]})
        states = queries.round_states(session, before_runs + [args.run])
        failed = queries.failures_frame(session, args.run)
    machine_drift = comparison.drift_ratios(states, before_runs, [args.run]) if not states.empty else {}
    if mine.empty and failed.empty:
        raise UsageError(f"run {args.run} has no `ok` or failed cells to judge")
    mine, failed = judged(mine, marks, args.run), judged(failed, marks, args.run)
    baseline = baseline_frame(chosen)
    broken = comparison.broken_cells(baseline, failed)
    # A cell failing with no result here before is a kernel broken from its start. On a machine
    # with no history yet every failure would be one (a size too large for it among them), and
    # there is nothing to judge against: none is named.
    new = comparison.new_failures(rows, failed_here, failed if len(rows) or len(failed_here) else None)
    table = comparison.comparison_table(baseline, mine, args.threshold, drift=history.drift_by_cell(floors),
                                        machine_drift=machine_drift) if len(mine) else pd.DataFrame()
    if table.empty and broken.empty and new.empty:
        print(f"run {args.run}: none of its cells has a history to judge against on {label}'s fingerprint "
              f"({fingerprint}); nothing to judge")
        return 0
    table["explained_by"] = explained(table, marks, args.run)
    broken["explained_by"] = explained(broken, marks, args.run)
    new["explained_by"] = explained(new, marks, args.run)
    controls = wording.controls_note(comparison.control_settings_differ(states, before_runs, [args.run])
                                     if not states.empty else [])
    return verdict(table, args, f"run {args.run} against up to {args.against} earlier runs",
                   wording.floor_note(table, args.threshold, floors, 1) if len(table) else "",
                   machine_drift, broken, new, ("the earlier runs", f"run {args.run}"),
                   wording.busy_caveat(states, {"the earlier runs": before_runs, f"run {args.run}": [args.run]}),
                   controls)


def verdict(table: pd.DataFrame, args, title: str, floor_note: str, machine_drift: dict, broken: pd.DataFrame,
            new: pd.DataFrame, names: tuple[str, str], busy: str | None = None, controls: str | None = None) -> int:
    """Print the judged table's summary, its regressions and its failed cells (and write
    --markdown); exit status 1 when a regression or a failed cell no `expected` mark explains is
    among them. `busy`: wording.busy_caveat's sentence for sides timed apart, said beside the
    floor. `broken`: comparison.broken_cells with `explained_by`, the cells `ok` on the side named
    names[0] that failed on the side named names[1]; `new`: comparison.new_failures with
    `explained_by`, those that failed on names[1] with no result on names[0]; the table may then
    be empty. `controls`: wording.controls_note, said after `busy`."""
    import pandas as pd

    from .. import comparison, stats, wording

    if table.empty:  # every cell failed: the sentences below read its columns all the same
        table = pd.DataFrame(columns=[*comparison.CELL, *stats.VERDICT_COLUMNS, "floor", "explained_by"])
    else:
        counts = table["verdict"].value_counts()
        for bench, group in table.groupby("benchmark"):
            print(f"{bench}: geometric mean {stats.geomean(group['ratio']):.3f}× over {counted(len(group), 'cell')}")
        print("verdicts: " + ", ".join(f"{int(counts.get(v, 0))} {v}" for v in
                                       (*stats.RUN_WORDS, stats.NO_CHANGE, stats.INCONCLUSIVE)))
        print(floor_note)
        for said in (busy, controls):
            if said:
                print(said)
        moved = wording.machine_moved_note(table)
        if moved:
            print(f"{moved}: {wording.drift_text(machine_drift)}")
    regressions = table[table["verdict"] == "regression"]
    for r in regressions.itertuples():
        why = f" (marked expected: {r.explained_by})" if r.explained_by else ""
        print(f"regression: {r.benchmark}/{r.method}/{r.backend} {r.size}: {r.ratio:.3f}× "
              f"[{r.ci_low:.3f}, {r.ci_high:.3f}]{why}")
    said = [wording.broken_note(broken, *names), wording.new_failures_note(new, *names)]
    for sentence in filter(None, said):
        print(sentence)
    for cells in (broken, new):
        for r in cells[cells["explained_by"] != ""].itertuples():
            print(f"marked expected: {wording.cell_name(r)}: {r.explained_by}")
    if args.markdown:
        out_path(args.markdown).write_text(markdown(table, title, args.threshold, floor_note, busy,
                                                    list(filter(None, said)), controls), encoding="utf-8")
    return 1 if any((cells["explained_by"] == "").any() for cells in (regressions, broken, new)) else 0
