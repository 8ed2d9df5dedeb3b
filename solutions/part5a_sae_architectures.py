# %% [markdown]
# # Part 5a: SAE architectures and how to compare them
#
# Part 5 trained a vanilla SAE on a toy model whose features we know, and revived its dead latents by
# resampling. The vanilla SAE has a second, quieter flaw: its L1 penalty shrinks every activation. This
# notebook builds three architectures that avoid it, the metrics people report for SAEs, and compares
# all four on the same toy model.
#
# **What you will do**
# 1. Measure shrinkage, and write the forward passes of Gated, JumpReLU and TopK SAEs, including the
#    straight-through estimator that lets JumpReLU learn its thresholds.
# 2. Add the AuxK loss that keeps TopK latents alive.
# 3. Write four metrics (L0, fraction of variance explained, dead latents, feature recovery) and compare
#    the architectures, including on the L0 / reconstruction frontier.
#
# The classes build on part 5's `ToySAE` (imported from its reference code, so this notebook runs even if
# part 5 is unfinished).

# %% [markdown]
# ## Imports

# %%
import math
from functools import partial
from typing import ClassVar

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor, nn

from solutions.part1_superposition import ToyModel, ToyModelConfig
from solutions.part5_toy_saes import ToySAE, ToySAEConfig, resample_advanced
from utils.device import get_device
from utils.part5a_sae_architectures import (
    frontier_sweep,
    plot_feature_recovery,
    plot_frontier,
    plot_shrinkage,
    print_architecture_table,
    print_fvu_at_l0,
    single_feature_magnitudes,
)
from utils.runtime import steps
from utils.schedules import cosine_decay_lr

MAIN = __name__ == "__main__"

if MAIN:
    import tests.part5a_sae_architectures

    device = get_device()
    # The toy tensors are tiny: on a CPU one thread is faster than several (no thread hand-offs per op).
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"Running on {device}")

# %% [markdown]
# ## The toy model
#
# The same toy model as in part 5 (same seed, same training): eight instances, 5 features in 2 hidden
# dimensions, every feature present with probability 0.025.

# %%
if MAIN:
    toy_cfg = ToyModelConfig(n_inst=8, n_features=5, d_hidden=2)
    toy_model = ToyModel(toy_cfg, feature_probability=0.025, device=device)
    toy_losses = toy_model.optimize(steps=steps(5_000), lr=5e-3, lr_scale=cosine_decay_lr)

# %% [markdown]
# ## Shrinkage, and architectures that avoid it
#
# The L1 penalty charges a latent for *how much* it fires, not just *whether* it fires. So the SAE
# gains by firing a little less than the truth: it trades a small reconstruction error for a smaller
# penalty. Every reconstructed feature comes out shorter than it should. This systematic
# underestimation is called **shrinkage**, and it means the L1 penalty does two jobs at once (choose
# which latents fire, and how strongly) and does the second one badly.
#
# Three fixes, all separating *whether* a latent fires from *how much*:
# * **Gated SAE**: a gate path decides which latents are on; a magnitude path (sharing the gate's
#   directions, with its own per-latent scale and bias) decides how much. Only the gate is penalised.
# * **JumpReLU SAE**: a ReLU that jumps: $z = x \cdot H(x - \theta)$ with a learned threshold $\theta$
#   per latent. Below $\theta$ the latent is off; above, it passes $x$ unchanged, so no shrinkage. The
#   penalty counts active latents (L0) instead of summing their sizes.
# * **TopK SAE**: keep the $k$ largest pre-activations of each example, zero the rest. No penalty at
#   all: sparsity is enforced by construction.

# %% [markdown]
# ### Exercise 7: `GatedToySAE.forward`
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 25 minutes
#
# With $x = h - b_{dec}$ and the shared directions $W_{enc}$:
#
# * gate pre-activation $\pi_{gate} = W_{enc}^\top x + b_{gate}$ (we keep the name `b_enc` for $b_{gate}$,
#   so the resampling code works unchanged); the latent is on where $\pi_{gate} > 0$;
# * magnitude $\pi_{mag} = (W_{enc} \odot e^{r_{mag}})^\top x + b_{mag}$, where $r_{mag}$ rescales each latent's column;
# * `acts_post` $= \mathbb{1}[\pi_{gate} > 0] \cdot \mathrm{ReLU}(\pi_{mag})$, decoded as before.
#
# Losses (all `[batch inst]` in `loss_dict`):
# * `L_reconstruction`: as before;
# * `L_sparsity`: $\lVert \mathrm{ReLU}(\pi_{gate}) \rVert_1$;
# * `L_aux`: the reconstruction error (mean over `d_in`) of decoding $\mathrm{ReLU}(\pi_{gate})$ with a
#   *detached* normalised decoder and detached $b_{dec}$. The indicator $\mathbb{1}[\pi_{gate} > 0]$ has no
#   gradient, so without this term the gate would only learn from the penalty, which just pushes it
#   off; `L_aux` teaches the gate to point at useful directions without moving the decoder.
#
# `loss` is `(L_reconstruction + sparsity_coeff · L_sparsity + L_aux)`, mean over the batch, summed over
# instances.
#
# <details><summary>Hint: detaching</summary>
#
# `self.W_dec_normalized.detach()` and `self.b_dec.detach()` in the auxiliary reconstruction only; the
# gate pre-activation itself must keep its gradient.
# </details>


