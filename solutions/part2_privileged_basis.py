# %% [markdown]
# # Part 2: Superposition in a privileged basis
#
# In part 1 the hidden space had no preferred axes: rotate $W$ by any orthogonal matrix and the
# model computes exactly the same function. Nothing about "hidden dimension 3" is special, so it
# makes no sense to ask what it means. That is a good model of a transformer's residual stream,
# which is only ever read and written by linear maps.
#
# Neurons are different. An MLP applies its nonlinearity **one coordinate at a time**, so a
# rotation of the hidden space changes what the model computes. The coordinate axes, the neurons,
# are singled out: the basis is **privileged**. Now it is meaningful to ask "what does neuron 3
# respond to?", and the answer can be one feature (a *monosemantic* neuron) or several (a
# *polysemantic* one).
#
# A privileged basis does not mean an interpretable one. It only means the axes are worth looking
# at. Whether each axis carries one feature is an empirical question, and superposition is the
# reason the answer is often no.
#
# **What you will do**
# 1. Add a ReLU to the hidden layer of the toy model and watch features line up with neurons.
# 2. Count monosemantic neurons as features get sparser.
# 3. Build a model that has to *compute* something (the absolute value of each feature) and see
#    how it packs that computation into fewer neurons than features.
# 4. Look closely at one neuron that serves two features: the asymmetric superposition motif.
#
# This notebook imports part 1's reference `ToyModel`, so you can do it without finishing part 1.

# %% [markdown]
# ## Imports

# %%
import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from plotly_utils import line
from solutions.part1_superposition import ToyModel, ToyModelConfig
from utils import part2_privileged_basis as neurons
from utils.device import notebook_device
from utils.part1_superposition import plot_feature_norms_and_superposition
from utils.runtime import steps
from utils.schedules import cosine_decay_lr
from utils.training import optimize

MAIN = __name__ == "__main__"

if MAIN:
    import tests.part2_privileged_basis

    device = notebook_device()
    print(f"Running on {device}")

# %% [markdown]
# ## A ReLU on the hidden layer
#
# The only change to part 1's model is a ReLU after the first layer:
#
# $$h = \mathrm{ReLU}(W x), \qquad x' = \mathrm{ReLU}(W^\top h + b).$$
#
# Row $n$ of $W$ is now the input weight vector of **neuron** $n$: which features it reads. (We
# store `W` with shape `[inst, d_hidden, feats]` as before, so `W[k, n, :]` is neuron $n$ of
# instance $k$.) The same matrix, transposed, writes each neuron's activation back to the features.
#
# Why would this privilege the basis? Suppose a neuron reads two features with weights of opposite
# sign. When both are on, their contributions cancel before the ReLU, and the neuron's output is
# wrong for both. When one feature has its own neuron, nothing else can push that neuron's
# pre-activation around. So the ReLU rewards aligning features with neurons, at least while there
# are enough neurons to go round.


# %%
class NeuronModel(ToyModel):
    """Part 1's toy model with a ReLU hidden layer: ReLU(Wᵀ ReLU(W x) + b_final)."""

    def forward(self, features: Float[Tensor, "... inst feats"]) -> Float[Tensor, "... inst feats"]:
        """ReLU(Wᵀ ReLU(W x) + b_final), for each instance separately.

        features: [... inst feats], any number of leading (batch) axes.
        Returns:  [... inst feats].
        """
        ### BEGIN SOLUTION
        hidden = F.relu(einops.einsum(features, self.W, "... inst feats, inst d_hidden feats -> ... inst d_hidden"))
        out = einops.einsum(hidden, self.W, "... inst d_hidden, inst d_hidden feats -> ... inst feats")
        return F.relu(out + self.b_final)
        ### END SOLUTION


