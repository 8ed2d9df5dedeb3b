"""Given code for section 8 (parameter decomposition): the weight-chain view of a toy model, the
decomposition assembled from the section's exercises, its training loop, measurements and figures.

A parameter decomposition works on weight matrices, so every toy model is first turned into a
`WeightChain`: a list of matrices `W_l: [inst d_out d_in]`, each followed by an optional bias and an
optional activation. Section 1's tied model becomes two matrices (`W` and `Wᵀ`, decomposed
separately), section 2's |x| model two (`W1`, `W2`), and section 7's configurable model as many as it
has. This module imports no section code: the builders read the models' parameters by name, and a
`Decomposition` runs the section's answers, passed in as `SPDFunctions` (as section 7's lab receives
`LabFunctions`), so a learner's own code drives the training.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import einops
import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from jaxtyping import Float
from plotly.subplots import make_subplots
from torch import Tensor, nn
from tqdm.auto import tqdm

from plotly_utils import show_or_return, to_numpy
from utils.schedules import Schedule, constant_lr, cosine_decay_lr

ACTIVATIONS: dict[str | None, Callable[[Tensor], Tensor]] = {
    None: lambda x: x,
    "relu": F.relu,
    "gelu": F.gelu,
}


# --------------------------------------------------------------------------------------------
# A toy model as a chain of weight matrices
# --------------------------------------------------------------------------------------------
@dataclass
class WeightChain:
    """x_{l+1} = act_l(W_l x_l + b_l) for l = 0 .. L-1; the model's output is x_L.

    weights: L tensors [inst d_out d_in] (frozen copies); biases: L tensors [inst d_out] or None;
    activations: L names from ACTIVATIONS; names: one label per matrix (for figures).
    """

    weights: list[Tensor]
    biases: list[Tensor | None]
    activations: list[str | None]
    names: list[str]

    def __post_init__(self) -> None:
        n = len(self.weights)
        if not (len(self.biases) == len(self.activations) == len(self.names) == n) or n == 0:
            raise ValueError("weights, biases, activations and names need one entry per matrix")
        self.weights = [w.detach().clone() for w in self.weights]
        self.biases = [None if b is None else b.detach().clone() for b in self.biases]
        for layer in range(1, n):
            if self.weights[layer].shape[-1] != self.weights[layer - 1].shape[-2]:
                raise ValueError(
                    f"matrix {layer} reads {self.weights[layer].shape[-1]} dims, "
                    f"matrix {layer - 1} writes {self.weights[layer - 1].shape[-2]}"
                )

    @property
    def n_inst(self) -> int:
        return self.weights[0].shape[0]

    def forward(
        self,
        x: Float[Tensor, "batch inst d_in"],
        layer_fn: Callable[[int, Tensor], Tensor] | None = None,
    ) -> Float[Tensor, "batch inst d_out"]:
        """The model's output. `layer_fn(l, a)`, when given, replaces the product W_l a (without the bias)."""
        return self.run(x, layer_fn)[0]

    __call__ = forward

    def run(self, x: Tensor, layer_fn: Callable[[int, Tensor], Tensor] | None = None) -> tuple[Tensor, list[Tensor]]:
        """(output, inputs): inputs[l] is the activation that matrix l multiplies."""
        inputs, a = [], x
        for layer, W in enumerate(self.weights):
            inputs.append(a)
            if layer_fn is None:
                pre = einops.einsum(a, W, "... inst d_in, inst d_out d_in -> ... inst d_out")
            else:
                pre = layer_fn(layer, a)
            if self.biases[layer] is not None:
                pre = pre + self.biases[layer]
            a = ACTIVATIONS[self.activations[layer]](pre)
        return a, inputs

    def select(self, index: Tensor | Sequence[int]) -> WeightChain:
        """The chain of the instances in `index` (in that order; an instance may appear several times)."""
        index = torch.as_tensor(index, device=self.weights[0].device)
        return WeightChain(
            [w[index] for w in self.weights],
            [None if b is None else b[index] for b in self.biases],
            list(self.activations),
            list(self.names),
        )


def chain_from_tms(model: nn.Module) -> WeightChain:
    """Section 1's ReLU(Wᵀ W x + b_final): two matrices, W [inst d feats] and Wᵀ [inst feats d]."""
    W = model.W.detach()
    return WeightChain([W, W.transpose(-1, -2)], [None, model.b_final], [None, "relu"], ["W (in)", "Wᵀ (out)"])


def chain_from_computation(model: nn.Module) -> WeightChain:
    """Section 2's |x| model ReLU(W2 ReLU(W1 x) + b_final): W1 [inst d feats], W2 [inst feats d]."""
    return WeightChain(
        [model.W1.detach(), model.W2.detach()], [None, model.b_final], ["relu", "relu"], ["W1 (in)", "W2 (out)"]
    )


def chain_from_experiment(model: nn.Module) -> WeightChain:
    """Section 7's ExperimentModel (without dropout): W, the deeper hidden layers, then W_out or Wᵀ."""
    cfg = model.cfg
    if cfg.hidden_activation not in ACTIVATIONS or cfg.output_activation not in ACTIVATIONS:
        raise ValueError("only None, relu and gelu activations are supported")
    weights = [model.W.detach()] + [model.W_deep[i].detach() for i in range(cfg.n_hidden_layers - 1)]
    biases = [model.b_hidden[i].detach() if model.b_hidden is not None else None for i in range(cfg.n_hidden_layers)]
    acts = [cfg.hidden_activation] * cfg.n_hidden_layers
    W_out = model.W.detach().transpose(-1, -2) if model.W_out is None else model.W_out.detach()
    names = ["W (in)"] + [f"W_deep[{i}]" for i in range(cfg.n_hidden_layers - 1)] + ["W_out"]
    return WeightChain([*weights, W_out], [*biases, model.b_final], [*acts, cfg.output_activation], names)


