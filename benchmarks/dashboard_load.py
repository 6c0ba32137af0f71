"""How fast the dashboard's pages render with 100,000 and 1,000,000 results in the SQLite file,
and how much memory the rendering process holds.

For each size, fills an SQLite file with synthetic results shaped like a team's
database (every quick-suite cell of the catalogue in both modes, run after run on
two machines, with samples and 16 metrics each) through results_db's own models,
derives what a run leaves behind as it ends (the latest-result table, the history
points), then renders every page headless with Streamlit's AppTest in a fresh
process, several times, and reports the first and the median later render and the
process's peak memory. Prints a table and writes it into docs/benchmarks.md.

    python benchmarks/dashboard_load.py [--rows 100000 1000000] [--loads 5] [--db-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from sqlalchemy import insert  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

import results_db  # noqa: E402
from results_db import store  # noqa: E402
from results_db.models import Metric, Result  # noqa: E402
from bench_runner.worker import _peak_rss_bytes, _peak_rss_reset  # noqa: E402
from docs_section import write_section  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
PAGES = ["app_pages/overview.py", "app_pages/compare.py", "app_pages/scaling.py", "app_pages/roofline.py",
         "app_pages/runs.py", "app_pages/diff.py", "app_pages/history.py", "app_pages/claims.py"]
METRICS = ["time_median_s", "time_iqr_s", "time_min_s", "time_mean_s", "samples", "calls_per_sample", "noisy",
           "median_rel_ci", "peak_mem_bytes", "flops", "flops_counted", "bytes", "first_call_s", "gflops", "gbps",
           "intensity"]


MACHINES = ("Synthetic CPU A", "Synthetic CPU B")  # two fingerprints, as a team's database would hold
MODES = ("forward", "train")
SAMPLES, ROUNDS = 10, 2


def fill(url: str, rows: int) -> None:
    """`rows` results over runs of every benchmark on two machines, written in bulk a few runs at
    a time (a million results' metrics would not fit in memory at once). Each run measures every
    quick-suite cell in both modes, with samples from two rounds, as a real run stores them."""
    import hadamard_impls
    from bench_runner.selection import catalogue_rows

    rng = random.Random(0)
    factory = sessionmaker(results_db.open_engine(url))
    cells = [(b.id, m.id, backend, mode, s) for b in hadamard_impls.catalogue.benchmarks.values()
             for m in b.methods.values() for backend in m.backends for s in b.sizes("quick") for mode in MODES]
    with factory() as session, session.begin():
        store.sync_catalogue(session, *catalogue_rows(hadamard_impls.catalogue))
        hosts = [store.get_or_create_machine(session, {
            "key": f"loadtest-{i}", "hostname": f"loadtest-{i}", "cpu_model": cpu, "cpu_cores": 2, "memory_gib": 8,
            "torch_version": "2.13.0", "os": "Linux", "python_version": "3.11"}, f"loadtest-{i} ({cpu})").id
            for i, cpu in enumerate(MACHINES)]
    runs = -(-rows // len(cells))
    result_id = 0
    for first in range(0, runs, 10):
        with factory() as session, session.begin():
            results, metrics = [], []
            for number in range(first, min(first + 10, runs)):
                host = session.get(results_db.Machine, hosts[number % len(hosts)])
                run_id = store.start_run(session, host, "quick", {"rounds": ROUNDS}, len(cells)).id
                for bench, method, backend, mode, size in cells:
                    if result_id >= rows:
                        break
                    result_id += 1
                    t = 1e-4 * sum(size.values()) * rng.uniform(0.9, 1.1) * (3 if mode == "train" else 1)
                    samples = [t * rng.gauss(1, 0.02) for _ in range(SAMPLES)]
                    results.append(dict(id=result_id, run_id=run_id, benchmark=bench, method=method, backend=backend,
                                        device="cpu", dtype="float32", mode=mode, status="ok",
                                        size=hadamard_impls.size_label(size), samples=samples,
                                        sample_rounds=[i * ROUNDS // SAMPLES for i in range(SAMPLES)]))
                    metrics += [dict(result_id=result_id, name=n,
                                     value=statistics.median(samples) if n.startswith("time")
                                     else float(rng.random() < 0.1) if n == "noisy" else rng.random())
                                for n in METRICS]
                store.finish_run(session, run_id)
            if results:
                session.execute(insert(Result), results)
                session.execute(insert(Metric), metrics)


def derive(url: str) -> None:
    """What a run leaves behind as it ends, for the bulk-written results: each cell's latest
    result (the statement migration 0007 fills an older database with) and the history points."""
    from bench_runner import history

    factory = sessionmaker(results_db.open_engine(url))
    with factory() as session, session.begin():
        store.keep_latest(session)
        history.refresh(session)


def render_times(url: str, loads: int) -> dict[str, list[float]]:
    from streamlit.testing.v1 import AppTest

    os.environ["HADAMARD_BENCH_DB"] = url
    times: dict[str, list[float]] = {}
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=300)
    for page in PAGES:
        times[page] = []
        for _ in range(loads):  # the first load fills the caches; later ones are what a user waits for
            at.switch_page(page)
            started = time.perf_counter()
            at.run()
            times[page].append(time.perf_counter() - started)
            if at.exception:
                raise RuntimeError(f"{page}: {at.exception[0].message}")
    return times


def render(url: str, loads: int) -> dict:
    """Every page's render times and the process's peak resident memory while rendering. The
    dashboard's modules are imported first and timed apart: a Streamlit server imports them once,
    for the first page it ever shows, not for every page or visitor."""
    _peak_rss_reset()
    started = time.perf_counter()
    import app.app_pages  # noqa: F401
    from app import charts, claims, data, exports  # noqa: F401
    imported = time.perf_counter() - started
    times = render_times(url, loads)
    return {"times": times, "imports_s": imported, "peak_mib": (_peak_rss_bytes() or 0) / 2**20}


def measure(rows: int, loads: int, db_dir: Path) -> dict:
    """Fill (or reuse) a database of `rows` results, then render it in a fresh process: each
    size's memory peak is its own, and no cache carries over from another size."""
    path = db_dir / f"load-{rows}.db"
    url = f"sqlite:///{path}"
    setup = None
    if not path.exists():
        started = time.perf_counter()
        fill(url, rows)
        filled = time.perf_counter()
        derive(url)
        setup = (filled - started, time.perf_counter() - filled)
    # Rendered from a copy: the first render lays the shipped reference results into the database,
    # and a reused database must not have that done already.
    shown = db_dir / f"render-{rows}.db"
    with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(shown)) as copy:
        source.backup(copy)  # a consistent copy, write-ahead log included (a file copy would miss it)
    out = subprocess.run([sys.executable, __file__, "--render", f"sqlite:///{shown}", "--loads", str(loads)],
                         capture_output=True, text=True, check=False)
    for leftover in db_dir.glob(f"render-{rows}.db*"):
        leftover.unlink()
    if out.returncode:
        raise RuntimeError(f"rendering {rows:,} results failed: {out.stderr.strip().splitlines()[-1:]}")
    return {"rows": rows, "setup": setup, **json.loads(out.stdout.strip().splitlines()[-1])}


