"""Comparing two sets of cells as tables: each cell's verdict from its samples (bench_runner.stats),
held inconclusive where a slow spell of the cores may explain it, and what the rounds' machine
states say of those spells and of the machine's drift. `compare`, `gate`, `ab`, the Diff page
and the benchmarks read comparisons through these; the sentences that explain them are in
bench_runner.wording. Torch-free (pandas and numpy), so the dashboard can import it."""

from __future__ import annotations

from typing import Collection, Iterable, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd

from hadamard_bench.vocabulary import CELL_KEY, size_order
from results_db.round_state import DRIFT_PREFIX, RETAKE, RETAKEN, SETTLE_UNSETTLED, TIMING_SETTINGS

from .defaults import FLOOR
from .stats import INCONCLUSIVE, ROUND_COLUMNS, RUN_WORDS, VERDICT_COLUMNS, compare_entries, drift_floors


CELL = list(CELL_KEY)  # what identifies a cell, as results_db stores it


def in_cell_order(frame: pd.DataFrame, then: Sequence[str] = ()) -> pd.DataFrame:
    """Rows sorted by cell, sizes by their numbers rather than as text (n=4096, n=65536,
    n=1048576), then by `then` (a history's runs, oldest first)."""
    def key(column: pd.Series) -> pd.Series:
        return column.map(size_order) if column.name == "size" else column
    return frame.sort_values([*CELL, *then], key=key, kind="stable")


def _unsettled(row: pd.Series, side: str) -> tuple[int, int]:
    """(rounds the side's cell was timed unsettled in, its rounds); (0, rounds) where not recorded."""
    labels = row[f"sample_rounds_{side}"]
    rounds = len(set(labels)) if labels is not None and len(labels) else 1
    count = row.get(f"unsettled_rounds_{side}")
    return (int(count) if count is not None and np.isfinite(count) else 0), rounds


def comparison_table(before: pd.DataFrame, after: pd.DataFrame, floor: float = FLOOR,
                     words: tuple[str, str] = RUN_WORDS, on: Sequence[str] = CELL,
                     statistic: str = "median", spelled_runs: Iterable[int] = (),
                     drift: Mapping[tuple, float] | None = None,
                     machine_drift: Mapping[str, float] | None = None) -> pd.DataFrame:
    """One row per cell in both frames (with `samples` and `sample_rounds` columns, as
    results_db.queries.samples_frame gives them), with before_s, after_s, VERDICT_COLUMNS,
    ROUND_COLUMNS (paired cells' rounds: stats.Comparison), `floor` (what the cell was judged at:
    max(floor, its measured `drift`, cell key tuple → drift from drift_table) for sides timed
    apart, `floor` for paired ones), `paired`,
    `unsettled`: which side was measured in a slow spell of its cores, if either, and
    `machine_moved`: whether its change was held inconclusive, its interval not clearing the
    machine's own move between the sides (`machine_drift`, the drift controls' after ÷ before:
    hold_machine_moved).

    A side was, for a cell, when the cell still holds a round timed unsettled (bench_runner.settle:
    one its run could not wait out), or when the cell ran on a CPU in one of
    `spelled_runs` (spelled_runs: runs a spell outlasted). Such a spell slows a whole stretch of
    the machine's time, the rounds the probe passed included (seen:
    docs/notes/2026-11-29-slow-spells-of-the-cores.md). A spell only adds time, so it can fake a regression when
    it slowed the after side and an improvement when it slowed the before side: such a verdict is
    held `inconclusive`, since it would not survive measuring again. A change against the spell's
    direction stands (it is understated)."""
    merged = before.merge(after, on=list(on), suffixes=("_before", "_after"))
    if "result_id_before" in merged and "result_id_after" in merged:
        # One stored result on both sides (a run against itself, or a run against its machine's
        # latest cells) pairs every sample with itself: "no change" by construction, not measured.
        merged = merged[merged["result_id_before"] != merged["result_id_after"]].reset_index(drop=True)
    spelled_runs = set(spelled_runs)
    told, slowed = [], []
    for _, row in merged.iterrows():
        said, sides = [], []
        for side in ("before", "after"):
            bad, n = _unsettled(row, side)
            run = row.get(f"run_id_{side}", row.get("run_id"))
            sides.append(cell_in_spell(bad, run, row.get("device"), spelled_runs))
            if bad:
                said.append(f"{side} {bad} of {n}")
            elif sides[-1]:
                said.append(f"{side}: run {run}")
        told.append(", ".join(said))
        slowed.append(tuple(sides))
    found = judge([(_entry(r, "before"), _entry(r, "after")) for _, r in merged.iterrows()], slowed,
                  floor=floor, words=words, statistic=statistic,
                  drift=[drift.get(tuple(r[c] for c in on), np.nan) for _, r in merged.iterrows()] if drift else None)
    verdicts, moved = hold_machine_moved(found, machine_move(machine_drift), words)
    table = merged[list(on)].copy()
    table["before_s"] = [float(np.median(s)) if len(s) else np.nan for s in merged["samples_before"]]
    table["after_s"] = [float(np.median(s)) if len(s) else np.nan for s in merged["samples_after"]]
    table = pd.concat([table, pd.DataFrame(found, columns=[*VERDICT_COLUMNS, "floor", "paired", *ROUND_COLUMNS],
                                             index=table.index)], axis=1)
    table["verdict"] = verdicts
    table["unsettled"] = told
    table["machine_moved"] = moved
    return table


