"""Does `ab` tell versions apart, and nothing from itself?

Three `ab` sessions on this machine's CPU, each printed as a table and written into
docs/benchmarks.md:

1. A/A: `ab HEAD HEAD` over the selection of benchmarks/reproducibility.py (the quick suite's
   eager cells of six benchmarks, 110 cells): every regression or improvement is false.
2. A/B, threads: gated_ffn with the head side on one thread (`--head-env OMP_NUM_THREADS=1`).
3. A/B, a plugin at two commits, the second moving ~1.3x the memory of the first: a multiply
   (and a multiply-add) over n elements, then, in the second commit, part of the output read and
   written once more (45% of it after the multiply, 90% after the multiply-add, which moves twice
   the memory).

    python benchmarks/ab_session.py            # about 17 minutes on 2 cores (2026-12-06, 920495d, AMD EPYC)
    python benchmarks/ab_session.py --disturb  # the same beside an intermittent memory-bound load, about 20
    python benchmarks/ab_session.py --db URL   # re-read the sessions an earlier call stored there

The table goes into docs/benchmarks.md, one section per condition.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import pandas as pd  # noqa: E402

from bench_runner import comparison, defaults, stats  # noqa: E402
from bench_runner.commands import compare  # noqa: E402
from docs_section import write_section  # noqa: E402
from results_db import Run, queries  # noqa: E402
from reproducibility import BENCHMARKS, SELECTION, scratch_db  # noqa: E402
from neighbour import DISTURB_HELP, DISTURBED, disturbance  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"

PLUGIN = textwrap.dedent('''
    """Memory traffic for benchmarks/ab_session.py: each call moves MORE more memory than without."""
    import torch
    from torch import nn

    MORE = {more}


    class Traffic(nn.Module):
        def __init__(self, add):
            super().__init__()
            self.add = add
            # a * b moves three elements of n (two read, one written) and a * b + a six; a pass in
            # place over part of the output moves two for each element it covers.
            self.covered = MORE * (6 if add else 3) / 2

        def forward(self, a, b):
            y = a * b + a if self.add else a * b
            if self.covered:
                y[: int(self.covered * y.numel())].mul_(1.0)
            return y


    def register(catalogue):
        bench = catalogue.benchmark(
            "ab_traffic", domain="efficient", title="memory traffic", contract="a, b (n,) -> (n,)", params=("n",),
            sweeps={{s: [{{"n": 1 << k}} for k in (16, 18, 20, 22)] for s in ("smoke", "quick", "full")}},
            make_inputs=lambda s, g: (torch.randn(s["n"], generator=g), torch.randn(s["n"], generator=g)))
        common = dict(latex="y = a * b", flops=lambda s: s["n"], bytes=lambda s, i: 3 * s["n"] * i,
                      exponents={{"n": 1}}, backends=("eager",))

        def mul(size):
            """a * b"""
            return Traffic(False)

        def mul_add(size):
            """a * b + a"""
            return Traffic(True)

        bench.method("mul", role="hadamard", **common)(mul)
        bench.method("mul_add", role="baseline", **common)(mul_add)
''')


def ab(url: str, *args: str) -> float:
    """One `ab` session into `url`; its minutes."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench_runner", "ab", *args, "--db", url, "--quiet",
                           "--format", "csv"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        sys.exit(done.stderr)
    return (time.perf_counter() - started) / 60


def plugin_repo(folder: str) -> str:
    repo = Path(folder, "traffic_plugin")
    repo.mkdir()
    git = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    for more, tag in ((0.0, "one"), (0.3, "more")):
        (repo / "ab_traffic_plugin.py").write_text(PLUGIN.format(more=more))
        git("add", ".")
        git("-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q", "-m", tag)
        git("tag", tag)
    return str(repo)


