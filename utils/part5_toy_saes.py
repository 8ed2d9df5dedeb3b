"""Section 5's given figures: SAE directions animated over training, and how often each latent fires.

Every helper takes tensors, never modifies them (all go through `plotly_utils.to_numpy`, which copies),
shows the figure and returns None, or returns it without showing when `show=False`. Saved with
`plotly_utils.save_html`, the figures (animations included) work offline. The toy model's feature
directions alone are drawn with the shared `utils.part1_superposition.plot_features_in_2d`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from plotly_utils import as_array, show_or_return

LATENT_COLORS = qualitative.Plotly + qualitative.D3


def _square_axes(fig: go.Figure, n_panels: int, lim: float) -> None:
    fig.update_xaxes(range=[-lim, lim], showticklabels=False, zeroline=True)
    fig.update_yaxes(range=[-lim, lim], showticklabels=False, zeroline=True)
    for k in range(n_panels):
        suffix = "" if k == 0 else str(k + 1)
        fig.update_yaxes(scaleanchor=f"x{suffix}", scaleratio=1, row=1, col=k + 1)


def animate_sae_directions(
    W_features: Any,
    h: Any,
    W_dec_frames: Any,
    frame_steps: Sequence[int],
    W_enc: Any = None,
    instances: Sequence[int] | None = None,
    title: str = "SAE decoder directions over training",
    show: bool = True,
) -> go.Figure | None:
    """Animated 2D view over training: per instance, the true features (grey lines), hidden activations
    (dots), each latent's decoder direction (coloured arrow, unit length) and, if `W_enc` is given, its
    encoder direction (same colour, dotted).

    W_features: [inst 2 feats]; h: [batch inst 2]; W_dec_frames: [frames inst d_sae 2] (or a list of
    [inst d_sae 2]); W_enc: [frames inst 2 d_sae] (or a list); frame_steps: the training step of each frame.
    """
    W_f, h_np = as_array(W_features), as_array(h)
    dec = (
        as_array(np.stack([as_array(w) for w in W_dec_frames]))
        if isinstance(W_dec_frames, list)
        else as_array(W_dec_frames)
    )
    enc = None
    if W_enc is not None:
        enc = as_array(np.stack([as_array(w) for w in W_enc])) if isinstance(W_enc, list) else as_array(W_enc)
    if dec.ndim != 4 or dec.shape[-1] != 2:
        raise ValueError(f"W_dec_frames should be [frames inst d_sae 2], got {dec.shape}")
    if len(frame_steps) != dec.shape[0]:
        raise ValueError(f"{len(frame_steps)} frame steps for {dec.shape[0]} frames")
    insts = list(instances) if instances is not None else list(range(min(4, dec.shape[1])))
    n, d_sae = len(insts), dec.shape[2]
    lim = 1.15 * max(1.0, float(np.linalg.norm(W_f, axis=1).max()))

    def frame_traces(f: int) -> list[go.Scatter]:
        traces = []
        for k in insts:
            for j in range(d_sae):
                color = LATENT_COLORS[j % len(LATENT_COLORS)]
                traces.append(
                    go.Scatter(
                        x=[0, dec[f, k, j, 0]],
                        y=[0, dec[f, k, j, 1]],
                        mode="lines+markers",
                        line=dict(color=color, width=3),
                        marker=dict(size=[0, 8]),
                        name=f"latent {j} decoder",
                        legendgroup=f"latent {j}",
                        showlegend=k == insts[0],
                    )
                )
                if enc is not None:
                    e = enc[f, k, :, j]
                    e = e / max(float(np.linalg.norm(e)), 1e-8)
                    traces.append(
                        go.Scatter(
                            x=[0, e[0]],
                            y=[0, e[1]],
                            mode="lines",
                            line=dict(color=color, width=2, dash="dot"),
                            name=f"latent {j} encoder",
                            legendgroup=f"latent {j}",
                            showlegend=False,
                        )
                    )
        return traces

    fig = make_subplots(rows=1, cols=n, subplot_titles=[f"instance {k}" for k in insts])
    static = 0
    for col, k in enumerate(insts, start=1):
        fig.add_trace(
            go.Scatter(
                x=h_np[:, k, 0],
                y=h_np[:, k, 1],
                mode="markers",
                marker=dict(size=3, color="#bbb"),
                name="hidden activations",
                showlegend=col == 1,
                hoverinfo="skip",
            ),
            row=1,
            col=col,
        )
        for i in range(W_f.shape[2]):
            fig.add_trace(
                go.Scatter(
                    x=[0, W_f[k, 0, i]],
                    y=[0, W_f[k, 1, i]],
                    mode="lines",
                    line=dict(color="#555", width=6),
                    opacity=0.35,
                    name="true features",
                    legendgroup="features",
                    showlegend=col == 1 and i == 0,
                ),
                row=1,
                col=col,
            )
        static += 1 + W_f.shape[2]
    per_inst = d_sae * (2 if enc is not None else 1)
    first = frame_traces(0)
    for idx, trace in enumerate(first):
        fig.add_trace(trace, row=1, col=idx // per_inst + 1)
    animated = list(range(static, static + len(first)))
    fig.frames = [
        go.Frame(data=frame_traces(f), traces=animated, name=str(frame_steps[f])) for f in range(dec.shape[0])
    ]
    slider = dict(
        active=0,
        currentvalue=dict(prefix="step "),
        pad=dict(t=40),
        steps=[
            dict(
                method="animate",
                label=str(s),
                args=[[str(s)], dict(mode="immediate", frame=dict(duration=0), transition=dict(duration=0))],
            )
            for s in frame_steps
        ],
    )
    play = dict(
        type="buttons",
        showactive=False,
        x=0.0,
        y=-0.12,
        xanchor="left",
        buttons=[
            dict(
                label="▶ play",
                method="animate",
                args=[None, dict(frame=dict(duration=120, redraw=True), fromcurrent=True, transition=dict(duration=0))],
            ),
            dict(
                label="❚❚ pause",
                method="animate",
                args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate")],
            ),
        ],
    )
    _square_axes(fig, n, lim)
    fig.update_layout(
        title=title,
        sliders=[slider],
        updatemenus=[play],
        height=430,
        width=240 * n + 220,
        template="simple_white",
        legend=dict(font=dict(size=10)),
    )
    return show_or_return(fig, show)


def plot_frac_active(
    frac_active: Any,
    steps: Sequence[int],
    feature_probability: float | None = None,
    resample_steps: Sequence[int] = (),
    instances: Sequence[int] | None = None,
    title: str = "Fraction of examples on which each latent fires",
    show: bool = True,
) -> go.Figure | None:
    """Fraction of examples on which each latent fires, over training: frac_active [n_logs inst d_sae].

    A dashed line marks the true feature probability; dotted vertical lines mark resampling steps.
    """
    fa = as_array(frac_active)
    if fa.ndim != 3:
        raise ValueError(f"frac_active should be [n_logs inst d_sae], got {fa.shape}")
    insts = list(instances) if instances is not None else list(range(min(4, fa.shape[1])))
    fig = make_subplots(rows=1, cols=len(insts), subplot_titles=[f"instance {k}" for k in insts], shared_yaxes=True)
    x = list(steps)
    for col, k in enumerate(insts, start=1):
        for j in range(fa.shape[2]):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=fa[:, k, j],
                    mode="lines",
                    name=f"latent {j}",
                    legendgroup=str(j),
                    line=dict(color=LATENT_COLORS[j % len(LATENT_COLORS)]),
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
        if feature_probability is not None:
            fig.add_hline(
                y=feature_probability,
                line=dict(dash="dash", color="black"),
                row=1,
                col=col,
                annotation_text="feature probability" if col == 1 else None,
            )
        for s in resample_steps:
            fig.add_vline(x=s, line=dict(dash="dot", color="#999"), row=1, col=col)
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text="fraction of examples active", col=1)
    fig.update_layout(title=title, height=360, width=260 * len(insts) + 160, template="simple_white")
    return show_or_return(fig, show)
