# %% [markdown]
# # Part 5b: Feature absorption, BatchTopK and Matryoshka SAEs
#
# Part 5 gave every toy feature its own direction and asked whether an SAE finds them. Real features
# are not independent: "dog" implies "animal", a token starting with "s" implies "starts with a
# consonant". This part asks what an SAE does with such a **hierarchy**, and the answer is a failure
# mode with a name: **feature absorption**. The latent for "animal" stops firing on dogs, because the
# "dog" latent has quietly taken over the "animal" direction whenever a dog is present. The SAE's
# reconstruction is perfect and its L0 is low, yet the "animal" latent is no longer an animal detector:
# it has holes exactly where its children are.
#
# Then two architectures that today's SAE training uses by default: **BatchTopK** (a TopK SAE whose
# budget of active latents is shared across the batch) and **Matryoshka SAEs** (nested groups of latents,
# each group trained to reconstruct on its own), which was designed to reduce absorption. We finish by
# moving our toy SAEs into **SAELens**, the field's main SAE library, and scoring them with its
# synthetic-data evaluations next to SAELens's own implementations.
#
# **What you will do**
# 1. Write a generator of hierarchical features and train an SAE on it; watch absorption happen.
# 2. Measure absorption with a metric you write.
# 3. Implement BatchTopK (training and inference) and the Matryoshka loss, and compare the three SAEs.
# 4. Export a toy SAE to SAELens's format, load it back, and evaluate it against SAELens's own.

# %% [markdown]
# ## Imports

# %%
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from solutions.part5_toy_saes import ToySAE, ToySAEConfig, resample_advanced
from utils import part5b_absorption as absorption_plots
from utils.device import notebook_device
from utils.part5b_absorption import (
    HierarchyConfig,
    cooccurrence,
    decoder_feature_cosines,
    feature_labels,
    hidden_activations,
    orthonormal_features,
    parent_latent_firing,
)
from utils.runtime import steps

MAIN = __name__ == "__main__"

if MAIN:
    import tests.part5b_absorption

    device = notebook_device()
    torch.manual_seed(0)
    print(f"Running on {device}")

# %% [markdown]
# ## Hierarchical features
#
# Our toy data: 2 **parent** features, each with 3 **children**. A parent fires with probability
# 0.25; when it fires, at most one of its children fires, each with probability 0.3 (and with
# probability 0.1 none does). A child never fires without its parent. So a child is on in
# 0.25 × 0.3 = 7.5% of examples, and whenever it is on, its parent is on too.
#
# Every feature has its own orthogonal direction in an 8-dimensional space and is either off (0) or on
# (1). There is no superposition at all, so a perfect SAE with 8 latents exists: one latent per feature.
# Anything else the SAE learns is a choice the sparsity penalty made, not a lack of room.
#
# The features are laid out as `[P0, P1, C0.0, C0.1, C0.2, C1.0, C1.1, C1.2]` (parents first, then each
# parent's children); `HierarchyConfig` holds the sizes and probabilities and `cfg.parent_of` says who is
# whose parent (`-1` for a parent).

# %% [markdown]
# ### Exercise 1: `generate_hierarchical_batch`
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 15 minutes
#
# Draw parents, then children *given* their parents. For exclusive children, one uniform number per
# parent can decide which child (if any) fires: child $j$ when it lands in $[j\,p, (j+1)\,p)$.
#
# <details><summary>Hint: shapes</summary>
#
# Draw parents as `[batch inst n_parents]` and children as `[batch inst n_parents n_children]`; AND the
# children with `parents.unsqueeze(-1)`, then `torch.cat([parents, children.flatten(-2)], dim=-1)` gives
# the layout above.
# </details>


