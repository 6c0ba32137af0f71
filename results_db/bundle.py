"""Runs as a self-contained JSON bundle: written by one database, read into another.

A bundle carries whole runs with their machine, provenance, calibration, results,
metrics and timing samples, and the catalogue entries they refer to, so a run
measured on a GPU server (or shipped with the project under results/reference/)
shows in another database exactly as it was stored.

Reading is strict: a bundle is checked in full before anything is written, and any
wrong type, missing field, unknown status, over-long text or non-finite number is
refused with a one-line BundleError naming where it is. Importing the same run
twice adds it once.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from hadamard_bench.vocabulary import CELL_KEY, MARK_KINDS, RUN_STATUSES, STATUSES

from .models import BenchmarkInfo, Machine, Mark, Metric, MethodInfo, Result, RoundRecord, Run, utcnow
from . import store
from .store import MACHINE_FIELDS, OPTIONAL_MACHINE_FIELDS, fingerprint_of

FORMAT = "hadamard-bench-results"
VERSION = 1
MAX_BYTES = 256 * 2**20
# The largest whole number a float metric holds exactly; bigger ones are refused, not rounded.
MAX_INT = 2**53


class BundleError(ValueError):
    """A bundle that cannot be imported; the message says where and why, in one line."""


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
    """The runs (all, or those given) as one JSON-ready dict."""
    query = select(Run).order_by(Run.id)
    if run_ids:
        query = query.where(Run.id.in_(run_ids))
    runs, used = [], set()
    for run in session.scalars(query):
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


# --- reading -----------------------------------------------------------------------------

def read_file(path: str | Path) -> dict[str, Any]:
    """A bundle file, parsed; BundleError for what cannot be read or is not JSON."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise BundleError(f"{path} is {size / 2**20:.0f} MiB, above the {MAX_BYTES // 2**20} MiB limit")
        text = path.read_text(encoding="utf-8")
    except BundleError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror if isinstance(exc, OSError) else 'not UTF-8 text'}") from None
    return parse(text, str(path))


def _no_constants(name: str):
    raise BundleError(f"{name} is not a number JSON allows")


def parse(text: str, source: str = "bundle") -> dict[str, Any]:
    try:
        data = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise BundleError(f"{source} nests too deeply to be a results file") from None
    if not isinstance(data, dict):
        raise BundleError(f"{source} holds a JSON {type(data).__name__}, not an object")
    return data


