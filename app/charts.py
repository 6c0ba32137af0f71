"""Plotly figure builders: one parameterised builder per kind of chart."""

from __future__ import annotations

import os
import shutil
import time

import pandas as pd
import plotly.graph_objects as go

from hadamard_bench.vocabulary import size_order

from . import text

HOVER_COLUMNS = ["size", "time_median_s", "time_iqr_s", "samples", "peak_mem_bytes", "flops", "gflops", "gbps"]


plain = text.plotly  # stored text into trace names, hover labels, annotations and tick labels


def _plain_text(column: pd.Series) -> pd.Series:
    """A column's text made inert (numbers and times left as they are)."""
    text = column.dtype == object or pd.api.types.is_string_dtype(column)
    return column.map(lambda v: plain(v) if isinstance(v, str) else v) if text else column


def _plain_data(frame: pd.DataFrame, columns: list[str]):
    """`frame[columns]` as customdata, its text made inert."""
    return frame[columns].apply(_plain_text).to_numpy()


def scaling_chart(frame: pd.DataFrame, x: str, y: str, *, x_title: str, y_title: str,
                  error: str | None = None, log: bool = True) -> go.Figure:
    """One line per method and backend; baselines dashed; `error` as ± half-width bars.

    A `beside` column, where present, names a second machine's rows: their lines are
    dotted, with open markers, and named after it."""
    fig = go.Figure()
    frame = frame.assign(beside=frame["beside"].fillna("") if "beside" in frame else "")
    for (beside, method, backend), line in frame.sort_values(x).groupby(["beside", "method", "backend"], sort=True):
        baseline = bool(line["is_baseline"].iloc[0])
        name = plain(f"{method} · {backend}" + (f" · {beside}" if beside else ""))
        fig.add_trace(go.Scatter(
            x=line[x], y=line[y], name=name, mode="lines+markers",
            line=dict(dash="dot" if beside else "dash" if baseline else "solid"),
            marker=dict(symbol="circle-open" if beside else "circle"),
            error_y=dict(type="data", array=line[error] / 2, visible=True) if error else None,
            customdata=_plain_data(line, [c for c in HOVER_COLUMNS if c in line]),
            hovertemplate="<br>".join(
                [f"<b>{name}</b>"]
                + [f"{c}: %{{customdata[{i}]}}" for i, c in enumerate(c for c in HOVER_COLUMNS if c in line)])
            + "<extra></extra>",
        ))
    axis = "log" if log else "linear"
    fig.update_layout(xaxis=dict(title=x_title, type=axis), yaxis=dict(title=y_title, type=axis),
                      legend_title_text="method · backend (dashed: baseline)",
                      margin=dict(l=10, r=10, t=30, b=10), height=460)
    return fig


def roofline_chart(points: pd.DataFrame, bandwidth_gbps: float | None, peak_gflops: float | None) -> go.Figure:
    """Achieved GFLOP/s against FLOPs per byte, under the calibrated roof min(peak, intensity × bandwidth)."""
    fig = go.Figure()
    for (benchmark, role), group in points.groupby(["benchmark", "role"], sort=True):
        fig.add_trace(go.Scatter(
            x=group["intensity"], y=group["gflops"], mode="markers", name=plain(f"{benchmark} · {role}"),
            marker=dict(symbol="circle" if role == "hadamard" else "diamond-open", size=8),
            customdata=_plain_data(group, ["method", "backend", "size"]),
            hovertemplate="<b>%{customdata[0]} · %{customdata[1]}</b><br>%{customdata[2]}<br>"
                          "%{x:.3g} FLOP/B, %{y:.3g} GFLOP/s<extra></extra>",
        ))
    if bandwidth_gbps and peak_gflops and not points.empty:
        lo = min(points["intensity"].min(), peak_gflops / bandwidth_gbps) / 2
        hi = max(points["intensity"].max(), peak_gflops / bandwidth_gbps) * 2
        ridge = peak_gflops / bandwidth_gbps
        fig.add_trace(go.Scatter(x=[lo, ridge, hi], y=[lo * bandwidth_gbps, peak_gflops, peak_gflops],
                                 mode="lines", name="roof (calibrated)", line=dict(color="black", dash="dot")))
    fig.update_layout(xaxis=dict(title="arithmetic intensity (FLOP/byte)", type="log"),
                      yaxis=dict(title="achieved GFLOP/s", type="log"),
                      margin=dict(l=10, r=10, t=30, b=10), height=520)
    return fig


