"""Every query and DataFrame shaping the pages use; pages only lay out widgets.

Loaders are cached (the engine per URL, query results for a few seconds, so a
running sweep shows up without a restart); shaping functions are plain and
tested directly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import streamlit as st
from sqlalchemy.orm import sessionmaker

import results_db
from bench_runner import comparison, defaults, history, stats
from bench_runner.speedups import flipped
from results_db import bundle, queries, store

from . import text
from .analysis import parse_size
# The pages reach the shaping functions through this module, with the loaders.
from .shaping import (CELL_KEY, CONTEXT, METRICS, add_derived, hold_fixed, latest_ok, size_params,  # noqa: F401
                      speedups, varying_params)




def db_url() -> str:
    return results_db.resolve_url()


READ_ONLY_VAR = "HADAMARD_BENCH_READONLY"


def read_only() -> bool:
    """A dashboard shared with a team (HADAMARD_BENCH_READONLY=1, `serve --readonly`): no control
    that starts, cancels or queues a run, no marks, nothing written to the database."""
    return os.environ.get(READ_ONLY_VAR, "").lower() in ("1", "true", "yes", "on")


PROJECT_ROOT = results_db.engine.PROJECT_ROOT
# Results measured on reference machines (a GPU server) and shipped with the project, so a
# laptop's numbers have something to stand beside. scripts/gpu_check.sh makes them.
REFERENCE_DIR = PROJECT_ROOT / "results" / "reference"
LOCAL_CATALOGUE = Path(__file__).with_name("catalogue.json")  # scripts/catalogue_docs.py writes it


@st.cache_resource
def sessions(url: str) -> sessionmaker:
    return sessionmaker(results_db.open_engine(url))


# Results are cached for a minute; pages that watch a run clear the cache as cells land
# (see refresh_on_progress), so new results show without a minute's wait.
@st.cache_data(ttl=60, show_spinner=False)
def load_latest(url: str, benchmark: str | None = None) -> pd.DataFrame:
    """Each cell's latest `ok` result on each machine (of one benchmark, when given), every metric
    a column: read from the table the store keeps at write time, so it costs a row per cell
    however many runs the database holds."""
    with sessions(url)() as session:
        return latest_ok(add_derived(queries.results_frame(session, benchmark=benchmark, latest=True)))


@st.cache_data(ttl=60, show_spinner=False)
def load_run_results(url: str, benchmark: str, run_id: int) -> pd.DataFrame:
    """One run's results of one benchmark, every metric a column."""
    with sessions(url)() as session:
        return add_derived(queries.results_frame(session, benchmark=benchmark, run_id=run_id))


@st.cache_data(ttl=60, show_spinner=False)
def load_runs_with_results(url: str, benchmark: str) -> list[int]:
    with sessions(url)() as session:
        return queries.runs_with_results(session, benchmark)


@st.cache_data(ttl=60, show_spinner=False)
def load_machines_with_results(url: str) -> list[str]:
    with sessions(url)() as session:
        return queries.machines_with_results(session)


@st.cache_data(ttl=60, show_spinner=False)
def load_result_count(url: str) -> int:
    with sessions(url)() as session:
        return queries.result_count(session)


@st.cache_data(ttl=60, show_spinner=False, max_entries=64)
def load_samples(url: str, result_ids: tuple[int, ...]) -> dict[int, tuple[list, list | None]]:
    """Raw samples and their rounds of the given results: what the confidence intervals need."""
    with sessions(url)() as session:
        return queries.samples_of(session, result_ids)


@st.cache_data(ttl=60, show_spinner=False)
def load_cell_samples(url: str, run_id: int | None = None, machine: str | None = None) -> pd.DataFrame:
    """A run's `ok` cells (or a machine's latest of each) with their samples, for comparisons."""
    with sessions(url)() as session:
        return queries.samples_frame(session, run_id=run_id, machine=machine)


@st.cache_data(ttl=60, show_spinner=False)
def load_label_fingerprints(url: str, label: str) -> int:
    with sessions(url)() as session:
        return queries.label_fingerprints(session, label)


@st.cache_data(ttl=10, show_spinner=False)
def load_round_states(url: str, run_ids: tuple[int, ...]) -> pd.DataFrame:
    with sessions(url)() as session:
        return queries.round_states(session, run_ids)


