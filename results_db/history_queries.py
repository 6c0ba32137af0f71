"""Reads behind a machine's history: every plain run of a cell on one hardware fingerprint (an
`ab` session's sides are that session's, not the machine's history: `Run.plain`), the
cached history points, the cells still without one, the fingerprints, the marks and the
measured noise floors. What bench_runner.history, `gate`, `compare`, `history`, `mark`,
`noise` and the History and Diff pages read."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hadamard_bench.vocabulary import FAILED

from .models import HistoryPoint, LatestResult, Machine, Mark, NoiseFloor, Result, Run
from .queries import CELL_COLUMNS, metric_of, read_frame


def history_frame(session: Session, benchmark: str | None = None, method: str | None = None,
                  backend: str | None = None, machine: str | None = None, fingerprint: str | None = None,
                  samples: bool = True, details: bool = True, run_ids=None, since=None) -> pd.DataFrame:
    """Every `ok` result of the chosen cells in every plain run (of `run_ids`, when given), oldest run
    first: one row per cell and run, with the run's start, provenance and options, the machine's label, fingerprint and
    driver, the cached history point (time_median_s, ci_low, ci_high, change_point; `cached`
    false where not yet computed; search_from) and, unless `samples=False`, the samples. `since`:
    only runs started then or later."""
    columns = [Result.id.label("result_id"), Result.run_id, Run.started_at,
               *((Run.provenance, Run.options) if details else ()),
               Machine.label.label("machine"), Machine.fingerprint, Machine.driver_version,
               *(getattr(Result, c) for c in CELL_COLUMNS),
               *((Result.samples, Result.sample_rounds) if samples else ()),
               HistoryPoint.time_median_s, HistoryPoint.ci_low, HistoryPoint.ci_high, HistoryPoint.change_point,
               HistoryPoint.search_from, HistoryPoint.result_id.is_not(None).label("cached")]
    query = (select(*columns).join(Run, Result.run_id == Run.id).join(Machine, Run.machine_id == Machine.id)
             .outerjoin(HistoryPoint, HistoryPoint.result_id == Result.id)
             .where(Result.status == "ok", Run.plain).order_by(Run.started_at, Run.id, Result.id))
    for column, value in (("benchmark", benchmark), ("method", method), ("backend", backend)):
        if value is not None:
            query = query.where(getattr(Result, column) == value)
    if machine is not None:  # a label stands for the fingerprints of the machines it names
        query = query.where(Machine.fingerprint.in_(select(Machine.fingerprint).where(Machine.label == machine)))
    if fingerprint is not None:
        query = query.where(Machine.fingerprint == fingerprint)
    if run_ids is not None:
        query = query.where(Result.run_id.in_([int(r) for r in run_ids]))
    if since is not None:
        query = query.where(Run.started_at >= since)
    frame = read_frame(session, query)
    if frame.empty:
        return pd.DataFrame(columns=[*query.selected_columns.keys(), *(["commit"] if details else [])])
    if details:
        frame["commit"] = frame["provenance"].map(lambda p: (p or {}).get("git_commit"))
    return frame


def newest_before(session: Session, fingerprint: str, before, per_cell: int) -> pd.DataFrame:
    """Each cell's `per_cell` newest `ok` results on `fingerprint` from plain runs started before
    `before`, oldest first, with their samples and failed rounds: what `gate` judges a run
    against. The window function picks them in the database, so a history of hundreds of runs is
    not read whole."""
    newest = func.row_number().over(partition_by=[getattr(Result, c) for c in CELL_COLUMNS],
                                    order_by=[Run.started_at.desc(), Run.id.desc(), Result.id.desc()])
    ranked = (select(Result.id.label("result_id"), Result.run_id, Run.started_at,
                     *(getattr(Result, c) for c in CELL_COLUMNS), newest.label("newest"))
              .join(Run, Result.run_id == Run.id).join(Machine, Run.machine_id == Machine.id)
              .where(Result.status == "ok", Run.plain, Machine.fingerprint == fingerprint, Run.started_at < before)
              .subquery())
    query = (select(*(c for c in ranked.c if c.name != "newest"), Result.samples, Result.sample_rounds,
                    metric_of("failed_rounds"))
             .join(Result, Result.id == ranked.c.result_id).where(ranked.c.newest <= per_cell)
             .order_by(ranked.c.started_at, ranked.c.run_id, ranked.c.result_id))
    frame = read_frame(session, query)
    return frame if not frame.empty else pd.DataFrame(
        columns=["result_id", "run_id", "started_at", *CELL_COLUMNS, "samples", "sample_rounds", "failed_rounds"])


def failed_before(session: Session, fingerprint: str, before) -> pd.DataFrame:
    """The cells (cell key columns, one row each) that failed outright in a plain run on
    `fingerprint` started before `before`: what `gate` knows already failed here, so that a cell
    failing again is not news, where one with no result at all before is."""
    query = (select(*(getattr(Result, c) for c in CELL_COLUMNS)).distinct()
             .join(Run, Result.run_id == Run.id).join(Machine, Run.machine_id == Machine.id)
             .where(Result.status.in_(FAILED), Run.plain, Machine.fingerprint == fingerprint, Run.started_at < before))
    frame = read_frame(session, query)
    return frame if not frame.empty else pd.DataFrame(columns=CELL_COLUMNS)


def history_cells(session: Session, fingerprint: str) -> pd.DataFrame:
    """The cells (cell key columns) with an `ok` result on `fingerprint`: one row each, from
    LatestResult, for the History page's choices."""
    query = (select(*(getattr(LatestResult, c) for c in CELL_COLUMNS)).distinct()
             .join(Machine, LatestResult.machine_id == Machine.id).where(Machine.fingerprint == fingerprint))
    frame = read_frame(session, query)
    return frame if not frame.empty else pd.DataFrame(columns=CELL_COLUMNS)


