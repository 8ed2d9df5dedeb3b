# %% [markdown]
# # Part 5: Sparse autoencoders in toy models
#
# In part 1 a toy model squeezed five features into two dimensions. Looking at its weights we could
# *see* the five feature directions, but in a real network we only get the activations, and the
# features are exactly what we want to find. A **sparse autoencoder** (SAE) is a tool for finding
# them from activations alone.
#
# The idea: if activations are sparse combinations of many feature directions, then an encoder that
# maps each activation to a *sparse, non-negative* code over a dictionary of directions, and a decoder
# that adds those directions back up, should end up with the dictionary equal to the feature
# directions. Sparsity is what makes the answer unique: there are many ways to write a 2D point as a
# combination of five directions, but only one way to write it with as few active directions as
# possible, and when features are rarely on together that way is "the features that are actually on".
#
# Toy models are the best place to learn this, because here we know the ground truth and can check
# whether the SAE found it.
#
# **What you will do**
# 1. Build a vanilla SAE (encoder, ReLU, normalised decoder, L1 penalty) and train it on the toy
#    model's hidden activations; watch its directions move in an animation.
# 2. Meet dead latents, and fix them with two resampling schemes.
#
# Part 5a continues with shrinkage and the architectures that avoid it (Gated, JumpReLU, TopK), the
# metrics people report for SAEs, and a comparison on the L0 / reconstruction frontier.

# %% [markdown]
# ## Imports

# %%
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor, nn

from solutions.part1_superposition import ToyModel, ToyModelConfig
from utils.device import get_device
from utils.part1_superposition import plot_features_in_2d
from utils.part5_toy_saes import animate_sae_directions, dead_at_end, plot_frac_active, plot_frac_active_runs
from utils.runtime import steps
from utils.sae_training import SAETrainingLog, train_sae
from utils.schedules import cosine_decay_lr

MAIN = __name__ == "__main__"

if MAIN:
    import tests.part5_toy_saes

    device = get_device()
    # The toy tensors are tiny: on a CPU one thread is faster than several (no thread hand-offs per op;
    # about 5x faster measured on a busy 2-core machine).
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"Running on {device}")

# %% [markdown]
# ## The toy model we will decompose
#
# Eight instances of part 1's model: 5 features, 2 hidden dimensions, every feature present with
# probability 0.025 and equally important. At this sparsity each instance stores all five features as
# a pentagon-like star in 2D. The hidden vector $h = Wx$ is what the SAE will see.

# %%
if MAIN:
    toy_cfg = ToyModelConfig(n_inst=8, n_features=5, d_hidden=2)
    toy_model = ToyModel(toy_cfg, feature_probability=0.025, device=device)
    toy_model.optimize(steps=steps(5_000), lr=5e-3, lr_scale=cosine_decay_lr)
    plot_features_in_2d(
        toy_model.W,
        titles=[f"instance {k}" for k in range(toy_cfg.n_inst)],
        title="The toy model's 5 feature directions in 2D, per instance",
        max_cols=4,
    )

# %% [markdown]
# ## The sparse autoencoder
#
# For one instance with input $h \in \mathbb{R}^{d_{in}}$ and $d_{sae}$ latents:
#
# $$z = \mathrm{ReLU}\big(W_{enc}^\top (h - b_{dec}) + b_{enc}\big), \qquad
#   \hat h = \hat W_{dec}^\top z + b_{dec}$$
#
# $$L = \underbrace{\tfrac{1}{d_{in}}\lVert h - \hat h\rVert_2^2}_{\text{reconstruction}}
#     + \lambda \underbrace{\lVert z\rVert_1}_{\text{sparsity}}$$
#
# where $\hat W_{dec}$ is the decoder with each latent's row scaled to unit length. Each row of the
# decoder is a candidate feature direction; $z_j$ says how much of direction $j$ the input contains.
#
# * **Why subtract $b_{dec}$ first?** $b_{dec}$ is the SAE's guess of the "typical" input. The encoder
#   then only has to explain what is different from it, and the decoder adds it back.
# * **Why normalise the decoder?** Without it, the SAE could shrink $z$ (cheap L1) and grow the decoder
#   row by the same factor (same reconstruction), driving the L1 penalty to zero without becoming any
#   sparser. Fixing each row to unit norm makes $\lVert z \rVert_1$ a real measure of activity.
# * **Tied weights** ($W_{dec} = W_{enc}^\top$) halve the parameters and are an option here; untied is
#   the default because the best encoder direction is generally *not* the feature direction when
#   features interfere.
#
# All tensors carry an `inst` axis: one independent SAE per toy-model instance, trained in one loop.
# Losses are averaged over the batch and summed over instances (so each SAE gets its own gradient).
# `sparsity_coeff` may be a float or one value per instance (handy for sweeps).


