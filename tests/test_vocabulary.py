"""One vocabulary, spelled once, and a dashboard that never loads torch."""

import subprocess
import sys
from pathlib import Path

from hadamard_bench import vocabulary
from tests.conftest import ROOT

# Rendering every page in one process: torch must not be among the modules it loaded.
DASHBOARD_WITHOUT_TORCH = """
import os, sys
from streamlit.testing.v1 import AppTest
os.environ["HADAMARD_BENCH_DB"] = sys.argv[1]
at = AppTest.from_file("app/streamlit_app.py", default_timeout=120).run()
for page in sorted(os.listdir("app/app_pages")):
    if page.endswith(".py") and page != "__init__.py":
        at.switch_page(f"app_pages/{page}").run()
        assert not at.exception, (page, at.exception)
print("torch" in sys.modules, sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "triton"))[:5])
"""


def test_the_dashboard_renders_every_page_without_importing_torch(seeded_db):
    out = subprocess.run([sys.executable, "-c", DASHBOARD_WITHOUT_TORCH, seeded_db], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "False []"


def test_the_cell_key_is_spelled_once():
    spelled = ", ".join(f'"{word}"' for word in vocabulary.CELL_KEY)
    where = [str(p.relative_to(ROOT)) for folder in ("app", "bench_runner", "results_db", "hadamard_impls",
                                                       "hadamard_bench", "benchmarks")
             for p in (ROOT / folder).rglob("*.py")
             if spelled[:-len(', "size"')] in p.read_text() and "migrations" not in p.parts]
    assert where == ["hadamard_bench/vocabulary.py"]


def test_the_vocabulary_is_what_the_code_runs():
    from bench_runner.cell import DTYPES, MODES
    from hadamard_impls import BACKENDS, DOMAINS, SUITES, catalogue
    from results_db.models import Result

    assert tuple(DTYPES) == vocabulary.DTYPES and MODES == vocabulary.MODES
    assert tuple(BACKENDS) == vocabulary.BACKENDS
    assert SUITES == vocabulary.SUITES and DOMAINS == vocabulary.DOMAINS
    assert set(vocabulary.CELL_KEY) <= set(Result.__table__.c.keys())
    assert {m.role for m in catalogue.methods()} == set(vocabulary.ROLES)
    assert {b.domain for b in catalogue.benchmarks.values()} == set(vocabulary.DOMAINS)


def test_no_code_patches_the_import_path():
    """The project is installed (editable by make, or from a wheel): nothing needs sys.path edited."""
    patching = ("sys.path." + "insert", "sys.path." + "append")
    offenders = [str(p.relative_to(ROOT)) for folder in ("app", "bench_runner", "results_db", "hadamard_impls",
                                                         "hadamard_bench", "benchmarks", "tests", "scripts")
                 for p in Path(ROOT / folder).rglob("*.py") if any(w in p.read_text() for w in patching)]
    assert offenders == []


def test_a_count_says_its_noun_as_a_sentence_would():
    from hadamard_bench.vocabulary import counted

    assert [counted(n, "run") for n in (0, 1, 2)] == ["0 runs", "1 run", "2 runs"]
    assert counted(1, "change point") == "1 change point" and counted(3, "box", "boxes") == "3 boxes"


def test_the_columns_page_is_generated_from_the_columns_module():
    from hadamard_bench import columns

    assert (ROOT / "docs" / "columns.md").read_text(encoding="utf-8") == columns.markdown(), \
        "docs/columns.md is out of date: python -m hadamard_bench.columns > docs/columns.md"
