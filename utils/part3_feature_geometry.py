"""Helpers for section 3 (feature geometry): the sticky fractions, a warm-up schedule, summaries and figures.

Everything here takes tensors as they come out of a model and never modifies them. Plot helpers
return a plotly Figure and show it unless `show=False`.
"""

from __future__ import annotations

from collections import Counter
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


# The notebook's two sweeps, as the values of 1/(1-S) = 1/p of their instances. The first (50 features in 10
# dimensions) is spaced more densely where the configurations change; the second (13 features in 10
# dimensions, room to spare) covers the sparsities where the features settle.
SWEEP_INVERSE_P: list[float] = [
    1.0, 1.2, 1.4, 1.55, 1.65, 1.75, 1.85, 2.0, 2.3, 2.7, 3.2, 3.6, 3.9, 4.2, 4.5, 4.8, 5.1, 5.5, 6.0, 7.0, 8.5, 10.0
]  # fmt: skip
ROOMY_INVERSE_P: list[float] = [1.3, 1.6, 1.9, 2.2, 2.45, 2.7, 3.0, 3.4, 4.0]
REPRESENTED = 0.5  # a feature counts as represented when ‖W_i‖² > 0.5
TOLERANCE = 0.01  # "at a fraction": within 0.01 of it (2/5 and 3/8 are 0.025 apart, so the windows don't overlap)


