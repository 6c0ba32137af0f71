"""What keeping a results file safe costs: the check `run` and `import` make before their first
write, `db check`, `db backup` and `db recover`, timed on synthetic files of 100,000 and 1,000,000
results (filled as benchmarks/dashboard_load.py fills them). Prints a table and writes it into
docs/benchmarks.md.

    python benchmarks/integrity_check.py [--rows 100000 1000000] [--db-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from dashboard_load import fill  # this folder is on the path of a script run from it
from docs_section import write_section
from results_db import damage

ROOT = Path(__file__).resolve().parent.parent

DOC = ROOT / "docs" / "benchmarks.md"


def timed(call) -> tuple[float, object]:
    started = time.perf_counter()
    found = call()
    return time.perf_counter() - started, found


def measure(rows: int, db_dir: Path) -> dict:
    """Each safeguard's seconds on one file of `rows` results (filled once, reused from db_dir)."""
    path = db_dir / f"load-{rows}.db"
    if not path.exists():
        fill(f"sqlite:///{path}", rows)
    for leftover in (db_dir / f"backup-{rows}.db", db_dir / f"recovered-{rows}.db"):
        leftover.unlink(missing_ok=True)
    found = {"rows": rows, "mib": path.stat().st_size / 2**20}
    found["require_intact"], _ = timed(lambda: damage.require_intact(path))
    found["check"], problems = timed(lambda: damage.check(path))
    assert not problems, problems
    found["backup"], _ = timed(lambda: damage.backup(path, db_dir / f"backup-{rows}.db"))
    found["recover"], salvage = timed(lambda: damage.recover(path, f"sqlite:///{db_dir / f'recovered-{rows}.db'}"))
    assert salvage.kept["result"] == rows and not any(salvage.lost.values()), salvage.summary()
    for leftover in (db_dir / f"backup-{rows}.db", db_dir / f"recovered-{rows}.db"):
        leftover.unlink(missing_ok=True)
    return found


def table(found: list[dict]) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on this machine (a 2-vCPU VM, local disk): synthetic results files "
        "shaped like a team's database (every quick-suite cell in both modes, run after run on two machines, "
        "16 metrics and 10 samples a result), the seconds each safeguard takes.",
        "",
        "| results | file | check before a write (`run`, `import`) | `db check` | `db backup` | `db recover` (nothing lost) |",
        "| --- | --- | --- | --- | --- | --- |",
        *[f"| {f['rows']:,} | {f['mib']:,.0f} MiB | {f['require_intact']:.2f} s | {f['check']:.2f} s | "
          f"{f['backup']:.2f} s | {f['recover']:.0f} s |" for f in found],
        "",
        "The check before a write is SQLite's `PRAGMA quick_check` (every page read once); the quick suite's "
        "run that follows it takes minutes.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--db-dir", type=Path, help="keep the filled files here (load-ROWS.db) and reuse them")
    args = parser.parse_args()
    db_dir = args.db_dir or Path(tempfile.mkdtemp())
    db_dir.mkdir(parents=True, exist_ok=True)
    found = []
    for rows in args.rows:
        found.append(measure(rows, db_dir))
        print(f"{rows:,} results measured", file=sys.stderr)
    text = table(found)
    print(text)
    write_section(DOC, "integrity-check", text, heading="## Keeping a results file safe\n\n"
                                                        "`python benchmarks/integrity_check.py`:")
    return 0


if __name__ == "__main__":
    sys.exit(main())