# %%
@dataclass
class ToySAEConfig:
    n_inst: int
    d_in: int
    d_sae: int
    sparsity_coeff: float | list[float] = 0.2
    weight_normalize_eps: float = 1e-8
    tied_weights: bool = False
    k: int = 1  # TopK: active latents per example
    jumprelu_init_threshold: float = 0.001
    jumprelu_bandwidth: float = 0.001
    aux_k: int = 0  # TopK with AuxK: dead latents used to reconstruct the residual (0 = no auxiliary loss)
    aux_coeff: float = 1 / 32  # weight of the auxiliary loss
    dead_steps: int = 100  # a latent that has not fired for this many training steps counts as dead

    def __post_init__(self) -> None:
        for name in ("n_inst", "d_in", "d_sae", "k", "dead_steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if self.k > self.d_sae:
            raise ValueError(f"k={self.k} can't exceed d_sae={self.d_sae}")
        if not isinstance(self.aux_k, int) or not 0 <= self.aux_k <= self.d_sae:
            raise ValueError(f"aux_k must be an int in [0, d_sae={self.d_sae}], got {self.aux_k!r}")


class ToySAE(nn.Module):
    SAELENS_ARCHITECTURE: ClassVar[str] = "standard"  # what utils.saelens_interop exports it as
    W_enc: Float[Tensor, "inst d_in d_sae"]
    _W_dec: Float[Tensor, "inst d_sae d_in"] | None
    b_enc: Float[Tensor, "inst d_sae"]
    b_dec: Float[Tensor, "inst d_in"]

    # Which axis of each per-latent parameter indexes latents (the training loop resets their optimiser state).
    LATENT_AXES: ClassVar[dict[str, int]] = {"W_enc": -1, "_W_dec": -2, "b_enc": -1}

    def __init__(self, cfg: ToySAEConfig, model: ToyModel | None = None) -> None:
        """Create the SAE's parameters, and keep a frozen copy of the toy model it reads from.

        W_enc: [inst d_in d_sae] with Kaiming-uniform init (torch.nn.init.kaiming_uniform_);
        _W_dec: [inst d_sae d_in], initialised to W_enc transposed (a clone), or None when cfg.tied_weights;
        b_enc: [inst d_sae] and b_dec: [inst d_in], zeros. All nn.Parameters on the model's device.
        The model (if given) is stored as self.model with requires_grad switched off for all its parameters.
        """
        super().__init__()
        if model is not None and (model.cfg.n_inst != cfg.n_inst or model.cfg.d_hidden != cfg.d_in):
            raise ValueError(
                f"the SAE config (n_inst={cfg.n_inst}, d_in={cfg.d_in}) doesn't match the model "
                f"(n_inst={model.cfg.n_inst}, d_hidden={model.cfg.d_hidden})"
            )
        self.cfg = cfg
        device = model.W.device if model is not None else get_device()
        ### BEGIN SOLUTION
        self.model = model.requires_grad_(False) if model is not None else None
        self.W_enc = nn.Parameter(nn.init.kaiming_uniform_(torch.empty(cfg.n_inst, cfg.d_in, cfg.d_sae, device=device)))
        self._W_dec = None if cfg.tied_weights else nn.Parameter(self.W_enc.detach().transpose(-1, -2).clone())
        self.b_enc = nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_sae, device=device))
        self.b_dec = nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_in, device=device))
        ### END SOLUTION
        coeff = torch.as_tensor(cfg.sparsity_coeff, dtype=torch.float32, device=device)
        self.register_buffer("sparsity_coeff", coeff.broadcast_to((cfg.n_inst,)).clone())

    @property
    def W_dec(self) -> Float[Tensor, "inst d_sae d_in"]:
        """The decoder: its own parameter, or (tied weights) a transposed view of W_enc that shares its storage."""
        return self._W_dec if self._W_dec is not None else self.W_enc.transpose(-1, -2)

    @property
    def W_dec_normalized(self) -> Float[Tensor, "inst d_sae d_in"]:
        """The decoder with each latent's row (over d_in) scaled to unit norm.

        Divide by (norm + cfg.weight_normalize_eps) so an all-zero row gives zeros, not NaN.
        """
        ### BEGIN SOLUTION
        return self.W_dec / (self.W_dec.norm(dim=-1, keepdim=True) + self.cfg.weight_normalize_eps)
        ### END SOLUTION

    def generate_batch(self, batch_size: int) -> Float[Tensor, "batch inst d_in"]:
        """Hidden activations h = W x of the frozen toy model, for a fresh batch of its features x."""
        ### BEGIN SOLUTION
        features = self.model.generate_batch(batch_size)
        return einops.einsum(features, self.model.W, "batch inst feats, inst d_in feats -> batch inst d_in")
        ### END SOLUTION

    def forward(
        self, h: Float[Tensor, "batch inst d_in"]
    ) -> tuple[dict[str, Tensor], Tensor, Float[Tensor, "batch inst d_sae"], Float[Tensor, "batch inst d_in"]]:
        """Encode, decode and compute the losses.

        Returns (loss_dict, loss, acts_post, h_reconstructed) where
          loss_dict["L_reconstruction"]: [batch inst], mean over d_in of (h_reconstructed - h)²;
          loss_dict["L_sparsity"]:       [batch inst], L1 norm of acts_post (sum over latents);
          loss: scalar, (L_reconstruction + sparsity_coeff[inst] · L_sparsity) averaged over the batch,
                summed over instances.
        Use self.W_dec_normalized for decoding.
        """
        ### BEGIN SOLUTION
        h_cent = h - self.b_dec
        acts_pre = einops.einsum(h_cent, self.W_enc, "batch inst d_in, inst d_in d_sae -> batch inst d_sae")
        acts_post = F.relu(acts_pre + self.b_enc)
        h_reconstructed = (
            einops.einsum(acts_post, self.W_dec_normalized, "batch inst d_sae, inst d_sae d_in -> batch inst d_in")
            + self.b_dec
        )
        loss_dict = {
            "L_reconstruction": (h_reconstructed - h).pow(2).mean(-1),
            "L_sparsity": acts_post.abs().sum(-1),
        }
        loss = (loss_dict["L_reconstruction"] + self.sparsity_coeff * loss_dict["L_sparsity"]).mean(0).sum()
        return loss_dict, loss, acts_post, h_reconstructed
        ### END SOLUTION

    def reset_latent_extras(self, dead: Bool[Tensor, "inst d_sae"]) -> None:
        """Reset the architecture's own per-latent state when latents are resampled (none here; given).

        The training loop calls it after every resampling; subclasses with extra per-latent parameters
        (a threshold, a magnitude path) override it."""

    def optimize(self, steps: int = 10_000, batch_size: int = 1024, lr: float = 1e-3, **kwargs) -> SAETrainingLog:
        """Train with `utils.sae_training.train_sae` (given); see it for resampling and logging options."""
        return train_sae(self, steps=steps, batch_size=batch_size, lr=lr, **kwargs)


