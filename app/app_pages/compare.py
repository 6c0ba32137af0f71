"""Compare: every method of one benchmark against the size it grows with."""

import pandas as pd
import streamlit as st

from app import charts, data, judging, exports, shaping, text, widgets
from bench_runner import defaults, wording
from hadamard_bench import columns

url = data.db_url()
st.title("Compare methods")

measured = data.load_benchmarks_with_results(url)
if not measured:
    st.info("No successful results to compare yet. Run `python -m bench_runner run --suite quick`, "
            "or wait for the sweep in progress (see Overview).")
    st.stop()

catalogue = data.load_catalogue(url)
titles = catalogue.drop_duplicates("benchmark").set_index("benchmark")["title"].to_dict()
local = data.local_catalogue().benchmarks  # only the code's own titles are shown; others by id
benchmarks = [b for b in titles if b in set(measured)]
# The selection lives in the URL, so a chart can be shared as a link.
from_url = widgets.url_index
# The chart must sit above the fold: the controls everyone uses in two compact rows, the rest folded.
top = st.columns([3, 2, 2, 2])
context_cols = st.columns(4)
more = st.expander("Methods, backends, held sizes, another machine, the speed-up baseline")

bench = top[0].selectbox("Benchmark", benchmarks, index=from_url("benchmark", benchmarks),
                         format_func=lambda b: f"{b}: {titles[b]}" if b in local else text.visible(b))
run_ids = data.load_runs_with_results(url, bench)
run_choice = top[1].selectbox("Results from", ["latest of each cell", *run_ids],
                              index=from_url("run", ["latest of each cell", *run_ids]),
                              format_func=lambda r: r if isinstance(r, str) else f"run {r}")
rows = (data.load_latest(url, benchmark=bench) if isinstance(run_choice, str)
        else shaping.latest_ok(data.load_run_results(url, bench, int(run_choice))))
if isinstance(run_choice, str):  # one run's results are what that run measured; the latest may be stale
    widgets.failed_since_warning(url, [bench])

all_rows = rows
context = {}
reference = data.load_reference_machines(url)
for key, col in zip(shaping.CONTEXT, context_cols):
    options = widgets.context_options(rows[key].unique(), key, reference)
    context[key] = col.selectbox(key.capitalize(), options, index=from_url(key, options), format_func=text.visible)
    rows = rows[rows[key] == context[key]]

# Another machine's results of the same dtype and mode (a shipped reference GPU, say), drawn beside.
others = judging.other_machines(all_rows, context)
beside = more.selectbox("Beside it", ["nothing", *others], index=from_url("beside", ["nothing", *others]),
                        format_func=text.visible,
                        help="Another machine's results for the same benchmark, dtype and mode, as dotted lines")
if beside != "nothing":
    rows = pd.concat([rows.assign(beside=""), judging.rows_of(all_rows, others[beside]).assign(beside=beside)],
                     ignore_index=True)

cols = more.columns(2)
methods = cols[0].multiselect("Methods", sorted(rows["method"].unique()), default=sorted(rows["method"].unique()),
                              format_func=text.visible)
backends = cols[1].multiselect("Backends", sorted(rows["backend"].unique()), default=sorted(rows["backend"].unique()),
                               format_func=text.visible)
# Only the metrics these results have (energy is measured with --energy only).
offered = [m for m in shaping.METRICS if m == "speedup" or (m in rows and rows[m].notna().any())]
metric = top[2].selectbox("Metric", offered, index=from_url("metric", offered),
                          format_func=lambda m: shaping.METRICS[m][0])
rows = rows[rows["method"].isin(methods) & rows["backend"].isin(backends)]
if rows.empty:
    st.info("Choose at least one method and one backend (under the folded controls).")
    st.stop()

