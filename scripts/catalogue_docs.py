"""Regenerate what is written from the code: docs/catalogue.md whole, the README's overview table
and docs/measurement.md's table of defaults between their markers, and app/catalogue.json, the
catalogue the dashboard lays over every database it opens (it imports no torch). tests/hadamard_impls/test_catalogue_docs.py fails
until this has been run after a method or benchmark changes.

    python scripts/catalogue_docs.py
"""

from __future__ import annotations

from pathlib import Path

from bench_runner.catalogue_doc import document, overview_table, snapshot
from bench_runner.defaults import markdown_table
from hadamard_impls import catalogue

ROOT = Path(__file__).resolve().parent.parent


def with_table(text: str, table: str, name: str) -> str:
    """`text` with `table` between its `<!-- NAME: start -->` and `<!-- NAME: end -->` markers."""
    start, end = f"<!-- {name}: start -->", f"<!-- {name}: end -->"
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    return f"{head}{start}\n{table}\n{end}{tail}"


def main() -> None:
    (ROOT / "docs" / "catalogue.md").write_text(document(catalogue), encoding="utf-8")
    readme = ROOT / "README.md"
    readme.write_text(with_table(readme.read_text(encoding="utf-8"), overview_table(catalogue), "catalogue-table"),
                      encoding="utf-8")
    measurement = ROOT / "docs" / "measurement.md"
    measurement.write_text(with_table(measurement.read_text(encoding="utf-8"), markdown_table(), "defaults-table"),
                           encoding="utf-8")
    (ROOT / "app" / "catalogue.json").write_text(snapshot(catalogue), encoding="utf-8")
    print("wrote docs/catalogue.md, the README's catalogue table, docs/measurement.md's defaults and "
          "app/catalogue.json")


if __name__ == "__main__":
    main()
