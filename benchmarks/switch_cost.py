"""What does a switch cost the member that takes the next turn?

When the members of a comparison group take turns (bench_runner.timing.interleave), each turn
starts with untimed calls, since the member before left its own data in the caches. This script
measures what the first calls after a switch cost: one round of the quick suite's eager cells,
in process, with every turn made of exactly two calls timed one by one (the first and the
second after the switch) and then the member's timed block as usual. Per member, the median
over its turns of each call ÷ per-call time of the block that followed, grouped by how long a
call lasts. The run's rule for long members rests on the first column: no untimed call for
members whose call lasts 20 ms or more (timing.LONG_CALL_S). The second column says whether one
untimed call would be enough for the others; on a 2-vCPU VM on 2026-12-03 it was not (calls of
0.1-2 ms still ran 2-5% slow at their second call), so they keep timing.SWITCH_WARMUP_S of them.

With `--sides`, the turns are an `ab` session's instead: `ab HEAD HEAD` over the same cells, one
round, two processes taking turns (bench_runner.ab). Each side's turns are recorded in its own
process (a sitecustomize module on the sides' PYTHONPATH puts the recording turn in place) and
read back from a file. The rule for `ab`'s long calls rests on this table's first column.

    python benchmarks/switch_cost.py            # about 2 minutes on 2 cores (2026-12-03)
    python benchmarks/switch_cost.py --disturb  # beside an intermittent memory-bound load
    python benchmarks/switch_cost.py --sides    # two processes, as `ab` times them: about 12 minutes (2026-12-04)

The table goes into docs/benchmarks.md, one section per condition.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import numpy as np  # noqa: E402

from bench_runner import cli, timing  # noqa: E402
from docs_section import current_commit, write_section  # noqa: E402
from neighbour import DISTURB_HELP, DISTURBED, disturbance  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
BANDS_MS = [(0, 0.1), (0.1, 0.5), (0.5, 1), (1, 2), (2, 5), (5, 10), (10, 20), (20, 1000)]


def record_turns(turns: list[list[tuple[float, float, float]]]):
    """A stand-in for timing._turn: two calls timed one by one right after the switch, then the
    block; each member's (first call, second call, per-call time of the block) are appended to
    `turns`."""
    def make_turn(fn, clock, calls, untimed=True):  # noqa: ARG001 -- every turn here makes two untimed calls
        mine: list[tuple[float, float, float]] = []
        turns.append(mine)

        def turn():
            first = clock.time_block(fn, 1)  # the member's own clock, as its blocks are timed
            second = clock.time_block(fn, 1)
            block = clock.time_block(fn, calls)
            mine.append((first, second, block / calls))
            return block, calls
        return turn
    return make_turn


# The sides' processes record their turns through this module, put first on their PYTHONPATH: it
# replaces timing._turn as record_turns does, and appends each turn to RECORDS (a JSON line:
# the process, the member's number in it, first call, second call, per-call time of the block).
SIDE_RECORDER = """
import json, os
import bench_runner.timing as timing

_members = iter(range(1 << 30))


def _turn(fn, clock, calls, untimed=True):
    member, pid = next(_members), os.getpid()

    def turn():
        first = clock.time_block(fn, 1)
        second = clock.time_block(fn, 1)
        block = clock.time_block(fn, calls)
        with open(RECORDS, "a") as sink:
            sink.write(json.dumps([pid, member, first, second, block / calls]) + "\\n")
        return block, calls
    return turn


timing._turn = _turn
"""


def side_turns(folder: str, disturb: bool) -> list[list[tuple[float, float, float]]]:
    """One round of `ab HEAD HEAD` over the quick suite's eager cells, each side's turns recorded
    in its own process: per member, its (first call, second call, per-call time of the block)."""
    records = Path(folder, "turns.jsonl")
    Path(folder, "sitecustomize.py").write_text(SIDE_RECORDER.replace("RECORDS", repr(str(records))))
    # This checkout's bench_runner before any installed one: the recorder patches the code the sides run.
    os.environ["PYTHONPATH"] = os.pathsep.join([folder, str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with disturbance(disturb):
        cli.main(["ab", "HEAD", "HEAD", "--repo", str(ROOT), "--suite", "quick", "--backend", "eager",
                  "--device", "cpu", "--rounds", "1", "--quiet", "--db", f"sqlite:///{folder}/sides.db"])
    members: dict[tuple[int, int], list[tuple[float, float, float]]] = {}
    for line in records.read_text().splitlines():
        pid, member, *turn = json.loads(line)
        members.setdefault((pid, member), []).append(tuple(turn))
    return list(members.values())


def band_rows(turns: list[list[tuple[float, float, float]]]) -> list[str]:
    members = [(float(np.median([b for *_, b in t])), float(np.median([f / b for f, _, b in t])),
                float(np.median([s / b for _, s, b in t]))) for t in turns if t]
    rows = []
    for low, high in BANDS_MS:
        band = [(f, s) for call, f, s in members if low <= call * 1e3 < high]
        if band:
            first, second = np.array(band).T
            name = f"{low:g}–{high:g} ms" if high < 1000 else f"≥ {low:g} ms"
            rows.append(f"| {name} | {len(band)} | {np.median(first):.3f} | {np.percentile(first, 90):.3f} | "
                        f"{np.median(second):.3f} | {np.percentile(second, 10):.3f} | {np.percentile(second, 90):.3f} | "
                        f"{second.max():.3f} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disturb", action="store_true", help=DISTURB_HELP)
    parser.add_argument("--sides", action="store_true",
                        help="the turns of an `ab` session's two processes, not of one process's group")
    args = parser.parse_args()
    condition = "disturbed" if args.disturb else "quiet"
    commit = current_commit(ROOT)
    turns: list[list[tuple[float, float, float]]] = []
    when = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory() as folder:
        if args.sides:
            turns = side_turns(folder, args.disturb)
            what = (f"one round of `ab HEAD HEAD` over the quick suite's eager cells, {sum(1 for t in turns if t)} "
                    "members (a cell on a side), two processes taking turns")
        else:
            timing._turn = record_turns(turns)
            with disturbance(args.disturb):
                cli.main(["run", "--suite", "quick", "--backend", "eager", "--device", "cpu", "--rounds", "1",
                          "--in-process", "--quiet", "--db", f"sqlite:///{folder}/switch.db"])
            what = f"one in-process round of the quick suite's eager cells, {sum(1 for t in turns if t)} members taking turns"
    lines = [
        f"Measured {when:%Y-%m-%d %H:%M} UTC at {commit} on this machine's CPU ({os.cpu_count()} cores), "
        f"{DISTURBED if args.disturb else condition}; {what}. Per member: the median over its turns of its first "
        "and its second call after a switch, each ÷ the per-call time of the block that followed.",
        "",
        "| a call lasts | members | first call ÷ block (median) | 90th percentile | second call ÷ block (median) | "
        "10th percentile | 90th percentile | largest |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *band_rows(turns),
    ]
    table = "\n".join(lines)
    print(table)
    flags = " --sides" * args.sides + " --disturb" * args.disturb
    write_section(DOC, f"switch-cost{'-sides' * args.sides}-{condition}", table,
                  heading=f"## What a switch costs the next {'side' if args.sides else 'member'}, {condition}\n\n"
                          f"`python benchmarks/switch_cost.py{flags}`:")
    return 0


if __name__ == "__main__":
    sys.exit(main())
