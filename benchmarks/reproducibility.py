"""Do verdicts survive being measured again?

Three experiments on this machine's CPU, each printed as a table and written into
docs/benchmarks.md (between its generated-section markers):

1. A/A: the same selection (the quick suite's eager cells of six benchmarks, 110
   cells) run PAIRS + 1 times back to back into one database, and each run
   compared with the next: every `regression` or `improvement` is a false change;
   `inconclusive` is the price of honesty. One pair says little on a machine that
   changes by the minute, so there are several (three by default).
2. A/B: the gated_ffn part of that selection again with `--threads 1`, against the
   first run's gated_ffn cells: a real, planted slowdown that should be found.
3. The allocator: hadamard_chain at 4M elements measured alone, at the end of the
   elementwise benchmark in one worker, and in a fresh plain process
   (torch.utils.benchmark), which must agree within 15%: per turn, each worker
   setting against the plain process measured right beside it.

    python benchmarks/reproducibility.py                 # about 12 minutes on 2 cores
    python benchmarks/reproducibility.py --disturb       # the same beside an intermittent memory-bound load
    python benchmarks/reproducibility.py --rounds 5      # the A and B runs with five rounds
    python benchmarks/reproducibility.py --db URL        # reuse the runs an earlier call stored there
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import pandas as pd  # noqa: E402

from bench_runner import comparison, defaults, stats, wording  # noqa: E402
from bench_runner.commands import compare  # noqa: E402
from results_db import Run, queries  # noqa: E402
from docs_section import write_section  # noqa: E402
from neighbour import DISTURB_HELP, DISTURBED, disturbance  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
BENCHMARKS = ["token_mixing", "gated_ffn", "elementwise", "polynomial_layer", "bimodal_fusion", "spatial_mixing"]
SELECTION = ["--suite", "quick", "--backend", "eager", "--device", "cpu",
             *[a for b in BENCHMARKS for a in ("--benchmark", b)]]
WIDER_FLOORS = (0.075, 0.10)
CHAIN = ["--suite", "quick", "--benchmark", "elementwise", "--method", "hadamard_chain", "--backend", "eager",
         "--size", "n=4194304", "--device", "cpu"]

PLAIN_TUNED = "fresh plain process, torch.utils.benchmark, same allocator setting"
PLAIN = """
import sys, torch, torch.utils.benchmark as tb
a, b, c = (torch.randn(4194304) for _ in range(3))
m = tb.Timer("a * torch.sigmoid(b) + c", globals=dict(a=a, b=b, c=c, torch=torch),
             num_threads=torch.get_num_threads()).blocked_autorange(min_run_time=1.0)
