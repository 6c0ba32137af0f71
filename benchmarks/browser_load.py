"""Ten people on one served dashboard while a run writes and an import lands.

Fills an SQLite file with 100,000 synthetic results (benchmarks/dashboard_load.py's, shaped like
a team's database), serves it with `hadamard-bench serve`, and opens ten browser sessions on it
(Playwright contexts in one Debian Chromium), each visiting Overview, Compare and History in
turn, LAPS times. Meanwhile a smoke run writes into the same file and, half-way, a bundle of
another run is imported into it. Reports each page's render time over every visit (median and
95th percentile: from asking for the page until Streamlit's status says the script finished),
any page that showed an error, and how long the run took beside the visitors against the same
run alone just before. Writes the table into docs/benchmarks.md.

    python benchmarks/browser_load.py [--rows 100000] [--sessions 10] [--laps 3]

Needs Chromium (apt-get install chromium; .ci/run installs it) and Playwright.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from dashboard_load import derive, fill  # noqa: E402
from docs_section import write_section  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
PAGES = {"overview": "", "compare": "compare", "history": "history"}
RUN = ["--suite", "smoke", "--benchmark", "elementwise", "--benchmark", "gated_ffn", "--backend", "eager"]


def bench_runner(*args: str, background: bool = False):
    argv = [sys.executable, "-m", "bench_runner", *args]
    if background:
        return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, text=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(url: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench_runner", "serve", "--headless", "--port", str(port),
                               "--db", url], cwd=ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.3)
    server.kill()
    sys.exit(f"the dashboard did not start: {log.read_text()[-2000:]}")


async def visit(context, base: str, laps: int, times: dict, errors: list) -> None:
    """One person: every page in turn, `laps` times, each render timed until the script ran."""
    page = await context.new_page()
    for _ in range(laps):
        for name, path in PAGES.items():
            started = time.perf_counter()
            await page.goto(f"{base}/{path}")
            await page.wait_for_selector("h1", timeout=300_000)
            # Streamlit shows its status widget while the page's script runs; wait until it has gone.
            await page.wait_for_function("!document.querySelector(\"[data-testid='stStatusWidget']\")",
                                         timeout=300_000, polling=100)
            times[name].append(time.perf_counter() - started)
            if await page.locator("[data-testid='stException']").count():
                errors.append(f"{name}: " + (await page.inner_text("[data-testid='stException']"))[:300])


async def visitors(base: str, sessions: int, laps: int) -> tuple[dict, list]:
    from playwright.async_api import async_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    times: dict[str, list[float]] = {name: [] for name in PAGES}
    errors: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        contexts = [await browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(sessions)]
        await asyncio.gather(*(visit(c, base, laps, times, errors) for c in contexts))
        await browser.close()
    return times, errors


def the_runs(url: str) -> tuple[list[float], str, str]:
    """The smoke run alone and the one beside the visitors (the first two measured into `url`;
    an imported run comes after them): each one's seconds by its own start and end, and what
    its own figures said of the machine, beside against alone: its drift controls' ratio and
    the cell-rounds it flagged as timed in a slow spell."""
    from sqlalchemy import select
    from sqlalchemy.orm import sessionmaker

    import results_db
    from bench_runner import comparison, wording
    from results_db import queries

    with sessionmaker(results_db.open_engine(url, create=False))() as session:
        runs = session.scalars(select(results_db.Run).where(results_db.Run.suite == "smoke")
                               .order_by(results_db.Run.id)).all()[:2]
        states = queries.round_states(session, [r.id for r in runs])
    seconds = [(r.finished_at - r.started_at).total_seconds() for r in runs]
    drift = wording.drift_text(comparison.drift_ratios(states, [runs[0].id], [runs[1].id])) or "none recorded"
    flagged = ", ".join("{} of {}".format(*comparison.unsettled_share(states, [r.id])) for r in runs)
    return seconds, drift, flagged


def report(args, times: dict, errors: list, visiting: float, url: str) -> str:
    """The section for docs/dashboard.md: each page's render times, then what the run saw beside them."""
    lines = [
        f"`python benchmarks/browser_load.py --rows {args.rows} --sessions {args.sessions} --laps {args.laps}`, "
        f"{time.strftime('%Y-%m-%d')}, on this machine ({os.cpu_count()} CPUs): {args.sessions} Chromium sessions "
        f"on one `serve`, each opening Overview, Compare and History in turn, {args.laps} times over, on "
        f"{args.rows:,} synthetic results, while a smoke run (elementwise and gated_ffn, eager) wrote into the "
        f"same file and a bundle of another run was imported 20 s in. A render is timed from asking for the page "
        f"until Streamlit's status says its script finished.",
        "",
        "| page | visits | median | 95th percentile | slowest |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, t in times.items():
        p95 = sorted(t)[math.ceil(0.95 * len(t)) - 1]  # nearest rank: a render that happened
        lines.append(f"| {name} | {len(t)} | {statistics.median(t):.1f} s | {p95:.1f} s | {max(t):.1f} s |")
    (alone, beside), drift, flagged = the_runs(url)
    lines += ["", f"Page errors: {len(errors)}" + (": " + "; ".join(errors[:5]) if errors else "") + ". "
              f"The visitors took {visiting:.0f} s; the run, started with them, took {beside:.0f} s by its own "
              f"start and end, against {alone:.0f} s for the same run alone just before. What the run's own "
              f"figures said of the machine, beside ÷ alone: its drift controls {drift}; cell-rounds it flagged "
              f"as timed in a slow spell (alone, beside): {flagged}."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--laps", type=int, default=3)
    args = parser.parse_args()
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        sys.exit("no Chromium: apt-get install chromium")
    scratch = Path(tempfile.mkdtemp())
    url, other = f"sqlite:///{scratch / 'team.db'}", f"sqlite:///{scratch / 'other.db'}"
    started = time.perf_counter()
    fill(url, args.rows)
    derive(url)
    print(f"{args.rows:,} results filled in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    bench_runner("run", *RUN, "--quiet", "--db", url)  # the run's own time, nobody watching
    bench_runner("run", *RUN, "--quiet", "--db", other)  # a run measured elsewhere, to import mid-load
    bundle = scratch / "other.json"
    bench_runner("export", "--format", "bundle", "--allow-dirty", "--out", str(bundle), "--db", other)

    server, base = serve(url, scratch / "server.log")
    try:
        run = bench_runner("run", *RUN, "--quiet", "--db", url, background=True)
        run_started = time.perf_counter()

        async def everything():
            async def import_half_way():
                await asyncio.sleep(20)
                await asyncio.to_thread(bench_runner, "import", str(bundle), "--db", url)
            return (await asyncio.gather(visitors(base, args.sessions, args.laps), import_half_way()))[0]

        (times, errors) = asyncio.run(everything())
        visiting = time.perf_counter() - run_started
        run_err = run.communicate(timeout=1800)[1]
        if run.returncode:
            errors.append(f"the run failed: {run_err.strip().splitlines()[-1:]}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    text = report(args, times, errors, visiting, url)
    print(text)
    write_section(DOC, "browser-load", text, heading="## Ten visitors while a run writes")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
