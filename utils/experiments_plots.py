"""Figures for the open-problems lab (section 7), in the style of `utils.plotting`.

Every helper takes tensors (or lists of numbers), never modifies them (all go through
`plotly_utils.to_numpy`, which copies), and returns a plotly Figure, shown unless `show=False`.
Figures of feature directions and norms reuse `utils.plotting`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from plotly_utils import show_or_return, to_numpy

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def _finish(fig: go.Figure, title: str, xaxis: str, yaxis: str, show: bool, **layout: Any) -> go.Figure | None:
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis, template="simple_white", **layout)
    return show_or_return(fig, show)


def plot_distributions(
    groups: Mapping[str, Any],
    title: str,
    yaxis: str,
    reference: float | None = None,
    reference_label: str = "reference",
    show: bool = True,
) -> go.Figure | None:
    """A box with every point for each named group of numbers (e.g. one value per feature and instance).

    `reference`: an optional horizontal dashed line (e.g. what random directions would give).
    """
    fig = go.Figure()
    for i, (name, values) in enumerate(groups.items()):
        y = np.asarray(to_numpy(values), dtype=float).ravel()
        fig.add_trace(
            go.Box(
                y=y,
                name=name,
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker=dict(size=4),
                line=dict(color=_COLORS[i % len(_COLORS)]),
                showlegend=False,
            )
        )
    if reference is not None:
        fig.add_hline(
            y=reference,
            line_dash="dash",
            line_color="grey",
            annotation_text=reference_label,
            annotation_position="top left",
        )
    return _finish(fig, title, "", yaxis, show, height=420, width=700)


def plot_lines(
    x: Sequence[float],
    series: Mapping[str, Any],
    title: str,
    xaxis: str,
    yaxis: str,
    log_x: bool = False,
    log_y: bool = False,
    show: bool = True,
) -> go.Figure | None:
    """One line with markers per named series, all over the same x values."""
    fig = go.Figure()
    for i, (name, values) in enumerate(series.items()):
        fig.add_trace(
            go.Scatter(
                x=list(to_numpy(x)),
                y=np.asarray(to_numpy(values), dtype=float).ravel(),
                name=name,
                mode="lines+markers",
                line=dict(color=_COLORS[i % len(_COLORS)]),
            )
        )
    if log_x:
        fig.update_xaxes(type="log")
    if log_y:
        fig.update_yaxes(type="log")
    return _finish(fig, title, xaxis, yaxis, show, height=400, width=700)


def plot_functions(
    x: Any,
    curves: Mapping[str, Any],
    title: str,
    xaxis: str = "input x",
    yaxis: str = "output",
    dashed: Sequence[str] = (),
    show: bool = True,
) -> go.Figure | None:
    """Curves over one input axis (e.g. a model's output against the target it approximates)."""
    fig = go.Figure()
    x_np = np.asarray(to_numpy(x), dtype=float).ravel()
    for i, (name, y) in enumerate(curves.items()):
        fig.add_trace(
            go.Scatter(
                x=x_np,
                y=np.asarray(to_numpy(y), dtype=float).ravel(),
                name=name,
                mode="lines",
                line=dict(color=_COLORS[i % len(_COLORS)], dash="dash" if name in dashed else "solid"),
            )
        )
    return _finish(fig, title, xaxis, yaxis, show, height=400, width=700)


def plot_weight_heatmaps(
    weights: Sequence[Any],
    titles: Sequence[str],
    title: str,
    xaxis: str = "feature",
    yaxis: str = "neuron",
    show: bool = True,
) -> go.Figure | None:
    """Side-by-side heatmaps of 2D weight matrices (rows = neurons), one shared diverging colour scale."""
    mats = [np.asarray(to_numpy(w), dtype=float) for w in weights]
    if any(m.ndim != 2 for m in mats):
        raise ValueError(f"each weight matrix should be 2D, got shapes {[m.shape for m in mats]}")
    lim = max(float(np.abs(m).max()) for m in mats) or 1.0
    fig = make_subplots(rows=1, cols=len(mats), subplot_titles=list(titles), horizontal_spacing=0.06)
    for i, m in enumerate(mats):
        fig.add_trace(
            go.Heatmap(
                z=m,
                zmin=-lim,
                zmax=lim,
                colorscale="RdBu",
                reversescale=True,
                showscale=i == 0,
                colorbar=dict(title="weight"),
                hovertemplate="neuron %{y}, feature %{x}: %{z:.2f}<extra></extra>",
            ),
            row=1,
            col=i + 1,
        )
        fig.update_xaxes(title_text=xaxis, row=1, col=i + 1)
    fig.update_yaxes(title_text=yaxis, autorange="reversed", col=1)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title, template="simple_white", height=380, width=280 * len(mats) + 120)
    return show_or_return(fig, show)
