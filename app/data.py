"""What the pages load from the database, cached: the engine per URL, query results for a few
seconds (so a running sweep shows up without a restart). What the dashboard judges from it is
in app.judging, the controls pages share in app.widgets, the shaping for charts in app.shaping.
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
from bench_runner import comparison, history
from hadamard_bench import vocabulary
from results_db import bundle, bundle_format, damage, history_queries, queries, store

from . import judging
from .shaping import add_derived, latest_ok


def db_url() -> str:
    return results_db.resolve_url()


READ_ONLY_VAR = vocabulary.READ_ONLY_ENV_VAR


def read_only() -> bool:
    """A dashboard shared with a team (HADAMARD_BENCH_READONLY=1, `serve --readonly`): no control
    that starts, cancels or queues a run, no marks, nothing written to the database."""
    return os.environ.get(READ_ONLY_VAR, "").lower() in vocabulary.YES


PROJECT_ROOT = results_db.engine.PROJECT_ROOT
# Results measured on reference machines (a GPU server) and shipped with the project, so a
# laptop's numbers have something to stand beside. scripts/gpu_check.sh makes them.
REFERENCE_DIR = PROJECT_ROOT / "results" / "reference"
LOCAL_CATALOGUE = Path(__file__).with_name("catalogue.json")  # scripts/catalogue_docs.py writes it


@st.cache_resource(show_spinner="Reading every page of the results file once")
def check_intact(url: str) -> bool:
    """DamagedDatabase (results_db.damage) when an SQLite results file has a page SQLite cannot
    read: checked once per server, before the shipped reference results are written into it.
    An error is not cached, so a damaged file is refused on every visit."""
    parsed = results_db.check_url(url)
    if parsed.get_backend_name() == "sqlite":
        damage.require_intact(Path(parsed.database))
    return True


@st.cache_resource
def sessions(url: str) -> sessionmaker:
    return sessionmaker(results_db.open_engine(url))


# Results are cached for a minute; pages that watch a run clear the cache as cells land
# (see refresh_on_progress), so new results show without a minute's wait.
def _read(url: str, query, *args, **kwargs):
    """`query(session, *args, **kwargs)` in a session of its own on `url`'s database."""
    with sessions(url)() as session:
        return query(session, *args, **kwargs)


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
    return _read(url, queries.runs_with_results, benchmark)


@st.cache_data(ttl=60, show_spinner=False)
def load_machines_with_results(url: str) -> list[str]:
    return _read(url, queries.machines_with_results)


@st.cache_data(ttl=60, show_spinner=False)
def load_result_count(url: str) -> int:
    return _read(url, queries.result_count)


@st.cache_data(ttl=60, show_spinner=False, max_entries=64)
def load_samples(url: str, result_ids: tuple[int, ...]) -> dict[int, tuple[list, list | None]]:
    """Raw samples and their rounds of the given results: what the confidence intervals need."""
    return _read(url, queries.samples_of, result_ids)


@st.cache_data(ttl=60, show_spinner=False)
def load_cell_samples(url: str, run_id: int | None = None, machine: str | None = None) -> pd.DataFrame:
    """A run's `ok` cells (or a machine's latest of each) with their samples, for comparisons."""
    return _read(url, queries.samples_frame, run_id=run_id, machine=machine)


@st.cache_data(ttl=60, show_spinner=False)
def load_failures(url: str, run_id: int | None = None, machine: str | None = None) -> pd.DataFrame:
    """A run's failed cells (or a machine's whose newest measurement failed) with their status and
    message (queries.failures_frame)."""
    return _read(url, queries.failures_frame, run_id=run_id, machine=machine)


@st.cache_data(ttl=60, show_spinner=False)
def load_partly_failed(url: str, run_id: int, cells_done: int) -> int:
    """How many of a run's `ok` cells failed in some of their rounds (queries.failures_frame).
    `cells_done`, the run's progress, is only part of the cache's key: the count follows the run."""
    failed = _read(url, queries.failures_frame, run_id=run_id)
    return int((failed["status"] == "ok").sum())


@st.cache_data(ttl=60, show_spinner=False)
def load_failed_since_latest(url: str) -> pd.DataFrame:
    """Each machine's cells whose newest measurement failed after their latest `ok` result
    (queries.failed_since_latest)."""
    return _read(url, queries.failed_since_latest)