# %%
def generate_hierarchical_batch(
    cfg: HierarchyConfig, batch_size: int, device: torch.device | str = "cpu"
) -> Float[Tensor, "batch inst feats"]:
    """Binary features (1.0 on, 0.0 off) in the layout of `HierarchyConfig`, independently per example
    and instance. Parents fire with p_parent; each child fires with p_child *given* its parent fires, never
    without it; with cfg.exclusive at most one child of a parent fires (each with p_child), otherwise the
    children of a firing parent fire independently."""
    ### BEGIN SOLUTION
    shape = (batch_size, cfg.n_inst, cfg.n_parents)
    parents = torch.rand(shape, device=device) < cfg.p_parent
    if cfg.exclusive:
        # One uniform draw per parent picks which child (if any): child j when u lands in [j·p, (j+1)·p).
        u = torch.rand(*shape, 1, device=device)
        lower = torch.arange(cfg.n_children, device=device) * cfg.p_child
        children = (u >= lower) & (u < lower + cfg.p_child)
    else:
        children = torch.rand(*shape, cfg.n_children, device=device) < cfg.p_child
    children = children & parents.unsqueeze(-1)
    return torch.cat([parents, children.flatten(-2)], dim=-1).float()
    ### END SOLUTION


# %%
if MAIN:
    tests.part5b_absorption.test_generate_hierarchical_batch(generate_hierarchical_batch)

# %% [markdown]
# The data class below (given) fixes one set of orthonormal feature directions per instance and hands
# the SAE fresh hidden activations $h = Wx$. The heatmap shows the hierarchy in a large batch: every
# child's row has a 1 in its parent's column (a child is never on without its parent), siblings never
# fire together, and the two families are independent.


# %%
class HierarchicalData:
    """Fixed orthonormal feature directions per instance, and fresh hierarchical feature batches (given)."""

    def __init__(self, cfg: HierarchyConfig, device: torch.device | str = "cpu") -> None:
        self.cfg = cfg
        self.W = orthonormal_features(cfg, device)  # [inst d_in feats]

    def generate_batch(self, batch_size: int) -> Float[Tensor, "batch inst feats"]:
        return generate_hierarchical_batch(self.cfg, batch_size, self.W.device)

    def sample(self, batch_size: int) -> tuple[Float[Tensor, "batch inst feats"], Float[Tensor, "batch inst d_in"]]:
        features = self.generate_batch(batch_size)
        return features, hidden_activations(features, self.W)

    def attach(self, sae: ToySAE) -> ToySAE:
        """Make `sae.generate_batch` draw hidden activations from this data (returns the SAE)."""
        sae.generate_batch = lambda batch_size: self.sample(batch_size)[1]
        return sae


# %%
if MAIN:
    hier_cfg = HierarchyConfig(n_inst=8)
    data = HierarchicalData(hier_cfg, device)
    labels = feature_labels(hier_cfg)
    absorption_plots.plot_cooccurrence(cooccurrence(data.generate_batch(50_000)), labels)

# %% [markdown]
# ## Absorption, watched
#
# Train part 5's vanilla SAE (ReLU, L1 penalty, advanced resampling) with 8 latents on this data.
#
# Think about what the L1 penalty sees when "P0 and C0.1" are both on: the input is
# $h = d_{P0} + d_{C0.1}$, of length $\sqrt 2$. Two latents (one per feature) cost $1 + 1 = 2$ in L1. One
# latent whose decoder points along $(d_{P0} + d_{C0.1})/\sqrt 2$ reconstructs the same input for a cost
# of $\sqrt 2 \approx 1.41$. Since the child never appears without the parent, nothing is lost by
# folding the parent's direction into the child's latent: the child latent **absorbs** the parent, and
# the parent latent learns to stay off whenever a child is on.

# %%
TRAINING = dict(
    batch_size=512,
    lr=3e-3,
    resampler=partial(resample_advanced, batch_size=512),
    resample_freq=500,
    resample_window=250,
)
ABSORPTION_STEPS = 4_000


