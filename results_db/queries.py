"""Reads, shaped as pandas DataFrames for the dashboard and the exports."""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from hadamard_bench.vocabulary import FAILED

from . import store
from .models import (Agent, BenchmarkInfo, LatestResult, Machine, Metric, MethodInfo, Result,
                     RoundRecord, Run, utcnow)
from .round_state import TIMING_SETTINGS, RoundState

# The export's leading columns, in order; any further metrics follow them.
EXPORT_COLUMNS = [
    "benchmark", "method", "backend", "is_baseline", "role", "device", "dtype", "tf32", "mode", "size",
    "time_median_s", "time_iqr_s", "time_min_s", "samples", "peak_mem_bytes", "flops",
    "flops_counted", "bytes", "status", "message", "run_id", "suite", "machine", "created_at", "commit", "kernels",
]


def read_frame(session: Session, query) -> pd.DataFrame:
    """The rows `query` selects, as a DataFrame with its column names (none: an empty frame with them)."""
    result = session.execute(query)
    columns = list(result.keys())
    return pd.DataFrame.from_records([tuple(row) for row in result], columns=columns)


def metric_names(session: Session, of=None) -> list[str]:
    """The metric names stored, for the results `of` selects (a subquery of result ids) when given:
    read through the metric table's key, not by scanning every metric ever stored."""
    query = select(Metric.name).distinct().order_by(Metric.name)
    return list(session.scalars(query if of is None else query.where(Metric.result_id.in_(of))))


def latest_ids(benchmark: str | None = None, machine: str | None = None):
    """A subquery: the ids of the latest `ok` result of every cell on every machine (of one
    benchmark, or on machines with one label, when given), read from LatestResult."""
    query = select(LatestResult.result_id)
    if benchmark is not None:
        query = query.where(LatestResult.benchmark == benchmark)
    if machine is not None:
        query = query.where(LatestResult.machine_id.in_(select(Machine.id).where(Machine.label == machine)))
    return query


def results_frame(session: Session, benchmark: str | None = None, run_id: int | None = None,
                  latest: bool = False) -> pd.DataFrame:
    """One row per result, every metric as a column (pivoted in SQL, not in Python). With
    `latest`, only each cell's latest `ok` result on each machine (LatestResult): a few rows per
    cell however many runs the database holds, which is what most pages show."""
    where = [*([Result.benchmark == benchmark] if benchmark is not None else []),
             *([Result.run_id == run_id] if run_id is not None else []),
             *([Result.id.in_(latest_ids(benchmark))] if latest else [])]
    # The chosen results' metric names only (every metric ever stored is a scan at a million results).
    names = metric_names(session, select(Result.id).where(*where) if where else None)
    pivot = [func.max(case((Metric.name == n, Metric.value))).label(n) for n in names]
    # What each cell recorded about itself (results stored before migration 0006: none).
    recorded = [Result.provenance["commit"].as_string(), Result.provenance["tf32"].as_string(),
                Result.provenance["kernels"].as_string()]
    query = (
        select(
            Result.id.label("result_id"), Result.benchmark, Result.method, Result.backend,
            Result.device, Result.dtype, Result.mode, Result.size, Result.status, Result.message,
            Result.run_id, Result.created_at, Run.suite, Machine.label.label("machine"),
            MethodInfo.role, *pivot, recorded[0].label("cell_commit"), recorded[1].label("cell_tf32"),
            recorded[2].label("kernels"),
        )
        .join(Run, Result.run_id == Run.id)
        .join(Machine, Run.machine_id == Machine.id)
        .outerjoin(MethodInfo, (MethodInfo.benchmark == Result.benchmark) & (MethodInfo.id == Result.method))
        .outerjoin(Metric, Metric.result_id == Result.id)
        .group_by(Result.id, Run.suite, Machine.label, MethodInfo.role, *recorded)
        .where(*where)
        .order_by(Result.id)
    )
    frame = read_frame(session, query)
    if frame.empty:
        frame = pd.DataFrame(columns=["result_id", *EXPORT_COLUMNS])
    frame["is_baseline"] = frame["role"].isin(["baseline", "reference"])
    frame = with_cell_provenance(session, frame)
    for col in ("time_median_s", "time_iqr_s", "time_min_s", "samples", "peak_mem_bytes", "flops",
                "flops_counted", "bytes"):
        if col not in frame:
            frame[col] = pd.NA
    # Metrics are stored as floats; counts read back as whole numbers.
    for col in ("samples", "calls_per_sample", "peak_mem_bytes", "flops", "flops_counted", "bytes"):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").round().astype("Int64")
    if "noisy" in frame:
        frame["noisy"] = pd.to_numeric(frame["noisy"], errors="coerce").round().astype("boolean")
    return frame