@st.cache_data(ttl=60, show_spinner=False)
def load_label_fingerprints(url: str, label: str) -> int:
    return _read(url, queries.label_fingerprints, label)


@st.cache_data(ttl=10, show_spinner=False)
def load_round_states(url: str, run_ids: tuple[int, ...]) -> pd.DataFrame:
    return _read(url, queries.round_states, run_ids)


@st.cache_data(ttl=60, show_spinner=False)
def load_measured_drift(url: str, run_ids: tuple[int, ...]) -> tuple[dict, pd.DataFrame, int]:
    """The noise floor comparisons across `run_ids` judge each cell at (history.measured_drift)."""
    return _read(url, history.measured_drift, run_ids)


@st.cache_data(ttl=60, show_spinner=False)
def load_noise_floors(url: str, fingerprint: str) -> pd.DataFrame:
    return _read(url, history_queries.noise_floors, fingerprint)


@st.cache_data(ttl=10, show_spinner=False)
def load_session_looks(url: str) -> dict[int, int]:
    return _read(url, queries.session_looks)


@st.cache_data(ttl=10, show_spinner=False)
def load_busy_at_start(url: str) -> dict[int, list[str]]:
    return _read(url, queries.busy_at_start)


@st.cache_data(ttl=3, show_spinner=False)
def load_runs(url: str) -> pd.DataFrame:
    return _read(url, queries.runs_frame)


@st.cache_data(ttl=2, show_spinner=False)
def load_run_progress(url: str) -> pd.DataFrame:
    """Every run's progress, without its ok and failed counts: read from the run table alone,
    for progress bars that poll every two seconds."""
    return _read(url, queries.runs_frame, counts=False)


@st.cache_data(ttl=60, show_spinner=False)
def load_benchmarks_with_results(url: str) -> list[str]:
    return _read(url, queries.benchmarks_with_results)


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
            shipped = bundle_format.read_file(path)
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
                       load_result_count, load_benchmarks_with_results, load_headlines, load_failed_since_latest):
            loader.clear()
        st.rerun(scope="app")


@st.cache_data(ttl=60, show_spinner=False)
def load_catalogue(url: str) -> pd.DataFrame:
    return _read(url, queries.catalogue_frame)


@st.cache_data(ttl=10, show_spinner=False)
def load_calibrations(url: str) -> pd.DataFrame:
    return _read(url, queries.calibrations)


@st.cache_data(ttl=3, show_spinner=False)
def load_agents(url: str) -> pd.DataFrame:
    return _read(url, queries.agents_frame)


@st.cache_data(ttl=60, show_spinner=False)
def load_reference_machines(url: str) -> list[str]:
    return _read(url, queries.reference_machines)


@st.cache_data(ttl=60, show_spinner=False)
def load_machines(url: str) -> pd.DataFrame:
    return _read(url, queries.machines)


def spelled_runs(url: str, run_ids) -> list[int]:
    """Of `run_ids`, the runs a slow spell of the cores outlasted (comparison.runs_in_spells)."""
    runs = tuple(sorted({int(r) for r in run_ids}))
    states = load_round_states(url, runs) if runs else pd.DataFrame()
    return list(comparison.runs_in_spells(states, runs)) if not states.empty else []


@st.cache_data(ttl=60, show_spinner=False)
def load_headlines(url: str) -> pd.DataFrame:
    """The Overview's headlines with their verdicts: computed once a minute, not on every visit
    (the verdicts resample every headline's rounds)."""
    latest = load_latest(url)
    found = judging.headlines(latest, load_catalogue(url))
    ids = tuple(int(r) for r in pd.concat([found["result_id"], found["baseline_result_id"]]))
    judged = latest[latest["result_id"].isin(ids)] if ids else latest.iloc[0:0]  # the headlines' cells only
    in_spell = comparison.cells_in_spell(judged, spelled_runs(url, judged["run_id"])) if not judged.empty else {}
    return judging.headline_verdicts(found, load_samples(url, ids), in_spell)


@st.cache_data(ttl=10, show_spinner=False)
def load_fingerprints(url: str) -> pd.DataFrame:
    return _read(url, history_queries.fingerprints_frame)


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
    return _read(url, history_queries.history_cells, fingerprint)


@st.cache_data(ttl=60, show_spinner=False)
def load_history_runs(url: str, fingerprint: str) -> pd.DataFrame:
    return _read(url, history_queries.history_runs, fingerprint)


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


