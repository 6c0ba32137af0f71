"""The Runs page starts a real sweep as a separate process and the database shows it finish; its
machine-state table sums what each run's workers waited."""

import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.orm import sessionmaker

import results_db
from app import judging
from results_db import queries
from tests.app.test_pages import render


@pytest.mark.slow
def test_the_form_starts_a_detached_run_that_finishes(seeded_db, monkeypatch):
    at = render(seeded_db, monkeypatch, "app_pages/runs.py")
    form = {w.label: w for w in [*at.selectbox, *at.multiselect]}
    form["Suite"].set_value("smoke")
    form["Benchmarks (none: all)"].set_value(["token_mixing"])
    form["Methods (none: all)"].set_value(["poly_sa"])
    form["Backends (none: all)"].set_value(["eager"])
    at.button[-1].click().run(timeout=120)
    assert not at.exception
    assert any("started" in s.value for s in at.success), [e.value for e in at.error]

    factory = sessionmaker(results_db.open_engine(seeded_db))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with factory() as session:
            runs = queries.runs_frame(session)
        if len(runs) == 2 and runs.iloc[0]["status"] == "finished":
            break
        time.sleep(1)
    newest = runs.iloc[0]
    assert (newest["status"], newest["suite"], newest["cells_ok"]) == ("finished", "smoke", 1), (newest.to_dict(), [s.value for s in at.success])
    # Its log lies beside the database it wrote to, not in the checkout's results/.
    from sqlalchemy.engine import make_url

    logs = list(Path(make_url(seeded_db).database).parent.glob("run-*.log"))
    assert len(logs) == 1 and "run 2 finished: 1 ok" in logs[0].read_text()


def test_the_runs_page_sums_each_runs_waiting():
    states = pd.DataFrame({
        "run_id": [1, 1, 1, 2], "round": [1, 2, 3, 1], "load_1m_after": [0.5, 0.9, 0.7, 0.2],
        "settle_waited_s": [0.0, 2.5, 10.0, 0.0], "settle_cells_unsettled": [0, 1, 4, 0],
        "drift_cpu_probe_s": [46e-6, 53e-6, 47e-6, 45e-6]})
    out = judging.run_conditions(states, {}).set_index("run_id")
    assert out.loc[1, "settle_waited_s"] == 12.5 and out.loc[1, "settle_cells_unsettled"] == 5
    assert out.loc[1, "drift_cpu_probe_s"] == 47e-6 and out.loc[2, "settle_waited_s"] == 0
    assert out.loc[1, "load_1m_max"] == 0.9 and out.loc[1, "rounds_measured"] == 3
