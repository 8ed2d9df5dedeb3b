"""Helpers for section 3 (feature geometry): the sticky fractions, a warm-up schedule, summaries and figures.

Everything here takes tensors as they come out of a model and never modifies them. Plot helpers
return a plotly Figure and show it unless `show=False`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from jaxtyping import Float
from torch import Tensor

from plotly_utils import show_or_return, to_numpy
from utils.schedules import warmup_cosine_lr

# Dimensionalities of the configurations features settle into (see the notebook): a feature alone in
# a dimension (1), tetrahedron (3/4), triangle (2/3), antipodal pair (1/2), pentagon (2/5),
# square antiprism (3/8).
STICKY_FRACTIONS: dict[str, float] = {"1": 1.0, "3/4": 3 / 4, "2/3": 2 / 3, "1/2": 1 / 2, "2/5": 2 / 5, "3/8": 3 / 8}


def five_percent_warmup(step: int, steps: int) -> float:
    """The schedule this section trains with: `warmup_cosine_lr` with the first 5% of the steps as warm-up."""
    return warmup_cosine_lr(step, steps, warmup_steps=max(1, steps // 20))


def nearest_sticky_fraction(D: Tensor, fractions: Sequence[float] | None = None) -> tuple[Tensor, Tensor]:
    """For each value in D: the nearest sticky fraction and the distance to it (same shape as D)."""
    fr = torch.tensor(list(fractions or STICKY_FRACTIONS.values()), dtype=torch.float64)
    dist = (D.detach().double().cpu()[..., None] - fr).abs()
    best = dist.argmin(-1)
    return fr[best], dist.gather(-1, best[..., None]).squeeze(-1)


def share_near_sticky(D: Float[Tensor, "inst feats"], represented: Tensor, tol: float = 0.03) -> Float[Tensor, " inst"]:
    """Per instance: the share of represented features whose dimensionality is within `tol` of a sticky fraction."""
    _, dist = nearest_sticky_fraction(D)
    near = (dist <= tol) & represented.cpu()
    return near.sum(-1) / represented.cpu().sum(-1).clamp_min(1)


def plot_dimensionality(
    feature_probability: Float[Tensor, " inst"],
    dims_per_feature: Float[Tensor, " inst"],
    dimensionality: Float[Tensor, "inst feats"] | None = None,
    fractions: dict[str, float] | None = None,
    title: str = "Dimensions per feature against sparsity, with each feature's dimensionality",
    show: bool = True,
) -> go.Figure | None:
    """D* = d_hidden / ‖W‖²_F per instance as a line against 1/(1-S) = 1/p (log axis).

    Each feature's dimensionality is scattered at its instance's x (with a little horizontal jitter so
    overlapping points stay visible), and the sticky fractions are drawn as dotted lines.
    """
    p = np.asarray(to_numpy(feature_probability), dtype=float).ravel()
    dstar = np.asarray(to_numpy(dims_per_feature), dtype=float).ravel()
    if p.shape != dstar.shape:
        raise ValueError(f"one probability per instance expected: got {p.shape} and {dstar.shape}")
    x = 1 / p
    fig = go.Figure()
    if dimensionality is not None:
        D = np.asarray(to_numpy(dimensionality), dtype=float)
        if D.shape[0] != len(p):
            raise ValueError(f"dimensionality should be [inst feats] with inst={len(p)}, got {D.shape}")
        jitter = np.random.default_rng(0).uniform(-0.03, 0.03, size=D.shape)
        xs = x[:, None] * np.exp(jitter)
        fig.add_trace(
            go.Scatter(
                x=xs.ravel(),
                y=D.ravel(),
                mode="markers",
                name="feature dimensionality",
                marker=dict(size=5, color="rgba(31,119,180,0.35)"),
                hovertemplate="1/(1-S) %{x:.2f}<br>dimensionality %{y:.3f}<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=dstar,
            mode="lines+markers",
            name="dimensions per feature d/‖W‖²_F",
            line=dict(color="black", width=2),
            marker=dict(size=6),
        )
    )
    for label, value in (fractions or STICKY_FRACTIONS).items():
        fig.add_hline(
            y=value,
            line_dash="dot",
            line_color="#d62728",
            opacity=0.6,
            annotation_text=label,
            annotation_position="right",
        )
    fig.update_xaxes(type="log", title_text="1 / (1 - S)  (sparser →)")
    fig.update_yaxes(title_text="dimensions", range=[-0.02, 1.08])
    fig.update_layout(title=title, template="simple_white", height=480, width=850, legend=dict(x=0.6, y=0.98))
    return show_or_return(fig, show)


def plot_dimensionality_histogram(
    dimensionality: Float[Tensor, "inst feats"],
    represented: Tensor,
    fractions: dict[str, float] | None = None,
    title: str = "Dimensionality of every represented feature, all instances",
    show: bool = True,
) -> go.Figure | None:
    """Histogram of the dimensionalities of represented features, sticky fractions marked."""
    D = np.asarray(to_numpy(dimensionality), dtype=float)
    mask = np.asarray(to_numpy(represented), dtype=bool)
    fig = go.Figure(
        go.Histogram(x=D[mask], xbins=dict(start=0, end=1.02, size=0.01), marker_color="#1f77b4", name="features")
    )
    for label, value in (fractions or STICKY_FRACTIONS).items():
        fig.add_vline(x=value, line_dash="dot", line_color="#d62728", annotation_text=label)
    fig.update_xaxes(title_text="feature dimensionality", range=[0, 1.05])
    fig.update_yaxes(title_text="number of features")
    fig.update_layout(title=title, template="simple_white", height=360, width=850, showlegend=False)
    return show_or_return(fig, show)