def train_sae_kind(kind: str, data: "HierarchicalData", n_steps: int, progress: bool = True) -> ToySAE:
    """Build this part's `kind` of SAE ("vanilla", "BatchTopK" or "Matryoshka", one latent per true feature),
    train it on `data` with part 5's training loop, and return it in eval mode (given; the tests train the same).

    The TopK-style SAEs resample with a larger encoder scale, for the reason given in part 5: a resampled
    latent that never makes the cut gets no gradient, so it must start strong enough to fire."""
    hier = data.cfg
    shape = dict(n_inst=hier.n_inst, d_in=hier.d_in, d_sae=hier.n_features)
    if kind == "vanilla":
        sae, resample_scale = ToySAE(ToySAEConfig(**shape, sparsity_coeff=0.05)), 1.0
    elif kind == "BatchTopK":
        sae, resample_scale = BatchTopKToySAE(ToySAEConfig(**shape, k=1)), 2.0
    elif kind == "Matryoshka":  # inner prefix: one latent per parent
        prefixes = (hier.n_parents, hier.n_features)
        sae, resample_scale = MatryoshkaToySAE(MatryoshkaConfig(**shape, k=1, prefix_sizes=prefixes)), 2.0
    else:
        raise ValueError(f"kind must be 'vanilla', 'BatchTopK' or 'Matryoshka', got {kind!r}")
    data.attach(sae)
    sae.optimize(steps=n_steps, resample_scale=resample_scale, progress=progress, **TRAINING)
    return sae.eval()


if MAIN:
    d_sae = hier_cfg.n_features
    vanilla = train_sae_kind("vanilla", data, steps(ABSORPTION_STEPS))
    with torch.no_grad():
        eval_features, eval_h = data.sample(20_000)
        vanilla_acts = vanilla(eval_h)[2]
    absorption_plots.plot_decoder_cosines(
        {"vanilla SAE, instance 0": decoder_feature_cosines(vanilla.W_dec_normalized, data.W)[0]}, labels
    )
    absorption_plots.plot_parent_latent_firing(
        {"vanilla SAE": parent_latent_firing(hier_cfg, eval_features, vanilla_acts, vanilla.W_dec_normalized, data.W)}
    )

# %% [markdown]
# Read the heatmap row by row. The latents that match a parent best are (nearly) pure parent
# directions, but most child latents sit at cosine ≈ 0.7 with *both* their child and its parent:
# $(d_P + d_C)/\sqrt 2$. The bar chart says the same thing from the activation side: P0's latent fires
# when P0 is on alone, and hardly ever when a child of P0 is on too.
#
# Nothing in the loss complains. The reconstruction is fine (you will see the variance explained below)
# and the L0 went *down*, below the true 0.95 active features per example. But if you used the
# parent latent as a "P0 detector" (as interpretability work does with real SAE latents, say to find
# every "animal" token), it would miss every example that has a child: most of them, in a world with many
# specific animals.

# %% [markdown]
# ### Exercise 2: measure absorption
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 20 minutes
#
# For each parent $p$ (and each instance), look at the examples where $p$ **and at least one of its
# children** are on. Among them, count the fraction where
# * $p$'s latent (the latent whose decoder row has the largest cosine with $p$'s direction) is **off**, and
# * some **other** active latent's decoder has cosine ≥ `cos_threshold` with $p$'s direction: the
#   parent's direction is still being reconstructed, just by someone else.
#
# Both conditions matter: a parent latent that is off while nobody carries the parent is a plain
# reconstruction failure, not absorption. This is a toy version of the metric Chanin et al. (2024) use on
# real SAEs, where the ground truth comes from probes instead of a known dictionary.
#
# <details><summary>Hint: cosines</summary>
#
# Normalise both the decoder rows (over `d_in`) and the feature columns (over `d_in`), then
# `einops.einsum(..., "inst d_sae d_in, inst d_in feats -> inst d_sae feats")`. Exclude the parent's own
# latent from the "carriers" before checking whether any carrier is active.
# </details>
#
# <details><summary>Hint: the parent latent's activation</summary>
#
# With `parent_latent: [inst]`, `acts[:, torch.arange(n_inst), parent_latent]` is `[batch inst]`.
# </details>