# %% [markdown]
# ### Exercise 1: `__init__`
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵⚪⚪⚪ · about 10 minutes
#
# Fill in the parameters in `ToySAE.__init__`. With tied weights, store `_W_dec = None`: the `W_dec`
# property then returns a transposed *view* of `W_enc`, so training one trains the other. Freeze the
# toy model (`requires_grad_(False)`): the SAE must learn to read the model, not change it.
#
# <details><summary>Hint: initialisation</summary>
#
# `nn.init.kaiming_uniform_(torch.empty(...))` fills a tensor in place and returns it; wrap it in
# `nn.Parameter`. For the untied decoder, `self.W_enc.detach().transpose(-1, -2).clone()` gives an
# independent copy with the right shape.
# </details>

# %%
if MAIN:
    tests.part5_toy_saes.test_init(ToySAE)

# %% [markdown]
# ### Exercise 2: `W_dec_normalized`
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 5 minutes
#
# Scale each latent's decoder row to unit length. Which axis holds a latent's direction?
#
# <details><summary>Hint</summary>
#
# `W_dec` is `[inst d_sae d_in]`: a latent's direction runs along the last axis, so take
# `norm(dim=-1, keepdim=True)`. Add the epsilon to the norm, not inside a square root of the rows.
# </details>

# %%
if MAIN:
    tests.part5_toy_saes.test_W_dec_normalized(ToySAE)

# %% [markdown]
# ### Exercise 3: `generate_batch`
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵⚪⚪⚪ · about 5 minutes
#
# The SAE's data are the toy model's hidden activations: draw a fresh batch of features with the
# model's own `generate_batch`, and map it through `W` (no ReLU, no decoding).

