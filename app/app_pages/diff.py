"""Diff: two runs or two machines, cell by cell, with changes told apart from noise."""

import streamlit as st

from app import analysis, data, exports

url = data.db_url()
st.title("Diff")
st.caption("After ÷ before, per cell measured in both. A change counts as a regression or an improvement only "
           "when it exceeds the threshold and the two interquartile ranges do not overlap.")

results = data.load_results(url)
runs = data.load_runs(url)
by = st.radio("Compare", ["runs", "machines"], horizontal=True)
# Runs keep every cell they measured; machines their latest measurement of each cell.
ok = results[results["status"] == "ok"] if by == "runs" else data.latest_ok(results)
if by == "runs":
    measured = set(ok["run_id"])
    choices = [r for r in runs["run_id"] if r in measured]
    label = lambda r: f"run {r}: " + " · ".join(map(str, runs.loc[runs["run_id"] == r, ["suite", "machine"]].iloc[0]))
    column = "run_id"
else:
    choices = sorted(ok["machine"].unique())
    label, column = str, "machine"
if len(choices) < 2:
    st.info(f"Two {by} with successful results are needed; this database has {len(choices)}.")
    st.stop()
cols = st.columns(3)
before = cols[0].selectbox("Before", choices, index=1, format_func=label)
after = cols[1].selectbox("After", choices, index=0, format_func=label)
threshold = cols[2].slider("Threshold", 0.0, 0.5, 0.05, 0.01, format="%.2f")

result = analysis.diff_runs(ok[ok[column] == before], ok[ok[column] == after], threshold)
counts = result["change"].value_counts()
cols = st.columns(3)
cols[0].metric("Regressions", int(counts.get("regression", 0)))
cols[1].metric("Improvements", int(counts.get("improvement", 0)))
cols[2].metric("Within noise", int(counts.get("within noise", 0)))
st.dataframe(result.style.format({"ratio": "{:.3f}×"}).apply(
    lambda r: [{"regression": "background-color: #fde2e1", "improvement": "background-color: #e1f5e4"}
               .get(r["change"], "") for _ in r], axis=1), hide_index=True, width="stretch")
exports.download_buttons(result, f"diff-{before}-{after}")
