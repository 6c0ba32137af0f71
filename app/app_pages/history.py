"""History: one cell (or all sizes of a method) run after run on one hardware fingerprint, with its
interval, the change points found in it, what differs across them, and people's marks."""

import streamlit as st

from app import charts, data, judging, exports, text, widgets
from bench_runner import history, wording
from hadamard_bench.vocabulary import CELL_KEY, MARK_KINDS, counted

url = data.db_url()
st.title("History")
st.caption("Each run's median with its 95% interval from the rounds, on one hardware fingerprint (CPU model, "
           "cores, memory, GPU, driver major: identical nodes share it; a torch or driver upgrade is an "
           "annotation, not a new history). Change points: E-divisive means, kept where the step exceeds the "
           "cell's floor (said below the chart) and the rounds on either side make it significant. Plain runs only: "
           "an `ab` session's two runs took turns on huge pages, and the Diff page shows them. "
           "`python -m bench_runner history` prints the same.")

fingerprints = data.load_fingerprints(url)
if fingerprints.empty:
    st.info("No successful results yet: run `python -m bench_runner run --suite quick`, then again tomorrow.")
    st.stop()
described = {r.fingerprint: text.visible(f"{r.hardware} · {', '.join(r.hostnames)}") + f" · {counted(r.runs, 'run')}"
             for r in fingerprints.itertuples()}
choices = list(described)
fingerprint = st.selectbox("Machine (hardware fingerprint)", choices, index=widgets.url_index("machine", choices),
                           format_func=described.get)
cells = data.load_history_cells(url, fingerprint)
benchmarks = sorted(cells["benchmark"].unique())
cols = st.columns(4)
bench = cols[0].selectbox("Benchmark", benchmarks, index=widgets.url_index("benchmark", benchmarks),
                         format_func=text.visible)
cells = cells[cells["benchmark"] == bench]
state = {"machine": fingerprint, "benchmark": bench}
for key, col in zip(("method", "backend"), cols[1:3]):  # chosen before loading: one method's history is read
    options = sorted(cells[key].unique())
    state[key] = col.selectbox(key.capitalize(), options, index=widgets.url_index(key, options),
                               format_func=text.visible)
    cells = cells[cells[key] == state[key]]
rows = data.load_history(url, fingerprint, bench, state["method"], state["backend"])
sizes = ["all sizes", *dict.fromkeys(rows.sort_values("size", key=lambda s: s.str.len())["size"])]
state["size"] = cols[3].selectbox("Size", sizes, index=widgets.url_index("size", sizes), format_func=text.visible)
cols = st.columns(4)
for key, col in zip(("device", "dtype", "mode"), cols):
    options = sorted(rows[key].unique())
    state[key] = col.selectbox(key.capitalize(), options, index=widgets.url_index(key, options),
                               format_func=text.visible)
    rows = rows[rows[key] == state[key]]
axes = ["run start", "commit"]
state["x"] = cols[3].radio("Runs placed by", axes, index=widgets.url_index("x", axes), horizontal=True)
if state["size"] != "all sizes":
    rows = rows[rows["size"] == state["size"]]
st.query_params.from_dict(state)

# By commit: each run its own place (a commit measured twice is two points), labelled by both.
rows = rows.assign(commit_run=[f"{(c or 'no commit')[:8]} · run {r}" for c, r in zip(rows["commit"], rows["run_id"])])
x = "started_at" if state["x"] == "run start" else "commit_run"
figure = charts.history_chart(rows, x, x_title=state["x"])
st.plotly_chart(figure, width="stretch")
runs_here = rows["run_id"].nunique()
if runs_here < 2:
    st.caption("One run so far: a history, and its change points, need more.")
st.caption("Change points: " + wording.change_point_floor_note(rows, data.load_noise_floors(url, fingerprint)) + ".")

changes = judging.change_point_table(rows)
if not changes.empty:
    st.markdown("**Change points and marks** (step: this run's median ÷ the previous run's)")
    st.dataframe(changes.style.format({"step": "{:.3f}×"}), hide_index=True, width="stretch")
software = rows.loc[rows["annotation"].str.contains("→", regex=False), ["run_id", "started_at", "annotation"]]
if not software.empty:
    st.caption("Software changes in this history: " + "; ".join(
        f"run {r.run_id}: {text.md(r.annotation)}" for r in software.drop_duplicates("run_id").itertuples()))

if not data.read_only():  # a shared dashboard writes nothing
    with st.expander("Mark a run"):
        st.caption("**expected**: the change at this run is explained (a torch upgrade, a new kernel); the gate "
                   "reports it without failing. **new distribution**: this run starts a new level; change points "
                   "are searched on either side separately. Either way the gate judges later runs against runs "
                   "from this one on.")
        with st.form("mark"):
            run_ids = sorted(rows["run_id"].unique(), reverse=True)
            cols = st.columns([1, 1, 2])
            run_id = cols[0].selectbox("Run", run_ids)
            kind = cols[1].selectbox("Kind", MARK_KINDS, format_func=lambda k: k.replace("_", " "))
            scopes = {"these cells": {k: state[k] for k in CELL_KEY if k != "size"}
                      | ({"size": state["size"]} if state["size"] != "all sizes" else {}),
                      "every cell of the run": {}}
            scope = cols[2].radio("Covering", list(scopes), horizontal=True)
            note = st.text_input("Note", max_chars=500, placeholder="torch 2.14 upgrade")
            if st.form_submit_button("Add mark") and run_id is not None:
                try:
                    with data.sessions(url)() as session, session.begin():
                        history.add_mark(session, int(run_id), kind, note.strip(), scopes[scope])
                except ValueError as exc:  # refused before anything was stored
                    st.error(text.md(str(exc), None))
                else:
                    data.clear_history()
                    st.rerun()
        marks = rows.loc[rows["annotation"].str.contains("marked", regex=False), "run_id"].unique()
        if len(marks):
            st.caption("To remove a mark: `python -m bench_runner mark --list`, then `mark --delete ID`.")

st.subheader("Geometric mean per benchmark and backend")
order = [int(r) for r in data.load_history_runs(url, fingerprint)["run_id"]]
if len(order) < 2:
    st.info("Two runs on this machine are needed to draw it.")
else:
    first, last = st.select_slider("Between runs", order, value=(order[max(0, len(order) - 10)], order[-1]),
                                   format_func=lambda r: f"run {r}")
    window = tuple(order[order.index(first):order.index(last) + 1])
    line = history.geomean_series(data.load_history_medians(url, fingerprint, window), first, last)
    if line.empty:
        st.info("No cell was measured in both.")
    else:
        st.plotly_chart(charts.geomean_chart(line), width="stretch")
        st.caption(f"Each cell's median ÷ its median in run {first}, averaged geometrically over the cells of "
                   "each benchmark and backend measured in both.")

export = rows.drop(columns=["provenance", "options", "commit_run"], errors="ignore")
exports.download_buttons(export, f"history-{bench}-{state['method']}", figure)
