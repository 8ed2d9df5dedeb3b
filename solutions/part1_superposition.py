# %% [markdown]
# # Part 1: Superposition in a non-privileged basis
#
# A network often needs to track more properties of its input than it has neurons or dimensions.
# It can still do so if it stores each property (a *feature*) as a direction, and lets those
# directions overlap. That is **superposition**: more features than dimensions, paid for with a
# little interference whenever two overlapping features are active together.
#
# Interference only hurts when features co-occur. If each feature is rarely active (it is
# *sparse*), two overlapping features are almost never on at once, so the model gets to represent
# many features at a small cost. This notebook trains the smallest model where you can watch that
# trade-off happen and then look at the geometry it produces.
#
# **What you will do**
# 1. Build the toy model: squeeze `n_features` into `d_hidden` dimensions and back out again.
# 2. Generate sparse synthetic features and write an importance-weighted loss.
# 3. Train many small models at once (one per sparsity level) and see superposition appear.
# 4. Look at 100 features in 20 dimensions: which features get a dimension of their own?
# 5. Make features correlated or anticorrelated and see the geometry change.
#
# Each exercise has a difficulty and importance rating (out of 5), a check in the cell under it,
# and hints you can unfold. The solution notebook next to this one has every answer.

# %% [markdown]
# ## Imports

# %%
from dataclasses import dataclass

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from plotly_utils import imshow, line
from utils.device import get_device, notebook_device
from utils.part1_superposition import (
    feature_norms_and_superposition,
    geometry_2d,
    pair_geometry,
    plot_feature_norms_and_superposition,
    plot_features_in_2d,
    plot_pair_geometry,
)
from utils.runtime import steps
from utils.schedules import constant_lr, cosine_decay_lr, linear_lr
from utils.training import optimize

MAIN = __name__ == "__main__"

if MAIN:
    import tests.part1_superposition

    device = notebook_device()
    print(f"Running on {device}")

# %% [markdown]
# ## The toy model
#
# Each input is a vector $x \in \mathbb{R}^{n}$ of feature values. The model maps it down to a
# hidden vector $h = Wx$ with $W \in \mathbb{R}^{d \times n}$, $d < n$, and reconstructs it with the
# *same* matrix transposed, a bias and a ReLU:
#
# $$x' = \mathrm{ReLU}(W^\top W x + b).$$
#
# Column $W_i$ is the direction that feature $i$ is written to in the hidden space. If two columns
# overlap, reading out one feature picks up some of the other: that is interference. The ReLU matters:
# it lets the model clip small negative interference to zero, which a purely linear model cannot do,
# and that is what makes superposition worth it.
#
# The hidden space here is **non-privileged**: nothing in the model treats its coordinate axes
# specially (you could rotate $W$ and get the same function), so only the directions and angles of
# the $W_i$ matter. Part 2 adds a ReLU to the hidden layer, which changes that.
#
# We train many copies of this model at once, each an *instance* with its own feature
# probability or importance. All tensors carry an `inst` axis, and instances never interact: the
# loss is a sum over instances, so each instance gets its own gradients.
#
# **Sparsity** is the probability $1 - p$ that a feature is zero. Each feature is present with
# probability $p$ (the `feature_probability`), and when present its value is uniform on $[0, 1]$.
#
# **Importance** $I_i$ weights feature $i$'s squared error in the loss. Real models care more about
# some features than others; here, a decaying importance lets us see which features the model
# chooses to keep when it cannot keep them all.


