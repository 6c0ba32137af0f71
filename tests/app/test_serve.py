"""`serve`: a dashboard that others can reach is read-only unless it is started to allow runs."""

import os

import pytest

from bench_runner.cli import main


def served_env(monkeypatch, *flags) -> dict:
    """The environment `serve` would hand the Streamlit server (it replaces itself with it)."""
    seen = {}

    def execve(path, argv, env):
        seen.update(env)
        raise SystemExit(0)

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.delenv("HADAMARD_BENCH_READONLY", raising=False)
    with pytest.raises(SystemExit):
        main(["serve", "--headless", "--db", "sqlite:///unused.db", *flags])
    return seen


@pytest.mark.parametrize("flags, read_only", [
    ([], False),  # localhost: only this machine reaches it
    (["--address", "127.0.0.1"], False),
    (["--address", "::1"], False),
    (["--address", "0.0.0.0"], True),  # every interface: read-only unless told otherwise
    (["--address", "10.1.2.3"], True),
    (["--address", "bench.example.org"], True),  # a name may resolve to anything
    (["--address", "0.0.0.0", "--allow-runs"], False),
    (["--readonly"], True),
])
def test_a_dashboard_others_can_reach_writes_nothing_unless_allowed(monkeypatch, capsys, flags, read_only):
    env = served_env(monkeypatch, *flags)
    assert (env.get("HADAMARD_BENCH_READONLY") == "1") == read_only
    said = capsys.readouterr().err
    assert ("read-only on" in said) == (read_only and "--readonly" not in flags)


def test_readonly_and_allow_runs_together_is_one_line(capsys):
    assert main(["serve", "--readonly", "--allow-runs", "--db", "sqlite:///unused.db"]) == 2
    assert "contradict" in capsys.readouterr().err


def test_a_read_only_dashboard_says_so_on_every_page(seeded_db, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("HADAMARD_BENCH_DB", seeded_db)
    monkeypatch.setenv("HADAMARD_BENCH_READONLY", "1")
    at = AppTest.from_file("../../app/streamlit_app.py", default_timeout=60).run()
    assert not at.exception
    assert any("Read-only" in c.value for c in at.sidebar.caption)
    monkeypatch.delenv("HADAMARD_BENCH_READONLY")
    at = AppTest.from_file("../../app/streamlit_app.py", default_timeout=60).run()
    assert not any("Read-only" in c.value for c in at.sidebar.caption)