def history_benchmarks(session: Session) -> list[str]:
    """The benchmarks with a stored result, from LatestResult: what `history` reads one at a time."""
    return list(session.scalars(select(LatestResult.benchmark).distinct().order_by(LatestResult.benchmark)))


def history_runs(session: Session, fingerprint: str) -> pd.DataFrame:
    """The plain runs on `fingerprint` with an `ok` result (run_id, started_at), oldest first."""
    query = (select(Run.id.label("run_id"), Run.started_at).join(Machine, Run.machine_id == Machine.id)
             .where(Machine.fingerprint == fingerprint, _in_history()).order_by(Run.started_at, Run.id))
    frame = read_frame(session, query)
    return frame if not frame.empty else pd.DataFrame(columns=["run_id", "started_at"])


def _in_history():
    """Whether a run is part of its machine's history: a plain run with an `ok` result (an EXISTS
    that the result table's run index answers at the run's first rows, not a scan of every result)."""
    return Run.plain & select(Result.id).where(Result.run_id == Run.id, Result.status == "ok").exists()


def stale_cells(session: Session, fingerprint: str | None = None) -> list[tuple]:
    """(fingerprint, *cell key) of every cell with an `ok` result that has no history point yet."""
    return list(stale_counts(session, fingerprint))


def stale_counts(session: Session, fingerprint: str | None = None) -> dict[tuple, int]:
    """(fingerprint, *cell key) → how many of the cell's `ok` results in plain runs have no history point yet."""
    key = (Machine.fingerprint, *(getattr(Result, c) for c in CELL_COLUMNS))
    query = (select(*key, func.count()).join(Run, Result.run_id == Run.id).join(Machine, Run.machine_id == Machine.id)
             .outerjoin(HistoryPoint, HistoryPoint.result_id == Result.id)
             .where(Result.status == "ok", Run.plain, HistoryPoint.result_id.is_(None)).group_by(*key))
    if fingerprint is not None:
        query = query.where(Machine.fingerprint == fingerprint)
    return {tuple(row[:-1]): int(row[-1]) for row in session.execute(query)}


