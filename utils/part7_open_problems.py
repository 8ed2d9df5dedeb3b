"""One-call variants of the toy models of superposition, for the open-problems lab (section 7).

`ExperimentModel` is the section 1 model (`ReLU(WᵀW x + b)`) and the section 2 models
(`ReLU(Wᵀ ReLU(W x) + b)`, and the untied `ReLU(W_out ReLU(W x) + b)`) behind one config, with each
change the open-problems list asks about as one field of `ExperimentConfig`:

| field               | options                                                                     |
| ------------------- | --------------------------------------------------------------------------- |
| `hidden_activation` | None (linear bottleneck, section 1), "relu" (privileged basis, section 2), "gelu" |
| `output_activation` | "relu" (default), "gelu", None (logits, for cross-entropy)                   |
| `n_hidden_layers`   | 1 (default) or more hidden layers of width `d_hidden` (needs `tied=False`)   |
| `tied`              | True: the output layer is Wᵀ (sections 1, 2); False: its own `W_out`         |
| `hidden_bias`       | False (default) or a bias on every hidden layer                             |
| `dropout`           | probability of dropping each hidden unit during training (0 = off)           |
| `values`            | value of a present feature: "uniform" U[0,1], "constant"/"binary" 1,          |
|                     | "discrete" {1,2,3}, "uniform_half" U[0.5,1], "signed_uniform" U[-1,1]         |
| `target`            | "identity", "abs", "square", "max_pairs", "and_pairs", "or_pairs", "argmax"  |
| `loss`              | "mse" (importance-weighted, as section 1) or "cross_entropy" (target "argmax") |

Per-feature sparsity and importance are tensors that broadcast to `[inst feats]` (importance to
`[inst outputs]`), exactly as in section 1, so every instance can differ. Everything is batched over
instances and trained with the shared loop `utils.training.optimize`; `run_experiment` seeds, builds
and trains in one call.

The section's exercises are the lab's data and loss: drawing features, computing targets, the
cross-entropy loss, and the basis alignment metric. They are defined once, in the section's source
(`solutions/part7_open_problems.py`), and the lab runs whatever functions it is given: the model takes
them as `LabFunctions`, and `random_alignment_baseline` takes the alignment function. This module
imports no section code; `tests/test_part7_open_problems_api.py` proves that with the reference
functions the defaults compute exactly what the section 1 and section 2 reference models compute.

The figures of the section (box plots, lines, curves, weight heatmaps) are at the end of the module.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import einops
import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from jaxtyping import Float
from plotly.subplots import make_subplots
from torch import Tensor, nn

from plotly_utils import show_or_return, to_numpy
from utils.device import get_device
from utils.schedules import Schedule, constant_lr
from utils.training import optimize

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, None: lambda x: x}
VALUE_KINDS = ("uniform", "constant", "binary", "discrete", "uniform_half", "signed_uniform")
ELEMENTWISE_TARGETS = ("identity", "abs", "square")
PAIR_TARGETS = ("max_pairs", "and_pairs", "or_pairs")
TARGETS = (*ELEMENTWISE_TARGETS, *PAIR_TARGETS, "argmax")
LOSSES = ("mse", "cross_entropy")
NO_LABEL = -1  # the label of an example with no feature present (left out of the cross-entropy)


def _choice(name: str, value: Any, options: tuple) -> None:
    if value not in options:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, options))}")


@dataclass(frozen=True)
class ExperimentConfig:
    """What to train. The defaults are exactly section 1's model; see the module docstring for options."""

    n_inst: int
    n_features: int = 5
    d_hidden: int = 2
    n_hidden_layers: int = 1
    hidden_activation: str | None = None
    output_activation: str | None = "relu"
    tied: bool = True
    hidden_bias: bool = False
    dropout: float = 0.0
    values: str = "uniform"
    target: str = "identity"
    loss: str = "mse"

    def __post_init__(self) -> None:
        for name in ("n_inst", "n_features", "d_hidden", "n_hidden_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        _choice("hidden_activation", self.hidden_activation, tuple(ACTIVATIONS))
        _choice("output_activation", self.output_activation, tuple(ACTIVATIONS))
        _choice("values", self.values, VALUE_KINDS)
        _choice("target", self.target, TARGETS)
        _choice("loss", self.loss, LOSSES)
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout!r}")
        if self.target in PAIR_TARGETS and self.n_features % 2:
            raise ValueError(f"target {self.target!r} pairs up features (2j, 2j+1): n_features must be even")
        if self.tied and self.n_hidden_layers > 1:
            raise ValueError("tied weights (output = Wᵀ) need n_hidden_layers=1; set tied=False for deeper models")
        if self.tied and self.n_outputs != self.n_features:
            raise ValueError(f"target {self.target!r} has {self.n_outputs} outputs, so it needs tied=False")
        if (self.loss == "cross_entropy") != (self.target == "argmax"):
            raise ValueError("loss='cross_entropy' goes with target='argmax' (and only with it)")
        if self.loss == "cross_entropy" and self.output_activation is not None:
            raise ValueError("cross-entropy reads the outputs as logits: set output_activation=None")

    @property
    def n_outputs(self) -> int:
        return self.n_features // 2 if self.target in PAIR_TARGETS else self.n_features