# %%
def absorption_fraction(
    features: Float[Tensor, "batch inst feats"],
    acts: Float[Tensor, "batch inst d_sae"],
    W_dec: Float[Tensor, "inst d_sae d_in"],
    W_features: Float[Tensor, "inst d_in feats"],
    parent_of: list[int],
    cos_threshold: float = 0.3,
) -> Float[Tensor, "inst parents"]:
    """For each parent feature p (parent_of[p] == -1, in feature order) and instance: among the examples in
    which p and at least one of its children are on, the fraction in which p's latent is off while some
    *other* active latent carries p's direction.

    p's latent: the latent whose decoder row has the largest cosine with p's direction. "Carries p's
    direction": decoder cosine with p ≥ cos_threshold. Fraction 0 where there is no such example."""
    ### BEGIN SOLUTION
    W_dec_hat = W_dec / (W_dec.norm(dim=-1, keepdim=True) + 1e-8)
    W_feat_hat = W_features / (W_features.norm(dim=1, keepdim=True) + 1e-8)
    cos = einops.einsum(W_dec_hat, W_feat_hat, "inst d_sae d_in, inst d_in feats -> inst d_sae feats")
    parents = [f for f, p in enumerate(parent_of) if p == -1]
    fractions = []
    for p in parents:
        children = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & (features[..., children] > 0).any(-1)  # [batch inst]
        parent_latent = cos[:, :, p].argmax(-1)  # [inst]
        carriers = cos[:, :, p] >= cos_threshold  # [inst d_sae]
        carriers[torch.arange(len(parent_latent)), parent_latent] = False
        parent_off = acts.gather(-1, parent_latent.expand(acts.shape[0], -1).unsqueeze(-1)).squeeze(-1) == 0
        carried = ((acts > 0) & carriers).any(-1)
        absorbed = cases & parent_off & carried
        fractions.append(absorbed.sum(0) / cases.sum(0).clamp_min(1))
    return torch.stack(fractions, dim=-1).to(acts.dtype)
    ### END SOLUTION


# %%
if MAIN:
    tests.part5b_absorption.test_absorption_fraction(absorption_fraction)

# %%
if MAIN:
    vanilla_absorption = absorption_fraction(
        eval_features, vanilla_acts, vanilla.W_dec_normalized, data.W, hier_cfg.parent_of
    )
    print(f"vanilla SAE: absorption {vanilla_absorption.mean():.2f} (per instance and parent:)")
    print(vanilla_absorption.numpy().round(2))

# %% [markdown]
# <details><summary>Question: would a TopK SAE with k = 1 avoid absorption?</summary>
#
# No, it would be forced into it: with one latent per example, an example with a parent and a child can
# only be reconstructed if a single latent points at both. Any sparsity pressure that counts active
# latents (TopK, JumpReLU's L0, BatchTopK's budget) rewards absorption for the same reason L1 does: one
# latent instead of two. Absorption is a property of the *objective*, not of one architecture.
# </details>

# %% [markdown]
# ## BatchTopK
#
# TopK gives every example exactly $k$ latents, but examples differ: some contain one feature, others
# three. **BatchTopK** (Bussmann et al., 2024) keeps the $k \cdot B$ largest activations over the whole
# batch of $B$ examples instead, so the *average* L0 is $k$ while each example gets as many latents as it
# needs to win.
#
# At inference time there is no batch to compete in (and an example's latents should not depend on which
# other examples happen to share its batch). So during training we record a single threshold: a moving
# average of the smallest activation that made the cut. At inference, a latent fires when its activation
# is above that threshold. The trained BatchTopK SAE is then a JumpReLU SAE with one threshold shared by
# all latents, which is exactly how SAELens saves it.

# %% [markdown]
# ### Exercise 3: `batch_topk`
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 10 minutes
#
# Each instance is a separate SAE, so the competition runs over the batch and latent axes together, per
# instance.
#
# <details><summary>Hint</summary>
#
# `einops.rearrange(pre, "batch inst d_sae -> inst (batch d_sae)")`, `topk(k * batch, dim=-1)`, scatter the
# values into zeros, and rearrange back (with `batch=batch`).
# </details>