def machine_move(machine_drift: Mapping[str, float] | None) -> float:
    """How far the machine itself moved between two sides timed apart, on a log scale: the largest
    |log| of its drift controls' after ÷ before (drift_ratios); 0 when none is known."""
    ratios = [r for r in (machine_drift or {}).values() if r is not None and np.isfinite(r) and r > 0]
    return max((abs(float(np.log(r))) for r in ratios), default=0.0)


def hold_machine_moved(found: Sequence[dict], move: float, words: tuple[str, str] = RUN_WORDS
                       ) -> tuple[list[str], list[bool]]:
    """Verdicts with a change between sides timed apart held `inconclusive` unless its whole
    interval lies beyond the machine's own move between them (machine_move, on a log scale), as a
    change must lie beyond the floor; and which were held. The drift controls time the same copy
    and products at the start of every round; when they move, the machine changed under the code:
    on a 2-vCPU VM on 2026-12-03, of two runs of the same code back to back, the second had the
    16 MiB copy 1.98× slower and the threaded probe 14% faster, its cells moved a median 8.2%
    either way (the 4M-element ones from 0.84× to 2.03×), and 10 of 110 cells were called
    changed, all falsely; held, none. Over 50 such pairs that day, 142 false changes without the
    hold, 3 with it. The move can go either way, so either change is held; a move within the
    floor holds nothing. Paired cells shared the machine and keep their verdicts."""
    verdicts, held = [], []
    for f in found:
        regression, improvement = f["verdict"] == words[0], f["verdict"] == words[1]
        hold = not f["paired"] and ((regression and not np.log(f["ci_low"]) > move)
                                    or (improvement and not np.log(f["ci_high"]) < -move))
        verdicts.append(INCONCLUSIVE if hold else f["verdict"])
        held.append(bool(hold))
    return verdicts, held


def judge(pairs: Sequence[tuple[Sequence, Sequence]], slowed: Sequence[tuple[bool, bool]] | None = None,
          words: tuple[str, str] = RUN_WORDS, **options) -> list[dict]:
    """Every comparison the tool reports, run against run (comparison_table) or method against
    its baseline (bench_runner.speedups, the dashboard): stats.compare_entries' verdict for each
    (before, after) pair of entries, then held `inconclusive` where a slow spell could have made
    it (hold_spelled). `slowed`: per pair, whether its (before, after) side was measured in a
    spell (cell_in_spell); None where nothing is known. A paired cell's two sides took turns, so
    a spell slowed both alike and holds nothing. `options`: compare_entries' floor, alpha,
    statistic."""
    found = compare_entries(pairs, words=words, **options)
    if slowed is None:
        return found
    unpaired = [not f["paired"] for f in found]
    held = hold_spelled([f["verdict"] for f in found], [u and b for u, (b, _) in zip(unpaired, slowed)],
                        [u and a for u, (_, a) in zip(unpaired, slowed)], words)
    return [{**f, "verdict": v} for f, v in zip(found, held)]


def _entry(row: pd.Series, side: str) -> tuple:
    """One side of a merged row as compare_entries takes it."""
    return (row[f"samples_{side}"], row[f"sample_rounds_{side}"], row.get(f"sample_cycles_{side}"),
            row.get(f"turns_{side}"))


def cell_in_spell(unsettled_rounds, run_id, device: str, spelled_runs: Collection[int]) -> bool:
    """Whether a cell was measured in a slow spell of its cores: it still holds a round timed
    unsettled, or it ran on a CPU in a run the spell outlasted (see comparison_table)."""
    unsettled = unsettled_rounds is not None and np.isfinite(unsettled_rounds) and unsettled_rounds > 0
    return bool(unsettled or (device == "cpu" and run_id in spelled_runs))