def search_starts(session: Session, fingerprint: str) -> pd.DataFrame:
    """Where each cell's change-point search resumes on `fingerprint` (its point with
    search_from): the cell key, result_id, run_id and the run's start."""
    query = (select(*(getattr(Result, c) for c in CELL_COLUMNS), Result.id.label("result_id"), Result.run_id,
                    Run.started_at)
             .join(HistoryPoint, HistoryPoint.result_id == Result.id).join(Run, Result.run_id == Run.id)
             .join(Machine, Run.machine_id == Machine.id)
             .where(HistoryPoint.search_from.is_(True), Machine.fingerprint == fingerprint))
    frame = read_frame(session, query)
    return frame if not frame.empty else pd.DataFrame(columns=[*CELL_COLUMNS, "result_id", "run_id", "started_at"])


def fingerprints_frame(session: Session) -> pd.DataFrame:
    """One row per fingerprint with `ok` results: what hardware it is, the hostnames and labels
    that share it, how many plain runs it has and when the latest started."""
    query = (select(Machine.fingerprint, Machine.label, Machine.hostname, Machine.cpu_model, Machine.cpu_cores,
                    Machine.memory_gib, Machine.gpu_name, Machine.driver_version,
                    func.count(Run.id).label("runs"), func.max(Run.started_at).label("latest"))
             .join(Run, Run.machine_id == Machine.id)
             .where(Machine.id.in_(select(LatestResult.machine_id)), _in_history()).group_by(Machine.id))
    frame = read_frame(session, query)
    columns = ["fingerprint", "hardware", "labels", "hostnames", "runs", "latest"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for fp, group in frame.groupby("fingerprint", sort=False):
        first = group.iloc[0].where(group.iloc[0].notna(), None)  # an all-None column reads back as NaN
        memory = f"{int(first.memory_gib)} GiB" if first.memory_gib is not None else "memory not recorded"
        gpu = (f"{first.gpu_name}, driver {str(first.driver_version).split('.')[0]}"
               if first.gpu_name and first.driver_version else first.gpu_name)
        hardware = " · ".join(p for p in (gpu, f"{first.cpu_model} ×{first.cpu_cores}", memory) if p)
        rows.append({"fingerprint": fp, "hardware": hardware, "labels": sorted(set(group["label"])),
                     "hostnames": sorted(set(group["hostname"])), "runs": int(group["runs"].sum()),
                     "latest": group["latest"].max()})
    return pd.DataFrame(rows, columns=columns).sort_values("latest", ascending=False).reset_index(drop=True)


def marks_frame(session: Session, fingerprint: str | None = None) -> pd.DataFrame:
    """Every mark (on runs of `fingerprint`, when given), oldest first."""
    query = (select(Mark.id, Mark.run_id, Mark.kind, Mark.note, Mark.cells, Mark.created_at,
                    Machine.fingerprint, Run.started_at)
             .join(Run, Mark.run_id == Run.id).join(Machine, Run.machine_id == Machine.id).order_by(Mark.id))
    if fingerprint is not None:
        query = query.where(Machine.fingerprint == fingerprint)
    frame = read_frame(session, query)
    return frame if not frame.empty else pd.DataFrame(
        columns=["id", "run_id", "kind", "note", "cells", "created_at", "fingerprint", "started_at"])


NOISE_COLUMNS = [*CELL_COLUMNS, "drift", "run_ids", "measured_at"]


def noise_floors(session: Session, fingerprint: str) -> pd.DataFrame:
    """The fingerprint's measured noise floors (`hadamard-bench noise`), one row per cell:
    the cell key, drift, the runs it was measured from and when."""
    frame = read_frame(session, select(*(getattr(NoiseFloor, c) for c in NOISE_COLUMNS))
                       .where(NoiseFloor.fingerprint == fingerprint))
    return frame if not frame.empty else pd.DataFrame(columns=NOISE_COLUMNS)


def run_fingerprints(session: Session, run_ids) -> set[str]:
    """The hardware fingerprints the runs were measured on."""
    return set(session.scalars(select(Machine.fingerprint).join(Run, Run.machine_id == Machine.id)
                               .where(Run.id.in_(list(run_ids)))))
