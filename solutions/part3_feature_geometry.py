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
# simple fractions like 1/2, 2/5 and 3/8.
#
# **What you will do**
# 1. Compute dimensions per feature and feature dimensionality.
# 2. Train a sweep of models over sparsity in one batched run.
# 3. Find the sticky plateau at 1/2, the small polytopes the features form, and the fractions they
#    settle on.
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
from utils.training import optimize

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
# Fifty features of equal importance in ten dimensions, and 22 instances whose feature probability
# $p = 1 - S$ runs from 1 down to 1/10, so $1/(1-S)$ runs from 1 to 10. The instances are spaced more
# densely where the configurations change. Equal importance matters: with decaying importance the
# model would drop the unimportant features first, and we want to see how it packs features it values
# equally.
#
# Two things keep this fast enough for a laptop CPU:
#
# * **Everything in one batched run.** All 22 instances train in the same loop; the cost is one
#   matrix multiply per step, not 22 training runs.
# * **A short, well-tuned schedule.** A high learning rate with a short warm-up gets each instance
#   to its configuration quickly; the cosine decay then lets it settle precisely onto it, which is
#   what makes the fractions sharp.
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


def train_geometry_sweep(
    n_features: int,
    inverse_p: list[float],
    n_steps: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> tuple[GeometryModel, list[float]]:
    """One instance per value of 1/(1-S), `n_features` features of equal importance in 10 dimensions.

    Returns the trained model and its loss every 100 steps.
    """
    cfg = ToyModelConfig(n_inst=len(inverse_p), n_features=n_features, d_hidden=10)
    torch.manual_seed(seed)
    p = 1 / torch.tensor(inverse_p)
    model = GeometryModel(cfg, feature_probability=p[:, None], device=device)
    losses = optimize(
        model, batch_size=256, steps=n_steps, lr=1e-2, lr_scale=geometry.five_percent_warmup, progress=progress
    )
    return model, losses


if MAIN:
    inverse_p = torch.tensor(geometry.SWEEP_INVERSE_P)
    model, losses = train_geometry_sweep(50, geometry.SWEEP_INVERSE_P, steps(4_000), device=device)
    line(losses, title="Training loss (all instances summed)", labels={"x": "step / 100", "y": "loss"}, log_y=True)

# %% [markdown]
# ## Sticky plateaus
#
# The black line is $D^*$ for each instance; each blue dot is one feature's $D_i$; the dotted red
# lines are the fractions named above. Below the figure, one line per instance: its $D^*$, how its
# represented features ($\lVert W_i\rVert^2 > 0.5$) group together, and how many of them sit within
# 0.01 of each fraction (a window narrow enough to tell 2/5 from 3/8, which are 0.025 apart).
#
# The groups come from the geometry, not from $D_i$: two features belong to the same group when their
# directions overlap ($|\cos| > 0.25$), and each group is reported with the number of dimensions it
# spans. An antipodal pair is 2 features in 1 dimension, a triangle 3 in 2, a pentagon 5 in 2, a
# tetrahedron 4 in 3, a square antiprism 8 in 3; a tangle of overlapping features shows up as one
# large group.

# %%
if MAIN:
    with torch.inference_mode():
        W = model.W.detach()
        dims_per_feature = dimensions_per_feature(W)
        dimensionality = compute_dimensionality(W)
    represented = W.pow(2).sum(1) > geometry.REPRESENTED
    geometry.plot_dimensionality(1 / inverse_p, dims_per_feature, dimensionality)
    print(geometry.sticky_summary(inverse_p, W, dims_per_feature, dimensionality, represented))

# %% [markdown]
# Reading the figure and the table from left to right:
#
# * **Dense** ($1/(1-S)$ from 1 to 1.40): $D^*$ falls from 1 to 0.90, but there is no clean
#   configuration. Up to 13 features are partly represented ($\lVert W_i\rVert^2$ between 0.5 and 0.8)
#   and overlap each other; at 1.40 they form one group of 13 features in 10 dimensions. Nine of them
#   have a dimensionality within 0.01 of 2/3 all the same, without any triangle: a dimensionality near
#   a fraction is a hint, and the groups say which shape is really there. (With equal importance and
#   dense features many arrangements are almost equally good, so this region is messy.)
# * **The first polytopes** (1.55 and 1.65): two triangles (3 features at 120° in a plane, 2/3 each) in
#   each instance; at 1.65 they sit next to 5 antipodal pairs.
# * **The plateau at 1/2** (2.0 to 3.2): $D^*$ stays within 0.035 of 1/2 while the sparsity changes by
#   a factor 1.6, and all 20 represented features sit at 1/2: ten antipodal pairs, one per dimension.
#   Sparsity keeps changing, but the configuration doesn't: it is *sticky*. (At 1.75 and 1.85 there
#   are already 9 pairs and one feature alone, but their weights have not reached full length yet.)
#   At 3.6 and 3.9 the model squeezes in an eleventh pair; eleven pairs don't fit in ten dimensions
#   orthogonally, so most features drop below 1/2, to about 0.44.
# * **Pentagons and square antiprisms** (4.2 to 4.8): pairs give way to pentagons (5 features in a
#   plane, 2/5 each) and square antiprisms (8 features in 3 dimensions, 3/8 each); at 4.8, 17 features
#   sit within 0.01 of 3/8.
# * **Sparser still** (5.1 and beyond): one large group spans all ten dimensions, and from 5.5 on no
#   feature sits at a fraction, until at 8.5 and 10 the 40 represented features share the dimensions
#   evenly (each $D_i = 0.25 \pm 0.005$: ten dimensions for forty features). $D^*$ heads towards
#   $10/50 = 0.2$, the least it can be with fifty features of unit norm in ten dimensions.
#
# The histogram collects every represented feature from every instance. The tallest bar is the
# plateau's pairs at 1/2; next to the fractions there are two bars the list above explains without a
# polytope: about 0.44 (eleven pairs in ten dimensions) and 0.25 (forty features in ten).

# %%
if MAIN:
    geometry.plot_dimensionality_histogram(dimensionality, represented)

# %% [markdown]
# ### Looking at one configuration
#
# $W^\top W$ for the instance at $1/(1-S) = 1.65$, restricted to its represented features and ordered
# group by group: each antipodal pair is a $2\times2$ block with $+1$ on the diagonal and $-1$ off it,
# each triangle a $3\times3$ block with $-1/2$ off the diagonal, and the blocks are (nearly) orthogonal
# to each other: a *tegum product* of small polytopes.

# %%
if MAIN:
    k = geometry.SWEEP_INVERSE_P.index(1.65)
    blocks = sorted(geometry.feature_blocks(W[k], represented[k]), key=lambda block: len(block[0]))
    order = [i for group, _ in blocks for i in group]
    WtW = einops.einsum(W[k][:, order], W[k][:, order], "d feat_i, d feat_j -> feat_i feat_j")
    bound = max(1.0, float(WtW.abs().max()))
    imshow(
        WtW,
        title=f"WᵀW at 1/(1-S) = 1.65: {geometry.describe_blocks(blocks)}",
        labels={"x": "represented feature, grouped", "y": "represented feature, grouped"},
        zmin=-bound,
        zmax=bound,
        height=520,
        width=600,
    )

# %% [markdown]
# ## Room to spare: 13 features in 10 dimensions
#
# With fifty features the model never has a dimension to spare, so no feature keeps one to itself.
# Give it only thirteen features for its ten dimensions and watch what it does with the extra room as
# the features get sparser.

# %%
if MAIN:
    roomy_inverse_p = torch.tensor(geometry.ROOMY_INVERSE_P)
    roomy, _ = train_geometry_sweep(13, geometry.ROOMY_INVERSE_P, steps(4_000), device=device)
    with torch.inference_mode():
        W13 = roomy.W.detach()
        dims13, dimensionality13 = dimensions_per_feature(W13), compute_dimensionality(W13)
    represented13 = W13.pow(2).sum(1) > geometry.REPRESENTED
    geometry.plot_dimensionality(
        1 / roomy_inverse_p, dims13, dimensionality13, title="13 features in 10 dimensions: dimensionality per feature"
    )
    print(geometry.sticky_summary(roomy_inverse_p, W13, dims13, dimensionality13, represented13))

# %% [markdown]
# With room to spare, the cleanest picture of the notebook appears from $1/(1-S) = 2.45$ on: in four
# of the five instances there, 7 features keep a dimension each ($D_i = 1$) and the other 6 share 3
# dimensions as antipodal pairs ($D_i = 1/2$): 7 + 3 = 10 dimensions. At lower sparsity the model tries
# denser packings: a tetrahedron at 1.60 (4 features in 3 dimensions, dimensionalities 0.75 to 0.76,
# close to 3/4) and a triangle next to lone features at 2.20, among groups that are not polytopes (3
# features spanning 3 dimensions, for example). Here too some features land near 3/4 (at 1.30) without
# any tetrahedron: read the groups, not only the numbers.
#
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
# * As the features get sparser, the model moves between a few discrete configurations and sticks to
#   each for a range of sparsities. The clearest is the plateau at $D^* = 1/2$: ten antipodal pairs in
#   ten dimensions.
# * The configurations are tegum products of small polytopes, and a feature's dimensionality is its
#   share of its polytope's subspace. In our runs: features alone (1) next to antipodal pairs (1/2)
#   when the model has room to spare; a tetrahedron (3/4) and triangles (2/3) in a few instances; pairs
#   (1/2) on the plateau; pentagons (2/5) and square antiprisms (3/8) after it.
# * A polytope alone in its subspace sits on its fraction; one that its neighbours overlap slightly sits
#   a little below it. So which features overlap (the groups) names a shape more reliably than the
#   dimensionality does.
