"""Plotly figure builders: one parameterised builder per kind of chart."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

HOVER_COLUMNS = ["size", "time_median_s", "time_iqr_s", "samples", "peak_mem_bytes", "flops", "gflops", "gbps"]


def scaling_chart(frame: pd.DataFrame, x: str, y: str, *, x_title: str, y_title: str,
                  error: str | None = None, log: bool = True) -> go.Figure:
    """One line per method and backend; baselines dashed; `error` as ± half-width bars.

    A `beside` column, where present, names a second machine's rows: their lines are
    dotted, with open markers, and named after it."""
    fig = go.Figure()
    frame = frame.assign(beside=frame["beside"].fillna("") if "beside" in frame else "")
    for (beside, method, backend), line in frame.sort_values(x).groupby(["beside", "method", "backend"], sort=True):
        baseline = bool(line["is_baseline"].iloc[0])
        name = f"{method} · {backend}" + (f" · {beside}" if beside else "")
        fig.add_trace(go.Scatter(
            x=line[x], y=line[y], name=name, mode="lines+markers",
            line=dict(dash="dot" if beside else "dash" if baseline else "solid"),
            marker=dict(symbol="circle-open" if beside else "circle"),
            error_y=dict(type="data", array=line[error] / 2, visible=True) if error else None,
            customdata=line[[c for c in HOVER_COLUMNS if c in line]].to_numpy(),
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
            x=group["intensity"], y=group["gflops"], mode="markers", name=f"{benchmark} · {role}",
            marker=dict(symbol="circle" if role == "hadamard" else "diamond-open", size=8),
            customdata=group[["method", "backend", "size"]].to_numpy(),
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
