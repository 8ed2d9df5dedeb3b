"""Figures for feature absorption (section 5b). One helper per figure type; each takes tensors, never
modifies them, shows the figure and returns None, or returns it without showing when `show=False`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from plotly_utils import show_or_return, to_numpy


def _np(x: Any) -> np.ndarray:
    return np.asarray(to_numpy(x), dtype=float)


def plot_cooccurrence(
    cond_prob: Any, labels: Sequence[str], title: str = "P(column feature on | row feature on)", show: bool = True
) -> go.Figure | None:
    """[feats feats] conditional firing probabilities as an annotated heatmap."""
    z = _np(cond_prob)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(labels),
            y=list(labels),
            zmin=0,
            zmax=1,
            colorscale="Blues",
            text=np.round(z, 2),
            texttemplate="%{text}",
            colorbar=dict(title="probability"),
            hovertemplate="P(%{x} on | %{y} on) = %{z:.3f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", title_text="given this feature is on")
    fig.update_xaxes(title_text="probability this feature is on", side="top")
    fig.update_layout(title=title, height=460, width=560, template="simple_white", margin=dict(t=110))
    return show_or_return(fig, show)


def plot_decoder_cosines(
    cosines: dict[str, Any],
    labels: Sequence[str],
    title: str = "Decoder directions against true features (cosine)",
    show: bool = True,
) -> go.Figure | None:
    """{SAE name: [d_sae feats] cosines for one instance}: one heatmap per SAE (rows = latents)."""
    names = list(cosines)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.06)
    for col, name in enumerate(names, start=1):
        z = _np(cosines[name])
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=list(labels),
                zmin=-1,
                zmax=1,
                colorscale="RdBu",
                reversescale=True,
                showscale=col == len(names),
                colorbar=dict(title="cosine"),
                text=np.round(z, 2),
                texttemplate="%{text}",
                hovertemplate="latent %{y}, feature %{x}: %{z:.2f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_yaxes(title_text="latent" if col == 1 else None, autorange="reversed", dtick=1, row=1, col=col)
    fig.update_layout(title=title, height=420, width=max(380 * len(names) + 120, 620), template="simple_white")
    return show_or_return(fig, show)


def plot_parent_latent_firing(
    rates: dict[str, dict[str, float]],
    title: str = "How often the parent's latent fires, by which features are on",
    show: bool = True,
) -> go.Figure | None:
    """{SAE name: {situation: firing rate}}: grouped bars, one group per situation."""
    fig = go.Figure()
    for name, by_situation in rates.items():
        fig.add_trace(go.Bar(name=name, x=list(by_situation), y=list(by_situation.values())))
    fig.update_layout(
        title=title,
        barmode="group",
        yaxis=dict(title="fraction of examples where the latent fires", range=[0, 1.05]),
        xaxis=dict(title="features on in the example"),
        height=400,
        width=760,
        template="simple_white",
    )
    return show_or_return(fig, show)


def plot_absorption(
    absorption: dict[str, Any],
    title: str = "Absorption: parent and child on, parent's latent off, another latent carrying the parent",
    show: bool = True,
) -> go.Figure | None:
    """{SAE name: [inst parents] absorption fractions}: the mean as a bar, each instance (averaged over parents)
    as a dot."""
    names = list(absorption)
    per_inst = [_np(absorption[n]).mean(-1) for n in names]
    fig = go.Figure(go.Bar(x=names, y=[v.mean() for v in per_inst], name="mean", opacity=0.6))
    fig.add_trace(
        go.Scatter(
            x=[n for n, v in zip(names, per_inst, strict=True) for _ in v],
            y=np.concatenate(per_inst),
            mode="markers",
            marker=dict(color="black", size=6),
            name="one instance",
        )
    )
    fig.update_layout(
        title=title,
        yaxis=dict(title="absorption fraction", range=[0, 1.05]),
        height=420,
        width=680,
        template="simple_white",
    )
    return show_or_return(fig, show)