# %%
class GatedToySAE(ToySAE):
    SAELENS_ARCHITECTURE: ClassVar[str] = "gated"  # what utils.saelens_interop exports it as
    r_mag: Float[Tensor, "inst d_sae"]
    b_mag: Float[Tensor, "inst d_sae"]

    LATENT_AXES: ClassVar[dict[str, int]] = {**ToySAE.LATENT_AXES, "r_mag": -1, "b_mag": -1}

    def __init__(self, cfg: ToySAEConfig, model: ToyModel | None = None) -> None:
        super().__init__(cfg, model)
        self.r_mag = nn.Parameter(torch.zeros_like(self.b_enc))
        self.b_mag = nn.Parameter(torch.zeros_like(self.b_enc))

    def reset_latent_extras(self, dead: Tensor) -> None:
        """Resampled latents also get a fresh magnitude path."""
        self.r_mag.data[dead] = 0.0
        self.b_mag.data[dead] = 0.0

    def forward(self, h: Float[Tensor, "batch inst d_in"]):
        """Gated SAE forward. Returns (loss_dict, loss, acts_post, h_reconstructed), see above."""
        ### BEGIN SOLUTION
        x = h - self.b_dec
        proj = einops.einsum(x, self.W_enc, "batch inst d_in, inst d_in d_sae -> batch inst d_sae")
        gate_pre = proj + self.b_enc
        mag_pre = proj * self.r_mag.exp() + self.b_mag
        acts_post = (gate_pre > 0).to(h.dtype) * F.relu(mag_pre)
        W_dec = self.W_dec_normalized
        h_reconstructed = einops.einsum(acts_post, W_dec, "batch inst d_sae, inst d_sae d_in -> batch inst d_in")
        h_reconstructed = h_reconstructed + self.b_dec
        gate_post = F.relu(gate_pre)
        via_gate = einops.einsum(gate_post, W_dec.detach(), "batch inst d_sae, inst d_sae d_in -> batch inst d_in")
        via_gate = via_gate + self.b_dec.detach()
        loss_dict = {
            "L_reconstruction": (h_reconstructed - h).pow(2).mean(-1),
            "L_sparsity": gate_post.sum(-1),
            "L_aux": (via_gate - h).pow(2).mean(-1),
        }
        per_example = loss_dict["L_reconstruction"] + self.sparsity_coeff * loss_dict["L_sparsity"] + loss_dict["L_aux"]
        return loss_dict, per_example.mean(0).sum(), acts_post, h_reconstructed
        ### END SOLUTION


# %%
if MAIN:
    tests.part5a_sae_architectures.test_gated_forward(GatedToySAE)

# %% [markdown]
# ### The straight-through estimator
#
# JumpReLU has a problem: the threshold $\theta$ enters only through a step function, whose derivative is
# 0 everywhere (and undefined at the step). Gradient descent would never move $\theta$.
#
# The fix is to *pretend*, in the backward pass only, that the step is a steep ramp of width $\varepsilon$
# (the "bandwidth"). The forward pass stays exact; the backward pass uses the ramp's slope,
# $\frac{1}{\varepsilon}$ on a window of width $\varepsilon$ around the threshold and 0 elsewhere. Examples whose
# pre-activation lands close to $\theta$ then tell $\theta$ which way to move: a little lower if firing
# there would help the reconstruction more than it costs, a little higher otherwise. Using one function
# forward and another's derivative backward is called a **straight-through estimator**.
#
# With $u = (x - \theta)/\varepsilon$, the rectangle $K(u) = \mathbb{1}[|u| < \tfrac12]$ and bandwidth $\varepsilon$:
#
# | function | forward | $\partial/\partial x$ | $\partial/\partial\theta$ (pseudo-derivative) |
# | --- | --- | --- | --- |
# | `Heaviside` $H(x-\theta)$ | $\mathbb{1}[x > \theta]$ | $0$ | $-K(u) / \varepsilon$ |
# | `JumpReLU` $x H(x-\theta)$ | $x\,\mathbb{1}[x > \theta]$ | $\mathbb{1}[x > \theta]$ | $-\theta K(u) / \varepsilon$ |
#
# Both take `(x, threshold, bandwidth)` with `threshold` the same shape as `x` and `bandwidth` a float,
# and `backward` returns one gradient per input (`None` for the float). Multiply by `grad_output`!

