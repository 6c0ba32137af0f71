"""Regenerate what is written from the catalogue's code: docs/catalogue.md whole, the README's
overview table between its markers, and app/catalogue.json, the catalogue the dashboard lays over
every database it opens (it imports no torch). tests/hadamard_impls/test_catalogue_docs.py fails
until this has been run after a method or benchmark changes.

    python scripts/catalogue_docs.py
"""

from __future__ import annotations

from pathlib import Path

from bench_runner.catalogue_doc import document, overview_table, snapshot
from hadamard_impls import catalogue

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- catalogue-table: start -->", "<!-- catalogue-table: end -->"


def readme_with_table(readme: str, table: str) -> str:
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{table}\n{END}{tail}"


def main() -> None:
    (ROOT / "docs" / "catalogue.md").write_text(document(catalogue), encoding="utf-8")
    readme = ROOT / "README.md"
    readme.write_text(readme_with_table(readme.read_text(encoding="utf-8"), overview_table(catalogue)),
                      encoding="utf-8")
    (ROOT / "app" / "catalogue.json").write_text(snapshot(catalogue), encoding="utf-8")
    print("wrote docs/catalogue.md, the README's catalogue table and app/catalogue.json")


if __name__ == "__main__":
    main()