# %% [markdown]
# ### Exercise 1: `NeuronModel.forward`
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 5 minutes
#
# Fill in `NeuronModel.forward`. It is part 1's forward with one extra ReLU; `generate_batch`,
# `calculate_loss` and `__init__` are inherited unchanged.
#
# <details><summary>Hint</summary>
#
# Compute the hidden activations with an einsum that contracts `feats`, apply `F.relu`, then go back
# up with a second einsum that contracts `d_hidden`. The bias `b_final` is added to the output,
# before the output ReLU. There is no bias on the hidden layer.
# </details>

# %%
if MAIN:
    tests.part2_privileged_basis.test_neuron_forward(NeuronModel)

# %% [markdown]
# ## Features line up with neurons
#
# Ten features with importance $0.75^i$, five neurons, and twelve instances whose feature
# probability runs from 0.5 (half the features on in every example) down to 0.005 (very sparse).
# One batched run trains all of them.

# %%
if MAIN:
    cfg = ToyModelConfig(n_inst=12, n_features=10, d_hidden=5)
    importance = 0.75 ** torch.arange(cfg.n_features)
    feature_probability = 0.5 * 100 ** -torch.linspace(0, 1, cfg.n_inst)
    torch.manual_seed(0)
    model = NeuronModel(cfg, feature_probability[:, None], importance[None, :], device=device)
    losses = model.optimize(batch_size=512, steps=steps(3_000), lr=1e-2, lr_scale=cosine_decay_lr)
    line(losses, title="Training loss (all instances summed)", labels={"x": "step / 100", "y": "loss"}, log_y=True)

# %% [markdown]
# ### What "privileged" means, checked
#
# Rotate the hidden space of every trained instance by a random orthogonal matrix $R$ (replace $W$ by
# $RW$). Part 1's model computes $W^\top R^\top R W x = W^\top W x$: exactly the same function. With the
# hidden ReLU in between, the rotation changes what the model computes, and its loss:

# %%
if MAIN:
    with torch.inference_mode():
        R = torch.linalg.qr(torch.randn(cfg.n_inst, cfg.d_hidden, cfg.d_hidden, device=device)).Q
        batch = model.generate_batch(10_000)
        rotated = NeuronModel(cfg, feature_probability[:, None], importance[None, :], device=device)
        rotated.load_state_dict(model.state_dict())
        rotated.W.copy_(R @ model.W)
        as_part1 = ToyModel(cfg, device=device)
        as_part1.load_state_dict(model.state_dict())
        part1_out = as_part1(batch)
        as_part1.W.copy_(R @ model.W)
        same = torch.allclose(as_part1(batch), part1_out, atol=1e-5)
        loss, loss_rotated = model.calculate_loss(model(batch), batch), rotated.calculate_loss(rotated(batch), batch)
    print(f"part 1's model: output unchanged by the rotation: {same}")
    print(f"NeuronModel: loss {loss.item():.4f} before the rotation, {loss_rotated.item():.4f} after")

# %% [markdown]
# ### Neuron by feature
#
# Each panel below is one instance's $W$: a row per neuron, a column per feature, red for positive
# weights and blue for negative. Rows are sorted by each neuron's strongest feature, and the label
# gives the share of the neuron's squared weight that goes to that feature (100% = monosemantic).
# The printout counts, for every instance, the monosemantic neurons (at least 90% of the squared
# weight on one feature), the features they read, and the features represented at all
# ($\lVert W_i \rVert^2 \ge 0.5$).

# %%
if MAIN:
    shown = [0, 3, 6, 8, 10, 11]
    neurons.plot_neuron_weights(
        model.W[shown], titles=[f"1 - S = {feature_probability[k]:.3f}" for k in shown], max_cols=3
    )
    mono = neurons.neuron_monosemanticity(model.W) >= 0.9
    top = model.W.detach().abs().argmax(-1).cpu()
    represented = (model.W.detach() ** 2).sum(1) >= 0.5
    for k, p in enumerate(feature_probability):
        print(
            f"1 - S = {p:.3f}: {int(mono[k].sum())} of {cfg.d_hidden} neurons monosemantic "
            f"(reading features {sorted(top[k][mono[k].cpu()].tolist())}), "
            f"{int(represented[k].sum())} features represented"
        )

