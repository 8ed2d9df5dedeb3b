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
MAX_WIDTH = 1000  # px: figures wider than this overflow a notebook column


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
    lim = 1.15 * max(1.0, float(np.linalg.norm(W_f, axis=1).max()), float(np.abs(h_np[:, insts]).max(initial=0)))

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
        x=0.0,
        len=1.0,
        y=0.0,
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
        direction="left",
        x=0.0,
        y=0.0,
        xanchor="right",
        yanchor="top",
        pad=dict(r=10, t=55),
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
        height=470,
        width=min(MAX_WIDTH, 200 * n + 330),
        margin=dict(l=150),
        template="simple_white",
        legend=dict(font=dict(size=10), tracegroupgap=2),
    )
    return show_or_return(fig, show)


def dead_at_end(log: Any, last_logs: int = 5) -> np.ndarray:
    """[inst d_sae] bool: the latents that fired on no example in the last `last_logs` logged intervals of a
    training log (an `utils.sae_training.SAETrainingLog`; 250 steps at the default log_freq of 50)."""
    fa = as_array(log.frac_active_tensor())
    return (fa[-last_logs:] == 0).all(0)


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
    return plot_frac_active_runs(
        {"": (frac_active, steps, resample_steps)}, feature_probability, instances, title=title, show=show
    )


def plot_frac_active_runs(
    runs: dict[str, tuple[Any, Sequence[int], Sequence[int]]],
    feature_probability: float | None = None,
    instances: Sequence[int] | None = None,
    title: str = "Fraction of examples on which each latent fires",
    show: bool = True,
) -> go.Figure | None:
    """One row per training run, one column per instance, all panels on the same axes (so runs compare).

    runs: {name: (frac_active [n_logs inst d_sae], logged steps, resampling steps)}. A dashed line marks the
    true feature probability; dotted vertical lines mark the run's resampling steps.
    """
    arrays = {name: as_array(fa) for name, (fa, _, _) in runs.items()}
    for name, fa in arrays.items():
        if fa.ndim != 3:
            raise ValueError(f"frac_active of {name!r} should be [n_logs inst d_sae], got {fa.shape}")
    first = next(iter(arrays.values()))
    insts = list(instances) if instances is not None else list(range(min(4, first.shape[1])))
    names = list(runs)
    titles = [f"instance {k}" if row == 0 else "" for row in range(len(names)) for k in insts]
    fig = make_subplots(
        rows=len(names),
        cols=len(insts),
        subplot_titles=titles,
        shared_xaxes=True,
        shared_yaxes=True,
        vertical_spacing=0.08,
        horizontal_spacing=0.04,
    )
    top = max(float(fa[:, insts].max(initial=0)) for fa in arrays.values())
    for row, name in enumerate(names, start=1):
        fa, (_, steps, resample_steps) = arrays[name], runs[name]
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
                        line=dict(color=LATENT_COLORS[j % len(LATENT_COLORS)], width=1.5),
                        showlegend=row == 1 and col == 1,
                    ),
                    row=row,
                    col=col,
                )
            if feature_probability is not None:
                fig.add_hline(y=feature_probability, line=dict(dash="dash", color="black", width=1), row=row, col=col)
            for s in resample_steps:
                fig.add_vline(x=s, line=dict(dash="dot", color="#888", width=1.5), row=row, col=col)
    # legend entries for the reference lines (shapes have none)
    if feature_probability is not None:
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="lines",
                line=dict(dash="dash", color="black", width=1),
                name=f"feature probability ({feature_probability:g})",
            )
        )
    if any(len(r[2]) for r in runs.values()):
        fig.add_trace(
            go.Scatter(
                x=[None], y=[None], mode="lines", line=dict(dash="dot", color="#888", width=1.5), name="resampling"
            )
        )
    fig.update_xaxes(title_text="training step", row=len(names))
    fig.update_yaxes(range=[-0.02 * top, 1.05 * top])
    for row, name in enumerate(names, start=1):
        label = f"{name}<br>fraction active" if name else "fraction active"
        fig.update_yaxes(title_text=label, row=row, col=1)
    width = min(MAX_WIDTH, 240 * len(insts) + 260)
    fig.update_layout(title=title, height=130 + 230 * len(names), width=width, template="simple_white")
    return show_or_return(fig, show)