# %% [markdown]
# ### Exercise 8: `Heaviside` and `JumpReLU`
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 20 minutes
#
# <details><summary>Hint: the autograd.Function pattern</summary>
#
# In `forward(ctx, x, threshold, bandwidth)` call `ctx.save_for_backward(x, threshold)` and store
# `ctx.bandwidth = bandwidth`. In `backward(ctx, grad_output)` read them back with
# `x, threshold = ctx.saved_tensors` and return `(grad_x, grad_threshold, None)`.
# </details>


# %%
def rectangle(u: Tensor) -> Tensor:
    """K(u) = 1 where |u| < 1/2, else 0 (same dtype as u)."""
    return (u.abs() < 0.5).to(u.dtype)


class Heaviside(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ### BEGIN SOLUTION
        ctx.save_for_backward(x, threshold)
        ctx.bandwidth = bandwidth
        return (x > threshold).to(x.dtype)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        ### BEGIN SOLUTION
        x, threshold = ctx.saved_tensors
        bw = ctx.bandwidth
        grad_threshold = -rectangle((x - threshold) / bw) / bw * grad_output
        return torch.zeros_like(x), grad_threshold, None
        ### END SOLUTION


class JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ### BEGIN SOLUTION
        ctx.save_for_backward(x, threshold)
        ctx.bandwidth = bandwidth
        return x * (x > threshold).to(x.dtype)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        ### BEGIN SOLUTION
        x, threshold = ctx.saved_tensors
        bw = ctx.bandwidth
        grad_x = (x > threshold).to(x.dtype) * grad_output
        grad_threshold = -(threshold / bw) * rectangle((x - threshold) / bw) * grad_output
        return grad_x, grad_threshold, None
        ### END SOLUTION


# %%
if MAIN:
    tests.part5a_sae_architectures.test_heaviside(Heaviside)

# %%
if MAIN:
    tests.part5a_sae_architectures.test_jumprelu(JumpReLU)

# %% [markdown]
# ### Exercise 9: `JumpReLUToySAE.forward`
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵⚪⚪⚪ · about 15 minutes
#
# The threshold is stored as `log_threshold` (so it stays positive): $\theta = e^{\text{log\_threshold}}$,
# shape `[inst d_sae]`; expand it to the pre-activations' shape before calling the functions.
# * `acts_post = JumpReLU.apply(pre, θ, bandwidth)` with `pre` the usual encoder pre-activation
#   (after `b_enc`, no ReLU: with $\theta > 0$ the output is non-negative anyway);
# * `L_sparsity` = number of active latents, as `Heaviside.apply(pre, θ, bandwidth).sum(-1)`, so its
#   gradient reaches $\theta$;
# * `L_reconstruction` and `loss` as in the vanilla SAE. Bandwidth: `self.cfg.jumprelu_bandwidth`.


# %%
class JumpReLUToySAE(ToySAE):
    SAELENS_ARCHITECTURE: ClassVar[str] = "jumprelu"  # what utils.saelens_interop exports it as
    log_threshold: Float[Tensor, "inst d_sae"]

    LATENT_AXES: ClassVar[dict[str, int]] = {**ToySAE.LATENT_AXES, "log_threshold": -1}

    def __init__(self, cfg: ToySAEConfig, model: ToyModel | None = None) -> None:
        super().__init__(cfg, model)
        self.log_threshold = nn.Parameter(torch.full_like(self.b_enc, math.log(cfg.jumprelu_init_threshold)))

    def reset_latent_extras(self, dead: Tensor) -> None:
        self.log_threshold.data[dead] = math.log(self.cfg.jumprelu_init_threshold)

    def forward(self, h: Float[Tensor, "batch inst d_in"]):
        """JumpReLU SAE forward with an L0 penalty. Returns (loss_dict, loss, acts_post, h_reconstructed)."""
        ### BEGIN SOLUTION
        pre = einops.einsum(h - self.b_dec, self.W_enc, "batch inst d_in, inst d_in d_sae -> batch inst d_sae")
        pre = pre + self.b_enc
        threshold = self.log_threshold.exp().expand_as(pre)
        bw = self.cfg.jumprelu_bandwidth
        acts_post = JumpReLU.apply(pre, threshold, bw)
        h_reconstructed = (
            einops.einsum(acts_post, self.W_dec_normalized, "batch inst d_sae, inst d_sae d_in -> batch inst d_in")
            + self.b_dec
        )
        loss_dict = {
            "L_reconstruction": (h_reconstructed - h).pow(2).mean(-1),
            "L_sparsity": Heaviside.apply(pre, threshold, bw).sum(-1),
        }
        loss = (loss_dict["L_reconstruction"] + self.sparsity_coeff * loss_dict["L_sparsity"]).mean(0).sum()
        return loss_dict, loss, acts_post, h_reconstructed
        ### END SOLUTION


# %%
if MAIN:
    tests.part5a_sae_architectures.test_jumprelu_forward(JumpReLUToySAE)

# %% [markdown]
# ### Exercise 10: `TopKToySAE.forward`
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 15 minutes
#
# Take `ReLU(pre)` (pre-activation after `b_enc`), keep each example's `cfg.k` largest values in place
# and set all others to zero: `acts_post` has at most `k` non-zeros per example and instance (exactly
# `k` unless fewer are positive). `loss_dict` has `L_reconstruction` as usual and `L_sparsity` as the
# number of non-zero latents (for logging only); `loss` is the reconstruction loss alone, mean over the
# batch, summed over instances.
#
# <details><summary>Hint</summary>
#
# `values, indices = x.topk(k, dim=-1)`, then `torch.zeros_like(x).scatter(-1, indices, values)`.
# </details>


# %%
class TopKToySAE(ToySAE):
    SAELENS_ARCHITECTURE: ClassVar[str] = "topk"  # what utils.saelens_interop exports it as

    def forward(self, h: Float[Tensor, "batch inst d_in"]):
        """TopK SAE forward. Returns (loss_dict, loss, acts_post, h_reconstructed)."""
        ### BEGIN SOLUTION
        pre = einops.einsum(h - self.b_dec, self.W_enc, "batch inst d_in, inst d_in d_sae -> batch inst d_sae")
        pre = F.relu(pre + self.b_enc)
        top = pre.topk(self.cfg.k, dim=-1)
        acts_post = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
        h_reconstructed = (
            einops.einsum(acts_post, self.W_dec_normalized, "batch inst d_sae, inst d_sae d_in -> batch inst d_in")
            + self.b_dec
        )
        loss_dict = {
            "L_reconstruction": (h_reconstructed - h).pow(2).mean(-1),
            "L_sparsity": (acts_post > 0).to(h.dtype).sum(-1),
        }
        return loss_dict, loss_dict["L_reconstruction"].mean(0).sum(), acts_post, h_reconstructed
        ### END SOLUTION


# %%
if MAIN:
    tests.part5a_sae_architectures.test_topk_forward(TopKToySAE)

# %% [markdown]
# ### Exercise 10b: AuxK, a TopK loss that keeps latents alive
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵⚪⚪⚪ · about 15 minutes
#
# A TopK latent that is never among the top $k$ gets no gradient at all, so once it is dead it stays dead.
# Resampling is one fix. The TopK paper (Gao et al., 2024) uses another, an **auxiliary loss**: let the
# dead latents try to explain what the live ones missed. Take the residual $e = h - \hat h$ of the main
# reconstruction (detached: it is a target, not something to change), keep the $k_{aux}$ largest
# pre-activations *among the dead latents*, decode them (no $b_{dec}$: the residual has no offset), and
# penalise $\lVert e - \hat e \rVert^2$.
#
# Use the pre-activations *before* the ReLU. A latent that died usually has a negative pre-activation on
# every input, so after a ReLU it would get no gradient here either; before the ReLU it does, and the
# loss drags it back towards inputs it can help with.
#
# Write `auxk_loss`: it gets the pre-activations (after `b_enc`, no ReLU), the residual, which latents
# are dead and the normalised decoder, and returns the per-example loss (mean over `d_in`, shape
# `[batch inst]`). When an instance has fewer than `k_aux` dead latents, use all of them. The given
# `TopKAuxToySAE` below tracks how long each latent has been silent and adds `aux_coeff · L_aux` to the
# loss.
#
# <details><summary>Hint: masking</summary>
#
# `torch.where(dead, pre, -torch.inf)` takes the live latents out of the competition; take the top
# `k_aux` of that and scatter the values into zeros as in `TopKToySAE.forward`. Where fewer than `k_aux`
# latents are dead, some chosen values are `-inf`: replace them by 0 before decoding.
# </details>


# %%
def auxk_loss(
    pre: Float[Tensor, "batch inst d_sae"],
    residual: Float[Tensor, "batch inst d_in"],
    dead: Bool[Tensor, "inst d_sae"],
    W_dec_normalized: Float[Tensor, "inst d_sae d_in"],
    k_aux: int,
) -> Float[Tensor, "batch inst"]:
    """Mean over d_in of (residual - decode(top k_aux of the dead latents' pre-activations))², no b_dec.

    pre: pre-activations after b_enc and before any ReLU; dead: [inst d_sae] bool."""
    ### BEGIN SOLUTION
    top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
    values = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))  # fewer than k_aux dead
    dead_acts = torch.zeros_like(pre).scatter(-1, top.indices, values)
    residual_hat = einops.einsum(dead_acts, W_dec_normalized, "batch inst d_sae, inst d_sae d_in -> batch inst d_in")
    return (residual - residual_hat).pow(2).mean(-1)
    ### END SOLUTION