@st.cache_data(ttl=10, show_spinner=False)
def load_busy_at_start(url: str) -> dict[int, list[str]]:
    with sessions(url)() as session:
        return queries.busy_at_start(session)


def run_conditions(states: pd.DataFrame, busy: dict[int, list[str]]) -> pd.DataFrame:
    """Per run, what the machine did while it ran: the worst round's load, other processes'
    CPU share and steal, how long its workers waited for the cores to settle and how many cells
    they timed unsettled (bench_runner.settle), the drift controls' median, and whether it
    started busy."""
    columns = ["run_id", "rounds_measured", "load_1m_max", "other_cpu_share_max", "steal_share_max",
               "settle_waited_s", "settle_cells_unsettled", "cells_retaken", "drift_cpu_copy_s",
               "drift_cpu_matmul_s", "drift_cpu_probe_s", "busy_at_start"]
    if states.empty:
        return pd.DataFrame(columns=columns)
    # A retake pass (bench_runner.sweep) is not a round: what it retook settled leaves the count
    # of cells timed unsettled (comparison.left_unsettled), and the drift controls it took after
    # waiting for calm stay out.
    every = states
    states = states[comparison.regular_rounds(states)]
    agg = {"round": "nunique"}
    for column, how in (("load_1m_after", "max"), ("other_cpu_share", "max"), ("steal_share", "max"),
                        ("settle_waited_s", "sum"), ("settle_cells_unsettled", "sum")):
        if column in states:
            agg[column] = how
    agg.update({c: "median" for c in states.columns if c.startswith("drift_")})
    out = states.groupby("run_id").agg(agg).reset_index().rename(columns={
        "round": "rounds_measured", "load_1m_after": "load_1m_max", "other_cpu_share": "other_cpu_share_max",
        "steal_share": "steal_share_max"})
    out["cells_retaken"] = [comparison.retaken(every, [r]) for r in out["run_id"]]
    if "settle_cells_unsettled" in out:
        out["settle_cells_unsettled"] = [comparison.left_unsettled(every, [r]) for r in out["run_id"]]
    out["busy_at_start"] = out["run_id"].map(lambda r: "; ".join(busy.get(int(r), [])))
    return out.sort_values("run_id", ascending=False)


@st.cache_data(ttl=3, show_spinner=False)
def load_runs(url: str) -> pd.DataFrame:
    with sessions(url)() as session:
        return queries.runs_frame(session)


@st.cache_data(ttl=2, show_spinner=False)
def load_run_progress(url: str) -> pd.DataFrame:
    """Every run's progress, without its ok and failed counts: read from the run table alone,
    for progress bars that poll every two seconds."""
    with sessions(url)() as session:
        return queries.runs_frame(session, counts=False)


@st.cache_data(ttl=60, show_spinner=False)
def load_benchmarks_with_results(url: str) -> list[str]:
    with sessions(url)() as session:
        return queries.benchmarks_with_results(session)


class LocalCatalogue(NamedTuple):
    benchmarks: frozenset[str]
    methods: frozenset[tuple[str, str]]  # (benchmark, method)


@st.cache_resource
def local_catalogue_rows() -> dict:
    """The code's catalogue as scripts/catalogue_docs.py wrote it: {"benchmarks": [...], "methods":
    [...]}, read once per server; raises when the file is missing or damaged."""
    return json.loads(LOCAL_CATALOGUE.read_text(encoding="utf-8"))


@st.cache_resource
def local_catalogue() -> LocalCatalogue:
    """The ids of the code's own catalogue (app/catalogue.json): only their titles and formulas are
    shown; anything else a database holds is shown by its id."""
    try:
        rows = local_catalogue_rows()
    except (OSError, ValueError):
        return LocalCatalogue(frozenset(), frozenset())
    return LocalCatalogue(frozenset(b["id"] for b in rows["benchmarks"]),
                          frozenset((m["benchmark"], m["id"]) for m in rows["methods"]))