params = shaping.varying_params(rows) or shaping.size_params(rows)
default_x = catalogue.loc[catalogue["benchmark"] == bench, "x_param"].iloc[0]
x_param = top[3].selectbox("x-axis", params, index=from_url("x", params, default_x), format_func=text.visible)
fixed = {}
held = [p for p in params if p != x_param]
for param, col in zip(held, more.columns(len(held)) if held else []):
    values = sorted(rows[f"size_{param}"].dropna().unique())
    if not values:  # a parameter only other results have (a pytest-benchmark group beside ours, say)
        continue
    common = rows[f"size_{param}"].mode().iloc[0]
    fixed[param] = col.selectbox(f"{text.md(param)} held at", values, index=values.index(common))
shown = shaping.hold_fixed(rows, x_param, fixed)

# Baselines first, then the yardsticks (references such as `linear` or `copy`).
roles = shown.drop_duplicates("method").set_index("method")["role"]
baselines = sorted(shown.loc[shown["is_baseline"], "method"].unique(), key=lambda m: (roles[m] != "baseline", m))
baseline = more.selectbox("Speed-up against", baselines, format_func=text.visible) if baselines else None

url_state = {"benchmark": bench, **context, "metric": metric, "x": x_param,
             **({"beside": beside} if beside != "nothing" else {})}
st.query_params.from_dict(url_state if isinstance(run_choice, str) else {**url_state, "run": run_choice})

if metric == "speedup":
    if baseline is None:
        st.info("No baseline among the methods shown: choose one in Methods to chart speed-ups.")
        st.stop()
    plotted = shaping.speedups(shown, baseline)
    y_title = f"Speed-up against {text.plotly(baseline)} (its time ÷ the method's)"
else:
    plotted = shown
    label, unit = shaping.METRICS[metric]
    y_title = f"{label} ({unit})"
figure = charts.scaling_chart(plotted, f"size_{x_param}", metric, x_title=text.plotly(x_param), y_title=y_title,
                              error="time_iqr_s" if metric == "time_median_s" else None)
st.plotly_chart(figure, width="stretch")
if metric == "time_median_s":
    st.caption("Error bars span the interquartile range of the timing samples (± IQR/2 around the median).")

if baseline is not None:
    mine = shown[shown["beside"] == ""] if "beside" in shown else shown
    speed = judging.speedup_intervals(mine, baseline, data.load_samples(url, tuple(int(r) for r in mine["result_id"])),
                                   data.spelled_runs(url, mine["run_id"]))
    if not speed.empty:
        speed["shown"] = speed.apply(judging.speedup_label, axis=1)
        table = speed.pivot_table(index=f"size_{x_param}", values="shown", columns=["method", "backend"],
                                  aggfunc="first")
        table.index.name = x_param
        st.markdown(f"**Speed-up against {text.code(baseline)}** (its time ÷ the method's, same backend; above 1 is faster), "
                    "with its 95% interval")
        st.dataframe(table, width="stretch")
        inconclusive = int((speed["verdict"] == "inconclusive").sum())
        paired = int(speed["paired"].sum())
        st.caption(f"{paired} of the {len(speed)} speed-ups are paired: the method and its baseline took turns block "
                   f"by block in one run, and the interval comes from their per-cycle ratios; such a speed-up is "
                   f"faster or slower where its interval excludes 1 and it lies beyond ±{defaults.FLOOR:.0%}. "
                   f"The others compare two cells timed apart: their whole interval must lie beyond ±{defaults.FLOOR:.0%} "
                   f"and the rank test hold across the table. No change: the 90% interval lies within "
                   f"±{defaults.FLOOR:.0%} (an equivalence test at 5%). "
                   + (f"`?` marks the {inconclusive} inconclusive cells." if inconclusive else ""))
        apart = wording.rounds_apart_note(speed, low="speedup_round_low", high="speedup_round_high",
                                          what="speed-up", of="speed-ups")
        if apart:
            st.caption(apart[0].upper() + apart[1:] + ".")

export = shown[[c for c in shown.columns if not c.startswith("size_") and c != "result_id"]]
# Each header says what its column holds when hovered: the words of docs/columns.md.
st.dataframe(export, hide_index=True, width="stretch",
             column_config={c: st.column_config.Column(help=columns.COLUMNS[c]) for c in export.columns
                            if c in columns.COLUMNS})
exports.download_buttons(export, bench, figure)