def tf32_of(recorded: str | None, run_record, device: str, dtype: str, reaches_cudnn: bool) -> str:
    """Whether TF32 arithmetic ran in a cell: `off`, `cudnn`, `matmul` or `matmul+cudnn`.

    A cell that recorded its switches says so itself. For one that did not (stored before
    migration 0006), its run's record decides (`tf32`: False, or the switches as text); a run
    with no record ran with PyTorch's defaults of its day, cuDNN's TF32 on and matmul's off. TF32
    exists only for float32 on CUDA, and cuDNN's switch matters only to cells that reach cuDNN."""
    if device != "cuda" or dtype != "float32":
        return "off"
    if recorded is not None:
        switches = set(recorded.split("+"))
    elif run_record is False:
        switches = set()
    else:
        switches = {"cudnn"} if run_record is None else set(str(run_record).split("+"))
    on = [s for s in ("matmul", "cudnn") if s in switches and (s != "cudnn" or reaches_cudnn)]
    return "+".join(on) or "off"


def with_cell_provenance(session: Session, frame: pd.DataFrame) -> pd.DataFrame:
    """Each result's own `commit` (its run's where it recorded none), `tf32` (tf32_of) and
    `kernels`; a float32 cell that ran TF32 is shown with dtype `tf32`, so no page presents it
    as float32 (nor pairs it with a float32 cell)."""
    wanted = sorted({int(r) for r in frame["run_id"]}) if not frame.empty else []
    runs = {rid: (p or {}) for start in range(0, len(wanted), 500)  # bounded IN lists
            for rid, p in session.execute(select(Run.id, Run.provenance).where(Run.id.in_(wanted[start:start + 500])))}
    cudnn = {(b, m): set(c or []) for b, m, c in session.execute(select(MethodInfo.benchmark, MethodInfo.id,
                                                                       MethodInfo.cudnn))}
    if frame.empty:
        return frame.assign(commit=pd.Series(dtype=object), tf32=pd.Series(dtype=object),
                            kernels=pd.Series(dtype=object)).drop(columns=["cell_commit", "cell_tf32"],
                                                                  errors="ignore")
    frame = frame.copy()
    frame["commit"] = [c if isinstance(c, str) else runs.get(r, {}).get("git_commit")
                       for c, r in zip(frame["cell_commit"], frame["run_id"])]
    frame["tf32"] = [tf32_of(t if isinstance(t, str) else None, runs.get(r, {}).get("tf32"), d, dt,
                             b in cudnn.get((bench, m), ()))
                     for t, r, d, dt, b, bench, m in zip(frame["cell_tf32"], frame["run_id"], frame["device"],
                                                         frame["dtype"], frame["backend"], frame["benchmark"],
                                                         frame["method"])]
    frame["kernels"] = [", ".join(json.loads(k)) if isinstance(k, str) and k.startswith("[") else (k or "")
                        for k in frame["kernels"]]
    frame.loc[(frame["tf32"] != "off") & (frame["dtype"] == "float32"), "dtype"] = "tf32"
    return frame.drop(columns=["cell_commit", "cell_tf32"])


PROVENANCE_COLUMNS = ["git_commit", "torch", "cuda", "threads"]


def export_frame(session: Session, run_id: int | None = None, with_ids: bool = False) -> pd.DataFrame:
    """Every result with every metric, and where it came from (the run's provenance); with
    `with_ids`, each row's result_id first (to look its samples up)."""
    frame = results_frame(session, run_id=run_id)
    runs = pd.DataFrame(
        [{"run_id": r.id, **{k: (r.provenance or {}).get(k) for k in PROVENANCE_COLUMNS}}
         for r in session.scalars(select(Run))],
        columns=["run_id", *PROVENANCE_COLUMNS])
    frame = frame.merge(runs, on="run_id", how="left")
    extra = [c for c in frame.columns if c not in EXPORT_COLUMNS + PROVENANCE_COLUMNS and c != "result_id"]
    return frame[["result_id"] * with_ids + EXPORT_COLUMNS + PROVENANCE_COLUMNS + extra]