def broadcast_per_instance(value: float | Tensor, n_inst: int, n: int, name: str, device: torch.device) -> Tensor:
    """A float or a tensor broadcastable to [n_inst, n], as a float32 [n_inst, n] tensor."""
    tensor = torch.as_tensor(value, dtype=torch.float32, device=device)
    try:
        return tensor.broadcast_to((n_inst, n)).clone()
    except RuntimeError:
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}, which can't broadcast to ({n_inst}, {n})") from None


# --------------------------------------------------------------------------------------------
# The section's functions, and the given loss
# --------------------------------------------------------------------------------------------
class LabFunctions(NamedTuple):
    """The section's answers that the lab runs (exercises 1-3 of section 7), with their signatures.

    generate_features(feature_probability [inst feats], batch_size, values) -> [batch inst feats]:
        each feature present independently with its probability, present values drawn as `values` says
        (one of VALUE_KINDS), 0 where absent.
    compute_target(features [... inst feats], target) -> the target named by `target` (one of TARGETS).
    cross_entropy_loss(logits [batch inst classes], labels [batch inst], importance [inst classes]) -> scalar:
        Σ_inst mean over labelled examples (label != NO_LABEL) of importance[inst, label] · (−log softmax)[label].
    """

    generate_features: Callable[[Tensor, int, str], Tensor]
    compute_target: Callable[[Tensor, str], Tensor]
    cross_entropy_loss: Callable[[Tensor, Tensor, Tensor], Tensor]


def weighted_mse(
    out: Float[Tensor, "batch inst out"], target: Float[Tensor, "batch inst out"], importance: Float[Tensor, "inst out"]
) -> Float[Tensor, ""]:
    """Σ_inst mean_{batch, outputs} importance · (target - out)², as in section 1."""
    return einops.reduce(importance * (target - out) ** 2, "batch inst out -> inst", "mean").sum()


