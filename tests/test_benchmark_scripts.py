"""The scripts under benchmarks/ call the project's own functions, and are run by hand, minutes
into a measurement: a function renamed, or one whose parameters changed, would show only then,
after the measuring. So every call a script makes to a function or class of the project, as
written, must bind to its signature now: its arguments counted, its keywords named (no script
is run, and no type is checked: 04f4b74 dropped `existing_db`'s verb, and the scripts' verb then
bound to its `writes` instead, which only reading them found)."""

import ast
import importlib
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py"))
PROJECT = ("app", "bench_runner", "hadamard_bench", "hadamard_impls", "results_db")


def _ours(module: str | None) -> bool:
    return bool(module) and module.split(".")[0] in PROJECT


def project_names(tree: ast.Module) -> dict[str, object]:
    """What each name the script imports from the project is bound to. A name the script also
    binds itself (a function of its own, a sibling script's import) is left out."""
    names, own = {}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and _ours(node.module):
            module = importlib.import_module(node.module)
            for alias in node.names:
                found = getattr(module, alias.name, None)
                names[alias.asname or alias.name] = (found if found is not None
                                                     else importlib.import_module(f"{node.module}.{alias.name}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _ours(alias.name):
                    bound = alias.asname or alias.name.split(".")[0]
                    names[bound] = importlib.import_module(alias.name if alias.asname else bound)
                    importlib.import_module(alias.name)  # `import a.b` makes a.b reachable from a
                else:
                    own.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            own.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            own.add(node.name)
    return {name: value for name, value in names.items() if name not in own}


def resolve(node: ast.expr, names: dict[str, object], where: str):
    """The project object an expression such as `compare.existing_db` names, or None where it is
    not one (a local variable, a method of a value)."""
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        base = resolve(node.value, names, where)
        if base is None:
            return None
        if hasattr(base, node.attr):
            return getattr(base, node.attr)
        if inspect.ismodule(base):
            try:
                return importlib.import_module(f"{base.__name__}.{node.attr}")
            except ModuleNotFoundError:
                pass
        if inspect.ismodule(base) or inspect.isclass(base):
            raise AssertionError(f"{where}: {base.__name__} has no {node.attr}")
    return None


def calls(script: Path):
    """(where, project callable, positional count, keyword names) for each call the script makes
    to one, leaving out calls that spread a list or a dict (*args, **kwargs) into it."""
    tree = ast.parse(script.read_text())
    names = project_names(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        where = f"{script.name}:{node.lineno}"
        target = resolve(node.func, names, where)
        if not callable(target) or not _ours(getattr(target, "__module__", None)):
            continue
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            continue
        yield where, target, len(node.args), [k.arg for k in node.keywords]


def unbound(script: Path) -> tuple[int, list[str]]:
    """How many of the script's calls into the project were checked, and those that do not bind."""
    checked, problems = 0, []
    for where, target, positional, keywords in calls(script):
        checked += 1
        try:
            inspect.signature(target).bind(*[None] * positional, **dict.fromkeys(keywords))
        except TypeError as exc:
            problems.append(f"{where}: {target.__module__}.{target.__qualname__}: {exc}")
    return checked, problems


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_each_call_a_benchmark_script_makes_to_the_project_binds(script):
    checked, problems = unbound(script)
    assert not problems
    # Every script calls into the project but the two helpers the others share and one that times torch alone.
    assert checked or script.name in {"docs_section.py", "neighbour.py", "busy_core_threads.py"}, script.name


def test_a_call_that_no_longer_binds_is_found(tmp_path):
    script = tmp_path / "old.py"
    script.write_text("from bench_runner.commands import compare\n"
                      "sessions = compare.existing_db('sqlite:///x.db', 'compare', writes=True)\n"
                      "rows = compare.existing_db('sqlite:///x.db', writes=False)\n")
    checked, problems = unbound(script)
    assert checked == 2 and len(problems) == 1 and problems[0].startswith(
        "old.py:2: bench_runner.commands.existing_db: "), problems
    script.write_text("from bench_runner import stats\nstats.no_such_function(1)\n")
    with pytest.raises(AssertionError, match="old.py:2: bench_runner.stats has no no_such_function"):
        unbound(script)
