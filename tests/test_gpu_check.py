"""scripts/gpu_check.sh rehearsed with a stand-in interpreter: a session is lent a GPU for
minutes at most, so a command of the script that no longer parses, or a selection that no
longer plans a cell (a size renamed in the catalogue, say), would spend them on nothing. The
stand-in records every command the script gives it and runs none."""

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap

from bench_runner import cli, selection
from bench_runner.commands.flags import selected
from hadamard_impls import catalogue
from tests.conftest import ROOT

STAND_IN = textwrap.dedent('''
    import json
    import sys

    with open(LOG, "a") as log:
        log.write(json.dumps(sys.argv[1:]) + "\\n")
    if sys.argv[1:2] == ["-"]:  # the script's note of the device
        sys.stdin.read()
        print("device: a stand-in")
''')


def rehearse(tmp_path) -> list[list[str]]:
    """Every command line the script hands its interpreter, in order, and its steps' log."""
    log, python = tmp_path / "calls.jsonl", tmp_path / "python"
    python.write_text(f"#!{sys.executable}\n" + STAND_IN.replace("LOG", repr(str(log))))
    python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_CHECK_")}
    # Run as a lent machine runs it, by its path: its mode must keep it executable.
    done = subprocess.run([str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path / "out")],
                          env={**env, "PYTHON": str(python)}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    steps = (tmp_path / "out" / "steps.log").read_text()
    assert "skipped" not in steps and len(re.findall(r": exit 0 after", steps)) == 7, steps
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_every_command_of_the_gpu_check_parses_and_every_selection_plans_cells(tmp_path):
    calls = rehearse(tmp_path)
    parser = cli.build_parser()
    runs = [call[3:] for call in calls if call[:3] == ["-m", "bench_runner", "run"]]
    assert len(runs) == 6  # one a step, but the tests'
    for argv in runs:
        args = parser.parse_args(["run", *argv])
        assert args.device == ["cuda"] and args.rounds == 1 and args.more_rounds == 0, argv
        sel = selected(args, args.device)
        assert selection.plan(catalogue, sel), argv
        for size in args.size or []:  # each size asked for is one the suite still has
            assert selection.plan(catalogue, dataclasses.replace(sel, sizes=[size])), (argv, size)
    tests = next(call[2:] for call in calls if call[:2] == ["-m", "pytest"])
    assert [t for t in tests if t.endswith(".py") and not (ROOT / t).is_file()] == []
    export = next(call[3:] for call in calls if call[:3] == ["-m", "bench_runner", "export"])
    assert parser.parse_args(["export", *export]).format == "csv"
    summary = next(call[1:] for call in calls if call[:1] == ["benchmarks/gpu_summary.py"])
    source = (ROOT / "benchmarks" / "gpu_summary.py").read_text()
    assert [f for f in summary if f.startswith("--") and f'add_argument("{f}"' not in source] == []