class TopKAuxToySAE(TopKToySAE):
    """TopK SAE plus the AuxK loss (given). `steps_since_fired` counts training steps without firing."""

    def __init__(self, cfg: ToySAEConfig, model: ToyModel | None = None) -> None:
        super().__init__(cfg, model)
        if cfg.aux_k < 1:
            raise ValueError("TopKAuxToySAE needs cfg.aux_k ≥ 1 (how many dead latents reconstruct the residual)")
        self.register_buffer("steps_since_fired", torch.zeros_like(self.b_enc, dtype=torch.long))

    def reset_latent_extras(self, dead: Tensor) -> None:
        self.steps_since_fired[dead] = 0

    def forward(self, h: Float[Tensor, "batch inst d_in"]):
        loss_dict, loss, acts_post, h_reconstructed = super().forward(h)
        if self.training and torch.is_grad_enabled():  # count training steps only, not evaluations
            fired = (acts_post > 0).any(0)
            self.steps_since_fired = torch.where(fired, 0, self.steps_since_fired + 1)
        dead = self.steps_since_fired >= self.cfg.dead_steps
        pre = einops.einsum(h - self.b_dec, self.W_enc, "batch inst d_in, inst d_in d_sae -> batch inst d_sae")
        residual = (h - h_reconstructed).detach()
        loss_dict["L_aux"] = auxk_loss(pre + self.b_enc, residual, dead, self.W_dec_normalized, self.cfg.aux_k)
        return loss_dict, loss + self.cfg.aux_coeff * loss_dict["L_aux"].mean(0).sum(), acts_post, h_reconstructed


