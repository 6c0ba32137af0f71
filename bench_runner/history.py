"""Histories: each cell's median per run on one hardware fingerprint, where a new level starts,
what differs across it, and the marks people put on it.

The points are derived, not measured, so they are cached in the database (HistoryPoint): a
result without a point marks its cell stale, and `refresh` recomputes the stale cells. Change
points are searched window by window (step_detect.search), so those before a cell's last
window are final: a new run is searched with that window alone, from the point marked
`search_from`, and only the points that change are written. A run refreshes its own cells as
it ends, so the History page opens on stored points. Torch-free: the dashboard imports it.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hadamard_bench.vocabulary import FAILED
from results_db import Machine, Mark, Result, Run, history_queries, queries, store

from . import comparison, stats, step_detect
from .defaults import FLOOR

CELL = queries.CELL_COLUMNS
# What may differ between two runs of one fingerprint, as a change point lists it.
FACTS = ("commit", "torch", "driver", "cuda", "triton", "threads", "allocator", "openmp", "rounds")
# Facts runs began to store later (openmp: 2026-11-30): a run stored before has none, which says
# nothing of its setting, so a missing value is not listed as a difference.
RECORDED_LATER = {"openmp"}


def run_facts(row) -> dict[str, object]:
    """A history row's software and flags: what a change point's "what differs" compares."""
    p, o = row.provenance or {}, row.options or {}
    allocator = p.get("allocator")
    return {"commit": p.get("git_commit"), "torch": p.get("torch"), "driver": row.driver_version,
            "cuda": p.get("cuda"), "triton": p.get("triton"), "threads": p.get("threads"),
            "allocator": ", ".join(f"{k}={v}" for k, v in sorted(allocator.items()))
            if isinstance(allocator, dict) else allocator, "openmp": p.get("openmp"), "rounds": o.get("rounds")}


def _short(key: str, value) -> str:
    if value is None:
        return "—"
    return str(value)[:12] if key == "commit" else str(value)


def differences(before: Mapping[str, object], after: Mapping[str, object]) -> list[str]:
    """`torch 2.13.0 → 2.14.0`, one line per fact that differs between two runs."""
    unknown = lambda k: k in RECORDED_LATER and (before.get(k) is None or after.get(k) is None)  # noqa: E731
    return [f"{k} {_short(k, before.get(k))} → {_short(k, after.get(k))}" for k in FACTS
            if before.get(k) != after.get(k) and not unknown(k)]


def applies(mark_cells: Mapping[str, str] | None, cell: Mapping[str, str]) -> bool:
    """Whether a mark narrowed to `mark_cells` ({column: value}; empty: all) covers `cell`."""
    return all(cell.get(k) == v for k, v in (mark_cells or {}).items())


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# The columns of history_frame that computing a cell's points reads, row by row.
ROW = ("result_id", "run_id", "samples", "sample_rounds", "time_median_s", "ci_low", "ci_high", "change_point",
       "search_from", "cached")


def cell_points(cell: pd.DataFrame, new_starts: Iterable[int] = (), floor: float = FLOOR,
                states: pd.DataFrame | None = None) -> list[dict]:
    """History points of one cell's rows of history_frame (oldest first, with samples): each
    run's median and 95% interval (kept from the cache where present: a result's own interval
    never changes), and change points found separately within each stretch between runs marked
    as a new start, at `floor` (a step smaller is no change: the cell's floor, measured_floor).
    `search_from` marks the first run of the last stretch's last search window. A result without
    samples is a gap: its point holds None and the search passes over it. With the round `states`
    of its runs (results_db.queries.round_states), a step within the machine's own move is held."""
    return _points(cell[list(ROW)].to_dict("records"), new_starts, floor, states)


def _by_cell(frame: pd.DataFrame) -> dict[tuple, list[dict]]:
    """history_frame's rows as dicts of ROW, grouped by cell key in their order: a DataFrame's
    per-row access costs more than a cell's whole search."""
    columns = [frame[c].tolist() for c in (*CELL, *ROW)]
    cells: dict[tuple, list[dict]] = {}
    for values in zip(*columns):
        cells.setdefault(values[:len(CELL)], []).append(dict(zip(ROW, values[len(CELL):])))
    return cells


def _points(rows: list[dict], new_starts: Iterable[int], floor: float, states: pd.DataFrame | None = None
            ) -> list[dict]:
    """cell_points' points of `rows`; with the round `states` of their runs
    (results_db.queries.round_states), a step within the machine's own move is held (_machine_move)."""
    points, rounds = [], []
    for r in rows:
        rounds.append(stats.split_rounds(r["samples"], r["sample_rounds"]))
        cached = (r["time_median_s"], r["ci_low"], r["ci_high"])
        if any(_missing(v) for v in cached) and rounds[-1]:
            cached = stats.median_interval(rounds[-1])
        values = [None if _missing(v) else float(v) for v in cached]
        points.append({"result_id": int(r["result_id"]), "time_median_s": values[0], "ci_low": values[1],
                       "ci_high": values[2], "change_point": False, "search_from": False})
    starts = set(new_starts)
    cuts = sorted({0, len(rows), *(i for i, r in enumerate(rows) if r["run_id"] in starts)})
    resume = None
    for start, end in zip(cuts, cuts[1:]):
        kept = [i for i in range(start, end) if points[i]["time_median_s"] is not None]
        if not kept:
            continue
        found = step_detect.search([points[i]["time_median_s"] for i in kept], floor=floor,
                                   rounds=[rounds[i] for i in kept],
                                   machine_move=_machine_move(states, [rows[i]["run_id"] for i in kept]))
        for index in found.change_points:
            points[kept[index]]["change_point"] = True
        resume = kept[found.last_window]
    if resume is not None:
        points[resume]["search_from"] = True
    return points


def _machine_move(states: pd.DataFrame | None, runs: list[int]) -> Callable[[int, int, int], float] | None:
    """step_detect's machine_move over `runs` (one per searched value): how far the machine itself
    moved between the runs on either side of a split, as `compare` reads it between two sets of runs
    (comparison.drift_ratios, machine_move: nothing where the sides timed their drift controls under
    different settings). A History step that `compare` of the same runs would hold is held too.
    None where no round recorded its controls."""
    if states is None or states.empty:
        return None
    return lambda start, split, end: comparison.machine_move(
        comparison.drift_ratios(states, runs[start:split], runs[split:end]))


def _changed(rows: list[dict], points: list[dict]) -> list[dict]:
    """The points that differ from what `rows` hold cached (all of those not cached)."""
    return [p for p, r in zip(points, rows)
            if not r["cached"] or any(bool(p[f]) != bool(r[f]) for f in ("change_point", "search_from"))]


def cell_of(row) -> dict[str, str]:
    """The cell key of a row (a namedtuple from itertuples) of any frame with the key's columns."""
    return {c: getattr(row, c) for c in CELL}


def covering(marks: pd.DataFrame, cell: Mapping[str, str], kind: str | None = None,
             run_id: int | None = None) -> list:
    """The marks (rows of marks_frame) that cover `cell`, of `kind` and on `run_id` when given."""
    if marks.empty:
        return []
    chosen = marks if kind is None else marks[marks["kind"] == kind]
    chosen = chosen if run_id is None else chosen[chosen["run_id"] == run_id]
    return [m for m in chosen.itertuples() if applies(m.cells, cell)]


def _new_starts(marks: pd.DataFrame, cell: Mapping[str, str]) -> set[int]:
    return {int(m.run_id) for m in covering(marks, cell, "new_distribution")}


def refresh(session: Session, fingerprint: str | None = None, cells: Iterable[tuple] = (),
            progress: Callable[[int, int], None] | None = None, persist: bool = True,
            stale_among: Iterable[tuple] | None = None) -> list[dict]:
    """Bring history points up to date: every stale cell (on `fingerprint`, when given; only
    those of `stale_among` when given) and, searched whole, `cells` ((fingerprint, *cell key)
    tuples, e.g. those a new mark or a new noise floor covers). A stale cell whose new results
    all follow its `search_from` point is searched from there on; the rest whole. Stores the
    points that changed unless `persist=False` (a read-only dashboard), and returns them. The
    caller commits."""
    stale = history_queries.stale_counts(session, fingerprint)
    if stale_among is not None:
        among = set(stale_among)
        stale = {k: n for k, n in stale.items() if k in among}
    whole = set(cells)
    todo, done = len(set(stale) | whole), 0
    points: list[dict] = []

    @functools.cache
    def marks_and_drift(fp: str) -> tuple[pd.DataFrame, dict[tuple, float]]:  # read once a fingerprint
        return history_queries.marks_frame(session, fp), drift_by_cell(history_queries.noise_floors(session, fp))

    for fp in sorted({k[0] for k in stale}):
        counts = {tuple(k[1:]): n for k, n in stale.items() if k[0] == fp and k not in whole}
        found, resumed = _resume(session, fp, counts, *marks_and_drift(fp))
        points += found
        whole |= {(fp, *k) for k in counts if k not in resumed}
        done += len(resumed)
        if progress and resumed:
            progress(done, todo)
    by_place: dict[tuple[str, str], set[tuple]] = {}
    for fp, *key in sorted(whole):
        by_place.setdefault((fp, key[0]), set()).add(tuple(key))
    for (fp, benchmark), keys in by_place.items():
        frame = history_queries.history_frame(session, benchmark=benchmark, fingerprint=fp, details=False)
        marks, drift = marks_and_drift(fp)
        states = queries.round_states(session, frame["run_id"].unique())
        for key, rows in _by_cell(frame).items():
            if key not in keys:
                continue
            points += _changed(rows, _points(rows, _new_starts(marks, dict(zip(CELL, key))),
                                             measured_floor(drift, key), states))
            done += 1
            if progress:
                progress(done, todo)
    if persist:
        store.write_history_points(session, points)
    return points


def _resume(session: Session, fingerprint: str, stale: Mapping[tuple, int], marks: pd.DataFrame,
            drift: Mapping[tuple, float]) -> tuple[list[dict], set[tuple]]:
    """The changed points of the `stale` cells ({cell key: results without a point}) that can be
    searched from their `search_from` point on: every new result follows it, and no new start
    (in `marks`) is marked after it. Reads only the runs from the earliest such point on.
    Returns the points and the cells done; the others need a whole search."""
    starts = history_queries.search_starts(session, fingerprint)
    starts = starts[[tuple(k) in stale for k in starts[CELL].itertuples(index=False, name=None)]]
    if starts.empty:
        return [], set()
    resume_at = dict(zip(starts[CELL].itertuples(index=False, name=None), starts["result_id"]))
    frame = history_queries.history_frame(session, fingerprint=fingerprint, details=False,
                                          since=starts["started_at"].min())
    points, done = [], set()
    states = queries.round_states(session, frame["run_id"].unique())
    for key, rows in _by_cell(frame).items():
        ids = [r["result_id"] for r in rows]
        if key not in resume_at or resume_at[key] not in ids:
            continue
        tail = rows[ids.index(resume_at[key]):]
        new = sum(not r["cached"] for r in tail)
        if new != stale[key] or _new_starts(marks, dict(zip(CELL, key))) & {r["run_id"] for r in tail[1:]}:
            continue
        found = _points(tail, (), measured_floor(drift, key), states)
        # A search cannot start a level at its own first run: a change point there was found by
        # the window before, and stays.
        found[0]["change_point"] = bool(tail[0]["change_point"])
        points += _changed(tail, found)
        done.add(key)
    return points, done


def drift_by_cell(floors: pd.DataFrame) -> dict[tuple, float]:
    """Cell key tuple → its measured drift, from history_queries.noise_floors."""
    return dict(zip(floors[CELL].itertuples(index=False, name=None), floors["drift"]))


def measured_floor(drift: Mapping[tuple, float], key: Iterable, floor: float = FLOOR) -> float:
    """The floor a cell is judged at across time: the larger of `floor` and its measured drift."""
    return max(floor, drift.get(tuple(key), 0.0))


def measured_drift(session: Session, run_ids: Iterable[int]) -> tuple[dict[tuple, float], pd.DataFrame, int]:
    """What comparisons across `run_ids` take as each cell's drift: (cell key → drift, the noise
    floors it comes from, how many hardware fingerprints the runs span). Empty unless the runs
    share one fingerprint: a floor measured on one machine says nothing of two."""
    fingerprints = history_queries.run_fingerprints(session, run_ids)
    if len(fingerprints) != 1:
        return {}, pd.DataFrame(columns=history_queries.NOISE_COLUMNS), len(fingerprints)
    floors = history_queries.noise_floors(session, next(iter(fingerprints)))
    return drift_by_cell(floors), floors, 1


def with_points(frame: pd.DataFrame, points: list[dict]) -> pd.DataFrame:
    """history_frame's rows with freshly computed `points` in place of their cached values."""
    if not points:
        return frame
    fresh = pd.DataFrame(points).set_index("result_id")
    frame = frame.copy()
    for column in ("time_median_s", "ci_low", "ci_high", "change_point"):
        known = frame["result_id"].map(fresh[column])
        frame[column] = known.where(frame["result_id"].isin(fresh.index), frame[column])
    frame["cached"] = True
    return frame


def cells_of_run(session: Session, run_id: int, mark_cells: Mapping[str, str] | None = None,
                 statuses: Sequence[str] = ("ok",)) -> list[tuple]:
    """(fingerprint, *cell key) of the run's cells of `statuses` (`ok`: those with a history) that a
    mark narrowed to `mark_cells` covers."""
    rows = session.execute(select(Machine.fingerprint, *(getattr(Result, c) for c in CELL))
                           .join(Run, Result.run_id == Run.id).join(Machine, Run.machine_id == Machine.id)
                           .where(Result.run_id == run_id, Result.status.in_(statuses)))
    return [tuple(r) for r in rows if applies(mark_cells, dict(zip(CELL, r[1:])))]


def add_mark(session: Session, run_id: int, kind: str, note: str = "",
             cells: Mapping[str, str] | None = None) -> tuple[Mark, int]:
    """Store a mark and recompute the change points of the cells it covers (a new start splits
    their histories); returns the mark and how many cells it covers. It may cover cells that
    failed in the run, for `gate` (an `expected` failure: a check made stricter). A mark that
    covers no `ok` or failed cell of the run (a mistyped value, most likely) is refused before
    anything is stored or searched. The caller commits."""
    run = session.get(Run, run_id)
    if run is None:
        raise ValueError(f"no run {run_id} in this database")
    if not run.plain:
        raise ValueError(f"run {run_id} is a side of an `ab` session (with run {run.paired_with}), which is not part "
                         f"of the machine's history; mark a plain run")
    unknown = set(cells or {}) - set(CELL)
    if unknown:
        raise ValueError(f"a mark narrows by the cell's {', '.join(CELL)}, not {', '.join(sorted(unknown))}")
    covered = cells_of_run(session, run_id, cells, ("ok", *FAILED))
    if not covered:
        narrowed = " with " + ", ".join(f"{c} {v!r}" for c, v in cells.items()) if cells else ""
        raise ValueError(f"run {run_id} has no `ok` or failed cell{narrowed} to mark; `history` prints the "
                         f"cells' values")
    mark = store.add_mark(session, run_id, kind, note, cells)
    refresh(session, cells=cells_of_run(session, run_id, cells))
    return mark, len(covered)


def delete_mark(session: Session, mark_id: int) -> Mark:
    mark = session.get(Mark, mark_id)
    if mark is None:
        raise ValueError(f"no mark {mark_id} in this database")
    affected = cells_of_run(session, mark.run_id, mark.cells)
    session.execute(delete(Mark).where(Mark.id == mark_id))
    refresh(session, cells=affected)
    return mark


def history_table(session: Session, fingerprint: str | None = None, benchmark: str | None = None,
                  method: str | None = None, backend: str | None = None, machine: str | None = None,
                  persist: bool = True) -> pd.DataFrame:
    """The chosen cells' cached points, one row per cell and run, oldest first, refreshed first
    where stale (stored unless `persist=False`); with `annotation`: what changed in the software
    since the cell's previous run (torch, driver), and the marks on the run."""
    frame = fresh_points(session, persist, benchmark=benchmark, method=method, backend=backend, machine=machine,
                         fingerprint=fingerprint)
    return annotate(frame, history_queries.marks_frame(session, fingerprint))


def fresh_points(session: Session, persist: bool = True, details: bool = True, **where) -> pd.DataFrame:
    """history_frame's rows (without samples) chosen by `where`, with the points of the cells
    among them that were stale computed first (and stored, unless `persist=False`)."""
    frame = history_queries.history_frame(session, samples=False, details=details, **where)
    stale = frame[~frame["cached"].astype(bool)]
    if len(stale):
        points = refresh(session, persist=persist, stale_among={
            (r.fingerprint, *(getattr(r, c) for c in CELL)) for r in stale.itertuples()})
        frame = with_points(frame, points) if not persist else history_queries.history_frame(
            session, samples=False, details=details, **where)
    return frame


def annotate(frame: pd.DataFrame, marks: pd.DataFrame) -> pd.DataFrame:
    """history_frame's rows with `differs` (what differs from the cell's previous run), and
    `annotation` (a torch or driver change, and the marks that cover the row)."""
    frame = frame.reset_index(drop=True)
    frame["change_point"] = frame["change_point"].astype("boolean").fillna(False).astype(bool)
    facts = [run_facts(r) for r in frame.itertuples()]
    differs, notes = [""] * len(frame), [[] for _ in range(len(frame))]
    for _, cell in frame.groupby([*CELL, "fingerprint"], sort=False):
        for previous, i in zip(cell.index, cell.index[1:]):
            changed = differences(facts[previous], facts[i])
            differs[i] = "; ".join(changed)
            notes[i] += [c for c in changed if c.split()[0] in ("torch", "driver")]
    for m in marks.itertuples():
        for i in frame.index[frame["run_id"] == m.run_id]:
            if applies(m.cells, {c: frame.at[i, c] for c in CELL}):
                notes[i].append(f"marked {m.kind.replace('_', ' ')}" + (f": {m.note}" if m.note else ""))
    return frame.assign(differs=differs, annotation=["; ".join(n) for n in notes])


def geomean_series(points: pd.DataFrame, first_run: int, last_run: int) -> pd.DataFrame:
    """Per benchmark and backend, the geometric mean over cells of each run's median ÷ the
    cell's median in `first_run`, for the runs from `first_run` to `last_run` (cells measured
    in `first_run` only): one row per benchmark, backend and run."""
    columns = ["benchmark", "backend", "run_id", "started_at", "geomean", "cells"]
    order = list(dict.fromkeys(points.sort_values("started_at", kind="stable")["run_id"]))
    if first_run not in order or last_run not in order:
        return pd.DataFrame(columns=columns)
    chosen = order[order.index(first_run):order.index(last_run) + 1]
    within = points[points["run_id"].isin(chosen)].dropna(subset=["time_median_s"])
    base = within.loc[within["run_id"] == first_run, [*CELL, "time_median_s"]]
    paired = within.merge(base, on=CELL, suffixes=("", "_first"))  # one join, not a loop per run
    paired["log_ratio"] = np.log(paired["time_median_s"] / paired["time_median_s_first"])
    line = (paired.groupby(["benchmark", "backend", "run_id"], sort=False)
            .agg(started_at=("started_at", "first"), log_ratio=("log_ratio", "mean"), cells=("log_ratio", "size"))
            .reset_index())
    line["geomean"] = np.exp(line.pop("log_ratio"))
    return line.sort_values(["benchmark", "backend", "started_at"], kind="stable")[columns].reset_index(drop=True)
