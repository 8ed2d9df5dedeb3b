# %% [markdown]
# # Part 8: Parameter decomposition
#
# Sections 5 and 6 took models apart through their **activations**. This section takes them apart through
# their **weights**: not "which features are in this activation?" but "which pieces of the network does
# this input need?". Every weight matrix is written as a sum $W \approx \sum_c u_c v_c^\top$ of $C$ rank-one
# *subcomponents*: $v_c$ is what subcomponent $c$ **reads** from the layer's input, $u_c$ what it
# **writes** to its output. A good decomposition is **faithful** (the pieces add up to the weights),
# **minimal** (each input needs few pieces; the others can be turned down by any amount without changing
# the output) and **simple** (rank one, in one matrix). Such a piece is a *mechanism*: a part of the
# computation that some inputs use and the rest do not.
#
# Attribution-based parameter decomposition (APD, 2025) scored pieces with gradient attributions; its
# successor, **stochastic parameter decomposition** (SPD, 2025), learns a *causal importance* for every
# piece on every input and tests it by randomly turning unimportant pieces down; later work adds
# adversarial ablations and scales it to language models. **You will** see why the SVD does not give
# mechanisms, write every part of SPD, and run it on toy models where we know what the mechanisms should
# be: section 1's 5→2 model (compared with section 5's SAE), section 2's |x| model and an AND model from
# section 7's lab. The decompositions run on *your* functions, so they need the exercises done first;
# earlier sections' reference code is imported, so the notebook stands alone.

# %%
import inspect
import math
from dataclasses import replace
from functools import partial

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

import utils.part8_parameter_decomposition as spd
from solutions.part1_superposition import ToyModel, ToyModelConfig
from solutions.part2_privileged_basis import NeuronComputationModel
from solutions.part5_toy_saes import ToySAE, ToySAEConfig, resample_advanced
from solutions.part7_open_problems import run_experiment
from utils.device import notebook_device
from utils.part1_superposition import plot_features_in_2d
from utils.part7_open_problems import ExperimentConfig
from utils.part8_parameter_decomposition import SPDConfig, SPDFunctions, WeightChain
from utils.runtime import steps
from utils.schedules import cosine_decay_lr

MAIN = __name__ == "__main__"

if MAIN:
    import tests.part8_parameter_decomposition

    device = notebook_device()
    print(f"Running on {device}")

# %% [markdown]
# ## The model we will take apart
#
# Section 1's model with five features in two hidden dimensions, each present with probability 0.05
# (value U[0, 1]), all equally important. At this sparsity it stores all five as a pentagon: the columns
# $W_i \in \mathbb{R}^2$ are 72° apart. We train four instances (four models, one batched run). To a
# parameter decomposition it is a **chain of two matrices**, $W$ (2×5) and $W^\top$ (5×2), then the bias
# and the ReLU: the same numbers doing different jobs, decomposed separately. `WeightChain` (given):
#
# * `chain.weights[l]`: matrix $l$, shape `[inst d_out d_in]`; `chain(x)`: the model's output;
# * `chain(x, layer_fn)`: the output when every product $W_l a$ is replaced by `layer_fn(l, a)` (the
#   bias and activation after it stay): the model run with modified weights;
# * `chain.run(x)`: `(output, inputs)` where `inputs[l]` is the activation that matrix $l$ multiplies.

# %%
TMS_PROBABILITY = 0.05


def train_tms(n_inst: int, seed: int, n_steps: int, device: torch.device | str = "cpu") -> ToyModel:
    """Section 1's model with 5 features in 2 dimensions, trained from `seed` (given)."""
    torch.manual_seed(seed)
    model = ToyModel(ToyModelConfig(n_inst=n_inst, n_features=5, d_hidden=2), TMS_PROBABILITY, device=device)
    model.optimize(steps=n_steps, batch_size=1024, lr=1e-2, lr_scale=cosine_decay_lr)
    return model


if MAIN:
    tms = train_tms(n_inst=4, seed=0, n_steps=steps(3_000), device=device)
    tms_chain = spd.chain_from_tms(tms)
    print("matrix shapes:", [tuple(W.shape) for W in tms_chain.weights])
    print("angles between neighbouring features (degrees):", spd.neighbour_angles(tms.W).round().int().tolist())
    plot_features_in_2d(tms.W, titles=[f"model {k}" for k in range(4)], max_cols=4, title="The four TMS models")

# %% [markdown]
# ## 1. Why not the SVD?
#
# Any matrix can be cut into rank-one pieces by its singular value decomposition,
# $W = \sum_k \sigma_k\, u_k v_k^\top$, with orthonormal $u_k$ and $v_k$: unique, cheap, and with the
# fewest pieces possible ($W$ of TMS has rank 2, so two). Is each SVD term a mechanism, something some
# inputs need and the others don't? Test it by **ablation**: remove one piece from the first matrix, run
# the model on each one-hot input (one feature on, at 1), and measure how much the output moves. A
# mechanism for feature $i$ should matter for input $e_i$ and for no other.
#
# ### Exercise 1: `svd_terms`
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵⚪⚪⚪ · about 10 minutes
#
# Return the rank-one terms $\sigma_k u_k v_k^\top$ of every instance's matrix, largest singular value
# first. `torch.linalg.svd(W, full_matrices=False)` works on a batch of matrices and returns
# `(U, S, Vh)`: the columns of `U` are the $u_k$, the **rows** of `Vh` are the $v_k$, and `S` is sorted
# from largest to smallest.
#
# <details><summary>Hint</summary>
#
# `einops.einsum(U, S, Vh, "inst d_out r, inst r, inst r d_in -> inst r d_out d_in")` builds all the
# terms at once. They must add up to `W`.
# </details>