def table(found: list[dict], loads: int) -> str:
    sizes = [f"{m['rows']:,}" for m in found]
    setup = "; ".join(f"{s} results filled in {m['setup'][0]:.0f} s, their latest-result table and history "
                      f"points derived in {m['setup'][1]:.0f} s" for s, m in zip(sizes, found) if m["setup"])
    lines = [
        f"`python benchmarks/dashboard_load.py --rows {' '.join(str(m['rows']) for m in found)} --loads {loads}`, "
        f"{time.strftime('%Y-%m-%d')}. Synthetic results shaped like a team's database: every quick-suite cell "
        f"in both modes, run after run on two machines, {SAMPLES} samples from {ROUNDS} rounds and "
        f"{len(METRICS)} metrics each, in one SQLite file" + (f" ({setup})" if setup else "") + ". Each size is "
        "rendered headless by Streamlit's AppTest in a fresh process, every page in turn. The first render of a "
        "page is what a user waits for on opening it (caches a page shares with earlier ones are warm, as in a "
        "browser session); the median of the later ones is what moving between pages costs.",
        "",
        "| page | " + " | ".join(f"first render, {s} | later, {s}" for s in sizes) + " |",
        "| --- |" + " --- | --- |" * len(found),
    ]
    for page in PAGES:
        cells = []
        for m in found:
            t = m["times"][page]
            cells += [f"{t[0]:.2f} s", f"{statistics.median(t[1:]):.2f} s" if len(t) > 1 else "—"]
        lines.append(f"| {page.split('/')[-1].removesuffix('.py')} | " + " | ".join(cells) + " |")
    lines += ["", "Importing the dashboard's modules (pandas, SciPy, SQLAlchemy, Alembic, the app), which a Streamlit "
              "server does once, for the first page it shows after it starts, is timed apart: "
              + ", ".join(f"{m['imports_s']:.2f} s" for m in found) + ".",
              "", "Peak resident memory of the rendering process (AppTest runs the pages in it, as the Streamlit "
              "server would): " + ", ".join(f"{m['peak_mib']:,.0f} MiB at {s} results" for s, m in zip(sizes, found))
              + "."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--db-dir", type=Path, help="keep the filled databases here (load-ROWS.db) and reuse them "
                        "on a later run; default: a temporary folder")
    parser.add_argument("--render", metavar="URL", help=argparse.SUPPRESS)  # the child process's part
    args = parser.parse_args()
    if args.render:
        print(json.dumps(render(args.render, args.loads)))
        return 0
    db_dir = args.db_dir or Path(tempfile.mkdtemp())
    db_dir.mkdir(parents=True, exist_ok=True)
    found = []
    for rows in args.rows:
        found.append(measure(rows, args.loads, db_dir))
        print(f"{rows:,} results rendered", file=sys.stderr)
    text = table(found, args.loads)
    print(text)
    write_section(DOC, "dashboard-render", text, heading="## Dashboard render times")
    return 0


if __name__ == "__main__":
    sys.exit(main())
