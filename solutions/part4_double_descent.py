# %% [markdown]
# # Part 4: Superposition and deep double descent
#
# Classical statistics says that a model with more parameters than data points will overfit: it
# fits the noise in its training set and does badly on new data. Deep networks break that story. As
# you give a network more data (or more parameters, or more training time), its test loss can first
# fall, then *rise* for a while, then fall again and keep falling. The bump in the middle is called
# **double descent**.
#
# This section reproduces a toy version of that bump and gives it a mechanistic reading. Take the
# toy model of part 1, but train it on a *fixed, finite* training set of `T` examples instead of
# fresh samples at every step. Then there are two different ways to drive the training loss down:
#
# * **memorise**: store each *training example* as its own direction in the hidden space. With few
#   examples this is easy and very accurate on the training set, and useless on new inputs;
# * **generalise**: store the *features* as directions (the superposition of part 1). This works on
#   any input, but only pays once there is enough data to pin down what the features are.
#
# Both are superposition: with $T > d$ examples in a $d$-dimensional hidden space, a memorising
# model keeps *data points* in superposition; a generalising one keeps *features* in superposition.
# Small $T$ favours memorising, large $T$ favours generalising, and the test loss peaks where the
# model is caught between the two and does neither well.
#
# **What you will do**
# 1. Build fixed training sets of unit-norm sparse vectors, and a warm-up-then-cosine learning rate.
# 2. Train a small model on a handful of examples and watch it memorise them as a polygon.
# 3. Write the dimensionality measure that tells memorising and generalising apart.
# 4. Sweep the dataset size from 3 to over a thousand examples (all sizes trained in one batched loop,
#    a few minutes on a laptop CPU) and find the peak of the test loss.
#
# Part 1 is the prerequisite (the model and its figures); part 3's dimensionality idea reappears
# here but the section is self-contained.

# %% [markdown]
# ## Imports

# %%
import math

import einops
import torch
from jaxtyping import Float
from torch import Tensor

from plotly_utils import line
from solutions.part1_superposition import ToyModel, ToyModelConfig
from utils import part4_double_descent as dd
from utils.device import notebook_device
from utils.runtime import FAST, steps

MAIN = __name__ == "__main__"

if MAIN:
    import tests.part4_double_descent

    device = notebook_device()  # on a CPU, one torch thread: these small models are faster on one
    print(f"Running on {device}")

# %% [markdown]
# ## The setting
#
# We follow the paper *Superposition, Memorization, and Double Descent* (Anthropic, 2023), with
# sizes scaled down to fit a CPU:
#
# * the model is part 1's `ToyModel`, $x' = \mathrm{ReLU}(W^\top W x + b)$, with $d = 2$ hidden
#   dimensions so that everything can be drawn;
# * each input has $n$ features, each present with a small probability $p$ and uniform on $[0, 1]$
#   when present, and then the whole vector is **scaled to unit length**. Normalising puts every
#   example on the same footing: an example with 15 active features is not "louder" than one with 5;
# * the model sees the **same $T$ examples** at every step (full-batch training), and the test loss is
#   measured on fresh examples from the same distribution;
# * the loss of an example is the squared error summed over features, $\lVert x - x' \rVert^2$,
#   averaged over examples (an untrained model that outputs 0 scores exactly 1);
# * the optimiser is AdamW (Adam with weight decay $10^{-2}$) with a learning rate that warms up
#   linearly and then decays along half a cosine.
#
# The paper uses $n = 10\,000$ features with $p = 0.001$ (10 active features per example on
# average) and 50,000 steps per model. We use $n = 1000$ and $p = 0.01$ (the same 10 active features
# per example) and far fewer steps; the end of the notebook has a switch for the paper's setting.

