"""Helpers for section 2 (superposition in a privileged basis): neuron statistics and their figures.

Everything here takes tensors as they come out of a model and never modifies them. Plot helpers
return a plotly Figure and show it unless `show=False`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from jaxtyping import Float
from plotly.subplots import make_subplots
from torch import Tensor

from plotly_utils import MAX_WIDTH, hline, show_or_return, to_numpy


def _check_weights(W: Tensor, name: str = "W") -> None:
    if not isinstance(W, Tensor) or W.ndim != 3:
        shape = tuple(W.shape) if isinstance(W, Tensor) else type(W).__name__
        raise ValueError(f"{name} should be a tensor of shape [inst, neurons, feats], got {shape}")


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------
def neuron_monosemanticity(
    W: Float[Tensor, "inst neurons feats"], min_norm: float = 0.1
) -> Float[Tensor, "inst neurons"]:
    """Share of each neuron's squared input weight that goes to its strongest feature.

    1 means the neuron reads a single feature; 1/k means it reads k features equally. A neuron whose
    weight vector has norm below `min_norm` is dead and gets 0.
    """
    _check_weights(W)
    W = W.detach().float()
    sq = W**2
    total = sq.sum(-1)
    share = sq.max(-1).values / total.clamp_min(1e-12)
    return torch.where(total.sqrt() >= min_norm, share, torch.zeros_like(share))


def count_monosemantic(
    W: Float[Tensor, "inst neurons feats"], threshold: float = 0.9, min_norm: float = 0.1
) -> Float[Tensor, " inst"]:
    """Number of live neurons per instance whose strongest feature holds >= `threshold` of the squared weight."""
    return (neuron_monosemanticity(W, min_norm) >= threshold).sum(-1)


def sort_neurons(W: Float[Tensor, "inst neurons feats"]) -> Tensor:
    """A permutation of the neurons of each instance ([inst neurons] indices).

    Neurons are ordered by their strongest feature (feature 0 first), ties by how strongly they read
    it, so a monosemantic model looks like a diagonal and polysemantic neurons stand out.
    """
    _check_weights(W)
    W = W.detach().float().cpu()
    top = W.abs().argmax(-1)
    strength = W.abs().max(-1).values
    key = top.double() * 1e3 - strength.double() / (strength.max() + 1e-12)
    return key.argsort(-1)


def sign_pairs(
    W: Float[Tensor, "inst neurons feats"], threshold: float = 0.9, min_norm: float = 0.1
) -> list[list[int]]:
    """Per instance, the features read by two monosemantic neurons of opposite signs (the pair ReLU(x) + ReLU(-x))."""
    _check_weights(W)
    mono = (neuron_monosemanticity(W, min_norm) >= threshold).cpu()
    W = W.detach().float().cpu()
    top = W.abs().argmax(-1)
    sign = torch.sign(W.gather(-1, top.unsqueeze(-1)).squeeze(-1))
    out = []
    for k in range(W.shape[0]):
        features = {int(f) for f, s_ in zip(top[k][mono[k]], sign[k][mono[k]], strict=True) if s_ > 0}
        negative = {int(f) for f, s_ in zip(top[k][mono[k]], sign[k][mono[k]], strict=True) if s_ < 0}
        out.append(sorted(features & negative))
    return out


@torch.no_grad()
def abs_explained(model: torch.nn.Module, n_examples: int = 50_000) -> Float[Tensor, "inst feats"]:
    """Per instance and feature, the share of the variance of |x| the model's output explains, on a fresh batch.

    1 means |x| is computed; about 1/2 means one sign of x is (ReLU(x) alone explains half of the variance of |x|
    for x symmetric around 0); 0 means the feature is not computed at all.
    """
    batch = model.generate_batch(n_examples)
    target = batch.abs()
    error = ((target - model(batch)) ** 2).mean(0)
    return (1 - error / target.var(0).clamp_min(1e-12)).cpu()


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
def plot_neuron_weights(
    W: Float[Tensor, "inst neurons feats"],
    titles: Sequence[str] | None = None,
    title: str = "Neuron-by-feature weights (rows sorted by each neuron's strongest feature)",
    sort: bool = True,
    max_cols: int = 4,
    show: bool = True,
) -> go.Figure | None:
    """One heatmap per instance: row n is neuron n's weight on each feature (red +, blue -).

    Each row title gives the neuron's monosemanticity: the share of its squared weight on its top feature.
    """
    _check_weights(W)
    n_inst, n_neurons, n_feats = W.shape
    order = sort_neurons(W) if sort else torch.arange(n_neurons).expand(n_inst, -1)
    W_np = np.asarray(to_numpy(W), dtype=float)
    mono = to_numpy(neuron_monosemanticity(W))
    cols = min(n_inst, max_cols)
    rows = -(-n_inst // cols)
    panel_height = 18 * n_neurons + 40
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=list(titles) if titles else None,
        horizontal_spacing=0.09,
        # room between rows for the x tick labels of the row above and the next row's titles
        vertical_spacing=min(0.3, 75 / (rows * panel_height + 75 * (rows - 1))) if rows > 1 else 0.1,
    )
    zmax = float(np.abs(W_np).max()) or 1.0  # one colour scale for all panels, covering every weight
    for k in range(n_inst):
        idx = order[k].tolist()
        fig.add_trace(
            go.Heatmap(
                z=W_np[k][idx],
                x=list(range(n_feats)),
                y=[f"n{j} ({mono[k, j]:.0%})" for j in idx],
                colorscale="RdBu",
                reversescale=True,
                zmin=-zmax,
                zmax=zmax,
                showscale=k == 0,
                colorbar=dict(title="weight", thickness=12),
                hovertemplate="neuron %{y}<br>feature %{x}<br>weight %{z:.2f}<extra></extra>",
            ),
            row=k // cols + 1,
            col=k % cols + 1,
        )
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=9))
    fig.update_yaxes(title_text="neuron (share on top feature)", title_font=dict(size=11), col=1)
    fig.update_xaxes(dtick=1 if n_feats <= 10 else 2, tickfont=dict(size=9), tickangle=0)
    fig.update_xaxes(title_text="feature", title_font=dict(size=11), title_standoff=4, row=rows)
    fig.update_annotations(font_size=12)
    fig.update_layout(
        title=title,
        height=rows * panel_height + 75 * (rows - 1) + 130,
        width=min(MAX_WIDTH, 230 * cols + 170),
        template="simple_white",
        margin=dict(t=80),
    )
    return show_or_return(fig, show)


def plot_monosemantic_counts(
    feature_probability: Float[Tensor, " inst"],
    counts: Tensor | Sequence[Tensor],
    n_neurons: int,
    names: Sequence[str] | None = None,
    title: str = "Monosemantic neurons against sparsity",
    show: bool = True,
) -> go.Figure | None:
    """Number of monosemantic neurons per instance against 1/(1-S) = 1/p (log axis), one line per model."""
    p = np.asarray(to_numpy(feature_probability), dtype=float).ravel()
    series = [counts] if isinstance(counts, Tensor) else list(counts)
    names = list(names) if names else [f"model {i}" for i in range(len(series))]
    fig = go.Figure()
    for c, name in zip(series, names, strict=True):
        fig.add_trace(
            go.Scatter(x=1 / p, y=np.asarray(to_numpy(c), dtype=float).ravel(), mode="lines+markers", name=name)
        )
    hline(fig, n_neurons, annotation_text=f"all {n_neurons} neurons", annotation_position="bottom right")
    inverse = 1 / p
    ticks = [v for v in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if inverse.min() / 1.5 <= v <= inverse.max() * 1.5]
    fig.update_xaxes(
        type="log", title_text="1 / (1 - S)  (sparser →)", tickvals=ticks, ticktext=[str(v) for v in ticks]
    )
    fig.update_yaxes(title_text="monosemantic neurons", range=[-0.3, n_neurons + 0.5])
    fig.update_layout(title=title, template="simple_white", height=380, width=650)
    return show_or_return(fig, show)


def plot_neuron_motif(
    W_in: Float[Tensor, "neurons feats"],
    W_out: Float[Tensor, "feats neurons"],
    neurons: Sequence[int],
    title: str = "Input and output weights of selected neurons",
    show: bool = True,
) -> go.Figure | None:
    """Bars of each selected neuron's input weights (what it reads) and output weights (what it writes)."""
    w_in = np.asarray(to_numpy(W_in), dtype=float)
    w_out = np.asarray(to_numpy(W_out), dtype=float)
    if w_in.ndim != 2 or w_out.shape != w_in.T.shape:
        raise ValueError(f"W_in should be [neurons, feats] and W_out [feats, neurons], got {w_in.shape}, {w_out.shape}")
    n_feats = w_in.shape[1]
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=["input weights (W1: feature → neuron)", "output weights (W2: neuron → feature)"]
    )
    for j, n in enumerate(neurons):
        color = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"][j % 5]
        fig.add_trace(
            go.Bar(x=list(range(n_feats)), y=w_in[n], name=f"neuron {n}", marker_color=color, legendgroup=str(n)),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Bar(
                x=list(range(n_feats)),
                y=w_out[:, n],
                name=f"neuron {n}",
                marker_color=color,
                legendgroup=str(n),
                showlegend=False,
            ),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="feature", dtick=1)
    fig.update_yaxes(title_text="weight", col=1)
    fig.update_layout(title=title, template="simple_white", barmode="group", height=380, width=900)
    fig.update_annotations(font_size=13)
    return show_or_return(fig, show)