# %%
def svd_terms(W: Float[Tensor, "inst d_out d_in"]) -> Float[Tensor, "inst r d_out d_in"]:
    """The rank-one SVD terms σ_k u_k v_kᵀ of each instance's matrix, r = min(d_out, d_in), largest σ first."""
    ### BEGIN SOLUTION
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    return einops.einsum(U, S, Vh, "inst d_out r, inst r, inst r d_in -> inst r d_out d_in")
    ### END SOLUTION


# %%
if MAIN:
    tests.part8_parameter_decomposition.test_svd_terms(svd_terms)

# %% [markdown]
# ### Exercise 2: `ablation_losses`
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 15 minutes
#
# For each rank-one term $T_k$ (`terms[:, k]`, shaped like the chain's **first** matrix) and each input
# $x_b$: run the chain with $W_0 - T_k$ in place of $W_0$ and return the mean over output dimensions of
# $(y_{\text{ablated}} - y_{\text{original}})^2$, with $y_{\text{original}}$ = `chain(x)`, the unablated
# model's output (we measure how much the *model* changes, not how well it does its task).
#
# <details><summary>Hint: running the chain with a modified first matrix</summary>
#
# Write a `layer_fn(l, a)` that returns `einops.einsum(a, W, "batch inst d_in, inst d_out d_in -> batch inst d_out")`
# with `W = chain.weights[0] - terms[:, k]` when `l == 0` and `W = chain.weights[l]` otherwise, and call
# `chain(x, layer_fn)`. A loop over `k` is fine.
# </details>


# %%
def ablation_losses(
    chain: WeightChain, terms: Float[Tensor, "inst k d_out d_in"], x: Float[Tensor, "batch inst d_in"]
) -> Float[Tensor, "inst k batch"]:
    """How much removing each rank-one term from the chain's first matrix changes the output on each input.

    Entry [i, k, b]: mean over output dims of (chain output with W_0 - terms[i, k] on x[b] - chain(x)[b])².
    """
    ### BEGIN SOLUTION
    original = chain(x)
    losses = []
    for k in range(terms.shape[1]):
        W_ablated = chain.weights[0] - terms[:, k]

        def layer_fn(layer: int, a: Tensor, W_ablated: Tensor = W_ablated) -> Tensor:
            W = W_ablated if layer == 0 else chain.weights[layer]
            return einops.einsum(a, W, "batch inst d_in, inst d_out d_in -> batch inst d_out")

        losses.append((chain(x, layer_fn) - original).pow(2).mean(-1))
    return einops.rearrange(torch.stack(losses), "k batch inst -> inst k batch")
    ### END SOLUTION


# %%
if MAIN:
    tests.part8_parameter_decomposition.test_ablation_losses(ablation_losses)

# %% [markdown]
# Now compare two ways of cutting $W$ into rank-one pieces: its two SVD terms, and its five **columns**
# $W_i e_i^\top$ (the piece that carries feature $i$ into the hidden space). The heatmaps show the
# ablation loss of every piece (rows) on every one-hot input (columns) for model 0.

# %%
if MAIN:
    x_one_hot = spd.one_hot_inputs(5, tms_chain.n_inst, value=1.0, device=device)
    svd_losses = ablation_losses(tms_chain, svd_terms(tms_chain.weights[0]), x_one_hot)
    column_losses = ablation_losses(tms_chain, spd.column_terms(tms_chain.weights[0]), x_one_hot)
    spd.plot_ablation_heatmaps(svd_losses[0], column_losses[0])
    for name, losses in (("SVD term", svd_losses), ("column", column_losses)):
        print(f"inputs one {name} hurts (above 10% of its worst), mean over pieces and models: "
              f"{spd.inputs_hurt(losses).mean():.1f} of 5")  # fmt: skip

# %% [markdown]
# Each SVD term hurts most inputs (about 4 of 5, printed above): every column $W_i$ has a component along
# both singular directions. The columns behave like mechanisms: removing $W_i e_i^\top$ changes only the output for
# input $i$. The SVD finds the fewest pieces that add up to $W$ on *every* input at once; a mechanism is a
# piece that a *given* input needs. Five pieces for a rank-2 matrix is more than the SVD would ever use,
# yet each input needs one: superposition seen from the weights, and what SPD looks for: **more rank-one
# pieces than the rank, each needed by few inputs**.
#
# ## 2. Subcomponents and faithfulness
#
# SPD writes every matrix $W_l$ (`[d_out d_in]`) as $U_l V_l$ with $U_l$: `[d_out C]` and $V_l$:
# `[C d_in]`: subcomponent $c$ is $u_c v_c^\top$ (column $c$ of $U$ times row $c$ of $V$), and $C$ is
# chosen larger than needed. What the pieces miss is the **delta**, $\Delta_l = W_l - U_l V_l$. The
# **faithfulness loss** is the mean of its squared entries over **all** the parameters of all the
# matrices together (one global mean: a mean of per-matrix means would give a 2×2 matrix as much weight
# as a 1000×1000 one); as with every loss here, the instances are **summed**:
# $$L_{\text{faithfulness}} = \frac{1}{N} \sum_l \sum_{i,j} \big(W_l - U_l V_l\big)_{ij}^2, \qquad
# N = \textstyle\sum_l d^l_{out} d^l_{in}.$$
#
# ### Exercise 3: `faithfulness_loss`
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 10 minutes
#
# <details><summary>Hint</summary>
#
# `U[l] @ V[l]` multiplies instance by instance. Sum the squared deltas of all matrices per instance
# (`[inst]`), divide by the number of entries of one instance's matrices, then sum over instances.
# </details>