CELL_COLUMNS = list(store.CELL_COLUMNS)


def _ok_samples(*extra):
    """`ok` results with their run, machine label, cell key, samples, rounds and cycles (and `extra`)."""
    return (select(*extra, Result.run_id, Machine.label.label("machine"), *(getattr(Result, c) for c in CELL_COLUMNS),
                   Result.samples, Result.sample_rounds, Result.sample_cycles, Run.paired_with)
            .join(Run, Result.run_id == Run.id).join(Machine, Run.machine_id == Machine.id)
            .where(Result.status == "ok"))


def label_fingerprint(label: str):
    """A scalar subquery: the hardware fingerprint of the latest run on machines labelled `label`.
    A label is a hostname and a CPU or GPU model, which two different machines can share (a 2-core
    and a 4-core VM both called `vm`); a machine's latest cells come from its current hardware only."""
    return (select(Machine.fingerprint).join(Run, Run.machine_id == Machine.id).where(Machine.label == label)
            .order_by(Run.started_at.desc(), Run.id.desc()).limit(1).scalar_subquery())


def label_fingerprints(session: Session, label: str) -> int:
    """How many hardware fingerprints carry the machine label."""
    return session.scalar(select(func.count(func.distinct(Machine.fingerprint))).where(Machine.label == label)) or 0


def samples_frame(session: Session, run_id: int | None = None, machine: str | None = None,
                  benchmark: str | None = None) -> pd.DataFrame:
    """`ok` results with their raw samples, the round and cycle of each and whose cycles they pair
    with (`turns`: turns_of), in how many rounds the cell was timed unsettled (bench_runner.
    settle; NaN where not recorded) and how many of its later rounds failed (`failed_rounds`, NaN
    for none): a run's cells, or for a machine label each cell's latest result on that machine's
    current hardware (label_fingerprint; one row per cell either way), unless the cell failed
    there since (failures_frame: it is one of the machine's failed cells then, not an old time)."""
    query = _ok_samples(Result.id.label("result_id"), metric_of("unsettled_rounds"),
                        metric_of("failed_rounds")).order_by(Result.id)
    if run_id is not None:
        query = query.where(Result.run_id == run_id)
    if machine is not None:
        query = query.where(Machine.label == machine, Machine.fingerprint == label_fingerprint(machine),
                            Result.id.in_(latest_ids(benchmark, machine)))
    if benchmark is not None:
        query = query.where(Result.benchmark == benchmark)
    frame = read_frame(session, query)
    if frame.empty:
        return pd.DataFrame(columns=["result_id", "unsettled_rounds", "failed_rounds", "run_id", "machine",
                                     *CELL_COLUMNS, "samples", "sample_rounds", "sample_cycles", "turns"])
    frame["turns"] = [turns_of(int(r), int(p) if pd.notna(p) else None) for r, p in zip(frame["run_id"], frame["paired_with"])]
    frame = frame.drop(columns="paired_with").drop_duplicates(CELL_COLUMNS, keep="last").reset_index(drop=True)
    if machine is not None:
        frame = frame[~_stored_after(frame, _machine_failures(session, machine))].reset_index(drop=True)
    return frame


def metric_of(name: str):
    """A scalar subquery, labelled `name`: the result's metric of that name (NULL where it has none)."""
    return (select(Metric.value).where(Metric.result_id == Result.id, Metric.name == name)
            .scalar_subquery().label(name))