# %% [markdown]
# * **Dense features** (left): each neuron reads one of the most important features, a clean
#   diagonal of monosemantic neurons, and the other features are dropped.
# * **Sparse features** (right): neurons read several features each. The model represents more
#   features than it has neurons, and the neurons are polysemantic.
# %% [markdown]
# The same models through part 1's feature lens: bar length is $\lVert W_i\rVert$ (is feature $i$
# represented?) and colour is how much other features overlap with it. More features get
# represented as sparsity grows, and they start to share.

# %%
if MAIN:
    plot_feature_norms_and_superposition(
        model.W[shown], titles=[f"1 - S = {feature_probability[k]:.3f}" for k in shown]
    )

# %% [markdown]
# ### Counting monosemantic neurons
#
# Call a neuron monosemantic when at least 90% of its squared input weight goes to one feature
# (and it is alive: the norm of its weights is at least 0.1). Here is the count for every instance.

# %%
if MAIN:
    counts = neurons.count_monosemantic(model.W)
    neurons.plot_monosemantic_counts(feature_probability, counts, cfg.d_hidden, names=["NeuronModel"])

# %% [markdown]
# <details><summary>Question: why does the count fall as features get sparser?</summary>
#
# With dense features every feature is on in every example, so two features sharing a neuron would
# interfere on every example; the best use of five neurons is five features, one each. When
# features are rarely on, two features that share a neuron are rarely on *together*, so the model
# can represent more than five features at a small cost, and the only way to do that with five
# neurons is to let some neurons read several features.
# </details>
#
# <details><summary>Question: would counting "monosemantic hidden dimensions" mean anything in part 1?</summary>
#
# No. Rotating part 1's hidden space gives an equivalent model whose hidden dimensions each mix
# several features, so whether an axis happens to align with a feature is an accident of
# initialisation and training, not a property of the function. In a ReLU layer the rotation would
# change the function, so the alignment is something training chose.
# </details>

# %% [markdown]
# ## Computation in superposition
#
# So far the model only had to pass its input through. Real MLP layers *compute* new features.
# The simplest nonlinear computation per feature is the absolute value:
#
# $$h = \mathrm{ReLU}(W_1 x), \qquad y = \mathrm{ReLU}(W_2 h + b), \qquad \text{target } |x|.$$
#
# Now inputs take values in $[-1, 1]$. With one neuron you can only compute $\mathrm{ReLU}(x)$ or
# $\mathrm{ReLU}(-x)$; $|x| = \mathrm{ReLU}(x) + \mathrm{ReLU}(-x)$ needs two. So a model with a
# neuron per feature sign has all it needs, and a model with fewer neurons than that has to compute
# in superposition: a neuron takes part in computing several features' outputs.
#
# This is **neuron superposition** (sometimes called computational superposition): more features
# than neurons *right after a nonlinearity*, which means the model has computed more nonlinear
# features than it has neurons. Part 1's kind is **bottleneck superposition** (representational): it
# only stores features in a linear bottleneck.
#
# `NeuronComputationModel` has separate input and output weights: `W1: [inst d_hidden feats]`
# (neuron $n$ reads `W1[k, n, :]`) and `W2: [inst feats d_hidden]` (neuron $n$ writes `W2[k, :, n]`).