# %%
if MAIN:
    tests.part5a_sae_architectures.test_auxk_loss(auxk_loss)

# %% [markdown]
# Does it help here? Train TopK with $k = 1$ *without* resampling, once plain and once with AuxK (same
# seed, so the same initial weights and data), and count the latents that never fired over the last 50
# steps. Compare the two counts with the resampled TopK SAE below, which ends with none.

# %%
if MAIN:
    for name, topk_cls, extra in [("TopK", TopKToySAE, {}), ("TopK + AuxK", TopKAuxToySAE, dict(aux_k=1))]:
        torch.manual_seed(2)  # same initial weights and data for both
        topk_sae = topk_cls(ToySAEConfig(n_inst=8, d_in=2, d_sae=5, sparsity_coeff=0.0, k=1, **extra), toy_model)
        topk_log = topk_sae.optimize(steps=steps(4_000), batch_size=512, lr=3e-3, progress=False)
        print(f"{name:12s} dead latents at the end: {int((topk_log.frac_active[-1] == 0).sum())} of 40")

# %% [markdown]
# <details><summary>Question: AuxK barely changes the count here. Why, when it works in real SAEs?</summary>
#
# Here a latent usually dies because another latent took its feature: two latents share one feature and
# the feature next to it is half covered. The residual is then mostly zero (single features are
# reconstructed well), so AuxK mostly asks the dead latent to stay quiet; and even when it learns a
# useful direction, it only comes back once its pre-activation *beats* the live latents' in the top $k$,
# which AuxK does not push for. Meanwhile its gradient also moves the shared $b_{dec}$, which every live
# latent depends on. In a real SAE there are thousands of latents, the residual always holds plenty of
# unexplained structure, and a dead latent has many directions it could usefully take: there AuxK keeps
# the dead fraction low without the interruptions of resampling. In this toy problem, resampling (which
# puts the latent straight onto a badly reconstructed input) is the stronger fix.
# </details>

# %% [markdown]
# ## Metrics
#
# Four numbers summarise an SAE, each per instance:
# * **L0**: the mean number of active latents per example (lower = sparser).
# * **Fraction of variance explained** (FVE): $1 - \frac{\sum_{b,d} (h - \hat h)^2}{\sum_{b,d} (h - \bar h)^2}$,
#   where $\bar h$ is the batch mean of $h$. A ratio of *sums* over batch and `d_in` (not a mean of
#   per-example ratios, which explodes on near-zero inputs), with the variance measured around the mean
#   (an SAE that only learns $b_{dec} = \bar h$ should score 0, not something positive).
# * **Dead latent fraction**: the fraction of latents that fire on no example of a batch.
# * **Feature recovery**: for each true feature, the largest cosine similarity between its direction
#   (a column of the toy model's `W`) and any decoder row. 1 means some latent found it exactly.

# %% [markdown]
# ### Exercise 11: the metrics
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 20 minutes
#
# <details><summary>Hint: feature recovery</summary>
#
# Normalise both sets of directions, then
# `einops.einsum(W_dec_hat, W_feat_hat, "inst d_sae d_in, inst d_in feats -> inst d_sae feats")` and
# take the max over `d_sae`. Guard the norms with a small epsilon.
# </details>


