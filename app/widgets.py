"""The controls several pages share: the context selectboxes (machine, device, dtype, mode) in
one order everywhere, and a selection read from the page's URL so it can be shared as a link."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from bench_runner import wording

from . import data, text
from .judging import own_first
from .shaping import CONTEXT


# What a page shows first where a context column offers a choice: what most people measure.
PREFERRED = {"dtype": "float32", "mode": "forward"}


def context_options(values, key: str, reference: list[str]) -> list:
    """A context column's choices in the order every page offers them: the user's own machines
    before the shipped reference ones, float32 and forward first, the rest sorted."""
    if key == "machine":
        return own_first(values, reference)
    return sorted(values, key=lambda v: (v != PREFERRED.get(key), v))


def pick_context(rows: pd.DataFrame, key_prefix: str = "") -> pd.DataFrame:
    """One selectbox per context column (machine, device, dtype, mode); the rows that match."""
    cols = st.columns(len(CONTEXT))
    reference = data.load_reference_machines(data.db_url())
    for key, col in zip(CONTEXT, cols):
        options = context_options(rows[key].dropna().unique(), key, reference)
        value = col.selectbox(key.capitalize(), options, key=f"{key_prefix}{key}", format_func=text.visible)
        rows = rows[rows[key] == value]
    return rows


def url_index(key: str, options: list, default=None) -> int:
    """The index of the option the page's URL names under `key` (else of `default`, else 0), so a
    page's selection can be shared as a link."""
    value = st.query_params.get(key)
    matches = [o for o in options if str(o) == value]
    return options.index(matches[0]) if matches else (options.index(default) if default in options else 0)


def failed_since_warning(url: str, benchmarks=None) -> None:
    """Above a page of machines' latest `ok` results (all of them, or those of `benchmarks`): a
    warning naming the cells whose newest measurement failed since, so the page's figures for
    them are older than what the machine last did (wording.failed_since_note). Nothing when none."""
    failed = data.load_failed_since_latest(url)
    if benchmarks is not None:
        failed = failed[failed["benchmark"].isin(list(benchmarks))]
    note = wording.failed_since_note(failed)
    if note:
        st.warning(text.md(note, limit=None))