def failures_frame(session: Session, run_id: int | None = None, machine: str | None = None) -> pd.DataFrame:
    """A run's cells that failed (vocabulary.FAILED: a failed check, an error, out of memory, a
    crash, a timeout, an impossible time; not a cell skipped as unable to run here), with their
    status and message: what a comparison of the run reports beside the cells it could judge.
    A cell `ok` in some rounds that failed in others is among them, `ok` with its `failed_rounds`
    (store.note_round_failure; NaN for a cell that failed outright): a kernel that crashes now and
    then is broken too, though its other rounds still time it. For a machine label instead of a
    run: the cells whose newest measurement on that machine's current hardware failed, outright
    (newer than the cell's latest `ok` result, which samples_frame then leaves out) or in some
    rounds of that latest `ok` result."""
    failed_rounds = metric_of("failed_rounds")
    columns = [Result.id.label("result_id"), *(getattr(Result, c) for c in CELL_COLUMNS), Result.status,
               Result.message, failed_rounds]
    if machine is None:
        query = select(*columns).where(Result.run_id == run_id, Result.status.in_(FAILED) | (failed_rounds > 0))
        frame = read_frame(session, query.order_by(Result.id))
    else:
        latest = read_frame(session, select(*columns).join(Run, Result.run_id == Run.id)
                            .join(Machine, Run.machine_id == Machine.id)
                            .where(Result.id.in_(latest_ids(machine=machine)),
                                   Machine.fingerprint == label_fingerprint(machine)).order_by(Result.id))
        latest = latest.drop_duplicates(CELL_COLUMNS, keep="last")
        outright = _machine_failures(session, machine)
        flaky = latest[pd.to_numeric(latest["failed_rounds"], errors="coerce").fillna(0) > 0]
        parts = [f for f in (outright[~_stored_after(outright, latest)], flaky[~_stored_after(flaky, outright)])
                 if not f.empty]
        frame = pd.concat(parts).sort_values("result_id") if parts else latest.iloc[0:0]
    if frame.empty:
        return pd.DataFrame(columns=[*CELL_COLUMNS, "status", "message", "failed_rounds"])
    return frame.drop(columns="result_id").reset_index(drop=True)


def failed_since_latest(session: Session) -> pd.DataFrame:
    """Every machine's cells whose newest measurement failed outright after their latest `ok`
    result (failures_frame(machine=...) for each label, with its `machine`): the pages that show
    a machine's latest `ok` results say that these are older than what the machine last did."""
    frames = []
    for label in machines_with_results(session):
        failed = failures_frame(session, machine=label)
        failed = failed[failed["status"] != "ok"]  # `ok` ones, failed in some rounds, are what is shown
        if not failed.empty:
            frames.append(failed.assign(machine=label))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=[*CELL_COLUMNS, "status", "message", "failed_rounds", "machine"])


def _machine_failures(session: Session, machine: str) -> pd.DataFrame:
    """The newest outright failure of each cell among the plain runs on machine label `machine`'s
    current hardware (failures_frame's columns with `result_id`): few rows, read by their index."""
    # The runs first, as a subquery: it lets the database read the results by their (run_id,
    # status) index, where a join scanned every result (0.2 s against 3 ms at a million in SQLite).
    runs = (select(Run.id).join(Machine, Run.machine_id == Machine.id)
            .where(Run.plain, Machine.label == machine, Machine.fingerprint == label_fingerprint(machine)))
    query = (select(Result.id.label("result_id"), *(getattr(Result, c) for c in CELL_COLUMNS), Result.status,
                    Result.message, metric_of("failed_rounds"))
             .where(Result.run_id.in_(runs), Result.status.in_(FAILED)).order_by(Result.id))
    return read_frame(session, query).drop_duplicates(CELL_COLUMNS, keep="last")


def _stored_after(cells: pd.DataFrame, others: pd.DataFrame) -> pd.Series:
    """For each row of `cells` (a cell's key and `result_id`, one row per cell): whether `others`
    (the same, one row per cell) holds a result of its cell stored after it."""
    if cells.empty:
        return pd.Series(False, index=cells.index, dtype=bool)
    later = cells[CELL_COLUMNS].merge(others[[*CELL_COLUMNS, "result_id"]], on=CELL_COLUMNS, how="left")["result_id"]
    return pd.Series((later.fillna(-1).to_numpy() > cells["result_id"].to_numpy()), index=cells.index)