# --------------------------------------------------------------------------------------------
# Stochastic parameter decomposition, assembled from the section's exercises
# --------------------------------------------------------------------------------------------
class SPDFunctions(NamedTuple):
    """The section's answers that a decomposition runs (exercises 3-10), with their signatures.

    faithfulness_loss(weights, U, V) -> scalar;
    causal_importance: the class CausalImportance(n_inst, C, d_ci, alpha, device), whose forward(a, V)
        returns (lower-leaky, upper-leaky) importances [batch inst C];
    sample_masks(lower importances) -> (masks, delta_masks);
    masked_product(a, W, U, V, mask, delta_mask) -> [batch inst d_out];
    stochastic_reconstruction_losses(chain, U, V, x, masks, delta_masks) -> (full, layerwise);
    importance_minimality_loss(upper importances, p, eps) -> scalar;
    adversarial_sources(loss_fn, init, n_steps, step_size) -> sources (only used when its coefficient is set).
    """

    faithfulness_loss: Callable
    causal_importance: type
    sample_masks: Callable
    masked_product: Callable
    stochastic_reconstruction_losses: Callable
    importance_minimality_loss: Callable
    adversarial_sources: Callable | None = None


@dataclass
class SPDConfig:
    """Settings of a stochastic parameter decomposition (the loss coefficients are in `coeffs`)."""

    C: int = 20  # subcomponents per matrix
    d_ci: int = 8  # hidden width of every causal-importance MLP
    alpha: float = 0.01  # leak of the hard sigmoids
    p_start: float = 2.0  # importance-minimality exponent at the start ...
    p_end: float = 0.5  # ... and at the end of training
    p_anneal_from: float = 0.3  # fraction of training after which p falls linearly from p_start to p_end
    eps: float = 1e-12
    coeffs: dict[str, float] = field(default_factory=lambda: {
        "faithfulness": 0.0, "stochastic_recon": 1.0, "stochastic_recon_layerwise": 1.0,
        "importance_minimality": 3e-3, "adversarial_recon": 0.0,
    })  # fmt: skip
    adversarial_steps: int = 3
    adversarial_step_size: float = 0.3
    warmup_steps: int = 200  # faithfulness-only steps (AdamW with weight decay) before the main loop
    steps: int = 4_000
    batch_size: int = 256
    lr: float = 1e-2