@st.cache_resource(show_spinner="Adding the shipped reference results")
def import_reference(url: str) -> list[str]:
    """Lay the code's catalogue (app/catalogue.json) over this database, then add
    results/reference/*.json to it, once per server (a run already there is skipped).
    HADAMARD_BENCH_REFERENCE=off keeps the bundles out. The catalogue comes first: a bundle
    brings its own catalogue text, and in a database it alone filled, its older records (which
    backends reach cuDNN, say) would decide how its cells are labelled. Returns one line per
    thing that could not be done: the dashboard works without them."""
    if read_only():
        return []
    problems = []
    try:
        rows = local_catalogue_rows()
        with sessions(url)() as session, session.begin():
            store.sync_catalogue(session, rows["benchmarks"], rows["methods"])
    except Exception as exc:  # noqa: BLE001 -- a foreign or read-only database must not stop the app
        problems.append(f"{LOCAL_CATALOGUE.name}: {exc}")
    if os.environ.get("HADAMARD_BENCH_REFERENCE", "on") == "off":
        return problems
    for path in sorted(REFERENCE_DIR.glob("*.json")):
        try:
            shipped = bundle.read_file(path)
            with sessions(url)() as session, session.begin():
                bundle.import_bundle(session, shipped, source=f"results/reference/{path.name}")
        except Exception as exc:  # noqa: BLE001 -- a read-only or foreign database must not stop the app
            problems.append(f"{path.name}: {exc}")
    return problems


def refresh_on_progress(runs: pd.DataFrame) -> None:
    """When cells have landed since this session last looked, drop the cached results and rerun."""
    done = int(runs["cells_done"].sum()) if not runs.empty else 0
    if st.session_state.setdefault("cells_seen", done) != done:
        st.session_state["cells_seen"] = done
        for loader in (load_latest, load_run_results, load_runs_with_results, load_machines_with_results,
                       load_result_count, load_benchmarks_with_results, load_headlines):
            loader.clear()
        st.rerun(scope="app")


@st.cache_data(ttl=60, show_spinner=False)
def load_catalogue(url: str) -> pd.DataFrame:
    with sessions(url)() as session:
        return queries.catalogue_frame(session)


@st.cache_data(ttl=10, show_spinner=False)
def load_calibrations(url: str) -> pd.DataFrame:
    with sessions(url)() as session:
        return queries.calibrations(session)


@st.cache_data(ttl=3, show_spinner=False)
def load_agents(url: str) -> pd.DataFrame:
    with sessions(url)() as session:
        return queries.agents_frame(session)


@st.cache_data(ttl=60, show_spinner=False)
def load_reference_machines(url: str) -> list[str]:
    with sessions(url)() as session:
        return queries.reference_machines(session)


def own_first(machines, reference: list[str]) -> list[str]:
    """Machine labels, the user's own before the shipped reference ones."""
    return sorted(machines, key=lambda m: (m in reference, m))


@st.cache_data(ttl=60, show_spinner=False)
def load_machines(url: str) -> pd.DataFrame:
    with sessions(url)() as session:
        return queries.machines(session)


def other_machines(rows: pd.DataFrame, context: dict) -> dict[str, dict]:
    """`machine · device` → its context, for every machine and device other than `context`'s
    that has results in the same dtype and mode."""
    same = rows[(rows["dtype"] == context["dtype"]) & (rows["mode"] == context["mode"])]
    pairs = same[["machine", "device"]].drop_duplicates().sort_values(["machine", "device"])
    return {f"{m} · {d}": {**context, "machine": m, "device": d} for m, d in pairs.itertuples(index=False)
            if (m, d) != (context["machine"], context["device"])}


def rows_of(rows: pd.DataFrame, context: dict) -> pd.DataFrame:
    keep = pd.Series(True, index=rows.index)
    for key, value in context.items():
        keep &= rows[key] == value
    return rows[keep]


def speedup_intervals(frame: pd.DataFrame, baseline: str, samples: dict, spelled_runs=()) -> pd.DataFrame:
    """Each method's speed-up over `baseline` (same backend and size) with its 95% interval and a
    verdict (`faster`, `slower`, `no change`, `inconclusive`), from the cells' samples (result
    id → queries.samples_of's entry): paired per cycle where the two took turns in one run
    (stats.compare_entries), else from their rounds, p-values adjusted across the table. An
    unpaired verdict a slow spell of the cores could have made is held `inconclusive`
    (comparison.hold_spelled; spelled_runs: the runs a spell outlasted)."""
    pairs = speedups(frame, baseline)
    base_ids = frame[frame["method"] == baseline].set_index(CONTEXT + ["backend", "size"])["result_id"]
    pairs = pairs[pairs["method"] != baseline].reset_index(drop=True)
    pairs["baseline_result_id"] = [base_ids[tuple(r[k] for k in CONTEXT + ["backend", "size"])]
                                   for _, r in pairs.iterrows()]
    return _with_speedup_intervals(pairs, samples, spelled(frame, spelled_runs))