def asymmetric_neurons(
    W1: Float[Tensor, "inst neurons feats"],
    W2: Float[Tensor, "inst feats neurons"],
    min_gain: float = 0.5,
    min_ratio: float = 2.0,
) -> list[tuple[int, int, int, int]]:
    """Neurons in asymmetric superposition: (inst, neuron, strong feature, weak feature), most lopsided first.

    A neuron *serves* feature f when firing for f adds to f's output: |W1[n, f]| · W2[f, n] >= min_gain.
    It is asymmetric when it serves two features, one read at least `min_ratio` times more strongly
    than the other, and written at least `min_ratio` times more weakly.
    """
    _check_weights(W1, "W1")
    W1, W2 = W1.detach().float().cpu(), W2.detach().float().cpu()
    found = []
    for k in range(W1.shape[0]):
        gain = W1[k].abs() * W2[k].T  # [neurons feats]
        for n in range(W1.shape[1]):
            served = (gain[n] >= min_gain).nonzero().flatten().tolist()
            for a in served:
                for b in served:
                    w_in = W1[k, n, a].abs() / W1[k, n, b].abs()
                    w_out = W2[k, b, n] / W2[k, a, n]
                    if a != b and w_in >= min_ratio and w_out >= min_ratio:
                        found.append((float(w_in * w_out), k, n, a, b))
    return [t[1:] for t in sorted(found, reverse=True)]


