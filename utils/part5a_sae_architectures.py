"""Section 5a's given code: measuring shrinkage, the architecture table and the L0 / reconstruction frontier.

Helpers never modify the tensors they are given; figures are shown (or returned with `show=False`) and
work offline. The section passes in its own training and evaluation functions, so nothing here imports
section code:

* ``train(arch, **overrides) -> (sae, log)`` trains one architecture, with config overrides such as
  ``sparsity_coeff=[...]`` (one value per instance) or ``k=2``;
* ``evaluate(sae) -> {"l0": [inst], "fve": [inst], "dead": [inst], "recovery": [inst feats]}``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import einops
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor, nn

from plotly_utils import as_array, show_or_return
from utils.part5_toy_saes import LATENT_COLORS


@torch.no_grad()
def single_feature_magnitudes(sae: nn.Module, W_features: Tensor, n_per_feature: int = 40) -> tuple[Tensor, Tensor]:
    """Shrinkage data: inputs h = t·W_i with exactly one feature i on at a value t ~ U[0, 1].

    `sae(h)` must return (..., h_reconstructed) as its 4th output; W_features is [inst d_in feats].
    Returns (t, (h_rec · W_i) / ‖W_i‖²) flattened over examples, instances and features (on the CPU):
    a perfect reconstruction gives back t, a shrunk one less.
    """
    n_inst, _, n_feats = W_features.shape
    t = torch.rand(n_per_feature, n_inst, n_feats, device=W_features.device)
    h = einops.einsum(t, W_features, "n inst feats, inst d feats -> n feats inst d").flatten(0, 1)
    h_rec = sae(h)[3].unflatten(0, (n_per_feature, n_feats))  # [n feats inst d]
    along = einops.einsum(h_rec, W_features, "n feats inst d, inst d feats -> n inst feats")
    return t.flatten().cpu(), (along / W_features.pow(2).sum(1)).flatten().cpu()


Train = Callable[..., tuple[Any, Any]]
Evaluate = Callable[[Any], dict[str, Tensor]]


def print_architecture_table(results: dict[str, dict[str, Tensor]], recovery_threshold: float = 0.95) -> None:
    """One line per architecture: mean L0, FVE and dead fraction, and how many instances recovered every
    feature (best cosine ≥ recovery_threshold)."""
    for arch, r in results.items():
        ok = int((r["recovery"].min(-1).values >= recovery_threshold).sum())
        print(
            f"{arch:9s} L0 {r['l0'].mean():.3f}  FVE {r['fve'].mean():.3f}  dead {r['dead'].mean():.2f}  "
            f"instances with every feature recovered (cos ≥ {recovery_threshold}): {ok}/{len(r['l0'])}"
        )


def frontier_sweep(
    train: Train,
    evaluate: Evaluate,
    coeffs: dict[str, Tensor],
    ks: Sequence[int] = (1,),
    topk_name: str = "topk",
    evaluate_at_l0: Callable[[Any, Tensor], dict[str, Tensor]] | None = None,
    target_l0: Tensor | None = None,
) -> tuple[dict[str, tuple[Tensor, Tensor]], dict[str, list[str]]]:
    """Points (L0, fraction of variance unexplained) per instance, for `plot_frontier`.

    Each architecture in `coeffs` is trained once with one sparsity coefficient per instance (so one run
    traces a curve, a point per instance); `topk_name` is trained once per k in `ks`. With
    `evaluate_at_l0(sae, target_l0 [inst])`, each TopK SAE is also evaluated with inference thresholds: for each
    value t of `target_l0`, every instance gets the threshold that gives L0 = t, and the curve's point is the
    median over instances (a few instances can fail badly, see the notebook).
    Returns (frontier, labels): {curve name: (L0 [n], FVU [n])} and a hover label per point.
    """
    frontier: dict[str, tuple[Tensor, Tensor]] = {}
    labels: dict[str, list[str]] = {}
    for arch, sweep in coeffs.items():
        r = evaluate(train(arch, sparsity_coeff=sweep.tolist())[0])
        frontier[arch] = (r["l0"], 1 - r["fve"])
        labels[arch] = [f"instance {i}, coeff {c:.3g}" for i, c in enumerate(sweep.tolist())]
    for k in ks:
        sae = train(topk_name, k=k)[0]
        r = evaluate(sae)
        frontier[f"{topk_name} (k = {k})"] = (r["l0"], 1 - r["fve"])
        labels[f"{topk_name} (k = {k})"] = [f"instance {i}" for i in range(len(r["l0"]))]
        if evaluate_at_l0 is not None and target_l0 is not None:
            n_inst = len(r["l0"])
            points = [evaluate_at_l0(sae, torch.full((n_inst,), float(t))) for t in target_l0.tolist()]
            name = f"{topk_name} (k = {k}), thresholded"
            frontier[name] = (
                torch.stack([p["l0"].median() for p in points]),
                torch.stack([(1 - p["fve"]).median() for p in points]),
            )
            labels[name] = [f"median of {n_inst} instances at target L0 {t:.3g}" for t in target_l0.tolist()]
    return frontier, labels


def fvu_at_l0(l0: Any, fvu: Any, target: float) -> float | None:
    """The FVU of a curve at L0 = target, interpolated (linearly in L0, geometrically in FVU) between the two
    points around it after sorting by L0; None when the curve's points don't reach both sides of target."""
    x, y = as_array(l0).ravel(), as_array(fvu).ravel()
    order = np.argsort(x)
    x, y = x[order], np.log(np.clip(y[order], 1e-12, None))
    if not x[0] <= target <= x[-1]:
        return None
    return float(np.exp(np.interp(target, x, y)))


def print_fvu_at_l0(frontier: dict[str, tuple[Any, Any]], target: float) -> dict[str, float | None]:
    """Print (and return) each curve's FVU at L0 = target (see `fvu_at_l0`)."""
    out = {}
    for name, (l0, fvu) in frontier.items():
        out[name] = value = fvu_at_l0(l0, fvu, target)
        where = f"{value:.4f}" if value is not None else f"not reached (L0 from {float(as_array(l0).min()):.3f})"
        print(f"{name:28s} FVU at L0 = {target}: {where}")
    return out