# %%
def faithfulness_loss(weights: list[Tensor], U: list[Tensor], V: list[Tensor]) -> Float[Tensor, ""]:
    """Σ_inst (1/N) Σ_l ‖W_l - U_l V_l‖², N = total number of entries of one instance's matrices.

    weights[l]: [inst d_out d_in], U[l]: [inst d_out C], V[l]: [inst C d_in].
    """
    ### BEGIN SOLUTION
    squared_error = sum((W - U_l @ V_l).pow(2).sum((-2, -1)) for W, U_l, V_l in zip(weights, U, V, strict=True))
    n_params = sum(W[0].numel() for W in weights)
    return (squared_error / n_params).sum()
    ### END SOLUTION


# %%
if MAIN:
    tests.part8_parameter_decomposition.test_faithfulness_loss(faithfulness_loss)

# %% [markdown]
# ## 3. Causal importance
#
# Which pieces does an input need? SPD **learns** it: for every subcomponent a tiny function predicts
# its *causal importance* $g_c(x) \in [0, 1]$: 1 means "this input needs me whole", 0 "scale me by
# anything in $[0, 1]$ and the output won't change". It sees only the subcomponent's **inner activation**
# $h_c = v_c \cdot a$ (what it reads from the layer's input $a$), through a GELU MLP of its own (width
# $d_{ci}$) and a hard sigmoid:
# $$g_c(x) = \sigma_H\Big(\textstyle\sum_j w^{out}_{c,j}\,
#   \mathrm{GELU}\big(w^{in}_{c,j} h_c + b^{in}_{c,j}\big) + b^{out}_c\Big),
# \qquad \sigma_H(z) = \min(\max(z, 0), 1).$$
#
# **Gradients that leak.** $\sigma_H$ is flat below 0 and above 1: a piece whose pre-activation drifted
# below 0 would never learn that some input needs it; one stuck above 1, that an input doesn't. SPD keeps
# the forward value but lets a small gradient (slope $\alpha = 0.01$) **leak** through one flat side:
#
# | function | forward | slope below 0 | on [0, 1] | above 1 | used for |
# | --- | --- | --- | --- | --- | --- |
# | `LowerLeakyHardSigmoid` | $\sigma_H(z)$ | $\alpha$ | 1 | 0 | the masks (reconstruction losses) |
# | `UpperLeakyHardSigmoid` | $\sigma_H(z)$ | 0 | 1 | $\alpha$ | the minimality penalty |
#
# The reconstruction losses push importance **up** when an input needs a piece, so their gradient must
# reach a pre-activation below 0; the minimality penalty pushes **down**, so its gradient must reach one
# above 1. Nothing should push an unneeded piece further below 0, or a needed one further above 1.
#
# ### Exercise 4: the two leaky hard sigmoids
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 15 minutes
#
# Write both as `torch.autograd.Function`s taking `(x, alpha)`: `forward` returns the hard sigmoid,
# `backward` the gradient for `x` (the incoming gradient times the slope in the table) and `None` for `alpha`.
#
# <details><summary>Hint: the autograd.Function pattern</summary>
#
# In `forward(ctx, x, alpha)`: `ctx.save_for_backward(x)`, `ctx.alpha = alpha`, return `x.clamp(0, 1)`.
# In `backward(ctx, grad_output)`: `(x,) = ctx.saved_tensors`, build the slope with `torch.where`
# and return `(grad_output * slope, None)`.
# </details>


# %%
class LowerLeakyHardSigmoid(torch.autograd.Function):
    """Forward: clamp(x, 0, 1). Backward: slope alpha below 0, 1 on [0, 1], 0 above 1."""

    @staticmethod
    def forward(ctx, x: Tensor, alpha: float = 0.01) -> Tensor:
        ### BEGIN SOLUTION
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return x.clamp(0, 1)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:
        ### BEGIN SOLUTION
        (x,) = ctx.saved_tensors
        slope = torch.where(x < 0, ctx.alpha, (x <= 1).to(x.dtype))
        return grad_output * slope, None
        ### END SOLUTION


class UpperLeakyHardSigmoid(torch.autograd.Function):
    """Forward: clamp(x, 0, 1). Backward: slope 0 below 0, 1 on [0, 1], alpha above 1."""

    @staticmethod
    def forward(ctx, x: Tensor, alpha: float = 0.01) -> Tensor:
        ### BEGIN SOLUTION
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return x.clamp(0, 1)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:
        ### BEGIN SOLUTION
        (x,) = ctx.saved_tensors
        slope = torch.where(x > 1, ctx.alpha, (x >= 0).to(x.dtype))
        return grad_output * slope, None
        ### END SOLUTION


# %%
if MAIN:
    tests.part8_parameter_decomposition.test_lower_leaky_hard_sigmoid(LowerLeakyHardSigmoid)