# %%
def l0_norm(acts: Float[Tensor, "batch inst d_sae"]) -> Float[Tensor, " inst"]:
    """Mean number of non-zero latents per example (`acts`: an SAE's activations, never negative)."""
    ### BEGIN SOLUTION
    return (acts != 0).to(acts.dtype).sum(-1).mean(0)
    ### END SOLUTION


def fraction_variance_explained(
    h: Float[Tensor, "batch inst d_in"], h_reconstructed: Float[Tensor, "batch inst d_in"]
) -> Float[Tensor, " inst"]:
    """1 - Σ_{batch, d_in} (h - h_rec)² / Σ_{batch, d_in} (h - mean_batch(h))²."""
    ### BEGIN SOLUTION
    residual = (h - h_reconstructed).pow(2).sum((0, 2))
    total = (h - h.mean(0, keepdim=True)).pow(2).sum((0, 2))
    return 1 - residual / total
    ### END SOLUTION


def dead_latent_fraction(acts: Float[Tensor, "batch inst d_sae"]) -> Float[Tensor, " inst"]:
    """Fraction of latents that are zero on every example of the batch (`acts`: an SAE's activations, never
    negative)."""
    ### BEGIN SOLUTION
    return (acts == 0).all(0).to(acts.dtype).mean(-1)
    ### END SOLUTION


def feature_recovery(
    W_features: Float[Tensor, "inst d_in feats"], W_dec: Float[Tensor, "inst d_sae d_in"]
) -> Float[Tensor, "inst feats"]:
    """For each true feature, the max over latents of cos(feature direction, decoder row)."""
    ### BEGIN SOLUTION
    W_feat_hat = W_features / (W_features.norm(dim=1, keepdim=True) + 1e-8)
    W_dec_hat = W_dec / (W_dec.norm(dim=-1, keepdim=True) + 1e-8)
    cos = einops.einsum(W_dec_hat, W_feat_hat, "inst d_sae d_in, inst d_in feats -> inst d_sae feats")
    return cos.max(dim=1).values
    ### END SOLUTION


if MAIN:
    tests.part5a_sae_architectures.test_l0_norm(l0_norm)

# %%
if MAIN:
    tests.part5a_sae_architectures.test_fraction_variance_explained(fraction_variance_explained)

# %%
if MAIN:
    tests.part5a_sae_architectures.test_dead_latent_fraction(dead_latent_fraction)

# %%
if MAIN:
    tests.part5a_sae_architectures.test_feature_recovery(feature_recovery)

# %% [markdown]
# ## Comparing the architectures
#
# We train each architecture on the same toy model with advanced resampling. The settings below are
# given (they live in the module so the tests train exactly the same SAEs). Three choices need a word:
#
# * JumpReLU starts its thresholds at 0.1 with bandwidth 0.1. With the tiny bandwidths used on real
#   models, almost no pre-activation of this small toy problem lands inside the window, and the
#   thresholds would never move.
# * Gated, JumpReLU and TopK resample with a larger encoder scale (1 or 2 instead of 0.5). A latent that
#   stays below its threshold (or outside the top k) gets no gradient at all, so a timid resampled
#   latent never wins an example and dies again; it has to start strong enough to fire.
# * JumpReLU also trains with a larger learning rate (0.01), resamples twice as often (every 250
#   steps) and pays a fairly high L0 price (coefficient 0.12). Its encoder learns only from the
#   reconstruction (the L0 penalty reaches the thresholds alone), so the one force that clears a
#   *duplicate* (a second latent on a feature another latent already covers) is the cost of firing.
#   When firing is cheap, a duplicate survives by firing rarely: it is never counted as dead, so it is
#   never resampled, and a neighbouring feature stays half-covered.
#
# Whether one architecture is more reliable than another can't be read from one run of eight instances:
# with five latents for five features, a single latent that settles between two features costs its
# instance a feature, and which architecture is unlucky changes from seed to seed (try another seed). The
# price JumpReLU pays for its high coefficient shows in the table: a higher threshold drops more small
# feature values, so its fraction of variance explained is close to the vanilla SAE's.

# %%
ARCHITECTURES: dict[str, tuple[type, dict, dict]] = {  # class, config settings, training settings
    "vanilla": (ToySAE, dict(sparsity_coeff=0.2), dict(resample_scale=0.5)),
    "gated": (GatedToySAE, dict(sparsity_coeff=0.2), dict(resample_scale=1.0)),
    "jumprelu": (
        JumpReLUToySAE,
        dict(sparsity_coeff=0.12, jumprelu_init_threshold=0.1, jumprelu_bandwidth=0.1),
        dict(resample_scale=2.0, lr=1e-2, resample_freq=250, resample_window=125),
    ),
    "topk": (TopKToySAE, dict(sparsity_coeff=0.0, k=1), dict(resample_scale=2.0)),
}
TRAINING = dict(
    batch_size=512,
    lr=3e-3,
    resampler=partial(resample_advanced, batch_size=512),
    resample_freq=500,
    resample_window=250,
)
SAE_STEPS = 4_000


