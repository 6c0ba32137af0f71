"""How long the quick suite takes on this machine, and how steady its cells are.

Runs the whole catalogue's quick suite on the CPU with an empty torch.compile
cache (as on a fresh machine), or reads a finished run with --db, and reports
its wall time with its rounds, the cells per status, and the share of `ok` cells
that are not `noisy` (IQR and the spread between rounds within 10% of the median). Prints a table and writes it into
docs/benchmarks.md (between its generated-section markers).

    python benchmarks/quick_suite.py             # cold: 5.2 to 7.9 minutes on 2 cores (2026-12-07, by the hour)
    python benchmarks/quick_suite.py --disturb   # beside an intermittent memory-bound load: 6.7 to 8.4
    python benchmarks/quick_suite.py --db sqlite:///results/hadamard_bench.db   # the last run stored there
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

ROOT = Path(__file__).resolve().parent.parent

from docs_section import write_section  # noqa: E402
from neighbour import DISTURB_HELP, DISTURBED, disturbance  # noqa: E402
import results_db  # noqa: E402
from results_db import queries  # noqa: E402
from results_db.models import RoundRecord, Run  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="report the last run stored at this URL instead of running one")
    parser.add_argument("--disturb", action="store_true", help=DISTURB_HELP)
    args = parser.parse_args()

    url = args.db
    if url is None:
        scratch = tempfile.mkdtemp()
        url = f"sqlite:///{scratch}/quick.db"
        # Cold, as on a fresh machine: a new cache folder, and a new temporary folder for Inductor's
        # default one, where it keeps its precompiled headers whatever the cache folder.
        os.mkdir(f"{scratch}/tmp")
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": f"{scratch}/inductor", "TMPDIR": f"{scratch}/tmp"}
        with disturbance(args.disturb):
            subprocess.run([sys.executable, "-m", "bench_runner", "run", "--suite", "quick", "--device", "cpu",
                            "--db", url, "--quiet"], cwd=ROOT, env=env, check=True)
    with sessionmaker(results_db.open_engine(url, create=False))() as session:
        run = session.scalars(select(Run).order_by(Run.id.desc())).first()
        frame = queries.results_frame(session, run_id=run.id)
        wall = (run.finished_at - run.started_at).total_seconds()
        machine, threads, rounds = run.machine.label, run.provenance.get("threads"), run.rounds
        ahead = run.provenance.get("compiled_ahead")
        # (round, seconds, cells) of every finished round, its rounds more included (run --more-rounds).
        round_s = [(r.round, (r.finished_at - r.started_at).total_seconds(), r.cells) for r in session.scalars(
            select(RoundRecord).where(RoundRecord.run_id == run.id).order_by(RoundRecord.round)) if r.finished_at]
    more = [f"{s:.0f} s ({c} cells)" for i, s, c in round_s if i >= rounds]
    ok = frame[frame["status"] == "ok"]
    steady = int((~ok["noisy"].astype(bool)).sum())
    statuses = ", ".join(f"{n} {s}" for s, n in frame["status"].value_counts().items())
    lines = [
        f"Run {run.id} of the quick suite on {machine}, {threads} threads, {run.started_at:%Y-%m-%d}, cold compile "
        f"cache: **{len(frame)} cells × {rounds} rounds in {wall / 60:.1f} min** ({wall:.0f} s, the calibration "
        f"and every round's fresh worker included); {statuses}. "
        + (f"Compiled ahead: {ahead['cells']} of {ahead['of']} cells in {ahead['seconds']:.0f} s on "
           f"{ahead['processes']} processes. " if ahead else "Nothing compiled ahead. ")
        + "Rounds: " + ", ".join(f"{s:.0f}" for i, s, _ in round_s if i < rounds) + " s"
        + (f"; rounds more where a speed-up was undecided: {', '.join(more)}." if more else "; no round more."),
        "",
        "| | cells | share |",
        "| --- | --- | --- |",
        f"| `ok` and steady (IQR and round spread ≤ 10% of the median) | {steady} | "
        f"{steady / max(len(ok), 1):.1%} of `ok` |",
        f"| `ok` but `noisy` | {len(ok) - steady} | {(len(ok) - steady) / max(len(ok), 1):.1%} of `ok` |",
        f"| median samples per cell | {pd.to_numeric(ok['samples']).median():.0f} | |",
        f"| median half-width of a round's 95% interval of the median | "
        f"{pd.to_numeric(ok['median_rel_ci']).median():.1%} | |",
        f"| median spread between round medians (`round_spread`) | "
        f"{pd.to_numeric(ok['round_spread']).median():.1%} | |",
    ]
    table = "\n".join(lines)
    print(table)
    if args.disturb:
        write_section(DOC, "quick_suite-disturbed", table,
                      heading=f"Cold, {DISTURBED}: `python benchmarks/quick_suite.py --disturb`:")
    else:
        write_section(DOC, "quick_suite", table,
                      heading="## The quick suite on a 2-core CPU\n\n`python benchmarks/quick_suite.py`:")
    return 0


if __name__ == "__main__":
    sys.exit(main())
