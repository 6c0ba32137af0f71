"""Markdown tables without an extra dependency, for the exports and the benchmark reports."""

from __future__ import annotations

import pandas as pd


def markdown_table(frame: pd.DataFrame, digits: int | None = None) -> str:
    """A GitHub-flavoured Markdown table; floats to `digits` significant digits when given."""
    def cell(v) -> str:
        if pd.isna(v):
            return ""
        if digits is not None and isinstance(v, float):
            return f"{v:.{digits}g}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + " --- |" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"