class Decomposition(nn.Module):
    """SPD of every matrix of a `WeightChain`: `U[l]` [inst d_out C], `V[l]` [inst C d_in] and one
    causal-importance module per matrix. Every loss comes from `functions` (the learner's answers)."""

    def __init__(self, chain: WeightChain, cfg: SPDConfig, functions: SPDFunctions, seed: int = 0):
        super().__init__()
        if not isinstance(functions, SPDFunctions):
            raise TypeError(f"functions must be SPDFunctions(...), got {type(functions).__name__}")
        self.chain, self.cfg, self.functions = chain, cfg, functions
        device = chain.weights[0].device
        self.U, self.V, self.ci_fns = nn.ParameterList(), nn.ParameterList(), nn.ModuleList()
        with torch.random.fork_rng(devices=[]):  # seeded on the CPU, without touching the global random state
            torch.manual_seed(seed)
            for W in chain.weights:
                n_inst, d_out, d_in = W.shape
                self.V.append(nn.Parameter((torch.randn(n_inst, cfg.C, d_in) / math.sqrt(d_in)).to(device)))
                self.U.append(nn.Parameter((torch.randn(n_inst, d_out, cfg.C) / math.sqrt(cfg.C)).to(device)))
                self.ci_fns.append(functions.causal_importance(n_inst, cfg.C, cfg.d_ci, cfg.alpha).to(device))
        self.progress = 0.0  # fraction of training done (train_spd sets it; it drives the annealing of p)

    @property
    def p(self) -> float:
        cfg = self.cfg
        t = max(0.0, (self.progress - cfg.p_anneal_from) / (1 - cfg.p_anneal_from))
        return cfg.p_start + (cfg.p_end - cfg.p_start) * min(t, 1.0)

    def causal_importances(self, inputs: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        pairs = [ci_fn(a, V) for ci_fn, a, V in zip(self.ci_fns, inputs, self.V, strict=True)]
        return [lower for lower, _ in pairs], [upper for _, upper in pairs]

    def losses(self, x: Float[Tensor, "batch inst d_in"]) -> dict[str, Tensor]:
        """Every loss term on one batch (each summed over instances): the whole method on one screen."""
        fn, U, V = self.functions, list(self.U), list(self.V)
        with torch.no_grad():
            _, inputs = self.chain.run(x)  # the activation each matrix multiplies
        lower, upper = self.causal_importances(inputs)
        masks, delta_masks = fn.sample_masks(lower)
        full, layerwise = fn.stochastic_reconstruction_losses(self.chain, U, V, x, masks, delta_masks)
        terms = {
            "faithfulness": fn.faithfulness_loss(self.chain.weights, U, V),
            "stochastic_recon": full,
            "stochastic_recon_layerwise": layerwise,
            "importance_minimality": fn.importance_minimality_loss(upper, self.p, self.cfg.eps),
        }
        if self.cfg.coeffs.get("adversarial_recon"):
            terms["adversarial_recon"] = self.adversarial_loss(x, lower)
        return terms

    def adversarial_loss(self, x: Tensor, lower: list[Tensor]) -> Tensor:
        """Reconstruction loss at the worst masks found by projected gradient ascent from random sources."""
        fn, U, V, n = self.functions, list(self.U), list(self.V), len(lower)

        def masks_from(sources: list[Tensor], ci: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
            return [g + (1 - g) * r for g, r in zip(ci, sources[:n], strict=True)], sources[n:]

        def loss_fn(sources: list[Tensor]) -> Tensor:  # the search treats U, V and the importances as fixed
            masks, deltas = masks_from(sources, [g.detach() for g in lower])
            U_, V_ = [u.detach() for u in U], [v.detach() for v in V]
            return fn.stochastic_reconstruction_losses(self.chain, U_, V_, x, masks, deltas)[0]

        init = [torch.rand_like(g) for g in lower] + [torch.rand_like(g[..., 0]) for g in lower]
        sources = fn.adversarial_sources(loss_fn, init, self.cfg.adversarial_steps, self.cfg.adversarial_step_size)
        masks, deltas = masks_from(sources, lower)
        return fn.stochastic_reconstruction_losses(self.chain, U, V, x, masks, deltas)[0]

    def warm_up(self, steps: int, lr: float = 1e-2, weight_decay: float = 0.1) -> None:
        """Fit U V to the weights (faithfulness only) with AdamW before the main training."""
        optimizer = torch.optim.AdamW([*self.U, *self.V], lr=lr, weight_decay=weight_decay)
        for _ in range(steps):
            loss = self.functions.faithfulness_loss(self.chain.weights, list(self.U), list(self.V))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    @torch.no_grad()
    def importances_on(self, x: Float[Tensor, "batch inst d_in"]) -> list[Float[Tensor, "batch inst C"]]:
        """The (lower-leaky) causal importances of every subcomponent on a batch, one tensor per matrix."""
        return self.causal_importances(self.chain.run(x)[1])[0]

    @torch.no_grad()
    def output_with(self, x: Tensor, masks: list[Tensor] | None = None, delta_mask: float = 0.0) -> Tensor:
        """The chain's output with every matrix replaced by its masked pieces (masks None: all pieces whole)."""

        def layer_fn(layer: int, a: Tensor) -> Tensor:
            m = torch.ones(*a.shape[:-1], self.cfg.C, device=a.device) if masks is None else masks[layer]
            dm = torch.full(a.shape[:-1], delta_mask, device=a.device)
            return self.functions.masked_product(a, self.chain.weights[layer], self.U[layer], self.V[layer], m, dm)

        return self.chain(x, layer_fn)

    @torch.no_grad()
    def instance_losses(self, x: Tensor, n_draws: int = 4) -> Float[Tensor, " inst"]:
        """The weighted training loss (at the final p) of every instance on its own, mean over `n_draws` masks."""
        coeffs = self.cfg.coeffs
        total = torch.zeros(self.chain.n_inst, device=x.device)
        for k in range(self.chain.n_inst):
            single = self.select([k])
            single.progress = 1.0
            for _ in range(n_draws):
                terms = single.losses(x[:, k : k + 1])
                total[k] += sum(coeffs[name] * value for name, value in terms.items() if coeffs.get(name)) / n_draws
        return total

    def select(self, index: Tensor | Sequence[int]) -> Decomposition:
        """A decomposition of the instances in `index` only (parameters copied)."""
        index = torch.as_tensor(index, device=self.chain.weights[0].device)
        new = Decomposition(self.chain.select(index), self.cfg, self.functions)
        new.progress = self.progress
        with torch.no_grad():
            for mine, theirs in zip(self.parameters(), new.parameters(), strict=True):
                theirs.copy_(mine[index])
        return new


@dataclass
class SPDHistory:
    """Every `log_freq` steps: each loss term (per instance, averaged over instances) and the time."""

    steps: list[int] = field(default_factory=list)
    terms: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0


def train_spd(
    decomposition: nn.Module, generate_batch: Callable[[int], Tensor], coeffs: dict[str, float], steps: int = 4_000,
    batch_size: int = 512, lr: float = 1e-2, lr_scale: Schedule = constant_lr, log_freq: int = 50, progress: bool = True
) -> SPDHistory:  # fmt: skip
    """Adam on `decomposition.losses(batch)`, a dict of scalar loss terms, weighted by `coeffs`.

    Before each step it sets `decomposition.progress` to the fraction of training done.
    Terms without a coefficient are logged but not trained on. Losses are summed over instances, so
    every instance is its own decomposition; the log divides by the number of instances.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got steps={steps}, batch_size={batch_size}")
    optimizer = torch.optim.Adam([p for p in decomposition.parameters() if p.requires_grad], lr=lr)
    history, start = SPDHistory(), time.perf_counter()
    n_inst = decomposition.chain.n_inst
    bar = tqdm(range(steps), disable=not progress, mininterval=0.5)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr * lr_scale(step, steps)
        decomposition.progress = step / steps  # for settings that change over training (the exponent p)
        terms = decomposition.losses(generate_batch(batch_size))
        loss = sum(coeffs[name] * value for name, value in terms.items() if coeffs.get(name))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % log_freq == 0 or step == steps - 1:
            history.steps.append(step)
            for name, value in terms.items():
                history.terms.setdefault(name, []).append(value.item() / n_inst)
            bar.set_postfix({k: f"{v[-1]:.2g}" for k, v in history.terms.items()})
    history.seconds = time.perf_counter() - start
    return history


def decompose_all(
    chain: WeightChain, cfg: SPDConfig, functions: SPDFunctions, generate_batch: Callable[[int], Tensor],
    restarts: int = 1, seed: int = 0, progress: bool = True,
) -> tuple[Decomposition, SPDHistory]:  # fmt: skip
    """Decompose every instance of `chain` `restarts` times in one batched run (warm-up, then `train_spd`).
    Restart r of instance k is instance r * n_inst + k of the returned decomposition."""
    n_inst = chain.n_inst
    repeated = chain.select(torch.arange(n_inst).repeat(restarts))
    decomposition = Decomposition(repeated, cfg, functions, seed)
    decomposition.warm_up(cfg.warmup_steps)
    history = train_spd(
        decomposition, lambda n: generate_batch(n).repeat(1, restarts, 1), cfg.coeffs, steps=cfg.steps,
        batch_size=cfg.batch_size, lr=cfg.lr, lr_scale=cosine_decay_lr, progress=progress,
    )  # fmt: skip
    return decomposition, history


def restart_losses(
    decomposition: Decomposition, generate_batch: Callable[[int], Tensor], restarts: int
) -> Float[Tensor, "restarts inst"]:
    """The training loss of every restart of every instance (of a `decompose_all` result) on a fresh batch."""
    x = generate_batch(8 * decomposition.cfg.batch_size).repeat(1, restarts, 1)
    return decomposition.instance_losses(x).view(restarts, -1)


def decompose(
    chain: WeightChain, cfg: SPDConfig, functions: SPDFunctions, generate_batch: Callable[[int], Tensor],
    restarts: int = 1, seed: int = 0, progress: bool = True,
) -> tuple[Decomposition, SPDHistory]:  # fmt: skip
    """`decompose_all`, then keep, for every instance, the restart with the lowest training loss."""
    decomposition, history = decompose_all(chain, cfg, functions, generate_batch, restarts, seed, progress)
    if restarts == 1:
        return decomposition, history
    losses = restart_losses(decomposition, generate_batch, restarts)
    best = losses.argmin(0) * chain.n_inst + torch.arange(chain.n_inst, device=losses.device)
    return decomposition.select(best), history


# --------------------------------------------------------------------------------------------
# Inputs and reference pieces
# --------------------------------------------------------------------------------------------
def one_hot_inputs(
    n_features: int, n_inst: int, value: float = 1.0, device: torch.device | str = "cpu"
) -> Float[Tensor, "feats inst feats"]:
    """Example f has feature f on at `value` and every other feature off, in every instance."""
    return (value * torch.eye(n_features, device=device))[:, None, :].expand(n_features, n_inst, n_features).clone()


def signed_one_hot_inputs(
    n_features: int, n_inst: int, value: float = 0.5, device: torch.device | str = "cpu"
) -> Float[Tensor, "2*feats inst feats"]:
    """Feature f on at +value (examples 0 .. n-1), then at -value (examples n .. 2n-1)."""
    x = one_hot_inputs(n_features, n_inst, value, device)
    return torch.cat([x, -x])


def signed_labels(n_features: int) -> list[str]:
    return [f"+{i}" for i in range(n_features)] + [f"-{i}" for i in range(n_features)]


def pair_inputs(n_features: int, n_inst: int, device: torch.device | str = "cpu") -> Float[Tensor, "inputs inst feats"]:
    """The one-hot inputs, then every pair (2j, 2j+1) on together, all at value 1."""
    x = one_hot_inputs(n_features, n_inst, 1.0, device)
    return torch.cat([x, x[0::2] + x[1::2]])


def pair_labels(n_features: int) -> list[str]:
    return [str(i) for i in range(n_features)] + [f"{j}&{j + 1}" for j in range(0, n_features, 2)]


def column_terms(W: Float[Tensor, "inst d_out d_in"]) -> Float[Tensor, "inst d_in d_out d_in"]:
    """The rank-one pieces W_{:, j} e_jᵀ (column j of W, everything else zero), one per input dimension j."""
    eye = torch.eye(W.shape[-1], device=W.device, dtype=W.dtype)
    return einops.einsum(W, eye, "inst d_out j, j d_in -> inst j d_out d_in")


# --------------------------------------------------------------------------------------------
# Measuring what a model or a decomposition does
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def neighbour_angles(W: Float[Tensor, "inst 2 feats"]) -> Float[Tensor, "inst feats"]:
    """Angles (degrees) between consecutive feature directions going round the circle (a pentagon: all 72)."""
    angles = torch.atan2(W[:, 1], W[:, 0]).sort(-1).values
    gaps = torch.diff(angles, dim=-1, append=angles[:, :1] + 2 * math.pi)
    return torch.rad2deg(gaps)


@torch.no_grad()
def inputs_hurt(losses: Float[Tensor, "inst k batch"], fraction: float = 0.1) -> Float[Tensor, "inst k"]:
    """How many inputs each ablated piece hurts: ablation loss above `fraction` of that piece's worst."""
    return (losses > fraction * losses.amax(-1, keepdim=True)).float().sum(-1)


@torch.no_grad()
def one_piece_per_feature(ci: Float[Tensor, "feats inst C"], high: float = 0.9) -> Float[Tensor, " inst"]:
    """Per instance: does every feature have exactly one subcomponent with importance above `high` on its
    one-hot input, a different one for every feature, and above `high` on no other feature's input?"""
    above = ci > high  # [feats inst C]
    return (above.sum(-1) == 1).all(0) & (above.sum(0) <= 1).all(-1)


@torch.no_grad()
def evaluate_decomposition(dec: Decomposition, generate_batch: Callable[[int], Tensor], one_hot: Tensor,
                           n_batch: int = 20_000) -> dict[str, Tensor]:  # fmt: skip
    """What a decomposition found, per instance.

    `matched`: [n_matrices inst], one_piece_per_feature on the one-hot inputs;
    `alive`: [n_matrices inst], subcomponents with importance above 0.1 on some input of a large batch;
    `recon_error`: [inst], MSE of the model run with masks equal to the causal importances (the unimportant
    pieces switched off, no delta), relative to the mean square of the original output;
    `sum_error`: [inst], the same with every piece whole: how well the pieces add up to the weights.
    """
    ci_one_hot = dec.importances_on(one_hot)
    x = generate_batch(n_batch)
    ci = dec.importances_on(x)
    target = dec.chain(x)
    relative = lambda out: (out - target).pow(2).mean((0, 2)) / target.pow(2).mean((0, 2))
    return {
        "matched": torch.stack([one_piece_per_feature(c) for c in ci_one_hot]),
        "alive": torch.stack([(c > 0.1).any(0).sum(-1) for c in ci]),
        "recon_error": relative(dec.output_with(x, ci)),
        "sum_error": relative(dec.output_with(x, None)),
    }


@torch.no_grad()
def piece_writes(U: Float[Tensor, "d_out C"], V: Float[Tensor, "C d_in"], order: Sequence[int]) -> Tensor:
    """u_c v_{c,i} for each piece c in `order`, i the input it reads most: the column of W the piece writes."""
    V_o, U_o = V[list(order)], U[:, list(order)]
    return (U_o * V_o[torch.arange(len(order)), V_o.abs().argmax(-1)]).T  # [pieces d_out]


def best_cosines(targets: Float[Tensor, "n d"], directions: Float[Tensor, "m d"]) -> tuple[Tensor, Tensor]:
    """(best cosine, index of the best direction) for each target."""
    return F.cosine_similarity(targets[:, None], directions[None], dim=-1).max(1)


@torch.no_grad()
def sae_on_one_hot(sae: nn.Module, W: Tensor, one_hot: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(h, SAE latents, SAE reconstruction of h) for a TMS model's one-hot inputs [feats inst feats]."""
    h = einops.einsum(one_hot, W, "feats inst f, inst d f -> feats inst d")
    _, _, acts, h_rec = sae(h)
    return h, acts, h_rec


@torch.no_grad()
def computed_halves(model: nn.Module, value: float = 0.5) -> Float[Tensor, "inst 2*feats"]:
    """Which signed inputs an |x| model computes: its output at the feature's own position is at least value / 2."""
    x = signed_one_hot_inputs(model.cfg.n_features, model.cfg.n_inst, value, model.b_final.device)
    out = model(x)  # [2 feats, inst, feats]
    own = torch.arange(x.shape[0], device=x.device) % model.cfg.n_features
    return (out[torch.arange(x.shape[0]), :, own] >= value / 2).T


@torch.no_grad()
def describe_pieces(
    ci: Float[Tensor, "inputs C"], U: Float[Tensor, "d_out C"], V: Float[Tensor, "C d_in"],
    input_labels: Sequence[str], alive: Tensor, threshold: float = 0.5,
) -> list[dict[str, Any]]:  # fmt: skip
    """For every alive piece: the inputs it is important on, and how concentrated its read and write
    directions are on one axis (max |cosine| with a basis vector: 1 is one coordinate, 1/sqrt(d) an even spread)."""
    rows = []
    for c in alive.nonzero().flatten().tolist():
        v, u = V[c], U[:, c]
        rows.append({
            "piece": c,
            "important_on": [input_labels[i] for i in (ci[:, c] > threshold).nonzero().flatten().tolist()],
            "read_axis": int(v.abs().argmax()),
            "read_concentration": float(v.abs().max() / v.norm().clamp_min(1e-12)),
            "write_axis": int(u.abs().argmax()),
            "write_concentration": float(u.abs().max() / u.norm().clamp_min(1e-12)),
        })  # fmt: skip
    return rows


# --------------------------------------------------------------------------------------------
# Printed summaries (the notebook's numbers)
# --------------------------------------------------------------------------------------------
def print_loss_summary(history: SPDHistory) -> None:
    """Each loss term at its first log, its lowest point and its end (per instance)."""
    for name, values in history.terms.items():
        print(f"{name:28s} start {values[0]:.3g}, min {min(values):.3g}, end {values[-1]:.3g}")


def print_evaluation(ev: dict[str, Tensor]) -> None:
    """The numbers of `evaluate_decomposition` for the TMS models."""
    print(f"models with one piece per feature in both matrices: {int(ev['matched'].all(0).sum())} of "
          f"{ev['matched'].shape[1]}")  # fmt: skip
    print("live pieces, per matrix (rows) and model:", ev["alive"].tolist())
    print("output error, unimportant pieces off:", [f"{e:.1%}" for e in ev["recon_error"].tolist()])
    print("output error, every piece whole:     ", [f"{e:.2%}" for e in ev["sum_error"].tolist()])


def print_computed_halves(model: nn.Module, ev: dict[str, Tensor]) -> None:
    """For each |x| model: the signed inputs it computes, its live pieces and its output error."""
    halves, n = computed_halves(model), model.cfg.n_features
    labels = signed_labels(n)
    for k in range(halves.shape[0]):
        both = int((halves[k, :n] & halves[k, n:]).sum())
        print(f"model {k}: computes {int(halves[k].sum())} of {2 * n} signed inputs ({both} features for both "
              f"signs): {[labels[i] for i in halves[k].nonzero().flatten().tolist()]}")  # fmt: skip
        print(f"  live pieces: W1 {int(ev['alive'][0, k])}, W2 {int(ev['alive'][1, k])}; "
              f"output error with unimportant pieces off: {ev['recon_error'][k]:.1%}")  # fmt: skip


def print_pieces(dec: Decomposition, layer: int, ci: Tensor, labels: Sequence[str], batch: Tensor, read: str,
                 write: str, inst: int = 0) -> None:  # fmt: skip
    """One line per live piece of one matrix (importance > 0.1 on some example of `batch`): the inputs it is
    important on (`ci` [inputs C], > 0.5), and its read and write axes with their concentrations."""
    alive = (dec.importances_on(batch)[layer][:, inst] > 0.1).any(0)
    rows = describe_pieces(ci, dec.U[layer][inst], dec.V[layer][inst], labels, alive)
    print(f"{dec.chain.names[layer]}: {len(rows)} live pieces")
    for r in sorted(rows, key=lambda r: r["important_on"]):
        print(f"  piece {r['piece']:2d}: important on {', '.join(r['important_on']) or '-':12s} reads {read} "
              f"{r['read_axis']:2d} ({r['read_concentration']:.2f}), writes {write} {r['write_axis']:2d} "
              f"({r['write_concentration']:.2f})")  # fmt: skip


def print_and_outputs(model: nn.Module, x: Tensor) -> None:
    """Each AND model's output j on the input with pair j on (it should be 1)."""
    n_pairs = model.cfg.n_features // 2
    with torch.no_grad():
        out = model(x)[-n_pairs:]  # [pairs inst outputs]
    for k in range(out.shape[1]):
        print(f"model {k}: output j on pair j (should be 1):", [f"{out[j, k, j]:.2f}" for j in range(n_pairs)])


def compare_sae_and_spd(W: Tensor, sae: nn.Module, dec: Decomposition, one_hot: Tensor, inst: int = 0) -> None:
    """Plot section 5's SAE against SPD's pieces of W on one TMS model, and print how each matches the features."""
    ci = dec.importances_on(one_hot)[0][:, inst]
    live = alive_order(ci)
    writes = piece_writes(dec.U[0][inst], dec.V[0][inst], live)  # [live pieces, 2]
    h, acts, h_rec = sae_on_one_hot(sae, W.detach(), one_hot)
    sae_dirs = sae.W_dec_normalized[inst].detach()
    plot_sae_vs_spd(W[inst], sae_dirs, acts[:, inst], writes, ci[:, live])
    columns = W.detach()[inst].T  # [feats 2]
    for name, directions in (("an SAE direction", sae_dirs), ("an SPD piece", writes)):
        print(f"best cosine of each feature with {name}:".ljust(50), [f"{v:.3f}" for v in best_cosines(columns,
              directions)[0].tolist()])  # fmt: skip
    piece = best_cosines(columns, writes)[1].tolist()
    print("length of the best SPD piece / length of Wᵢ:".ljust(50),
          [f"{writes[j].norm() / columns[i].norm():.3f}" for i, j in enumerate(piece)])  # fmt: skip
    print("length of the SAE's h / length of h (one-hot):".ljust(50),
          [f"{v:.3f}" for v in (h_rec.norm(dim=-1) / h.norm(dim=-1))[:, inst].tolist()])  # fmt: skip


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
def _heatmap(z: np.ndarray, zmax: float, colorscale: str = "Blues", zmin: float = 0.0, **kw: Any) -> go.Heatmap:
    return go.Heatmap(z=z, zmin=zmin, zmax=zmax, colorscale=colorscale, **kw)


def plot_ablation_heatmaps(
    svd_losses: Float[Tensor, "k feats"], column_losses: Float[Tensor, "feats feats"], show: bool = True
) -> go.Figure | None:
    """Ablation loss of each SVD term and of each column piece (rows) on each one-hot input (columns)."""
    svd, cols = np.asarray(to_numpy(svd_losses)), np.asarray(to_numpy(column_losses))
    zmax = float(max(svd.max(), cols.max(), 1e-12))
    n = cols.shape[-1]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55], horizontal_spacing=0.12,
                        subplot_titles=["removing one SVD term", "removing one column W_i e_iᵀ"])  # fmt: skip
    hover = "piece %{y}, input e_%{x}: %{z:.3g}<extra></extra>"
    fig.add_trace(_heatmap(svd, zmax, hovertemplate=hover, colorbar=dict(title="Δ output²", len=0.9)), row=1, col=1)
    fig.add_trace(_heatmap(cols, zmax, hovertemplate=hover, showscale=False), row=1, col=2)
    for col, k in ((1, svd.shape[0]), (2, n)):
        fig.update_xaxes(title_text="one-hot input (feature on)", tickvals=list(range(n)), row=1, col=col)
        fig.update_yaxes(title_text="piece removed", tickvals=list(range(k)), autorange="reversed", row=1, col=col)
    fig.update_layout(title="Which inputs does each rank-one piece of W matter for?", width=900, height=380,
                      template="simple_white")  # fmt: skip
    return show_or_return(fig, show)


def alive_order(ci: Float[Tensor, "feats C"], threshold: float = 0.1) -> list[int]:
    """Subcomponents whose importance exceeds `threshold` on some input, ordered by the input they peak on."""
    ci = torch.as_tensor(to_numpy(ci))
    alive = (ci > threshold).any(0).nonzero().flatten().tolist()
    return sorted(alive, key=lambda c: (int(ci[:, c].argmax()), -float(ci[:, c].max())))


def plot_causal_importance(
    ci: Sequence[Float[Tensor, "feats C"]],
    names: Sequence[str],
    title: str = "Causal importance of each subcomponent on each one-hot input",
    x_label: str = "one-hot input (feature on)",
    input_labels: Sequence[str] | None = None,
    threshold: float = 0.1,
    show: bool = True,
) -> go.Figure | None:
    """One heatmap per matrix: the subcomponents alive on some input (rows, sorted to a diagonal) by the inputs."""
    fig = make_subplots(rows=1, cols=len(ci), horizontal_spacing=0.1,
                        subplot_titles=[f"{n}: {len(alive_order(c, threshold))} of {c.shape[-1]} alive"
                                        for n, c in zip(names, ci, strict=True)])  # fmt: skip
    for layer, c in enumerate(ci):
        order = alive_order(c, threshold)
        z = np.asarray(to_numpy(c))[:, order] if order else np.zeros((c.shape[0], 1))
        x = list(input_labels) if input_labels is not None else list(range(z.shape[0]))
        fig.add_trace(_heatmap(z.T, 1.0, showscale=layer == 0, colorbar=dict(title="importance", len=0.9),
                               x=x, y=[f"c{k}" for k in order] or ["none"],
                               hovertemplate="subcomponent %{y}, input %{x}: %{z:.2f}<extra></extra>"),
                      row=1, col=layer + 1)  # fmt: skip
        fig.update_xaxes(
            title_text=x_label, type="category" if input_labels is not None else None, row=1, col=layer + 1
        )
        fig.update_yaxes(
            title_text="subcomponent (alive only)", autorange="reversed", type="category", row=1, col=layer + 1
        )
    fig.update_layout(title=title, width=min(1000, 360 * len(ci) + 120), height=420, template="simple_white")
    return show_or_return(fig, show)


def cosines(directions: Float[Tensor, "n d"], basis: Float[Tensor, "d m"]) -> Float[Tensor, "n m"]:
    """Cosine similarity of each direction (row) with each basis vector (column)."""
    d = directions / directions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    b = basis / basis.norm(dim=0, keepdim=True).clamp_min(1e-12)
    return d @ b


def canonical_signs(U: Tensor, V: Tensor, read_basis: Tensor, write_basis: Tensor) -> tuple[Tensor, Tensor]:
    """(U, V) with each piece's signs flipped (u vᵀ is unchanged) so that its largest cosine with a basis vector,
    over both its read and its write direction, is positive: a piece reading +e_i, or writing +Wᵢ."""
    U, V = U.detach(), V.detach()
    cos = torch.cat([cosines(V, read_basis), cosines(U.T, write_basis)], dim=-1)  # [C, read + write basis]
    signs = cos.gather(1, cos.abs().argmax(1, keepdim=True))[:, 0].sign()
    signs = torch.where(signs == 0, 1.0, signs)
    return U * signs, V * signs[:, None]


def plot_directions(
    panels: Sequence[tuple[str, Tensor, Tensor, str]],
    order: Sequence[int] | None = None,
    title: str = "Read and write directions of the alive subcomponents",
    show: bool = True,
) -> go.Figure | None:
    """Heatmaps of cosines. Each panel: (title, directions [n d], basis [d m], x-axis label); rows in `order`."""
    fig = make_subplots(rows=1, cols=len(panels), horizontal_spacing=0.07, subplot_titles=[p[0] for p in panels])
    for k, (_, dirs, basis, x_label) in enumerate(panels):
        cos = np.asarray(to_numpy(cosines(dirs.detach().float().cpu(), basis.detach().float().cpu())))
        rows = list(order) if order is not None else list(range(cos.shape[0]))
        fig.add_trace(_heatmap(cos[rows], 1.0, colorscale="RdBu", zmin=-1.0, showscale=k == 0, zmid=0.0,
                               colorbar=dict(title="cosine", len=0.9), y=[f"c{r}" for r in rows],
                               hovertemplate="%{y}, %{x}: %{z:.2f}<extra></extra>"), row=1, col=k + 1)  # fmt: skip
        fig.update_xaxes(title_text=x_label, row=1, col=k + 1)
        fig.update_yaxes(autorange="reversed", type="category", showticklabels=k == 0, row=1, col=k + 1,
                         title_text="live subcomponent" if k == 0 else None)  # fmt: skip
    fig.update_layout(title=title, width=min(1000, 230 * len(panels) + 160), height=400, template="simple_white")
    return show_or_return(fig, show)


def plot_spd_losses(
    history: SPDHistory, title: str = "SPD loss terms over training", show: bool = True
) -> go.Figure | None:
    """Every logged loss term (per instance) on a log scale."""
    fig = go.Figure()
    for name, values in history.terms.items():
        fig.add_trace(go.Scatter(x=history.steps, y=values, mode="lines", name=name))
    fig.update_yaxes(type="log", title_text="loss (per instance)")
    fig.update_xaxes(title_text="step")
    fig.update_layout(title=title, width=850, height=420, template="simple_white")
    return show_or_return(fig, show)


def _arrows(
    fig: go.Figure, vectors: np.ndarray, colors: Sequence[str], names: Sequence[str], col: int, width: float = 3
) -> None:
    """Arrows from the origin in the top row's panel `col`."""
    for v, c, n in zip(vectors, colors, names, strict=True):
        fig.add_trace(go.Scatter(x=[0, v[0]], y=[0, v[1]], mode="lines+markers", line=dict(color=c, width=width),
                                 marker=dict(size=[0, 7], color=c), name=n, showlegend=False,
                                 hovertemplate=f"{n}<extra></extra>"), row=1, col=col)  # fmt: skip


def plot_sae_vs_spd(
    W: Float[Tensor, "2 feats"],
    sae_directions: Float[Tensor, "d_sae 2"],
    sae_acts: Float[Tensor, "feats d_sae"],
    spd_writes: Float[Tensor, "n 2"],
    spd_ci: Float[Tensor, "feats n"],
    show: bool = True,
) -> go.Figure | None:
    """Section 5's SAE and SPD on one TMS model: directions in the hidden plane (top), and what each latent or
    piece responds to on the one-hot inputs (bottom).

    sae_directions: the SAE's (normalised) decoder rows; sae_acts: its latents on one-hot inputs.
    spd_writes: u_c v_{c,i} of the first matrix's alive pieces; spd_ci: their importance on one-hot inputs.
    """
    W_np = np.asarray(to_numpy(W)).T
    n_feats = W_np.shape[0]
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    titles = [
        "SAE: decoder directions",
        "SPD: pieces of W (what each writes)",
        "SAE: latent values",
        "SPD: importances",
    ]
    fig = make_subplots(rows=2, cols=2, subplot_titles=titles, vertical_spacing=0.14, horizontal_spacing=0.2)
    lim = 1.15 * float(max(np.linalg.norm(W_np, axis=1).max(), np.abs(np.asarray(to_numpy(spd_writes))).max(), 1.0))
    arrows = ((1, np.asarray(to_numpy(sae_directions)), "latent"), (2, np.asarray(to_numpy(spd_writes)), "piece"))
    for col, vecs, label in arrows:
        _arrows(fig, W_np, ["#cccccc"] * n_feats, [f"feature {i}" for i in range(n_feats)], col, width=9)
        colors = [palette[k % len(palette)] for k in range(len(vecs))]
        _arrows(fig, vecs, colors, [f"{label} {k}" for k in range(len(vecs))], col)
        fig.update_xaxes(range=[-lim, lim], title_text="hidden dim 0", row=1, col=col)
        fig.update_yaxes(range=[-lim, lim], title_text="hidden dim 1", scaleanchor=f"x{col}", row=1, col=col)
    heatmaps = ((1, sae_acts, "latent", "latent value", 0.405), (2, spd_ci, "piece", "importance", 1.0))
    for col, z, label, bar, x_bar in heatmaps:
        z = np.asarray(to_numpy(z)).T
        zmax = 1.0 if label == "piece" else float(max(z.max(), 1e-9))
        hover = f"{label} %{{y}}, input %{{x}}: %{{z:.2f}}<extra></extra>"
        bar = dict(title=dict(text=bar, side="right"), x=x_bar, y=0.22, len=0.4, thickness=15)
        fig.add_trace(_heatmap(z, zmax, y=[f"{label} {k}" for k in range(z.shape[0])], hovertemplate=hover,
                               colorbar=bar), row=2, col=col)  # fmt: skip
        fig.update_xaxes(title_text="one-hot input (feature on)", tickvals=list(range(n_feats)), row=2, col=col)
        fig.update_yaxes(autorange="reversed", type="category", row=2, col=col)
    title = "Same model: features in activations (SAE) vs mechanisms in weights (SPD); grey: its features"
    fig.update_layout(title=title, width=900, height=760, template="simple_white")
    return show_or_return(fig, show)


def plot_piece_directions(
    dec: Decomposition, layer: int, ci: Float[Tensor, "inputs C"], read_basis: Tensor | None = None,
    write_basis: Tensor | None = None, read_label: str = "input", write_label: str = "output",
    title: str | None = None, inst: int = 0, show: bool = True,
) -> go.Figure | None:  # fmt: skip
    """Cosines of the live pieces' read (v_c) and write (u_c) directions with the columns of `read_basis` and
    `write_basis` (identities when None); rows ordered by the input each piece is most important for."""
    U, V = dec.U[layer][inst].detach(), dec.V[layer][inst].detach()
    read_basis = torch.eye(V.shape[1], device=V.device) if read_basis is None else read_basis.detach()
    write_basis = torch.eye(U.shape[0], device=U.device) if write_basis is None else write_basis.detach()
    U, V = canonical_signs(U, V, read_basis, write_basis)  # flip (u, v) to (-u, -v) where needed
    name = dec.chain.names[layer]
    panels = [(f"{name}: read v_c", V, read_basis, read_label), (f"{name}: write u_c", U.T, write_basis, write_label)]
    return plot_directions(panels, order=alive_order(ci), title=title or f"{name}: live pieces", show=show)


def plot_tms_directions(
    dec: Decomposition, layer: int, ci: Tensor, inst: int = 0, show: bool = True
) -> go.Figure | None:
    """The TMS chain's live pieces against the features: W reads features and writes the directions Wᵢ; Wᵀ
    reads along the Wᵢ and writes outputs."""
    W = dec.chain.weights[0][inst]
    bases = [(None, W, "input feature", "feature direction Wᵢ"), (W, None, "feature direction Wᵢ", "output")][layer]
    title = f"{dec.chain.names[layer]}: live pieces against the features (model {inst})"
    return plot_piece_directions(dec, layer, ci, *bases, title=title, inst=inst, show=show)