def train_architecture(name: str, model: ToyModel, n_steps: int, d_sae: int = 5, progress: bool = True, **overrides):
    """Build and train one architecture from ARCHITECTURES on `model`'s hidden activations (given)."""
    cls, settings, training = ARCHITECTURES[name]
    cfg = ToySAEConfig(n_inst=model.cfg.n_inst, d_in=model.cfg.d_hidden, d_sae=d_sae, **{**settings, **overrides})
    sae = cls(cfg, model)
    return sae, sae.optimize(steps=n_steps, progress=progress, **{**TRAINING, **training})


@torch.no_grad()
def evaluate(sae: ToySAE, batch_size: int = 20_000) -> dict[str, Tensor]:
    """L0, FVE, dead fraction and feature recovery of a trained SAE, per instance (given; uses the metrics above)."""
    h = sae.generate_batch(batch_size)
    _, _, acts, h_rec = sae(h)
    return {
        "l0": l0_norm(acts),
        "fve": fraction_variance_explained(h, h_rec),
        "dead": dead_latent_fraction(acts),
        "recovery": feature_recovery(sae.model.W, sae.W_dec_normalized),
    }


@torch.no_grad()
def evaluate_at_l0(sae: TopKToySAE, target_l0: Tensor, batch_size: int = 20_000) -> dict[str, Tensor]:
    """A TopK SAE used with a threshold instead of its top-k (given): a latent fires when its pre-activation
    is at least θ. Per instance, θ is set on a fresh batch so that the L0 is target_l0[inst]."""
    h = sae.generate_batch(batch_size)
    pre = einops.einsum(h - sae.b_dec, sae.W_enc, "batch inst d_in, inst d_in d_sae -> batch inst d_sae") + sae.b_enc
    flat = pre.transpose(0, 1).flatten(1)  # [inst batch·d_sae]
    n_fire = (target_l0.to(pre.device) * batch_size).round().long().clamp(1, flat.shape[1])
    theta = torch.stack([row.sort(descending=True).values[n - 1] for row, n in zip(flat, n_fire, strict=True)])
    acts = torch.where(pre >= theta[:, None], pre, torch.zeros_like(pre)).clamp_min(0)
    h_rec = einops.einsum(acts, sae.W_dec_normalized, "batch inst d_sae, inst d_sae d_in -> batch inst d_in")
    h_rec = h_rec + sae.b_dec
    return {"l0": l0_norm(acts), "fve": fraction_variance_explained(h, h_rec), "threshold": theta}


if MAIN:
    trained = {}
    for arch in ARCHITECTURES:
        torch.manual_seed(1)  # the seed the science tests use, so the numbers here are the tested ones
        trained[arch] = train_architecture(arch, toy_model, steps(SAE_STEPS))
    results = {arch: evaluate(s) for arch, (s, _) in trained.items()}
    print_architecture_table(results)
    plot_feature_recovery({arch: r["recovery"] for arch, r in results.items()})

# %% [markdown]
# The heatmap uses the signed cosine: a latent pointing the opposite way from a feature scores negative
# (red), and a best cosine below 1 means no latent sits exactly on that feature.
#
# ### TopK's L0 can't go below k
#
# TopK's L0 in the table is 1, eight times the true L0 of the features ($5 \times 0.025 = 0.125$). Most
# inputs of this toy model contain no feature at all (a fraction $0.975^5 = 0.88$), yet TopK fires its $k$
# largest latents on *every* input, including those. On an empty input ($h = 0$) the best a TopK SAE can
# do is make the latent that fires there tiny. Either way its L0 is stuck at $k$: TopK's point sits far to
# the right of the others, and comparing its reconstruction with theirs compares codes of different
# sparsity.

# %%
if MAIN:
    topk_sae = trained["topk"][0]
    with torch.no_grad():
        h_eval = topk_sae.generate_batch(20_000)
        empty = (h_eval.abs().sum(-1) == 0).float().mean(0)  # h = 0 exactly when no feature is present
        on_empty = topk_sae(torch.zeros(1, 8, 2, device=device))[2].amax(-1)[0]  # [inst]
    print(f"fraction of inputs with no feature: {empty.mean():.3f}")
    print(f"TopK's L0 per instance: {[round(x, 3) for x in results['topk']['l0'].tolist()]}")
    print(f"activation of the latent TopK fires on an empty input: {[round(x, 3) for x in on_empty.tolist()]}")

# %% [markdown]
# In most instances that activation is tiny. Where it is large, one latent has become a constant offset that
# fires on every input: compare with the heatmap above, where those are the instances in which TopK misses
# features.
#
# To compare at the same L0, use the trained TopK SAE differently at inference: drop the top-k and let
# every latent whose pre-activation is at least a threshold $\theta$ fire (a JumpReLU with one threshold
# for all latents; BatchTopK, in part 5b, trains with the same idea). Below, $\theta$ is set per instance so
# the L0 is exactly the true 0.125. An empty input then fires nothing, unless a latent fires strongly on
# it.