# %%
if MAIN:
    tests.part8_parameter_decomposition.test_upper_leaky_hard_sigmoid(UpperLeakyHardSigmoid)

# %% [markdown]
# ### Exercise 5: `CausalImportance.forward`
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 20 minutes
#
# One module holds the MLPs of every subcomponent of one matrix, for every instance: `w_in`, `b_in`,
# `w_out` (`[inst C d_ci]`) and `b_out` (`[inst C]`); subcomponent $c$ of instance $i$ uses only its slice
# `[i, c]`. Compute $h = V a$ (`[batch inst C]`) and the MLP's pre-activation $z$, and return **both**
# `(LowerLeakyHardSigmoid(z), UpperLeakyHardSigmoid(z))` with `self.alpha`; gradients must reach `V` and
# every MLP parameter.
#
# <details><summary>Hint: a separate MLP per subcomponent without a loop</summary>
#
# Give $h$ a trailing axis of size 1 and let broadcasting do the rest:
# `hidden = F.gelu(h[..., None] * self.w_in + self.b_in)` has shape `[batch inst C d_ci]`;
# `z = (hidden * self.w_out).sum(-1) + self.b_out`.
# </details>


# %%
class CausalImportance(nn.Module):
    """A one-hidden-layer GELU MLP per subcomponent (scalar in, scalar out) for one matrix, all instances."""

    def __init__(self, n_inst: int, C: int, d_ci: int, alpha: float = 0.01, device: torch.device | str = "cpu"):
        super().__init__()
        self.alpha = alpha
        self.w_in = nn.Parameter(torch.randn(n_inst, C, d_ci, device=device))
        self.b_in = nn.Parameter(0.5 * torch.randn(n_inst, C, d_ci, device=device))
        self.w_out = nn.Parameter(torch.randn(n_inst, C, d_ci, device=device) / math.sqrt(d_ci))
        self.b_out = nn.Parameter(torch.zeros(n_inst, C, device=device))

    def forward(
        self, a: Float[Tensor, "batch inst d_in"], V: Float[Tensor, "inst C d_in"]
    ) -> tuple[Float[Tensor, "batch inst C"], Float[Tensor, "batch inst C"]]:
        """(lower-leaky, upper-leaky) causal importances of every subcomponent on every input."""
        ### BEGIN SOLUTION
        inner = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
        hidden = F.gelu(inner[..., None] * self.w_in + self.b_in)
        z = (hidden * self.w_out).sum(-1) + self.b_out
        return LowerLeakyHardSigmoid.apply(z, self.alpha), UpperLeakyHardSigmoid.apply(z, self.alpha)
        ### END SOLUTION


# %%
if MAIN:
    tests.part8_parameter_decomposition.test_causal_importance(CausalImportance)

# %% [markdown]
# ## 4. Stochastic masks
#
# A causal importance $g$ claims: "this piece can be scaled by anything in $[g, 1]$ without changing the
# output". SPD tests it on every step with a random scale from that range, $m = g + (1 - g)\, r$,
# $r \sim U[0, 1]$, asking the masked model for the original output. As $m$ is differentiable in $g$, the
# reconstruction error teaches the importance functions where they claimed too little. Two details:
#
# * **Every example, instance and subcomponent gets its own $r$**: one $r$ for the whole batch would test
#   one combination of ablations per step, and the claims are about each input.
# * **The delta gets a mask too**, $m_\Delta \sim U[0, 1]$, one per example and matrix: the masked
#   matrix is $\sum_c m_c u_c v_c^\top + m_\Delta \Delta$, so any unfaithfulness costs reconstruction error.
#
# ### Exercise 6: `sample_masks`
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 10 minutes
#
# Given one causal-importance tensor per matrix (`[batch inst C]`, **lower**-leaky), return
# `(masks, delta_masks)`: one mask tensor per matrix, shaped like its importances, and one delta mask
# per matrix, `[batch inst]`. Gradients must flow from the masks to the importances.
#
# <details><summary>Hint</summary>
#
# `torch.rand_like(ci)` draws a fresh $r$ for every entry. Don't detach `ci`.
# </details>


# %%
def sample_masks(
    causal_importances: list[Float[Tensor, "batch inst C"]],
) -> tuple[list[Float[Tensor, "batch inst C"]], list[Float[Tensor, "batch inst"]]]:
    """Masks g + (1 - g) r and delta masks r', with r, r' ~ U[0, 1] independent for every entry."""
    ### BEGIN SOLUTION
    masks = [g + (1 - g) * torch.rand_like(g) for g in causal_importances]
    delta_masks = [torch.rand(g.shape[:-1], device=g.device, dtype=g.dtype) for g in causal_importances]
    return masks, delta_masks
    ### END SOLUTION


# %%
if MAIN:
    tests.part8_parameter_decomposition.test_sample_masks(sample_masks)

# %% [markdown]
# ## 5. The masked forward pass and the reconstruction losses
#
# With a mask per example, every example gets its own matrix. We never build it: the masked product is
# $W'(a) = U\big(m \odot (V a)\big) + m_\Delta\, (\Delta\, a)$ with $\Delta = W - UV$, no dearer than
# $W a$ (and equal to it when every mask is 1). The **stochastic reconstruction loss** runs the chain with
# every matrix masked and compares its output with the original output (MSE over output dims and the
# batch, summed over instances). It is noisy, since every matrix is perturbed at once, so SPD adds a
# **layerwise** version: mask one matrix at a time and average the losses over the matrices. Both compare
# outputs at the end of the model, never hidden activations.
#
# ### Exercise 7: `masked_product`
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 10 minutes
#
# <details><summary>Hint</summary>
#
# `inner = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")`, multiply by the mask,
# go back up with `U`. The delta term: `(W - U @ V)` applied to `a`, times `delta_mask[..., None]`.
# Keep the delta differentiable (no `.detach()`): it depends on `U` and `V`.
# </details>