def spelled(frame: pd.DataFrame, spelled_runs=()) -> dict[int, bool]:
    """Result id → whether the cell was measured in a slow spell of its cores (comparison.cell_in_spell)."""
    unsettled = frame["unsettled_rounds"] if "unsettled_rounds" in frame else [None] * len(frame)
    runs = frame["run_id"] if "run_id" in frame else [None] * len(frame)
    return {int(rid): comparison.cell_in_spell(u, run, device, spelled_runs)
            for rid, u, run, device in zip(frame["result_id"], unsettled, runs, frame["device"])}


def spelled_runs(url: str, run_ids) -> list[int]:
    """Of `run_ids`, the runs a slow spell of the cores outlasted (comparison.runs_in_spells)."""
    runs = tuple(sorted({int(r) for r in run_ids}))
    states = load_round_states(url, runs) if runs else pd.DataFrame()
    return list(comparison.runs_in_spells(states, runs)) if not states.empty else []


def _with_speedup_intervals(frame: pd.DataFrame, samples: dict, in_spell: dict[int, bool]) -> pd.DataFrame:
    """`frame` (with result_id and baseline_result_id) with each row's speed-up, its interval and
    verdict, and whether it was paired: method ÷ baseline is the time ratio (stats.
    compare_entries); its reciprocal is the speed-up, the interval flipped. A paired speed-up's
    two sides shared whatever spell the machine had, so only unpaired verdicts are held."""
    entry = lambda rid: samples.get(int(rid), ([], None))  # noqa: E731
    found = stats.compare_entries([(entry(b), entry(m)) for b, m in zip(frame["baseline_result_id"], frame["result_id"])],
                                  words=stats.METHOD_WORDS)
    out = frame.copy()
    speed = [flipped(f) for f in found]
    out["speedup"], out["speedup_low"], out["speedup_high"] = ([s[i] for s in speed] for i in range(3))
    out["paired"] = [f["paired"] for f in found]
    unpaired = [not f["paired"] for f in found]
    held = comparison.hold_spelled([f["verdict"] for f in found],
                              [u and in_spell.get(int(r), False) for u, r in zip(unpaired, out["baseline_result_id"])],
                              [u and in_spell.get(int(r), False) for u, r in zip(unpaired, out["result_id"])],
                              stats.METHOD_WORDS)
    out["verdict"] = pd.Series(held, index=out.index, dtype=object)
    return out


def speedup_label(row) -> str:
    """`2.31× [2.10, 2.52]`, with a question mark when the verdict is inconclusive."""
    mark = " ?" if row["verdict"] == stats.INCONCLUSIVE else ""
    return f"{row['speedup']:.2f}× [{row['speedup_low']:.2f}, {row['speedup_high']:.2f}]{mark}"


HEADLINE_COLUMNS = ["benchmark", "method", "baseline", "backend", *CONTEXT, "size", "speedup", "memory_ratio", "noisy",
                    "result_id", "baseline_result_id"]


def judged_pairs(catalogue: pd.DataFrame) -> pd.DataFrame:
    """(benchmark, method, baseline): each Hadamard method with the methods it is compared with
    (its `against`, else every baseline of its benchmark)."""
    roles = catalogue.set_index(["benchmark", "method"])["role"].to_dict()
    against = (catalogue.set_index(["benchmark", "method"])["against"].to_dict()
               if "against" in catalogue else {})
    pairs = [(bench, method, base) for (bench, method), role in roles.items() if role == "hadamard"
             for base in (against.get((bench, method)) or
                          [m for (b, m), r in roles.items() if b == bench and r == "baseline"])]
    return pd.DataFrame(pairs, columns=["benchmark", "method", "baseline"])


