"""Scaling: fitted exponents against the catalogue's, and where each Hadamard method overtakes."""

import pandas as pd
import streamlit as st

from app import analysis, data, exports, judging, shaping, text, widgets

url = data.db_url()
st.title("Scaling")
st.caption("Log-log slopes of runtime and peak memory against each size parameter, fitted over the upper half "
           "of each sweep (small sizes measure overheads), beside the theoretical exponent; a slope more than "
           "0.3 from theory is flagged.")

measured = data.load_benchmarks_with_results(url)
if not measured:
    st.info("No successful results yet: run `python -m bench_runner run --suite quick`.")
    st.stop()
catalogue = data.load_catalogue(url)
titles = catalogue.drop_duplicates("benchmark").set_index("benchmark")["title"].to_dict()
local = data.local_catalogue().benchmarks  # only the code's own titles are shown; others by id
bench = st.selectbox("Benchmark", [b for b in titles if b in set(measured)],
                     format_func=lambda b: f"{b}: {titles[b]}" if b in local else text.visible(b))
rows = data.load_latest(url, benchmark=bench)
widgets.failed_since_warning(url, [bench])
rows = widgets.pick_context(rows, key_prefix="scaling_")
backend = st.selectbox("Backend", sorted(rows["backend"].unique(), key=lambda b: (b != "eager", b)),
                       format_func=text.visible)
rows = rows[rows["backend"] == backend]
methods = catalogue[catalogue["benchmark"] == bench]
samples = data.load_samples(url, tuple(int(r) for r in rows["result_id"]))

params = shaping.varying_params(rows)
if not params:
    st.info("This selection has a single size: nothing to fit.")
    st.stop()
tables = []
for param in params:
    st.subheader(f"Against {text.md(param)}")
    for metric, label in (("time_median_s", "runtime"), ("peak_mem_bytes", "peak memory")):
        fits = analysis.fitted_exponents(rows, methods, param, metric)
        if not fits:
            continue
        table = pd.DataFrame(fits)[["method", "role", "held", "measured", "stderr", "points", "theory", "flag"]]
        tables.append(table.assign(metric=label, param=param))
        st.markdown(f"**Exponent of {label}**")
        st.dataframe(table.style.format({"measured": "{:.2f}", "stderr": "± {:.2f}", "theory": "{:g}"})
                     .apply(lambda r: ["background-color: #fde2e1" if r["flag"] else "" for _ in r], axis=1),
                     hide_index=True, width="stretch")
    cross = judging.crossovers(rows, methods, param, samples)
    if cross:
        st.markdown("**Where each Hadamard method overtakes what it is compared with**",
                    help="From each size's speed-up verdict (its 95% interval against the 5% floor): faster from "
                         "the first size after which every size was judged faster; unsure where the largest size "
                         "is inconclusive. The speed-up is at the largest size, with its interval.")
        st.dataframe(pd.DataFrame(cross).style.format({"speedup": "{:.2f}×", "speedup_low": "{:.2f}",
                                                       "speedup_high": "{:.2f}"}, na_rep=""),
                     hide_index=True, width="stretch")

if tables:
    exports.download_buttons(pd.concat(tables, ignore_index=True), f"scaling-{bench}-{backend}")