# %%
def masked_product(
    a: Float[Tensor, "batch inst d_in"],
    W: Float[Tensor, "inst d_out d_in"],
    U: Float[Tensor, "inst d_out C"],
    V: Float[Tensor, "inst C d_in"],
    mask: Float[Tensor, "batch inst C"],
    delta_mask: Float[Tensor, "batch inst"],
) -> Float[Tensor, "batch inst d_out"]:
    """U (mask ⊙ V a) + delta_mask · (W - U V) a, for every example with its own masks."""
    ### BEGIN SOLUTION
    inner = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
    out = einops.einsum(inner * mask, U, "batch inst C, inst d_out C -> batch inst d_out")
    delta = W - U @ V
    delta_out = einops.einsum(a, delta, "batch inst d_in, inst d_out d_in -> batch inst d_out")
    return out + delta_mask[..., None] * delta_out
    ### END SOLUTION


# %%
if MAIN:
    tests.part8_parameter_decomposition.test_masked_product(masked_product)

# %% [markdown]
# ### Exercise 8: `stochastic_reconstruction_losses`
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 20 minutes
#
# Return `(full, layerwise)`: `full` runs the chain with **every** matrix $l$ replaced by
# `masked_product(a, W_l, U[l], V[l], masks[l], delta_masks[l])`; `layerwise` runs it, for each $l$, with
# **only** matrix $l$ masked, and is the mean of those losses over $l$. Each loss is the MSE against
# `chain(x)` (mean over output dims and batch), summed over instances.
#
# <details><summary>Hint</summary>
#
# A `layer_fn(l, a)` that returns the masked product for the matrices you want masked and
# `einops.einsum(a, chain.weights[l], "batch inst d_in, inst d_out d_in -> batch inst d_out")` for the others.
# </details>


# %%
def stochastic_reconstruction_losses(
    chain: WeightChain, U: list[Tensor], V: list[Tensor], x: Tensor, masks: list[Tensor], delta_masks: list[Tensor]
) -> tuple[Float[Tensor, ""], Float[Tensor, ""]]:
    """(all matrices masked, mean over l of only matrix l masked): MSE to the original output, summed over instances.

    U[l] [inst d_out C], V[l] [inst C d_in], x [batch inst d_in], masks[l] [batch inst C], delta_masks[l] [batch inst]
    """
    ### BEGIN SOLUTION
    target = chain(x)

    def loss_with_masked(layers: set[int]) -> Tensor:
        def layer_fn(layer: int, a: Tensor) -> Tensor:
            if layer in layers:
                return masked_product(a, chain.weights[layer], U[layer], V[layer], masks[layer], delta_masks[layer])
            return einops.einsum(a, chain.weights[layer], "batch inst d_in, inst d_out d_in -> batch inst d_out")

        return (chain(x, layer_fn) - target).pow(2).mean((0, 2)).sum()

    n_layers = len(chain.weights)
    full = loss_with_masked(set(range(n_layers)))
    layerwise = sum(loss_with_masked({layer}) for layer in range(n_layers)) / n_layers
    return full, layerwise
    ### END SOLUTION


# %%
if MAIN:
    tests.part8_parameter_decomposition.test_stochastic_reconstruction_losses(stochastic_reconstruction_losses)

# %% [markdown]
# ## 6. Minimality
#
# Nothing so far stops the importance functions from answering $g = 1$ everywhere (reconstruction
# perfect, nothing learned). The **importance-minimality** penalty pushes every importance towards 0, so a
# piece keeps a high importance only where the reconstruction losses defend it:
# $$L_{\text{minimality}} = \frac{1}{B}\sum_{b} \sum_l \sum_c \big(g^l_c(x_b) + \epsilon\big)^p,$$
# a sum over matrices and subcomponents and a mean over the batch (summed over instances), on the
# **upper**-leaky importances. With $p < 1$ the penalty is concave: two pieces at half importance cost
# more than one whole piece ($2 \cdot 0.5^p > 1$), so it favours few whole pieces over many partial ones,
# as an $L_0$ count would. The small $\epsilon$ keeps the gradient of $g^p$ finite at $g = 0$.
#
# ### Exercise 9: `importance_minimality_loss`
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 5 minutes


# %%
def importance_minimality_loss(
    causal_importances: list[Float[Tensor, "batch inst C"]], p: float, eps: float = 1e-12
) -> Float[Tensor, ""]:
    """Σ_inst mean_batch Σ_l Σ_c (g + eps)^p."""
    ### BEGIN SOLUTION
    per_example = sum((g + eps).pow(p).sum(-1) for g in causal_importances)  # [batch inst]
    return per_example.mean(0).sum()
    ### END SOLUTION


# %%
if MAIN:
    tests.part8_parameter_decomposition.test_importance_minimality_loss(importance_minimality_loss)