# %%
if MAIN:
    tests.part5_toy_saes.test_generate_batch(ToySAE)

# %% [markdown]
# ### Exercise 4: `forward`
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 20 minutes
#
# Implement the equations above. Keep the per-example losses in `loss_dict` (shape `[batch inst]`):
# the training loop and the resampling code need them. `self.sparsity_coeff` has shape `[inst]`.
#
# <details><summary>Hint: the order of the biases</summary>
#
# Subtract `b_dec` from `h` *before* the encoder, add `b_enc` before the ReLU, decode with
# `W_dec_normalized`, then add `b_dec` back.
# </details>
#
# <details><summary>Hint: reductions</summary>
#
# Reconstruction: mean over `d_in`. Sparsity: sum of absolute values over `d_sae`. Total: weight the
# sparsity per instance, mean over the batch, then sum over instances.
# </details>

# %%
if MAIN:
    tests.part5_toy_saes.test_forward(ToySAE)

# %% [markdown]
# ## Training a vanilla SAE
#
# Five latents for five features, sparsity coefficient 0.2, 4 000 steps at batch size 512 with a fairly
# large learning rate (0.01: the toy problem is small, and a large step makes the failure below easier to
# see). We fix the seed, so the runs with resampling later start from exactly the same SAE.
#
# A latent that fired on no example in the last 250 training steps is counted as **dead** below.

# %%
if MAIN:
    SAE_SEED, SAE_LR = 2, 1e-2
    sae_cfg = ToySAEConfig(n_inst=8, d_in=2, d_sae=5, sparsity_coeff=0.2)
    torch.manual_seed(SAE_SEED)
    sae = ToySAE(sae_cfg, toy_model)
    log_vanilla = sae.optimize(steps=steps(4_000), batch_size=512, lr=SAE_LR, snapshot_freq=steps(250, 5))
    dead_vanilla = dead_at_end(log_vanilla)  # [inst d_sae] bool
    # the figures show the instances where a latent died (up to three) and one where none did
    died = [k for k in range(sae_cfg.n_inst) if dead_vanilla[k].any()]
    healthy = [k for k in range(sae_cfg.n_inst) if k not in died]
    show_insts = died[:3] + healthy[:1] if died else healthy[:4]
    print(f"dead latents at the end, per instance: {dead_vanilla.sum(-1).tolist()}")
    print(f"instances with a dead latent: {died}")
    with torch.no_grad():
        h_sample = sae.generate_batch(300)

# %% [markdown]
# The animation shows, for the instances with a dead latent and one without, the toy model's features
# (grey lines), a batch of hidden activations (dots), and each latent's decoder direction (coloured arrow)
# and encoder direction (dotted) as training goes on. Press play or drag the slider.

# %%
if MAIN:
    animate_sae_directions(
        toy_model.W,
        h_sample,
        log_vanilla.W_dec,
        log_vanilla.snapshot_steps,
        W_enc=log_vanilla.W_enc,
        instances=show_insts,
        title="Vanilla SAE: decoder directions over training",
    )

# %% [markdown]
# Most latents find a feature and lock onto it. A dead latent is one whose encoder direction and bias
# leave it below zero on every input: with zero activation it gets zero gradient, so nothing pulls it back.
# The fraction-active plot shows it as a line that falls to 0 and stays there (the instances printed
# above); in those instances one feature has no latent of its own.

# %%
if MAIN:
    plot_frac_active(
        log_vanilla.frac_active_tensor(),
        log_vanilla.steps,
        feature_probability=0.025,
        instances=show_insts,
        title="Vanilla SAE: fraction of examples on which each latent fires",
    )

# %% [markdown]
# <details><summary>Question: what fraction of examples should a latent that learned a feature fire on?</summary>
#
# About the feature's probability, 0.025: it should fire when its feature is present and only then.
# A latent well above that line fires on other features' inputs too (it is not monosemantic); a latent
# at zero is dead. A latent slightly below may miss the smallest values of its feature, because the L1
# penalty makes it cheaper to ignore a tiny value than to encode it.
# </details>