def _per_instance(
    loss: Callable[[Tensor, Tensor, Tensor], Tensor],
    out: Float[Tensor, "batch inst out"],
    target: Tensor,
    importance: Float[Tensor, "inst out"],
) -> Float[Tensor, " inst"]:
    """The terms of a loss that sums over instances, one per instance (the loss applied to each instance alone)."""
    n_inst = out.shape[1]
    return torch.stack(
        [loss(out[:, k : k + 1], target[:, k : k + 1], importance[k : k + 1]).reshape(()) for k in range(n_inst)]
    )


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
class ExperimentModel(nn.Module):
    """The configurable toy model. Parameters (all with a leading `inst` axis):

    W:        [inst d_hidden feats]       the first layer (section 1's W)
    W_deep:   [layers-1, inst, d, d]      further hidden layers (empty for one hidden layer)
    b_hidden: [layers, inst, d_hidden]    hidden biases (only with hidden_bias=True)
    W_out:    [inst outputs d_hidden]     the output layer (only with tied=False; tied uses Wᵀ)
    b_final:  [inst outputs]

    Batches, targets and the cross-entropy loss come from `functions` (the section's exercises), so the
    model trains on whatever those functions compute.
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        functions: LabFunctions,
        feature_probability: float | Tensor = 1.0,
        importance: float | Tensor = 1.0,
        device: torch.device | str | None = None,
        seed: int | None = None,
    ):
        super().__init__()
        if not isinstance(functions, LabFunctions):
            raise TypeError(
                "functions must be LabFunctions(generate_features, compute_target, cross_entropy_loss), "
                f"got {type(functions).__name__}"
            )
        device = torch.device(device) if device is not None else get_device()
        self.cfg = cfg
        self.functions = functions
        probability = broadcast_per_instance(
            feature_probability, cfg.n_inst, cfg.n_features, "feature_probability", device
        )
        if not ((probability >= 0) & (probability <= 1)).all():
            raise ValueError("feature_probability must lie in [0, 1]")
        self.register_buffer("feature_probability", probability)
        self.register_buffer(
            "importance", broadcast_per_instance(importance, cfg.n_inst, cfg.n_outputs, "importance", device)
        )
        gen = torch.Generator().manual_seed(seed) if seed is not None else None

        def xavier(*shape: int) -> nn.Parameter:  # Xavier-normal per instance, drawn on the CPU so seeds agree
            std = math.sqrt(2 / (shape[-1] + shape[-2]))
            return nn.Parameter((torch.randn(shape, generator=gen) * std).to(device))

        d, n_layers = cfg.d_hidden, cfg.n_hidden_layers
        self.W = xavier(cfg.n_inst, d, cfg.n_features)
        self.W_deep = xavier(n_layers - 1, cfg.n_inst, d, d)
        self.b_hidden = nn.Parameter(torch.zeros(n_layers, cfg.n_inst, d, device=device)) if cfg.hidden_bias else None
        self.W_out = None if cfg.tied else xavier(cfg.n_inst, cfg.n_outputs, d)
        self.b_final = nn.Parameter(torch.zeros(cfg.n_inst, cfg.n_outputs, device=device))

    def hidden(self, features: Float[Tensor, "... inst feats"]) -> Float[Tensor, "... inst d_hidden"]:
        """The last hidden layer's activations (dropout applied in training mode)."""
        act = ACTIVATIONS[self.cfg.hidden_activation]
        h = einops.einsum(features, self.W, "... inst feats, inst d feats -> ... inst d")
        for layer in range(self.cfg.n_hidden_layers):
            if layer > 0:
                h = einops.einsum(h, self.W_deep[layer - 1], "... inst d_in, inst d d_in -> ... inst d")
            if self.b_hidden is not None:
                h = h + self.b_hidden[layer]
            h = F.dropout(act(h), self.cfg.dropout, self.training)
        return h

    def forward(self, features: Float[Tensor, "... inst feats"]) -> Float[Tensor, "... inst out"]:
        h = self.hidden(features)
        if self.W_out is None:
            out = einops.einsum(h, self.W, "... inst d, inst d out -> ... inst out")
        else:
            out = einops.einsum(h, self.W_out, "... inst d, inst out d -> ... inst out")
        return ACTIVATIONS[self.cfg.output_activation](out + self.b_final)

    def generate_batch(self, batch_size: int) -> Float[Tensor, "batch inst feats"]:
        return self.functions.generate_features(self.feature_probability, batch_size, self.cfg.values)

    def target(self, batch: Float[Tensor, "batch inst feats"]) -> Tensor:
        return self.functions.compute_target(batch, self.cfg.target)

    def calculate_loss(self, out: Float[Tensor, "batch inst out"], batch: Float[Tensor, "batch inst feats"]) -> Tensor:
        if self.cfg.loss == "cross_entropy":
            return self.functions.cross_entropy_loss(out, self.target(batch), self.importance)
        return weighted_mse(out, self.target(batch), self.importance)

    @torch.inference_mode()
    def evaluate(self, batch_size: int = 10_000, seed: int = 0) -> dict[str, Tensor]:
        """Per-instance metrics on a fresh seeded batch, dropout off: `loss` [inst] and, for
        cross-entropy, `accuracy` [inst] (over labelled examples); for binary targets, `error_rate` [inst]
        (fraction of outputs on the wrong side of 1/2)."""
        was_training = self.training
        self.eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            batch = self.generate_batch(batch_size)
        out, target = self(batch), self.target(batch)
        metrics: dict[str, Tensor] = {}
        if self.cfg.loss == "cross_entropy":
            metrics["loss"] = _per_instance(self.functions.cross_entropy_loss, out, target, self.importance)
            valid = target != NO_LABEL
            metrics["accuracy"] = ((out.argmax(-1) == target) & valid).sum(0) / valid.sum(0).clamp(min=1)
        else:
            metrics["loss"] = einops.reduce(self.importance * (target - out) ** 2, "batch inst out -> inst", "mean")
            if self.cfg.target in ("and_pairs", "or_pairs"):
                metrics["error_rate"] = ((out > 0.5).float() != target).float().mean((0, 2))
        self.train(was_training)
        return metrics

    def optimize(
        self,
        batch_size: int = 1024,
        steps: int = 5_000,
        lr: float = 1e-3,
        lr_scale: Schedule = constant_lr,
        log_freq: int = 100,
        progress: bool = True,
    ) -> list[float]:
        """Train every instance at once with the shared loop (Adam)."""
        return optimize(
            self, batch_size=batch_size, steps=steps, log_freq=log_freq, lr=lr, lr_scale=lr_scale, progress=progress
        )


