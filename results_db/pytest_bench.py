"""pytest-benchmark's JSON, both ways: `pytest --benchmark-json` files stored as runs, and
stored runs written in that layout for `pytest-benchmark compare`.

One vocabulary carries over: a pytest-benchmark *group* (else the test module) is
our benchmark, the test's name is our method, integer parameters form the size
(`n=4096`) and other parameters stay in the method's name (`test_x[backend=eager]`).
pytest-benchmark times host code, so imported cells are `cpu`, with dtype and mode
`n/a` and backend `pytest`. Every per-round time it kept (`stats.data`) becomes one
of our samples; its statistics become our metrics.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .bundle import known_origins, machine_for, origin_of, store_results
from .bundle_format import MAX_INT, BundleError, FieldCheck
from .models import BenchmarkInfo, MethodInfo, Result, Run

SUITE = "pytest-benchmark"
STATS = {"median": "time_median_s", "iqr": "time_iqr_s", "min": "time_min_s", "mean": "time_mean_s",
         "max": "time_max_s", "stddev": "time_stddev_s", "rounds": "samples", "iterations": "calls_per_sample",
         "ops": "ops"}


def looks_like(data: dict) -> bool:
    return isinstance(data.get("benchmarks"), list) and isinstance(data.get("machine_info"), dict)


def _machine(c: FieldCheck, info: dict) -> dict:
    cpu = info.get("cpu") if isinstance(info.get("cpu"), dict) else {}
    facts = {
        "hostname": str(info.get("node") or "unknown")[:200],
        "cpu_model": str(cpu.get("brand_raw") or info.get("processor") or info.get("machine") or "unknown")[:200],
        "cpu_cores": c.count(cpu, "count") if "count" in cpu else 0,
        "torch_version": "n/a", "cuda_version": None, "gpu_name": None,
        "os": f"{info.get('system') or ''} {info.get('release') or ''}".strip()[:200] or "unknown",
        "python_version": str(info.get("python_version") or "unknown")[:50],
    }
    # As for our own runs, the key leaves the hostname out: two identical nodes compare.
    facts["key"] = "pb-" + hashlib.sha256(json.dumps({k: v for k, v in facts.items() if k != "hostname"},
                                                      sort_keys=True).encode()).hexdigest()[:13]
    facts["label"] = f"{facts['hostname']} ({facts['cpu_model']})"
    return facts


CELL_PARAMS = {"backend": "pytest", "device": "cpu", "dtype": "n/a", "mode": "n/a"}


def _split(c: FieldCheck, bench: dict) -> dict[str, str]:
    """Our cell columns for one pytest-benchmark entry. Parameters named backend, device,
    dtype or mode (as our own export writes them) go back to their columns."""
    name = c.text(bench, "name", 500)
    fullname = bench.get("fullname") if isinstance(bench.get("fullname"), str) else name
    module = fullname.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py") or "pytest"
    group = bench.get("group") if isinstance(bench.get("group"), str) and bench.get("group") else module
    params = bench.get("params") if isinstance(bench.get("params"), dict) else {}
    ints = {k: v for k, v in params.items()
            if isinstance(v, int) and not isinstance(v, bool) and abs(v) <= MAX_INT and str(k).isidentifier()}
    cell = {k: str(params[k])[:16] if isinstance(params.get(k), str) and params[k] else default
            for k, default in CELL_PARAMS.items()}
    rest = {k: v for k, v in params.items() if k not in ints and not (k in CELL_PARAMS and isinstance(v, str))}
    method = name.split("[")[0] + (f"[{','.join(f'{k}={v}' for k, v in rest.items())}]" if rest else "")
    size = " ".join(f"{k}={v}" for k, v in ints.items())
    if len(group) > 64 or len(method) > 64 or len(size) > 200:
        c.fail("a group, test name or parameter list is too long to store")
    return {"benchmark": group, "method": method, "size": size, **cell}


def validate(data: dict) -> dict:
    """The file's run, checked and typed: BundleError on the first problem."""
    c = FieldCheck("pytest-benchmark file")
    machine = _machine(c, c.obj(data, "machine_info"))
    commit = data.get("commit_info") if isinstance(data.get("commit_info"), dict) else {}
    started = c.time(data, "datetime", optional=True) or datetime.now(timezone.utc)
    results, seen = [], set()
    for i, bench in enumerate(data["benchmarks"]):
        cb = FieldCheck(f"pytest-benchmark file, benchmark {i + 1}")
        if not isinstance(bench, dict):
            cb.fail("must be an object")
        cell = _split(cb, bench)
        key = tuple(cell.values())
        if key in seen:
            cb.fail(f"{cell['benchmark']}/{cell['method']} {cell['size']} appears twice")
        seen.add(key)
        stats = cb.obj(bench, "stats")
        if "median" not in stats:
            cb.fail("its stats have no median")
        metrics = {ours: cb.number(stats[theirs], f"stats.{theirs}") for theirs, ours in STATS.items()
                   if stats.get(theirs) is not None}
        extra = bench.get("extra_info") if isinstance(bench.get("extra_info"), dict) else {}
        for k, v in extra.items():  # numbers a test recorded beside its timing
            if isinstance(v, (int, float)) and not isinstance(v, bool) and isinstance(k, str) and len(k) <= 64:
                metrics.setdefault(k, cb.number(v, f"extra_info.{k}"))
        samples = stats.get("data")
        if samples is not None:
            if not isinstance(samples, list) or len(samples) > 1_000_000:
                cb.fail("stats.data must be a list of numbers")
            samples = [cb.number(s, "a stats.data value") for s in samples]
        results.append({**cell, "metrics": metrics, "samples": samples})
    return {"machine": machine, "commit": commit, "started_at": started, "results": results,
            "version": str(data.get("version") or "")[:20]}