# %%
class NeuronComputationModel(ToyModel):
    """Computes |x| for every feature: ReLU(W2 ReLU(W1 x) + b_final), inputs U[-1, 1] when present."""

    W1: Float[Tensor, "inst d_hidden feats"]
    W2: Float[Tensor, "inst feats d_hidden"]

    def __init__(
        self,
        cfg: ToyModelConfig,
        feature_probability: float | Tensor = 1.0,
        importance: float | Tensor = 1.0,
        device: torch.device | str | None = None,
    ):
        super().__init__(cfg, feature_probability, importance, device)
        del self.W  # replaced by separate input and output weights
        device = self.b_final.device
        std = (2 / (cfg.d_hidden + cfg.n_features)) ** 0.5
        self.W1 = nn.Parameter(torch.randn(cfg.n_inst, cfg.d_hidden, cfg.n_features, device=device) * std)
        self.W2 = nn.Parameter(torch.randn(cfg.n_inst, cfg.n_features, cfg.d_hidden, device=device) * std)

    def forward(self, features: Float[Tensor, "... inst feats"]) -> Float[Tensor, "... inst feats"]:
        """ReLU(W2 ReLU(W1 x) + b_final), for each instance separately.

        features: [... inst feats], any number of leading (batch) axes.
        Returns:  [... inst feats], the model's estimate of |features|.
        """
        ### BEGIN SOLUTION
        hidden = F.relu(einops.einsum(features, self.W1, "... inst feats, inst d_hidden feats -> ... inst d_hidden"))
        out = einops.einsum(hidden, self.W2, "... inst d_hidden, inst feats d_hidden -> ... inst feats")
        return F.relu(out + self.b_final)
        ### END SOLUTION

    def generate_batch(self, batch_size: int) -> Float[Tensor, "batch inst feats"]:
        """Each feature present independently with probability feature_probability[inst, feat];
        a present feature's value is uniform on [-1, 1], an absent one's is exactly 0.

        Returns: [batch_size, n_inst, n_features] on the model's device.
        """
        ### BEGIN SOLUTION
        shape = (batch_size, self.cfg.n_inst, self.cfg.n_features)
        present = torch.rand(shape, device=self.b_final.device) < self.feature_probability
        values = 2 * torch.rand(shape, device=self.b_final.device) - 1
        return torch.where(present, values, 0.0)
        ### END SOLUTION

    def calculate_loss(
        self, out: Float[Tensor, "batch inst feats"], batch: Float[Tensor, "batch inst feats"]
    ) -> Float[Tensor, ""]:
        """Importance-weighted squared error against the target |batch|.

        loss = Σ_inst  mean_{batch, feats}  importance[inst, feat] · (|batch| - out)²
        Returns a scalar (0-dim) tensor.
        """
        ### BEGIN SOLUTION
        error = self.importance * (batch.abs() - out) ** 2
        return einops.reduce(error, "batch inst feats -> inst", "mean").sum()
        ### END SOLUTION


# %% [markdown]
# ### Exercise 2: `NeuronComputationModel.forward`
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 5 minutes
#
# As `NeuronModel.forward`, but reading with `W1` and writing with `W2`. Watch the axis order of
# `W2`: `[inst feats d_hidden]`.
#
# <details><summary>Hint</summary>
#
# `einops.einsum(hidden, self.W2, "... inst d_hidden, inst feats d_hidden -> ... inst feats")`.
# The input is the raw features (which can be negative); the absolute value is the *target*, not
# something the forward pass computes.
# </details>

# %%
if MAIN:
    tests.part2_privileged_basis.test_computation_forward(NeuronComputationModel)

# %% [markdown]
# ### Exercise 3: `NeuronComputationModel.generate_batch`
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵⚪⚪⚪ · about 5 minutes
#
# Like part 1's batch, but present values are uniform on $[-1, 1]$. The check tests presence rates
# per instance and feature, the sign balance and spread of values, and independence between
# features and instances.
#
# <details><summary>Hint</summary>
#
# `2 * torch.rand(...) - 1` is uniform on $[-1, 1]$. Use separate random tensors for presence and
# values, and create them on the model's device (`self.b_final.device`: this model has no `W`).
# </details>

# %%
if MAIN:
    tests.part2_privileged_basis.test_computation_generate_batch(NeuronComputationModel)

# %% [markdown]
# ### Exercise 4: `NeuronComputationModel.calculate_loss`
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵⚪⚪⚪ · about 5 minutes
#
# $$L = \sum_k \frac{1}{B\,n}\sum_{b,i} I_{k,i}\,\big(|x_{b,k,i}| - y_{b,k,i}\big)^2.$$
#
# <details><summary>Hint</summary>
#
# Same as part 1's loss with `batch.abs()` as the target.
# </details>

