"""The sentences that explain a comparison, for `compare`, `run` and the dashboard alike: the
numbers come from bench_runner.stats and bench_runner.comparison, the words from here."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from hadamard_bench.vocabulary import CELL_KEY, counted

from .comparison import CONTROLS_MOVED, interval_half_width, outlasted, timed_apart, unsettled_share
from .defaults import FLOOR
from .machine_state import busy_reasons
from .stats import INCONCLUSIVE, ROUNDS_APART


def inconclusive_note(table: pd.DataFrame, floor: float = FLOOR) -> str | None:
    """Why the `inconclusive` cells of a comparison are, in its own figures: a cell is `no change`
    only when its change and its 90% interval's half-width fit inside the floor together, so the
    median half-width says how small a change must be to be told from none (None when no cell is
    inconclusive). The same sentence for `compare` and the Diff page."""
    count = int((table["verdict"] == INCONCLUSIVE).sum())
    if not count:
        return None
    width = float(interval_half_width(table, "eq_low", "eq_high").median())
    floors = table["floor"].dropna() if "floor" in table else pd.Series(dtype=float)
    if len(floors) and floors.max() > floors.min():  # measured floors: each cell has its own
        floor = float(floors.median())
        within = f"its floor (here ±{floors.min():.0%} to ±{floors.max():.0%}, a median ±{floor:.0%})"
    else:
        within = f"±{floor:.0%}"
    text = (f"{count} of {len(table)} cells are inconclusive: a cell is `no change` only when its whole 90% "
            f"interval lies within {within}")
    if not np.isfinite(width):
        return text + "; these cells have no interval (too few samples)"
    room = floor - width
    text += (f", and the intervals here are a median ±{width:.1%} wide, so only a measured change under about "
             f"{room:.1%} can be told from none" if room > 0.001 else
             f", and the intervals here are a median ±{width:.1%} wide: as wide as the floor")
    text += ". More rounds on both sides narrow the intervals; a wider floor (`--threshold`) asks less of them"
    if timed_apart(table):  # the machine moves between runs by more than their rounds say (docs/measurement.md)
        text += "; two versions of the code are told apart more surely by `ab`, which times them in turns"
    apart = rounds_apart_note(table)
    return f"{text}. {apart}" if apart else text


def rounds_apart_note(table: pd.DataFrame, named: int = 3, low: str = "round_low", high: str = "round_high",
                      what: str = "ratio", of: str = "cells") -> str | None:
    """A sentence on the inconclusive paired cells whose rounds lie ROUNDS_APART times or more further
    apart than their cycles explain (stats.rounds_apart), naming the first `named` with their rounds'
    lowest and highest `what` (columns `low`, `high`: a comparison's ratios, or the Compare page's
    speed-ups; `of`, what the table's rows are): their intervals narrow with more rounds only, and
    the reason lies outside the code. None when there are none, or the table has no such column."""
    if "rounds_apart" not in table:
        return None
    apart = table[(table["verdict"] == INCONCLUSIVE) & (table["rounds_apart"] >= ROUNDS_APART)]
    if apart.empty:
        return None
    listed = "; ".join(f"{cell_name(row)}: {getattr(row, low):.2f} to {getattr(row, high):.2f}"
                       for row in apart.head(named).itertuples())
    more = f"; and {len(apart) - named} more" if len(apart) > named else ""
    return (f"{len(apart)} of the inconclusive {of} took rounds that read different {what}s, "
            f"{ROUNDS_APART:g} times or more further apart than their cycles explain (column `rounds_apart`; "
            f"the rounds' lowest and highest {what}: {listed}{more}): something that held for a whole round "
            f"(a side's process, other work on the cores) set the {what}. More rounds narrow such an interval as "
            f"the square root of their number, longer rounds not at all; `doctor` names what else runs")


def settling_caveat(states: pd.DataFrame, sides: dict[str, Sequence[int]]) -> str | None:
    """A sentence when a side timed more than UNSETTLED_WARN of its cell-rounds unsettled: its
    cells of small threaded steps may have run up to 1.7× slower for the machine's sake, over
    stretches longer than the rounds, which the intervals cannot see. None otherwise."""
    counts = {name: unsettled_share(states, runs) for name, runs in sides.items()}
    if not any(outlasted(share) for share in counts.values()):
        return None
    told = ", ".join(f"{name} {bad} of {total}" for name, (bad, total) in counts.items() if total)
    return (f"cell-rounds timed while the cores were slow to work together (unsettled): {told}; a change in a "
            f"threaded CPU cell may then be the machine's, not the code's: measure again before trusting it")


def busy_caveat(states: pd.DataFrame, sides: dict[str, Sequence[int]]) -> str | None:
    """A sentence when rounds of a side ran while the machine was busy (machine_state.busy_reasons:
    other processes or the hypervisor took a large share of the CPUs), for two sides timed apart:
    a neighbour slows a small threaded call for whole rounds, as much as 2x on the 2-vCPU VM, which
    neither the drift controls nor a floor measured in a quieter hour need see. None otherwise."""
    if states.empty:
        return None
    told = []
    for name, runs in sides.items():
        rounds = states[states["run_id"].isin(list(runs))].to_dict("records")
        busy = [r for r in rounds if busy_reasons(r)]
        if busy:
            worst = max(np.nanmax([r.get("other_cpu_share") or 0.0, r.get("steal_share") or 0.0]) for r in busy)
            told.append(f"{name} {len(busy)} of {len(rounds)}, up to {worst:.0%}")
    if not told:
        return None
    return (f"rounds timed while other processes or the hypervisor took a large share of the CPUs: "
            f"{', '.join(told)}; a change between sides timed apart may then be the machine's, not the code's: "
            f"measure again on a quiet machine, or time both versions in turns with `ab`")


def ab_side_note(before_runs: Sequence[int], after_runs: Sequence[int], paired_with: dict) -> str | None:
    """A sentence when a side of a comparison holds a run of an `ab` session (`paired_with`: run id →
    its other side, None for a plain run) and the other side is not that run's pair: a side is
    timed in turns on huge pages, so its times are not a plain run's. For `compare` and Diff."""
    runs = [*before_runs, *after_runs]
    sides = [r for r in runs if paired_with.get(r) is not None and not pd.isna(paired_with[r])]
    if not sides or (len(runs) == 2 and paired_with.get(runs[0]) == runs[1]):
        return None
    return (f"run {sides[0]} is a side of an `ab` session, timed in turns with run {int(paired_with[sides[0]])} "
            f"(on huge pages, unless its environment said otherwise): its times are not a plain run's, so part of "
            f"a difference here may be how it was timed")


def look_note(table: pd.DataFrame, look: tuple[int, int] | None) -> str | None:
    """Why some cells of an `ab` session have fewer rounds than the session (`look`: after which
    round of how many it looked at its cells, bench_runner.ab.look_round): those it decided there
    were timed no further. None when no cell stopped there."""
    if look is None or "rounds" not in table:
        return None
    at, of = look
    decided = int((table["rounds"] == at).sum()) if at < of else 0
    if not decided:
        return None
    return (f"{counted(decided, 'cell')} {'was' if decided == 1 else 'were'} timed for {at} of the session's {of} "
            f"rounds: the session looked at its cells after round {at}, at stricter levels, and timed no further "
            f"those whose verdict was known; their intervals are from those rounds (`ab --all-rounds` times every "
            f"round)")


def session_look(before_runs: Sequence[int], after_runs: Sequence[int], paired_with: dict, rounds: dict,
                 looks: dict) -> tuple[int, int] | None:
    """(round, rounds) of an `ab` session's look (look_note) when the two sides are its two runs
    (`paired_with` and `rounds`: by run id; `looks`: results_db.queries.session_looks); else None."""
    if len(before_runs) != 1 or len(after_runs) != 1:
        return None
    run, other = before_runs[0], after_runs[0]
    if paired_with.get(run) != other or not looks.get(run):
        return None
    return int(looks[run]), int(rounds[run])


def drift_text(ratios: dict[str, float]) -> str:
    """`cpu copy 0.982×, cpu matmul 1.003×`."""
    return ", ".join(f"{name} {ratio:.3f}×" for name, ratio in sorted(ratios.items()))


def odd_runs_note(odd: dict[int, dict[str, float]], kept: Sequence[int]) -> str | None:
    """Which runs `noise` left out (comparison.odd_runs) and why, in one sentence; None for none."""
    if not odd:
        return None
    said = "; ".join(f"run {run} ({drift_text(ratios)})" for run, ratios in sorted(odd.items()))
    return (f"Left out {said}: {'its' if len(odd) == 1 else 'their'} drift controls read that many times the runs' "
            f"median, the machine running otherwise than in runs {', '.join(map(str, sorted(kept)))}, and the floors "
            "would count the difference as drift. `compare` holds a change between runs that far apart within the "
            "controls' move instead.")


def control_spread_note(spread: dict[str, float], bound: float = CONTROLS_MOVED) -> str | None:
    """What `noise` says of the machine across its runs (comparison.control_spread): the spread
    of its drift controls and, where one moved by more than `bound`, that the floors include the
    move. None when no control was recorded."""
    if not spread:
        return None
    said = f"the drift controls across these runs, largest ÷ smallest run median: {drift_text(spread)}"
    if max(spread.values()) <= bound:
        return said
    return (said + f"; the machine itself moved between the runs by more than {bound - 1:.0%}, and the floors "
            "count that move as drift: a cell's change up to its floor then reads as none. If this is not how "
            "the machine usually runs, take the floors again in a steadier stretch (`noise --from` runs "
            "whose controls agree)")


def controls_note(differ: Sequence[str]) -> str | None:
    """A sentence where the two sides ran their drift controls under different settings
    (comparison.control_settings_differ): the machine's own move is then unknown, and held nothing.
    None where they agree."""
    if not differ:
        return None
    return (f"the drift controls ran under different settings on the two sides ({'; '.join(differ)}): they time "
            f"those as well as the machine, so the machine's own move between the sides is not known and no "
            f"change was held for it")


def machine_moved_note(table: pd.DataFrame) -> str | None:
    """How many cells' changes comparison.hold_machine_moved held `inconclusive`, and why; None
    when it held none. The same sentence for `compare`, `gate` and the Diff page."""
    moved = int(table["machine_moved"].sum()) if "machine_moved" in table else 0
    if not moved:
        return None
    whose = "1 cell's change" if moved == 1 else f"{moved} cells' changes"
    return (f"{whose} held inconclusive: {'its interval does' if moved == 1 else 'their intervals do'} not clear "
            f"the machine's own move "
            f"between the two sides (its drift controls; column `machine_moved`)")


BROKEN_NAMED = 10  # a sentence names this many broken cells, then counts the rest


def cell_name(row) -> str:
    """`token_mixing/poly_sa/eager cpu float32 forward B=1 N=64 C=64 H=4`: one cell, in a sentence."""
    return f"{row.benchmark}/{row.method}/{row.backend} {row.device} {row.dtype} {row.mode} {row.size}"


def broken_note(broken: pd.DataFrame, before_name: str, after_name: str, fixed: bool = False) -> str | None:
    """A sentence naming the cells `ok` in `before_name` that failed in `after_name`
    (comparison.broken_cells: outright, or in some rounds), each with its status and the first
    line of its message; with `fixed`, the cells that failed in `before_name` and are `ok` in
    `after_name` (broken_cells with its sides swapped), which say nothing against the after side.
    None when there are none."""
    if broken.empty:
        return None
    n, one = counted(len(broken), "cell"), len(broken) == 1
    outright = int((broken["status"] != "ok").sum())  # the others failed in some of their rounds
    if not outright:  # each still has a ratio, from the rounds that ran
        said = (f"{n} that failed in some rounds of {before_name} {'is' if one else 'are'} `ok` in every round of "
                f"{after_name}" if fixed else f"{n} `ok` in every round of {before_name} failed in some rounds of "
                f"{after_name}, {'its' if one else 'their'} ratio from the rounds that ran")
        return said + ": " + failed_cells(broken)
    said = (f"{n} that failed in {before_name} {'is' if one else 'are'} `ok` in {after_name}" if fixed
            else f"{n} `ok` in {before_name} failed in {after_name}")
    if outright == len(broken):
        return said + f", so {'it has' if one else 'they have'} no ratio: " + failed_cells(broken)
    return said + ", those that failed outright with no ratio: " + failed_cells(broken)


def new_failures_note(failed: pd.DataFrame, before_name: str, after_name: str) -> str | None:
    """A sentence naming the cells that failed in `after_name` with neither an `ok` nor a failed
    result in `before_name` (comparison.new_failures), each with its status and message. None
    when there are none."""
    if failed.empty:
        return None
    one = len(failed) == 1
    return (f"{counted(len(failed), 'cell')} with no `ok` or failed result in {before_name} failed in "
            f"{after_name}, so {'it has' if one else 'they have'} no ratio: " + failed_cells(failed))


def change_notes(changes, before_name: str, after_name: str) -> list[tuple[str, str]]:
    """A comparison's comparison.CellChanges in sentences, each with its kind: `Failed` (the cells
    broken, then those that failed anew: a comparison fails on them), `Fixed`, and `One side only`
    (one sentence a side), in that order; what has no cells is left out."""
    names = before_name, after_name
    notes = [("Failed", broken_note(changes.broken, *names)), ("Failed", new_failures_note(changes.new, *names)),
             ("Fixed", broken_note(changes.fixed, *names, fixed=True))]
    for cells, (here, there) in ((changes.only_before, names), (changes.only_after, names[::-1])):
        if len(cells):
            notes.append(("One side only", f"{counted(len(cells), 'cell')} `ok` in {here} "
                          f"{'has' if len(cells) == 1 else 'have'} no `ok` or failed result in {there}, so no ratio: "
                          + _listed(cells, cell_name)))
    return [(kind, said) for kind, said in notes if said]


def failed_since_note(failed: pd.DataFrame) -> str | None:
    """For a page of machines' latest `ok` results: the cells whose newest measurement failed
    since (results_db.queries.failed_since_latest), whose figures there are older than their
    news, each with its status and message. None when there are none."""
    if failed.empty:
        return None
    one = len(failed) == 1
    return (f"{counted(len(failed), 'cell')} failed in {'its' if one else 'their'} newest measurement on "
            f"{', '.join(sorted(failed['machine'].unique()))}: the figures shown for {'it' if one else 'them'} are "
            f"{'its' if one else 'their'} last `ok` ones, older. " + failed_cells(failed)
            + ". The Diff page, between machines, names them too.")


def failed_cells(failed: pd.DataFrame) -> str:
    """`cell: status (the first line of its message); ...` for the first BROKEN_NAMED rows of
    `failed` (results_db.queries.failures_frame's columns), then how many more; for a cell `ok`
    in some rounds, `cell: 1 round failed (round 3: timeout (...))`."""
    def status(r) -> str:
        rounds = getattr(r, "failed_rounds", None)
        return f"{counted(int(rounds), 'round')} failed" if r.status == "ok" and pd.notna(rounds) else r.status

    return _listed(failed, lambda r: f"{cell_name(r)}: {status(r)}" + (
        f" ({str(r.message).splitlines()[0][:160]})" if isinstance(r.message, str) and r.message.strip() else ""))


def _listed(cells: pd.DataFrame, describe) -> str:
    """`describe(row)` of the first BROKEN_NAMED rows of `cells`, then how many more."""
    named = [describe(r) for r in cells.head(BROKEN_NAMED).itertuples()]
    more = len(cells) - len(named)
    return "; ".join(named) + (f"; and {more} more" if more else "")


def explain_verdicts(floor: float = FLOOR) -> str:
    """One paragraph for a page or a table footer: what each verdict means."""
    return (f"Ratio of medians with a 95% interval from a hierarchical bootstrap (rounds, then samples "
            f"within them). A change is called only when the whole interval lies beyond ±{floor:.0%} and a "
            f"Mann–Whitney U test stays significant after Benjamini–Hochberg across the cells compared; "
            f"`no change` when the whole 90% interval (`eq_low`, `eq_high`) lies within ±{floor:.0%}, an "
            f"equivalence test at 5%; `inconclusive` otherwise: measure again with more rounds to decide. "
            f"A regression (an improvement) is also held `inconclusive` when the after (before) side still "
            f"holds a round timed while the cores were slow to work together, or ran on a CPU in a run such a "
            f"spell outlasted, since a spell only adds time (column `unsettled`).")


def noise_summary(floors: pd.DataFrame) -> str:
    """A fingerprint's stored noise floors (results_db.history_queries.noise_floors), per benchmark:
    cells, the median and largest drift, and when and from which runs they were measured."""
    lines = []
    for bench, group in floors.groupby("benchmark"):
        worst = group.loc[group["drift"].idxmax()]
        lines.append(f"  {bench}: {counted(len(group), 'cell')}, drift median {group['drift'].median():.1%}, largest "
                     f"{worst['drift']:.1%} ({worst['method']}/{worst['backend']} {worst['size']})")
    runs = sorted({tuple(r) for r in floors["run_ids"]})
    when = pd.to_datetime(floors["measured_at"]).max()
    above = int((floors["drift"] > FLOOR).sum())
    lines.append(f"  {counted(len(floors), 'cell')}, {above} of them drifting more than the {FLOOR:.0%} "
                 f"threshold between "
                 f"runs; measured {when:%Y-%m-%d %H:%M} from runs " + "; ".join(", ".join(map(str, r)) for r in runs))
    return "\n".join(lines)


def floor_note(table: pd.DataFrame, threshold: float, floors: pd.DataFrame, fingerprints: int) -> str:
    """Which floor a comparison of runs judged its cells at (the `floor` column): the threshold,
    or each cell's measured drift where larger (`hadamard-bench noise`), and why."""
    apart = table[~table["paired"].astype(bool)] if "paired" in table else table
    if apart.empty:
        return f"floor: ±{threshold:.0%} for every cell: each pair of cells took turns, sharing the machine's drift"
    if fingerprints > 1:
        return (f"floor: ±{threshold:.0%}: the sides ran on different hardware, and a noise floor measured on one "
                f"machine says nothing of two")
    if floors.empty:
        return (f"floor: ±{threshold:.0%}: no noise floor is measured on this hardware, so a cell that drifts more "
                f"than that between runs may read as changed; `hadamard-bench noise --suite quick` measures one")
    raised = apart[apart["floor"] > threshold]
    when = pd.to_datetime(floors["measured_at"]).max()
    return (f"floor: each cell's drift between runs as measured on this hardware ({when:%Y-%m-%d}) where larger "
            f"than ±{threshold:.0%}: {len(raised)} of {len(apart)} cells timed apart were judged at more "
            + (f"(median ±{raised['floor'].median():.0%}, column `floor`)" if len(raised) else "(none drifted more)"))


def change_point_floor_note(cells: pd.DataFrame, floors: pd.DataFrame) -> str:
    """Which floor the change points of `cells` (frames with the cell key) were searched at: a
    step within ±FLOOR, or within the cell's measured drift between runs where larger, is none."""
    key = list(CELL_KEY)
    if floors.empty:
        return (f"a step is a change point beyond ±{FLOOR:.0%}; no noise floor is measured on this hardware "
                f"(`hadamard-bench noise` measures how far its runs drift apart, and steps within that are not called)")
    shown = cells[key].drop_duplicates().merge(floors, on=key)
    raised = shown[shown["drift"] > FLOOR]
    when = pd.to_datetime(floors["measured_at"]).max()
    return (f"a step is a change point beyond ±{FLOOR:.0%}, or beyond the cell's drift between runs as measured on "
            f"this hardware ({when:%Y-%m-%d}) where larger: {len(raised)} of these "
            f"{len(cells[key].drop_duplicates())} cells"
            + (f", a median ±{raised['drift'].median():.0%}" if len(raised) else ""))