def plot_shrinkage(
    results: dict[str, tuple[Any, Any]],
    title: str = "Shrinkage: reconstructed vs true feature magnitude",
    show: bool = True,
) -> go.Figure | None:
    """For each architecture, {name: (true magnitude [n], reconstructed magnitude along the feature [n])}.

    Points below the diagonal are shrunk. Each architecture also gets its least-squares slope in the legend.
    """
    fig = go.Figure()
    top = 0.0
    for i, (name, (true, rec)) in enumerate(results.items()):
        t, r = as_array(true).ravel(), as_array(rec).ravel()
        slope = float((t * r).sum() / max((t * t).sum(), 1e-12))
        top = max(top, float(t.max(initial=0)))
        fig.add_trace(
            go.Scatter(
                x=t,
                y=r,
                mode="markers",
                marker=dict(size=4, opacity=0.5, color=LATENT_COLORS[i % len(LATENT_COLORS)]),
                name=f"{name} (slope {slope:.2f})",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[0, top], y=[0, top], mode="lines", line=dict(dash="dash", color="black"), name="no shrinkage (y = x)"
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="true feature value",
        yaxis_title="reconstructed value along the feature",
        height=450,
        width=620,
        template="simple_white",
        legend=dict(x=0.02, y=0.98, xanchor="left", yanchor="top", bgcolor="rgba(255,255,255,0.8)"),
    )
    return show_or_return(fig, show)


def plot_frontier(
    results: dict[str, tuple[Any, Any]],
    labels: dict[str, Sequence[str]] | None = None,
    true_l0: float | None = None,
    title: str = "L0 vs reconstruction across architectures",
    show: bool = True,
) -> go.Figure | None:
    """{curve: (L0 [n], fraction of variance unexplained [n])}: each curve's points, joined in order of L0.

    Both axes are logarithmic, so sparse codes and near-perfect reconstructions are both visible; a dashed
    vertical line marks `true_l0` when given.
    """
    fig = go.Figure()
    for i, (name, (l0, fvu)) in enumerate(results.items()):
        x, y = as_array(l0).ravel(), as_array(fvu).ravel()
        order = np.argsort(x)
        text = [list(labels[name])[j] for j in order] if labels and name in labels else None
        fig.add_trace(
            go.Scatter(
                x=x[order],
                y=np.clip(y[order], 1e-6, None),
                mode="lines+markers",
                name=name,
                text=text,
                marker=dict(size=8, symbol=["circle", "square", "diamond", "x", "triangle-up", "cross"][i % 6]),
                line=dict(color=LATENT_COLORS[i % len(LATENT_COLORS)], width=1, dash="dot"),
                hovertemplate="%{text}<br>L0 %{x:.3f}<br>FVU %{y:.4f}<extra></extra>" if text else None,
            )
        )
    if true_l0 is not None:
        fig.add_vline(
            x=true_l0,
            line=dict(dash="dash", color="black", width=1),
            annotation_text=f"true L0 = {true_l0}",
            annotation_position="top",
        )
    fig.update_layout(
        title=title,
        xaxis_title="L0 (mean active latents per example, log scale)",
        yaxis_title="fraction of variance unexplained (log scale)",
        xaxis_type="log",
        yaxis_type="log",
        height=480,
        width=820,
        template="simple_white",
        legend=dict(font=dict(size=11)),
    )
    return show_or_return(fig, show)


def plot_feature_recovery(
    recovery: dict[str, Any],
    title: str = "Feature recovery: best cosine between each feature and a decoder row",
    show: bool = True,
) -> go.Figure | None:
    """{architecture: [inst feats] best cosines}: one heatmap per architecture (rows = instances), on a diverging
    colour scale over [-1, 1]."""
    names = list(recovery)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, shared_yaxes=True, horizontal_spacing=0.03)
    # Cosines lie in [-1, 1]: a diverging scale, white at 0 and red below (a latent pointing the wrong way), with
    # most of the blue range spent between 0.8 and 1, where found and missed features differ.
    for col, name in enumerate(names, start=1):
        r = as_array(recovery[name])
        fig.add_trace(
            go.Heatmap(
                z=r,
                zmin=-1,
                zmax=1,
                colorscale=[
                    [0.0, "#b2182b"],
                    [0.25, "#ef8a62"],
                    [0.5, "#f7f7f7"],
                    [0.9, "#d1e5f0"],
                    [0.975, "#67a9cf"],
                    [1.0, "#2166ac"],
                ],
                showscale=col == len(names),
                colorbar=dict(title="cosine"),
                text=np.round(r, 2),
                texttemplate="%{text}",
                hovertemplate="instance %{y}, feature %{x}: %{z:.3f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title_text="feature", dtick=1, row=1, col=col)
    fig.update_yaxes(title_text="instance", autorange="reversed", dtick=1, col=1)
    fig.update_layout(title=title, height=380, width=min(1000, 200 * len(names) + 160), template="simple_white")
    return show_or_return(fig, show)
