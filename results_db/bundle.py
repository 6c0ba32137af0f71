"""Runs as a self-contained JSON bundle: written by one database, read into another.

A bundle carries whole runs with their machine, provenance, calibration, results,
metrics and timing samples, and the catalogue entries they refer to, so a run
measured on a GPU server (or shipped with the project under results/reference/)
shows in another database exactly as it was stored.

Reading is strict (results_db.bundle_format checks a bundle in full before anything is
written). Importing the same run twice adds it once. The two runs of an `ab` session travel
together and name each other by origin (machine key and start), so they are a session again in
the database that reads them.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from . import store
from .bundle_format import FORMAT, VERSION, BundleError, validate
from .models import BenchmarkInfo, Machine, Mark, Metric, MethodInfo, Result, RoundRecord, Run, utcnow
from .store import MACHINE_FIELDS, fingerprint_of


def _utc(t: datetime) -> datetime:
    # Times are stored in UTC (models.utcnow); SQLite hands them back without their zone.
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def _iso(t: datetime | None) -> str | None:
    return _utc(t).isoformat() if t is not None else None


def dirty_runs(data: dict) -> list[str]:
    """`started_at` of each run in a bundle that was measured from a checkout with local changes
    (its commit ends in -dirty, or a cell recorded `dirty`): numbers no commit reproduces."""
    out = []
    for run in data.get("runs", []):
        commit = str((run.get("provenance") or {}).get("git_commit") or "")
        if commit.endswith("-dirty") or any((r.get("provenance") or {}).get("dirty") for r in run.get("results", [])):
            out.append(run.get("started_at"))
    return out


def export_bundle(session: Session, run_ids: list[int] | None = None) -> dict[str, Any]:
    """The runs (all, or those given, with the other side of any `ab` session among them: a
    session travels whole) as one JSON-ready dict."""
    query = select(Run).order_by(Run.id)
    if run_ids:
        partners = session.scalars(select(Run.paired_with).where(Run.id.in_(run_ids), ~Run.plain))
        query = query.where(Run.id.in_({*run_ids, *partners}))
    chosen = list(session.scalars(query))
    origins = {run.id: origin_of(run.machine.key, run.started_at) for run in chosen}
    runs, used = [], set()
    for run in chosen:
        results = []
        for r in session.scalars(select(Result).where(Result.run_id == run.id).order_by(Result.id)):
            used.add((r.benchmark, r.method))
            results.append({
                "benchmark": r.benchmark, "method": r.method, "backend": r.backend, "device": r.device,
                "dtype": r.dtype, "mode": r.mode, "size": r.size, "status": r.status, "message": r.message,
                "created_at": _iso(r.created_at), "samples": r.samples, "sample_rounds": r.sample_rounds,
                "sample_cycles": r.sample_cycles,
                "provenance": r.provenance,
                "metrics": {m.name: m.value for m in r.metrics if math.isfinite(m.value)},
            })
        m = run.machine
        runs.append({
            "machine": {"key": m.key, "label": m.label, **{f: getattr(m, f) for f in MACHINE_FIELDS}},
            "suite": run.suite, "status": run.status, "options": run.options, "provenance": run.provenance,
            "calibration": run.calibration, "cells_total": run.cells_total, "cells_done": run.cells_done,
            "rounds": run.rounds, "seed": run.seed, "message": run.message,
            "started_at": _iso(run.started_at), "finished_at": _iso(run.finished_at),
            "paired_with": origins.get(run.paired_with),
            "round_records": [{"round": g.round, "seed": g.seed, "cells": g.cells, "state": g.state,
                               "started_at": _iso(g.started_at), "finished_at": _iso(g.finished_at)}
                              for g in run.round_records],
            # People's word on the history at this run travels with it (read by bundles of this
            # version on; an older reader leaves it out).
            "marks": [{"kind": k.kind, "note": k.note, "cells": k.cells, "created_at": _iso(k.created_at)}
                      for k in session.scalars(select(Mark).where(Mark.run_id == run.id).order_by(Mark.id))],
            "results": results,
        })
    benchmarks = sorted({b for b, _ in used})
    catalogue = {
        "benchmarks": [{"id": b.id, "domain": b.domain, "title": b.title, "contract": b.contract,
                        "params": b.params, "x_param": b.x_param}
                       for b in session.scalars(select(BenchmarkInfo).where(BenchmarkInfo.id.in_(benchmarks)))],
        "methods": [{"benchmark": m.benchmark, "id": m.id, "role": m.role, "summary": m.summary, "latex": m.latex,
                     "exponents": m.exponents, "backends": m.backends, "against": m.against,
                     "cudnn": m.cudnn or []}
                    for m in session.scalars(select(MethodInfo).where(MethodInfo.benchmark.in_(benchmarks)))
                    if (m.benchmark, m.id) in used],
    }
    return {"format": FORMAT, "version": VERSION, "exported_at": _iso(datetime.now(timezone.utc)),
            "catalogue": catalogue, "runs": runs}


def origin_of(machine_key: str, started_at: datetime) -> str:
    """A run's identity across databases: its machine's key and its start, in UTC."""
    return f"{machine_key}@{_utc(started_at).isoformat()}"


def known_origins(session: Session) -> dict[str, int]:
    """Every stored run's origin (its machine and start) → its id: a run imported again is skipped."""
    return {origin_of(key, started): run_id for key, started, run_id in session.execute(
        select(Machine.key, Run.started_at, Run.id).join(Run, Run.machine_id == Machine.id))}