def cells_in_spell(frame: pd.DataFrame, spelled_runs: Collection[int] = ()) -> dict[int, bool]:
    """Result id → cell_in_spell, for a frame of results (result_id, device; unsettled_rounds and
    run_id where known)."""
    unsettled = frame["unsettled_rounds"] if "unsettled_rounds" in frame else [None] * len(frame)
    runs = frame["run_id"] if "run_id" in frame else [None] * len(frame)
    return {int(rid): cell_in_spell(u, run, device, spelled_runs)
            for rid, u, run, device in zip(frame["result_id"], unsettled, runs, frame["device"])}


def hold_spelled(verdicts: Iterable[str], before_slowed: Iterable[bool], after_slowed: Iterable[bool],
                 words: tuple[str, str] = RUN_WORDS) -> list[str]:
    """Verdicts with what a slow spell could have made held `inconclusive`: a spell only adds time,
    so a `words[0]` (regression, slower) whose after side was measured in one, and a `words[1]`
    (improvement, faster) whose before side was."""
    return [INCONCLUSIVE if (v == words[0] and after) or (v == words[1] and before) else v
            for v, before, after in zip(verdicts, before_slowed, after_slowed)]


def drift_table(runs: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Each cell's measured drift (stats.drift_floors) from its samples in `runs` (one frame per
    run, as results_db.queries.samples_frame gives it: runs taken at different times), over the
    cells at least two of them measured: the cell key, `drift` and `runs` (how many measured it)."""
    medians: dict[tuple, list[float]] = {}
    for frame in runs:
        for key, samples in zip(frame[CELL].itertuples(index=False, name=None), frame["samples"]):
            if samples is not None and len(samples):
                medians.setdefault(tuple(key), []).append(float(np.median(samples)))
    kept = {k: v for k, v in medians.items() if len(v) >= 2}
    table = pd.DataFrame(list(kept), columns=CELL)
    table["drift"] = drift_floors(list(kept.values())) if kept else []
    table["runs"] = [len(v) for v in kept.values()]
    return table


def timed_apart(table: pd.DataFrame) -> bool:
    """Whether some cell of a comparison table was compared unpaired, its two sides timed at
    different times: only those can carry what the machine did in between (wording.busy_caveat)."""
    return bool("paired" in table and not table["paired"].all())


def broken_cells(before: pd.DataFrame, after_failures: pd.DataFrame | None) -> pd.DataFrame:
    """The cells `ok` on the before side (rows of `before`, as samples_frame gives them) that
    failed on the after side (`after_failures`, as results_db.queries.failures_frame gives them:
    outright, or in some of their rounds where none of the before side's failed), with the after
    side's status, message and failed rounds, in cell order (none where `after_failures` is None).
    A cell that failed outright has no ratio, so no verdict; a kernel that now computes the wrong
    thing, runs out of memory or crashes, even now and then, is a worse change than a slower one,
    and `compare`, `ab` and `gate` fail on it as on a regression."""
    columns = [*CELL, "status", "message", "failed_rounds"]
    if before.empty or after_failures is None or after_failures.empty:
        return pd.DataFrame(columns=columns)
    ok = before.reindex(columns=[*CELL, "failed_rounds"])
    ok["failed_rounds"] = pd.to_numeric(ok["failed_rounds"], errors="coerce").fillna(0)
    ok = ok.groupby(CELL, as_index=False, sort=False)["failed_rounds"].sum()
    broken = after_failures.reindex(columns=columns).merge(ok, on=CELL, suffixes=("", "_before"))
    # A cell that failed now and then on both sides did not break between them.
    broken = broken[~((broken["failed_rounds_before"] > 0) & (broken["status"] == "ok"))][columns]
    return in_cell_order(broken).reset_index(drop=True)


def new_failures(before: pd.DataFrame, before_failures: pd.DataFrame | None,
                 after_failures: pd.DataFrame | None) -> pd.DataFrame:
    """The cells that failed outright on the after side (`after_failures`, failures_frame's rows)
    that the before side has neither `ok` (`before`, samples_frame's rows) nor failed
    (`before_failures`): a method added since, say, that crashes or fails its check. Without a
    before there is nothing to judge it against, so broken_cells passes it by; a comparison that
    read only the pairs would call a side whose new kernel is wrong unchanged."""
    columns = [*CELL, "status", "message", "failed_rounds"]
    if after_failures is None or after_failures.empty:
        return pd.DataFrame(columns=columns)
    failed = after_failures[after_failures["status"] != "ok"].reindex(columns=columns)
    return in_cell_order(_unknown_to(failed, before, before_failures)).reset_index(drop=True)


def _unknown_to(cells: pd.DataFrame, *sides: pd.DataFrame | None) -> pd.DataFrame:
    """The rows of `cells` whose cell has no row in any of `sides` (None: a side with none)."""
    known = [side.reindex(columns=CELL) for side in sides if side is not None and not side.empty]
    if cells.empty or not known:
        return cells
    seen = cells[CELL].merge(pd.concat(known).drop_duplicates(), on=CELL, how="left", indicator=True)["_merge"]
    return cells[(seen == "left_only").to_numpy()]


class CellChanges(NamedTuple):
    """What a comparison of two sides says besides its ratios, one row per cell in cell order
    (failures_frame's rows for the first three, CELL's columns for the last two): the cells `ok`
    before that failed after (broken_cells), those the other way round (`fixed`), those that failed
    after with no result before (new_failures), and those `ok` on one side with neither an `ok` nor
    a failed result on the other (`only_before`, `only_after`: a selection the other side did not
    cover, a cell it skipped). None of them has a ratio; a table of the cells both sides timed would
    leave them out without a word. `compare`, `ab`, `gate` of a session and the Diff page say them
    alike (wording.change_notes)."""
    broken: pd.DataFrame
    fixed: pd.DataFrame
    new: pd.DataFrame
    only_before: pd.DataFrame
    only_after: pd.DataFrame

    def failed(self) -> bool:
        """Whether the after side failed a cell (broken, or new): as bad as a regression."""
        return bool(len(self.broken) or len(self.new))


def cell_changes(before: pd.DataFrame, after: pd.DataFrame, before_failures: pd.DataFrame | None,
                 after_failures: pd.DataFrame | None) -> CellChanges:
    """The CellChanges between two sides (`before`, `after`: samples_frame's rows; the failures:
    failures_frame's)."""
    def only(ok: pd.DataFrame, other: pd.DataFrame, other_failures: pd.DataFrame | None) -> pd.DataFrame:
        cells = _unknown_to(ok.reindex(columns=CELL).drop_duplicates(), other, other_failures)
        return in_cell_order(cells).reset_index(drop=True)

    return CellChanges(broken_cells(before, after_failures), broken_cells(after, before_failures),
                       new_failures(before, before_failures, after_failures),
                       only(before, after, after_failures), only(after, before, before_failures))


def interval_coverage(table: pd.DataFrame) -> float:
    """The share of compared cells whose interval holds 1 (NaN when none has one). Between two
    runs of the same code nothing changed, so honest 95% intervals hold 1 for about 95% of the
    cells; far fewer means the intervals are narrower than what moves between runs, and the
    verdicts they give will not survive measuring again."""
    known = table.dropna(subset=["ci_low", "ci_high"])
    if known.empty:
        return float("nan")
    return float(((known["ci_low"] <= 1) & (known["ci_high"] >= 1)).mean())


def interval_half_width(table: pd.DataFrame, low: str = "ci_low", high: str = "ci_high") -> pd.Series:
    """Each interval's half-width as a share of the ratio (the geometric mean of high ÷ ratio and
    ratio ÷ low, less 1): a cell can be `no change` only when its change and the half-width of
    its 90% interval (low="eq_low", high="eq_high") fit inside the floor together."""
    return np.sqrt(table[high] / table[low]) - 1


def control_name(column: str) -> str:
    """`cpu copy` for the round states' column `drift_cpu_copy_s`."""
    return column.removeprefix(DRIFT_PREFIX).removesuffix("_s").replace("_", " ")


def timing_settings(provenances: Iterable[Mapping]) -> dict[str, set[str]]:
    """Each of TIMING_SETTINGS (results_db.round_state: threads, torch, OpenMP variables) → the
    values the given runs' provenances recorded for it; a setting none of them recorded (OpenMP's,
    before December 2026) is left out, so that it differs from nothing."""
    found: dict[str, set[str]] = {}
    for provenance in provenances:
        for name in TIMING_SETTINGS:
            value = provenance.get(name)
            if value is not None and value == value:  # NaN: a round state's run that did not record it
                found.setdefault(name, set()).add(str(value))
    return {name: found[name] for name in TIMING_SETTINGS if name in found}


def control_settings_differ(states: pd.DataFrame, before_runs: Sequence[int], after_runs: Sequence[int]
                            ) -> list[str]:
    """The settings the drift controls ran under (timing_settings, from the round states' `run_`
    columns) in which the two sides differ, each as `threads 2 against 1`; empty where they agree
    or are not known (rounds stored without them)."""
    columns = [f"run_{name}" for name in TIMING_SETTINGS if f"run_{name}" in states]
    sides = [timing_settings(states.loc[states["run_id"].isin(list(runs)), columns]
                             .rename(columns=lambda c: c.removeprefix("run_")).to_dict("records"))
             for runs in (before_runs, after_runs)]
    return [f"{name} {', '.join(sorted(sides[0][name]))} against {', '.join(sorted(sides[1][name]))}"
            for name in TIMING_SETTINGS if name in sides[0] and name in sides[1] and sides[0][name] != sides[1][name]]


def drift_ratios(states: pd.DataFrame, before_runs: Sequence[int], after_runs: Sequence[int]) -> dict[str, float]:
    """How much the machine itself changed: after ÷ before of the drift controls' medians, from
    the rounds' states (results_db.queries.round_states). Empty where the two sides ran their
    controls under different settings (control_settings_differ): a run on one thread timed its
    threaded controls 1.5-1.9 times as slow as the runs on two before it (2026-12-07), which
    then held a 1.9x slowdown of one thread `inconclusive` as the machine's own move."""
    if control_settings_differ(states, before_runs, after_runs):
        return {}
    out = {}
    states = states[regular_rounds(states)]  # an old run's retake pass waited for calm: it would flatter the machine
    for column in [c for c in states.columns if c.startswith(DRIFT_PREFIX)]:
        b = states.loc[states["run_id"].isin(list(before_runs)), column].dropna()
        a = states.loc[states["run_id"].isin(list(after_runs)), column].dropna()
        if len(a) and len(b):
            out[control_name(column)] = float(a.median() / b.median())
    return out


# How far a drift control may move across `noise`'s runs before it says that the machine moved,
# and how far one run's may lie from the runs' median before `noise` leaves that run out (odd_runs).
CONTROLS_MOVED = 1.2


def odd_runs(states: pd.DataFrame, runs: Sequence[int], bound: float = CONTROLS_MOVED) -> dict[int, dict[str, float]]:
    """The runs whose drift controls set them apart from the others: run → {control: its median ÷
    the runs' median} for each control it reads beyond `bound` either way, from the rounds' states
    (results_db.queries.round_states). Only where the runs that agree are two or more and outnumber
    those apart; else none (two runs, or a machine that moves run to run: no run is the odd one).
    The 2-vCPU VM switches between two states that move the copy control 1.8 times and a cell a
    median 8.5% (docs/notes/2026-12-07-the-vms-two-states.md): `noise`'s runs of 10:39 that day
    had run 1 in the rarer one, and its floors came out at a median ±56.7%; from the two runs
    that agreed, ±12.3%. Runs of two states stay judged by their controls' move (hold_machine_moved)."""
    apart: dict[int, dict[str, float]] = {}
    for name, medians in run_medians(states, runs).items():
        if len(medians) < 3:
            continue
        for run, ratio in (medians / medians.median()).items():
            if not 1 / bound <= ratio <= bound:
                apart.setdefault(int(run), {})[name] = float(ratio)
    agree = [r for r in runs if r not in apart]
    return apart if len(agree) >= 2 and len(agree) > len(apart) else {}


def control_spread(states: pd.DataFrame, runs: Sequence[int]) -> dict[str, float]:
    """How far the machine itself moved across `runs`: for each drift control, the largest of
    the runs' medians ÷ the smallest, from the rounds' states (results_db.queries.round_states).
    A noise floor measured from runs the machine moved between takes the move for drift."""
    return {name: float(medians.max() / medians.min()) for name, medians in run_medians(states, runs).items()
            if len(medians) >= 2}


def run_medians(states: pd.DataFrame, runs: Sequence[int]) -> dict[str, pd.Series]:
    """Each drift control's name → its median in each of `runs` that timed it (run id → seconds),
    from the rounds' states (results_db.queries.round_states), their retake passes left out."""
    if states.empty:  # runs stored without round records
        return {}
    states = states[regular_rounds(states) & states["run_id"].isin(list(runs))]
    out = {}
    for column in [c for c in states.columns if c.startswith(DRIFT_PREFIX)]:
        medians = states.groupby("run_id")[column].median().dropna()
        out[control_name(column)] = medians[medians > 0]
    return out


# What share of a machine's stored rounds may read a drift control beyond CONTROLS_MOVED from
# their median before `doctor` says the machine moves under its runs. On the 2-vCPU VM on
# 2026-12-07 (its two states: docs/notes/2026-12-07-the-vms-two-states.md) the copy control did so
# in 2-14 of the 12-15 rounds of 16 of the benchmark scripts' 19 measurements; in the other three,
# in a run's first round of 15, and in one round of a single 3-round run (twice).
ROUNDS_MOVED_WARN = 0.10


def rounds_moved(states: pd.DataFrame, bound: float = CONTROLS_MOVED) -> dict[str, tuple[int, int, float, float]]:
    """Per drift control (its name), over the rounds of `states` (results_db.queries.round_states)
    timed under the settings most of them share (a run on other threads or another torch times
    its controls otherwise: drift_ratios), their retake passes left out: how many rounds read it
    more than `bound` from the rounds' median either way, how many read it, that median, and the
    median of the rounds that moved (NaN where none did). Empty for no rounds."""
    if states.empty:
        return {}
    states = states[regular_rounds(states)]
    columns = [f"run_{name}" for name in TIMING_SETTINGS if f"run_{name}" in states]
    if columns:
        settings = states[columns].apply(lambda row: " ".join(map(str, row)), axis=1)
        states = states[settings == settings.value_counts().index[0]]
    out = {}
    for column in [c for c in states.columns if c.startswith(DRIFT_PREFIX)]:
        values = states[column].dropna()
        values = values[values > 0]
        if values.empty:
            continue
        median = float(values.median())
        moved = values[(values / median > bound) | (values / median < 1 / bound)]
        out[control_name(column)] = (len(moved), len(values), median, float(moved.median()) if len(moved) else np.nan)
    return out


UNSETTLED_WARN = 0.10  # a side with more of its cell-rounds timed unsettled gets a caveat


def regular_rounds(states: pd.DataFrame) -> pd.Series:
    """Which rows of round states are a run's rounds, not its retake passes. Runs stored before
    December 2026 timed again, after their rounds, the cells a slow spell had left unsettled,
    and stored each such pass as a round record marked `retake`; runs no longer do (they retook
    almost nothing: docs/notes/2026-12-02-retakes-retook-nothing.md), but their records stay readable."""
    if RETAKE not in states:
        return pd.Series(True, index=states.index)
    return states[RETAKE].isna()


def retaken(states: pd.DataFrame, runs: Sequence[int]) -> int:
    """Cell-rounds of `runs` that retake passes (regular_rounds: runs before December 2026)
    timed again settled."""
    if states.empty or RETAKEN not in states:
        return 0
    return int(states.loc[states["run_id"].isin(list(runs)), RETAKEN].fillna(0).sum())


def left_unsettled(states: pd.DataFrame, runs: Sequence[int]) -> int:
    """Cell-rounds of `runs` timed while the cores were still slow to work together and not
    retaken settled afterwards, from the rounds' states (bench_runner.settle)."""
    if states.empty or SETTLE_UNSETTLED not in states:
        return 0
    mine = states[states["run_id"].isin(list(runs))]
    return int(mine.loc[regular_rounds(mine), SETTLE_UNSETTLED].fillna(0).sum()) - retaken(mine, runs)


def unsettled_share(states: pd.DataFrame, runs: Sequence[int]) -> tuple[int, int]:
    """(left_unsettled, cell-rounds measured) over `runs`, counting only rounds that settled;
    (0, 0) where no round settled."""
    if states.empty or SETTLE_UNSETTLED not in states:
        return 0, 0
    mine = states[states["run_id"].isin(list(runs))]
    rounds = mine[regular_rounds(mine) & mine[SETTLE_UNSETTLED].notna()]
    return left_unsettled(mine, runs), int(rounds["cells"].sum())


def outlasted(share: tuple[int, int]) -> bool:
    """Whether (cell-rounds left unsettled, cell-rounds measured) is more than UNSETTLED_WARN:
    a spell of the cores outlasted what the runs could wait out."""
    bad, total = share
    return bool(total) and bad / total > UNSETTLED_WARN


def runs_in_spells(states: pd.DataFrame, runs: Iterable[int]) -> list[int]:
    """The runs a spell of their cores outlasted (outlasted): comparison_table holds what it
    could fake."""
    return [int(run) for run in runs if outlasted(unsettled_share(states, [run]))]
