"""Roofline: every cell of one device as achieved GFLOP/s against arithmetic intensity."""

import streamlit as st

from app import charts, data, exports, shaping, text, widgets
from hadamard_bench.vocabulary import counted

url = data.db_url()
st.title("Roofline")
st.caption("Each point is a cell's latest result; the roof is the copy bandwidth and matrix-product throughput "
           "measured at the start of the machine's latest run on that device.")

ok = data.load_latest(url)
if ok.empty:
    st.info("No successful results yet: run `python -m bench_runner run --suite quick`.")
    st.stop()
widgets.failed_since_warning(url)
rows = widgets.pick_context(shaping.add_derived(ok), key_prefix="roofline_")
backends = st.multiselect("Backends", sorted(rows["backend"].unique()), default=sorted(rows["backend"].unique()),
                          format_func=text.visible)
rows = rows[rows["backend"].isin(backends)]
if rows.empty:
    st.info("Choose at least one backend to place its cells under the roof.")
    st.stop()
points = rows[(rows["intensity"] > 0) & (rows["gflops"] > 0)] if "intensity" in rows else rows.iloc[0:0]

ceilings = data.load_calibrations(url)
machine, device, dtype = rows["machine"].iloc[0], rows["device"].iloc[0], rows["dtype"].iloc[0]
mine = ceilings[(ceilings["machine"] == machine) & (ceilings["device"] == device)]
bandwidth = peak = None
if not mine.empty:
    latest = mine.iloc[-1]
    bandwidth, peak = latest["copy_gbps"], latest["matmul_gflops"].get(dtype)
    st.caption(f"Roof from run {latest['run_id']}: {bandwidth:.1f} GB/s copy bandwidth, "
               + (f"{peak:.1f} GFLOP/s {text.md(dtype)} matrix products." if peak else f"no {text.md(dtype)} peak measured."))
else:
    st.caption("No calibration stored for this machine and device: points only.")
figure = charts.roofline_chart(points, bandwidth, peak)
st.plotly_chart(figure, width="stretch")
st.caption(f"{counted(len(points), 'cell')} with FLOPs; cells that only move data (a copy) have no intensity and "
           "are left out.")
exports.download_buttons(points[["benchmark", "method", "role", "backend", "size", "intensity", "gflops", "gbps",
                                 "time_median_s"]], f"roofline-{device}-{dtype}", figure)