def five_percent_warmup(step: int, steps: int) -> float:
    """The schedule this section trains with: `warmup_cosine_lr` with the first 5% of the steps as warm-up."""
    return warmup_cosine_lr(step, steps, warmup_steps=max(1, steps // 20))


def nearest_sticky_fraction(D: Tensor, fractions: Sequence[float] | None = None) -> tuple[Tensor, Tensor]:
    """For each value in D: the nearest sticky fraction and the distance to it (same shape as D)."""
    fr = torch.tensor(list(fractions or STICKY_FRACTIONS.values()), dtype=torch.float64)
    dist = (D.detach().double().cpu()[..., None] - fr).abs()
    best = dist.argmin(-1)
    return fr[best], dist.gather(-1, best[..., None]).squeeze(-1)


def share_near_sticky(
    D: Float[Tensor, "inst feats"], represented: Tensor, tol: float = TOLERANCE
) -> Float[Tensor, " inst"]:
    """Per instance: the share of represented features whose dimensionality is within `tol` of a sticky fraction."""
    _, dist = nearest_sticky_fraction(D)
    near = (dist <= tol) & represented.cpu()
    return near.sum(-1) / represented.cpu().sum(-1).clamp_min(1)


def count_near_sticky(
    D: Float[Tensor, "inst feats"],
    represented: Tensor,
    tol: float = TOLERANCE,
    fractions: dict[str, float] | None = None,
) -> dict[str, Tensor]:
    """label -> [inst] number of represented features within `tol` of that fraction.

    With tol = 0.01 the windows around 2/5 and 3/8 (0.025 apart) don't overlap, so a feature is counted
    at most once.
    """
    fractions = fractions or STICKY_FRACTIONS
    D, rep = D.detach().double().cpu(), represented.cpu()
    return {label: (((D - value).abs() <= tol) & rep).sum(-1) for label, value in fractions.items()}


def sticky_summary(
    inverse_p: Sequence[float] | Tensor,
    W: Float[Tensor, "inst d_hidden feats"],
    dims_per_feature: Tensor,
    D: Float[Tensor, "inst feats"],
    represented: Tensor,
    tol: float = TOLERANCE,
) -> str:
    """One line per instance: 1/(1-S), D*, the groups its represented features form, and how many features sit
    within `tol` of each sticky fraction; then the totals."""
    counts = count_near_sticky(D, represented, tol)
    lines = []
    for k, x in enumerate(torch.as_tensor(inverse_p).tolist()):
        at = ", ".join(f"{int(c[k])} at {label}" for label, c in counts.items() if c[k] > 0) or "none"
        blocks = describe_blocks(feature_blocks(W[k], represented[k]))
        lines.append(f"1/(1-S) = {x:5.2f}  D* = {float(dims_per_feature[k]):.3f}  {blocks:<52}  near a fraction: {at}")
    totals = ", ".join(f"{int(c.sum())} at {label}" for label, c in counts.items())
    return "\n".join([*lines, f"all instances: {totals} (of {int(represented.sum())} represented features)"])


POLYTOPES: dict[tuple[int, int], str] = {
    (1, 1): "alone",
    (2, 1): "antipodal pair",
    (3, 2): "triangle",
    (4, 3): "tetrahedron",
    (5, 2): "pentagon",
    (8, 3): "square antiprism",
}


def feature_blocks(
    W_k: Float[Tensor, "d_hidden feats"], represented: Tensor, threshold: float = 0.25
) -> list[tuple[list[int], int]]:
    """The represented features of one instance grouped by their overlaps, each group with the dimensions it spans.

    Two features are linked when |cos| of their directions exceeds `threshold`; a group is a connected set.
    In a tegum product every group is a small polytope in its own subspace (a pair: 2 features in 1 dimension,
    a triangle: 3 in 2, ...); a tangle of overlapping features shows up as one large group. The dimensions are
    the singular values of the group's unit directions above 0.2 times the largest.
    """
    idx = represented.nonzero().flatten().tolist()
    units = torch.nn.functional.normalize(W_k.detach().double().cpu()[:, idx], dim=0)
    linked = (units.T @ units).abs() > threshold
    groups, seen = [], set()
    for start in range(len(idx)):
        if start in seen:
            continue
        group, frontier = [], [start]
        seen.add(start)
        while frontier:
            a = frontier.pop()
            group.append(a)
            for b in linked[a].nonzero().flatten().tolist():
                if b not in seen:
                    seen.add(b)
                    frontier.append(b)
        sv = torch.linalg.svdvals(units[:, group])
        groups.append((sorted(idx[a] for a in group), int((sv > 0.2 * sv.max()).sum())))
    return groups


def describe_blocks(blocks: list[tuple[list[int], int]]) -> str:
    """'8 antipodal pairs, 2 triangles', or 'k features in m dimensions' for a shape without a name."""
    shapes = Counter((len(group), dims) for group, dims in blocks)
    parts = []
    for (k, m), count in sorted(shapes.items(), key=lambda kv: (-kv[1], kv[0])):
        name = POLYTOPES.get((k, m))
        if name == "alone":
            parts.append(f"{count} alone")
        elif name:
            parts.append(f"{count} {name}{'s' if count > 1 else ''}")
        else:
            parts.append(f"{count} × ({k} features in {m} dimensions)")
    return ", ".join(parts) or "no represented feature"


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
                marker=dict(size=5, color="rgba(31,119,180,0.45)"),
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
            line_width=1.5,
            opacity=0.7,
            annotation_text=label,
            annotation_position="right",
            # 2/5 and 3/8 are 0.025 apart: nudge their labels apart so they don't overlap
            annotation=dict(yshift={"2/5": 5, "3/8": -5}.get(label, 0)),
            annotation_font=dict(size=11, color="#d62728"),
        )
    fig.update_xaxes(type="log", title_text="1 / (1 - S)  (sparser →)")
    fig.update_yaxes(title_text="dimensions", range=[-0.02, 1.08])
    fig.update_layout(
        title=title,
        template="simple_white",
        height=500,
        width=850,
        legend=dict(orientation="h", x=0, y=1.01, yanchor="bottom"),
        margin=dict(t=90),
    )
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
        go.Histogram(x=D[mask], xbins=dict(start=-0.005, end=1.025, size=0.01), marker_color="#1f77b4", name="features")
    )
    for i, (label, value) in enumerate(sorted((fractions or STICKY_FRACTIONS).items(), key=lambda kv: kv[1])):
        # neighbouring fractions (3/8 and 2/5) are close: alternate the label's side so they don't overlap
        fig.add_vline(
            x=value,
            line_dash="dot",
            line_color="#d62728",
            line_width=1.5,
            annotation_text=label,
            annotation_position="top left" if i % 2 == 0 else "top right",
            annotation_font=dict(size=11, color="#d62728"),
        )
    fig.update_xaxes(title_text="feature dimensionality", range=[0, 1.05])
    fig.update_yaxes(title_text="number of features")
    fig.update_layout(title=title, template="simple_white", height=360, width=850, showlegend=False)
    return show_or_return(fig, show)