print(m.median)
"""


def bench_runner(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "bench_runner", *args, "--quiet"], cwd=ROOT, check=True)


def scratch_db(name: str) -> str:
    """A new SQLite file in a scratch folder, with a cold compile cache beside it, for a script's
    runs; its URL is printed so that `--db` can read them again."""
    scratch = tempfile.mkdtemp()
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = f"{scratch}/inductor"
    url = f"sqlite:///{scratch}/{name}.db"
    print(f"runs go to {url} (--db {url} reads them again)", file=sys.stderr)
    return url


def verdict_rates(table: pd.DataFrame) -> dict[str, float]:
    counts = table["verdict"].value_counts()
    n = len(table)
    return {v: int(counts.get(v, 0)) for v in (*stats.RUN_WORDS, stats.NO_CHANGE, stats.INCONCLUSIVE)} | {"cells": n}


def in_worker_ms(after_the_rest: bool) -> float:
    """hadamard_chain at 4M timed in a fresh worker, alone or right after every other elementwise
    quick cell."""
    from bench_runner import selection
    from bench_runner.worker import IsolatedRunner
    from hadamard_impls import catalogue

    cells = selection.plan(catalogue, selection.Selection(suite="quick", benchmarks=["elementwise"], backends=["eager"]))
    last = [c for c in cells if c.method == "hadamard_chain" and c.size_dict["n"] == 4194304]
    order = ([c for c in cells if c not in last] if after_the_rest else []) + last
    with IsolatedRunner("hadamard_impls:catalogue", defaults.POLICIES["quick"], 300) as run_one:
        outcomes = [run_one.measure(c) for c in order]
    return outcomes[-1].metrics["time_median_s"] * 1e3


def plain_ms(tuned: bool) -> float:
    from bench_runner.worker import ALLOCATOR_ENV

    env = {**os.environ, **(ALLOCATOR_ENV if tuned else {})}
    if not tuned:
        env.pop("GLIBC_TUNABLES", None)
    out = subprocess.run([sys.executable, "-c", PLAIN], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip()) * 1e3


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, metavar="K",
                        help="A/A pairs: the selection is run K + 1 times back to back (default 3)")
    parser.add_argument("--rounds", type=int, metavar="N", help="rounds of the A and B runs (default: the quick "
                                                                "suite's)")
    parser.add_argument("--turns", type=int, default=5, metavar="N",
                        help="turns of the allocator experiment, its four settings one after another (default 5)")
    parser.add_argument("--disturb", action="store_true", help=DISTURB_HELP)
    parser.add_argument("--db", help="use the runs an earlier call with the same --pairs stored at this URL: "
                                     "1 … K+1 (A), K+2 (B), K+3 (hadamard_chain)")
    args = parser.parse_args()
    if min(args.pairs, args.turns, args.rounds or 1) < 1:
        parser.error("--pairs, --rounds and --turns take a positive number")
    return args


def measure_runs(a_runs: list[int], rounds: int | None) -> str:
    """The A runs, the B run and hadamard_chain's run, into a scratch database; its URL."""
    url = scratch_db("repro")
    rounds_flag = ["--rounds", str(rounds)] if rounds else []
    for _ in a_runs:
        bench_runner("run", *SELECTION, *rounds_flag, "--db", url)
    bench_runner("run", *[a for a in SELECTION if a not in BENCHMARKS and a != "--benchmark"],
                 "--benchmark", "gated_ffn", "--threads", "1", *rounds_flag, "--db", url)
    bench_runner("run", *CHAIN, "--db", url)
    return url


def compare_runs(url: str, a_runs: list[int], b_run: int, chain_run: int) -> dict:
    """Each A/A pair and the A/B pair compared as `compare` would, at the default floor, wider
    floors and the p10, with what the rounds' states say of drift and slow spells."""
    sessions = compare.existing_db(url)
    with sessions() as session:
        a = {r: compare.side(session, str(r))[0] for r in a_runs}
        b, _, _ = compare.side(session, str(b_run))
        alone, _, _ = compare.side(session, str(chain_run))
        drift_aa = [compare.machine_change(session, [r], [r + 1])[0] for r in a_runs[:-1]]
        drift_ab = compare.machine_change(session, [a_runs[0]], [b_run])[0]
        states = queries.round_states(session, a_runs + [b_run])
        first = session.get(Run, a_runs[0])
        rounds_used, when = int(first.rounds), first.started_at
        commit = (first.provenance or {}).get("git_commit") or "unknown"
    pairs = [(r, r + 1) for r in a_runs[:-1]]
    spelled = comparison.runs_in_spells(states, a_runs + [b_run])  # as `compare` holds what their spells could fake
    moved = dict(zip(pairs, drift_aa))  # as `compare` holds what the machine's own move could explain
    first_ffn = a[a_runs[0]][a[a_runs[0]]["benchmark"] == "gated_ffn"]

    def aa_table(pair, **kw):
        return comparison.comparison_table(a[pair[0]], a[pair[1]], spelled_runs=spelled, machine_drift=moved[pair], **kw)

    def ab_table(**kw):
        return comparison.comparison_table(first_ffn, b, spelled_runs=spelled, machine_drift=drift_ab, **kw)

    aa, ab = {pair: aa_table(pair) for pair in pairs}, ab_table()
    return {
        "a_runs": a_runs, "b_run": b_run, "pairs": pairs, "aa": aa, "ab": ab, "alone": alone,
        "drift_aa": drift_aa, "states": states, "rounds_used": rounds_used, "when": when, "commit": commit[:7],
        "aa_rates": {pair: verdict_rates(t) for pair, t in aa.items()},
        # What a wider practical floor would call the same pairs (`compare --threshold`).
        "wider": {floor: {pair: verdict_rates(aa_table(pair, floor=floor)) for pair in pairs}
                  for floor in WIDER_FLOORS},
        "aa10": {pair: verdict_rates(aa_table(pair, statistic="p10")) for pair in pairs},
        "ab_rates": verdict_rates(ab), "ab10": verdict_rates(ab_table(statistic="p10")),
    }


