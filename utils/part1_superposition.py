"""Figure helpers for toy models of superposition (one helper per figure type).

Helpers take tensors as they come out of a model, never modify them (everything goes through
`plotly_utils.to_numpy`, which copies). They show the figure, or with `show=False` return it instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from jaxtyping import Float
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots
from torch import Tensor

from plotly_utils import show_or_return, to_numpy


def _grid(n: int, max_cols: int) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _feature_colors(colors: Any, n_features: int) -> list[str]:
    """Per-feature colours: a list of CSS colours, or numbers in [0, 1] mapped to a dark-to-light scale."""
    if colors is None:
        return ["#1f77b4"] * n_features
    values = to_numpy(colors)
    if isinstance(values, list | tuple) and values and isinstance(values[0], str):
        return list(values)
    values = np.asarray(values, dtype=float).ravel()
    span = values.max() - values.min()
    scaled = (values - values.min()) / span if span > 0 else np.ones_like(values)
    return sample_colorscale("Viridis", list(1 - 0.85 * scaled))  # important = dark


def plot_features_in_2d(
    W: Float[Tensor, "inst 2 feats"],
    colors: Any = None,
    titles: Sequence[str] | None = None,
    hidden: Float[Tensor, "batch inst 2"] | None = None,
    title: str | None = None,
    max_cols: int = 5,
    show: bool = True,
) -> go.Figure | None:
    """One panel per instance: each feature's column Wᵢ as an arrow from the origin.

    `colors`: per-feature CSS colours or numbers (e.g. importance; larger = darker).
    `hidden`: optional hidden vectors h = Wx of a batch, drawn as grey points under the arrows.
    """
    W_np = np.asarray(to_numpy(W))
    if W_np.ndim != 3 or W_np.shape[1] != 2:
        raise ValueError(f"W should have shape [inst, 2, feats], got {W_np.shape}")
    n_inst, _, n_feats = W_np.shape
    rows, cols = _grid(n_inst, max_cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles) if titles else None)
    feature_colors = _feature_colors(colors, n_feats)
    h_np = np.asarray(to_numpy(hidden)) if hidden is not None else None
    lim = 1.1 * max(1.0, float(np.linalg.norm(W_np, axis=1).max()))
    for k in range(n_inst):
        row, col = k // cols + 1, k % cols + 1
        if h_np is not None:
            fig.add_trace(
                go.Scatter(
                    x=h_np[:, k, 0],
                    y=h_np[:, k, 1],
                    mode="markers",
                    marker=dict(size=3, color="#bbbbbb"),
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=row,
                col=col,
            )
        for i in range(n_feats):
            x, y = W_np[k, :, i]
            fig.add_trace(
                go.Scatter(
                    x=[0, x],
                    y=[0, y],
                    mode="lines+markers",
                    line=dict(color=feature_colors[i], width=2),
                    marker=dict(size=[0, 7]),
                    name=f"feature {i}",
                    showlegend=False,
                    hovertemplate=f"feature {i}<br>W = ({x:.2f}, {y:.2f})<extra></extra>",
                ),
                row=row,
                col=col,
            )
    fig.update_xaxes(range=[-lim, lim], showticklabels=False, zeroline=True)
    fig.update_yaxes(range=[-lim, lim], showticklabels=False, zeroline=True, scaleanchor="x", scaleratio=1)
    for k in range(1, n_inst):  # keep every panel square
        fig.update_yaxes(scaleanchor=f"x{k + 1}", row=k // cols + 1, col=k % cols + 1)
    fig.update_layout(title=title, height=250 * rows + 60, width=230 * cols + 60, template="simple_white")
    return show_or_return(fig, show)


def feature_norms_and_superposition(W: Float[Tensor, "inst d feats"]) -> tuple[np.ndarray, np.ndarray]:
    """Per feature: ‖Wᵢ‖ and Σ_{j≠i} (Ŵᵢ·Wⱼ)² (0 = a dimension to itself). Both [inst feats] numpy arrays."""
    W_np = np.asarray(to_numpy(W), dtype=np.float64)
    norms = np.linalg.norm(W_np, axis=1)
    W_hat = W_np / np.maximum(norms[:, None, :], 1e-8)
    overlaps = np.einsum("kdi,kdj->kij", W_hat, W_np) ** 2
    superposition = overlaps.sum(-1) - np.einsum("kii->ki", overlaps)
    return norms, superposition


def plot_feature_norms_and_superposition(
    W: Float[Tensor, "inst d feats"],
    titles: Sequence[str] | None = None,
    title: str = "Feature norms ‖Wᵢ‖ (bar length) and superposition Σⱼ≠ᵢ (Ŵᵢ·Wⱼ)² (colour)",
    show: bool = True,
) -> go.Figure | None:
    """Horizontal bars per instance: one per feature (in index order), length = norm, colour = superposition."""
    norms, superposition = feature_norms_and_superposition(W)
    n_inst, n_feats = norms.shape
    fig = make_subplots(rows=1, cols=n_inst, subplot_titles=list(titles) if titles else None, shared_yaxes=True)
    for k in range(n_inst):
        fig.add_trace(
            go.Bar(
                x=norms[k],
                y=np.arange(n_feats),
                orientation="h",
                marker=dict(
                    color=superposition[k],
                    colorscale="Viridis",
                    cmin=0,
                    cmax=1,
                    colorbar=dict(title="superposition") if k == 0 else None,
                    showscale=k == 0,
                ),
                hovertemplate="feature %{y}<br>norm %{x:.2f}<br>superposition %{marker.color:.2f}<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=k + 1,
        )
    fig.update_yaxes(autorange="reversed", title_text="feature (most important at top)", col=1)
    fig.update_xaxes(range=[0, 1.3])
    fig.update_layout(
        title=title, height=max(400, 6 * n_feats + 120), width=220 * n_inst + 120, template="simple_white", bargap=0.1
    )
    return show_or_return(fig, show)