class _Check:
    """Field checks that name the place of a bad value: `run 2, result 5: field 'status' ...`."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, message: str):
        raise BundleError(f"{self.where}: {message}")

    def obj(self, d: Any, key: str) -> dict:
        v = d.get(key) if isinstance(d, dict) else None
        if not isinstance(v, dict):
            self.fail(f"field {key!r} must be an object")
        return v

    def text(self, d: dict, key: str, max_len: int, *, optional: bool = False, choices=None) -> str | None:
        v = d.get(key)
        if v is None and optional:
            return None
        if not isinstance(v, str) or not v and not optional:
            self.fail(f"field {key!r} must be {'text' if optional else 'non-empty text'}")
        if len(v) > max_len:
            self.fail(f"field {key!r} is longer than {max_len} characters")
        if choices is not None and v not in choices:
            self.fail(f"field {key!r} is {v[:40]!r}, not one of {', '.join(choices)}")
        return v

    def number(self, v: Any, name: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.fail(f"{name} must be a number")
        if isinstance(v, int) and abs(v) > MAX_INT:
            self.fail(f"{name} = {str(v)[:20]}… is too large to store exactly")
        if not math.isfinite(v) or abs(v) > 1e300:
            self.fail(f"{name} must be a finite number")
        return float(v)

    def count(self, d: dict, key: str) -> int:
        v = d.get(key, 0)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_INT:
            self.fail(f"field {key!r} must be a whole number ≥ 0")
        return v

    def time(self, d: dict, key: str, *, optional: bool = False) -> datetime | None:
        v = d.get(key)
        if v is None and optional:
            return None
        try:
            t = datetime.fromisoformat(v)
        except (TypeError, ValueError):
            self.fail(f"field {key!r} must be an ISO 8601 time")
        return t if t.tzinfo else t.replace(tzinfo=timezone.utc)

    def json_obj(self, d: dict, key: str) -> dict:
        v = d.get(key, {})
        if v is None:
            return {}
        if not isinstance(v, dict):
            self.fail(f"field {key!r} must be an object")
        return v


def _length(column) -> int:
    return column.type.length or 100_000


def _check_result(c: _Check, r: Any) -> dict:
    if not isinstance(r, dict):
        c.fail("must be an object")
    cols = Result.__table__.c
    out = {k: c.text(r, k, _length(cols[k])) for k in CELL_KEY}
    out["status"] = c.text(r, "status", 16, choices=STATUSES)
    out["message"] = c.text(r, "message", 10_000, optional=True)
    out["created_at"] = c.time(r, "created_at", optional=True)
    samples = r.get("samples")
    if samples is not None:
        if not isinstance(samples, list) or len(samples) > 1_000_000:
            c.fail("field 'samples' must be a list of numbers")
        samples = [c.number(s, "a timing sample") for s in samples]
    out["samples"] = samples
    rounds = r.get("sample_rounds")
    if rounds is not None:
        if (not isinstance(rounds, list) or samples is None or len(rounds) != len(samples)
                or not all(isinstance(k, int) and not isinstance(k, bool) and 0 <= k < 10_000 for k in rounds)):
            c.fail("field 'sample_rounds' must be a list of round numbers, one per sample")
    out["sample_rounds"] = rounds
    cycles = r.get("sample_cycles")  # absent from bundles of results timed one cell at a time
    if cycles is not None:
        if (not isinstance(cycles, list) or rounds is None or len(cycles) != len(rounds)
                or not all(isinstance(k, int) and not isinstance(k, bool) and -1 <= k < 1_000_000 for k in cycles)):
            c.fail("field 'sample_cycles' must be a list of cycle numbers, one per sample")
    out["sample_cycles"] = cycles
    out["provenance"] = c.json_obj(r, "provenance") or None  # absent from bundles of older results
    metrics = c.json_obj(r, "metrics")
    for name in metrics:
        if not isinstance(name, str) or not 0 < len(name) <= 64:
            c.fail("metric names must be text of at most 64 characters")
    out["metrics"] = {k: c.number(v, f"metric {k!r}") for k, v in metrics.items() if v is not None}
    return out


def _check_round(c: _Check, g: Any) -> dict:
    if not isinstance(g, dict):
        c.fail("must be an object")
    return {"round": c.count(g, "round"), "seed": c.count(g, "seed"), "cells": c.count(g, "cells"),
            "state": c.json_obj(g, "state"), "started_at": c.time(g, "started_at"),
            "finished_at": c.time(g, "finished_at", optional=True)}


def _check_mark(c: _Check, mark: Any) -> dict:
    if not isinstance(mark, dict):
        c.fail("must be an object")
    cells = c.json_obj(mark, "cells")
    if not set(cells) <= set(CELL_KEY) or not all(isinstance(v, str) and len(v) <= 200 for v in cells.values()):
        c.fail(f"field 'cells' narrows by the cell's {', '.join(CELL_KEY)}, each a text")
    return {"kind": c.text(mark, "kind", 20, choices=MARK_KINDS), "note": c.text(mark, "note", 10_000, optional=True) or "",
            "cells": cells, "created_at": c.time(mark, "created_at", optional=True)}


def _check_run(c: _Check, run: Any) -> dict:
    if not isinstance(run, dict):
        c.fail("must be an object")
    m = c.obj(run, "machine")
    mcols = Machine.__table__.c
    machine = {"key": c.text(m, "key", 64), "label": c.text(m, "label", 200)}
    for f in MACHINE_FIELDS:
        if f == "cpu_cores":
            machine[f] = c.count(m, f)
        elif f == "memory_gib":  # absent from bundles written before it was recorded
            machine[f] = c.count(m, f) if m.get(f) is not None else None
        else:
            machine[f] = c.text(m, f, _length(mcols[f]), optional=f in OPTIONAL_MACHINE_FIELDS)
    out = {"machine": machine, "suite": c.text(run, "suite", 20),
           "status": c.text(run, "status", 20, choices=RUN_STATUSES),
           "options": c.json_obj(run, "options"), "provenance": c.json_obj(run, "provenance"),
           "calibration": c.json_obj(run, "calibration"), "cells_total": c.count(run, "cells_total"),
           "cells_done": c.count(run, "cells_done") if "cells_done" in run else None,
           "rounds": max(1, c.count(run, "rounds")) if run.get("rounds") is not None else 1,
           "seed": c.count(run, "seed") if run.get("seed") is not None else None,
           "message": c.text(run, "message", 10_000, optional=True),
           "started_at": c.time(run, "started_at"), "finished_at": c.time(run, "finished_at", optional=True)}
    records = run.get("round_records") or []
    if not isinstance(records, list):
        c.fail("field 'round_records' must be a list")
    out["round_records"] = [_check_round(_Check(f"{c.where}, round record {i + 1}"), g) for i, g in enumerate(records)]
    marks = run.get("marks") or []  # absent from bundles written before marks travelled
    if not isinstance(marks, list):
        c.fail("field 'marks' must be a list")
    out["marks"] = [_check_mark(_Check(f"{c.where}, mark {i + 1}"), k) for i, k in enumerate(marks)]
    results = run.get("results")
    if not isinstance(results, list):
        c.fail("field 'results' must be a list")
    out["results"] = [_check_result(_Check(f"{c.where}, result {i + 1}"), r) for i, r in enumerate(results)]
    cells = [tuple(r[k] for k in CELL_KEY) for r in out["results"]]
    if len(set(cells)) != len(cells):
        c.fail("holds the same cell twice")
    return out


def _check_catalogue(data: dict) -> tuple[list[dict], list[dict]]:
    c = _Check("catalogue")
    cat = data.get("catalogue") or {}
    if not isinstance(cat, dict):
        c.fail("must be an object")
    benchmarks, methods = [], []
    for i, b in enumerate(cat.get("benchmarks") or []):
        cb = _Check(f"catalogue, benchmark {i + 1}")
        if not isinstance(b, dict) or not isinstance(b.get("params"), list):
            cb.fail("must be an object with a list of params")
        benchmarks.append({"id": cb.text(b, "id", 64), "domain": cb.text(b, "domain", 64),
                           "title": cb.text(b, "title", 200), "contract": cb.text(b, "contract", 200),
                           "params": [str(p)[:32] for p in b["params"]], "x_param": cb.text(b, "x_param", 32)})
    for i, m in enumerate(cat.get("methods") or []):
        cm = _Check(f"catalogue, method {i + 1}")
        if not isinstance(m, dict):
            cm.fail("must be an object")
        exponents = cm.json_obj(m, "exponents")
        methods.append({"benchmark": cm.text(m, "benchmark", 64), "id": cm.text(m, "id", 64),
                        "role": cm.text(m, "role", 20, choices=("hadamard", "baseline", "reference")),
                        "summary": cm.text(m, "summary", 10_000), "latex": cm.text(m, "latex", 10_000),
                        "exponents": {str(k)[:32]: cm.number(v, f"exponent {k!r}") for k, v in exponents.items()},
                        "backends": [str(b)[:32] for b in (m.get("backends") or [])],
                        "against": [str(a)[:64] for a in (m.get("against") or [])],
                        "cudnn": [str(b)[:32] for b in (m.get("cudnn") or [])]})
    return benchmarks, methods


def validate(data: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """The bundle's runs and catalogue, checked and typed; BundleError on the first problem."""
    if data.get("format") != FORMAT:
        raise BundleError(f"not a Hadamard Bench results bundle (its 'format' is {str(data.get('format'))[:40]!r})")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError("the bundle's 'version' must be a whole number")
    if version > VERSION:
        raise BundleError(f"the bundle is format version {version}, newer than this Hadamard Bench reads "
                          f"({VERSION}); update Hadamard Bench to import it")
    runs = data.get("runs")
    if not isinstance(runs, list):
        raise BundleError("the bundle's 'runs' must be a list")
    checked = [_check_run(_Check(f"run {i + 1}"), run) for i, run in enumerate(runs)]
    return (checked, *_check_catalogue(data))