def headlines(frame: pd.DataFrame, catalogue: pd.DataFrame) -> pd.DataFrame:
    """Each Hadamard method against each baseline of its benchmark, at the largest size both
    reached, same machine, device, dtype, mode and backend (eager preferred, else the backend
    the group's oldest latest result used). Joins, not a loop per group: the Overview computes
    it on every first render."""
    latest = latest_ok(frame)
    pairs = judged_pairs(catalogue)
    if latest.empty or pairs.empty:
        return pd.DataFrame(columns=HEADLINE_COLUMNS)
    group = ["benchmark", *CONTEXT]
    chosen = latest.groupby(group, sort=False)["backend"].agg(
        lambda b: "eager" if (b == "eager").any() else b.iloc[0]).rename("chosen").reset_index()
    rows = latest.merge(chosen, on=group)
    rows = rows[rows["backend"] == rows["chosen"]]
    if "noisy" not in rows:
        rows = rows.assign(noisy=False)
    keep = [*group, "backend", "size", "time_median_s", "peak_mem_bytes", "result_id", "noisy"]
    mine = rows[[*keep, "method"]].merge(pairs, on=["benchmark", "method"])
    theirs = rows[[*keep, "method"]].rename(columns={"method": "baseline"})
    both = mine.merge(theirs, on=[*group, "backend", "size", "baseline"], suffixes=("", "_base"))
    if both.empty:
        return pd.DataFrame(columns=HEADLINE_COLUMNS)
    both["weight"] = [sum(parse_size(s).values()) for s in both["size"]]
    top = both.loc[both.groupby([*group, "method", "baseline"], sort=False)["weight"].idxmax()]
    out = top.assign(
        speedup=top["time_median_s_base"] / top["time_median_s"],
        memory_ratio=[_ratio(b, m) for b, m in zip(top["peak_mem_bytes_base"], top["peak_mem_bytes"])],
        noisy=[_flag(a) or _flag(b) for a, b in zip(top["noisy"], top["noisy_base"])],
        baseline_result_id=top["result_id_base"])
    return out.sort_values([*group, "method", "baseline"])[HEADLINE_COLUMNS].reset_index(drop=True)


@st.cache_data(ttl=60, show_spinner=False)
def load_headlines(url: str) -> pd.DataFrame:
    """The Overview's headlines with their verdicts: computed once a minute, not on every visit
    (the verdicts resample every headline's rounds)."""
    latest = load_latest(url)
    found = headlines(latest, load_catalogue(url))
    ids = tuple(int(r) for r in pd.concat([found["result_id"], found["baseline_result_id"]]))
    judged = latest[latest["result_id"].isin(ids)] if ids else latest.iloc[0:0]  # the headlines' cells only
    in_spell = spelled(judged, spelled_runs(url, judged["run_id"])) if not judged.empty else {}
    return headline_verdicts(found, load_samples(url, ids), in_spell)


def headline_verdicts(headlines: pd.DataFrame, samples: dict, in_spell: dict[int, bool] | None = None) -> pd.DataFrame:
    """Headlines with each speed-up's 95% interval and verdict: a headline says "faster" only
    when the verdict does (and no slow spell could have made it: `in_spell`, from `spelled`)."""
    return _with_speedup_intervals(headlines, samples, in_spell or {})


def headline_text(h) -> str:
    """One headline in Markdown, worded by its verdict; the stored names in it made inert."""
    method, baseline, machine = text.md(h.method), text.md(h.baseline), text.md(h.machine)
    interval = f"[{h.speedup_low:.2f}, {h.speedup_high:.2f}]"
    where = (f"at {text.md(h.size)} ({text.md(h.device)}, {text.md(h.dtype)}, {text.md(h.mode)}, "
             f"{text.md(h.backend)}; {machine})")
    if h.verdict == "faster":
        claim = f":green[**{method}** is {h.speedup:.2f}× {interval} faster than **{baseline}**]"
    elif h.verdict == "slower":
        claim = (f":red[**{method}** is {1 / h.speedup:.2f}× [{1 / h.speedup_high:.2f}, {1 / h.speedup_low:.2f}] "
                 f"slower than **{baseline}**]")
    elif h.verdict == "no change":
        claim = f"**{method}** runs as fast as **{baseline}** (within ±{defaults.FLOOR:.0%}: {interval})"
    else:
        claim = (f":orange[**{method}** against **{baseline}**: {h.speedup:.2f}× {interval}, inconclusive: "
                 f"measure again with more rounds]")
    return f"{claim} {where}; {baseline} takes {h.memory_ratio:.2f}× its peak memory"


def _flag(value) -> bool:
    return bool(value) if not pd.isna(value) else False


