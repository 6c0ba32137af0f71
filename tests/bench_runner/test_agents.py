"""Remote runners: runs queued for a label, claimed by agents, each run executed exactly once."""

import subprocess
import sys
import threading

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

import results_db
from bench_runner.cli import main
from results_db import queries, store
from results_db.models import Result, Run
from tests.conftest import FACTS, ROOT, unescaped

SUBMIT = ["submit", "--label", "lab", "--suite", "smoke", "--benchmark", "elementwise", "--method", "copy",
          "--backend", "eager", "--device", "cpu"]


def test_a_claim_takes_each_queued_run_once(store_url):
    """The claim itself, from many threads at once (each its own session), on both databases."""
    factory = sessionmaker(results_db.open_engine(store_url))
    with factory() as session, session.begin():
        for _ in range(12):
            store.submit_run(session, "lab", "smoke", {"suite": "smoke"}, 1)
        other = store.submit_run(session, "elsewhere", "smoke", {"suite": "smoke"}, 1).id
        me = store.get_or_create_machine(session, FACTS, "me").id
    claimed, errors = [], []

    def agent():
        try:
            while True:
                with factory() as session, session.begin():
                    run = store.claim_run(session, "lab", session.get(results_db.Machine, me), 1)
                    if run is None:
                        return
                    claimed.append(run.id)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=agent) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 12
    assert other not in claimed  # another label's run stays queued for its own agents
    with factory() as session:
        assert session.get(Run, other).status == "queued"


def test_submit_says_what_it_queued(db_url, capsys):
    assert main([*SUBMIT, "--rounds", "1", "--db", db_url]) == 0
    assert capsys.readouterr().out == "run 1: 1 cell of the smoke suite, 1 round, queued for agent 'lab'\n"


@pytest.mark.parametrize("more, taken", [([], 0), (["--more-rounds", "3"], 3)])
def test_an_agent_takes_the_rounds_more_its_run_was_submitted_with(db_url, monkeypatch, capsys, more, taken):
    from bench_runner.commands import run as run_command

    policies = []
    monkeypatch.setattr(run_command, "measure", lambda args, factory, run_id, policy, *rest: policies.append(policy))
    assert main([*SUBMIT, *more, "--db", db_url]) == 0
    said = " (up to 3 more where a speed-up is undecided)" if more else ""
    assert capsys.readouterr().out == f"run 1: 1 cell of the smoke suite, 1 round{said}, queued for agent 'lab'\n"
    main(["agent", "--label", "lab", "--once", "--quiet", "--db", db_url])
    assert [p.more_rounds for p in policies] == [taken]  # smoke's own: none
    with sessionmaker(results_db.open_engine(db_url))() as session:
        assert session.get(Run, 1).provenance["timing"]["policy"]["more_rounds"] == taken  # stored as measured


def test_an_agent_fails_a_run_on_a_device_its_machine_lacks_and_says_so(db_url, monkeypatch, capsys):
    """Queued for cuda (submit's default) and claimed by an agent without one: every cell would be
    stored `skipped`. The run ends `failed` with the reason instead, and the agent goes on."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main([*SUBMIT[:-2], "--db", db_url]) == 0
    assert main(["agent", "--label", "lab", "--once", "--quiet", "--db", db_url]) == 0
    why = "this agent's machine refuses it: cuda cannot run here: no CUDA device"
    assert f"agent 'lab': run 1 failed: {why}" in capsys.readouterr().err
    factory = sessionmaker(results_db.open_engine(db_url))
    with factory() as session:
        run = session.get(Run, 1)
        assert (run.status, run.message) == ("failed", why)
        assert session.execute(select(Result.id)).first() is None  # nothing measured, nothing skipped


def test_an_agent_leaving_while_its_heartbeat_writes_is_stopped_not_idle(db_url, monkeypatch):
    """The heartbeat thread, in the middle of writing "idle" when the agent leaves, used to commit it
    after the agent's "stopped" (seen once in CI: two agents on SQLite, one waiting on the other's
    lock). The agent's last word is "stopped" however long that beat takes."""
    from bench_runner import agent

    in_beat, committed = threading.Event(), []
    write = store.heartbeat

    def slow_heartbeat(session, label, hostname, machine_id, pid, status, *args, **kwargs):
        if threading.current_thread().name.startswith("heartbeat-"):
            in_beat.set()
            threading.Event().wait(0.5)  # a beat waiting on the database
        write(session, label, hostname, machine_id, pid, status, *args, **kwargs)
        committed.append(status)

    def no_run_once_the_thread_beats(*args):
        assert in_beat.wait(10)
        return None

    monkeypatch.setattr(store, "heartbeat", slow_heartbeat)
    monkeypatch.setattr(store, "claim_run", no_run_once_the_thread_beats)
    factory = sessionmaker(results_db.open_engine(db_url))
    assert agent.serve(factory, "lab", lambda run_id: 0, once=True, poll_s=0.05, say=lambda line: None) == 0
    for thread in threading.enumerate():  # whatever it still had to write is written
        if thread.name.startswith("heartbeat-"):
            thread.join(timeout=10)
    assert committed[0] == "idle" and committed[-1] == "stopped", committed
    with factory() as session:
        assert list(queries.agents_frame(session)["status"]) == ["stopped"]