# %%
def batch_topk(pre: Float[Tensor, "batch inst d_sae"], k: int) -> Float[Tensor, "batch inst d_sae"]:
    """Keep, separately for each instance, the k · batch largest entries of `pre` over the whole batch
    (all examples and latents together); zero the rest."""
    ### BEGIN SOLUTION
    batch = pre.shape[0]
    flat = einops.rearrange(pre, "batch inst d_sae -> inst (batch d_sae)")
    top = flat.topk(k * batch, dim=-1)
    kept = torch.zeros_like(flat).scatter(-1, top.indices, top.values)
    return einops.rearrange(kept, "inst (batch d_sae) -> batch inst d_sae", batch=batch)
    ### END SOLUTION


# %%
if MAIN:
    tests.part5b_absorption.test_batch_topk(batch_topk)

# %% [markdown]
# ### Exercise 4: `BatchTopKToySAE.encode`
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 15 minutes
#
# In training mode (`self.training`, the default; `sae.eval()` switches it off), compute the ReLU'd
# pre-activations as in part 5, apply `batch_topk`, and update the per-instance threshold with the
# smallest *positive* kept activation (skip an instance that kept nothing positive). In eval mode, keep
# every ReLU'd pre-activation above `self.threshold` and leave the threshold alone.
#
# <details><summary>Hint: the smallest positive kept value</summary>
#
# `torch.where(acts > 0, acts, torch.inf).amin(dim=(0, 2))` gives one value per instance (`inf` where
# nothing positive was kept). Update the buffer in place under `torch.no_grad()`.
# </details>


# %%
class BatchTopKToySAE(ToySAE):
    SAELENS_ARCHITECTURE: ClassVar[str] = "batchtopk"
    THRESHOLD_MOMENTUM: ClassVar[float] = 0.01
    threshold: Float[Tensor, " inst"]

    def __init__(self, cfg: ToySAEConfig, model=None) -> None:
        super().__init__(cfg, model)
        self.register_buffer("threshold", torch.zeros(cfg.n_inst, device=self.W_enc.device))

    def encode(self, h: Float[Tensor, "batch inst d_in"]) -> Float[Tensor, "batch inst d_sae"]:
        """Training mode: batch_topk of the ReLU'd pre-activations, and update the inference threshold
        (per instance, an exponential moving average of the smallest positive kept activation):
        threshold ← threshold + THRESHOLD_MOMENTUM · (min_kept − threshold); an instance that kept nothing
        positive keeps its threshold.
        Eval mode: keep the ReLU'd pre-activations above the threshold, whatever the batch."""
        ### BEGIN SOLUTION
        pre = einops.einsum(h - self.b_dec, self.W_enc, "batch inst d_in, inst d_in d_sae -> batch inst d_sae")
        pre = F.relu(pre + self.b_enc)
        if not self.training:
            return pre * (pre > self.threshold[:, None])
        acts = batch_topk(pre, self.cfg.k)
        with torch.no_grad():
            positive = acts > 0
            min_kept = torch.where(positive, acts, torch.inf).amin(dim=(0, 2))  # [inst]
            has_any = positive.any(0).any(-1)
            updated = self.threshold + self.THRESHOLD_MOMENTUM * (min_kept - self.threshold)
            self.threshold.copy_(torch.where(has_any, updated, self.threshold))
        return acts
        ### END SOLUTION

    def decode(self, acts: Float[Tensor, "batch inst d_sae"]) -> Float[Tensor, "batch inst d_in"]:
        return (
            einops.einsum(acts, self.W_dec_normalized, "batch inst d_sae, inst d_sae d_in -> batch inst d_in")
            + self.b_dec
        )

    def forward(self, h: Float[Tensor, "batch inst d_in"]):
        """Reconstruction loss only (sparsity comes from the top-k); L_sparsity counts active latents (given)."""
        acts = self.encode(h)
        h_reconstructed = self.decode(acts)
        loss_dict = {
            "L_reconstruction": (h_reconstructed - h).pow(2).mean(-1),
            "L_sparsity": (acts > 0).to(h.dtype).sum(-1),
        }
        return loss_dict, loss_dict["L_reconstruction"].mean(0).sum(), acts, h_reconstructed