def run_experiment(
    cfg: ExperimentConfig,
    functions: LabFunctions,
    feature_probability: float | Tensor = 1.0,
    importance: float | Tensor = 1.0,
    steps: int = 3_000,
    batch_size: int = 1024,
    lr: float = 1e-2,
    lr_scale: Schedule = constant_lr,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> ExperimentModel:
    """Seed, build and train one batch of instances with `functions`; returns the trained model (losses in
    `model.losses`)."""
    model = ExperimentModel(cfg, functions, feature_probability, importance, device=device, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.losses = model.optimize(batch_size=batch_size, steps=steps, lr=lr, lr_scale=lr_scale, progress=progress)
    return model


def with_options(cfg: ExperimentConfig, **changes: Any) -> ExperimentConfig:
    """A copy of `cfg` with some fields changed (validated again)."""
    return replace(cfg, **changes)


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------
def random_alignment_baseline(alignment: Callable[[Tensor], Tensor], d: int, n: int = 100_000, seed: int = 0) -> float:
    """The mean of `alignment` (section 7's basis_alignment: W [inst d feats] -> [inst feats]) over n uniformly
    random directions in d dimensions: what 'no preferred basis' gives."""
    gen = torch.Generator().manual_seed(seed)
    return alignment(torch.randn(1, d, n, generator=gen)).mean().item()


def neurons_per_feature(W: Float[Tensor, "inst d feats"]) -> Float[Tensor, "inst feats"]:
    """Participation ratio (Σ_k W_ki²)² / Σ_k W_ki⁴: the effective number of neurons a feature writes to."""
    sq = W**2
    return sq.sum(1) ** 2 / (sq**2).sum(1).clamp(min=1e-12)


def n_represented(W: Float[Tensor, "inst d feats"], threshold: float = 0.5) -> Float[Tensor, " inst"]:
    """How many features have ‖Wᵢ‖ above `threshold` (section 1's 'represented' features), per instance."""
    return (W.norm(dim=1) > threshold).sum(-1).float()


def describe_neurons(model: "ExperimentModel", inst: int, threshold: float = 0.3) -> str:
    """Which input pairs (2j, 2j+1) each first-layer neuron of instance `inst` reads, with the signs of its weights
    and of its bias: a pair counts when one of its weights is above `threshold` × the neuron's largest |weight|."""
    W = model.W[inst].detach().cpu()  # [d_hidden feats]
    bias = model.b_hidden[0, inst].detach().cpu() if model.b_hidden is not None else torch.zeros(W.shape[0])
    parts = []
    for k, row in enumerate(W):
        big = row.abs() >= threshold * row.abs().max()
        pairs = sorted({f // 2 for f in big.nonzero().flatten().tolist()})
        read = " ".join(
            f"pair {j} ({'+' if row[2 * j] > 0 else '−'}{'+' if row[2 * j + 1] > 0 else '−'})" for j in pairs
        )
        parts.append(f"n{k}: {read}, bias {'+' if bias[k] > 0 else '−'}")
    return "; ".join(parts)


def two_class_probability(n_features: int, n_dense: int, p_dense: float, p_sparse: float) -> Tensor:
    """Per-feature probabilities [feats]: the first n_dense features with p_dense, the rest with p_sparse."""
    if not 0 <= n_dense <= n_features:
        raise ValueError(f"n_dense must lie in [0, {n_features}], got {n_dense}")
    return torch.tensor([p_dense] * n_dense + [p_sparse] * (n_features - n_dense))


# --------------------------------------------------------------------------------------------
# Figures (in the style of utils.part1_superposition, whose helpers draw feature directions and norms)
# --------------------------------------------------------------------------------------------
# Every helper takes tensors (or lists of numbers), never modifies them (all go through
# `plotly_utils.to_numpy`, which copies), and returns a plotly Figure, shown unless `show=False`.
_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def _finish(fig: go.Figure, title: str, xaxis: str, yaxis: str, show: bool, **layout: Any) -> go.Figure | None:
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis, template="simple_white", **layout)
    return show_or_return(fig, show)


def plot_distributions(
    groups: Mapping[str, Any],
    title: str,
    yaxis: str,
    reference: float | None = None,
    reference_label: str = "reference",
    xaxis: str = "group",
    show: bool = True,
) -> go.Figure | None:
    """A box with every point for each named group of numbers (e.g. one value per feature and instance).

    `reference`: an optional horizontal dashed line (e.g. what random directions would give), labelled on the
    right, clear of the first box.
    """
    fig = go.Figure()
    for i, (name, values) in enumerate(groups.items()):
        y = np.asarray(to_numpy(values), dtype=float).ravel()
        fig.add_trace(
            go.Box(
                y=y,
                name=name,
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker=dict(size=4),
                line=dict(color=_COLORS[i % len(_COLORS)]),
                showlegend=False,
            )
        )
    if reference is not None:
        fig.add_hline(
            y=reference,
            line_dash="dash",
            line_color="grey",
            line_width=2,
            annotation_text=reference_label,
            annotation_position="top right",
        )
    return _finish(fig, title, xaxis, yaxis, show, height=420, width=700)


def plot_lines(
    x: Sequence[float],
    series: Mapping[str, Any],
    title: str,
    xaxis: str,
    yaxis: str,
    log_x: bool = False,
    log_y: bool = False,
    show: bool = True,
) -> go.Figure | None:
    """One line with markers per named series, all over the same x values."""
    fig = go.Figure()
    for i, (name, values) in enumerate(series.items()):
        fig.add_trace(
            go.Scatter(
                x=list(to_numpy(x)),
                y=np.asarray(to_numpy(values), dtype=float).ravel(),
                name=name,
                mode="lines+markers",
                line=dict(color=_COLORS[i % len(_COLORS)]),
            )
        )
    if log_x:
        fig.update_xaxes(type="log")
    if log_y:
        fig.update_yaxes(type="log")
    return _finish(fig, title, xaxis, yaxis, show, height=400, width=700)


def plot_functions(
    x: Any,
    curves: Mapping[str, Any],
    title: str,
    xaxis: str = "input x",
    yaxis: str = "output",
    dashed: Sequence[str] = (),
    show: bool = True,
) -> go.Figure | None:
    """Curves over one input axis (e.g. a model's output against the target it approximates)."""
    fig = go.Figure()
    x_np = np.asarray(to_numpy(x), dtype=float).ravel()
    for i, (name, y) in enumerate(curves.items()):
        fig.add_trace(
            go.Scatter(
                x=x_np,
                y=np.asarray(to_numpy(y), dtype=float).ravel(),
                name=name,
                mode="lines",
                line=dict(color=_COLORS[i % len(_COLORS)], dash="dash" if name in dashed else "solid"),
            )
        )
    return _finish(fig, title, xaxis, yaxis, show, height=400, width=700)


def plot_weight_heatmaps(
    weights: Sequence[Any],
    titles: Sequence[str],
    title: str,
    xaxis: str = "feature",
    yaxis: str = "neuron",
    show: bool = True,
) -> go.Figure | None:
    """Side-by-side heatmaps of 2D weight matrices (rows = neurons), one shared diverging colour scale."""
    mats = [np.asarray(to_numpy(w), dtype=float) for w in weights]
    if any(m.ndim != 2 for m in mats):
        raise ValueError(f"each weight matrix should be 2D, got shapes {[m.shape for m in mats]}")
    lim = max(float(np.abs(m).max()) for m in mats) or 1.0
    fig = make_subplots(rows=1, cols=len(mats), subplot_titles=list(titles), horizontal_spacing=0.06)
    for i, m in enumerate(mats):
        fig.add_trace(
            go.Heatmap(
                z=m,
                zmin=-lim,
                zmax=lim,
                colorscale="RdBu",
                reversescale=True,
                showscale=i == 0,
                colorbar=dict(title="weight"),
                hovertemplate="neuron %{y}, feature %{x}: %{z:.2f}<extra></extra>",
            ),
            row=1,
            col=i + 1,
        )
        fig.update_xaxes(title_text=xaxis, dtick=1, row=1, col=i + 1)
    fig.update_yaxes(title_text=yaxis, autorange="reversed", col=1)
    fig.update_yaxes(autorange="reversed", dtick=1)
    fig.update_layout(title=title, template="simple_white", height=380, width=280 * len(mats) + 120)
    return show_or_return(fig, show)
