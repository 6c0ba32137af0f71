"""The distribution: a wheel built from this checkout, installed into a fresh virtual
environment, works from a folder outside the checkout."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.install  # make test-all


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the wheel installed; its dependencies come from the test run's own
    environment through a .pth line, so nothing is downloaded but the build backend."""
    base = tmp_path_factory.mktemp("install")
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources it builds.
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "results", "build", "*.egg-info",
                                                               "__pycache__", ".pytest_cache", "node_modules"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(base / "dist"),
                            str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((base / "dist").glob("hadamard_bench-*.whl"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                           "--no-deps", "--quiet", str(wheel)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HADAMARD_BENCH_DB")}
    return venv, wheel, elsewhere, {**env, "XDG_DATA_HOME": str(base / "data")}


def test_the_wheel_declares_the_requirements_and_a_console_script(installed):
    import zipfile

    _, wheel, _, _ = installed
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith("METADATA"))).decode()
        entry = z.read(next(n for n in z.namelist() if n.endswith("entry_points.txt"))).decode()
        names = z.namelist()
    wanted = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.split("#")[0].strip()]
    declared = [line.removeprefix("Requires-Dist: ") for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert all(any(d.replace(" ", "").startswith(w.replace(" ", "")) for d in declared) for w in wanted), declared
    assert "hadamard-bench = bench_runner.cli:main" in entry
    assert "results_db/migrations/versions/0005_fingerprints_marks_history.py" in names
    assert "app/app_pages/history.py" in names and "hadamard_bench/vocabulary.py" in names
    assert "app/catalogue.json" in names  # the dashboard lays it over every database


def test_the_installed_tool_lists_and_runs_outside_the_checkout(installed):
    venv, _, elsewhere, env = installed
    tool = str(venv / "bin" / "hadamard-bench")
    where = subprocess.run([venv / "bin" / "python", "-c", "import bench_runner, app; print(bench_runner.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert where.returncode == 0 and str(venv) in where.stdout, where.stdout + where.stderr
    listed = subprocess.run([tool, "list"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0 and "token_mixing" in listed.stdout, listed.stderr[-2000:]
    run = subprocess.run([tool, "run", "--suite", "smoke", "--benchmark", "elementwise", "--method", "hadamard",
                          "--backend", "eager", "--quiet"], cwd=elsewhere, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    db = Path(env["XDG_DATA_HOME"]) / "hadamard-bench" / "hadamard_bench.db"  # not site-packages, not the cwd
    assert db.exists() and not (elsewhere / "results").exists()
    exported = subprocess.run([tool, "export", "--format", "json", "--out", "-"], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=300)
    rows = json.loads(exported.stdout)
    assert [(r["method"], r["status"]) for r in rows] == [("hadamard", "ok")]


def test_serve_refuses_a_bad_database_url_in_one_line(installed):
    venv, _, elsewhere, env = installed
    out = subprocess.run([str(venv / "bin" / "hadamard-bench"), "serve", "--db", "nosuchdb://x"], cwd=elsewhere,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "nosuchdb" in out.stderr


def test_serve_starts_the_installed_dashboard(installed, tmp_path):
    import socket
    import time
    import urllib.request

    venv, _, elsewhere, env = installed
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(venv / "bin" / "hadamard-bench"), "serve", "--port", str(port), "--headless",
                               "--address", "127.0.0.1", "--db", f"sqlite:///{tmp_path / 'served.db'}"],
                              cwd=elsewhere, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, health = time.monotonic() + 90, None
        while time.monotonic() < deadline and health != b"ok":
            try:
                health = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read()
            except OSError:
                time.sleep(0.5)
        assert health == b"ok"
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
        assert b"<html" in page.lower()
    finally:
        server.terminate()
        server.wait(timeout=30)
    # serve becomes the server: terminating it left nothing listening behind it.
    time.sleep(1)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
