"""The Runs page starts a real sweep as a separate process and the database shows it finish."""

import time

from sqlalchemy.orm import sessionmaker

import results_db
from results_db import queries
from tests.app.test_pages import render


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
