# %% [markdown]
# # Part 3: Feature geometry
#
# In part 1 we could draw every feature as an arrow because the hidden space had two dimensions.
# With more dimensions we need numbers that summarise the geometry. This section uses two:
#
# * **dimensions per feature** for a whole model: how many hidden dimensions it spends per
#   represented feature;
# * **feature dimensionality** for each feature: what fraction of a dimension that feature gets.
#
# Plotting them against sparsity reveals something surprising: the model does not squeeze in
# features smoothly. It jumps between a few configurations (antipodal pairs, triangles, pentagons,
# tetrahedra) and *sticks* to each for a range of sparsities, so the dimensionalities cluster at
# simple fractions like 1/2, 2/3 and 2/5.
#
# **What you will do**
# 1. Compute dimensions per feature and feature dimensionality.
# 2. Train a sweep of models over sparsity in one batched run.
# 3. Find the sticky plateau at 1/2 and the fractions the features settle on.
#
# This notebook imports part 1's reference `ToyModel`; you don't need to have finished part 1.

# %% [markdown]
# ## Imports

# %%
import einops
import torch
from jaxtyping import Float
from torch import Tensor

from plotly_utils import imshow, line
from solutions.part1_superposition import ToyModel, ToyModelConfig
from utils import part3_feature_geometry as geometry
from utils.device import notebook_device
from utils.runtime import steps

MAIN = __name__ == "__main__"

if MAIN:
    import tests.part3_feature_geometry

    device = notebook_device()
    print(f"Running on {device}")

# %% [markdown]
# ## Dimensions per feature
#
# A represented feature has $\lVert W_i\rVert \approx 1$ and a dropped one has $W_i \approx 0$,
# so $\lVert W\rVert_F^2 = \sum_i \lVert W_i\rVert^2$ roughly counts the features a model
# represents. Dividing the number of hidden dimensions by it gives
#
# $$D^* = \frac{d_\text{hidden}}{\lVert W\rVert_F^2},$$
#
# the number of dimensions per represented feature. $D^* = 1$: one feature per dimension, no
# superposition. $D^* = 1/2$: two features per dimension, for example every dimension holding an
# antipodal pair.


# %%
def dimensions_per_feature(W: Float[Tensor, "inst d_hidden feats"]) -> Float[Tensor, " inst"]:
    """d_hidden / ‖W‖²_F for each instance (‖W‖²_F: the sum of the squares of all of W[inst])."""
    if W.ndim != 3:
        raise ValueError(f"W should have shape [inst, d_hidden, feats], got {tuple(W.shape)}")
    ### BEGIN SOLUTION
    return W.shape[1] / W.pow(2).sum(dim=(1, 2))
    ### END SOLUTION


# %% [markdown]
# ### Exercise 1: `dimensions_per_feature`
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵⚪⚪⚪ · about 5 minutes
#
# One line. `W` has shape `[inst, d_hidden, feats]`; return one number per instance.
#
# <details><summary>Hint</summary>
#
# Square every entry, sum over the last two axes, and divide `W.shape[1]` by the result.
# </details>

# %%
if MAIN:
    tests.part3_feature_geometry.test_dimensions_per_feature(dimensions_per_feature)

# %% [markdown]
# ## Feature dimensionality
#
# $D^*$ is an average. To see how the dimensions are shared out, give each feature its own number:
#
# $$D_i = \frac{\lVert W_i\rVert^2}{\sum_{j} (\hat W_i \cdot W_j)^2}, \qquad \hat W_i = \frac{W_i}{\lVert W_i\rVert},$$
#
# where $j$ runs over **all** features, including $i$ itself. The numerator is how strongly
# feature $i$ is represented. The denominator adds up how much every feature (itself included)
# projects onto $i$'s direction. So $D_i$ is the share of "its own direction" that feature $i$ has:
#
# * alone in an orthogonal direction: the sum is just $\lVert W_i\rVert^2$, so $D_i = 1$;
# * one of an antipodal pair of equal norms: the partner adds as much again, $D_i = 1/2$;
# * one of three features at 120° in a plane (a triangle): $D_i = 2/3$;
# * not represented ($W_i = 0$): there is no direction at all. We **define** $D_i = 0$, because a
#   dropped feature gets no share of any dimension. (The formula would give 0/0.)
#
# Summed over the features of a subspace, the $D_i$ add up to its number of dimensions when the
# features tile it evenly, which is why they land on fractions.


