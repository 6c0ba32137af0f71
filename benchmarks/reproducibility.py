"""Do verdicts survive being measured again?

Three experiments on this machine's CPU, each printed as a table and written into
docs/measurement.md (between its generated-section markers):

1. A/A: the same selection (the quick suite's eager cells of six benchmarks, 110
   cells) run twice back to back into one database, then `compare 1 2`: every
   `regression` or `improvement` is a false change; `inconclusive` is the price
   of honesty.
2. A/B: the gated_ffn part of that selection again with `--threads 1`, against the
   first run's gated_ffn cells: a real, planted slowdown that should be found.
3. The allocator: hadamard_chain at 4M elements measured alone, at the end of the
   elementwise benchmark in one worker, and in a fresh plain process
   (torch.utils.benchmark), which must agree within 15%.

    python benchmarks/reproducibility.py               # about 12 minutes on 2 cores
    python benchmarks/reproducibility.py --db URL      # reuse runs 1-3 already stored there
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

from bench_runner import stats  # noqa: E402
from bench_runner.commands import compare  # noqa: E402
from docs_section import write_section  # noqa: E402

DOC = ROOT / "docs" / "measurement.md"
BENCHMARKS = ["token_mixing", "gated_ffn", "elementwise", "polynomial_layer", "bimodal_fusion", "spatial_mixing"]
SELECTION = ["--suite", "quick", "--backend", "eager", "--device", "cpu",
             *[a for b in BENCHMARKS for a in ("--benchmark", b)]]
CHAIN = ["--suite", "quick", "--benchmark", "elementwise", "--method", "hadamard_chain", "--backend", "eager",
         "--size", "n=4194304", "--device", "cpu"]

PLAIN = """
import sys, torch, torch.utils.benchmark as tb
a, b, c = (torch.randn(4194304) for _ in range(3))
m = tb.Timer("a * torch.sigmoid(b) + c", globals=dict(a=a, b=b, c=c, torch=torch),
             num_threads=torch.get_num_threads()).blocked_autorange(min_run_time=1.0)
