"""What a GPU check measured, against the targets of the GPU work, as Markdown.

Reads the results that scripts/gpu_check.sh stored and reports, for the CUDA
device in them:

- the Triton `hadamard` and `hadamard_chain` forwards' bandwidth per call at 64M
  elements as a fraction of the run's calibrated copy bandwidth (target: at least 90%);
- the triton backend's launch overhead: per call against its CUDA-graph kernel time
  (target: within 10% where a cell moves 4 MB or more, within 20 µs below);
- the fused gated FFNs (the dual-GEMM kernel) against torch.compile per call in
  bfloat16 at C = 1024 and 4096, 4096 and 16384 tokens (target: at least 1.1× faster),
  and all gated FFNs against compile and eager at every full size;
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
from app.claims import judge_all, table as claims_table  # noqa: E402
from app.markdown import markdown_table  # noqa: E402
from docs_section import write_section  # noqa: E402
from results_db import queries  # noqa: E402

BANDWIDTH_TARGET = 0.90  # per call, launch included
TARGET_N = 2**26  # 64M elements
# Launch overhead: per call within 10% of the kernels' time for cells that move at least
# 4 MB, within 20 µs of it below.
LAUNCH_RATIO, LAUNCH_BYTES, LAUNCH_SLACK_S = 1.10, 4 * 2**20, 20e-6
FUSED_FFN_TARGET = 1.10  # compile ÷ triton per call, bfloat16
FUSED_FFN_SIZES = {f"tokens={t} C={c}" for t in (4096, 16384) for c in (1024, 4096)}


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
    verdict = "met" if call >= BANDWIDTH_TARGET else "missed"
    return table, (f"{verdict}: the lowest Triton forward reaches {call:.0%} of {copy_gbps:.0f} GB/s per call, "
                   f"launch included; {kernel:.0%} as kernels, in a CUDA-graph replay")


def launch_overhead(results: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Every triton forward with a graph replay: per call against the kernels' own time."""
    rows = results[(results["backend"] == "triton") & (results["status"] == "ok")
                   & (results["mode"] == "forward")].copy()
    if "time_graph_median_s" not in rows:
        return rows, "not measured"
    rows = rows[pd.to_numeric(rows["time_graph_median_s"], errors="coerce") > 0]
    if rows.empty:
        return rows, "not measured"
    graph = rows["time_graph_median_s"].astype(float)
    large = rows["bytes"].astype(float) >= LAUNCH_BYTES
    rows["MB moved"] = rows["bytes"].astype(float) / 2**20
    rows["per call (µs)"] = rows["time_median_s"] * 1e6
    rows["kernel (µs)"] = graph * 1e6
    rows["per call / kernel"] = rows["time_median_s"] / graph
    rows["met"] = ((large & (rows["per call / kernel"] <= LAUNCH_RATIO))
                   | (~large & (rows["time_median_s"] - graph <= LAUNCH_SLACK_S))).map({True: "yes", False: "no"})
    table = rows[["benchmark", "method", "dtype", "size", "MB moved", "per call (µs)", "kernel (µs)",
                  "per call / kernel", "met"]].sort_values(["benchmark", "method", "dtype", "MB moved"])
    missed = int((table["met"] == "no").sum())
    worst = table.loc[table["per call / kernel"].idxmax()]
    return table, (f"{'met' if missed == 0 else 'missed'}: {len(table) - missed} of {len(table)} cells within target; "
                   f"the largest ratio {worst['per call / kernel']:.2f}× ({worst['method']}, {worst['size']})")


def fused_ffn(results: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The dual-GEMM SwiGLU and GEGLU against torch.compile, bfloat16, per call."""
    rows = results[(results["benchmark"] == "gated_ffn") & (results["status"] == "ok")
                   & results["method"].isin(["swiglu", "geglu"]) & (results["dtype"] == "bfloat16")
                   & (results["mode"] == "forward") & results["size"].isin(FUSED_FFN_SIZES)
                   & results["backend"].isin(["compile", "triton"])]
    wide = rows.pivot_table(index=["method", "size"], columns="backend", values="time_median_s")
    if not {"compile", "triton"} <= set(wide.columns):
        return wide.reset_index(), "not measured"
    table = pd.DataFrame({"compile (ms)": wide["compile"] * 1e3, "triton (ms)": wide["triton"] * 1e3,
                          "compile / triton": wide["compile"] / wide["triton"]}).dropna().reset_index()
    if table.empty:
        return table, "not measured (no size has both backends)"
    low = table["compile / triton"].min()
    return table, (f"{'met' if low >= FUSED_FFN_TARGET else 'missed'}: the dual GEMM is at least {low:.2f}× "
                   f"torch.compile per call over {len(table)} of {2 * len(FUSED_FFN_SIZES)} cells")


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
    verdicts = claims_table(judge_all(rows))
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
    launch_table, launch_verdict = launch_overhead(results)
    ffn_table, ffn_verdict = fused_ffn(results)
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
        f"### Triton element-wise kernels at 64M elements (target ≥ {BANDWIDTH_TARGET:.0%} of copy bandwidth per call)",
        "", f"**{bw_verdict}**", "", _table(bw_table), "",
        f"### Triton launch overhead (target: per call within {LAUNCH_RATIO - 1:.0%} of the kernels from "
        f"{LAUNCH_BYTES / 2**20:.0f} MB moved, within {LAUNCH_SLACK_S * 1e6:.0f} µs below)",
        "", f"**{launch_verdict}**", "", _table(launch_table), "",
        f"### Fused gated FFN, bfloat16 (target: ≥ {FUSED_FFN_TARGET:.1f}× torch.compile per call)",
        "", f"**{ffn_verdict}**", "", _table(ffn_table), "",
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
