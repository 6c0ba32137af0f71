"""The results bundle's format, read strictly: a bundle is parsed and checked in full
before anything is written, and any wrong type, missing field, unknown status, over-long text or
non-finite number is refused with a one-line BundleError naming where it is (`run 2, result 5:
field 'status' ...`). results_db.bundle writes bundles and stores what this module checked."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hadamard_bench.vocabulary import CELL_KEY, MARK_KINDS, RUN_STATUSES, STATUSES

from .models import Machine, Result
from .store import MACHINE_FIELDS, OPTIONAL_MACHINE_FIELDS

FORMAT = "hadamard-bench-results"
VERSION = 1
MAX_BYTES = 256 * 2**20
# The largest whole number a float metric holds exactly; bigger ones are refused, not rounded.
MAX_INT = 2**53


class BundleError(ValueError):
    """A bundle that cannot be imported; the message says where and why, in one line."""



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


class FieldCheck:
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


def _check_result(c: FieldCheck, r: Any) -> dict:
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


def _check_round(c: FieldCheck, g: Any) -> dict:
    if not isinstance(g, dict):
        c.fail("must be an object")
    return {"round": c.count(g, "round"), "seed": c.count(g, "seed"), "cells": c.count(g, "cells"),
            "state": c.json_obj(g, "state"), "started_at": c.time(g, "started_at"),
            "finished_at": c.time(g, "finished_at", optional=True)}


def _check_mark(c: FieldCheck, mark: Any) -> dict:
    if not isinstance(mark, dict):
        c.fail("must be an object")
    cells = c.json_obj(mark, "cells")
    if not set(cells) <= set(CELL_KEY) or not all(isinstance(v, str) and len(v) <= 200 for v in cells.values()):
        c.fail(f"field 'cells' narrows by the cell's {', '.join(CELL_KEY)}, each a text")
    return {"kind": c.text(mark, "kind", 20, choices=MARK_KINDS), "note": c.text(mark, "note", 10_000, optional=True) or "",
            "cells": cells, "created_at": c.time(mark, "created_at", optional=True)}


def _check_run(c: FieldCheck, run: Any) -> dict:
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
           "started_at": c.time(run, "started_at"), "finished_at": c.time(run, "finished_at", optional=True),
           # The other side's origin, for a side of an `ab` session (absent from older bundles).
           "paired_with": c.text(run, "paired_with", 300, optional=True)}
    records = run.get("round_records") or []
    if not isinstance(records, list):
        c.fail("field 'round_records' must be a list")
    out["round_records"] = [_check_round(FieldCheck(f"{c.where}, round record {i + 1}"), g) for i, g in enumerate(records)]
    marks = run.get("marks") or []  # absent from bundles written before marks travelled
    if not isinstance(marks, list):
        c.fail("field 'marks' must be a list")
    out["marks"] = [_check_mark(FieldCheck(f"{c.where}, mark {i + 1}"), k) for i, k in enumerate(marks)]
    results = run.get("results")
    if not isinstance(results, list):
        c.fail("field 'results' must be a list")
    out["results"] = [_check_result(FieldCheck(f"{c.where}, result {i + 1}"), r) for i, r in enumerate(results)]
    cells = [tuple(r[k] for k in CELL_KEY) for r in out["results"]]
    if len(set(cells)) != len(cells):
        c.fail("holds the same cell twice")
    return out


def _check_catalogue(data: dict) -> tuple[list[dict], list[dict]]:
    c = FieldCheck("catalogue")
    cat = data.get("catalogue") or {}
    if not isinstance(cat, dict):
        c.fail("must be an object")
    benchmarks, methods = [], []
    for i, b in enumerate(cat.get("benchmarks") or []):
        cb = FieldCheck(f"catalogue, benchmark {i + 1}")
        if not isinstance(b, dict) or not isinstance(b.get("params"), list):
            cb.fail("must be an object with a list of params")
        benchmarks.append({"id": cb.text(b, "id", 64), "domain": cb.text(b, "domain", 64),
                           "title": cb.text(b, "title", 200), "contract": cb.text(b, "contract", 200),
                           "params": [str(p)[:32] for p in b["params"]], "x_param": cb.text(b, "x_param", 32)})
    for i, m in enumerate(cat.get("methods") or []):
        cm = FieldCheck(f"catalogue, method {i + 1}")
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
    checked = [_check_run(FieldCheck(f"run {i + 1}"), run) for i, run in enumerate(runs)]
    return (checked, *_check_catalogue(data))