print(m.median)
"""


def bench_runner(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "bench_runner", *args, "--quiet"], cwd=ROOT, check=True)


def verdict_rates(table: pd.DataFrame) -> dict[str, float]:
    counts = table["verdict"].value_counts()
    n = len(table)
    return {v: int(counts.get(v, 0)) for v in (*stats.RUN_WORDS, stats.NO_CHANGE, stats.INCONCLUSIVE)} | {"cells": n}


def in_worker_ms(after_the_rest: bool) -> float:
    """hadamard_chain at 4M timed in a fresh worker, alone or right after every other elementwise
    quick cell."""
    from bench_runner import sweep
    from bench_runner.worker import IsolatedRunner
    from hadamard_impls import catalogue

    cells = sweep.plan(catalogue, sweep.Selection(suite="quick", benchmarks=["elementwise"], backends=["eager"]))
    last = [c for c in cells if c.method == "hadamard_chain" and c.size_dict["n"] == 4194304]
    order = ([c for c in cells if c not in last] if after_the_rest else []) + last
    with IsolatedRunner("hadamard_impls:catalogue", sweep.POLICIES["quick"], 300) as run_one:
        outcomes = [run_one(c) for c in order]
    return outcomes[-1].metrics["time_median_s"] * 1e3


def plain_ms(tuned: bool) -> float:
    from bench_runner.worker import ALLOCATOR_ENV

    env = {**os.environ, **(ALLOCATOR_ENV if tuned else {})}
    if not tuned:
        env.pop("GLIBC_TUNABLES", None)
    out = subprocess.run([sys.executable, "-c", PLAIN], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip()) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="use runs 1 (A), 2 (A again) and 3 (B) already stored at this URL")
    args = parser.parse_args()
    url = args.db
    if url is None:
        scratch = tempfile.mkdtemp()
        url = f"sqlite:///{scratch}/repro.db"
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = f"{scratch}/inductor"
        bench_runner("run", *SELECTION, "--db", url)
        bench_runner("run", *SELECTION, "--db", url)
        bench_runner("run", *[a for a in SELECTION if a not in BENCHMARKS and a != "--benchmark"],
                     "--benchmark", "gated_ffn", "--threads", "1", "--db", url)
        bench_runner("run", *CHAIN, "--db", url)
    sessions = compare.existing_db(url, "compare")
    with sessions() as session:
        a1, _, _ = compare.side(session, "1")
        a2, _, _ = compare.side(session, "2")
        b, _, _ = compare.side(session, "3")
        alone, _, _ = compare.side(session, "4")
        drift_aa = compare.drift(session, [1], [2])
    aa = stats.comparison_table(a1, a2)
    ab = stats.comparison_table(a1[a1["benchmark"] == "gated_ffn"], b)
    aa_rates, ab_rates = verdict_rates(aa), verdict_rates(ab)
    aa10 = verdict_rates(stats.comparison_table(a1, a2, statistic="p10"))
    ab10 = verdict_rates(stats.comparison_table(a1[a1["benchmark"] == "gated_ffn"], b, statistic="p10"))
    agree = {name: float(((stats.comparison_table(a1, a2, statistic=name)["ratio"] - 1).abs() <= stats.FLOOR).mean())
             for name in stats.STATISTICS}
    changed = aa_rates["regression"] + aa_rates["improvement"]
    abs_change = (aa["ratio"] - 1).abs()

    # The machine drifts by minutes: the four settings are measured in turn, three times, and
    # each reported as the median of its three.
    settings = {"alone in a fresh worker": lambda: in_worker_ms(False),
                "in one worker after the other elementwise cells": lambda: in_worker_ms(True),
                "fresh plain process, torch.utils.benchmark, same allocator setting": lambda: plain_ms(True),
                "fresh plain process, torch.utils.benchmark, system allocator": lambda: plain_ms(False)}
    times = {name: [] for name in settings}
    for _ in range(3):
        for name, measure in settings.items():
            times[name].append(measure())
    chain = {name: float(pd.Series(values).median()) for name, values in times.items()}
    agreed = list(chain.values())[:3]
    spread = max(agreed) / min(agreed) - 1

    lines = [
        f"Measured {pd.Timestamp.now():%Y-%m-%d} on this machine's CPU ({os.cpu_count()} cores), the quick suite's "
        f"eager cells of {', '.join(BENCHMARKS)}, {stats.FLOOR:.0%} floor.",
        "",
        "| experiment | cells | regression | improvement | no change | inconclusive |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| A/A: the same selection twice, `compare 1 2` | {aa_rates['cells']} | {aa_rates['regression']} | "
        f"{aa_rates['improvement']} | {aa_rates['no change']} | {aa_rates['inconclusive']} |",
        f"| A/B: gated_ffn with `--threads 1` against the default | {ab_rates['cells']} | {ab_rates['regression']} | "
        f"{ab_rates['improvement']} | {ab_rates['no change']} | {ab_rates['inconclusive']} |",
        f"| A/A, `--statistic p10` | {aa10['cells']} | {aa10['regression']} | {aa10['improvement']} | "
        f"{aa10['no change']} | {aa10['inconclusive']} |",
        f"| A/B, `--statistic p10` | {ab10['cells']} | {ab10['regression']} | {ab10['improvement']} | "
        f"{ab10['no change']} | {ab10['inconclusive']} |",
        "",
        f"- A/A false-change rate: **{changed / max(aa_rates['cells'], 1):.1%}** ({changed} of {aa_rates['cells']}); "
        f"inconclusive: **{aa_rates['inconclusive'] / max(aa_rates['cells'], 1):.1%}**; median |change| "
        f"{abs_change.median():.1%}, 90th percentile {abs_change.quantile(0.9):.1%}, largest "
        f"{aa['ratio'].max():.2f}× / {aa['ratio'].min():.2f}×.",
        f"- A/B power: **{ab_rates['regression'] / max(ab_rates['cells'], 1):.0%}** of the gated_ffn cells called a "
        f"regression, {ab_rates['improvement']} an improvement; median ratio {ab['ratio'].median():.2f}×.",
        "- Cells whose A/A ratio lies within ±5%: "
        + ", ".join(f"{share:.0%} by the {name}" for name, share in agree.items()) + ".",
        "- Machine drift between the two A runs (drift controls, after ÷ before): "
        + (stats.drift_text(drift_aa) or "not recorded") + ".",
        "",
        f"hadamard_chain at n = 4,194,304, eager (median per call; the median of three turns; in its own run, "
        f"three rounds: {float(pd.Series(alone['samples'].iloc[0]).median()) * 1e3:.2f} ms):",
        "",
        "| where | median |",
        "| --- | --- |",
        *[f"| {k} | {v:.2f} ms ({', '.join(f'{t:.2f}' for t in times[k])}) |" for k, v in chain.items()],
        "",
        f"The first three agree within **{spread:.1%}** (the target is 15%).",
    ]
    table = "\n".join(lines)
    print(table)
    write_section(DOC, "reproducibility", table,
                  heading="## Verdicts that reproduce\n\n`python benchmarks/reproducibility.py`:")
    return 0


if __name__ == "__main__":
    sys.exit(main())