def _ratio(a, b) -> float:
    try:
        return float(a) / float(b) if float(b) > 0 else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def active_runs(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"].isin(["queued", "running", "cancelling"])]


# What a page shows first where a context column offers a choice: what most people measure.
PREFERRED = {"dtype": "float32", "mode": "forward"}


def context_options(values, key: str, reference: list[str]) -> list:
    """A context column's choices in the order every page offers them: the user's own machines
    before the shipped reference ones, float32 and forward first, the rest sorted."""
    if key == "machine":
        return own_first(values, reference)
    return sorted(values, key=lambda v: (v != PREFERRED.get(key), v))


def pick_context(rows: pd.DataFrame, key_prefix: str = "") -> pd.DataFrame:
    """One selectbox per context column (machine, device, dtype, mode); the rows that match."""
    cols = st.columns(len(CONTEXT))
    reference = load_reference_machines(db_url())
    for key, col in zip(CONTEXT, cols):
        options = context_options(rows[key].dropna().unique(), key, reference)
        value = col.selectbox(key.capitalize(), options, key=f"{key_prefix}{key}", format_func=text.visible)
        rows = rows[rows[key] == value]
    return rows


def url_index(key: str, options: list, default=None) -> int:
    """The index of the option the page's URL names under `key` (else of `default`, else 0), so a
    page's selection can be shared as a link."""
    value = st.query_params.get(key)
    matches = [o for o in options if str(o) == value]
    return options.index(matches[0]) if matches else (options.index(default) if default in options else 0)


@st.cache_data(ttl=10, show_spinner=False)
def load_fingerprints(url: str) -> pd.DataFrame:
    with sessions(url)() as session:
        return queries.fingerprints_frame(session)


@st.cache_data(ttl=60, show_spinner="Bringing the history up to date")
def load_history(url: str, fingerprint: str, benchmark: str, method: str, backend: str) -> pd.DataFrame:
    """The history points of one method and backend of a benchmark on the fingerprint, annotated;
    stale cells (results not yet in the cache: an imported run, say) are recomputed and stored first."""
    with sessions(url)() as session, session.begin():
        return history.history_table(session, fingerprint=fingerprint, benchmark=benchmark, method=method,
                                     backend=backend, persist=not read_only())


@st.cache_data(ttl=60, show_spinner=False)
def load_history_cells(url: str, fingerprint: str) -> pd.DataFrame:
    """The cells measured on the fingerprint: the History page's choices."""
    with sessions(url)() as session:
        return queries.history_cells(session, fingerprint)


@st.cache_data(ttl=60, show_spinner=False)
def load_history_runs(url: str, fingerprint: str) -> pd.DataFrame:
    with sessions(url)() as session:
        return queries.history_runs(session, fingerprint)


@st.cache_data(ttl=60, show_spinner="Bringing the history up to date")
def load_history_medians(url: str, fingerprint: str, run_ids: tuple[int, ...]) -> pd.DataFrame:
    """Every cell's median in the given runs on the fingerprint, without annotations: what the
    geometric-mean line between two runs needs (the runs between them only, not the whole history)."""
    with sessions(url)() as session, session.begin():
        return history.fresh_points(session, persist=not read_only(), details=False, fingerprint=fingerprint,
                                    run_ids=run_ids)


def clear_history() -> None:
    """After a mark is added or removed: the cached pages recompute."""
    for loader in (load_history, load_history_medians):
        loader.clear()


def change_point_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Each change point and each marked run of the chosen rows: the run, the cell, the step
    (this run's median ÷ the previous run's), what differs across it, and the marks."""
    out = []
    for _, cell in rows.groupby(history.CELL, sort=False):
        previous = cell["time_median_s"].shift()
        for i in cell.index[cell["change_point"] | cell["annotation"].str.contains("marked", regex=False)]:
            r = cell.loc[i]
            out.append({"run_id": int(r["run_id"]), "started_at": r["started_at"], "size": r["size"],
                        "method": r["method"], "backend": r["backend"], "change_point": bool(r["change_point"]),
                        "step": r["time_median_s"] / previous[i] if pd.notna(previous[i]) else float("nan"),
                        "differs": r["differs"], "annotation": r["annotation"]})
    return pd.DataFrame(out, columns=["run_id", "started_at", "size", "method", "backend", "change_point", "step",
                                      "differs", "annotation"])
