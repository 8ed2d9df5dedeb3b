"""Section 5b's given code: hierarchical toy features and the figures of feature absorption.

Imports no section code. Figure helpers take tensors, never modify them, and show the figure (or return
it with `show=False`).

The layout is fixed so every piece of the section agrees on which feature is which: `n_parents` parent
features first, then each parent's `n_children` children in order, i.e. for 2 parents with 3 children
``[P0, P1, C0.0, C0.1, C0.2, C1.0, C1.1, C1.2]``. A child can only fire when its parent fires.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import einops
import numpy as np
import plotly.graph_objects as go
import torch
from jaxtyping import Float
from plotly.subplots import make_subplots
from torch import Tensor

from plotly_utils import as_array, show_or_return


@dataclass(frozen=True)
class HierarchyConfig:
    n_inst: int = 8
    n_parents: int = 2
    n_children: int = 3  # per parent
    p_parent: float = 0.25  # P(parent on)
    p_child: float = 0.3  # P(a given child on | its parent on)
    exclusive: bool = True  # at most one child of a parent fires at a time
    d_in: int = 8  # hidden size; at least n_features, so the feature directions can be orthogonal

    def __post_init__(self) -> None:
        for name in ("n_inst", "n_parents", "n_children", "d_in"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("p_parent", "p_child"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)!r}")
        if self.exclusive and self.n_children * self.p_child > 1 + 1e-9:
            raise ValueError(
                f"exclusive children need n_children · p_child ≤ 1 (at most one child fires), "
                f"got {self.n_children} · {self.p_child}"
            )
        if self.d_in < self.n_features:
            raise ValueError(f"d_in={self.d_in} must be at least n_features={self.n_features} (orthogonal features)")

    @property
    def n_features(self) -> int:
        return self.n_parents * (1 + self.n_children)

    @cached_property
    def parent_of(self) -> list[int]:
        """parent_of[f] is the index of f's parent, or -1 for a parent feature."""
        return [-1] * self.n_parents + [p for p in range(self.n_parents) for _ in range(self.n_children)]

    def children(self, parent: int) -> list[int]:
        start = self.n_parents + parent * self.n_children
        return list(range(start, start + self.n_children))

    def marginal_probabilities(self) -> Tensor:
        """[feats]: P(feature on). Parents p_parent, children p_parent · p_child."""
        probs = [self.p_parent] * self.n_parents + [self.p_parent * self.p_child] * (self.n_parents * self.n_children)
        return torch.tensor(probs)

    def true_l0(self) -> float:
        return float(self.marginal_probabilities().sum())


def orthonormal_features(cfg: HierarchyConfig, device: torch.device | str = "cpu") -> Float[Tensor, "inst d_in feats"]:
    """A random set of orthonormal feature directions per instance (columns of W)."""
    gaussian = torch.randn(cfg.n_inst, cfg.d_in, cfg.n_features, device=device)
    q, r = torch.linalg.qr(gaussian)  # q: [inst d_in feats] with orthonormal columns
    return q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)


def hidden_activations(
    features: Float[Tensor, "batch inst feats"], W: Float[Tensor, "inst d_in feats"]
) -> Float[Tensor, "batch inst d_in"]:
    """h = W x per instance: what the SAE sees."""
    return einops.einsum(features, W, "batch inst feats, inst d_in feats -> batch inst d_in")


def feature_labels(cfg: HierarchyConfig) -> list[str]:
    """Names in the feature layout: P0, P1, ..., then C0.0, C0.1, ... (child j of parent p is Cp.j)."""
    children = [f"C{p}.{j}" for p in range(cfg.n_parents) for j in range(cfg.n_children)]
    return [f"P{p}" for p in range(cfg.n_parents)] + children


def cooccurrence(features: Float[Tensor, "batch inst feats"]) -> Float[Tensor, "feats feats"]:
    """P(feature j on | feature i on) at [i, j], pooled over examples and instances (NaN for a feature never on)."""
    on = (features > 0).flatten(0, 1).float()  # [examples feats]
    both = on.T @ on
    return both / on.sum(0).unsqueeze(-1)


def decoder_feature_cosines(
    W_dec: Float[Tensor, "inst d_sae d_in"], W_features: Float[Tensor, "inst d_in feats"]
) -> Float[Tensor, "inst d_sae feats"]:
    W_dec_hat = W_dec / (W_dec.norm(dim=-1, keepdim=True) + 1e-8)
    W_feat_hat = W_features / (W_features.norm(dim=1, keepdim=True) + 1e-8)
    return einops.einsum(W_dec_hat, W_feat_hat, "inst d_sae d_in, inst d_in feats -> inst d_sae feats")


@torch.no_grad()
def parent_latent_firing(
    cfg: HierarchyConfig,
    features: Float[Tensor, "batch inst feats"],
    acts: Float[Tensor, "batch inst d_sae"],
    W_dec: Float[Tensor, "inst d_sae d_in"],
    W_features: Float[Tensor, "inst d_in feats"],
    parent: int = 0,
) -> dict[str, float]:
    """How often the parent's best-matching latent fires, by situation: the parent alone (no child), and the
    parent with each of its children. Pooled over instances; an unabsorbed parent latent fires ~always."""
    best = decoder_feature_cosines(W_dec, W_features)[:, :, parent].argmax(-1)  # [inst]
    fires = acts.gather(-1, best.expand(acts.shape[0], -1).unsqueeze(-1)).squeeze(-1) > 0  # [batch inst]
    kids = cfg.children(parent)
    parent_on = features[..., parent] > 0
    any_child = (features[..., kids] > 0).any(-1)
    labels = feature_labels(cfg)
    situations = {f"{labels[parent]} alone": parent_on & ~any_child}
    situations.update({f"{labels[parent]} + {labels[c]}": parent_on & (features[..., c] > 0) for c in kids})
    return {
        name: float(fires[mask].float().mean()) if mask.any() else float("nan") for name, mask in situations.items()
    }


def plot_cooccurrence(
    cond_prob: Any, labels: Sequence[str], title: str = "P(column feature on | row feature on)", show: bool = True
) -> go.Figure | None:
    """[feats feats] conditional firing probabilities as an annotated heatmap."""
    z = as_array(cond_prob)
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
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.05)
    for col, name in enumerate(names, start=1):
        z = as_array(cosines[name])
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
                textfont=dict(size=10 if len(names) > 2 else 12),
                hovertemplate="latent %{y}, feature %{x}: %{z:.2f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_yaxes(title_text="latent" if col == 1 else None, autorange="reversed", dtick=1, row=1, col=col)
        fig.update_xaxes(title_text="true feature", row=1, col=col)
    width = min(1000, max(330 * len(names) + 110, 620))  # at most 1000 px: three panels of 8 × 8 still fit
    fig.update_layout(title=title, height=440, width=width, template="simple_white")
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
    per_inst = [as_array(absorption[n]).mean(-1) for n in names]
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
        xaxis=dict(title="SAE"),
        height=420,
        width=680,
        template="simple_white",
    )
    return show_or_return(fig, show)
