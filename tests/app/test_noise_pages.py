"""The Diff and History pages with a measured noise floor: each cell judged at its drift between
runs, and the page saying which floor it used (planted runs of tests/bench_runner/test_noise.py)."""

import streamlit as st

from bench_runner.cli import main
from tests.app.test_pages import render
from tests.bench_runner.test_noise import SIZES, plant


def diff_of(at, before: int, after: int):
    next(s for s in at.selectbox if s.label == "Before").set_value(before).run()
    next(s for s in at.selectbox if s.label == "After").set_value(after).run()
    assert not at.exception
    return {m.label: m.value for m in at.metric}, next(c.value for c in at.caption if c.value.startswith("**Floor**"))


def test_diff_judges_runs_apart_at_their_measured_drift_and_says_so(db_url, monkeypatch):
    plant(db_url)
    at = render(db_url, monkeypatch, "app_pages/diff.py")
    counts, floor = diff_of(at, 4, 5)
    assert counts["Regression"] == str(len(SIZES)) and "no noise floor is measured" in floor

    assert main(["noise", "--from", "1", "2", "3", "--db", db_url]) == 0
    st.cache_data.clear()  # the page's loaders keep what they read for a minute
    at = render(db_url, monkeypatch, "app_pages/diff.py")
    counts, floor = diff_of(at, 4, 5)
    assert counts["Regression"] == "0" and counts["Improvement"] == "0"
    assert f"{len(SIZES)} of {len(SIZES)} cells timed apart were judged at more" in floor
    assert (at.dataframe[0].value["floor"] > 0.2).all()


def test_history_says_which_floor_its_change_points_were_searched_at(db_url, monkeypatch):
    plant(db_url)
    at = render(db_url, monkeypatch, "app_pages/history.py")
    said = next(c.value for c in at.caption if c.value.startswith("Change points: a step"))
    assert "no noise floor is measured" in said
    assert any("Change points and marks" in m.value for m in at.markdown)  # the 25% step at run 6
    assert main(["noise", "--from", "1", "2", "3", "--db", db_url]) == 0
    st.cache_data.clear()  # the page's loaders keep what they read for a minute
    at = render(db_url, monkeypatch, "app_pages/history.py")
    said = next(c.value for c in at.caption if c.value.startswith("Change points: a step"))
    assert "beyond the cell's drift between runs" in said and f"{len(SIZES)} of these {len(SIZES)} cells" in said
    assert not any("Change points and marks" in m.value for m in at.markdown)  # within a ±45% drift
