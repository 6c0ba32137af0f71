"""Runs: the history, and a form that starts a new sweep as a separate process."""

import socket
import subprocess
import sys

import pandas as pd
import streamlit as st

from app import data, judging, exports, text
from hadamard_bench import vocabulary
from results_db import store

url = data.db_url()
st.title("Runs")

catalogue = data.load_catalogue(url)
machines = data.load_machines(url)
here = machines[machines["hostname"] == socket.gethostname()]
devices = ["cpu"] + (["cuda"] if here["gpu_name"].notna().any() else [])


@st.fragment(run_every=2)
def history():
    runs = data.load_runs(url)
    if runs.empty:
        st.info("No runs yet. Start one below.")
        return
    for run in judging.active_runs(runs).itertuples():
        cols = st.columns([5, 1])
        cols[0].progress(run.cells_done / max(run.cells_total, 1),
                         text=f"Run {run.run_id} ({text.md(run.suite)}, {text.md(run.status)}): {run.cells_done} of {run.cells_total} "
                              # An `ab` session's cell decided halfway takes no more rounds (bench_runner.ab).
                              f"measurements ({'up to ' if pd.notna(run.paired_with) else ''}"
                              f"{vocabulary.counted(run.rounds, 'round')} of every cell)"
                              # A plain run's rounds more (run --more-rounds) count toward no total.
                              + ("; every round taken, now any rounds more where a speed-up is undecided"
                                 if pd.isna(run.paired_with) and run.cells_done >= run.cells_total else ""))
        if run.status in ("queued", "running") and not data.read_only() and cols[1].button(
                "Cancel", key=f"cancel_{run.run_id}"):
            with data.sessions(url)() as session, session.begin():
                store.request_cancel(session, int(run.run_id))
            st.toast(f"Run {run.run_id} stops after its current cell.")
    latest = runs.iloc[0]
    # A cell is `ok` by its first round; one that failed in a later round is broken too (compare names it).
    partly = data.load_partly_failed(url, int(latest.run_id), int(latest.cells_done))
    st.caption(f"Latest: run {latest.run_id} {text.md(latest.status)}, {latest.cells_ok} ok"
               + (f" ({partly} of them failed in some rounds)" if partly else "") + f" and {latest.cells_failed} failed "
               f"of {vocabulary.counted(latest.cells_total // max(int(latest.rounds), 1), 'cell')}.")
    st.dataframe(runs, hide_index=True, width="stretch", column_config={
        "cells_ok": st.column_config.NumberColumn(
            "cells_ok", help="Cells whose first round passed its check and was timed; one that failed in a later "
                             "round counts here too, and `compare` and the Diff page name it"),
        "paired_with": st.column_config.NumberColumn(
            "ab with run", format="%d", help="The other side of its `ab` session: the two took turns, cell by cell. "
                                             "The Diff page compares them; the machine's latest results and history "
                                             "leave them out")})
    exports.download_buttons(runs, "runs")
    data.refresh_on_progress(runs)


history()


@st.fragment(run_every=5)
def agents():
    found = data.load_agents(url)
    st.subheader("Agents")
    if found.empty:
        st.caption("No agent has registered. On a benchmark machine (a GPU server, say) that reaches this "
                   "database, `python -m bench_runner agent --db URL --label NAME` takes the runs queued for "
                   "NAME; the form below queues them. See docs/team.md.")
        return
    shown = found.assign(alive=found["alive"].map({True: "alive", False: "gone"}))
    st.dataframe(shown[["label", "alive", "status", "run_id", "hostname", "seconds_ago"]], hide_index=True,
                 width="stretch", column_config={"seconds_ago": st.column_config.NumberColumn("last seen (s ago)")})


agents()

st.subheader("Start a run")
if data.read_only():
    st.info("This dashboard is read-only: runs are started on a benchmark machine with "
            "`python -m bench_runner run`, or queued for an agent with `python -m bench_runner submit`.")