# %%
if MAIN:
    tests.part5b_absorption.test_batchtopk_encode(BatchTopKToySAE)

# %% [markdown]
# ## Matryoshka SAEs
#
# Absorption happens because nothing forces the parent latent to do a parent's whole job. A **Matryoshka
# SAE** (Bussmann et al., 2025; Nabeshima, 2024) adds that force. Pick nested prefixes of the latents, say
# the first 2 and then all 8. The loss is the sum of the reconstruction losses of each prefix *on its
# own*: the first 2 latents must reconstruct every input as well as 2 latents can, without help.
#
# Two latents that must explain the data alone learn the most common, most general directions: the
# parents. And once a parent latent has to fire on every example containing its parent (including those
# with a child, or the prefix loss suffers), there is nothing left for the child latents to absorb.
# They learn what the child adds to the parent. Like the dolls the method is named after, each prefix is
# a complete, coarser SAE inside the larger one.

# %% [markdown]
# ### Exercise 5: `matryoshka_loss`
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 15 minutes
#
# Each prefix reconstruction is a complete SAE output: it includes $b_{dec}$. The last prefix is all
# the latents, so its term is the usual reconstruction loss.
#
# <details><summary>Hint</summary>
#
# Loop over `prefix_sizes`; `acts[..., :m]` and `W_dec_normalized[:, :m]` are the first `m` latents.
# </details>


# %%
def matryoshka_loss(
    acts: Float[Tensor, "batch inst d_sae"],
    W_dec_normalized: Float[Tensor, "inst d_sae d_in"],
    b_dec: Float[Tensor, "inst d_in"],
    h: Float[Tensor, "batch inst d_in"],
    prefix_sizes: tuple[int, ...],
) -> Float[Tensor, "batch inst"]:
    """Sum over m in prefix_sizes of the reconstruction loss (mean over d_in of squared error) when only the
    first m latents decode: h_m = acts[..., :m] · W_dec_normalized[:, :m] + b_dec."""
    ### BEGIN SOLUTION
    total = torch.zeros(h.shape[:2], device=h.device, dtype=h.dtype)
    for m in prefix_sizes:
        h_m = einops.einsum(acts[..., :m], W_dec_normalized[:, :m], "batch inst m, inst m d_in -> batch inst d_in")
        total = total + (h_m + b_dec - h).pow(2).mean(-1)
    return total
    ### END SOLUTION


# %%
if MAIN:
    tests.part5b_absorption.test_matryoshka_loss(matryoshka_loss)

# %% [markdown]
# The Matryoshka SAE below (given) is a BatchTopK SAE whose loss is `matryoshka_loss`. We train it, a plain
# BatchTopK SAE and the vanilla SAE above on the same data, with $k = 1$ (the true L0 is 0.95) and prefixes
# (2, 8): one latent per parent, then room for everything.


# %%
@dataclass
class MatryoshkaConfig(ToySAEConfig):
    prefix_sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        sizes = tuple(self.prefix_sizes)
        if not sizes or list(sizes) != sorted(set(sizes)) or sizes[0] < 1 or sizes[-1] != self.d_sae:
            raise ValueError(f"prefix_sizes must increase strictly and end at d_sae={self.d_sae}, got {sizes}")
        self.prefix_sizes = sizes


class MatryoshkaToySAE(BatchTopKToySAE):
    def forward(self, h: Float[Tensor, "batch inst d_in"]):
        loss_dict, _, acts, h_reconstructed = super().forward(h)
        loss_dict["L_matryoshka"] = matryoshka_loss(acts, self.W_dec_normalized, self.b_dec, h, self.cfg.prefix_sizes)
        return loss_dict, loss_dict["L_matryoshka"].mean(0).sum(), acts, h_reconstructed


