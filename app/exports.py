"""What any page shows, as files: tables in five formats, charts as interactive HTML, PNG and SVG."""

from __future__ import annotations

import io
import re

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from results_db.queries import spreadsheet_safe

from . import charts
from .markdown import markdown_table


def latex_table(frame: pd.DataFrame) -> str:
    """A booktabs table, ready for a paper."""
    numeric = frame.select_dtypes("number").columns
    # Ids such as poly_sa carry underscores: every text cell and header is escaped for LaTeX.
    return (frame.style.hide(axis="index").format(escape="latex", na_rep="")
            .format("{:.4g}", subset=numeric, na_rep="").format_index(escape="latex", axis=1)
            .to_latex(hrules=True, column_format="l" * len(frame.columns)))


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    # Object columns mixing types (a JSON field) become text; Parquet needs one type per column.
    safe = frame.apply(lambda c: c.astype(str) if c.dtype == object else c)
    safe.to_parquet(buffer, index=False)
    return buffer.getvalue()


TABLE_FORMATS = {  # label → (render, file extension, MIME type)
    "CSV": (lambda f: spreadsheet_safe(f).to_csv(index=False), "csv", "text/csv"),
    "Parquet": (parquet_bytes, "parquet", "application/vnd.apache.parquet"),
    "JSON": (lambda f: f.to_json(orient="records", date_format="iso", indent=1), "json", "application/json"),
    "Markdown": (markdown_table, "md", "text/markdown"),
    "LaTeX": (latex_table, "tex", "application/x-tex"),
}


def download_buttons(frame: pd.DataFrame, name: str, figure: go.Figure | None = None) -> None:
    """One download button per table format, and the chart as a self-contained HTML page.

    Every file is made on the server only when its button is clicked: made on every render, the
    seven files of a History page with a few thousand rows took half a second each time. A click
    must not rerun the page: a rerun replaces the deferred file the browser is fetching."""
    name = re.sub(r"[^\w.=+-]+", "_", name)[:120]  # from stored ids: a file name, nothing more
    cols = st.columns(len(TABLE_FORMATS) + (3 if figure is not None else 0))
    for col, (label, (render, ext, mime)) in zip(cols, TABLE_FORMATS.items()):
        col.download_button(label, lambda render=render: render(frame), file_name=f"{name}.{ext}", mime=mime,
                            key=f"{name}-{ext}", on_click="ignore")
    if figure is not None:
        cols[-3].download_button(
            "Chart (HTML)", lambda: figure.to_html(include_plotlyjs=True,
                                                   config={"toImageButtonOptions": {"format": "svg"}}),
            file_name=f"{name}.html", mime="text/html", key=f"{name}-html", on_click="ignore")
        # Images are drawn by a browser the server starts for them: a second or two.
        for col, fmt, mime in ((cols[-2], "png", "image/png"), (cols[-1], "svg", "image/svg+xml")):
            col.download_button(f"Chart ({fmt.upper()})", lambda fmt=fmt: charts.image(figure, fmt),
                                file_name=f"{name}.{fmt}", mime=mime, key=f"{name}-{fmt}", on_click="ignore")