def _origin(machine_key: str, started_at: datetime) -> str:
    return f"{machine_key}@{_utc(started_at).isoformat()}"


def known_origins(session: Session) -> set[str]:
    """Every stored run's origin (its machine and start): a run imported again is skipped."""
    return {_origin(key, started) for key, started in session.execute(
        select(Machine.key, Run.started_at).join(Run, Run.machine_id == Machine.id))}


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
    known = known_origins(session)
    for b in benchmarks:  # the catalogue this database already has wins: it is the code's
        if session.get(BenchmarkInfo, b["id"]) is None:
            session.add(BenchmarkInfo(**b))
    session.flush()
    for m in methods:
        if session.get(MethodInfo, (m["benchmark"], m["id"])) is None and session.get(BenchmarkInfo, m["benchmark"]):
            session.add(MethodInfo(**m))
    added, skipped = [], 0
    for run in runs:
        origin = _origin(run["machine"]["key"], run["started_at"])
        if origin in known:
            skipped += 1
            continue
        known.add(origin)
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
        session.add_all([RoundRecord(run_id=stored.id, pid=None, **g) for g in run["round_records"]])
        session.add_all([Mark(run_id=stored.id, **{k: v for k, v in mark.items() if v is not None})
                         for mark in run["marks"]])
        store_results(session, stored.id, run["results"])
        added.append(stored.id)
    session.flush()
    return added, skipped


def write_file(bundle: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(bundle, indent=1, allow_nan=False) + "\n", encoding="utf-8")
