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

from plotly_utils import MAX_WIDTH, show_or_return, to_numpy

PANEL_PX = 200  # side of one square panel in the 2D feature plots, when the width allows


def _grid(n: int, max_cols: int) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _importance_scale(values: np.ndarray) -> list[list]:
    """The colour scale `_feature_colors` samples, as a plotly colorscale over the values' range (important = dark)."""
    return [[s, sample_colorscale("Viridis", [1 - 0.85 * s])[0]] for s in np.linspace(0, 1, 11)]


def _feature_colors(colors: Any, n_features: int) -> list[str]:
    """Per-feature colours: a list of CSS colours, or numbers mapped to a dark (large) to light (small) scale."""
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
    color_label: str = "importance",
    legend: Sequence[str] | None = None,
) -> go.Figure | None:
    """One panel per instance: each feature's column Wᵢ as an arrow from the origin.

    `colors`: per-feature CSS colours, or numbers (e.g. importance; larger = darker) shown on a colour bar titled
    `color_label`. `legend`: a name per feature (features that share a name share a legend entry, e.g. a pair).
    `hidden`: optional hidden vectors h = Wx of a batch, drawn as grey points under the arrows.
    Every panel has the same axes (a range that covers every arrow and point), so panels can be compared.
    """
    W_np = np.asarray(to_numpy(W))
    if W_np.ndim != 3 or W_np.shape[1] != 2:
        raise ValueError(f"W should have shape [inst, 2, feats], got {W_np.shape}")
    n_inst, _, n_feats = W_np.shape
    rows, cols = _grid(n_inst, max_cols)
    side = min(PANEL_PX, (MAX_WIDTH - 150) // cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=list(titles) if titles else None,
        horizontal_spacing=min(0.06, 0.3 / cols),
        vertical_spacing=min(0.12, 0.5 / rows),
    )
    feature_colors = _feature_colors(colors, n_feats)
    h_np = np.asarray(to_numpy(hidden)) if hidden is not None else None
    reach = [1.0, float(np.linalg.norm(W_np, axis=1).max())]
    if h_np is not None:
        reach.append(float(np.abs(h_np).max()))
    lim = 1.1 * max(reach)
    names = list(legend) if legend is not None else None
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
            name = names[i] if names else f"feature {i}"
            fig.add_trace(
                go.Scatter(
                    x=[0, x],
                    y=[0, y],
                    mode="lines+markers",
                    line=dict(color=feature_colors[i], width=2),
                    marker=dict(size=[0, 7]),
                    name=name,
                    legendgroup=name,
                    showlegend=bool(names) and k == 0 and name not in names[:i],
                    hovertemplate=f"feature {i}<br>W = ({x:.2f}, {y:.2f})<extra></extra>",
                ),
                row=row,
                col=col,
            )
    values = to_numpy(colors) if colors is not None else None
    if values is not None and not (isinstance(values, list | tuple) and values and isinstance(values[0], str)):
        values = np.asarray(values, dtype=float).ravel()
        fig.add_trace(  # an invisible trace that carries the colour bar
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                showlegend=False,
                hoverinfo="skip",
                marker=dict(
                    color=[float(values.min())],
                    cmin=float(values.min()),
                    cmax=float(values.max()) if values.max() > values.min() else float(values.min()) + 1,
                    colorscale=_importance_scale(values),
                    showscale=True,
                    colorbar=dict(title=color_label, thickness=12, len=min(1.0, 0.5 + 0.25 * rows)),
                ),
            ),
            row=1,
            col=1,
        )
    # constrain="domain": a square panel shrinks its plotting area instead of stretching one axis's range
    tick = dict(
        range=[-lim, lim], showticklabels=True, tickfont=dict(size=9), nticks=5, zeroline=True, constrain="domain"
    )
    fig.update_xaxes(**tick)
    fig.update_yaxes(**tick)
    for k in range(n_inst):  # keep every panel square
        fig.update_yaxes(scaleanchor=f"x{k + 1 if k else ''}", scaleratio=1, row=k // cols + 1, col=k % cols + 1)
    fig.update_xaxes(title_text="hidden dim 0", title_font=dict(size=11), row=rows, col=1)
    fig.update_yaxes(title_text="hidden dim 1", title_font=dict(size=11), col=1)
    fig.update_annotations(font_size=12)  # the subplot titles
    fig.update_layout(
        title=title,
        height=(side + 50) * rows + 90,
        width=min(MAX_WIDTH, side * cols + 150),
        template="simple_white",
        legend=dict(x=1.02, y=1, font=dict(size=11)),
        margin=dict(t=80, l=60, r=20),
    )
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
    cmax: float | None = None,
) -> go.Figure | None:
    """Horizontal bars per instance: one per feature (in index order), length = norm, colour = superposition.

    The panels share the norm axis and one colour scale (0 to the largest superposition in the figure, or `cmax`
    if that is larger), so they can be compared: a brighter bar means more interference, whichever the panel.
    """
    norms, superposition = feature_norms_and_superposition(W)
    n_inst, n_feats = norms.shape
    top = max(1.0, float(superposition.max()), cmax or 0.0)
    fig = make_subplots(
        rows=1,
        cols=n_inst,
        subplot_titles=list(titles) if titles else None,
        shared_yaxes=True,
        horizontal_spacing=min(0.04, 0.2 / n_inst),
    )
    for k in range(n_inst):
        fig.add_trace(
            go.Bar(
                x=norms[k],
                y=np.arange(n_feats),
                orientation="h",
                marker=dict(color=superposition[k], coloraxis="coloraxis", line_width=0),
                hovertemplate="feature %{y}<br>norm %{x:.2f}<br>superposition %{marker.color:.2f}<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=k + 1,
        )
    fig.update_yaxes(autorange="reversed", title_text="feature (most important at top)", col=1)
    fig.update_xaxes(range=[0, 1.05 * max(1.0, float(norms.max()))], title_text="‖Wᵢ‖", nticks=4)
    fig.update_annotations(font_size=12)
    fig.update_layout(
        title=title,
        coloraxis=dict(colorscale="Viridis", cmin=0, cmax=top, colorbar=dict(title="superposition", thickness=12)),
        height=max(400, 6 * n_feats + 140),
        width=min(MAX_WIDTH, 150 * n_inst + 170),
        template="simple_white",
        bargap=0.1,
    )
    return show_or_return(fig, show)


# --------------------------------------------------------------------------------------------
# Geometry counts: what the panels show, counted over every instance
# --------------------------------------------------------------------------------------------
PAIR_KINDS = ("antipodal", "orthogonal", "other", "dropped")


def n_represented(W: Float[Tensor, "inst d feats"], min_norm: float = 0.5) -> np.ndarray:
    """Number of features per instance whose direction has norm at least `min_norm` ([inst])."""
    return (np.linalg.norm(np.asarray(to_numpy(W), dtype=np.float64), axis=1) >= min_norm).sum(-1)


def geometry_2d(W: Float[Tensor, "inst 2 feats"], min_norm: float = 0.5) -> list[dict[str, Any]]:
    """Per instance of a 2D model: features kept (norm >= `min_norm`), antipodal pairs among them (cosine < -0.9),
    whether two kept features are orthogonal (|cosine| < 0.1), and the largest deviation (degrees) of the angles
    between neighbouring kept directions from equal spacing (360° / kept)."""
    W_np = np.asarray(to_numpy(W), dtype=np.float64)
    out = []
    for Wk in W_np:
        norms = np.linalg.norm(Wk, axis=0)
        kept = np.nonzero(norms >= min_norm)[0]
        unit = Wk[:, kept] / norms[kept]
        cos = unit.T @ unit
        upper = np.triu_indices(len(kept), 1)
        angles = np.sort(np.arctan2(Wk[1, kept], Wk[0, kept]))
        gaps = np.degrees(np.diff(np.append(angles, angles[:1] + 2 * np.pi))) if len(kept) > 1 else np.array([360.0])
        out.append(
            {
                "kept": [int(i) for i in kept],
                "antipodal_pairs": int((cos[upper] < -0.9).sum()),
                "orthogonal_pairs": int((np.abs(cos[upper]) < 0.1).sum()),
                "spacing_error": float(np.abs(gaps - 360 / max(len(kept), 1)).max()),
            }
        )
    return out


def pair_cosines(W: Float[Tensor, "inst d feats"]) -> np.ndarray:
    """Cosine between the directions of features 2j and 2j + 1 ([inst pairs])."""
    W_np = np.asarray(to_numpy(W), dtype=np.float64)
    W_hat = W_np / np.maximum(np.linalg.norm(W_np, axis=1, keepdims=True), 1e-8)
    return (W_hat[..., 0::2] * W_hat[..., 1::2]).sum(1)


def pair_geometry(W: Float[Tensor, "inst d feats"], min_norm: float = 0.5) -> dict[str, int]:
    """How many pairs (features 2j, 2j + 1 of every instance) are antipodal (cosine < -0.9), orthogonal
    (|cosine| < 0.15), something else, or dropped (a feature with norm < `min_norm`)."""
    W_np = np.asarray(to_numpy(W), dtype=np.float64)
    n_pairs = W_np.shape[-1] // 2
    norms = np.linalg.norm(W_np, axis=1)[..., : 2 * n_pairs]
    cos = pair_cosines(W_np[..., : 2 * n_pairs])
    dropped = (norms[..., 0::2] < min_norm) | (norms[..., 1::2] < min_norm)
    antipodal = ~dropped & (cos < -0.9)
    orthogonal = ~dropped & (np.abs(cos) < 0.15)
    return {
        "antipodal": int(antipodal.sum()),
        "orthogonal": int(orthogonal.sum()),
        "other": int((~dropped & ~antipodal & ~orthogonal).sum()),
        "dropped": int(dropped.sum()),
    }


def plot_pair_geometry(
    counts: dict[str, dict[str, int]],
    title: str = "How pairs of features are placed, over every instance",
    show: bool = True,
) -> go.Figure | None:
    """Stacked bars, one per condition: the share of pairs that are antipodal, orthogonal, other or dropped."""
    colors = {"antipodal": "#d62728", "orthogonal": "#1f77b4", "other": "#bbbbbb", "dropped": "#f2f2f2"}
    conditions = list(counts)
    totals = [max(1, sum(counts[c].values())) for c in conditions]
    fig = go.Figure()
    for kind in PAIR_KINDS:
        shares = [counts[c].get(kind, 0) / t for c, t in zip(conditions, totals, strict=True)]
        fig.add_trace(
            go.Bar(
                x=conditions,
                y=shares,
                name=kind,
                marker=dict(color=colors[kind], line=dict(color="#888888", width=0.5)),
                text=[str(counts[c].get(kind, 0)) if counts[c].get(kind, 0) else "" for c in conditions],
                textposition="inside",
                hovertemplate=f"{kind}: %{{y:.0%}}<extra></extra>",
            )
        )
    fig.update_layout(
        title=title,
        barmode="stack",
        template="simple_white",
        height=420,
        width=min(MAX_WIDTH, 170 * len(conditions) + 220),
        yaxis=dict(title="share of pairs", range=[0, 1], tickformat=".0%"),
        xaxis=dict(title="features, sparsity"),
        legend=dict(title="pair placed"),
    )
    return show_or_return(fig, show)
