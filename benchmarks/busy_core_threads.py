"""How do PyTorch's threads fare when another process holds one of the cores?

`doctor` warns of other busy processes and, where they hold cores PyTorch's threads would use,
advises `run --threads N` with N the cores they leave free. This script measures why. Three small
calls of the kinds the quick suite times (a 262K-element multiply, a 256×128·128×128 product,
and attention over 256 tokens of 4 heads of 32 channels), each timed in blocks of 50 calls on
PyTorch's own thread count and on one thread, the two taking turns block by block for about half
a minute, first alone and then beside a neighbour (a process streaming memory on the last core,
a second on and a second off: benchmarks/speedup_aa.py's). Per call and thread count, the
blocks' per-call median, 90th percentile and mean, the share of blocks over twice their median,
and the mean beside the neighbour over the mean alone.

    python benchmarks/busy_core_threads.py      # about 1 minute on 2 cores

The table goes into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from docs_section import current_commit, write_section  # noqa: E402
from neighbour import DISTURBED, disturbance  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
CALLS = 50  # per block: 1-15 ms of calls here, shorter than the neighbour's one-second phases


def calls() -> dict:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1 << 18, generator=g), torch.randn(1 << 18, generator=g)
    x, w = torch.randn(256, 128, generator=g), torch.randn(128, 128, generator=g)
    q, k, v = (torch.randn(1, 4, 256, 32, generator=g) for _ in range(3))
    return {"multiply, 262K elements": lambda: a * b, "product 256×128·128×128": lambda: x @ w,
            "attention, 256 tokens": lambda: F.scaled_dot_product_attention(q, k, v)}


def per_call_s(fn) -> float:
    started = time.perf_counter()
    for _ in range(CALLS):
        fn()
    return (time.perf_counter() - started) / CALLS


def measure(turns: int, thread_counts: list[int]) -> dict[tuple[str, int], list[float]]:
    """Per (call, threads): the per-call time of each block, the thread counts taking turns."""
    found: dict[tuple[str, int], list[float]] = {}
    named = calls()
    try:
        for _ in range(turns):
            for threads in thread_counts:
                torch.set_num_threads(threads)
                for name, fn in named.items():
                    fn()  # one untimed call after the switch
                    found.setdefault((name, threads), []).append(per_call_s(fn))
    finally:
        torch.set_num_threads(thread_counts[0])
    return found


def rows(alone: dict, beside: dict) -> list[str]:
    out = []
    for condition, found in (("alone", alone), ("beside the neighbour", beside)):
        for (name, threads), blocks in found.items():
            median, ordered = statistics.median(blocks), sorted(blocks)
            mean = statistics.mean(blocks)
            over = sum(b > 2 * median for b in blocks) / len(blocks)
            ratio = mean / statistics.mean(alone[(name, threads)])
            out.append(f"| {condition} | {name} | {threads} | {median * 1e6:.1f} | "
                       f"{ordered[int(0.9 * len(ordered))] * 1e6:.1f} | {mean * 1e6:.1f} | {over:.0%} | {ratio:.2f}× |")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=400,
                        help="how many times each thread count takes its turn per condition (default: 400)")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    if threads < 2:
        sys.exit("PyTorch runs one thread here: there is no thread count above one to set against it")
    when, commit = datetime.now(timezone.utc), current_commit(ROOT)
    started = time.perf_counter()
    alone = measure(args.turns, [threads, 1])
    with disturbance(True):
        beside = measure(args.turns, [threads, 1])
    lines = [
        f"Measured {when:%Y-%m-%d %H:%M} UTC at {commit} on this machine's CPU ({os.cpu_count()} cores), "
        f"PyTorch's {threads} threads against one, taking turns in blocks of {CALLS} calls, {args.turns} turns each, "
        f"alone and then beside {DISTURBED.split('(', 1)[1].rstrip(')')}; "
        f"{(time.perf_counter() - started) / 60:.1f} minutes.",
        "",
        "| condition | call | threads | median per call (µs) | 90th percentile | mean | blocks over 2× the median "
        "| mean ÷ mean alone |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows(alone, beside),
    ]
    table = "\n".join(lines)
    print(table)
    write_section(DOC, "busy-core-threads", table,
                  heading="## Threads beside a busy core\n\n`python benchmarks/busy_core_threads.py`:")
    return 0


if __name__ == "__main__":
    sys.exit(main())