def samples_of(session: Session, result_ids) -> dict[int, tuple[list, list | None, list | None, int]]:
    """result id → (samples, sample_rounds, sample_cycles, turns), for the dashboard's
    comparisons of chosen cells: bench_runner.stats.compare_entries pairs the cycles of two cells
    with the same `turns` (turns_of: their run, or their `ab` session)."""
    ids = [int(i) for i in result_ids]
    out = {}
    for start in range(0, len(ids), 500):  # bounded IN lists
        query = (select(Result.id, Result.samples, Result.sample_rounds, Result.sample_cycles, Result.run_id,
                        Run.paired_with).join(Run, Result.run_id == Run.id)
                 .where(Result.id.in_(ids[start:start + 500])))
        for rid, samples, rounds, cycles, run_id, paired_with in session.execute(query):
            out[rid] = (samples or [], rounds, cycles, turns_of(run_id, paired_with))
    return out


def turns_of(run_id: int, paired_with: int | None) -> int:
    """Which cells' cycles pair with a run's: its own, or, for a run of an `ab` session, those of
    the session's two runs alike (named by the first)."""
    return min(run_id, paired_with) if paired_with is not None else run_id


def recent_plain_runs(session: Session, fingerprint: str, count: int) -> list[int]:
    """The newest `count` plain runs (Run.plain: not an `ab` session's sides) on one hardware
    fingerprint, newest first."""
    return list(session.scalars(select(Run.id).join(Machine, Run.machine_id == Machine.id)
                                .where(Machine.fingerprint == fingerprint, Run.plain)
                                .order_by(Run.id.desc()).limit(count)))


def round_states(session: Session, run_ids) -> pd.DataFrame:
    """Each round of the given runs: its machine state and drift controls, one row per round part,
    with its run's TIMING_SETTINGS (round_state; columns `run_threads`, `run_torch`, `run_openmp`)."""
    ids = [int(r) for r in run_ids]
    settings = {rid: p if isinstance(p, dict) else {}
                for rid, p in session.execute(select(Run.id, Run.provenance).where(Run.id.in_(ids)))}
    rows = []
    for g in session.scalars(select(RoundRecord).where(RoundRecord.run_id.in_(ids)).order_by(RoundRecord.id)):
        rows.append({"run_id": g.run_id, "round": g.round + 1, "cells": g.cells, "started_at": g.started_at,
                     **RoundState.from_json(g.state).row(),
                     **{f"run_{k}": settings.get(g.run_id, {}).get(k) for k in TIMING_SETTINGS}})
    return pd.DataFrame(rows)


def runs_frame(session: Session, counts: bool = True) -> pd.DataFrame:
    """Every run, newest first, with how many of its cells ended `ok` and failed (`counts`: read
    from every result, through the (run_id, status) index; without them, from the run table
    alone, which is what a progress bar polling every few seconds needs), and `paired_with`, the
    other side of an `ab` session's run."""
    columns = [Run.id.label("run_id"), Run.suite, Run.status, Machine.label.label("machine"), Run.started_at,
               Run.finished_at, Run.rounds, Run.cells_done, Run.cells_total, Run.paired_with]
    if not counts:
        return read_frame(session, select(*columns, Run.message).join(Machine, Run.machine_id == Machine.id)
                      .order_by(Run.id.desc()))
    ok = func.sum(case((Result.status == "ok", 1), else_=0))
    failed = func.sum(case((Result.status.in_(FAILED), 1), else_=0))
    query = (
        select(*columns, ok.label("cells_ok"), failed.label("cells_failed"), Run.message)
        .join(Machine, Run.machine_id == Machine.id)
        .outerjoin(Result, Result.run_id == Run.id)
        .group_by(Run.id, Machine.label)
        .order_by(Run.id.desc())
    )
    return read_frame(session, query)


def session_looks(session: Session) -> dict[int, int]:
    """Runs of `ab` sessions that looked at their cells halfway: run id → the round it looked after
    (bench_runner.ab.look_round)."""
    return {rid: int(p["ab"]["look"]) for rid, p in session.execute(select(Run.id, Run.provenance)
                                                                  .where(Run.paired_with.is_not(None)))
            if isinstance(p, dict) and isinstance(p.get("ab"), dict) and p["ab"].get("look")}