# %% [markdown]
# ### Stretch: adversarial masks
#
# A decomposition can pass most random tests of its claims and fail a few specific combinations, so newer
# versions of SPD also search for the **worst** masks the importances allow: with *sources*
# $r \in [0, 1]$ in $m = g + (1 - g)\, r$, a few steps of **projected gradient ascent** on the
# reconstruction loss, $r \leftarrow \mathrm{clamp}\big(r + \eta\, \mathrm{sign}(\nabla_r L),\ 0,\ 1\big)$
# (the sign makes every step the same size, the clamp keeps the masks allowed). The search treats $g$ as
# fixed; the loss at the sources it finds is then trained on, with gradients to $g$.
#
# ### Exercise 10 (optional): `adversarial_sources`
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵⚪⚪⚪ · about 15 minutes
#
# `loss_fn(sources)` takes a list of source tensors and returns a scalar. From `init` (unchanged), take
# `n_steps` steps of size `step_size`, clamping after each, and return the final sources **detached**.
#
# <details><summary>Hint</summary>
#
# Each step: `sources = [s.detach().requires_grad_(True) for s in sources]`, then
# `grads = torch.autograd.grad(loss_fn(sources), sources)`, then the update under `torch.no_grad()`.
# </details>


# %%
def adversarial_sources(loss_fn, init: list[Tensor], n_steps: int, step_size: float) -> list[Tensor]:
    """n_steps of r <- clamp(r + step_size * sign(∂loss/∂r), 0, 1) from init; returns detached sources."""
    ### BEGIN SOLUTION
    sources = [s.detach().clone() for s in init]
    for _ in range(n_steps):
        sources = [s.requires_grad_(True) for s in sources]
        grads = torch.autograd.grad(loss_fn(sources), sources)
        with torch.no_grad():
            sources = [(s + step_size * g.sign()).clamp(0, 1) for s, g in zip(sources, grads, strict=True)]
    return [s.detach() for s in sources]
    ### END SOLUTION


# %%
if MAIN:
    tests.part8_parameter_decomposition.test_adversarial_sources(adversarial_sources)

# %% [markdown]
# ## 7. Putting it together (given)
#
# `Decomposition` (in `utils/part8_parameter_decomposition.py`) holds every matrix's `U[l]`, `V[l]` and
# `CausalImportance` module, and builds the training loss from **your** functions, handed to it as
# `SPDFunctions`; its `losses` method, printed below, is the whole method on one screen. `train_spd` is an
# Adam loop over it. We chose four settings while tuning the decomposition of TMS to come out clean in
# most runs within a minute:
#
# * **$p$ is annealed** from 2 (a small importance is cheap, so pieces stay in play while the
#   decomposition sorts itself out) down to 0.5 from 30% of training on (few whole pieces win).
# * **Room**: $C = 20$ pieces per matrix for 5 mechanisms, 8 hidden units per importance MLP.
# * **A warm-up** fits `U` and `V` to the weights, so the masked model starts close to the original;
#   afterwards faithfulness is only logged (the randomly scaled delta already makes it cost).
# * **Restarts.** Some runs end in a *tangle*: a feature served by two pieces that belong to other
#   features (in two dimensions any direction is a combination of two others). A tangle needs more pieces
#   per input, so its loss is higher: we decompose every model twice and keep the run with the lower loss.

# %%
SPD_FUNCTIONS = SPDFunctions(
    faithfulness_loss, CausalImportance, sample_masks, masked_product, stochastic_reconstruction_losses,
    importance_minimality_loss, adversarial_sources,
)  # fmt: skip


def decompose(chain: WeightChain, cfg: SPDConfig, generate_batch, restarts: int = 1, progress: bool = True):
    """SPD of every instance of `chain` with this notebook's functions; the best of `restarts` runs (given)."""
    return spd.decompose(chain, cfg, SPD_FUNCTIONS, generate_batch, restarts, progress=progress)


if MAIN:
    print(inspect.getsource(spd.Decomposition.losses))

# %% [markdown]
# ## 8. Decomposing the TMS model
#
# If SPD finds the mechanisms, then in $W$ piece $i$ reads feature $i$ ($v \propto e_i$), writes its
# direction ($u \propto W_i$), and is important exactly when feature $i$ is on; in $W^\top$ piece $i$
# reads along $W_i$ and writes output $i$; every other piece is dead (unimportant on every input).

# %%
TMS_SPD, TMS_RESTARTS = SPDConfig(), 2  # the defaults were tuned on this model

if MAIN:
    tms_dec, tms_history = decompose(tms_chain, replace(TMS_SPD, steps=steps(TMS_SPD.steps)), tms.generate_batch,
                                     restarts=TMS_RESTARTS)  # fmt: skip
    print(f"trained {TMS_RESTARTS} x {tms_chain.n_inst} decompositions in {tms_history.seconds:.0f} s")

# %% [markdown]
# ### What a learner should see: the loss curves
#
# * The **reconstruction** losses fall steeply in the first few hundred steps, then level off one to two
#   orders of magnitude lower: the error the minimality pressure leaves.
# * The **minimality** loss falls from its start (every piece claims every input) to a low plateau: with
#   $p$ at 0.5 a whole piece costs 1, so it ends near the number of whole pieces an input needs. An input
#   has $5 \times 0.05 = 0.25$ features on, each needing a piece per matrix: 0.5. It ends lower, as a
#   feature with a small value needs no piece (the bias and ReLU clip it).
# * The **faithfulness** loss (only logged) jumps as the pieces leave the warm-up's fit, then falls back.