# %%
def compute_dimensionality(W: Float[Tensor, "inst d_hidden feats"]) -> Float[Tensor, "inst feats"]:
    """Dimensionality of every feature: ‖W_i‖² / Σ_j (Ŵ_i · W_j)², j over all features including i.

    W: [inst, d_hidden, feats], column W[k, :, i] is feature i's direction in instance k.
    Returns [inst, feats] with the dtype and device of W. A feature with W_i = 0 gets 0 (not NaN).
    """
    if W.ndim != 3:
        raise ValueError(f"W should have shape [inst, d_hidden, feats], got {tuple(W.shape)}")
    ### BEGIN SOLUTION
    # Multiplying the numerator and denominator by ‖W_i‖² gives ‖W_i‖⁴ / Σ_j (W_i · W_j)², which
    # needs no normalisation; it is 0 / 0 only for a zero feature, which we set to 0.
    norms_sq = W.pow(2).sum(dim=1)
    overlaps = einops.einsum(W, W, "inst d feat_i, inst d feat_j -> inst feat_i feat_j")
    denominator = overlaps.pow(2).sum(dim=-1)
    return torch.where(denominator > 0, norms_sq**2 / denominator, torch.zeros_like(norms_sq))
    ### END SOLUTION


# %% [markdown]
# ### Exercise 2: `compute_dimensionality`
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 15 minutes
#
# Implement the formula above for every instance at once. Keep the input's dtype, keep the `inst`
# axis even when there is one instance, and return 0 (not NaN) for a feature whose column is all
# zeros.
#
# <details><summary>Hint: the dot products</summary>
#
# `einops.einsum(W_hat, W, "inst d feat_i, inst d feat_j -> inst feat_i feat_j")` gives every
# $\hat W_i \cdot W_j$ at once. Its square, summed over `feat_j`, is the denominator. The norms are
# taken over the `d_hidden` axis (dim 1), because columns are features.
# </details>
#
# <details><summary>Hint: zero features</summary>
#
# Normalising a zero column divides by zero. Either clamp the norm (`norm.clamp_min(1e-12)`, so the
# zero column stays zero) and then replace the 0/0 with `torch.where(..., 0)`, or use the
# equivalent $\lVert W_i\rVert^4 / \sum_j (W_i \cdot W_j)^2$, which needs no normalisation.
# </details>

# %%
if MAIN:
    tests.part3_feature_geometry.test_compute_dimensionality(compute_dimensionality)

# %% [markdown]
# ## The sparsity sweep
#
# Fifty features of equal importance in ten dimensions, and twenty instances whose feature
# probability $p = 1 - S$ runs from 1 down to 1/10 (log-spaced, so $1/(1-S)$ runs from 1 to 10).
# Equal importance matters: with decaying importance the model would drop the unimportant features
# first, and we want to see how it packs features it values equally.
#
# Two things keep this fast enough for a laptop CPU:
#
# * **Everything in one batched run.** All twenty instances train in the same loop; the cost is
#   one matrix multiply per step, not twenty training runs.
# * **A short, well-tuned schedule.** A high learning rate with a short warm-up gets each instance
#   to its configuration quickly; the cosine decay then lets it settle precisely onto it, which is
#   what makes the fractions sharp. A constant small learning rate needs several times more steps.
#
# We also use a batch generator that draws one random number per entry instead of two: an entry is
# present when $u < p$, and given that, $u / p$ is uniform on $[0, 1]$. Same distribution as part
# 1's `generate_batch`, half the random numbers.


# %%
class GeometryModel(ToyModel):
    """Part 1's ToyModel with a cheaper (same-distribution) batch generator."""

    def generate_batch(self, batch_size: int) -> Float[Tensor, "batch inst feats"]:
        p = self.feature_probability
        if not (p > 0).all():
            raise ValueError("GeometryModel needs feature probabilities > 0")
        u = torch.rand(batch_size, *p.shape, device=p.device)
        return torch.where(u < p, u / p, 0.0)


if MAIN:
    cfg = ToyModelConfig(n_inst=20, n_features=50, d_hidden=10)
    feature_probability = 10 ** -torch.linspace(0, 1, cfg.n_inst)
    torch.manual_seed(0)
    model = GeometryModel(cfg, feature_probability=feature_probability[:, None], device=device)
    losses = model.optimize(batch_size=256, steps=steps(2_000), lr=1e-2, lr_scale=geometry.five_percent_warmup)
    line(losses, title="Training loss (all instances summed)", labels={"x": "step / 100", "y": "loss"}, log_y=True)

# %% [markdown]
# ## Sticky plateaus
#
# The black line is $D^*$ for each instance; each blue dot is one feature's $D_i$; the dotted
# lines are the fractions named above.

# %%
if MAIN:
    with torch.inference_mode():
        W = model.W.detach()
        dims_per_feature = dimensions_per_feature(W)
        dimensionality = compute_dimensionality(W)
    geometry.plot_dimensionality(feature_probability, dims_per_feature, dimensionality)