def busy_at_start(session: Session) -> dict[int, list[str]]:
    """Runs that started on a busy machine: run id → why it looked busy."""
    return {rid: p["busy_at_start"] for rid, p in session.execute(select(Run.id, Run.provenance))
            if isinstance(p, dict) and p.get("busy_at_start")}


def catalogue_frame(session: Session) -> pd.DataFrame:
    query = (
        select(BenchmarkInfo.domain, BenchmarkInfo.id.label("benchmark"), BenchmarkInfo.title,
               BenchmarkInfo.contract, BenchmarkInfo.params, BenchmarkInfo.x_param,
               MethodInfo.id.label("method"), MethodInfo.role, MethodInfo.summary, MethodInfo.latex,
               MethodInfo.exponents, MethodInfo.backends, MethodInfo.against)
        .join(MethodInfo, MethodInfo.benchmark == BenchmarkInfo.id)
    )
    return read_frame(session, query)


def benchmarks_with_results(session: Session) -> list[str]:
    return list(session.scalars(select(LatestResult.benchmark).distinct()))


def machines_with_results(session: Session) -> list[str]:
    """Labels of the machines with an `ok` result."""
    return list(session.scalars(select(Machine.label).where(Machine.id.in_(select(LatestResult.machine_id)))
                                .distinct().order_by(Machine.label)))


def runs_with_results(session: Session, benchmark: str) -> list[int]:
    """The runs with an `ok` result of `benchmark`, newest first."""
    return list(session.scalars(select(Result.run_id).where(Result.benchmark == benchmark, Result.status == "ok")
                                .distinct().order_by(Result.run_id.desc())))


def result_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Result))


def has_runs(session: Session) -> bool:
    """Whether this database holds a run of its own (imported reference runs do not count)."""
    return any("imported" not in (p or {}) for p in session.scalars(select(Run.provenance)))


def reference_machines(session: Session) -> list[str]:
    """Labels of the machines whose runs all came from shipped reference bundles (results/reference/)."""
    shipped: dict[str, bool] = {}
    for label, provenance in session.execute(select(Machine.label, Run.provenance).join(Run)):
        source = ((provenance or {}).get("imported") or {}).get("source", "")
        shipped[label] = shipped.get(label, True) and source.startswith("results/reference/")
    return sorted(label for label, only in shipped.items() if only)


def calibrations(session: Session) -> pd.DataFrame:
    """Each run's measured ceilings, one row per run and device."""
    rows = []
    for run in session.scalars(select(Run).order_by(Run.id)):
        for device, ceiling in (run.calibration or {}).items():
            rows.append({"run_id": run.id, "machine": run.machine.label, "device": device,
                         "copy_gbps": ceiling.get("copy_gbps"), "matmul_gflops": ceiling.get("matmul_gflops", {})})
    return pd.DataFrame(rows, columns=["run_id", "machine", "device", "copy_gbps", "matmul_gflops"])


def machines(session: Session) -> pd.DataFrame:
    return read_frame(session, select(Machine.id, Machine.label, Machine.hostname, Machine.gpu_name,
                                  Machine.torch_version, Machine.cuda_version))


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells a spreadsheet would run as a formula (=, +, -, @ first) get a leading quote.

    A stored error message or an imported name is data, never a formula, when a CSV
    export is opened in Excel or LibreOffice. Numbers are left as they are."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v)
    return safe


AGENT_ALIVE_S = 30.0  # an agent beats every 5 s; six missed beats and it counts as gone


def agents_frame(session: Session) -> pd.DataFrame:
    """Every agent that ever registered, with whether it is alive (seen in the last 30 s)."""
    rows = []
    now = utcnow()
    for agent in session.scalars(select(Agent).order_by(Agent.label)):
        seen = agent.last_seen if agent.last_seen.tzinfo else agent.last_seen.replace(tzinfo=now.tzinfo)
        age = (now - seen).total_seconds()
        rows.append({"label": agent.label, "hostname": agent.hostname, "status": agent.status,
                     "run_id": agent.run_id, "last_seen": seen, "seconds_ago": round(age, 1),
                     "alive": agent.status != "stopped" and age < AGENT_ALIVE_S})
    return pd.DataFrame(rows, columns=["label", "hostname", "status", "run_id", "last_seen", "seconds_ago", "alive"])
