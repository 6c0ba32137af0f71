"""Hadamard Bench dashboard. This file only routes; each page is a file in app_pages/."""

import sys
from pathlib import Path

import streamlit as st

# `streamlit run app/streamlit_app.py` puts app/ on the path; the packages live one up.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import results_db  # noqa: E402
from app import data  # noqa: E402

st.set_page_config(page_title="Hadamard Bench", page_icon="⊙", layout="wide")
try:
    data.sessions(data.db_url())
except (results_db.SchemaError, results_db.BadDatabaseURL, results_db.CannotOpen) as exc:  # newer, foreign, damaged: left untouched
    st.error(str(exc))
    st.stop()
for problem in data.import_reference(data.db_url()):
    st.sidebar.warning(f"Reference results not added: {problem}")
st.navigation([
    st.Page("app_pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/show_chart:"),
    st.Page("app_pages/scaling.py", title="Scaling", icon=":material/trending_up:"),
    st.Page("app_pages/roofline.py", title="Roofline", icon=":material/roofing:"),
    st.Page("app_pages/runs.py", title="Runs", icon=":material/play_circle:"),
    st.Page("app_pages/diff.py", title="Diff", icon=":material/compare_arrows:"),
    st.Page("app_pages/history.py", title="History", icon=":material/timeline:"),
    st.Page("app_pages/claims.py", title="Survey claims", icon=":material/fact_check:"),
]).run()