def plot_asymmetric_motif(
    W1: Float[Tensor, "neurons feats"],
    W2: Float[Tensor, "feats neurons"],
    b_final: Float[Tensor, " feats"],
    neuron: int,
    strong: int,
    weak: int,
    title: str | None = None,
    show: bool = True,
) -> go.Figure | None:
    """What every neuron adds to the outputs of two features when only one of them is on (value ±1).

    Left: only the strong feature is on; right: only the weak one. Bars: each neuron's contribution
    W2[f, n] · h_n to the pre-activation of output f (before the ReLU); the panel titles give the
    total pre-activations, bias included.
    """
    W1, W2, b_final = (torch.as_tensor(to_numpy(t)) for t in (W1, W2, b_final))
    n_neurons = W1.shape[0]
    names = {strong: f"output {strong} (strong)", weak: f"output {weak} (weak)"}
    subtitles, panels = [], []
    for on in (strong, weak):
        x = torch.zeros(W1.shape[1])
        x[on] = 1.0 if W1[neuron, on] > 0 else -1.0  # the sign that makes the shared neuron fire
        h = torch.relu(W1 @ x)
        contrib = W2[[strong, weak]] * h  # [2 neurons]
        pre = contrib.sum(-1) + b_final[[strong, weak]]
        panels.append(contrib)
        subtitles.append(f"only x[{on}] = {x[on]:+.0f}: pre-activation {strong}: {pre[0]:.2f}, {weak}: {pre[1]:.2f}")
    fig = make_subplots(rows=1, cols=2, subplot_titles=subtitles, shared_yaxes=True)
    for col, contrib in enumerate(panels, start=1):
        for row, (f, color) in enumerate(zip((strong, weak), ("#1f77b4", "#d62728"), strict=True)):
            fig.add_trace(
                go.Bar(
                    x=[f"n{j}" for j in range(n_neurons)],
                    y=contrib[row].numpy(),
                    name=names[f],
                    marker_color=color,
                    showlegend=col == 1,
                    legendgroup=str(f),
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="neuron")
    fig.update_yaxes(title_text="contribution to the output's pre-activation", col=1)
    fig.update_layout(
        title=title or f"Neuron {neuron} serves features {strong} and {weak}; other neurons inhibit",
        template="simple_white",
        barmode="group",
        height=420,
        width=1000,
    )
    return show_or_return(fig, show)