def allocator_turns(turns: int) -> dict[str, list[float]]:
    """hadamard_chain's time per call in each of the four settings, measured in turn `turns` times.

    The machine drifts by minutes, and a 48 MiB working set sees the host's memory bandwidth move
    by 20% between one minute and the next: so each worker setting is judged by the median of
    its per-turn ratios to the plain process measured right beside it."""
    settings = {"alone in a fresh worker": lambda: in_worker_ms(False),
                "in one worker after the other elementwise cells": lambda: in_worker_ms(True),
                PLAIN_TUNED: lambda: plain_ms(True),
                "fresh plain process, torch.utils.benchmark, system allocator": lambda: plain_ms(False)}
    times = {name: [] for name in settings}
    for _ in range(turns):
        for name, measure in settings.items():
            times[name].append(measure())
    return times


def row(name: str, rates: dict) -> str:
    return (f"| {name} | {rates['cells']} | {rates['regression']} | {rates['improvement']} | "
            f"{rates['no change']} | {rates['inconclusive']} |")


def share(count: int, rates: dict) -> str:
    return f"{count / max(rates['cells'], 1):.0%}"


def changed(rates: dict) -> int:  # in an A/A pair, every one is false
    return rates["regression"] + rates["improvement"]


def verdict_lines(f: dict, condition: str) -> list[str]:
    """The verdicts' table and what it says."""
    pairs, aa, aa_rates, ab_rates, states = f["pairs"], f["aa"], f["aa_rates"], f["ab_rates"], f["states"]
    false = {pair: changed(r) for pair, r in aa_rates.items()}
    false10 = {pair: changed(r) for pair, r in f["aa10"].items()}
    inconclusive = [r["inconclusive"] / max(r["cells"], 1) for r in aa_rates.values()]
    every = pd.concat(aa.values())
    abs_change = (every["ratio"] - 1).abs()
    at_floor = lambda floor, rates: (  # noqa: E731
        f"{floor * 100:g}%: " + ", ".join(share(rates[p]["inconclusive"], rates[p]) for p in pairs)
        + " (false changes " + ", ".join(str(changed(rates[p])) for p in pairs) + ")")
    return [
        f"Measured {f['when']:%Y-%m-%d %H:%M} UTC at {f['commit']} on this machine's CPU ({os.cpu_count()} cores), "
        f"{condition}; the quick suite's eager cells of {', '.join(BENCHMARKS)}, {f['rounds_used']} rounds a run, "
        f"{defaults.FLOOR:.0%} floor; "
        f"{len(f['a_runs'])} A runs back to back, each compared with the next.",
        "",
        "| experiment | cells | regression | improvement | no change | inconclusive |",
        "| --- | --- | --- | --- | --- | --- |",
        *[row(f"A/A: `compare {x} {y}`", aa_rates[(x, y)]) for x, y in pairs],
        row(f"A/B: gated_ffn with `--threads 1` (run {f['b_run']}) against run 1", ab_rates),
        *[row(f"A/A, `--statistic p10`: `compare {x} {y}`", f["aa10"][(x, y)]) for x, y in pairs],
        row("A/B, `--statistic p10`", f["ab10"]),
        "",
        "- A/A false changes per pair: " + ", ".join(f"{false[p]} ({share(false[p], aa_rates[p])})" for p in pairs)
        + " by the median; " + ", ".join(f"{false10[p]}" for p in pairs) + " by the p10. Inconclusive per pair: "
        + ", ".join(f"{v:.0%}" for v in inconclusive) + f" (median {pd.Series(inconclusive).median():.0%}).",
        "- Intervals across time: in each pair, the share of the 95% intervals that hold 1 (nothing changed in "
        "the code): " + ", ".join(f"{comparison.interval_coverage(aa[p]):.0%}" for p in pairs)
        + "; their median half-width " + ", ".join(f"{comparison.interval_half_width(aa[p]).median():.1%}" for p in pairs)
        + ". A run's interval carries the spread of its own rounds, not how far the machine moved between two runs "
        "(about 95% hold 1 only where it did not move): `compare` judges runs timed apart at the floor `noise` "
        "measures for that. "
        f"A cell is `no change` only when its change and its half-width fit inside the {defaults.FLOOR:.0%} floor "
        "together.",
        "- Inconclusive at a wider floor (`compare --threshold`), per pair: "
        + "; ".join(at_floor(floor, w) for floor, w in f["wider"].items()) + ".",
        f"- Over all pairs, median |change| {abs_change.median():.1%}, 90th percentile {abs_change.quantile(0.9):.1%}, "
        f"largest {every['ratio'].max():.2f}× / {every['ratio'].min():.2f}×.",
        f"- A/B power: **{ab_rates['regression'] / max(ab_rates['cells'], 1):.0%}** of the gated_ffn cells called a "
        f"regression, {ab_rates['improvement']} an improvement; median ratio {f['ab']['ratio'].median():.2f}×.",
        "- Machine drift within each pair (drift controls, after ÷ before): "
        + "; ".join(f"{x}→{y} " + (wording.drift_text(d) or "not recorded")
                    for (x, y), d in zip(pairs, f["drift_aa"])) + ".",
        "- Cell-rounds timed while the cores were still slow to work together (unsettled, `--settle`), per A run: "
        + ", ".join("{} of {}".format(*comparison.unsettled_share(states, [r])) for r in f["a_runs"]) + ".",
    ]


