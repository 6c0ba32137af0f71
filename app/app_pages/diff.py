"""Diff: two runs or two machines, cell by cell, with a verdict per cell that says how sure it is."""

import pandas as pd
import streamlit as st

from app import data, exports, text
from bench_runner import comparison, defaults, stats, wording

url = data.db_url()
st.title("Diff")
st.caption("After ÷ before, per cell measured in both. " + wording.explain_verdicts())

runs = data.load_runs(url)
by = st.radio("Compare", ["runs", "machines"], horizontal=True)
if by == "runs":
    # A run whose every cell failed is still one to compare: the cells that broke are its news.
    measured = runs[runs["cells_ok"].fillna(0) + runs["cells_failed"].fillna(0) > 0]
    choices = list(measured["run_id"])
    # Worded once: a selectbox words every option on every render, a thousand runs twice.
    labels = {r: f"run {r}: " + text.visible(f"{s} · {m}") + (f" · ab with run {int(p)}" if pd.notna(p) else "")
              for r, s, m, p in zip(measured["run_id"], measured["suite"], measured["machine"],
                                    measured["paired_with"])}
    label = labels.get
else:  # machines: each one's latest measurement of every cell
    choices = data.load_machines_with_results(url)
    label = text.visible
if len(choices) < 2:
    st.info(f"Two {by} with results are needed; this database has {len(choices)}.")
    st.stop()
cols = st.columns(3)
before = cols[0].selectbox("Before", choices, index=1, format_func=label)
after = cols[1].selectbox("After", choices, index=0, format_func=label)
threshold = cols[2].slider("Threshold", 0.0, 0.5, defaults.FLOOR, 0.01, format="%.2f",
                           help="The practical floor: a change smaller than this counts as no change")
if before == after:
    st.info(f"Before and After are the same {by[:-1]}: choose two different ones.")
    st.stop()


def side_of(choice) -> dict:
    return {"run_id": int(choice)} if by == "runs" else {"machine": choice}


def cells_of(choice):
    return data.load_cell_samples(url, **side_of(choice))


before_cells, after_cells = cells_of(before), cells_of(after)
if by == "machines":
    for shared in [m for m in (before, after) if data.load_label_fingerprints(url, m) > 1]:
        st.caption(f"Machines of different hardware are labelled {text.md(shared)}: its side holds the cells of "
                   "the one measured last.")
measured_in = tuple(sorted({int(r) for r in (*before_cells["run_id"], *after_cells["run_id"])}))
states = data.load_round_states(url, measured_in)
drift, floors, fingerprints = data.load_measured_drift(url, measured_in)
runs_of = lambda cells: sorted({int(r) for r in cells["run_id"]})  # noqa: E731
machine_drift = comparison.drift_ratios(states, runs_of(before_cells), runs_of(after_cells)) if not states.empty else {}
result = comparison.comparison_table(before_cells, after_cells, threshold, spelled_runs=data.spelled_runs(url, measured_in),
                                     drift=drift, machine_drift=machine_drift)
# A cell `ok` before that failed after has no ratio, and is a worse change than a slower one; one
# fixed the other way has none either, and is said too; so is one that failed after with no before,
# and one `ok` on a side with no `ok` or failed result on the other.
before_failed, after_failed = data.load_failures(url, **side_of(before)), data.load_failures(url, **side_of(after))
before_name, after_name = f"{by[:-1]} {before}", f"{by[:-1]} {after}"
changes = comparison.cell_changes(before_cells, after_cells, before_failed, after_failed)
for kind, said in wording.change_notes(changes, before_name, after_name):
    say = st.error if kind == "Failed" else st.info
    say(text.md(said[0].upper() + said[1:] + ".", limit=None))  # the notes bound how many cells they name
if result.empty:
    st.info("No cell has successful results on both sides"
            + (", other than the same stored ones." if set(before_cells["result_id"]) & set(after_cells["result_id"])
               else "."))
    st.stop()
result = result.iloc[(result["ratio"] - 1).abs().argsort()[::-1]].reset_index(drop=True)
counts = result["verdict"].value_counts()
cols = st.columns(4)
for col, verdict in zip(cols, (*stats.RUN_WORDS, stats.NO_CHANGE, stats.INCONCLUSIVE)):
    col.metric(verdict.capitalize(), int(counts.get(verdict, 0)))
paired = int(result["paired"].sum())
if paired:
    st.caption(f"**Paired**: {paired} of the {len(result)} cells took turns on both sides, block by block, as one "
               "`ab` session: each ratio comes from their per-cycle ratios, and a change is one whose interval "
               "excludes 1 and whose ratio lies beyond the threshold.")
st.caption("**Floor**: " + wording.floor_note(result, threshold, floors, fingerprints).removeprefix("floor: ") + ".")
if by == "runs":
    look = wording.session_look([int(before)], [int(after)], dict(zip(runs["run_id"], runs["paired_with"])),
                                dict(zip(runs["run_id"], runs["rounds"])), data.load_session_looks(url))
    said = wording.look_note(result, look)
    if said:
        st.caption(f"**Rounds**: {said}.")
if counts.get(stats.INCONCLUSIVE, 0):
    st.caption("**Inconclusive**: " + wording.inconclusive_note(result, threshold) + ". "
               + ("Some cells have a single round on a side: their intervals describe one process only."
                  if (result["rounds"] < 2).any() else ""))
controls = wording.controls_note(comparison.control_settings_differ(states, runs_of(before_cells), runs_of(after_cells))
                                 if not states.empty else [])
if controls:
    st.caption(controls[0].upper() + controls[1:] + ".")
if machine_drift and comparison.timed_apart(result):  # an `ab` session's sides took turns: no move between them
    moved = wording.machine_moved_note(result)
    st.caption("The machine itself (drift controls, after ÷ before): " + wording.drift_text(machine_drift)
               + (f". {moved}." if moved else ""))
if by == "runs":
    sides = {f"run {before}": [int(before)], f"run {after}": [int(after)]}
    for caveat in (wording.settling_caveat(states, sides),
                   wording.busy_caveat(states, sides) if comparison.timed_apart(result) else None):
        if caveat:
            st.warning(caveat[0].upper() + caveat[1:] + ".")
    timed_apart = wording.ab_side_note([int(before)], [int(after)], dict(zip(runs["run_id"], runs["paired_with"])))
    if timed_apart:
        st.warning(timed_apart[0].upper() + timed_apart[1:] + ".")
colours = {"regression": "background-color: #fde2e1", "improvement": "background-color: #e1f5e4",
           "inconclusive": "background-color: #fff6d5"}
st.dataframe(result.style.format({"ratio": "{:.3f}×", "ci_low": "{:.3f}", "ci_high": "{:.3f}", "eq_low": "{:.3f}",
                                  "eq_high": "{:.3f}",
                                  "p_adjusted": "{:.2g}", "p_value": "{:.2g}", "before_s": "{:.3g}",
                                  "after_s": "{:.3g}", "floor": "{:.0%}", "round_low": "{:.3f}",
                                  "round_high": "{:.3f}", "rounds_apart": "{:.1f}"}, na_rep="")
             .apply(lambda r: [colours.get(r["verdict"], "") for _ in r], axis=1), hide_index=True, width="stretch")
exports.download_buttons(result, f"diff-{before}-{after}")