# %% [markdown]
# ### Exercise 1: `generate_dataset`
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 10 minutes
#
# Write the generator for a training (or test) set. Draw exactly as in part 1 (each feature of each
# example of each instance present independently with probability `feature_probability`, value
# $U[0, 1]$ when present), then divide every example by its Euclidean norm over the features, so
# that $\lVert x \rVert = 1$. An example with no feature present has norm 0: leave it as all zeros
# rather than dividing by zero.
#
# The check looks at the distribution (presence rate of every feature in every instance,
# independence between instances, the spread of values inside an example) and at the norms, so any
# correct way of drawing passes.
#
# <details><summary>Hint: which axis?</summary>
#
# The shape is `[n_examples, n_inst, n_features]`; the norm of one example runs over the last axis:
# `x.norm(dim=-1, keepdim=True)`. Dividing by a norm over the examples axis gives unit-norm *features*,
# not unit-norm examples.
# </details>
#
# <details><summary>Hint: empty examples</summary>
#
# With few features or a small probability some examples have nothing present, and `0 / 0` is NaN.
# Divide by `norm.clamp_min(1e-12)` (or use `torch.where`): an all-zero example then stays all zero.
# </details>


# %%
def generate_dataset(
    n_examples: int,
    n_inst: int,
    n_features: int,
    feature_probability: float,
    device: torch.device | str | None = None,
) -> Float[Tensor, "examples inst feats"]:
    """A data set of sparse, unit-norm examples, drawn independently for every instance.

    Each feature is present with probability `feature_probability` (independently for every example,
    instance and feature) and uniform on [0, 1] when present; each example is then divided by its
    L2 norm over features. Examples with no feature present stay all zeros.
    Returns a float32 tensor [n_examples, n_inst, n_features] on `device`.
    """
    ### BEGIN SOLUTION
    shape = (n_examples, n_inst, n_features)
    present = torch.rand(shape, device=device) < feature_probability
    x = torch.where(present, torch.rand(shape, device=device), 0.0)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    ### END SOLUTION


# %%
if MAIN:
    tests.part4_double_descent.test_generate_dataset(generate_dataset)

# %% [markdown]
# ### Exercise 2: `warmup_cosine_lr`
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵⚪⚪⚪ · about 5 minutes
#
# A factor that multiplies the learning rate at each step (`step` runs from 0 to `steps - 1`):
#
# * during the first `warmup_steps` steps it rises linearly from 0: $\text{step} / \text{warmup}$;
# * after that it follows half a cosine from 1 down to 0 over the remaining $\text{steps} - \text{warmup}$
#   steps: $\tfrac12\big(1 + \cos(\pi \cdot \frac{\text{step} - \text{warmup}}{\text{steps} - \text{warmup}})\big)$.
#
# With `warmup_steps = 0` it is a plain cosine decay (no division by zero).
#
# Why bother? Adam's first steps are large and noisy (its second-moment estimate starts at zero), so
# a warm-up avoids throwing the weights far away at the start; the slow decay at the end lets the
# model settle into the bottom of whatever solution it found, which sharpens the geometry we want
# to look at.
#
# <details><summary>Hint</summary>
#
# Two branches: `if step < warmup_steps: return step / warmup_steps`. In the cosine branch, measure
# progress from the end of the warm-up: `(step - warmup_steps) / (steps - warmup_steps)`.
# </details>


# %%
def warmup_cosine_lr(step: int, steps: int, warmup_steps: int) -> float:
    """Learning-rate factor: linear from 0 to 1 over `warmup_steps`, then half a cosine from 1 to 0.

    step in [0, steps); warmup_steps in [0, steps). Returns a float.
    """
    ### BEGIN SOLUTION
    if step < warmup_steps:
        return step / warmup_steps
    progress = (step - warmup_steps) / (steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * progress))
    ### END SOLUTION


# %%
if MAIN:
    tests.part4_double_descent.test_warmup_cosine_lr(warmup_cosine_lr)
    line(
        [warmup_cosine_lr(s, 1000, 50) for s in range(1000)],
        title="Learning-rate factor: 50 warm-up steps, then cosine decay (1000 steps)",
        labels={"x": "step", "y": "factor"},
        height=300,
    )

# %% [markdown]
# ## A model with a fixed training set
#
# `DoubleDescentModel` is part 1's `ToyModel` with three changes: it draws its training set once, in
# `__init__`, and keeps it in `self.train_data` (each instance gets its own `T` examples); its loss
# sums the squared error over features; and `optimize` trains with AdamW and the schedule above.
#
# ### Exercise 3: `generate_batch` returns the fixed training set
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 5 minutes
#
# Part 1 drew a fresh batch at every step, so the model never saw the same example twice: it had
# effectively infinite data and could not overfit. Here `generate_batch` must return the **whole**
# training set, the same one at every call (full-batch training on a finite data set). That is the
# only difference between the regime of part 1 and the one that shows double descent.
#
# <details><summary>Hint</summary>
#
# It is one line. `batch_size` is ignored: the "batch" is always all `T` examples.
# </details>


