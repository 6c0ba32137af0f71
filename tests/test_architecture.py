"""docs/architecture.md, checked against the code: every import (those inside functions too)
runs with the flow the doc's table allows, and the path of one cell it names is the code's."""

from __future__ import annotations

import ast
import re
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("hadamard_bench", "hadamard_impls", "results_db", "bench_runner", "app")

# What each package may import of the others (docs/architecture.md's table). A module matches
# the longest prefix given: bench_runner.commands is the command line, on top of everything.
ALLOWED = {
    "hadamard_bench": set(),
    "hadamard_bench.plugins": {"hadamard_impls"},  # loading the catalogue is its job
    "hadamard_impls": {"hadamard_bench"},
    "results_db": {"hadamard_bench"},
    "bench_runner": {"hadamard_bench", "hadamard_impls", "results_db"},
    "bench_runner.commands": {"hadamard_bench", "hadamard_impls", "results_db", "app"},
    "app": {"hadamard_bench", "results_db", "bench_runner.defaults", "bench_runner.stats", "bench_runner.comparison",
            "bench_runner.wording", "bench_runner.history", "bench_runner.speedups"},
}


def imports_of(path: Path) -> set[str]:
    """The project modules `path` imports, as dotted names, wherever in it the import stands."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            name = ".".join(p for p in (base, node.module) if p)
            found |= {name} | {f"{name}.{a.name}" for a in node.names}  # `from pkg import module`
    return {n for n in found if n.split(".")[0] in PACKAGES}


def violations(module: str, imported: set[str]) -> list[str]:
    own = module.split(".")[0]
    rule = max((k for k in ALLOWED if module == k or module.startswith(k + ".")), key=len)
    allowed = ALLOWED[rule]
    bad = []
    for name in imported:
        if name.split(".")[0] == own:
            continue
        if not any(name == a or name.startswith(a + ".") for a in allowed):
            # `from bench_runner import stats` names the package, then the module: judge the module
            if name in PACKAGES and any(n.startswith(name + ".") for n in imported):
                continue
            bad.append(name)
    return sorted(bad)


def project_modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"), path


def test_every_import_runs_with_the_flow():
    against = {m: v for m, path in project_modules() if (v := violations(m, imports_of(path)))}
    assert against == {}


def test_an_import_against_the_flow_is_caught():
    assert violations("results_db.store", {"bench_runner.sweep", "hadamard_bench.vocabulary"}) == ["bench_runner.sweep"]
    assert violations("app.data", {"bench_runner", "bench_runner.cell"}) == ["bench_runner.cell"]
    assert violations("app.data", {"bench_runner", "bench_runner.stats"}) == []
    assert violations("bench_runner.sweep", {"app.shaping"}) == ["app.shaping"]
    assert violations("bench_runner.commands.plot", {"app.shaping"}) == []


def test_the_doc_names_the_modules_of_one_cells_path_and_they_exist():
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## One cell's path", 1)[1].split("\n## ", 1)[0]
    path = re.findall(r"^\| \d+ \| `([\w/]+\.py)` \|", section, re.M)
    assert 8 <= len(path) <= 12, path
    assert [p for p in path if not (ROOT / p).is_file()] == []


def test_the_parser_loads_without_torch():
    """(The dashboard's pages: tests/test_vocabulary.py renders them all without torch.)"""
    import subprocess
    import sys

    code = "from bench_runner import cli; cli.build_parser(); import sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
