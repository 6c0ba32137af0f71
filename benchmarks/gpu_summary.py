"""What a GPU check measured, against the targets of the GPU work, as Markdown.

Reads the results that scripts/gpu_check.sh stored and reports, for the CUDA
device in them:

- the Triton `hadamard` and `hadamard_chain` kernels' bandwidth at 64M elements
  as a fraction of the run's calibrated copy bandwidth (target: at least 85%);
- the fused gated activations (SwiGLU, GEGLU, GLU) against torch.compile and
  eager at every full size (target: at least as fast as compile, faster than eager);
- the survey's claims (Figures S3 and S4) from the paper suite: growth exponents,
  ratio to the linear yardstick, crossover against the strongest baseline.

    python benchmarks/gpu_summary.py --db sqlite:///out/hadamard_bench.db --out out/summary.md
    python benchmarks/gpu_summary.py --db ... --doc docs/gpu.md   # also rewrite docs/gpu.md's measured section
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from sqlalchemy.orm import sessionmaker

ROOT = Path(__file__).resolve().parent.parent

import results_db  # noqa: E402
from app.analysis import with_size_columns  # noqa: E402
from app.claims import judge_all  # noqa: E402
from app.markdown import markdown_table  # noqa: E402
from docs_section import write_section  # noqa: E402
from results_db import queries  # noqa: E402

BANDWIDTH_TARGET = 0.85
TARGET_N = 2**26  # 64M elements


def load(url: str, device: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    with sessionmaker(results_db.open_engine(url, create=False))() as session:
        results = queries.results_frame(session)
        calibration = queries.calibrations(session)
        machines = queries.machines(session)
    results = results[results["device"] == device].sort_values("result_id")
    latest = results.drop_duplicates(["benchmark", "method", "backend", "dtype", "mode", "size", "machine"],
                                     keep="last")
    return latest, calibration[calibration["device"] == device], machines


def _table(frame: pd.DataFrame) -> str:
    return markdown_table(frame, digits=3) if not frame.empty else "_no results_"


def _kernel_time(rows: pd.DataFrame) -> pd.Series:
    """The CUDA-graph replay's median where there is one: the kernels' own time, without the
    host's launch overhead, which per-call timing of a Python launcher cannot hide."""
    graph = rows["time_graph_median_s"] if "time_graph_median_s" in rows else pd.Series(index=rows.index)
    return pd.to_numeric(graph, errors="coerce").fillna(rows["time_median_s"])


def bandwidth(results: pd.DataFrame, copy_gbps: float) -> tuple[pd.DataFrame, str]:
    rows = results[(results["benchmark"] == "elementwise") & (results["status"] == "ok")
                   & (results["size"] == f"n={TARGET_N}")
                   & results["method"].isin(["hadamard", "hadamard_chain", "copy"])].copy()
    if rows.empty:
        return rows, "not measured"
    moved = rows["bytes"].astype(float)
    rows["per call (µs)"] = rows["time_median_s"] * 1e6
    kernel = _kernel_time(rows)
    rows["kernel (µs)"] = kernel * 1e6
    rows["of copy, per call"] = moved / rows["time_median_s"] / 1e9 / copy_gbps
    rows["of copy, kernel"] = moved / kernel / 1e9 / copy_gbps
    table = rows[["method", "backend", "dtype", "mode", "per call (µs)", "kernel (µs)", "of copy, per call",
                  "of copy, kernel"]].sort_values(["mode", "method", "dtype", "backend"])
    fused = table[(table["backend"] == "triton") & (table["mode"] == "forward")]
    if fused.empty:
        return table, "not measured"
    kernel, call = fused["of copy, kernel"].min(), fused["of copy, per call"].min()
    verdict = "met" if kernel >= BANDWIDTH_TARGET else "missed"
    return table, (f"{verdict} for the kernels: the lowest Triton forward reaches {kernel:.0%} of "
                   f"{copy_gbps:.0f} GB/s in a CUDA-graph replay; {call:.0%} per call, launch included")