def machine_for(session: Session, facts: dict, label: str | None) -> Machine:
    """The stored machine with these facts' key, else a new one, named `label` when given."""
    machine = session.scalar(select(Machine).where(Machine.key == facts["key"]))
    if machine is None:
        machine = Machine(**{**facts, "label": label or facts["label"], "fingerprint": fingerprint_of(facts)})
        session.add(machine)
    return machine


def store_results(session: Session, run_id: int, results: list[dict]) -> None:
    """Checked result dicts (cell columns, status, metrics, optional message, samples, time) as
    rows: two bulk INSERTs (results, returning their ids in order; then their metrics), five
    times faster than an ORM object per result and metric for a bundle of hundreds of results."""
    session.flush()  # the run and anything else pending go first
    if not results:
        return
    now = utcnow()
    rows = [{**{k: v for k, v in r.items() if k != "metrics"}, "run_id": run_id,
             "created_at": r.get("created_at") or now} for r in results]
    ids = session.scalars(insert(Result).returning(Result.id, sort_by_parameter_order=True), rows).all()
    metrics = [{"result_id": rid, "name": k, "value": v} for rid, r in zip(ids, results) for k, v in r["metrics"].items()]
    if metrics:
        session.execute(insert(Metric), metrics)
    store.keep_latest(session, Result.run_id == run_id)


def import_bundle(session: Session, data: dict, source: str, label: str | None = None) -> tuple[list[int], int]:
    """Store the bundle's runs; returns the new run ids and how many were already there.

    Everything is checked first; the caller's transaction then either takes all of it or,
    on error, none. `label` names the machine of every run where the database has not
    met that machine before (shipped reference results use it)."""
    runs, benchmarks, methods = validate(data)
    origins = [origin_of(run["machine"]["key"], run["started_at"]) for run in runs]
    for i, run in enumerate(runs):
        if run["paired_with"] is not None and run["paired_with"] not in origins:
            raise BundleError(f"run {i + 1}: a side of an `ab` session whose other side "
                              f"({run['paired_with'][:80]}) is not in the bundle")
    known = known_origins(session)
    for b in benchmarks:  # the catalogue this database already has wins: it is the code's
        if session.get(BenchmarkInfo, b["id"]) is None:
            session.add(BenchmarkInfo(**b))
    session.flush()
    for m in methods:
        if session.get(MethodInfo, (m["benchmark"], m["id"])) is None and session.get(BenchmarkInfo, m["benchmark"]):
            session.add(MethodInfo(**m))
    added, skipped, new = [], 0, []
    for run, origin in zip(runs, origins):
        if origin in known:
            skipped += 1
            continue
        machine = machine_for(session, run["machine"], label)
        status = run["status"]
        if status in ("queued", "running", "cancelling"):  # no process here will finish it
            status = "interrupted"
        stored = Run(machine=machine, suite=run["suite"], status=status, options=run["options"],
                     provenance={**run["provenance"], "imported": {"source": source, "origin": origin}},
                     calibration=run["calibration"], cells_total=run["cells_total"] or len(run["results"]),
                     cells_done=run["cells_done"] if run["cells_done"] is not None else len(run["results"]),
                     rounds=run["rounds"], seed=run["seed"], message=run["message"], started_at=run["started_at"],
                     finished_at=run["finished_at"])
        session.add(stored)
        session.flush()
        known[origin] = stored.id
        new.append((stored, run))
    # The sides of a session name each other before their results land, so that neither becomes
    # the machine's latest result (store.keep_latest). A session travels whole, so both are new
    # here, or both were stored before and skipped.
    for stored, run in new:
        stored.paired_with = known.get(run["paired_with"])
    session.flush()
    for stored, run in new:
        session.add_all([RoundRecord(run_id=stored.id, pid=None, **g) for g in run["round_records"]])
        session.add_all([Mark(run_id=stored.id, **{k: v for k, v in mark.items() if v is not None})
                         for mark in run["marks"]])
        store_results(session, stored.id, run["results"])
        added.append(stored.id)
    session.flush()
    return added, skipped


def write_file(bundle: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(bundle, indent=1, allow_nan=False) + "\n", encoding="utf-8")