else:
    agent_list = data.load_agents(url)
    targets = [f"this machine ({socket.gethostname()})"] + [
        f"agent {text.visible(a.label)}" + ("" if a.alive else " (not seen lately: the run waits for it)")
        for a in agent_list.sort_values("alive", ascending=False).itertuples()]
    with st.form("new_run"):
        target = st.selectbox("Run on", targets, help="An agent's machine claims the run from the database and "
                                                      "runs it there; its progress shows here")
        suite = st.selectbox("Suite", vocabulary.SUITES, index=vocabulary.SUITES.index("quick"),
                             help="smoke: seconds; quick: minutes on a laptop; full: the papers' sizes, for a GPU; "
                                  "paper: the survey's Figures S3 and S4 (spatial and token mixing only)")
        # Every choice offered whatever else is picked: a form reruns only on submit, and options
        # that changed with the benchmarks then would drop the methods already picked.
        benchmarks = st.multiselect("Benchmarks (none: all)", sorted(catalogue["benchmark"].unique()),
                                    format_func=text.visible)
        methods = st.multiselect("Methods (none: all)", sorted(catalogue["method"].unique()), format_func=text.visible)
        backends = st.multiselect("Backends (none: all)", sorted({b for bs in catalogue["backends"] for b in bs}),
                                  format_func=text.visible)
        cols = st.columns(3)
        device = cols[0].selectbox("Device", devices if target == targets[0] else ["cuda", "cpu"])
        dtype = cols[1].selectbox("Dtype", vocabulary.DTYPES)
        mode = cols[2].selectbox("Mode", vocabulary.MODES)
        rounds = st.number_input("Rounds (0: the suite's default)", min_value=0, max_value=20, value=0,
                                 help="Each round measures every cell again in a fresh worker process and a new "
                                      "shuffled order; verdicts across runs need several")
        submitted = st.form_submit_button("Start", type="primary")

    if submitted:
        if target == targets[0]:
            argv = [sys.executable, "-m", "bench_runner", "run", "--detach"]
        else:  # queued for the agent; nothing runs here
            argv = [sys.executable, "-m", "bench_runner", "submit", "--label", target.split()[1]]
        argv += ["--suite", suite, "--device", device, "--dtype", dtype, "--mode", mode, "--db", url]
        if rounds:
            argv += ["--rounds", str(int(rounds))]
        for flag, values in (("--benchmark", benchmarks), ("--method", methods), ("--backend", backends)):
            for value in values:
                argv += [flag, value]
        # The sweep runs in its own process (never inside Streamlit's); it queues behind a running one.
        done = subprocess.run(argv, cwd=data.PROJECT_ROOT, capture_output=True, text=True, timeout=120)
        if done.returncode == 0:
            st.success(text.md(done.stdout.strip(), None) or "Started.")
            data.load_runs.clear()
        else:
            st.error(text.md(done.stderr.strip().splitlines()[-1], None) if done.stderr.strip()
                     else "The run did not start.")


@st.fragment(run_every=5)
def machine_state():
    """What the machine did while each run ran, below the form so the form never moves."""
    runs = data.load_runs(url)
    if runs.empty:
        return
    conditions = judging.run_conditions(data.load_round_states(url, tuple(int(r) for r in runs["run_id"][:50])),
                                     data.load_busy_at_start(url))
    for run in conditions[conditions["busy_at_start"] != ""].itertuples():
        st.warning(f"Run {run.run_id} started on a busy machine ({text.md(run.busy_at_start)}): its timings may not "
                   "reproduce.", icon=":material/warning:")
    with st.expander("Machine state while each run ran"):
        st.caption("Per run, the worst of its rounds: the 1-minute load average (it counts the run's own worker), "
                   "the share of all CPUs that other processes took and the hypervisor stole; in all its rounds, "
                   "how long the workers waited for the cores to work together at full speed again and how many "
                   "cells they timed before they did (`--settle`); and the "
                   "median of the drift controls (a fixed copy, a matrix product and the small threaded product "
                   "the waiting probes, timed at the start of every round): when they move between two runs, the "
                   "machine changed, not only the code. `python -m bench_runner doctor` checks the machine now.")
        st.dataframe(conditions, hide_index=True, width="stretch",
                     column_config={"other_cpu_share_max": st.column_config.NumberColumn(format="percent"),
                                    "steal_share_max": st.column_config.NumberColumn(format="percent")})


st.subheader("The machine while runs ran")
machine_state()