# %%
if MAIN:
    tests.part2_privileged_basis.test_computation_calculate_loss(NeuronComputationModel)

# %% [markdown]
# ## Training the absolute-value model
#
# 20 features with importance $0.8^i$, 10 neurons, and six sparsity levels. Perfectly computing
# every $|x_i|$ would need 40 neurons; we give it 10.

# %%
if MAIN:
    cfg_abs = ToyModelConfig(n_inst=6, n_features=20, d_hidden=10)
    importance_abs = 0.8 ** torch.arange(cfg_abs.n_features)
    probability_abs = torch.tensor([1.0, 0.3, 0.1, 0.03, 0.01, 0.003])
    torch.manual_seed(0)
    model_abs = NeuronComputationModel(cfg_abs, probability_abs[:, None], importance_abs[None, :], device=device)
    losses_abs = model_abs.optimize(batch_size=512, steps=steps(3_000), lr=1e-2, lr_scale=cosine_decay_lr)
    neurons.plot_neuron_weights(
        model_abs.W1,
        titles=[f"1 - S = {p:.3f}" for p in probability_abs],
        title="W1: which features each neuron reads (rows sorted by strongest feature)",
        max_cols=3,
    )

# %% [markdown]
# How much of each feature does a model compute? The share of the variance of $|x_i|$ that the output
# explains says it: 1 when $|x_i|$ is computed, about 1/2 when only one sign is
# ($\mathrm{ReLU}(x)$ alone explains half the variance of $|x|$), 0 when the feature is ignored.

# %%
if MAIN:
    explained = neurons.abs_explained(model_abs)
    pairs = neurons.sign_pairs(model_abs.W1)
    for k, p in enumerate(probability_abs):
        print(
            f"1 - S = {p:.3f}: {int((explained[k] >= 0.8).sum()):2d} features computed, "
            f"{int((explained[k] >= 0.3).sum()):2d} at least in part (one sign), with {cfg_abs.d_hidden} neurons; "
            f"± neuron pairs for features {pairs[k]}"
        )

# %% [markdown]
# Read the dense panel first: neurons come in pairs for the most important features, one with a
# positive and one with a negative weight on the same feature. Together they compute
# $\mathrm{ReLU}(x) + \mathrm{ReLU}(-x) = |x|$: ten neurons, five features computed, no superposition.
#
# As sparsity grows, the pairs break up and single neurons read several features, with weights of
# either sign. The sparsest models (1 - S of 0.03 and below) compute one sign of many features: more
# features, in part, than they have neurons. That is computation in superposition. The
# monosemantic count drops just as for the `NeuronModel`:

# %%
if MAIN:
    neurons.plot_monosemantic_counts(
        probability_abs, neurons.count_monosemantic(model_abs.W1), cfg_abs.d_hidden, names=["|x| model"]
    )

# %% [markdown]
# ## The asymmetric superposition motif
#
# How can one neuron help compute two features' absolute values without their outputs getting
# mixed up? Say neuron $n$ fires for (one sign of) feature $A$ and for feature $B$. Whenever it
# fires, it writes to both outputs, so $A$ would leak into $B$'s output and vice versa, and the
# leak is positive, which the output ReLU can't remove.
#
# The trained models use a lopsided arrangement. Neuron $n$ reads $A$ **strongly** and writes to it
# **weakly**; it reads $B$ **weakly** and writes to it **strongly**. Both products (input weight ×
# output weight) are about 1, so both features are computed. Now:
#
# * when $B$ is on, the neuron fires only a little, and its weak output weight to $A$ makes the
#   leak into $A$ small;
# * when $A$ is on, the neuron fires hard, and its strong output weight to $B$ would make a big leak
#   into $B$. Other neurons that also fire on $A$ cancel it with **negative** output weights to $B$,
#   pushing $B$'s pre-activation below zero where the ReLU clips it.
#
# Let's find such neurons in the trained models (a neuron *serves* a feature when its input weight
# times output weight is at least 0.5; we look for two features with ratios of at least 2 in
# opposite directions).

