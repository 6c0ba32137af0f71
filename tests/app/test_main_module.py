"""A dashboard test must not leave the dashboard as the process's `__main__`: a worker spawned
later re-imports the parent's main script (multiprocessing), and ran the dashboard on start,
which opened the checkout's default database (tests/conftest.py restores it after each test)."""

import sys

from streamlit.testing.v1 import AppTest

STARTED_WITH = sys.modules.get("__main__")


def test_an_apptest_takes_over_main_while_it_runs(tmp_path):
    script = tmp_path / "page.py"
    script.write_text("import streamlit as st\nst.write('hello')\n")
    AppTest.from_file(str(script)).run()
    assert getattr(sys.modules.get("__main__"), "__file__", None) == str(script)  # what the fixture undoes


def test_the_next_test_starts_with_the_main_it_had():
    assert sys.modules.get("__main__") is STARTED_WITH