def history_chart(rows: pd.DataFrame, x: str, *, x_title: str) -> go.Figure:
    """A cell's median per run (one line per size), its 95% interval as a band, change points as
    dashed vertical lines and marked runs as dotted ones; `x` is the column the runs are placed
    by (their start, or a commit label)."""
    fig = go.Figure()
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
    for k, size in enumerate(sorted(rows["size"].unique(), key=size_order)):  # the legend in size order
        line = rows[rows["size"] == size]
        colour = palette[k % len(palette)]
        fig.add_trace(go.Scatter(  # the band: high then low reversed, filled
            x=[*line[x], *line[x][::-1]], y=[*line["ci_high"], *line["ci_low"][::-1]], fill="toself",
            fillcolor=colour, opacity=0.18, line=dict(width=0), hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(
            x=_plain_text(line[x]), y=line["time_median_s"], name=plain(size),
            mode="lines+markers", line=dict(color=colour),
            customdata=_plain_data(line, ["run_id", "ci_low", "ci_high", "machine", "annotation"]),
            hovertemplate="<b>%{customdata[0]}</b> (run)<br>median %{y:.4g} s<br>95%: [%{customdata[1]:.4g}, "
                          "%{customdata[2]:.4g}]<br>%{customdata[3]}<br>%{customdata[4]}<extra>" + plain(size)
                          + "</extra>"))
    # One vertical line per run that is a change point or marked: dashed for a change point,
    # red unless a mark explains it, green (dotted when only marked) where one does.
    marked = rows["annotation"].str.contains("marked", regex=False)
    for at, group in rows[rows["change_point"] | marked].groupby(x, sort=False):
        found, explained = bool(group["change_point"].any()), bool(marked[group.index].any())
        words = " · ".join(w for w, on in (("change point", found), ("marked", explained)) if on)
        colour = "#2ca02c" if explained else "#d62728"
        at = plain(at) if isinstance(at, str) else at  # a commit label, as the axis shows it
        fig.add_shape(type="line", x0=at, x1=at, y0=0, y1=1, yref="paper",
                      line=dict(dash="dash" if found else "dot", color=colour))
        fig.add_annotation(x=at, y=1, yref="paper", text=words,
                           showarrow=False, yanchor="bottom",
                           hovertext=plain("; ".join(sorted({a for a in group["annotation"] if a})) or words),
                           font=dict(color=colour, size=11))
    fig.update_layout(xaxis=dict(title=x_title), yaxis=dict(title="median time (s)", type="log"),
                      legend_title_text="size (band: 95% interval from the rounds)",
                      margin=dict(l=10, r=10, t=40, b=10), height=460)
    return fig


def geomean_chart(line: pd.DataFrame) -> go.Figure:
    """The geometric mean over cells of each run's median ÷ the first chosen run's, one line per
    benchmark and backend; 1 is no change."""
    fig = go.Figure()
    for (bench, backend), group in line.groupby(["benchmark", "backend"], sort=True):
        fig.add_trace(go.Scatter(x=group["started_at"], y=group["geomean"], mode="lines+markers",
                                 name=plain(f"{bench} · {backend}"), customdata=group[["run_id", "cells"]].to_numpy(),
                                 hovertemplate="run %{customdata[0]}: %{y:.3f}× over %{customdata[1]} cells"
                                               "<extra></extra>"))
    fig.add_hline(y=1.0, line=dict(color="grey", dash="dot"))
    fig.update_layout(xaxis=dict(title="run start"), yaxis=dict(title="geometric mean of time ÷ first run"),
                      legend_title_text="benchmark · backend", margin=dict(l=10, r=10, t=30, b=10), height=380)
    return fig


IMAGE_FORMATS = ("png", "svg")
# In a cold `.ci/run` (2 cores, four test workers, 2026-12-05) kaleido's page was not ready on the
# first try nor the second; each try starts a browser of its own.
IMAGE_ATTEMPTS = 4


class ChartImageError(RuntimeError):
    """A chart that cannot be drawn as an image here: says what to install."""


def image(figure: go.Figure, fmt: str, width: int = 1200, height: int = 700) -> bytes:
    """The chart as PNG (at twice the pixels, for print) or SVG, drawn by Plotly's kaleido in the
    system's Chromium (Debian's `chromium`; kaleido would otherwise fetch its own browser)."""
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"an image is one of {', '.join(IMAGE_FORMATS)}, not {fmt!r}")
    browser = os.environ.get("BROWSER_PATH") or shutil.which("chromium") or shutil.which("chromium-browser") \
        or shutil.which("google-chrome")
    if not browser:
        raise ChartImageError("chart images need Chromium: apt-get install chromium (or set BROWSER_PATH)")
    os.environ.setdefault("BROWSER_PATH", browser)
    for attempt in range(1, IMAGE_ATTEMPTS + 1):
        try:
            return figure.to_image(format=fmt, width=width, height=height, scale=2 if fmt == "png" else 1)
        except Exception as exc:  # noqa: BLE001 -- kaleido missing, the browser failing to start: one line
            # On a busy machine kaleido can call into its page before the page's own script has
            # loaded (a ReferenceError for `kaleido_scopes`, seen with two test workers on two
            # cores); a later try, in a browser of its own, finds it loaded. Anything else fails at once.
            if attempt < IMAGE_ATTEMPTS and "kaleido_scopes is not defined" in str(exc):
                time.sleep(0.5 * attempt)
                continue
            raise ChartImageError(f"could not draw the chart as {fmt.upper()}: {type(exc).__name__}: {exc}") from None
