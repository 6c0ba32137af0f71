"""Plugins: a package installed beside Hadamard Bench adds methods that are measured like the
catalogue's own; a broken one stops the command in one line, with nothing written."""

import hashlib
import os
import shutil
import subprocess
import sys

import pytest
from sqlalchemy.orm import sessionmaker

import results_db
from bench_runner import flops
from results_db import queries
from tests.conftest import ROOT

pytestmark = pytest.mark.plugins  # make test-all

EXAMPLE = ROOT / "examples" / "plugin"


def bench(args, env, cwd=ROOT, timeout=900):
    return subprocess.run([sys.executable, "-m", "bench_runner", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    """examples/plugin installed (pip, from a copy) into a folder of its own on PYTHONPATH: the
    entry point is found the way an installed plugin's is."""
    base = tmp_path_factory.mktemp("plugin")
    shutil.copytree(EXAMPLE, base / "source", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target",
                           str(base / "site"), str(base / "source")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("HADAMARD_BENCH_DB", "HADAMARD_BENCH_PLUGINS")}
    return {**env, "PYTHONPATH": str(base / "site")}, base


def test_an_installed_plugin_is_listed_with_where_it_comes_from(plugin_env):
    env, _ = plugin_env
    out = bench(["list"], env)
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.startswith("  ")}
    assert "from plugin sgu (hadamard_bench_sgu:register)" in lines["sgu"]
    assert "hadamard" in lines["sgu"] and "baseline" in lines["token_mlp"]
    assert "from plugin" not in lines["poly_sa"]


def test_a_plugin_method_is_measured_like_a_built_in_one_and_shows_on_the_dashboard(plugin_env, monkeypatch):
    env, base = plugin_env
    url = f"sqlite:///{base / 'measured.db'}"
    out = bench(["run", "--suite", "smoke", "--benchmark", "token_mixing", "--method", "sgu", "--method", "token_mlp",
                 "--backend", "eager", "--backend", "compile", "--db", url, "--quiet"], env)
    assert out.returncode == 0, out.stderr[-3000:]
    with sessionmaker(results_db.open_engine(url))() as session:
        frame = queries.results_frame(session)
        catalogue = queries.catalogue_frame(session)
    assert sorted(zip(frame["method"], frame["backend"], frame["status"])) == [
        ("sgu", "compile", "ok"), ("sgu", "eager", "ok"), ("token_mlp", "compile", "ok"), ("token_mlp", "eager", "ok")]
    assert ((frame["flops_counted"] - frame["flops"]).abs() <= flops.AGREEMENT * frame["flops"]).all()
    assert set(catalogue.loc[catalogue["method"] == "sgu", "against"].iloc[0]) == {"softmax_attention", "token_mlp"}

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("HADAMARD_BENCH_DB", url)
    at = AppTest.from_file("../app/streamlit_app.py", default_timeout=60)
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception, at.exception
    assert {"sgu", "token_mlp"} <= set(next(m for m in at.multiselect if m.label == "Methods").options)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


# Each kind of broken plugin once, each through another way in: the refusal is one check shared
# by every verb and by both ways of naming a plugin, and each case is a process (seconds of imports).
@pytest.mark.parametrize("source, words, verb, named_by", [
    ("raise RuntimeError('boom')\n", "plugin 'broken_plugin' cannot be imported: RuntimeError: boom",
     ["run", "--suite", "smoke", "--benchmark", "elementwise"], "flag"),
    ("def register(catalogue):\n    catalogue.benchmarks['token_mixing'].method('poly_sa', role='hadamard', "
     "latex='', flops=lambda s: 0, bytes=lambda s, i: 0, exponents={})(lambda size: None)\n",
     "plugin broken_plugin: ValueError: method 'poly_sa' is registered twice in 'token_mixing'", ["list"], "flag"),
    ("register = 3\n", "plugin 'broken_plugin' has no callable 'register'",
     ["run", "--suite", "smoke", "--benchmark", "elementwise"], "env"),
], ids=["import-fails", "duplicate-id", "not-callable"])
def test_a_broken_plugin_is_one_line_exit_2_and_writes_nothing(tmp_path, source, words, verb, named_by):
    (tmp_path / "broken_plugin.py").write_text(source)
    env = {**{k: v for k, v in os.environ.items() if k != "HADAMARD_BENCH_PLUGINS"}, "PYTHONPATH": str(tmp_path)}
    db = tmp_path / "results.db"
    argv = [*verb, "--db", f"sqlite:///{db}"] if verb[0] == "run" else verb
    if named_by == "env":
        env["HADAMARD_BENCH_PLUGINS"] = "broken_plugin"
    else:
        argv += ["--plugin", "broken_plugin"]
    out = bench(argv, env, timeout=300)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert words in out.stderr
    assert not db.exists()


def test_a_plugin_given_by_flag_reaches_the_worker_processes(tmp_path):
    """Not installed: named with --plugin, found on PYTHONPATH; the cells run in worker processes,
    which load it from the environment the command sets."""
    env = {**{k: v for k, v in os.environ.items() if k != "HADAMARD_BENCH_PLUGINS"}, "PYTHONPATH": str(EXAMPLE)}
    url = f"sqlite:///{tmp_path / 'flag.db'}"
    out = bench(["run", "--suite", "smoke", "--benchmark", "token_mixing", "--method", "sgu", "--backend", "eager",
                 "--plugin", "hadamard_bench_sgu", "--db", url, "--quiet"], env)
    assert out.returncode == 0, out.stderr[-3000:]
    with sessionmaker(results_db.open_engine(url))() as session:
        frame = queries.results_frame(session)
    assert list(zip(frame["method"], frame["status"])) == [("sgu", "ok")]