def rates(table: pd.DataFrame) -> dict:
    counts = table["verdict"].value_counts()
    return {v: int(counts.get(v, 0)) for v in (*stats.RUN_WORDS, stats.NO_CHANGE, stats.INCONCLUSIVE)} | {
        "cells": len(table), "paired": int(table["paired"].sum()), "median": float(table["ratio"].median()),
        "half": float(comparison.interval_half_width(table).median())}


def measure_sessions(url: str) -> dict[str, float]:
    """The three sessions, stored at `url` as runs 1-6; each one's minutes."""
    ffn = [a for a in SELECTION if a not in BENCHMARKS and a != "--benchmark"] + ["--benchmark", "gated_ffn"]
    return {"A/A": ab(url, "HEAD", "HEAD", *SELECTION),
            "threads": ab(url, "HEAD", "HEAD", *ffn, "--head-env", "OMP_NUM_THREADS=1"),
            "traffic": ab(url, "one", "more", "--repo", plugin_repo(tempfile.mkdtemp()), "--plugin",
                          "ab_traffic_plugin", "--suite", "quick", "--benchmark", "ab_traffic", "--device", "cpu")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disturb", action="store_true", help=DISTURB_HELP)
    parser.add_argument("--db", help="re-read the three sessions (runs 1-6) an earlier call stored at this URL")
    args = parser.parse_args()
    url, minutes = args.db, {}
    if url is None:
        url = scratch_db("ab")
        with disturbance(args.disturb):
            minutes = measure_sessions(url)
    sessions = compare.existing_db(url)
    with sessions() as session:
        tables = {name: comparison.comparison_table(compare.side(session, str(b))[0], compare.side(session, str(b + 1))[0])
                  for name, b in (("A/A", 1), ("threads", 3), ("traffic", 5))}
        # Cells `ok` on the base side that failed on the head side (an implausible time included).
        failed = {name: len(comparison.broken_cells(compare.side(session, str(b))[0],
                                                    queries.failures_frame(session, b + 1)))
                  for name, b in (("A/A", 1), ("threads", 3), ("traffic", 5))}
        first = session.get(Run, 1)
        when, commit = first.started_at, (first.provenance or {}).get("git_commit") or "unknown"
        if not minutes:  # re-read: the sessions' own start and end
            minutes = {n: (session.get(Run, b + 1).finished_at - session.get(Run, b).started_at).total_seconds() / 60
                       for n, b in (("A/A", 1), ("threads", 3), ("traffic", 5))}
    found = {name: rates(t) | {"failed": failed[name]} for name, t in tables.items()}
    what = {"A/A": "A/A: `ab HEAD HEAD`, 110 cells",
            "threads": "A/B: gated_ffn, head on one thread (`--head-env OMP_NUM_THREADS=1`)",
            "traffic": "A/B: a plugin at two commits, the second moving ~1.3x the memory"}
    lines = [
        f"Measured {when:%Y-%m-%d %H:%M} UTC at {commit[:7]} on this machine's CPU ({os.cpu_count()} cores), "
        f"{DISTURBED if args.disturb else 'quiet'}; the quick suite, {defaults.FLOOR:.0%} floor.",
        "",
        "| session | cells | regression | improvement | no change | inconclusive | failed on the head only | "
        "paired | median ratio | median half-width | minutes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *[f"| {what[n]} | {f['cells']} | {f['regression']} | {f['improvement']} | {f['no change']} | "
          f"{f['inconclusive']} | {f['failed']} | {f['paired']} | {f['median']:.3f} | ±{f['half']:.1%} | "
          f"{minutes.get(n, float('nan')):.1f} |" for n, f in found.items()],
    ]
    table = "\n".join(lines)
    print(table)
    # The quiet section keeps the marker it had before there were two.
    write_section(DOC, "ab-session-disturbed" if args.disturb else "ab-session", table,
                  heading="## Two versions taking turns: `ab`" + (", disturbed" if args.disturb else "")
                          + "\n\n`python benchmarks/ab_session.py" + (" --disturb" if args.disturb else "") + "`:")
    return 0


if __name__ == "__main__":
    sys.exit(main())