# %%
if MAIN:
    spd.plot_spd_losses(tms_history, title="SPD on the TMS models: every loss term (mean over instances and restarts)")
    spd.print_loss_summary(tms_history)

# %% [markdown]
# ### Causal importance on one-hot inputs
#
# One feature on (at 0.5). When SPD works, both heatmaps are permutation matrices: one piece per feature,
# important only when it is on. The output errors are relative (MSE over the output's mean square, on a
# large batch): with every mask at the importance (only what each input is claimed to need), and whole.

# %%
if MAIN:
    tms_one_hot = spd.one_hot_inputs(5, tms_chain.n_inst, value=0.5, device=device)
    tms_eval = spd.evaluate_decomposition(tms_dec, tms.generate_batch, tms_one_hot)
    ci_one_hot = tms_dec.importances_on(tms_one_hot)
    spd.plot_causal_importance([c[:, 0] for c in ci_one_hot], tms_chain.names,
                               title="Causal importance on one-hot inputs (model 0)")  # fmt: skip
    spd.print_evaluation(tms_eval)

# %% [markdown]
# ### Read and write directions
#
# Cosines of each live piece's directions with the features (model 0), rows sorted by the input each
# piece matters for. In $W$ a piece should read one input feature and write its direction $W_i$; in
# $W^\top$ read along $W_i$ and write output $i$: diagonals. (The $W_i$ lie in a plane, so a piece along
# $W_i$ also has cosines of about $\pm 0.3$ and $\pm 0.8$ with the other features: the pentagon's angles.)

# %%
if MAIN:
    for layer in range(2):
        spd.plot_tms_directions(tms_dec, layer, ci_one_hot[layer][:, 0])

# %% [markdown]
# ## 9. The same model through an SAE
#
# Section 5's vanilla SAE (five latents, resampling) on each model's hidden vector $h = Wx$, against SPD
# (model 0). Top: the SAE's decoder directions, and the SPD pieces of $W$ as what each writes for its
# feature ($u_c v_{c,i}$), over the features (grey). Bottom: SAE latents and SPD importances on one-hots.

# %%
if MAIN:
    torch.manual_seed(0)
    sae = ToySAE(ToySAEConfig(n_inst=tms.cfg.n_inst, d_in=2, d_sae=5, sparsity_coeff=0.2), tms)
    sae.optimize(steps=steps(4_000), batch_size=512, lr=1e-2, resampler=partial(resample_advanced, batch_size=512),
                 resample_freq=500, resample_window=250, resample_scale=0.5)  # fmt: skip
    spd.compare_sae_and_spd(tms.W, sae, tms_dec, tms_one_hot)

# %% [markdown]
# SAE and SPD agree on the directions: each finds the five feature directions (best cosines above). They
# disagree on everything else. An SAE describes **activations**: a latent's value says how much of its
# direction $h$ contains, and the L1 penalty shrinks it (the SAE's $h$ for a one-hot input is shorter than
# $h$, last line above). SPD describes **weights**: a piece is a part of $W$ with the full length of the
# column it replaces, and its importance says *whether* the input needs it, not how much. And SPD
# decomposed both matrices, so it also found how $W^\top$ reads each feature back out, about which an SAE
# on $h$ says nothing. Here features and mechanisms coincide; they part ways when a computation needs
# something no single feature direction describes, as the next two models show.
#
# ## 10. Computation in superposition: the |x| model
#
# Section 2's $y = \mathrm{ReLU}(W_2\, \mathrm{ReLU}(W_1 x) + b)$ with target $|x|$: 20 features (importance
# $0.8^i$, values in $[-1, 1]$, probability 0.02) and 10 neurons, a privileged basis between $W_1$ (10×20)
# and $W_2$ (20×10). Do the mechanisms line up with **features**, **neurons**, or neither? We probe with
# each feature at $+0.5$, then $-0.5$: a piece important on `+3` only is needed when feature 3 is positive.

# %%
ABS_PROBABILITY, ABS_SPD = 0.02, SPDConfig(C=40)


def train_abs_model(n_inst: int, seed: int, n_steps: int, device: torch.device | str = "cpu"):
    """Section 2's |x| model, 20 features in 10 neurons, trained from `seed` (given)."""
    torch.manual_seed(seed)
    cfg = ToyModelConfig(n_inst=n_inst, n_features=20, d_hidden=10)
    model = NeuronComputationModel(cfg, ABS_PROBABILITY, 0.8 ** torch.arange(20.0), device=device)
    model.optimize(batch_size=512, steps=n_steps, lr=1e-2, lr_scale=cosine_decay_lr)
    return model


if MAIN:
    abs_model = train_abs_model(n_inst=2, seed=0, n_steps=steps(3_000), device=device)
    abs_chain = spd.chain_from_computation(abs_model)
    abs_dec, _ = decompose(abs_chain, replace(ABS_SPD, steps=steps(ABS_SPD.steps)), abs_model.generate_batch)
    abs_inputs, labels = spd.signed_one_hot_inputs(20, 2, 0.5, device=device), spd.signed_labels(20)
    abs_ci = abs_dec.importances_on(abs_inputs)
    spd.print_computed_halves(abs_model, spd.evaluate_decomposition(abs_dec, abs_model.generate_batch, abs_inputs))