# %%
if MAIN:
    batchtopk = train_sae_kind("BatchTopK", data, steps(ABSORPTION_STEPS))
    matryoshka = train_sae_kind("Matryoshka", data, steps(ABSORPTION_STEPS))
    saes = {"vanilla": vanilla, "BatchTopK": batchtopk, "Matryoshka": matryoshka}
    with torch.no_grad():
        acts_by_sae = {name: sae(eval_h)[2] for name, sae in saes.items()}
    absorption = {
        name: absorption_fraction(eval_features, acts_by_sae[name], sae.W_dec_normalized, data.W, hier_cfg.parent_of)
        for name, sae in saes.items()
    }
    for name, sae in saes.items():
        with torch.no_grad():
            h_rec = sae(eval_h)[3]
        fve = 1 - (h_rec - eval_h).pow(2).sum() / (eval_h - eval_h.mean(0)).pow(2).sum()
        l0 = (acts_by_sae[name] > 0).float().sum(-1).mean()
        print(f"{name:10s} absorption {absorption[name].mean():.2f}, L0 {l0:.2f}, variance explained {fve:.3f}")
    inner = decoder_feature_cosines(matryoshka.W_dec_normalized, data.W)[:, :2, :2]  # [inst latent parent]
    split = (inner.argmax(-1)[:, 0] != inner.argmax(-1)[:, 1]) & (inner.amax(-1) > 0.7).all(-1)  # [inst]
    best_cos, mat_absorption = inner.amax(-1)[split], absorption["Matryoshka"]
    cos_range = f"cosines {best_cos.min():.2f} to {best_cos.max():.2f}" if split.any() else "none"
    print(
        f"Matryoshka: the two inner latents are the two parents (one each, cosine > 0.7) in {int(split.sum())} of "
        f"{hier_cfg.n_inst} instances ({cos_range}); "
        f"absorption {mat_absorption[split].mean():.2f} there, {mat_absorption[~split].mean():.2f} in the others"
    )
    absorption_plots.plot_absorption(absorption)
    absorption_plots.plot_parent_latent_firing(
        {
            name: parent_latent_firing(hier_cfg, eval_features, acts_by_sae[name], sae.W_dec_normalized, data.W)
            for name, sae in saes.items()
        }
    )
    absorption_plots.plot_decoder_cosines(
        {f"{name}, instance 0": decoder_feature_cosines(sae.W_dec_normalized, data.W)[0] for name, sae in saes.items()},
        labels,
    )

# %% [markdown]
# In most instances (printed above) the Matryoshka SAE's first two latents, its inner prefix, are the two
# parents, and they keep firing when a child is on. They lean a little towards the average of their
# children (children are common when the parent is on, so the best 2-latent reconstruction includes a
# bit of them), and the child latents correct for that with small *negative* components on their
# siblings. In the other instances the inner prefix settled on something else (both latents on one
# parent, or a mixture), and that is where most of the remaining absorption lives. BatchTopK absorbs
# less than the vanilla SAE here, but far from nothing.
#
# <details><summary>Question: what does the Matryoshka SAE pay for this?</summary>
#
# A slightly worse full reconstruction at about the same L0 (compare the variance explained printed above
# with BatchTopK's): the parent latents are not pure parent
# directions (they lean towards the children), and the inner prefix's loss pulls them away from the
# best 8-latent solution. On real models the Matryoshka papers report a small reconstruction cost and much
# less absorption; which trade-off you want depends on whether you will *use* the latents as detectors.
# </details>

# %% [markdown]
# ## Into SAELens
#
# SAELens stores an SAE as a folder with `cfg.json` (the architecture and its settings) and
# `sae_weights.safetensors` (the tensors, with names like `W_enc`, `b_dec`, `threshold`). Our toy SAEs
# hold 8 independent SAEs each; `utils.saelens_interop.export_to_saelens(sae, inst, path)` writes one
# instance in that format (with the normalised decoder, so the loaded SAE computes what ours does, up to
# float32 rounding), and `load_saelens(path)` reads it back with SAELens's own loader. A BatchTopK or Matryoshka SAE
# becomes a JumpReLU SAE whose thresholds all equal our learned threshold.

