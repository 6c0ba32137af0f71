"""Regenerate the catalogue's documentation from the code: docs/catalogue.md whole, and the
README's overview table between its markers. tests/hadamard_impls/test_catalogue_docs.py fails
until this has been run after a method or benchmark changes.

    python scripts/catalogue_docs.py
"""

from __future__ import annotations

from pathlib import Path

from bench_runner.catalogue_doc import document, overview_table
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
    print("wrote docs/catalogue.md and the README's catalogue table")


if __name__ == "__main__":
    main()