# %% [markdown]
# ## Resampling dead latents
#
# A dead latent is wasted capacity, and with only five latents for five features every dead latent
# is a missed feature. **Resampling** gives dead latents a fresh start. We keep the fraction of
# examples on which each latent fired at every step of a window (say the last 500 steps); a latent
# that fired on *no* example in the *whole* window is dead. Looking only at the last step would kill
# healthy but rare latents: with probability 0.025 a feature can easily be absent for a step or two
# of a small batch.
#
# What we give a dead latent $j$ (and leave every live latent exactly as it was):
# * a new unit-norm decoder direction $v$;
# * an encoder column pointing the same way but short, so the latent starts by firing weakly and does
#   not disturb the other latents' work;
# * $b_{enc,j} = 0$.
#
# The training loop also zeroes Adam's moment estimates for those latents (otherwise the momentum
# accumulated while the latent was dying would push it straight back).
#
# Both functions receive the SAE and `frac_active_in_window: [window inst d_sae]`, and change the SAE's
# parameters in place (they run under `torch.no_grad()`). The training loop takes the scheme as an
# argument: `sae.optimize(..., resampler=resample_simple)`.

# %% [markdown]
# ### Exercise 5: `resample_simple`
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 20 minutes
#
# For each dead latent: draw a random direction, uniformly over the unit sphere (an isotropic Gaussian
# vector divided by its norm is uniform on the sphere), set it as the decoder row, set the encoder
# column to `resample_scale` times it, and zero the encoder bias.
#
# <details><summary>Hint: indexing</summary>
#
# `dead` has shape `[inst d_sae]`. `sae.W_dec.data[dead]` selects `[n_dead, d_in]` rows (this also
# works for tied weights, since then `W_dec` is a view of `W_enc`), and so does
# `sae.W_enc.data.transpose(-1, -2)[dead]`. Assigning into these writes into the parameters.
#
# With tied weights the decoder row and the encoder column are the same numbers, so the last write
# wins: write the decoder row first and the encoder column last. The encoder then keeps
# `resample_scale` · v, which is what matters (the forward pass normalises the decoder rows anyway).
# </details>
#
# <details><summary>Hint: why not torch.rand?</summary>
#
# `torch.rand` draws from $U[0, 1]$: every coordinate is positive, so all new directions point into
# one quadrant. Use `torch.randn`.
# </details>


# %%
def resample_simple(
    sae: ToySAE, frac_active_in_window: Float[Tensor, "window inst d_sae"], resample_scale: float
) -> None:
    """Resample the latents dead over the whole window: random unit decoder row v, encoder column
    resample_scale · v, encoder bias 0. Latents that fired at any step of the window are left untouched."""
    ### BEGIN SOLUTION
    dead = (frac_active_in_window <= 0).all(dim=0)
    n_dead = int(dead.sum())
    if n_dead == 0:
        return
    directions = torch.randn(n_dead, sae.cfg.d_in, device=sae.W_enc.device)
    directions /= directions.norm(dim=-1, keepdim=True)
    sae.W_dec.data[dead] = directions
    sae.W_enc.data.transpose(-1, -2)[dead] = directions * resample_scale
    sae.b_enc.data[dead] = 0.0
    ### END SOLUTION


# %%
if MAIN:
    tests.part5_toy_saes.test_resample_simple(resample_simple)

# %% [markdown]
# ### Exercise 6: `resample_advanced`
# > **Difficulty** 🔴🔴🔴🔴⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 30 minutes
#
# Random directions work in 2D, where a random direction is never far from a feature. In a real
# model with hundreds of dimensions, a random direction is nearly orthogonal to everything. A better
# source of directions: **the inputs the SAE currently reconstructs worst**. They contain whatever
# the live latents fail to explain.
#
# For each instance with dead latents:
# 1. Take a fresh batch with `sae.generate_batch(batch_size)` and its per-example
#    `L_reconstruction` from `sae.forward` (shape `[batch inst]`).
# 2. For each dead latent, pick one example at random with probability proportional to the *square*
#    of its reconstruction loss (so badly reconstructed inputs are strongly preferred). If every loss is
#    0 there is nothing to learn: leave that instance alone.
# 3. New decoder row: the picked example minus `b_dec`, scaled to unit norm.
# 4. New encoder column: that direction times `resample_scale` times the mean norm of the *live*
#    latents' encoder columns (1.0 if no latent is alive). Encoder bias: 0.
#
# <details><summary>Hint: sampling</summary>
#
# `torch.multinomial(weights, n_dead, replacement=True)` draws indices with probability proportional
# to `weights` (it normalises them for you).
# </details>
#
# <details><summary>Hint: the encoder norm</summary>
#
# The encoder column of latent $j$ is `sae.W_enc[inst, :, j]`; its norm is over `d_in`. Average these
# norms over the latents that are *not* dead.
# </details>