def gated(results: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    rows = results[(results["benchmark"] == "gated_ffn") & (results["status"] == "ok")
                   & results["method"].isin(["swiglu", "geglu", "glu"]) & (results["suite"] == "full")].copy()
    if rows.empty:
        return rows, "not measured"
    rows["kernel"] = _kernel_time(rows)
    wide = rows.pivot_table(index=["method", "dtype", "mode", "size"], columns="backend",
                            values=["time_median_s", "kernel"])
    if not {"eager", "compile", "triton"} <= set(wide.columns.get_level_values(1)):
        return wide.reset_index(), "not measured (a backend is missing)"
    table = pd.DataFrame(index=wide.index)
    for b in ("eager", "compile", "triton"):
        table[f"{b} (ms)"] = wide[("time_median_s", b)] * 1e3
    table["triton / compile"] = wide[("time_median_s", "triton")] / wide[("time_median_s", "compile")]
    table["triton / eager"] = wide[("time_median_s", "triton")] / wide[("time_median_s", "eager")]
    table["triton / compile, kernels"] = wide[("kernel", "triton")] / wide[("kernel", "compile")]
    table["triton / eager, kernels"] = wide[("kernel", "triton")] / wide[("kernel", "eager")]
    table = table.dropna().reset_index()
    if table.empty:
        return table, "not measured (no size has all three backends)"

    def verdict(compile_col: str, eager_col: str) -> bool:
        # "As fast" within the timing's resolution: medians 2% apart are a tie.
        return bool(((table[compile_col] <= 1.02) & (table[eager_col] < 1.0)).all())

    per_call = verdict("triton / compile", "triton / eager")
    kernels = verdict("triton / compile, kernels", "triton / eager, kernels")
    return table, (f"per call {'met' if per_call else 'missed'} (Triton over compile at most "
                   f"{table['triton / compile'].max():.2f}×, over eager at most {table['triton / eager'].max():.2f}×); "
                   f"kernels only {'met' if kernels else 'missed'} (at most "
                   f"{table['triton / compile, kernels'].max():.2f}× and {table['triton / eager, kernels'].max():.2f}×), "
                   f"over {len(table)} sizes")


def claims(results: pd.DataFrame) -> pd.DataFrame:
    rows = results[(results["backend"] == "eager") & (results["mode"] == "forward")
                   & (results["dtype"] == "float32") & (results["suite"] == "paper")]
    verdicts = judge_all(rows)
    verdicts = verdicts.rename(columns={"crossover": "overtakes the strongest baseline at"})
    return verdicts[["figure", "statement", "metric", "held", "hadamard_exponent", "quadratic_exponent",
                     "yardstick_ratio", "largest", "overtakes the strongest baseline at", "verdict"]]


def paper_crossovers(results: pd.DataFrame) -> pd.DataFrame:
    """Each Hadamard method and backend of the paper suite against sdpa and non_local, per size."""
    rows = with_size_columns(results[(results["suite"] == "paper") & (results["status"] == "ok")
                                     & (results["dtype"] == "float32") & (results["mode"] == "forward")])
    out = []
    for bench, mine, theirs, param in (("token_mixing", "poly_sa", "sdpa", "N"),
                                       ("spatial_mixing", "poly_nl", "non_local", "H")):
        b = rows[(rows["benchmark"] == bench) & (rows["method"] == theirs) & (rows["backend"] == "eager")]
        for backend in ("eager", "triton"):
            m = rows[(rows["benchmark"] == bench) & (rows["method"] == mine) & (rows["backend"] == backend)]
            pair = m.assign(kernel=_kernel_time(m)).merge(b.assign(kernel=_kernel_time(b)), on="size",
                                                            suffixes=("", "_b"))
            for r in pair.itertuples():
                out.append({"method": f"{mine} ({backend})", "against": theirs, "size": r.size,
                            "ms": r.time_median_s * 1e3, "baseline ms": r.time_median_s_b * 1e3,
                            "speed-up": r.time_median_s_b / r.time_median_s,
                            "speed-up, kernels": r.kernel_b / r.kernel})
    return pd.DataFrame(out)


def report(url: str, device: str = "cuda") -> tuple[str, str]:
    """The device's name and the Markdown report (its sections start at level 3)."""
    results, calibration, machines = load(url, device)
    if results.empty:
        return "no GPU", f"No {device} results in this database.\n"
    gpu = machines["gpu_name"].dropna().iloc[-1] if machines["gpu_name"].notna().any() else "unknown GPU"
    copy_gbps = float(calibration["copy_gbps"].median()) if not calibration.empty else float("nan")
    matmul = calibration["matmul_gflops"].iloc[-1] if not calibration.empty else {}
    bw_table, bw_verdict = bandwidth(results, copy_gbps)
    gated_table, gated_verdict = gated(results)
    counts = results.groupby("status").size().to_dict()
    failed = results[~results["status"].isin(["ok", "skipped"])][
        ["benchmark", "method", "backend", "dtype", "size", "status", "message"]]
    first = results["created_at"].min()
    parts = [
        f"Device: **{gpu}**, measured {str(first)[:10]} with torch "
        + ", ".join(sorted(set(machines["torch_version"].dropna()))) + " (CUDA "
        + ", ".join(sorted(set(machines["cuda_version"].dropna()))) + "). "
        f"Distinct cells (the latest of each): {sum(counts.values())} ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}). "
        f"Calibrated copy bandwidth {copy_gbps:.0f} GB/s (read + write, median over runs); matmul "
        + ", ".join(f"{k} {v / 1e3:.3g} TFLOP/s" for k, v in (matmul or {}).items()) + ".",
        "",
        f"### Triton element-wise kernels at 64M elements (target ≥ {BANDWIDTH_TARGET:.0%} of copy bandwidth)",
        "", f"**{bw_verdict}**", "", _table(bw_table), "",
        "### Fused gated activations, full sizes (target: as fast as torch.compile, faster than eager)",
        "", f"**{gated_verdict}**", "", _table(gated_table), "",
        "### The survey's claims (paper suite, eager, float32, forward)",
        "", "Exponents are per positions (N = H·W) or tokens; linear ≤ 1.3, quadratic > 1.7.", "",
        _table(claims(results)), "",
        "### Poly-SA and Poly-NL against the strongest baselines, size by size",
        "", _table(paper_crossovers(results)), "",
    ]
    if not failed.empty:
        parts += ["### Cells that failed", "", _table(failed), ""]
    return gpu, "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="database URL the GPU check wrote into")
    parser.add_argument("--out", help="write the summary here as well as to stdout")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                        help="whose results to summarise (cpu: a rehearsal on a machine without a GPU)")
    parser.add_argument("--doc", type=Path, help="also put the report into this page's gpu_summary section")
    args = parser.parse_args()
    gpu, body = report(args.db, args.device)
    text = f"# GPU check: {gpu}\n\n{body}"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.doc:
        write_section(args.doc, "gpu_summary", body, heading="## Measured")
    return 0


if __name__ == "__main__":
    sys.exit(main())
