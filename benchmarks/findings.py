"""Scaling findings: fitted exponents and crossovers of every benchmark, as docs/findings.md.

Runs the `quick` suite on this machine's CPU (or reads results already stored
with --db), then, per benchmark, fits the log-log exponent of runtime against
its main size parameter for each method and finds the size at which each
Hadamard method overtakes each baseline. Prints the tables and writes them into
docs/findings.md.

    python benchmarks/findings.py                   # run the quick suite into a temporary file
    python benchmarks/findings.py --db sqlite:///results/hadamard_bench.db   # reuse stored results
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import pandas as pd
from sqlalchemy.orm import sessionmaker

ROOT = Path(__file__).resolve().parent.parent

import results_db  # noqa: E402
from app.analysis import fitted_exponents, with_size_columns  # noqa: E402
from app.judging import crossovers  # noqa: E402
from results_db import queries  # noqa: E402

CONTEXT = dict(device="cpu", dtype="float32", mode="forward")


def load(url: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    with sessionmaker(results_db.open_engine(url, create=False))() as session:
        results, catalogue = queries.results_frame(session), queries.catalogue_frame(session)
    results = results[(results["status"] == "ok")]
    for key, value in CONTEXT.items():
        results = results[results[key] == value]
    results = results.sort_values("result_id").drop_duplicates(
        ["benchmark", "method", "backend", "size", "machine"], keep="last")
    return with_size_columns(results), catalogue


def analyse(results: pd.DataFrame, catalogue: pd.DataFrame, backend: str) -> tuple[list[dict], list[dict]]:
    """Exponents and crossovers along each benchmark's main size parameter."""
    slopes, crossings = [], []
    for bench, methods in catalogue.groupby("benchmark", sort=False):
        param = methods["x_param"].iloc[0]
        rows = results[(results["benchmark"] == bench) & (results["backend"] == backend)]
        slopes += [dict(benchmark=bench, **s) for s in fitted_exponents(rows, methods, param)]
        crossings += [dict(benchmark=bench, **c) for c in crossovers(rows, methods, param)]
    return slopes, crossings


def fusion(results: pd.DataFrame, catalogue: pd.DataFrame) -> list[dict]:
    """Eager time over compiled time, per method at its benchmark's largest common size."""
    rows = []
    for bench, methods in catalogue.groupby("benchmark", sort=False):
        here = results[results["benchmark"] == bench]
        pivot = here.pivot_table(index=["method", "size"], columns="backend", values="time_median_s")
        if not {"eager", "compile"} <= set(pivot.columns):
            continue
        pivot = pivot.dropna(subset=["eager", "compile"])
        for method in methods["method"]:
            if method not in pivot.index.get_level_values(0):
                continue
            own = pivot.loc[method]
            size = max(own.index, key=lambda s: sum(int(p.split("=")[1]) for p in s.split()))
            rows.append(dict(benchmark=bench, method=method, size=size,
                             eager=own.at[size, "eager"], compile=own.at[size, "compile"]))
    return rows


def headlines(crossovers: list[dict]) -> list[str]:
    """Per benchmark: its Hadamard methods against the baseline that is fastest at the largest size."""
    lines = []
    frame = pd.DataFrame(crossovers)
    if frame.empty:
        return lines
    for bench, pairs in frame.groupby("benchmark", sort=False):
        parts = []
        for method, own in pairs.groupby("method", sort=False):
            c = own.loc[own["speedup"].idxmin()]  # the hardest of its baselines to beat
            verdict = f"{c.speedup:.2f}× faster than" if c.speedup >= 1 else f"{1 / c.speedup:.2f}× slower than"
            parts.append(f"`{method}` is {verdict} `{c.baseline}` "
                         f"({c.crossover.replace('none in range', 'no crossover')})")
        lines.append(f"- **`{bench}`** at {pairs['largest'].iloc[0]}: " + "; ".join(parts) + ".")
    return lines


def markdown(slopes: list[dict], crossovers: list[dict], fused: list[dict], machine: str, source: str,
             backend: str) -> str:
    lines = [
        "# Findings: how each method scales on this machine",
        "",
        f"Measured on {machine}, {date.today():%Y-%m-%d}, CPU float32 forward, backend `{backend}`, "
        f"{source}. Regenerate with `python benchmarks/findings.py` (it runs the quick suite, a few "
        "minutes on a 2-core CPU) or `python benchmarks/findings.py --db URL` on stored results.",
        "",
        "## Headlines",
        "",
        *headlines(crossovers),
        "",
        "## Exponents",
        "",
        "Exponent: the log-log slope of median runtime against the benchmark's main size parameter, "
        "fitted over the upper half of the sizes (at least three), ± its standard error; the other size "
        "parameters held where shown. Small sizes measure fixed per-call overheads, so measured "
        "exponents fall below the theoretical ones until the work dominates; cache effects can push "
        "them above. For `spatial_mixing` and `conditioning` the size is the side H of an H×H map: "
        "the exponent in positions N = H² is half the one shown.",
        "",
        "| benchmark | method | role | size | held | measured exponent | theory |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in slopes:
        lines.append(f"| `{s['benchmark']}` | `{s['method']}` | {s['role']} | {s['param']} | {s['held']} | "
                     f"{s['measured']:.2f} ± {s['stderr']:.2f} | {s['theory']:g} |")
    lines += [
        "",
        "## Crossovers",
        "",
        "Crossover: the size from which the Hadamard method stays faster than the baseline, interpolated "
        "between measured sizes; speed-up: the baseline's time over the method's at the largest size. "
        "Each Hadamard method is set against the baselines of its benchmark, or those the catalogue names "
        "for it (`silu` and `gelu` against `relu`, `dropout_mask` against `dropout`, the element-wise "
        "products against the `copy` bandwidth ceiling).",
        "",
        "| benchmark | Hadamard method | baseline | crossover | speed-up at the largest size |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in crossovers:
        lines.append(f"| `{c['benchmark']}` | `{c['method']}` | `{c['baseline']}` | {c['crossover']} | "
                     f"{c['speedup']:.2f}× at {c['largest']} |")
    lines += [
        "",
        "## What compilation buys",
        "",
        "Eager time over `torch.compile` time at each method's largest size (above 1: compiling helps). "
        "Eager mode runs one kernel per op and writes every intermediate to memory; Inductor fuses "
        "element-wise chains into one kernel.",
        "",
        "| benchmark | method | size | eager | compile | eager ÷ compile |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in fused:
        lines.append(f"| `{f['benchmark']}` | `{f['method']}` | {f['size']} | {f['eager'] * 1e3:.3f} ms | "
                     f"{f['compile'] * 1e3:.3f} ms | {f['eager'] / f['compile']:.2f}× |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="read results from this URL instead of running the quick suite")
    parser.add_argument("--backend", default="eager", choices=["eager", "compile"])
    parser.add_argument("--out", default=str(ROOT / "docs" / "findings.md"))
    args = parser.parse_args()

    if args.db:
        url, source = args.db, "from stored quick-suite results"
    else:
        url = f"sqlite:///{tempfile.mkdtemp()}/findings.db"
        source = "quick suite run by this script"
        subprocess.run([sys.executable, "-m", "bench_runner", "run", "--suite", "quick", "--device", "cpu",
                        "--db", url], cwd=ROOT, check=True)
    results, catalogue = load(url)
    slopes, crossovers = analyse(results, catalogue, args.backend)
    machine = results["machine"].iloc[-1] if not results.empty else "no machine"
    text = markdown(slopes, crossovers, fusion(results, catalogue), machine, source, args.backend)
    print(text)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