# %%
def resample_advanced(
    sae: ToySAE, frac_active_in_window: Float[Tensor, "window inst d_sae"], resample_scale: float, batch_size: int
) -> None:
    """Resample dead latents towards badly reconstructed inputs (probability ∝ L_reconstruction²)."""
    ### BEGIN SOLUTION
    dead = (frac_active_in_window <= 0).all(dim=0)
    h = sae.generate_batch(batch_size)
    l2 = sae.forward(h)[0]["L_reconstruction"]  # [batch inst]
    for inst in range(sae.cfg.n_inst):
        dead_idx = dead[inst].nonzero().squeeze(-1)
        n_dead = dead_idx.numel()
        weights = l2[:, inst].pow(2)
        if n_dead == 0 or weights.sum() <= 0:
            continue
        picked = torch.multinomial(weights, n_dead, replacement=True)
        directions = h[picked, inst] - sae.b_dec[inst]
        directions = directions / directions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        alive_norms = sae.W_enc[inst, :, ~dead[inst]].norm(dim=0)
        scale = alive_norms.mean() if alive_norms.numel() > 0 else 1.0
        sae.W_dec.data[inst, dead_idx] = directions
        sae.W_enc.data[inst][:, dead_idx] = directions.T * resample_scale * scale
        sae.b_enc.data[inst, dead_idx] = 0.0
    ### END SOLUTION


# %%
if MAIN:
    tests.part5_toy_saes.test_resample_advanced(resample_advanced)

# %% [markdown]
# ### Training with resampling
#
# Same SAE (same seed, so the same initial weights), same steps, now resampling every 500 steps over a
# 250-step window. We train one SAE with each scheme and compare the instances where a latent died
# without resampling: each resampling is a dotted line, and a dead latent's line jumps back up there.

# %%
if MAIN:
    resample_kwargs = dict(resample_freq=500, resample_window=250, resample_scale=0.5)
    torch.manual_seed(SAE_SEED)
    sae_simple = ToySAE(sae_cfg, toy_model)
    log_simple = sae_simple.optimize(
        steps=steps(4_000),
        batch_size=512,
        lr=SAE_LR,
        resampler=resample_simple,
        snapshot_freq=steps(250, 5),
        **resample_kwargs,
    )
    torch.manual_seed(SAE_SEED)
    sae_advanced = ToySAE(sae_cfg, toy_model)
    log_advanced = sae_advanced.optimize(
        steps=steps(4_000),
        batch_size=512,
        lr=SAE_LR,
        resampler=partial(resample_advanced, batch_size=512),
        **resample_kwargs,
    )
    for name, log in [("no resampling", log_vanilla), ("simple", log_simple), ("advanced", log_advanced)]:
        resampled = int(torch.stack(log.n_resampled).sum()) if log.n_resampled else 0
        print(f"{name:14s} latents resampled in total: {resampled:2d}   dead at the end: {dead_at_end(log).sum()}")
    plot_frac_active_runs(
        {
            "no resampling": (log_vanilla.frac_active_tensor(), log_vanilla.steps, []),
            "advanced resampling": (log_advanced.frac_active_tensor(), log_advanced.steps, log_advanced.resample_steps),
        },
        feature_probability=0.025,
        instances=show_insts,
        title="Without and with resampling: fraction of examples on which each latent fires",
    )

# %% [markdown]
# The simple scheme on the same instances, as an animation: watch a dead latent's arrow jump to a random
# direction at a resampling step and then turn towards the feature nobody covered.

# %%
if MAIN:
    animate_sae_directions(
        toy_model.W,
        h_sample,
        log_simple.W_dec,
        log_simple.snapshot_steps,
        W_enc=log_simple.W_enc,
        instances=show_insts,
        title="Vanilla SAE with simple resampling: decoder directions over training",
    )

# %% [markdown]
# ## Summary
#
# * An SAE learns a sparse, overcomplete code for activations; its decoder rows are candidate features.
#   On a toy model we can check them against the truth, and here they match it.
# * The decoder is normalised so that the sparsity penalty measures activity, not scale: scaling a decoder
#   row up changes nothing, so the SAE cannot buy a smaller penalty that way.
# * Latents can die: one that fires on no input gets no gradient and stays dead, and its feature goes
#   unlearned. Resampling gives dead latents a fresh start, and they come back and learn the missing feature.
#
# Part 5a builds on these classes: shrinkage, the Gated, JumpReLU and TopK architectures, and the metrics
# that compare them. Section 6 trains `ToySAE` with `utils.sae_training.train_sae` on a language
# model's MLP activations.