# %%
if MAIN:
    import tempfile
    from pathlib import Path

    from utils.saelens_interop import (
        export_to_saelens,
        load_saelens,
        synthetic_eval_table,
        synthetic_setup_from_toy_model,
        to_saelens,
        train_saelens_sae,
    )

    export_dir = Path(tempfile.mkdtemp()) / "matryoshka_inst0"
    export_to_saelens(matryoshka, inst=0, path=export_dir)
    print("files:", sorted(p.name for p in export_dir.iterdir()))
    loaded = load_saelens(export_dir, device=device)
    with torch.no_grad():
        ours_rec = matryoshka(eval_h[:1000])[3][:, 0]
        theirs_rec = loaded(eval_h[:1000, 0])
    difference = (ours_rec - theirs_rec).abs().max() / ours_rec.abs().max()
    print(
        f"{type(loaded).__name__}: largest difference from our reconstruction {difference:.1e} of its largest value "
        f"(float32 rounding is about {torch.finfo(torch.float32).eps:.0e})"
    )

# %% [markdown]
# Now the same data in SAELens's synthetic-data toolkit: a `FeatureDictionary` holding instance 0's
# feature directions and an activation generator drawing our hierarchical features. SAELens trains its
# own BatchTopK and Matryoshka SAEs on it, and `eval_sae_on_synthetic_data` scores all four SAEs on the
# same samples:
#
# * **MCC** (mean correlation coefficient): match latents to true features one-to-one (Hungarian
#   algorithm) and average the |cosine| of the matched pairs; 1 means every feature was found.
# * **uniqueness**: how many distinct true features the latents' best matches cover, over the number of
#   latents (1 when no two latents match the same feature).
# * **shrinkage**: mean length of the reconstruction over the length of the input (1 = none).
# * **L0** and **dead latents** as in part 5, and the **explained variance**.

# %%
if MAIN:
    setup = synthetic_setup_from_toy_model(data, inst=0)
    saelens_kwargs = dict(d_sae=d_sae, k=1, steps=steps(ABSORPTION_STEPS), batch_size=512, lr=3e-3, progress=False)
    table = synthetic_eval_table(
        {
            "ours: BatchTopK": to_saelens(batchtopk, inst=0, device=device),
            "SAELens: BatchTopK": train_saelens_sae("batchtopk", setup, **saelens_kwargs),
            "ours: Matryoshka": to_saelens(matryoshka, inst=0, device=device),
            "SAELens: Matryoshka": train_saelens_sae(
                "matryoshka_batchtopk", setup, matryoshka_widths=list(matryoshka.cfg.prefix_sizes), **saelens_kwargs
            ),
        },
        setup,
    )
    print(table.round(3).to_string())

# %% [markdown]
# Don't expect identical rows: the two implementations start from different random weights, SAELens's
# trainers don't resample dead latents (ours did), and each library makes its own small choices (how the
# decoder norm enters, how the threshold is averaged). What should agree is the picture: BatchTopK and
# Matryoshka reach an L0 near the true 0.95 with little shrinkage, and the MCC tells you how many of the
# 8 true features each one found.
#
# <details><summary>Question: how would a dead latent show up in this table?</summary>
#
# In the dead-latent column, and in the MCC: with 8 latents for 8 features, a dead latent is a feature
# nobody found, so the matched cosines lose about 1/8. Uniqueness drops too when the missing feature's
# share is split between two live latents pointing at the same place.
# </details>
#
# ## Summary
#
# * When features form a hierarchy, sparsity rewards **absorption**: a child's latent takes over the
#   parent's direction, and the parent's latent goes silent exactly when a child is present. The
#   reconstruction stays good, so only a ground-truth or probe-based metric reveals it.
# * **BatchTopK** shares the sparsity budget across the batch; at inference it becomes a JumpReLU with
#   the learned threshold.
# * **Matryoshka SAEs** make small prefixes of the latents reconstruct on their own; the early latents
#   become general features that cannot be absorbed, and absorption largely disappears.
# * Our toy SAEs move to SAELens's on-disk format and back with the same outputs (up to float32 rounding),
#   and SAELens's synthetic evaluations score them next to its own implementations.
