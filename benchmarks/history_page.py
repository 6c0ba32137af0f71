"""How long histories take with 500 runs of 1,000 cells: computing their points, keeping them up to
date as a run ends, and opening the History page on them.

Fills a temporary SQLite database with synthetic runs shaped like the quick suite's (catalogue
cells, three rounds of five samples each and their drift controls, a 1.3× step planted at 60% of
the runs in one cell of ten),
then times, side by side in one process:

- a cold refresh of every cell's points (a database just migrated, or a big import);
- the refresh a new run costs as it ends (every cell stale once, each searched from its last
  window on), and whether it left the change points a search of every whole history finds;
- the History page rendered headless by AppTest with empty Streamlit caches (what a user
  waits for on opening it), and the median later render.

Prints a table and writes it into docs/history.md.

    python benchmarks/history_page.py [--runs 500] [--cells 1000] [--loads 5] [--keep FILE]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from sqlalchemy import insert  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

import results_db  # noqa: E402
from bench_runner import history  # noqa: E402
from docs_section import write_section  # noqa: E402
from results_db import history_queries, queries, store  # noqa: E402
from results_db.round_state import RoundState  # noqa: E402
from results_db.models import Result  # noqa: E402

DOC = ROOT / "docs" / "history.md"
FACTS = {"key": "historytest", "hostname": "historytest", "cpu_model": "Synthetic CPU", "cpu_cores": 2,
         "memory_gib": 24, "torch_version": "2.13.0", "os": "Linux", "python_version": "3.11"}


def catalogue_cells(count: int) -> list[tuple[str, str, str, str]]:
    import hadamard_impls

    cells = [(b.id, m.id, backend, hadamard_impls.size_label(s))
             for b in hadamard_impls.catalogue.benchmarks.values() for m in b.methods.values()
             for backend in m.backends for s in b.sizes("quick")]
    modes = ["forward", "forward_backward"]
    return [(*cells[i % len(cells)], modes[i // len(cells) % 2]) for i in range(count)]


def add_run(factory, host_id: int, cells, run_index: int, step_at: int, rng: random.Random) -> None:
    with factory() as session, session.begin():
        run = store.start_run(session, session.get(results_db.Machine, host_id), "quick", {"rounds": 3},
                              len(cells), rounds=3)
        rows = []
        for k, (bench, method, backend, size, mode) in enumerate(cells):
            t = 1e-4 * (1 + k % 37) * (1.3 if k % 10 == 0 and run_index >= step_at else 1.0)
            samples = [t * rng.gauss(1 + 0.01 * (r - 1), 0.02) for r in range(3) for _ in range(5)]
            rows.append(dict(run_id=run.id, benchmark=bench, method=method, backend=backend, device="cpu",
                             dtype="float32", mode=mode, size=size, status="ok", samples=samples,
                             sample_rounds=[r for r in range(3) for _ in range(5)]))
        session.execute(insert(Result), rows)
        for r in range(3):  # each round's drift controls, as a real run records them: History reads them
            record = store.start_round(session, run.id, r, 0, None)
            store.finish_round(session, record.id, len(cells), RoundState(drift={"cpu": {
                "copy_s": 2.8e-4 * rng.gauss(1, 0.03), "matmul_s": 1.6e-4 * rng.gauss(1, 0.02),
                "probe_s": 4.5e-5 * rng.gauss(1, 0.02)}}))
        store.finish_run(session, run.id)


def whole_search_differences(factory) -> tuple[int, int]:
    """How many stored points' change_point or search_from differ from what a search of each
    cell's whole history finds, of how many points."""
    with factory() as session:
        frame = history_queries.history_frame(session, details=False)
        states = queries.round_states(session, frame["run_id"].unique())
    differ = 0
    for _, cell in frame.groupby(history.CELL, sort=False):
        whole = history.cell_points(cell, states=states)
        differ += sum((bool(r.change_point), bool(r.search_from)) != (p["change_point"], p["search_from"])
                      for r, p in zip(cell.itertuples(), whole))
    return differ, len(frame)


def page_times(url: str, loads: int) -> list[float]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["HADAMARD_BENCH_DB"] = url
    times = []
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=300)
    at.run()
    for _ in range(loads):
        st.cache_data.clear()  # as a user opening the page after the caches expired
        at.switch_page("app_pages/history.py")
        started = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - started)
        if at.exception:
            raise RuntimeError(f"history page: {at.exception[0].message}")
    later = []
    for _ in range(loads):
        started = time.perf_counter()
        at.run()
        later.append(time.perf_counter() - started)
    return times, later


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--keep", metavar="FILE", help="build the database at FILE and keep it (default: a temporary one)")
    args = parser.parse_args()

    url = f"sqlite:///{Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp()) / 'history.db'}"
    factory = sessionmaker(results_db.open_engine(url))
    with factory() as session, session.begin():
        host = store.get_or_create_machine(session, FACTS, "historytest (Synthetic CPU)")
        host_id, fingerprint = host.id, host.fingerprint
    cells, rng = catalogue_cells(args.cells), random.Random(0)
    step_at = round(0.6 * args.runs)  # from this run on, one cell in ten is 1.3× slower
    started = time.perf_counter()
    for i in range(args.runs):
        add_run(factory, host_id, cells, i + 1, step_at, rng)
    filled = time.perf_counter() - started

    started = time.perf_counter()
    with factory() as session, session.begin():
        cold = len(history.refresh(session, fingerprint))
    cold_s = time.perf_counter() - started
    with factory() as session:
        points = history_queries.history_frame(session, fingerprint=fingerprint, samples=False)
    stepped = points[points["change_point"].astype(bool)]
    found = int((stepped["run_id"] == step_at).sum())
    false = int((stepped["run_id"] != step_at).sum())
    planted = sum(1 for k in range(args.cells) if k % 10 == 0)

    add_run(factory, host_id, cells, args.runs + 1, step_at, rng)
    started = time.perf_counter()
    with factory() as session, session.begin():
        warm = len(history.refresh(session, fingerprint))
    warm_s = time.perf_counter() - started
    differ, searched = whole_search_differences(factory)

    first, later = page_times(url, args.loads)
    lines = [
        f"`python benchmarks/history_page.py --runs {args.runs} --cells {args.cells} --loads {args.loads}`, "
        f"{time.strftime('%Y-%m-%d')}, on this 2-core VM: {args.runs} runs of {args.cells} cells (three rounds of "
        f"five samples each, each round's drift controls recorded; filled in {filled:.0f} s), one SQLite file.",
        "",
        "| step | time |",
        "| --- | --- |",
        f"| cold refresh: every cell's points and change points ({cold:,} points) | {cold_s:.1f} s |",
        f"| refresh as run {args.runs + 1} ends ({args.cells:,} cells stale, {warm:,} points written) | {warm_s:.1f} s |",
        f"| History page, empty caches (median of {args.loads}) | {statistics.median(first):.2f} s |",
        f"| History page, later render (median of {args.loads}) | {statistics.median(later):.2f} s |",
        "",
        f"Change points found: the planted 1.3× step at run {step_at} in {found} of {planted} cells; "
        f"{false} elsewhere, in {args.cells} cells. After the refresh as run {args.runs + 1} ended, "
        f"{differ} of {searched:,} points differed from a search of every cell's whole history "
        "(change point or where the search resumes).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    write_section(DOC, "history-page", text, heading="## Page speed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
