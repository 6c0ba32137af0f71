"""How fast the dashboard's pages render with 100,000 results in the SQLite file, and how much
memory the rendering process holds.

Fills a temporary database with synthetic results shaped like the catalogue's
(every benchmark and method, many runs and sizes, 16 metrics each) through
results_db's own models, then renders every page headless with Streamlit's
AppTest several times and reports the first and the median later render. Prints
a table and writes it into docs/dashboard.md.

    python benchmarks/dashboard_load.py [--rows 100000] [--loads 5]
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
from results_db import store  # noqa: E402
from results_db.models import Metric, Result  # noqa: E402
from bench_runner.worker import _peak_rss_bytes, _peak_rss_reset  # noqa: E402

DOC = ROOT / "docs" / "dashboard.md"
PAGES = ["app_pages/overview.py", "app_pages/compare.py", "app_pages/scaling.py", "app_pages/roofline.py",
         "app_pages/runs.py", "app_pages/diff.py", "app_pages/history.py", "app_pages/claims.py"]
METRICS = ["time_median_s", "time_iqr_s", "time_min_s", "time_mean_s", "samples", "calls_per_sample", "noisy",
           "median_rel_ci", "peak_mem_bytes", "flops", "flops_counted", "bytes", "first_call_s", "gflops", "gbps",
           "intensity"]


def fill(url: str, rows: int) -> None:
    """`rows` results over runs of every benchmark, written in bulk."""
    import hadamard_impls
    from bench_runner.sweep import catalogue_rows

    rng = random.Random(0)
    factory = sessionmaker(results_db.open_engine(url))
    cells = [(b.id, m.id, backend, s) for b in hadamard_impls.catalogue.benchmarks.values()
             for m in b.methods.values() for backend in m.backends for s in b.sizes("quick")]
    facts = {"key": "loadtest", "hostname": "loadtest", "cpu_model": "Synthetic CPU", "cpu_cores": 2,
             "torch_version": "2.13.0", "os": "Linux", "python_version": "3.11"}
    with factory() as session, session.begin():
        store.sync_catalogue(session, *catalogue_rows(hadamard_impls.catalogue))
        host = store.get_or_create_machine(session, facts, "loadtest (Synthetic CPU)")
        runs = [store.start_run(session, host, "quick", {}, len(cells)).id for _ in range(rows // len(cells) + 1)]
    result_id = 0
    with factory() as session, session.begin():
        results, metrics = [], []
        for run_id in runs:
            for bench, method, backend, size in cells:
                if result_id >= rows:
                    break
                result_id += 1
                results.append(dict(id=result_id, run_id=run_id, benchmark=bench, method=method, backend=backend,
                                    device="cpu", dtype="float32", mode="forward", status="ok",
                                    size=hadamard_impls.size_label(size)))
                t = 1e-4 * sum(size.values()) * rng.uniform(0.9, 1.1)
                metrics += [dict(result_id=result_id, name=n,
                                 value=t if n.startswith("time") else float(rng.random() < 0.1) if n == "noisy"
                                 else rng.random()) for n in METRICS]
        session.execute(insert(Result), results)
        session.execute(insert(Metric), metrics)
        for run_id in runs:
            store.finish_run(session, run_id)


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()

    url = f"sqlite:///{tempfile.mkdtemp()}/load.db"
    started = time.perf_counter()
    fill(url, args.rows)
    filled = time.perf_counter() - started
    _peak_rss_reset()  # the renders' own peak, not the fill's
    times = render_times(url, args.loads)
    peak_mb = (_peak_rss_bytes() or 0) / 2**20
    lines = [
        "# Dashboard render times",
        "",
        f"`python benchmarks/dashboard_load.py --rows {args.rows} --loads {args.loads}`, "
        f"{time.strftime('%Y-%m-%d')}: {args.rows:,} results with {len(METRICS)} metrics each in one SQLite file "
        f"(filled in {filled:.0f} s), every page rendered headless by Streamlit's AppTest. The first render fills "
        "the caches; the median of the later ones is what a user waits for when moving between pages.",
        "",
        "| page | first render | median later render |",
        "| --- | --- | --- |",
        *(f"| {page.split('/')[-1].removesuffix('.py')} | {t[0]:.2f} s | {statistics.median(t[1:]):.2f} s |"
          for page, t in times.items()),
        "",
        f"Peak resident memory of the process while it rendered (AppTest runs the pages in it, as the "
        f"Streamlit server would): {peak_mb:,.0f} MiB.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    DOC.write_text(text)
    print(f"wrote {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