# %%
class DoubleDescentModel(ToyModel):
    train_data: Float[Tensor, "examples inst feats"]

    def __init__(
        self,
        cfg: ToyModelConfig,
        n_train: int,
        feature_probability: float,
        device: torch.device | str | None = None,
    ):
        super().__init__(cfg, feature_probability=feature_probability, device=device)
        if not isinstance(n_train, int) or n_train < 1:
            raise ValueError(f"n_train must be a positive int, got {n_train!r}")
        self.n_train = n_train
        self.p = float(feature_probability)
        data = generate_dataset(n_train, cfg.n_inst, cfg.n_features, self.p, device=self.W.device)
        self.register_buffer("train_data", data)

    def generate_batch(self, batch_size: int | None = None) -> Float[Tensor, "examples inst feats"]:
        """The whole fixed training set self.train_data [n_train, inst, feats], identical at every call.

        batch_size is ignored (training is full batch); it is kept so the model fits part 1's interface.
        """
        ### BEGIN SOLUTION
        return self.train_data
        ### END SOLUTION

    def calculate_loss(
        self, out: Float[Tensor, "batch inst feats"], batch: Float[Tensor, "batch inst feats"]
    ) -> Float[Tensor, ""]:
        """Σ_inst mean_batch ‖x − x'‖² (squared error summed over features)."""
        per_inst = einops.reduce((batch - out) ** 2, "batch inst feats -> inst", "sum") / batch.shape[0]
        return per_inst.sum()

    def test_loss(self, n_test: int = 2_000) -> Float[Tensor, " inst"]:
        """Loss of every instance on fresh examples from the training distribution."""
        with torch.inference_mode():
            data = generate_dataset(n_test, self.cfg.n_inst, self.cfg.n_features, self.p, device=self.W.device)
            return ((data - self(data)) ** 2).sum(-1).mean(0)

    def optimize(
        self, steps: int = 2_000, warmup_steps: int = 100, lr: float = 1e-3, weight_decay: float = 1e-2
    ) -> list[float]:
        """Full-batch AdamW with a warm-up-cosine learning rate (given). Returns the loss every 10 steps."""
        optimizer = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=weight_decay)
        losses = []
        for step in range(steps):
            optimizer.param_groups[0]["lr"] = lr * warmup_cosine_lr(step, steps, warmup_steps)
            batch = self.generate_batch()
            loss = self.calculate_loss(self(batch), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step % 10 == 0:
                losses.append(loss.item())
        return losses


# %%
if MAIN:
    tests.part4_double_descent.test_generate_batch(DoubleDescentModel)

# %% [markdown]
# ### Memorising a handful of examples
#
# Train eight instances on their own training sets of $T = 5$ examples (1000 features, 2 hidden
# dimensions). Each training example has about 10 active features, and five examples share almost
# none, so the cheapest way to reconstruct them is to give each *example* its own direction. Plot
# the hidden vectors $h_t = W x_t$ of the five training examples (top, red) and the feature
# directions $W_i$ (bottom, blue), for two instances that memorised their examples and two that did
# not (the printout counts them).

# %%
if MAIN:
    torch.manual_seed(0)
    cfg_small = ToyModelConfig(n_inst=8, n_features=1000, d_hidden=2)
    model_small = DoubleDescentModel(cfg_small, n_train=5, feature_probability=0.01, device=device)
    losses = model_small.optimize(steps=steps(3_000), warmup_steps=steps(150, 2))
    with torch.inference_mode():
        hidden_small = einops.einsum(
            model_small.train_data, model_small.W, "examples inst feats, inst d feats -> inst examples d"
        )
        batch = model_small.generate_batch()
        train_small = ((batch - model_small(batch)) ** 2).sum(-1).mean(0)
    print("train loss per instance:", [round(float(x), 3) for x in train_small])
    print("test loss per instance: ", [round(float(x), 3) for x in model_small.test_loss()])
    memorised = (train_small < 0.01).nonzero().flatten().tolist()
    failed = (train_small >= 0.01).nonzero().flatten().tolist()
    print(
        f"{len(memorised)} of {cfg_small.n_inst} instances memorised their 5 examples (train loss < 0.01): {memorised}"
    )
    shown = memorised[:2] + failed[:2] if failed else memorised[:4]
    dd.plot_datapoints_and_features(
        hidden_small[shown],
        model_small.W[shown],
        titles=[
            f"instance {k}: {'memorised' if k in memorised else 'not memorised'} ({float(train_small[k]):.3f})"
            for k in shown
        ],
        title="T = 5: training examples h = Wx (red) and features Wᵢ (blue), train loss in brackets",
        share_rows=True,
    )

# %% [markdown]
# <details><summary>Question: what shape do the training examples make, and why?</summary>
#
# In the instances that memorised, the five hidden vectors $h_t$ spread out evenly around the origin,
# roughly a regular pentagon. Each example's features point along "its" direction, so the model
# reconstructs example $t$ by reading out along $h_t$; the ReLU clips the negative part of the
# interference from the other four, as it did for interference between features in part 1. This is
# superposition of *data points*: five things stored in two dimensions. The features themselves are
# not arranged in any useful way, which is why the test loss is no better than 1: a new example's
# features point in arbitrary directions.
#
# The instances that did not memorise settled in a worse local optimum: four of their examples form a
# square and the fifth is given up (its hidden vector is a fraction of the others' length, and its
# loss is most of the instance's training loss).
# </details>

# %% [markdown]
# ## Measuring what is in superposition: dimensionality
#
# To tell the two regimes apart with numbers, we reuse the **dimensionality** of part 3 and apply it to
# any set of vectors $v_1, \dots, v_N$ in the hidden space:
#
# $$D_i = \frac{\lVert v_i \rVert^2}{\sum_{j=1}^{N} (\hat v_i \cdot v_j)^2}, \quad \hat v_i = v_i / \lVert v_i \rVert.$$
#
# The sum includes $j = i$, so a vector alone in its direction has $D_i = 1$ (it owns a whole
# dimension), $k$ unit vectors evenly spread in a plane get $2/k$ each (a pentagon: $2/5$), and a vector
# that is tiny or shares its direction with many others gets close to 0.
#
# We apply it to two sets of vectors:
# * **features**: the columns $W_i$ (where the model writes feature $i$);
# * **data points**: the hidden vectors $h_t = W x_t$ of the training examples.
#
# A memorising model gives high dimensionality to a few data points and little to any feature; a
# generalising model does the opposite.

# %% [markdown]
# ### Exercise 4: `compute_dimensionality`
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 10 minutes
#
# Input `[inst, n, d]`: for each instance, $n$ vectors of dimension $d$. Output `[inst, n]`. Zero
# vectors (a dropped feature, an empty example) get dimensionality 0, not NaN.
#
# <details><summary>Hint: the overlaps</summary>
#
# Normalise the vectors (`v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)`), then all the dot
# products of an instance at once: `einops.einsum(unit, v, "inst i d, inst j d -> inst i j")`. Square
# and sum over `j`.
# </details>
#
# <details><summary>Hint: a faster way for many vectors (optional)</summary>
#
# $\sum_j (\hat v_i \cdot v_j)^2 = \hat v_i^\top G\, \hat v_i$ with the $d \times d$ matrix
# $G = \sum_j v_j v_j^\top$. That costs $O(n d^2)$ instead of $O(n^2 d)$, which matters for 30,000 data
# points. The sweep below uses this form.
# </details>


# %%
def compute_dimensionality(vectors: Float[Tensor, "inst n d"]) -> Float[Tensor, "inst n"]:
    """Dimensionality ‖vᵢ‖² / Σⱼ (v̂ᵢ·vⱼ)² of every vector, within its instance (j runs over all n, i included).

    Zero vectors get 0.
    """
    ### BEGIN SOLUTION
    norm_sq = (vectors**2).sum(-1)
    unit = vectors / norm_sq.sqrt().clamp_min(1e-12)[..., None]
    overlaps = einops.einsum(unit, vectors, "inst i d, inst j d -> inst i j") ** 2
    return norm_sq / overlaps.sum(-1).clamp_min(1e-30)
    ### END SOLUTION


# %%
if MAIN:
    tests.part4_double_descent.test_compute_dimensionality(compute_dimensionality)

# %%
if MAIN:
    feature_dims = compute_dimensionality(einops.rearrange(model_small.W.detach(), "inst d feats -> inst feats d"))
    datapoint_dims = compute_dimensionality(hidden_small)
    print(
        "T = 5, per instance: largest data-point dimensionality",
        [round(x, 2) for x in datapoint_dims.max(-1).values.tolist()],
    )
    print(
        "                     largest feature dimensionality   ",
        [round(x, 2) for x in feature_dims.max(-1).values.tolist()],
    )

# %% [markdown]
# In the instances that memorised, the best-stored training example gets 0.41 to 0.44 of a dimension,
# close to the 2/5 of a pentagon; in the three that kept only four examples it gets 0.52 to 0.54,
# close to the 1/2 of a square (four directions in two dimensions). The largest feature
# dimensionality stays lower, 0.11 to 0.27: features that occur in the same example share its
# direction, so they split its dimension.
#
# ## The sweep: from memorising to generalising
#
# Now the experiment itself: the dataset size $T$ goes from 3 to 1300 (14 sizes), two seeds each, and
# every model trains for 2000 full-batch AdamW steps at a learning rate of $3 \times 10^{-3}$ (three
# times the run above: with so few steps, the models near the peak need it to overfit as far as the
# paper's do in 50,000). Training one model per $T$ with the loop above
# would repeat those steps 28 times; instead `dd.train_sweep` trains all 28 models
# in one loop. It is the same model, loss, optimiser and schedule as `DoubleDescentModel.optimize`
# (the test suite checks that they compute the same loss and gradients), written for speed:
#
# * every (size, seed) pair is an instance, and all training sets are stacked into one ragged array,
#   so there is no padding and nothing is masked;
# * the inputs are stored sparsely (about 10 non-zeros per example), so $h = Wx$ costs almost nothing;
# * the backward pass is written by hand: the only large tensor is $\mathrm{ReLU}(W^\top h + b)$,
#   which is reused in place as its own gradient;
# * the training sets of one seed are nested (size $T$ uses the first $T$ examples of a pool), which
#   makes neighbouring sizes comparable and the curve smoother.

# %%
if MAIN:
    FULL_FIDELITY = False  # True: the paper's setting (10,000 features, 50,000 steps); meant for a GPU
    if FULL_FIDELITY:
        sweep_cfg = dd.full_fidelity_config()
    elif FAST:
        sweep_cfg = dd.SweepConfig(sizes=[3, 10, 30, 100], n_seeds=1, steps=20, warmup_steps=2, n_test=200)
    else:
        sweep_cfg = dd.SweepConfig()  # the CPU setting: see dd.SweepConfig for the numbers
    print(sweep_cfg)
    result = dd.train_sweep(sweep_cfg, device=device)
    print(f"trained {sweep_cfg.n_inst} models in {result.seconds:.0f} s")

# %% [markdown]
# ### The loss curves
#
# Left: the test loss on fresh examples alone, on its own scale. Right: training loss (blue) and test
# loss (red) together. Both axes are logarithmic, faint dots are individual seeds, and the star marks
# the peak.

# %%
if MAIN:
    dd.plot_loss_vs_size(sweep_cfg.sizes, result.train_loss, result.test_loss)
    dip, peak = dd.find_loss_peak(result.test_loss)
    mean_test = result.test_loss.mean(-1)
    print(
        f"first descent ends at T = {sweep_cfg.sizes[dip]} (test loss {mean_test[dip]:.4f}); "
        f"peak at T = {sweep_cfg.sizes[peak]} (test loss {mean_test[peak]:.4f}); "
        f"largest T = {sweep_cfg.sizes[-1]} (test loss {mean_test[-1]:.4f})"
    )

# %% [markdown]
# **The measured peak.** The sweep is seeded, so on a CPU the printout above reproduces exactly. From
# $T = 5$ to $T = 80$ the test loss stays within 0.03 of 1 (its lowest point, 1.003, at $T = 32$).
# Then it climbs: 1.05 at $T = 130$, 1.42 at $T = 200$, and 2.10 at $T = 320$ (the two seeds give
# 2.52 and 1.67), twice the loss of a model that outputs 0 for everything. It falls back to 1.21 at
# $T = 500$ and below 1 from $T = 800$ on (0.990 at $T = 1300$).
#
# How does $T = 320$ relate to the sizes of the problem? Each example has about $np = 10$ active
# features, so a training set of $T$ examples contains each feature about $Tp$ times: 0.3 times at the
# lowest point, 3 times at the peak, 8 or more times once the second descent is complete. Our reading:
# the peak is where most features have been seen only a few times, enough to earn large weights but
# too few to average out the examples they came with. We only ran $d = 2$ hidden dimensions; the paper
# also varies $d$ and finds double descent along that axis too.
#
# Read the curves from left to right.
#
# * **Small $T$**: the training loss is essentially 0 (below $10^{-7}$ at $T = 3$ and 5): the model
#   fits its few examples exactly, and its test loss is at or above 1, no better than predicting 0
#   for everything. Pure memorisation.
# * **A flat stretch** ($T$ from 5 to 80): the model can no longer fit every example, so the training
#   loss climbs (0.16 at $T = 8$, 0.83 at $T = 80$), while the test loss stays close to 1.
# * **The peak**: the test loss rises to twice that level. These models fit their training sets better
#   than the large-$T$ models do (training loss 0.94 against 0.98), yet they generalise far worse than
#   the models on either side.
# * **The second descent**: with enough data the test loss falls below 1 and the training and test
#   losses meet (0.978 and 0.990 at $T = 1300$): the model has stopped fitting particular examples and
#   learned the features.
#
# Why are the losses close to 1 away from the peak? With 2 hidden dimensions and about 10 active features per example
# out of 1000, even the best model can only reconstruct a small part of each example; what matters is
# the shape of the curve, not its level.

# %% [markdown]
# ### What the model stores: data points or features
#
# For a small, a middle (the peak) and a large $T$, the hidden vectors $h_t = W x_t$ of the training
# examples (top, red) and the feature directions $W_i$ (bottom, blue; the 300 longest). Each panel
# has its own scale: read it from the ticks.

# %%
if MAIN:
    picks = [0, peak, len(sweep_cfg.sizes) - 1]
    insts = [result.inst(i) for i in picks]
    dd.plot_datapoints_and_features(
        [result.train_hidden[k] for k in insts],
        result.W[insts],
        titles=[f"T = {sweep_cfg.sizes[i]}" for i in picks],
        title="Hidden vectors of the training examples (red) and of the features (blue)",
    )
    for i, k in zip(picks, insts, strict=True):
        lengths = [round(float(x), 2) for x in result.W[k].norm(dim=0).sort(descending=True).values[:6]]
        print(f"T = {sweep_cfg.sizes[i]:4d}: the six longest features have lengths {lengths}")

# %% [markdown]
# * At small $T$ (here 3) the training examples form a clean polygon, a triangle, each with a
#   direction of its own, while the features are short vectors (shorter than 0.5) pointing wherever
#   their examples point.
# * At large $T$ it is the other way round: five features, of length 0.85 to 0.95, sit in a regular
#   pentagon like the sparse solutions of part 1, and the rest are short. The training examples form a
#   five-pointed star along the same directions: each is a mix of features, and it lands near the
#   direction of the pentagon's feature it contains (or near the origin if it contains none).
# * At the peak neither picture is clean. The examples fill a disk, crowded together, and many
#   features have grown long (the longest 4.1, the next ones 2.3 to 2.8) in directions set by the few
#   examples they appeared in: the large, wrongly directed readouts that make the test loss high.
#
# ### Dimensionality against $T$
#
# The same story in numbers. Each dot is one data point (red) or one feature (blue) of one model (the
# 60 largest of each model are drawn; the rest are near 0), and the lines follow the mean of the five
# largest dimensionalities of each model, averaged over seeds.

# %%
if MAIN:
    datapoint_dims = result.datapoint_dimensionality()
    feature_dims = list(result.feature_dimensionality())
    dd.plot_dimensionality_vs_size(sweep_cfg.sizes, datapoint_dims, feature_dims, n_seeds=sweep_cfg.n_seeds)
    data_top, feat_top = dd.dimensionality_summary(result)
    for i in picks:
        print(
            f"T = {sweep_cfg.sizes[i]:5d}: top-5 data-point dimensionality {data_top[i].mean():.2f}, "
            f"top-5 feature dimensionality {feat_top[i].mean():.2f}"
        )

# %% [markdown]
# <details><summary>Question: why does the test loss go <em>up</em> at the peak, with more data?</summary>
#
# On the left the model memorises: its weights only respond to the few features of its few training
# examples, so on a new example it mostly outputs (close to) nothing, and the test loss stays near that
# of the zero output. At the peak it is still fitting individual examples, but now hundreds of them,
# so many features have large weights pointing in directions set by whichever examples they happened
# to appear in. A new example then switches on large, wrongly directed readouts: confident errors
# instead of silence. Only once every feature has been seen often enough does its direction reflect
# the feature rather than its examples.
# </details>
#
# <details><summary>Question: how should the peak move with more features or hidden dimensions?</summary>
#
# The transition needs every feature to show up in enough training examples to be learned, so with
# the same number of active features per example, more features (a smaller $p$) means a larger $T$
# at the transition, roughly in proportion to $1/p$. More hidden dimensions let the model memorise
# more examples cleanly before they crowd each other, so we would expect the memorising regime, and
# the peak, to extend to larger $T$ (a prediction: this notebook only measures $d = 2$). Both are
# one-line changes to `dd.SweepConfig` if you want to test them.
# </details>
#
# ## Where this differs from the paper
#
# * **Size.** We use 1000 features with $p = 0.01$ instead of 10,000 with $p = 0.001$ (the same 10
#   active features per example), up to 1300 examples instead of 30,000, and 2000 steps instead
#   of 50,000. To overfit as far in so few steps, we train at a learning rate of $3 \times 10^{-3}$
#   instead of $10^{-3}$: at $10^{-3}$ our models stop short, and the bump is only a few percent (the
#   science tests check both). `FULL_FIDELITY = True` above runs the paper's setting.
# * **Nested training sets.** Our training sets for different $T$ are prefixes of one pool per seed
#   rather than independent draws. Nesting only makes neighbouring points of the curve correlated.
# * **Summary statistics.** The paper shows the dimensionality of every data point and feature;
#   we add the mean of the five largest per model as a line, which is easy to compare across $T$.
# * **Weight decay.** We keep the paper's $10^{-2}$. AdamW shrinks every weight by a factor
#   $1 - \text{lr}_t \cdot 10^{-2}$ at each step; over our schedule the learning rates add up to about
#   3, so weight decay shrinks a weight by about 3% in all, and barely matters here. Over 50,000 steps it
#   adds up to much more.
#
# ## The full-fidelity setting
#
# `dd.full_fidelity_config()` is the paper's configuration: 10,000 features, $d = 2$, $S = 0.999$,
# 25 dataset sizes from 3 to 30,000, two seeds, 50,000 steps with 2,500 warm-up steps. Every step
# touches about $1.6 \times 10^9$ output entries, so it is a GPU job: set `FULL_FIDELITY = True` in
# the sweep cell on a machine with a GPU. Its GPU run time has not been measured for this notebook.
#
# ## Summary
#
# * With a finite training set, a toy model can store either its **data points** or its **features**
#   in superposition. Few examples favour the first (memorising: the training loss is essentially 0
#   and the examples' hidden vectors form a polygon), many examples the second (generalising: the
#   training and test losses meet, below the loss of predicting 0).
# * The test loss is worst not at the smallest training sets but in between, where neither regime
#   works: that is the double-descent bump, here twice the loss of predicting 0, reproduced in a few
#   minutes on a CPU.
# * Dimensionality makes the switch visible: data points hold the large dimensionalities at small
#   $T$, features at large $T$, and neither around the peak.
