"""The catalogue documents itself, its ids are a reviewed snapshot, and the repository cites only
what it holds."""

import json
import os
import subprocess

import pytest

from bench_runner.catalogue_doc import overview_table, snapshot
from bench_runner.cli import main
from hadamard_impls import catalogue
from tests.conftest import ROOT

SNAPSHOT = ROOT / "tests" / "hadamard_impls" / "catalogue_ids.json"
REGENERATE = "run `python scripts/catalogue_docs.py` and commit what it writes"


def test_docs_catalogue_is_the_list_commands_markdown(capsys):
    assert main(["list", "--format", "markdown"]) == 0
    generated = capsys.readouterr().out
    assert (ROOT / "docs" / "catalogue.md").read_text(encoding="utf-8") == generated, REGENERATE
    for method in catalogue.methods():  # every method, with its formula line
        assert f"| `{method.id}` | {method.role} |" in generated


def test_the_readme_table_is_generated_from_the_catalogue():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- catalogue-table: start -->\n", "\n<!-- catalogue-table: end -->"
    assert readme[readme.index(start) + len(start):readme.index(end)] == overview_table(catalogue), REGENERATE


def test_the_table_of_defaults_is_generated_from_the_code():
    from bench_runner import defaults

    text = (ROOT / "docs" / "measurement.md").read_text(encoding="utf-8")
    start, end = "<!-- defaults-table: start -->\n", "\n<!-- defaults-table: end -->"
    assert text[text.index(start) + len(start):text.index(end)] == defaults.markdown_table(), REGENERATE
    assert f"| {defaults.ROUNDS['quick']} |" in defaults.markdown_table()


def test_the_dashboards_catalogue_is_the_codes():
    assert (ROOT / "app" / "catalogue.json").read_text(encoding="utf-8") == snapshot(catalogue), REGENERATE


def test_the_ids_match_their_reviewed_snapshot():
    """The CLI, stored results and shared links depend on these ids: a change must be deliberate.
    HADAMARD_BENCH_UPDATE_SNAPSHOT=1 rewrites the snapshot for review."""
    ids = {b.id: {m.id: m.role for m in b.methods.values()} for b in catalogue.benchmarks.values()}
    if os.environ.get("HADAMARD_BENCH_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(ids, indent=1) + "\n")
    assert ids == json.loads(SNAPSHOT.read_text()), \
        "ids changed: review, then HADAMARD_BENCH_UPDATE_SNAPSHOT=1 pytest tests/hadamard_impls/test_catalogue_docs.py"


def test_no_tracked_file_cites_a_document_outside_the_repository():
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    outside = ["../" + "shared", "CATALOGUE" + ".md", "TRUST" + ".md", "STYLE" + ".md", "SURVEY-" + "SUMMARY"]
    citing = []
    for name in listed.stdout.splitlines():
        path = ROOT / name
        if path.suffix in (".png", ".db", ".whl") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        citing += [f"{name}: {word}" for word in outside if word in text]
    assert citing == []
