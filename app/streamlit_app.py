"""Hadamard Bench dashboard. This file only routes; each page is a file in app_pages/."""

import streamlit as st

import results_db  # the project is installed (make run: editable; pip install .), so no path to patch
from app import data, text
from results_db import damage

st.set_page_config(page_title="Hadamard Bench", page_icon="⊙", layout="wide")
try:
    data.check_intact(data.db_url())
    data.sessions(data.db_url())
except (results_db.SchemaError, results_db.BadDatabaseURL, results_db.CannotOpen) as exc:  # newer, foreign, damaged: left untouched
    st.error(text.md(exc, None))
    st.stop()
if data.read_only():  # every page says so, so that nobody wonders where the Start button went
    st.sidebar.caption("Read-only: this dashboard starts, cancels, queues and marks nothing "
                       "(`serve --allow-runs` on a machine of your own lets it).")
for problem in data.import_reference(data.db_url()):
    st.sidebar.warning(f"Reference results not added: {text.md(problem)}")
page = st.navigation([
    st.Page("app_pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/show_chart:"),
    st.Page("app_pages/scaling.py", title="Scaling", icon=":material/trending_up:"),
    st.Page("app_pages/roofline.py", title="Roofline", icon=":material/roofing:"),
    st.Page("app_pages/runs.py", title="Runs", icon=":material/play_circle:"),
    st.Page("app_pages/diff.py", title="Diff", icon=":material/compare_arrows:"),
    st.Page("app_pages/history.py", title="History", icon=":material/timeline:"),
    st.Page("app_pages/claims.py", title="Survey claims", icon=":material/fact_check:"),
])
try:
    page.run()
except Exception as exc:
    # A page SQLite cannot read, met after the check at start (the file damaged since), or a
    # write the disk refused; anything else (Streamlit's own control flow, a bug) as it is.
    found = damage.explained(damage.database_of(data.db_url()), exc)
    if found is None:
        raise
    st.error(text.md(found, None))