def allocator_lines(times: dict[str, list[float]], alone) -> list[str]:
    """The allocator experiment's table and what it says."""
    chain = {name: float(pd.Series(values).median()) for name, values in times.items()}
    to_plain = {name: float((pd.Series(times[name]) / pd.Series(times[PLAIN_TUNED])).median()) for name in times}
    spread = max(abs(to_plain[name] - 1) for name in list(times)[:2])
    turns = len(times[PLAIN_TUNED])
    return [
        f"hadamard_chain at n = 4,194,304, eager (median per call, over {turns} turns; in its own run, "
        f"{len(set(alone['sample_rounds'].iloc[0] or [0]))} rounds: "
        f"{float(pd.Series(alone['samples'].iloc[0]).median()) * 1e3:.2f} ms):",
        "",
        "| where | median | each turn | ÷ the plain process beside it (median) |",
        "| --- | --- | --- | --- |",
        *[f"| {k} | {v:.2f} ms | {', '.join(f'{t:.2f}' for t in times[k])} | {to_plain[k]:.3f}× |"
          for k, v in chain.items()],
        "",
        f"Both worker settings agree with the plain process within **{spread:.1%}** (the median of "
        f"{turns} per-turn ratios; the target is 15%).",
    ]


def main() -> int:
    args = arguments()
    a_runs = list(range(1, args.pairs + 2))
    b_run, chain_run = a_runs[-1] + 1, a_runs[-1] + 2
    with disturbance(args.disturb):  # the allocator's turns too: every figure of a table beside the same neighbour
        url = args.db or measure_runs(a_runs, args.rounds)
        turns = allocator_turns(args.turns)
    found = compare_runs(url, a_runs, b_run, chain_run)
    condition = "disturbed" if args.disturb else "quiet"
    table = "\n".join([*verdict_lines(found, DISTURBED if args.disturb else condition), "",
                       *allocator_lines(turns, found["alone"])])
    print(table)
    flags = " --disturb" if args.disturb else ""
    write_section(DOC, "reproducibility" + ("-disturbed" if args.disturb else ""), table,
                  heading=f"## Verdicts that reproduce, {condition}\n\n`python benchmarks/reproducibility.py{flags}`:")
    return 0


if __name__ == "__main__":
    sys.exit(main())
