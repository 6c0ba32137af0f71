"""Survey claims: each cost claim of Figures S3 and S4, our measurement of it, and whether it holds here."""

import pandas as pd
import streamlit as st

from app import charts, claims, data, exports, shaping, text, widgets

url = data.db_url()
st.title("Survey claims")
st.caption(
    "The survey (Chrysos et al., T-PAMI 2025, Figures S3 and S4, reproduced from Babiloni et al. 2023) says the "
    "Hadamard forms of spatial and token mixing cost about a linear layer while non-local blocks and "
    "self-attention grow quadratically. Each claim is judged on one machine's results: the growth exponent "
    f"fitted over the upper half of the longest sweep, in positions N = H·W or tokens N; linear means at most "
    f"{claims.LINEAR_AT_MOST}, quadratic above {claims.QUADRATIC_ABOVE}. Run the `paper` suite for the sizes "
    "the claims need: `python -m bench_runner run --suite paper`.")

benchmarks = sorted({c.benchmark for c in claims.CLAIMS})
measured = [b for b in benchmarks if b in set(data.load_benchmarks_with_results(url))]
if not measured:
    st.info("No successful results for spatial_mixing or token_mixing yet: run "
            "`python -m bench_runner run --suite paper` (or the quick suite).")
    st.stop()

rows = pd.concat([data.load_latest(url, benchmark=b) for b in measured], ignore_index=True)
widgets.failed_since_warning(url, measured)
# The machine with the most paper-suite cells comes first: that is where the claims are tested.
paper = rows[rows["suite"] == "paper"]["machine"].value_counts()
machines = sorted(rows["machine"].unique(), key=lambda m: (-paper.get(m, 0), m))
cols = st.columns(5)
machine = cols[0].selectbox("Machine", machines, format_func=text.visible)
rows = rows[rows["machine"] == machine]
for key, col, prefer in (("device", cols[1], "cuda"), ("dtype", cols[2], "float32"), ("mode", cols[3], "forward"),
                         ("backend", cols[4], "eager")):
    options = sorted(rows[key].unique(), key=lambda v: (v != prefer, v))
    rows = rows[rows[key] == col.selectbox(key.capitalize(), options, key=f"claims_{key}", format_func=text.visible)]

samples = data.load_samples(url, tuple(int(r) for r in rows["result_id"]))
verdicts = claims.judge_all(rows, samples)
icons = {"holds": ":material/check_circle:", "does not hold": ":material/cancel:",
         "inconclusive": ":material/help:", "not measured": ":material/help:"}


def interval(ci) -> dict:
    """A metric's delta that shows its 95% interval under the figure: beside it, in the value, the
    interval was cut off by the column's width."""
    shown = claims.interval_text(ci)
    return dict(delta=shown, delta_color="off", delta_arrow="off", delta_description="95% interval" if shown else None)


for claim, v in zip(claims.CLAIMS, verdicts):
    with st.container(border=True):
        st.markdown(f"**{claim.figure}.** {claim.statement}")
        show = {"holds": st.success, "does not hold": st.error, "inconclusive": st.warning}.get(v.verdict, st.info)
        show(f"{v.verdict.capitalize()} on {text.md(machine)}: {v.why}", icon=icons[v.verdict])
        if v.verdict == "not measured":
            continue
        cols = st.columns(4)
        kernel_note = " (per call; kernel only {:.2f})"
        cols[0].metric(f"{claim.hadamard} exponent", claims.estimate_text(v.hadamard_exponent),
                       **interval(v.hadamard_ci),
                       help="95% interval from bootstrapping each size's rounds and samples"
                       + (kernel_note.format(v.hadamard_kernel_exponent)
                          if pd.notna(v.hadamard_kernel_exponent) else ""))
        cols[1].metric(f"{' / '.join(claim.quadratic)} exponent", claims.estimate_text(v.quadratic_exponent),
                       **interval(v.quadratic_ci),
                       help="the slowest-growing of them" + (kernel_note.format(v.quadratic_kernel_exponent)
                                                              if pd.notna(v.quadratic_kernel_exponent) else ""))
        cols[2].metric(f"{claim.hadamard} ÷ {claim.yardstick}" + (f" at {claim.param}={v.largest_size}" if v.largest_size else ""),
                       f"{v.yardstick_ratio:.2f}×" if pd.notna(v.yardstick_ratio) else "n/a",
                       **interval(v.yardstick_ci),
                       help="from the two cells' per-cycle ratios: they took turns in one run" if v.yardstick_paired
                       else "from the two cells' medians, timed one after the other")
        overtakes = {"always_faster": "throughout", "never_faster": "never", "unsure": "unsure",
                     "crossover": f"{claim.param} ≈ {v.crossover_at:.0f}"}.get(v.crossover_kind)
        if claim.metric == "time_median_s":
            cols[3].metric(f"Overtakes {claim.strongest}", overtakes or "n/a",
                           help=f"Where {claim.hadamard} becomes faster than {claim.strongest} and stays so: "
                                + ("from the first size after which every size's speed-up was judged faster "
                                   "(its 95% interval beyond the floor); unsure where the largest size is "
                                   "inconclusive" if v.crossover_judged else
                                   "from the medians, interpolated in log space (no samples to judge each size)"))
        shown = rows[(rows["benchmark"] == claim.benchmark)
                     & rows["method"].isin([claim.hadamard, *claim.quadratic, claim.yardstick, claim.strongest])]
        for param, value in v.held_sizes.items():
            if param != claim.param:
                shown = shown[shown[f"size_{param}"] == value]
        label, unit = shaping.METRICS.get(claim.metric, ("FLOPs (counted)", "FLOP"))
        st.plotly_chart(charts.scaling_chart(shown, f"size_{claim.param}", claim.metric, x_title=claim.param,
                                             y_title=f"{label} ({unit})"),
                        width="stretch", key=f"chart_{claim.id}")
        kernel = (f" Kernel-only exponents (CUDA-graph replays): {claim.hadamard} {v.hadamard_kernel_exponent:.2f}, "
                  f"{' / '.join(claim.quadratic)} {v.quadratic_kernel_exponent:.2f}; the verdict is judged on "
                  f"per-call times." if pd.notna(v.hadamard_kernel_exponent) else "")
        st.caption(f"{claim.benchmark}, {text.md(claims.held_text(v))}; {claim.param} grows"
                   + (", so positions grow as its square" if claim.per_param == 2 else "") + "." + kernel)

judged = claims.table(verdicts)
table = judged.drop(columns=["statement", "held_sizes", "crossover_kind", "largest_size"]).assign(
    hadamard_ci=judged["hadamard_ci"].map(lambda ci: f"[{ci[0]:.2f}, {ci[1]:.2f}]"),
    quadratic_ci=judged["quadratic_ci"].map(lambda ci: f"[{ci[0]:.2f}, {ci[1]:.2f}]"),
    yardstick_ci=judged["yardstick_ci"].map(lambda ci: claims.interval_text(ci) or ""))
st.dataframe(table, hide_index=True, width="stretch")
exports.download_buttons(table, "survey-claims")