# %%
if MAIN:
    at_true_l0 = evaluate_at_l0(topk_sae, torch.full((8,), 0.125))
    print(
        f"thresholded TopK at L0 = 0.125, FVU per instance: {[round(x, 3) for x in (1 - at_true_l0['fve']).tolist()]}"
    )
    print(f"median over instances: {(1 - at_true_l0['fve']).median():.3f}")

# %% [markdown]
# Where the latent that fires on empty inputs is tiny, the threshold removes it and the FVU stays small.
# Where it is large (compare the two printed lists), that latent is part of every reconstruction,
# so a threshold that silences it on empty inputs breaks them all, and the FVU explodes.

# %% [markdown]
# ### Shrinkage, measured
#
# Feed each SAE inputs with exactly one feature on, at a known value $t$, and read how much of that
# feature the reconstruction contains. A slope (least squares through the origin) of 1 means no shrinkage.

# %%
if MAIN:
    magnitudes = {arch: single_feature_magnitudes(s, toy_model.W) for arch, (s, _) in trained.items()}
    print(
        "slope of reconstructed vs true value:",
        {a: round(float((t * r).sum() / (t * t).sum()), 2) for a, (t, r) in magnitudes.items()},
    )
    plot_shrinkage(magnitudes)

# %% [markdown]
# The vanilla SAE's slope is clearly under 1; the other three come much closer.
#
# <details><summary>Question: why does the vanilla SAE reconstruct small values as exactly zero?</summary>
#
# For a latent to fire at all, its pre-activation must beat the (negative) encoder bias, which the L1
# penalty pushes down. Below that threshold the feature is not encoded, so the smallest values are lost
# completely, and above it every value is reduced by about the same amount: the ReLU with a negative
# bias acts like "soft thresholding". Gated and JumpReLU SAEs separate the threshold from the magnitude,
# so values above their threshold come through unshrunk.
# </details>

# %% [markdown]
# ### The L0 / reconstruction frontier (the Gated paper's figure 15, in miniature)
#
# A single SAE gives one point: how sparse (L0) and how accurate (fraction of variance *unexplained*,
# FVU). Sweeping the sparsity coefficient traces a curve; a better architecture has a curve further
# down and to the left. We give each of the 8 instances its own coefficient, so one training run
# traces a whole curve (each point is one instance). TopK has no coefficient: we train it once with
# $k = 1$ (its own point sits at L0 = 1) and then use it with inference thresholds, for target L0s between
# 0.03 and 0.3; every instance gets the threshold that gives the target, and the curve shows the median
# over instances. The dashed line marks the true L0.

# %%
FRONTIER_COEFFS = {
    "vanilla": torch.logspace(-1.5, 0, 8),
    "gated": torch.logspace(-1.5, 0, 8),
    "jumprelu": torch.logspace(-2.5, -0.5, 8),
}
FRONTIER_TARGET_L0 = torch.logspace(math.log10(0.03), math.log10(0.3), 8)
FRONTIER_STEPS = 2_000

if MAIN:
    torch.manual_seed(3)
    frontier, labels = frontier_sweep(
        lambda arch, **kw: train_architecture(arch, toy_model, steps(FRONTIER_STEPS), progress=False, **kw),
        evaluate,
        FRONTIER_COEFFS,
        evaluate_at_l0=evaluate_at_l0,
        target_l0=FRONTIER_TARGET_L0,
    )
    print_fvu_at_l0(frontier, 0.125)
    plot_frontier(frontier, labels, true_l0=0.125)

# %% [markdown]
# <details><summary>Question: the true features have L0 = 5 × 0.025 = 0.125. What happens to the left of that?</summary>
#
# To go below the true L0 an SAE must leave some present features unencoded, so the unexplained variance
# rises steeply. To the right of it there is little left to gain in a 2D toy problem: two latents can
# reconstruct any 2D point, so extra activity buys accuracy without finding better features. Real SAEs
# are judged on the whole curve because we do not know the true L0 there.
# </details>
#
# ## Summary
#
# * The L1 penalty shrinks activations: the vanilla SAE reconstructs single features too short. Gated,
#   JumpReLU (trained through a straight-through estimator) and TopK separate "whether" from "how much"
#   and shrink much less.
# * TopK fires $k$ latents on every input, so on sparse data its L0 is stuck at $k$, far above the true
#   L0; compare it with other architectures at the same L0, for example with an inference threshold.
# * Four numbers summarise an SAE (L0, fraction of variance explained, dead latents, feature recovery),
#   and the L0 / reconstruction frontier compares architectures across sparsities: at the true L0 the
#   vanilla SAE, which shrinks, leaves the most variance unexplained.
#
# Part 5b looks at a failure that none of these metrics sees: feature absorption.