def import_file(session: Session, data: dict, source: str, label: str | None = None) -> tuple[list[int], int]:
    """Store a pytest-benchmark JSON as one finished run; (new run ids, runs already here)."""
    run = validate(data)
    facts = run["machine"]
    origin = origin_of(facts["key"], run["started_at"])
    if origin in known_origins(session):
        return [], 1
    machine = machine_for(session, facts, label)
    for r in run["results"]:  # a catalogue entry per group and test, so the dashboard can chart them
        if session.get(BenchmarkInfo, r["benchmark"]) is None:
            params = [p.split("=")[0] for p in r["size"].split()]
            session.add(BenchmarkInfo(id=r["benchmark"], domain="pytest-benchmark", title=r["benchmark"],
                                      contract="imported from pytest-benchmark", params=params,
                                      x_param=params[0] if params else "n"))
            session.flush()
        if session.get(MethodInfo, (r["benchmark"], r["method"])) is None:
            session.add(MethodInfo(benchmark=r["benchmark"], id=r["method"], role="reference",
                                   summary=f"{r['method']}, timed by pytest-benchmark", latex=r"\text{pytest}",
                                   exponents={}, backends=[r["backend"]], against=[]))
            session.flush()
    commit = run["commit"]
    stored = Run(machine=machine, suite=SUITE, status="finished", options={"source": source},
                 provenance={"git_commit": str(commit.get("id") or "")[:64] or None,
                             "branch": str(commit.get("branch") or "")[:200] or None,
                             "pytest_benchmark": run["version"], "imported": {"source": source, "origin": origin}},
                 calibration={}, cells_total=len(run["results"]), cells_done=len(run["results"]),
                 started_at=run["started_at"], finished_at=run["started_at"])
    session.add(stored)
    session.flush()
    store_results(session, stored.id, [{**r, "status": "ok"} for r in run["results"]])
    session.flush()
    return [stored.id], 0


def _stats(samples: list[float], calls: float | None) -> dict[str, Any]:
    from pytest_benchmark.stats import Stats  # the library's own statistics, so compare reads them as its own

    stats = Stats()
    for s in samples:
        stats.update(s)
    out = stats.as_dict()
    out["data"] = list(samples)
    out["iterations"] = int(calls or 1)
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in out.items()}


def export(session: Session, run_ids: list[int] | None = None) -> dict[str, Any]:
    """Stored results with their samples, in the layout `pytest --benchmark-json` writes."""
    import pytest_benchmark

    query = select(Run).order_by(Run.id)
    if run_ids:
        query = query.where(Run.id.in_(run_ids))
    runs = list(session.scalars(query))
    benchmarks = []
    for run in runs:
        timer = (run.provenance or {}).get("timing", {})
        for r in session.scalars(select(Result).where(Result.run_id == run.id, Result.status == "ok")
                                 .order_by(Result.id)):
            if not r.samples:
                continue
            metrics = {m.name: m.value for m in r.metrics if math.isfinite(m.value)}
            sizes = {k: int(v) for k, v in (p.split("=", 1) for p in r.size.split())}
            params = {"backend": r.backend, "device": r.device, "dtype": r.dtype, "mode": r.mode, **sizes}
            param = "-".join(str(v) for v in params.values())
            name = f"{r.method}[{param}]"
            benchmarks.append({
                "group": r.benchmark, "name": name, "fullname": f"{r.benchmark}::{name}", "params": params,
                "param": param, "extra_info": {**metrics, "run_id": run.id, "machine": run.machine.label},
                "options": {"timer": "cuda events" if r.device == "cuda" else "perf_counter",
                            "min_rounds": timer.get("min_samples", 1) if isinstance(timer, dict) else 1,
                            "max_time": None, "min_time": None, "warmup": True, "disable_gc": False},
                "stats": _stats(r.samples, metrics.get("calls_per_sample")),
            })
    last = runs[-1] if runs else None
    machine = last.machine if last else None
    commit = (last.provenance or {}).get("git_commit") if last else None
    return {
        "machine_info": {
            "node": machine.hostname if machine else "", "processor": "", "machine": "",
            "python_implementation": "CPython", "python_version": machine.python_version if machine else "",
            "system": machine.os if machine else "", "release": "",
            "cpu": {"brand_raw": machine.cpu_model if machine else "", "count": machine.cpu_cores if machine else 0},
            "gpu": machine.gpu_name if machine else None, "torch": machine.torch_version if machine else None,
        },
        "commit_info": {"id": commit or "unversioned", "dirty": bool(commit and commit.endswith("-dirty")),
                        "project": "hadamard-bench", "branch": None, "time": None, "author_time": None},
        "benchmarks": benchmarks,
        "datetime": (last.started_at if last else datetime.now(timezone.utc)).isoformat(),
        "version": pytest_benchmark.__version__,
    }


__all__ = ["BundleError", "export", "import_file", "looks_like", "validate"]