# %% [markdown]
# A surprise about the model itself: it computes $|x|$ for few features. For most features it keeps, it
# computes one half, $\mathrm{ReLU}(x)$ or $\mathrm{ReLU}(-x)$ ("computes": an output of at least half the
# input's size), and about 0 for the other sign. Now the live pieces of model 0: the signed inputs each is
# important on (above 0.5), and how concentrated its read and write directions are on one coordinate
# (1.00: one feature or neuron; 0.32: an even spread over 10 neurons).

# %%
if MAIN:
    abs_batch = abs_model.generate_batch(20_000)  # a piece is live if it is important (> 0.1) on one of these
    for layer, (read, write) in enumerate([("feature", "neuron"), ("neuron", "output")]):
        spd.print_pieces(abs_dec, layer, abs_ci[layer][:, 0], labels, abs_batch, read, write)

# %%
if MAIN:
    spd.plot_causal_importance([c[:, 0] for c in abs_ci], abs_chain.names, input_labels=labels,
                               x_label="signed one-hot input",
                               title="|x| model 0: causal importance on each signed one-hot input")  # fmt: skip
    spd.plot_piece_directions(abs_dec, 0, abs_ci[0][:, 0], read_label="input feature", write_label="neuron",
                              title="|x| model 0, W1: what each live piece reads and writes")  # fmt: skip

# %% [markdown]
# What the pieces of the |x| model line up with:
#
# * **Features, one sign at a time.** Every live piece of $W_1$ reads a single input feature (read
#   concentration 0.95 or more) and is important on that feature's inputs only: a piece for "feature 3 is
#   positive", another for "feature 10 is negative". Every half the model computes has a piece, and no
#   other half has one (a feature computed for both signs may get one piece for both).
# * **Not neurons.** The same pieces write mostly to one neuron but not only to it (write concentrations
#   mostly below 0.95), and pieces share their main neuron: the neurons are polysemantic, the pieces not.
# * The output error with the unimportant pieces off is larger than for TMS: a neuron shared by several
#   halves leaks a little of each into the others' outputs, and switching pieces off changes that.
#
# So the mechanisms are "compute $\mathrm{ReLU}(\pm x_i)$", one per half the model computes: neither
# section 2's features nor the neurons.
#
# ## 11. Your choice: a model from the open-problems lab
#
# `spd.chain_from_experiment` turns any model of section 7's lab into a chain. We pick one whose mechanisms
# are *not* feature directions, **AND of pairs**: six binary features (probability 0.3), output $j$ is 1
# when features $2j$ **and** $2j+1$ are on; six ReLU neurons with biases, untied output weights. A neuron
# can compute an AND as $\mathrm{ReLU}(x_a + x_b - 1)$: a piece important on the pair, on no one-hot input.

# %%
AND_SPD = SPDConfig(C=12)


def train_and_model(n_inst: int, seed: int, n_steps: int, device: torch.device | str = "cpu"):
    """Section 7's lab model computing AND of feature pairs (given)."""
    cfg = ExperimentConfig(n_inst=n_inst, n_features=6, d_hidden=6, hidden_activation="relu", tied=False,
                           hidden_bias=True, values="binary", target="and_pairs")  # fmt: skip
    return run_experiment(cfg, 0.3, steps=n_steps, batch_size=512, lr=1e-2, seed=seed, device=device, progress=False)


if MAIN:
    and_model = train_and_model(n_inst=2, seed=0, n_steps=steps(3_000), device=device)
    and_chain = spd.chain_from_experiment(and_model)
    and_dec, _ = decompose(and_chain, replace(AND_SPD, steps=steps(AND_SPD.steps)), and_model.generate_batch)
    and_x = spd.pair_inputs(6, 2, device)
    spd.print_and_outputs(and_model, and_x)
    spd.plot_causal_importance([c[:, 0] for c in and_dec.importances_on(and_x)], and_chain.names,
                               title="AND of pairs (model 0): causal importance on one-hot and pair inputs",
                               x_label="input (features on)", input_labels=spd.pair_labels(6))  # fmt: skip

# %% [markdown]
# Each live piece, in both matrices, is important on exactly one **pair** input and on no one-hot input: a
# mechanism that reads two features and is needed only when both are on, one per AND the model computes
# (a model that skipped a pair, see its outputs above, has no piece for it). No single feature direction
# describes these. Try another lab model (`x²` with signed values, `max_pairs`, a GELU hidden layer):
# wrap it with `spd.chain_from_experiment`, decompose it with $C$ a few times the mechanisms you expect,
# and read the importances on inputs that separate your hypotheses.
#
# ## Summary
#
# * The SVD cuts a weight matrix into the fewest rank-one pieces, and each matters for almost every
#   input: superposition means more mechanisms than the matrix's rank.
# * SPD writes every matrix as many rank-one pieces, learns which pieces each input needs (causal
#   importance) and tests those claims by randomly turning unneeded pieces down (stochastic masks) while
#   asking for the same output (reconstruction losses); a concave minimality penalty makes the claims as
#   small as the reconstruction allows. The leaky hard sigmoids exist for the gradients.
# * On TMS 5→2 the pieces are the model's five feature columns in $W$ and its five readouts in $W^\top$;
#   the SAE finds the same directions in the activations, with shrinkage and without the readout.
# * On the |x| model the mechanisms are the signed halves the model computes, not its neurons; on AND of
#   pairs they are conjunctions of two features.
# * The optimisation has local optima (tangles), with a higher loss than clean runs, so restarts
#   selected by loss help. Expect to need such care (annealing, room, restarts) on any new model.