# %%
@dataclass
class ToyModelConfig:
    """Sizes of a toy model. Features are laid out as: correlated pairs, anticorrelated pairs, the rest.

    The pairs matter only to `CorrelatedToyModel` (later in this section); `ToyModel` draws every feature independently.
    """

    n_inst: int
    n_features: int = 5
    d_hidden: int = 2
    n_correlated_pairs: int = 0
    n_anticorrelated_pairs: int = 0

    def __post_init__(self) -> None:
        for name in ("n_inst", "n_features", "d_hidden"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if self.n_correlated_pairs < 0 or self.n_anticorrelated_pairs < 0:
            raise ValueError("the numbers of correlated and anticorrelated pairs can't be negative")
        if self.n_uncorrelated < 0:
            raise ValueError(
                f"{self.n_correlated_pairs} correlated + {self.n_anticorrelated_pairs} anticorrelated pairs "
                f"need {2 * (self.n_correlated_pairs + self.n_anticorrelated_pairs)} features, "
                f"but n_features={self.n_features}"
            )

    @property
    def n_uncorrelated(self) -> int:
        return self.n_features - 2 * (self.n_correlated_pairs + self.n_anticorrelated_pairs)


def broadcast_to_inst_feats(
    value: float | Tensor, cfg: ToyModelConfig, name: str, device: torch.device
) -> Float[Tensor, "inst feats"]:
    """A float, a [feats] or [inst 1] or [inst feats] tensor, as a float32 [inst feats] tensor."""
    tensor = torch.as_tensor(value, dtype=torch.float32, device=device)
    try:
        return tensor.broadcast_to((cfg.n_inst, cfg.n_features)).clone()
    except RuntimeError:
        raise ValueError(
            f"{name} has shape {tuple(tensor.shape)}, which can't broadcast to "
            f"(n_inst={cfg.n_inst}, n_features={cfg.n_features})"
        ) from None


class ToyModel(nn.Module):
    W: Float[Tensor, "inst d_hidden feats"]
    b_final: Float[Tensor, "inst feats"]
    feature_probability: Float[Tensor, "inst feats"]
    importance: Float[Tensor, "inst feats"]

    def __init__(
        self,
        cfg: ToyModelConfig,
        feature_probability: float | Tensor = 1.0,
        importance: float | Tensor = 1.0,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        device = torch.device(device) if device is not None else get_device()
        self.cfg = cfg
        probability = broadcast_to_inst_feats(feature_probability, cfg, "feature_probability", device)
        if not ((probability >= 0) & (probability <= 1)).all():
            raise ValueError("feature_probability must lie in [0, 1]")
        self.register_buffer("feature_probability", probability)
        self.register_buffer("importance", broadcast_to_inst_feats(importance, cfg, "importance", device))
        # Xavier-normal scale per instance: std = sqrt(2 / (fan_in + fan_out)).
        std = (2 / (cfg.d_hidden + cfg.n_features)) ** 0.5
        self.W = nn.Parameter(torch.randn(cfg.n_inst, cfg.d_hidden, cfg.n_features, device=device) * std)
        self.b_final = nn.Parameter(torch.zeros(cfg.n_inst, cfg.n_features, device=device))

    def forward(self, features: Float[Tensor, "... inst feats"]) -> Float[Tensor, "... inst feats"]:
        """ReLU(Wᵀ W x + b_final), for each instance separately.

        features: [... inst feats], any number of leading (batch) axes.
        Returns:  [... inst feats], the reconstruction of the features.
        """
        ### BEGIN SOLUTION
        hidden = einops.einsum(features, self.W, "... inst feats, inst d_hidden feats -> ... inst d_hidden")
        out = einops.einsum(hidden, self.W, "... inst d_hidden, inst d_hidden feats -> ... inst feats")
        return F.relu(out + self.b_final)
        ### END SOLUTION

    def generate_batch(self, batch_size: int) -> Float[Tensor, "batch inst feats"]:
        """A batch of features: each is present independently with its own probability, U[0, 1] when present.

        Feature i of instance k is present with probability self.feature_probability[k, i];
        a present feature's value is uniform on [0, 1], an absent one's is exactly 0.
        Returns: [batch_size, n_inst, n_features] on the model's device.
        """
        ### BEGIN SOLUTION
        shape = (batch_size, self.cfg.n_inst, self.cfg.n_features)
        present = torch.rand(shape, device=self.W.device) < self.feature_probability
        values = torch.rand(shape, device=self.W.device)
        return torch.where(present, values, 0.0)
        ### END SOLUTION

    def calculate_loss(
        self, out: Float[Tensor, "batch inst feats"], batch: Float[Tensor, "batch inst feats"]
    ) -> Float[Tensor, ""]:
        """Importance-weighted squared error: mean over batch and features, summed over instances.

        loss = Σ_inst  mean_{batch, feats}  importance[inst, feat] · (batch - out)²
        Returns a scalar (0-dim) tensor.
        """
        ### BEGIN SOLUTION
        weighted_error = self.importance * (batch - out) ** 2
        return einops.reduce(weighted_error, "batch inst feats -> inst", "mean").sum()
        ### END SOLUTION

    def optimize(
        self,
        batch_size: int = 1024,
        steps: int = 5_000,
        log_freq: int = 100,
        lr: float = 1e-3,
        lr_scale=constant_lr,
    ) -> list[float]:
        """Train every instance at once with Adam (given). `lr_scale(step, steps)` multiplies lr."""
        return optimize(self, batch_size=batch_size, steps=steps, log_freq=log_freq, lr=lr, lr_scale=lr_scale)


# %% [markdown]
# ### Exercise 1: `forward`
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 10 minutes
#
# Fill in `ToyModel.forward` above: project down with $W$, back up with $W^\top$, add `b_final`,
# apply a ReLU. Every instance uses its own slice of `W` and `b_final`. Accept any number of leading
# batch axes (`...`).
#
# <details><summary>Hint: which tool?</summary>
#
# `einops.einsum` lets you name the axes, including `...` for leading batch axes:
# `einops.einsum(features, self.W, "... inst feats, inst d_hidden feats -> ... inst d_hidden")`.
# </details>
#
# <details><summary>Hint: the second multiplication</summary>
#
# Going back up contracts over `d_hidden` with the same `W`; no transpose call is needed if you
# name the axes. Add the bias before the ReLU, not after.
# </details>

# %%
if MAIN:
    tests.part1_superposition.test_forward(ToyModel)

# %% [markdown]
# ### Exercise 2: `generate_batch`
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 10 minutes
#
# Fill in `ToyModel.generate_batch`. Each entry is present with its own probability
# `feature_probability[inst, feat]` (draw presence independently for every batch element, instance
# and feature) and takes a value from $U[0, 1]$ when present, 0 otherwise.
#
# The check tests the *distribution* of your batch (presence rate of every feature in every
# instance, the mean and spread of present values, independence between features), so any correct
# way of drawing passes.
#
# <details><summary>Hint: two random tensors</summary>
#
# Draw one uniform tensor to decide presence (`rand < p` is true with probability `p`), and a
# *separate* uniform tensor for the values. Reusing the same random numbers for both makes the
# values depend on presence.
# </details>

# %%
if MAIN:
    tests.part1_superposition.test_generate_batch(ToyModel)

# %% [markdown]
# ### Exercise 3: `calculate_loss`
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 5 minutes
#
# $$L = \sum_{k} \frac{1}{B\,n} \sum_{b=1}^{B} \sum_{i=1}^{n} I_{k,i}\,\big(x_{b,k,i} - x'_{b,k,i}\big)^2$$
#
# where $k$ runs over instances, $b$ over the batch and $i$ over features. Summing over instances
# (not averaging) keeps each instance's gradient independent of how many instances there are.
#
# <details><summary>Hint</summary>
#
# `self.importance` has shape `[inst feats]` and broadcasts against `[batch inst feats]`. Reduce
# batch and features with a mean, then sum what is left.
# </details>

# %%
if MAIN:
    tests.part1_superposition.test_calculate_loss(ToyModel)

# %% [markdown]
# ## Training: sparsity creates superposition
#
# Five features, two hidden dimensions, importance $0.9^i$ (feature 0 matters most), and ten
# feature probabilities from 1 (dense) down to 0.02 (very sparse). Gradient descent occasionally
# gets stuck in a worse arrangement, so we train **two instances per probability** (different random
# initialisations, same loop) and keep the one with the lower loss: a cheap benefit of batching
# instances. Training takes a few seconds.

# %%
if MAIN:
    torch.manual_seed(0)
    n_probs = 10
    feature_probability = 50 ** -torch.linspace(0, 1, n_probs)  # 1 -> 0.02, log-spaced
    importance = 0.9 ** torch.arange(5)
    cfg = ToyModelConfig(n_inst=2 * n_probs, n_features=5, d_hidden=2)
    model = ToyModel(cfg, feature_probability.repeat(2)[:, None], importance[None, :], device=device)
    losses = model.optimize(steps=steps(3_000), lr=1e-2, lr_scale=cosine_decay_lr)
    line(losses, title="Training loss (all instances summed)", labels={"x": "step / 100", "y": "loss"})

    # Loss of each instance on a large fresh batch; keep the better of the two seeds per probability.
    with torch.inference_mode():
        batch = model.generate_batch(20_000)
        per_inst = (model.importance * (batch - model(batch)) ** 2).mean(dim=(0, 2)).view(2, n_probs)
    best = per_inst.argmin(0) * n_probs + torch.arange(n_probs, device=per_inst.device)
    W = model.W.detach()[best]  # [n_probs d_hidden feats], one per probability

# %% [markdown]
# ### Reading the first figure: $W^\top W$
#
# Entry $(i, j)$ of $W^\top W$ is the dot product $W_i \cdot W_j$. The diagonal says how strongly
# each feature is represented (1 means fully); off-diagonal entries are interference. The printout
# under the figure counts, for each probability, the features with $\lVert W_i \rVert^2 \ge 0.5$ and
# the largest interference $|W_i \cdot W_j|$ between two of them.

# %%
if MAIN:
    WtW = einops.einsum(W, W, "inst d f1, inst d f2 -> inst f1 f2")
    imshow(
        WtW,
        facet_col=0,
        facet_col_wrap=5,
        facet_labels=[f"1 - S = {p:.3f}" for p in feature_probability],
        title="WᵀW per instance (diagonal: representation, off-diagonal: interference)",
        labels={"x": "feature j", "y": "feature i", "color": "Wᵢ·Wⱼ"},
        height=440,
    )
    for p, M in zip(feature_probability, WtW.cpu(), strict=True):
        kept = M.diagonal() >= 0.5
        off = (M - torch.diag(M.diagonal()))[kept][:, kept].abs()
        print(
            f"1 - S = {p:.3f}: features {kept.nonzero().flatten().tolist()} represented, "
            f"largest interference between them {off.max():.2f}"
        )

# %% [markdown]
# The dense model keeps two features, the most important ones, with no interference between them
# (orthogonal directions), and drops the rest. As features get sparser, more of the diagonal lights up
# and the off-diagonal entries grow: the represented features now share dimensions.

# %% [markdown]
# ### Features as directions in 2D
#
# Since the hidden space has two dimensions, we can draw each column $W_i$ as an arrow. Colour
# shows importance (darker = more important), and every panel has the same axes. The printout counts
# what to look for in each panel: the features kept (norm at least 0.5), the orthogonal and antipodal
# pairs among them ($W_j \approx -W_i$), and how evenly the kept arrows are spread around the circle.

# %%
if MAIN:
    plot_features_in_2d(
        W,
        colors=importance,
        titles=[f"1 - S = {p:.3f}" for p in feature_probability],
        title="Each feature's direction Wᵢ in the hidden space",
    )
    for p, g in zip(feature_probability, geometry_2d(W), strict=True):
        spacing = (
            f", neighbours {360 / len(g['kept']):.0f}° ± {g['spacing_error']:.0f}° apart" if len(g["kept"]) > 2 else ""
        )
        print(
            f"1 - S = {p:.3f}: kept {g['kept']}: {g['orthogonal_pairs']} orthogonal and "
            f"{g['antipodal_pairs']} antipodal pair(s){spacing}"
        )

# %% [markdown]
# Read the sequence from left to right: two orthogonal arrows (dense), then four features as two
# antipodal pairs at right angles, and finally all five features spread evenly around the circle,
# 72° apart: a pentagon.

# %% [markdown]
# <details><summary>Question: why does the dense model keep exactly two features?</summary>
#
# When every feature is always on, any overlap between two directions produces interference on
# every example, and the ReLU cannot remove positive interference. With two dimensions the model can
# only have two interference-free directions, so it spends them on the two most important features
# and gives up on the rest (their best prediction is then the bias: their mean).
# </details>
#
# <details><summary>Question: why are pairs of features antipodal at intermediate sparsity?</summary>
#
# Two antipodal features ($W_j = -W_i$) interfere *negatively*: when feature $i$ is on, the
# readout for $j$ is negative, and the ReLU (with a slightly negative bias) clips it to zero. The
# only cost is when both are on at once, which sparsity makes rare. An antipodal pair uses one
# dimension for two features.
# </details>

# %% [markdown]
# ### Hidden states of a batch
#
# Another view of the same geometry: the hidden vectors $h = Wx$ of a batch. With sparse inputs most
# examples have at most one feature on, so the points lie along the feature directions, each
# segment as long as the feature's value range. Examples with two features on land between the
# arrows; those are where interference happens.

# %%
if MAIN:
    with torch.inference_mode():
        batch = model.generate_batch(200)[:, best]  # the kept instances' own feature probabilities
        hidden = einops.einsum(batch, W, "batch inst feats, inst d feats -> batch inst d")
    plot_features_in_2d(
        W,
        colors=importance,
        titles=[f"1 - S = {p:.3f}" for p in feature_probability],
        hidden=hidden,
        title="Hidden vectors h = Wx of 200 examples (grey) over the feature directions",
    )

# %% [markdown]
# ## More features: 100 features in 20 dimensions
#
# In two dimensions we can see everything. With more dimensions we need a summary per feature:
#
# * its **norm** $\lVert W_i \rVert$: close to 1 if the feature is represented, 0 if dropped;
# * its **superposition** $\sum_{j \ne i} (\hat W_i \cdot W_j)^2$: how much other features leak onto
#   its direction. 0 means it has a dimension to itself.
#
# The bar chart shows both: bar length is the norm, colour is superposition (dark = alone, bright =
# shared, on one scale for all panels). Features are sorted by importance, which decays from 1 to
# about 0.01.

# %%
if MAIN:
    cfg_nd = ToyModelConfig(n_inst=5, n_features=100, d_hidden=20)
    importance_nd = 100 ** -torch.linspace(0, 1, cfg_nd.n_features)
    feature_probability_nd = torch.tensor([1.0, 0.3, 0.1, 0.03, 0.01])
    model_nd = ToyModel(cfg_nd, feature_probability_nd[:, None], importance_nd[None, :], device=device)
    model_nd.optimize(batch_size=256, steps=steps(3_000), lr=5e-3, lr_scale=cosine_decay_lr)
    plot_feature_norms_and_superposition(model_nd.W, titles=[f"1 - S = {p:.2f}" for p in feature_probability_nd])
    norms, superposition = feature_norms_and_superposition(model_nd.W)
    for p, n, sup in zip(feature_probability_nd, norms, superposition, strict=True):
        kept = n >= 0.5
        alone = kept & (sup < 0.1)
        print(
            f"1 - S = {p:.2f}: {kept.sum():3d} features represented, {alone.sum():2d} with a dimension to themselves "
            f"({alone[:20].sum()} of them among the 20 most important)"
        )

# %% [markdown]
# <details><summary>Question: what changes from left to right?</summary>
#
# Read it off the printout. Dense: the 20 dimensions go to about 20 features, each alone in its
# dimension, and those are the most important ones; the rest are dropped. As sparsity grows, more
# features are represented than there are dimensions, and they share: fewer and fewer keep a
# dimension to themselves. At the sparsest setting most of the 100 features are represented, and
# none has a dimension of its own. Features that do keep one are the most important: a dimension
# to itself is a luxury the model spends on the features whose errors cost most.
# </details>

# %% [markdown]
# ## Correlated and anticorrelated features
#
# So far every feature was independent. Real features are not: "inside a Python string" and
# "inside a comment" rarely co-occur (anticorrelated); "opening bracket" and "closing bracket" tend
# to come together (correlated). Superposition is cheap for features that are never on together,
# and expensive for features that usually are, so we should expect the geometry to follow the
# correlations.
#
# Features are laid out as `[correlated pairs | anticorrelated pairs | uncorrelated]`; pair $j$ is
# features $2j$ and $2j + 1$ of its block. Each pair uses the probability of its first feature.
#
# * **Correlated pair**: both present or both absent (one coin flip with probability $p$), values
#   drawn independently.
# * **Anticorrelated pair**: never both present, and each still present with probability $p$
#   (so $p \le 1/2$). One way: a single draw decides "pair active" with probability $2p$, another
#   decides which of the two.
# * **Uncorrelated**: exactly what `ToyModel.generate_batch` did.
#
# These generators live in a subclass, `CorrelatedToyModel`: it is a `ToyModel` in every other way
# (same weights, `forward` and loss), with a `generate_batch` that reads the pairs from the config.
# `ToyModel` itself keeps the `generate_batch` you wrote in exercise 2, and later sections import it.
# The next two exercises fill in the four methods of the class in the cell below their instructions.

# %% [markdown]
# ### Exercise 4: the three generators
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵⚪⚪⚪ · about 20 minutes
#
# Fill in `generate_correlated_features`, `generate_anticorrelated_features` and
# `generate_uncorrelated_features` in `CorrelatedToyModel` below. Each takes its block's
# probabilities `p` as an argument and returns `[batch_size, n_inst, 2 * n_pairs]` (or the number of
# uncorrelated features), with the features of pair $j$ at positions $2j, 2j+1$.
#
# <details><summary>Hint: correlated pairs</summary>
#
# Draw presence with shape `[batch, inst, pairs]`, then repeat it so both features of the pair
# share it: `einops.repeat(present, "batch inst pair -> batch inst (pair two)", two=2)`. Draw the
# values with the full shape.
# </details>
#
# <details><summary>Hint: anticorrelated pairs</summary>
#
# Draw `active = rand < 2p` and `first = rand < 0.5` independently. Feature $2j$ is present when
# `active & first`, feature $2j+1$ when `active & ~first`. Each is then present with probability
# $2p \cdot 1/2 = p$ and never together. A common bug is to make the second feature present when
# "first is absent and another coin says yes": its probability then drops to $p(1 - p)$.
# </details>
#
# ### Exercise 5: the combined batch
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵⚪⚪⚪ · about 10 minutes
#
# Fill in `CorrelatedToyModel.generate_batch`: call the three generators with the right
# probabilities and concatenate their outputs in the order `[correlated | anticorrelated |
# uncorrelated]`. With no pairs it must behave exactly like `ToyModel.generate_batch`.
#
# <details><summary>Hint: which probabilities?</summary>
#
# Pair $j$ of the correlated block uses `feature_probability[:, 2j]`: slice with a step of 2,
# `p[:, 0 : 2 * n_corr : 2]`. The anticorrelated block starts at feature `2 * n_corr`; the
# uncorrelated block is everything after `2 * (n_corr + n_anti)`.
# </details>


# %%
class CorrelatedToyModel(ToyModel):
    """A ToyModel whose batches hold correlated pairs, anticorrelated pairs and independent features.

    The layout comes from the config: [cfg.n_correlated_pairs pairs | cfg.n_anticorrelated_pairs pairs | the rest].
    """

    def generate_correlated_features(
        self, batch_size: int, p: Float[Tensor, "inst pairs"]
    ) -> Float[Tensor, "batch inst 2*pairs"]:
        """Correlated pairs: both features of pair j present together with probability p[inst, j], else both 0.

        Values of present features are independent draws from U[0, 1].
        Returns [batch_size, n_inst, 2 * pairs]; pair j occupies features 2j and 2j + 1.
        """
        ### BEGIN SOLUTION
        n_inst, n_pairs = p.shape
        present = torch.rand(batch_size, n_inst, n_pairs, device=p.device) < p
        present = einops.repeat(present, "batch inst pair -> batch inst (pair two)", two=2)
        values = torch.rand(batch_size, n_inst, 2 * n_pairs, device=p.device)
        return torch.where(present, values, 0.0)
        ### END SOLUTION

    def generate_anticorrelated_features(
        self, batch_size: int, p: Float[Tensor, "inst pairs"]
    ) -> Float[Tensor, "batch inst 2*pairs"]:
        """Anticorrelated pairs: never both present; each present with probability p[inst, j] (p <= 1/2).

        Values of present features are independent draws from U[0, 1].
        Returns [batch_size, n_inst, 2 * pairs]; pair j occupies features 2j and 2j + 1.
        """
        ### BEGIN SOLUTION
        n_inst, n_pairs = p.shape
        active = torch.rand(batch_size, n_inst, n_pairs, device=p.device) < 2 * p
        first = torch.rand(batch_size, n_inst, n_pairs, device=p.device) < 0.5
        present = torch.stack([active & first, active & ~first], dim=-1)
        present = einops.rearrange(present, "batch inst pair two -> batch inst (pair two)")
        values = torch.rand(batch_size, n_inst, 2 * n_pairs, device=p.device)
        return torch.where(present, values, 0.0)
        ### END SOLUTION

    def generate_uncorrelated_features(
        self, batch_size: int, p: Float[Tensor, "inst feats"]
    ) -> Float[Tensor, "batch inst feats"]:
        """Independent features: feature i present with probability p[inst, i], U[0, 1] when present."""
        ### BEGIN SOLUTION
        shape = (batch_size, *p.shape)
        present = torch.rand(shape, device=p.device) < p
        return torch.where(present, torch.rand(shape, device=p.device), 0.0)
        ### END SOLUTION

    def generate_batch(self, batch_size: int) -> Float[Tensor, "batch inst feats"]:
        """A batch laid out as [correlated pairs | anticorrelated pairs | uncorrelated features].

        Each pair uses the probability of its first feature. Returns [batch_size, n_inst, n_features].
        """
        ### BEGIN SOLUTION
        n_corr, n_anti = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
        p = self.feature_probability
        start_anti, start_unc = 2 * n_corr, 2 * (n_corr + n_anti)
        blocks = [
            self.generate_correlated_features(batch_size, p[:, 0:start_anti:2]),
            self.generate_anticorrelated_features(batch_size, p[:, start_anti:start_unc:2]),
            self.generate_uncorrelated_features(batch_size, p[:, start_unc:]),
        ]
        return torch.cat(blocks, dim=-1)
        ### END SOLUTION


# %% [markdown]
# Exercise 4's checks, one generator each:

# %%
if MAIN:
    tests.part1_superposition.test_generate_correlated_features(CorrelatedToyModel)

# %%
if MAIN:
    tests.part1_superposition.test_generate_anticorrelated_features(CorrelatedToyModel)

# %%
if MAIN:
    tests.part1_superposition.test_generate_uncorrelated_features(CorrelatedToyModel)

# %% [markdown]
# Exercise 5's check (it uses the reference generators, so it tests only how you combine them):

# %%
if MAIN:
    tests.part1_superposition.test_generate_combined_batch(CorrelatedToyModel)

# %% [markdown]
# Before training, look at a batch. Rows are examples, columns are features: correlated columns
# switch on together, anticorrelated columns never share a row.

# %%
if MAIN:
    cfg_corr = ToyModelConfig(n_inst=1, n_features=6, d_hidden=2, n_correlated_pairs=1, n_anticorrelated_pairs=1)
    demo = CorrelatedToyModel(cfg_corr, feature_probability=0.3, device=device)
    imshow(
        demo.generate_batch(40)[:, 0].T,
        title="40 examples (columns): features 0-1 correlated, 2-3 anticorrelated, 4-5 independent",
        labels={"x": "example", "y": "feature"},
        color_continuous_scale="Blues",
        height=300,
    )

# %% [markdown]
# ### What geometry do correlations produce?
#
# Four features in two dimensions, arranged as two correlated pairs ($p = 0.05$) or two
# anticorrelated pairs ($p = 0.4$: dense enough that putting *unrelated* features opposite each other
# would cost something). A single trained model can land in a local minimum, so we train 16 instances
# of each and count how the pairs are placed in all of them. As a control, we train models whose four
# features are *independent*, at the same two probabilities, and count their "pairs" (features 0-1
# and 2-3) the same way: what the correlations change is the difference from the control.

# %%
if MAIN:
    n_seeds = 16
    cfg_c = ToyModelConfig(n_inst=n_seeds, n_features=4, d_hidden=2, n_correlated_pairs=2)
    model_c = CorrelatedToyModel(cfg_c, feature_probability=0.05, device=device)
    model_c.optimize(batch_size=512, steps=steps(2_000), lr=1e-2, lr_scale=cosine_decay_lr)
    cfg_a = ToyModelConfig(n_inst=n_seeds, n_features=4, d_hidden=2, n_anticorrelated_pairs=2)
    model_a = CorrelatedToyModel(cfg_a, feature_probability=0.4, device=device)
    model_a.optimize(batch_size=512, steps=steps(2_000), lr=1e-2, lr_scale=cosine_decay_lr)
    # The controls: independent features at the same probabilities, both in one batched model.
    p_control = torch.tensor([0.05] * n_seeds + [0.4] * n_seeds)[:, None]
    model_u = ToyModel(ToyModelConfig(n_inst=2 * n_seeds, n_features=4, d_hidden=2), p_control, device=device)
    model_u.optimize(batch_size=512, steps=steps(2_000), lr=1e-2, lr_scale=cosine_decay_lr)
    geometry = {
        "correlated, p = 0.05": pair_geometry(model_c.W),
        "independent, p = 0.05": pair_geometry(model_u.W[:n_seeds]),
        "anticorrelated, p = 0.4": pair_geometry(model_a.W),
        "independent, p = 0.4": pair_geometry(model_u.W[n_seeds:]),
    }
    for name, counts in geometry.items():
        print(f"{name:>24}: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + f" (of {2 * n_seeds} pairs)")
    plot_pair_geometry(geometry, title=f"How the pairs (features 0-1, 2-3) are placed, over {n_seeds} instances each")

# %% [markdown]
# Against the control at the same sparsity:
#
# * Correlated pairs never go antipodal, where independent features sometimes do: when one feature
#   of a correlated pair is on, the other almost always is too, so two opposite directions would
#   cancel on nearly every active example. The pair takes a **local orthogonal basis**.
# * Anticorrelated pairs go **antipodal** far more often than independent features at the same
#   probability: they are never on together, so the negative interference of opposite directions
#   never costs anything, and one dimension holds both.
#
# Here are the first three instances of each (colour marks the pair):

# %%
if MAIN:
    plot_features_in_2d(
        torch.cat([model_c.W[:3], model_a.W[:3]]),
        colors=["#1f77b4", "#1f77b4", "#d62728", "#d62728"],
        legend=["pair 0", "pair 0", "pair 1", "pair 1"],
        titles=[f"correlated #{i}" for i in range(3)] + [f"anticorrelated #{i}" for i in range(3)],
        title="Correlated pairs (top) stay orthogonal; anticorrelated pairs (bottom) go antipodal",
        max_cols=3,
    )

# %% [markdown]
# <details><summary>Question: what does this suggest about real models?</summary>
#
# Most features of real inputs are anticorrelated, simply because one input contains only a few of
# the many possible features. Anticorrelation makes superposition cheap, so we should expect a lot of
# it. Features that tend to fire together (a "local" cluster) would rather sit in orthogonal
# subspaces, so superposition may be organised into nearly-orthogonal groups of correlated features.
# </details>
#
# ## Summary
#
# * A model can represent more features than dimensions by giving them overlapping directions: five
#   features in two dimensions, most of 100 features in 20.
# * Sparsity is what makes this pay: interference only costs when features co-occur, and the sparser
#   the features, the more of them are represented.
# * Importance decides which features are kept when not all can be, and which keep a dimension of
#   their own.
# * The solutions have geometry: orthogonal directions when dense, antipodal pairs in between, a
#   pentagon when sparse. Correlations bend it: against independent features at the same sparsity,
#   correlated pairs avoid antipodal placement and anticorrelated pairs seek it.
#
# Part 2 adds a ReLU to the hidden layer, which privileges the neuron basis.