@pytest.mark.slow
def test_two_agents_run_each_queued_run_exactly_once(store_url, capsys):
    # Two runs for two agents polling together: each claim races the other agent's. (The runs then
    # queue on their one machine, so every further run only adds a quarter-minute of waiting.)
    for _ in range(2):
        assert main([*SUBMIT, "--db", store_url]) == 0
    assert "queued for agent 'lab'" in capsys.readouterr().out
    argv = [sys.executable, "-m", "bench_runner", "agent", "--label", "lab", "--once", "--poll", "0.2", "--quiet",
            "--db", store_url]
    agents = [subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    logs = [a.communicate(timeout=300)[1] for a in agents]
    assert all(a.returncode == 0 for a in agents), logs
    claims = [line for log in logs for line in log.splitlines() if "claimed run" in line]
    assert sorted(int(c.split()[-1]) for c in claims) == [1, 2]  # each run claimed by one agent
    factory = sessionmaker(results_db.open_engine(store_url))
    with factory() as session:
        runs = queries.runs_frame(session)
        results = list(session.execute(select(Result.run_id, Result.method)))
        agents_seen = queries.agents_frame(session)
    assert set(runs["status"]) == {"finished"} and len(runs) == 2
    assert sorted(r for r, _ in results) == [1, 2]  # one cell each, none twice
    assert not runs["machine"].str.contains("queued").any()  # each took the agent's own machine
    assert list(agents_seen["label"]) == ["lab"] and list(agents_seen["status"]) == ["stopped"]


@pytest.mark.parametrize("argv, message", [
    (["submit", "--suite", "smoke"], "the following arguments are required: --label"),
    (["submit", "--label", "a b", "--suite", "smoke"], "is not a label"),
    (["submit", "--label", "x" * 41, "--suite", "smoke"], "is not a label"),
    (["submit", "--label", "lab"], "the argument --suite is required"),
    (["submit", "--label", "lab", "--suite", "smoke", "--method", "nope"], "unknown method 'nope'"),
    (["submit", "--label", "lab", "--suite", "paper", "--benchmark", "elementwise"], "the paper suite holds only"),
    (["agent", "--label", "lab", "--poll", "0"], "is not a positive number"),
])
def test_a_bad_submission_is_one_line_and_queues_nothing(db_url, capsys, argv, message):
    path = db_url.removeprefix("sqlite:///")
    assert main([*argv, "--db", db_url]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    import os
    assert not os.path.exists(path)


def test_the_runs_page_queues_a_run_for_an_agent_and_lists_it(seeded_db, monkeypatch):
    from tests.app.test_pages import render

    factory = sessionmaker(results_db.open_engine(seeded_db))
    with factory() as session, session.begin():
        store.heartbeat(session, "gpu-server", "gpu-host", None, 4242, "idle", starting=True)
    at = render(seeded_db, monkeypatch, "app_pages/runs.py")
    tables = [t.value for t in at.dataframe]
    assert any("gpu-server" in list(t.get("label", [])) for t in tables)
    form = {w.label: w for w in [*at.selectbox, *at.multiselect]}
    assert form["Run on"].options[1] == "agent gpu-server"
    form["Run on"].set_value("agent gpu-server")
    form["Suite"].set_value("smoke")
    form["Benchmarks (none: all)"].set_value(["elementwise"])
    form["Methods (none: all)"].set_value(["copy"])
    at.button[-1].click().run(timeout=120)
    assert not at.exception
    assert any("queued for agent 'gpu-server'" in unescaped(s.value) for s in at.success), [s.value for s in at.error]
    with factory() as session:
        queued = session.scalars(select(Run).where(Run.status == "queued")).all()
    assert len(queued) == 1 and queued[0].options["target"] == "gpu-server"
    assert queued[0].options["devices"] == ["cuda"]