# %%
if MAIN:
    motifs = neurons.asymmetric_neurons(model_abs.W1, model_abs.W2)
    print(f"{len(motifs)} asymmetric neurons across the instances")
    for k, n, strong, weak in motifs[:5]:
        print(
            f"instance {k} (1 - S = {probability_abs[k]:.3f}), neuron {n}: strong feature {strong}, weak feature {weak}"
            f"  | in: {model_abs.W1[k, n, strong]:+.2f}, {model_abs.W1[k, n, weak]:+.2f}"
            f"  | out: {model_abs.W2[k, strong, n]:+.2f}, {model_abs.W2[k, weak, n]:+.2f}"
        )

# %% [markdown]
# The first figure shows the most lopsided neuron's input and output weights. The second switches
# on one feature at a time (with the sign that makes this neuron fire) and shows what every neuron
# adds to the two outputs' pre-activations. With only the strong feature on, look at the weak
# feature's output: a large positive bar from our neuron, cancelled by negative bars from others.

# %%
if MAIN:
    if motifs:
        k, n, strong, weak = motifs[0]
        neurons.plot_neuron_motif(
            model_abs.W1[k], model_abs.W2[k], [n], title=f"Instance {k}, neuron {n}: input and output weights"
        )
        neurons.plot_asymmetric_motif(model_abs.W1[k], model_abs.W2[k], model_abs.b_final[k], n, strong, weak)
        with torch.inference_mode():
            x = torch.zeros(cfg_abs.n_features, device=device)
            x[strong] = torch.sign(model_abs.W1[k, n, strong])  # the sign that makes neuron n fire
            contributions = model_abs.W2[k, weak] * torch.relu(model_abs.W1[k] @ x)
            others = contributions.sum() - contributions[n]
            pre = contributions.sum() + model_abs.b_final[k, weak]
        print(
            f"only feature {strong} on: neuron {n} adds {contributions[n]:+.2f} to output {weak}, the other neurons "
            f"{others:+.2f}; with the bias, output {weak}'s pre-activation is {pre:+.2f}, "
            f"so the ReLU outputs {pre.clamp(min=0):.2f}"
        )
    else:
        print("no asymmetric neuron in this run (train longer: the fast mode's few steps are not enough)")

# %% [markdown]
# <details><summary>Question: why not make the neuron symmetric, reading and writing both features equally?</summary>
#
# Then each feature would leak into the other's output as strongly as it drives its own, and
# cancelling both leaks would need inhibition in both directions. With the lopsided version one
# leak is small enough to tolerate, and only the other needs cancelling, by neurons that also fire
# when $A$ is on.
# </details>
#
# <details><summary>Question: what does this mean for interpreting real MLP neurons?</summary>
#
# A neuron's largest input weight doesn't tell you what it *does*: here the feature that drives the
# neuron hardest is the one it contributes least to, and part of its output exists only to be
# cancelled by other neurons. Reading a single neuron in isolation can mislead; the computation is
# spread over several neurons. This is one motivation for the sparse autoencoders of part 5.
# </details>
#
# ## Summary
#
# * A ReLU hidden layer privileges the neuron basis: rotating the hidden space changes the function
#   (and raises the loss), where part 1's model is unchanged.
# * With dense features, features get neurons of their own (monosemantic); with sparse features,
#   neurons take several features each (polysemantic), and the count of monosemantic neurons falls.
# * Bottleneck superposition stores features; neuron superposition computes them: the sparse |x|
#   models compute (one sign of) more features than they have neurons, the dense one a feature per
#   pair of neurons.
# * Asymmetric superposition lets one neuron serve two features, with other neurons inhibiting the
#   leak that remains.