# %% [markdown]
# Reading the figure from left to right:
#
# * **Dense** ($1/(1-S) = 1$): $D^* = 1$. The model represents ten features' worth. (With equal
#   importance and dense features, any ten-dimensional projection is optimal, so the individual
#   $D_i$ here are not meaningful.)
# * **The plateau at 1/2.** Over a range of sparsities $D^*$ stays at 1/2 and nearly every feature
#   sits at $D_i = 1/2$: the model stores 20 features as 10 antipodal pairs, one per dimension.
#   Sparsity keeps changing, but the configuration doesn't: it is *sticky*.
# * **Around the plateau** the features move through other configurations, each sticky over a
#   smaller range: just before it, some features sit at 2/3 (triangles) next to pairs; just after
#   it, most of an instance's features sit at 2/5 (pentagons), and a little later a group sits at
#   3/8 (square antiprisms: eight features in three dimensions). In between, an instance mixes
#   configurations, and its dots spread over several fractions at once. (Tetrahedra, 3/4, did not
#   show up in our run of this small model; the dotted line shows where they would be.)
# * **Sparser still**: nearly every feature is represented and $D^*$ heads towards $10/50 = 0.2$,
#   the least it can be with fifty features of unit norm in ten dimensions.
#
# The histogram collects every represented feature ($\lVert W_i\rVert^2 > 0.5$) from every instance:

# %%
if MAIN:
    represented = W.pow(2).sum(1) > 0.5
    geometry.plot_dimensionality_histogram(dimensionality, represented)
    share = geometry.share_near_sticky(dimensionality, represented, tol=0.03)
    for k in range(cfg.n_inst):
        print(
            f"1/(1-S) = {1 / feature_probability[k]:5.2f}   D* = {dims_per_feature[k]:.3f}   "
            f"represented: {int(represented[k].sum()):2d}   within 0.03 of a sticky fraction: {share[k]:.0%}"
        )

# %% [markdown]
# ### Looking at one configuration
#
# $W^\top W$ for an instance on the 1/2 plateau, with features reordered so that partners sit next to
# each other: each antipodal pair shows as a $2\times2$ block with $+1$ on the diagonal and $-1$ off
# it, and the blocks are orthogonal to each other.

# %%
if MAIN:
    k = int((dims_per_feature - 0.5).abs().argmin())
    WtW = einops.einsum(W[k], W[k], "d feat_i, d feat_j -> feat_i feat_j")
    partner = WtW.clone().fill_diagonal_(0).argmin(-1)  # the most negative overlap
    order = []
    for i in WtW.diagonal().argsort(descending=True).tolist():
        if i not in order:
            order += [i] if int(partner[i]) in order else [i, int(partner[i])]
    imshow(
        WtW[order][:, order],
        title=f"WᵀW of instance {k} (1/(1-S) = {1 / feature_probability[k]:.2f}), partners adjacent",
        labels={"x": "feature", "y": "feature"},
        zmin=-1,
        zmax=1,
        height=520,
        width=560,
    )

# %% [markdown]
# <details><summary>Question: why would a configuration be sticky?</summary>
#
# Each configuration is a local optimum of the loss whose quality changes smoothly with sparsity,
# and changing to another configuration means moving many features at once. So the model keeps
# one configuration until another becomes clearly better, and then jumps. The antipodal pair is
# especially stable: its two features interfere only negatively, which the ReLU removes, so the
# only cost is the rare example where both are on.
# </details>
#
# <details><summary>Question: why do the dimensionalities land on fractions like 2/5?</summary>
#
# If $k$ features of equal norm are arranged symmetrically in an $m$-dimensional subspace that is
# orthogonal to everything else (a *tegum product* of small polytopes), each one gets the same share
# of those $m$ dimensions, $m/k$: 1/2 for a pair in a line, 2/3 for a triangle in a plane, 2/5 for
# a pentagon in a plane, 3/4 for a tetrahedron in 3D, 3/8 for a square antiprism in 3D.
# </details>
#
# <details><summary>Question: how would a non-uniform importance change the picture?</summary>
#
# More important features would keep dimensions of their own for longer (dimensionality 1) while
# less important ones are packed or dropped, so the dots would spread out by importance rather than
# cluster cleanly; the uniform case is the one where symmetry makes the fractions exact.
# </details>
#
# ## Summary
#
# * Dimensions per feature $d/\lVert W\rVert_F^2$ counts hidden dimensions per represented feature.
# * Feature dimensionality $\lVert W_i\rVert^2 / \sum_j (\hat W_i\cdot W_j)^2$ measures one
#   feature's share of a dimension, 0 for a dropped feature.
# * As sparsity grows, models move between discrete configurations and stick to each for a while:
#   a plateau at 1/2 (antipodal pairs) and features clustered at 1, 3/4, 2/3, 1/2, 2/5, 3/8.
