# %% [markdown]
# # Part 7 (bonus): an open-problems lab on superposition
#
# The toy models of sections 1 and 2 are small enough that many open questions about superposition
# can be asked of them with a one-line change: put dropout on the hidden layer, swap ReLU for GELU,
# ask for $x^2$ instead of $|x|$, feed binary inputs and ask for AND, change the loss to
# cross-entropy. This section gives you those changes as options of one configurable model, runs a
# first pass on seven of them, and leaves you with a next step for each.
#
# The runs here are short, with few instances and seeds: treat every number as a first measurement
# that tells you where to look, not as a result. The point is to make the next experiment cheap.
#
# **What you will do**
# 1. Write the pieces of the lab that have one right answer: new input distributions, new targets,
#    a cross-entropy loss and a measure of how aligned features are with neurons.
# 2. Run seven problems from the open-problems list end to end, each with a figure and a measured answer.
#
# Exercises have a difficulty and importance rating (out of 5), a check in the cell under them, and
# hints you can unfold. The experiments run on *your* answers: the lab draws its data, computes its
# targets and its cross-entropy loss with your functions, and problem 1 measures with your
# `basis_alignment`. So they need the exercises done first (they stop with "not implemented yet"
# until then), and if you edit an exercise and re-run its cell, the experiments after it change too.

# %% [markdown]
# ## Imports

# %%
import torch
from jaxtyping import Float, Int
from torch import Tensor

from utils import part7_open_problems as lab
from utils.device import notebook_device
from utils.part1_superposition import (
    feature_norms_and_superposition,
    plot_feature_norms_and_superposition,
    plot_features_in_2d,
)
from utils.part7_open_problems import (
    NO_LABEL,
    ExperimentConfig,
    LabFunctions,
    plot_distributions,
    plot_functions,
    plot_lines,
    plot_weight_heatmaps,
)
from utils.runtime import steps
from utils.schedules import cosine_decay_lr

MAIN = __name__ == "__main__"

if MAIN:
    import tests.part7_open_problems

    device = notebook_device()
    print(f"Running on {device}")

# %% [markdown]
# ## The lab: one model, many switches
#
# `ExperimentModel` (in `utils/part7_open_problems.py`) is the toy model of section 1 with every change
# below available as a field of `ExperimentConfig`. With the defaults it *is* the section 1 model,
# $\mathrm{ReLU}(W^\top W x + b)$, and with `hidden_activation="relu"` it is section 2's
# $\mathrm{ReLU}(W^\top \mathrm{ReLU}(W x) + b)$ (the test suite checks both, weight for weight).
#
# | field | what it changes | options |
# | --- | --- | --- |
# | `hidden_activation` | the hidden layer | `None` (linear bottleneck), `"relu"`, `"gelu"` |
# | `output_activation` | the output layer | `"relu"`, `"gelu"`, `None` (logits) |
# | `tied` | the output weights | `True`: $W^\top$; `False`: a separate `W_out` |
# | `n_hidden_layers`, `hidden_bias` | depth, hidden biases | an int; a bool |
# | `dropout` | hidden units dropped in training | a probability |
# | `values` | a present feature's value | see below |
# | `target` | what the model must output | see exercise 2 |
# | `loss` | the objective | `"mse"` (importance-weighted), `"cross_entropy"` |
#
# Present values can be `"uniform"` (U[0,1]), `"constant"` or its alias `"binary"` (exactly 1),
# `"discrete"` ({1, 2, 3}), `"uniform_half"` (U[0.5, 1]) or `"signed_uniform"` (U[−1, 1], section 2).
# Targets are `"identity"`, `"abs"`, `"square"`, `"max_pairs"`, `"and_pairs"`, `"or_pairs"` and
# `"argmax"` (class labels, for the cross-entropy loss).
#
# Feature probability and importance broadcast to `[inst feats]` as in section 1, so each instance
# can have its own sparsity, and features within an instance can differ (non-uniform sparsity).
# `run_experiment(cfg, feature_probability, importance, steps=..., seed=...)` (defined after the
# exercises) builds, seeds and trains in one call; `model.evaluate()` gives per-instance metrics on a
# fresh batch.
#
# The lab has no data or loss of its own: the model calls the functions you write in exercises 1-3
# for its batches, its targets and its cross-entropy loss. Before the experiments, you will write
# those and a fourth piece, the alignment metric.

# %% [markdown]
# ### Exercise 1: new input distributions
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵⚪⚪⚪ · about 10 minutes
#
# Section 1 drew a present feature's value from $U[0, 1]$. The open-problems list asks what happens
# with other values: exactly 1 (so a feature is just on or off), the discrete values $\{1, 2, 3\}$, or
# $U[0.5, 1]$ (never small); section 2's absolute-value model needs signed values. Write
# `generate_features`: each feature present independently with probability
# `feature_probability[inst, feat]`, and a present feature's value drawn according to `values`:
#
# * `"uniform"`: $U[0, 1]$; `"uniform_half"`: $U[0.5, 1]$; `"signed_uniform"`: $U[-1, 1]$;
# * `"discrete"`: 1, 2 or 3, each with probability 1/3;
# * `"constant"`, or its alias `"binary"`: exactly 1.
#
# Every experiment below gets its batches from this function, and each of these kinds is one they use.
#
# <details><summary>Hint: the discrete values</summary>
#
# `torch.randint(low, high, shape)` draws from `low, ..., high - 1`: the upper bound is excluded.
# Convert to float before mixing with the mask.
# </details>
#
# <details><summary>Hint: presence and values</summary>
#
# As in section 1: one uniform tensor for presence (`rand < p`), and a separate draw for the values.
# </details>


# %%
def generate_features(
    feature_probability: Float[Tensor, "inst feats"], batch_size: int, values: str = "uniform"
) -> Float[Tensor, "batch inst feats"]:
    """A batch of sparse features; present values drawn from the distribution named by `values`.

    values: "uniform" U[0, 1], "uniform_half" U[0.5, 1], "signed_uniform" U[-1, 1],
            "discrete" {1, 2, 3} equally likely, "constant" or "binary" exactly 1.
    Returns a float32 tensor [batch_size, inst, feats] on feature_probability's device, 0 where absent.
    """
    ### BEGIN SOLUTION
    shape = (batch_size, *feature_probability.shape)
    device = feature_probability.device
    present = torch.rand(shape, device=device) < feature_probability
    if values == "uniform":
        sampled = torch.rand(shape, device=device)
    elif values == "uniform_half":
        sampled = 0.5 + 0.5 * torch.rand(shape, device=device)
    elif values == "signed_uniform":
        sampled = 2 * torch.rand(shape, device=device) - 1
    elif values == "discrete":
        sampled = torch.randint(1, 4, shape, device=device).float()
    elif values in ("constant", "binary"):
        sampled = torch.ones(shape, device=device)
    else:
        raise ValueError(f"unknown values {values!r}")
    return torch.where(present, sampled, 0.0)
    ### END SOLUTION


# %%
if MAIN:
    tests.part7_open_problems.test_generate_features(generate_features)

# %% [markdown]
# ### Exercise 2: new targets
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 15 minutes
#
# Section 1's model reproduces its input; section 2's computes $|x|$. Computing a *new* function is
# what forces neuron superposition, so the lab offers several. Write `compute_target`:
#
# * `"identity"`, `"abs"`, `"square"`: elementwise, same shape as the input;
# * `"max_pairs"`, `"and_pairs"`, `"or_pairs"`: pair $j$ is features $2j$ and $2j+1$; output $j$ is
#   $\max(x_{2j}, x_{2j+1})$, or 1.0 when both are non-zero (AND), or 1.0 when at least one is (OR), else 0.0;
# * `"argmax"` (labels for the classification variant): the int64 index of the largest feature,
#   or `NO_LABEL = -1` when no feature is present.
#
# Don't modify `features`.
#
# <details><summary>Hint: pairs</summary>
#
# `features[..., 0::2]` and `features[..., 1::2]` are the first and second members of every pair.
# </details>
#
# <details><summary>Hint: argmax</summary>
#
# `argmax` of an all-zero row is 0, a real class. Find the rows with no non-zero entry and replace
# their label with −1 (`torch.where`).
# </details>


# %%
def compute_target(features: Float[Tensor, "... inst feats"], target: str) -> Tensor:
    """The target for `features`: [... inst feats] (elementwise), [... inst feats/2] (pairs), [... inst] (argmax)."""
    ### BEGIN SOLUTION
    if target == "identity":
        return features.clone()
    if target == "abs":
        return features.abs()
    if target == "square":
        return features**2
    if target == "argmax":
        any_present = (features != 0).any(dim=-1)
        return torch.where(any_present, features.argmax(dim=-1), NO_LABEL)
    first, second = features[..., 0::2], features[..., 1::2]
    if target == "max_pairs":
        return torch.maximum(first, second)
    if target == "and_pairs":
        return ((first != 0) & (second != 0)).to(features.dtype)
    if target == "or_pairs":
        return ((first != 0) | (second != 0)).to(features.dtype)
    raise ValueError(f"unknown target {target!r}")
    ### END SOLUTION


# %%
if MAIN:
    tests.part7_open_problems.test_compute_target(compute_target)

# %% [markdown]
# ### Exercise 3: a cross-entropy loss for a classification toy model
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵⚪⚪⚪ · about 15 minutes
#
# Language models are trained with cross-entropy, not squared error. The classification variant of
# the toy model reads its $n$ outputs as logits and must say *which feature is largest*. Examples with
# no feature present have no answer (label −1) and are left out. Per instance $k$:
#
# $$L_k = \frac{1}{|V_k|} \sum_{b \in V_k} I_{k, y_{b,k}} \big(-\log \mathrm{softmax}(z_{b,k})_{y_{b,k}}\big),
# \qquad L = \sum_k L_k,$$
#
# where $V_k$ is the set of labelled examples of instance $k$ and $I$ the importance of the true class.
# An instance with no labelled example contributes 0.
#
# <details><summary>Hint: the pieces</summary>
#
# `logits.log_softmax(-1)`, then `gather` at `labels.clamp(min=0)` (so −1 is a valid index), and a
# mask `labels != -1` to zero out and count the unlabelled examples. Clamp the count at 1.
# </details>
#
# <details><summary>Hint: why not `F.cross_entropy(..., weight=...)`?</summary>
#
# With a `weight`, PyTorch divides by the *sum of the weights* of the labelled examples, not by
# their number, which cancels most of the importance. You can use it with `reduction="none"` and
# `ignore_index=-1`, then weight and average yourself.
# </details>


# %%
def cross_entropy_loss(
    logits: Float[Tensor, "batch inst classes"],
    labels: Int[Tensor, "batch inst"],
    importance: Float[Tensor, "inst classes"],
) -> Float[Tensor, ""]:
    """Σ_inst mean over labelled examples of importance[inst, label] · (−log softmax(logits)[label])."""
    ### BEGIN SOLUTION
    valid = labels != NO_LABEL
    index = labels.clamp(min=0)[..., None]
    nll = -logits.log_softmax(dim=-1).gather(-1, index)[..., 0]
    weight = importance.expand_as(logits).gather(-1, index)[..., 0]
    per_instance = torch.where(valid, weight * nll, 0.0).sum(0) / valid.sum(0).clamp(min=1)
    return per_instance.sum()
    ### END SOLUTION


# %%
if MAIN:
    tests.part7_open_problems.test_cross_entropy_loss(cross_entropy_loss)

# %% [markdown]
# ### Exercise 4: how aligned is a feature with the neurons?
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 5 minutes
#
# A basis is *privileged* when the model treats its axes differently from other directions. One sign
# of that: features sit on single neurons. For a feature direction $W_i$ (a column of `W`), measure
#
# $$a_i = \frac{\max_k |W_{k i}|}{\lVert W_i \rVert},$$
#
# which is 1 when $W_i$ lies on one hidden axis and $1/\sqrt{d}$ when it is spread evenly over all $d$.
# A feature with $W_i = 0$ has no direction: return 0 for it.
#
# <details><summary>Hint</summary>
#
# Both the max and the norm run over the hidden axis, `dim=1`. `torch.where(norm > 0, ..., 0.0)`
# handles the zero columns (clamp the denominator so no NaN appears).
# </details>


# %%
def basis_alignment(W: Float[Tensor, "inst d_hidden feats"]) -> Float[Tensor, "inst feats"]:
    """max_k |W[inst, k, i]| / ‖W[inst, :, i]‖ for every instance and feature; 0 for zero columns."""
    ### BEGIN SOLUTION
    norms = W.norm(dim=1)
    return torch.where(norms > 0, W.abs().amax(dim=1) / norms.clamp(min=1e-12), 0.0)
    ### END SOLUTION


# %%
if MAIN:
    tests.part7_open_problems.test_basis_alignment(basis_alignment)

# %% [markdown]
# ## Running an experiment
#
# `lab.run_experiment` trains with whatever functions it is handed. The cell below hands it yours:
# every experiment in this notebook calls this `run_experiment`, which looks up `generate_features`,
# `compute_target` and `cross_entropy_loss` each time it is called, so an edited and re-run exercise
# cell counts from the next experiment on.


# %%
def run_experiment(
    cfg: ExperimentConfig, feature_probability: float | Tensor = 1.0, importance: float | Tensor = 1.0, **options
) -> lab.ExperimentModel:
    """Seed, build and train a lab model on this section's functions (given).

    `options` are those of `lab.run_experiment`: steps, batch_size, lr, lr_scale, seed, device, progress.
    """
    functions = LabFunctions(generate_features, compute_target, cross_entropy_loss)
    return lab.run_experiment(cfg, functions, feature_probability, importance, **options)


# %% [markdown]
# ## Problem 1: does dropout create a privileged basis?
#
# In section 1's model the hidden space has no preferred axes: rotate $W$ and nothing changes.
# Dropout breaks that symmetry: it zeroes individual hidden *coordinates*. So the basis becomes
# privileged, but in which direction? Think of one feature $i$ alone. Its readout through dropout is
# $W_i^\top D W_i\, x_i / (1-q)$ with a random diagonal mask $D$; the mean is unchanged and the variance
# is proportional to $\sum_k W_{ki}^4$. For a fixed norm, that is *largest* when $W_i$ sits on one axis
# and smallest when it is spread evenly. So the prediction is that dropout pushes features **away**
# from the neuron axes.
#
# We train eight features in four hidden dimensions (feature probability 0.1) with dropout 0, 0.1 and
# 0.3, eight instances each, and compare the alignment $a_i$ of every represented feature with what
# random directions give.

# %%
if MAIN:
    alignment = {}
    for q in [0.0, 0.1, 0.3]:
        cfg = ExperimentConfig(n_inst=8, n_features=8, d_hidden=4, dropout=q)
        model = run_experiment(cfg, feature_probability=0.1, steps=steps(1_000), batch_size=512, device=device)
        W = model.W.detach()
        alignment[f"dropout {q}"] = basis_alignment(W)[W.norm(dim=1) > 0.5].cpu()
    baseline = lab.random_alignment_baseline(basis_alignment, 4)
    plot_distributions(
        alignment,
        title="Alignment with the neuron axes of each represented feature (8 in 4 dims, 8 seeds)",
        yaxis="alignment max |W_ki| / ‖Wᵢ‖",
        xaxis="dropout on the hidden layer (training only)",
        reference=baseline,
        reference_label=f"random directions: {baseline:.2f}",
    )
    means = ", ".join(f"{name}: {a.mean():.2f}" for name, a in alignment.items())
    print(f"Mean alignment of represented features: {means} (random directions: {baseline:.2f}).")

# %% [markdown]
# **What we measured.** In our run the mean alignment was 0.72 without dropout (random directions
# give 0.78; nothing in the loss prefers any basis) and fell to 0.61 and 0.60 with dropout 0.1 and 0.3.
# So dropout does privilege the basis, but by spreading each feature over several neurons, as the
# variance argument predicts, not by giving it a neuron of its own.
#
# **Taking it further.** Does the same hold for a model with a ReLU hidden layer, where the basis is
# already privileged? Does dropout change *which* geometry appears (pentagons, antipodal pairs) in two
# dimensions? Try dropout on the input or output instead, or a rate that grows over training.

# %% [markdown]
# ## Problem 2: GELU instead of ReLU
#
# Is GELU just a smoother ReLU here? We repeat section 1's first experiment (five features in two
# dimensions, importance $0.9^i$, five sparsity levels) with a GELU on the output.

# %%
if MAIN:
    probability = torch.tensor([1.0, 0.3, 0.1, 0.03, 0.01])[:, None]
    importance = 0.9 ** torch.arange(5)
    runs = {}
    for act in ["relu", "gelu"]:
        cfg = ExperimentConfig(n_inst=5, n_features=5, d_hidden=2, output_activation=act)
        runs[act] = run_experiment(cfg, probability, importance, steps=steps(1_500), batch_size=512, device=device)
    plot_features_in_2d(
        torch.cat([runs["relu"].W, runs["gelu"].W]).detach(),
        colors=importance,
        titles=[f"{act}, 1 - S = {p:.2f}" for act in runs for p in probability[:, 0]],
        title="Feature directions with a ReLU (top) and a GELU (bottom) output",
    )
    for act, m in runs.items():
        kept = lab.n_represented(m.W.detach()).int().tolist()
        loss = ", ".join(f"{v:.4f}" for v in m.evaluate()["loss"].tolist())
        print(f"{act}: features represented per sparsity level {kept}; loss {loss}")

# %% [markdown]
# **What we measured.** Dense models look the same (two orthogonal features, loss 0.037 for both).
# With sparser features the GELU model kept one feature fewer at $1 - S$ = 0.3 and 0.1 and its loss
# was higher at every sparse level (0.0068 against 0.0041 at 0.1, 0.0020 against 0.0007 at 0.03).
# A likely reason: GELU cannot fully cancel negative interference (GELU(−0.2) ≈ −0.08, not 0), so
# interference leaks into the output, and a negative bias is no clean threshold. So it is not just
# a smoother ReLU here, although the geometry it finds is similar.
#
# **Taking it further.** Try GELU on the hidden layer of the absolute-value model (section 2), where
# it has to compute rather than clean up. Look for a task where GELU's curvature at 0 helps, such as
# $x^2$ below.

# %% [markdown]
# ## Problem 3: $x^2$ needs several neurons per feature
#
# Section 2's model computes $|x|$ with two ReLU neurons per feature: $|x| = \mathrm{ReLU}(x) +
# \mathrm{ReLU}(-x)$. A piecewise-linear network can only *approximate* $x^2$, and more kinks (neurons)
# give a better fit. We train one feature with values in $[-1, 1]$ through 1 to 8 hidden ReLU neurons
# (untied weights, hidden biases), eight seeds each, and keep the best seed per width.


# %%
def train_relu_mlp(
    n_inst: int, n_features: int, d_hidden: int, values: str, target: str, feature_probability: float, device
) -> lab.ExperimentModel:
    """Problems 3 and 4's recipe (given): a ReLU network with untied weights and hidden biases, trained on
    `target` for 1 000 steps of batch 256 with a cosine-decayed learning rate of 0.01."""
    cfg = ExperimentConfig(
        n_inst=n_inst,
        n_features=n_features,
        d_hidden=d_hidden,
        hidden_activation="relu",
        tied=False,
        hidden_bias=True,
        values=values,
        target=target,
    )
    return run_experiment(
        cfg,
        feature_probability,
        steps=steps(1_000),
        batch_size=256,
        lr=1e-2,
        lr_scale=cosine_decay_lr,
        device=device,
        progress=False,
    )


if MAIN:
    widths = [1, 2, 4, 8]
    best_loss, curves = {"|x|": [], "x²": []}, {}
    xs = torch.linspace(-1, 1, 201, device=device)[:, None, None].expand(-1, 8, 1)  # [points inst=8 feats=1]
    for name, target in [("|x|", "abs"), ("x²", "square")]:
        for d in widths:
            model = train_relu_mlp(8, 1, d, "signed_uniform", target, 1.0, device)
            losses = model.evaluate()["loss"]
            best_loss[name].append(losses.min().item())
            if target == "square":
                with torch.inference_mode():
                    curves[f"{d} neuron{'s' if d > 1 else ''}"] = model(xs)[:, int(losses.argmin()), 0]
    plot_lines(
        widths,
        best_loss,
        title="Best loss against hidden width, one feature",
        xaxis="hidden neurons",
        yaxis="mean squared error",
        log_y=True,
    )
    plot_functions(
        xs[:, 0, 0],
        {**curves, "x²": xs[:, 0, 0] ** 2},
        dashed=["x²"],
        title="The best x² model at each width: one kink per neuron",
    )
    print("best loss |x|:", [f"{v:.1e}" for v in best_loss["|x|"]], " x²:", [f"{v:.1e}" for v in best_loss["x²"]])

# %% [markdown]
# **What we measured.** In our run $|x|$ reached a loss of $2 \times 10^{-5}$ with two neurons and
# below $10^{-6}$ with eight, while $x^2$ stayed at $6 \times 10^{-2}$ with one or two neurons (no
# seed found a good two-kink fit in this short run) and fell to $7 \times 10^{-4}$ with four and
# $1.6 \times 10^{-4}$ with eight. Each neuron adds a kink to a piecewise-linear fit (the figure shows
# the chords), so a curved function claims several neurons per feature: the pressure that makes
# features share neurons once neurons are scarce.
#
# **Taking it further.** Train many features through fewer neurons than "kinks × features" and look
# at how the neurons are shared (section 2's neuron-by-feature plots). Does sparsity let the features
# reuse each other's kinks?

# %% [markdown]
# ## Problem 4: AND and OR of binary features
#
# Now inputs are binary (present with probability 1/2, value 1) and the model outputs, for each of
# four pairs, the AND or the OR of the pair. With a hidden bias, one neuron per pair is enough for
# either, exactly: AND is $\mathrm{ReLU}(x + y - 1)$, and for OR a neuron $n = \mathrm{ReLU}(1 - x - y)$
# is 1 only when both inputs are off (a NOR), so the output $\mathrm{ReLU}(1 - n)$ is exactly OR on
# binary inputs. What does the model do with fewer neurons than pairs? We count the outputs on the wrong
# side of 1/2.

# %%
if MAIN:
    widths_gate = [2, 4, 8]
    error = {"AND": [], "OR": []}
    gate_models = {}
    for name, target in [("AND", "and_pairs"), ("OR", "or_pairs")]:
        for d in widths_gate:
            model = train_relu_mlp(4, 8, d, "binary", target, 0.5, device)
            errors = model.evaluate()["error_rate"]
            error[name].append(errors.min().item())
            gate_models[name, d] = model, int(errors.argmin())  # the model and its best instance
    plot_lines(
        widths_gate,
        error,
        title="AND / OR of 4 binary pairs: best error rate against hidden width",
        xaxis="hidden neurons",
        yaxis="fraction of wrong outputs",
    )
    plot_weight_heatmaps(
        [gate_models[name, 4][0].W[gate_models[name, 4][1]].detach() for name in ("AND", "OR")],
        titles=["AND, 4 neurons", "OR, 4 neurons"],
        title="First-layer weights (neuron × input feature), 4 neurons for 4 pairs",
    )
    print("best error rate AND:", [f"{v:.3f}" for v in error["AND"]], " OR:", [f"{v:.3f}" for v in error["OR"]])
    for name in ("AND", "OR"):
        gate_model, best = gate_models[name, 4]
        print(f"{name}, 4 neurons: " + lab.describe_neurons(gate_model, best))

# %% [markdown]
# **What we measured.** With 4 neurons for 4 pairs the best seed made no errors on either gate. The
# heatmaps (and the printed summary of which pairs each neuron reads) differ, though. In our run each OR
# neuron read a single pair. Three did so with negative weights and a positive bias: they fire only when
# both inputs are off (a NOR detector), which the output subtracts from a constant, the exact construction
# above. The fourth read its pair with positive weights, an OR that is right only up to the threshold of
# 1/2 (its input counts 2 when both are on). The AND neurons each read two to four pairs at once, and the
# exact gates were decoded from their mixture: polysemantic neurons that still compute every output
# correctly. With 2 neurons the error was 12% (AND) and 14% (OR): these inputs are dense (each on half the
# time), so there is no sparsity for superposition to exploit. With 8 neurons OR was again perfect
# but the best of four AND seeds still made 6% errors: short runs get stuck, so use more seeds
# before drawing conclusions.
#
# **Taking it further.** Make the inputs sparse (probability 0.05) and repeat: does the model then
# compute more gates than it has neurons? Try XOR, which needs two neurons per pair.

# %% [markdown]
# ## Problem 5: non-uniform sparsity
#
# Real features are not all equally frequent. Here 20 features share 8 dimensions; the first 10 are
# common (probability 0.3), the last 10 rare (0.01), and all are equally important. Which get a
# dimension of their own?

# %%
if MAIN:
    probability_nu = lab.two_class_probability(20, n_dense=10, p_dense=0.3, p_sparse=0.01)
    cfg = ExperimentConfig(n_inst=3, n_features=20, d_hidden=8)
    model_nu = run_experiment(cfg, probability_nu, steps=steps(1_500), batch_size=512, device=device)
    plot_feature_norms_and_superposition(
        model_nu.W.detach(),
        titles=[f"seed instance {k}" for k in range(3)],
        title="Features 0-9 common, 10-19 rare: norm and superposition",
    )
    norms, superposition = feature_norms_and_superposition(model_nu.W)
    print(
        f"mean norm: common {norms[:, :10].mean():.2f}, rare {norms[:, 10:].mean():.2f}; "
        f"mean superposition: common {superposition[:, :10].mean():.2f}, rare {superposition[:, 10:].mean():.2f}; "
        f"represented (norm > 0.5): common {(norms[:, :10] > 0.5).sum(-1).tolist()}, "
        f"rare {(norms[:, 10:] > 0.5).sum(-1).tolist()}"
    )

# %% [markdown]
# **What we measured.** In our run all ten common features were kept at full norm (1.01 on average)
# and 7 or 8 of the ten rare ones too, at a lower norm (0.80 on average). There are more common
# features than dimensions, so they share space as well (mean superposition 1.25), and the rare ones
# share more (1.57): the model fits 17-18 features into 8 dimensions and gives the frequent class
# the cleaner directions.
#
# **Taking it further.** Vary the ratio of the two probabilities and the number of dimensions and
# trace where each class starts and stops being represented; compare with section 3's
# dimensions-per-feature plot, which assumed uniform sparsity.

# %% [markdown]
# ## Problem 6: other value ranges
#
# Section 1's features take values in $[0, 1]$, so small values are common and a slightly negative
# bias can round small interference to zero at little cost. What if a present feature is always 1,
# one of $\{1, 2, 3\}$, or in $[0.5, 1]$? Five features in two dimensions, equal importance, four
# sparsity levels.

# %%
if MAIN:
    probability_v = torch.tensor([0.3, 0.1, 0.03, 0.01])[:, None]
    W_by_kind, kept_by_kind = [], {}
    for kind in ["uniform", "constant", "discrete", "uniform_half"]:
        cfg = ExperimentConfig(n_inst=4, n_features=5, d_hidden=2, values=kind)
        model = run_experiment(cfg, probability_v, steps=steps(1_000), batch_size=512, device=device, progress=False)
        W_by_kind.append(model.W.detach())
        kept_by_kind[kind] = lab.n_represented(model.W.detach()).int().tolist()
    plot_features_in_2d(
        torch.cat(W_by_kind),
        titles=[f"{k}, p={p:.2f}" for k in kept_by_kind for p in probability_v[:, 0]],
        title="Feature directions for four value distributions (rows) at four sparsities (columns)",
        max_cols=4,
    )
    print("features represented per sparsity level:", kept_by_kind)

# %% [markdown]
# **What we measured.** All four distributions end with all five features in superposition at high
# sparsity. Constant and discrete values got there sooner: five features from $p = 0.1$ in our run,
# against $p = 0.03$ for $U[0, 1]$ and $U[0.5, 1]$. One reading: when a present feature is never
# small, the interference it causes is easier to tell apart from a real activation of another
# feature, so overlap costs less. Note that with values up to 3 the model can shrink a direction
# and grow the bias, so a norm threshold tuned for $[0, 1]$ needs care for other ranges.
#
# **Taking it further.** Measure the learned bias against the interference each feature receives;
# try a value distribution with a heavy tail.

# %% [markdown]
# ## Problem 7: a classification toy model (cross-entropy)
#
# With squared error each output must reproduce a value. With cross-entropy over "which feature is
# largest", an output only has to be the *largest*, which is a much weaker demand. Ten features, two
# dimensions, three sparsity levels: we compare the cross-entropy model (outputs are logits) with the
# usual squared-error model.

# %%
if MAIN:
    probability_ce = torch.tensor([0.3, 0.1, 0.02])[:, None]
    cfg_ce = ExperimentConfig(
        n_inst=3, n_features=10, d_hidden=2, output_activation=None, target="argmax", loss="cross_entropy"
    )
    model_ce = run_experiment(cfg_ce, probability_ce, steps=steps(1_000), batch_size=512, device=device)
    cfg_mse = ExperimentConfig(n_inst=3, n_features=10, d_hidden=2)
    model_mse = run_experiment(cfg_mse, probability_ce, steps=steps(1_000), batch_size=512, device=device)
    plot_features_in_2d(
        torch.cat([model_ce.W, model_mse.W]).detach(),
        titles=[f"{name}, p = {p:.2f}" for name in ("cross-entropy", "squared error") for p in probability_ce[:, 0]],
        title="10 features in 2D: cross-entropy (top) against squared error (bottom)",
        max_cols=3,
    )
    accuracy = model_ce.evaluate()["accuracy"].tolist()
    print(
        f"cross-entropy: accuracy {[f'{a:.2f}' for a in accuracy]}, features represented "
        f"{lab.n_represented(model_ce.W.detach()).int().tolist()}; squared error: features represented "
        f"{lab.n_represented(model_mse.W.detach()).int().tolist()}"
    )

# %% [markdown]
# **What we measured.** The cross-entropy model represented all ten features at every sparsity level,
# spread around the circle, while the squared-error model kept 4 or 5. Accuracy was 0.40, 0.79 and
# 0.96 from the densest to the sparsest instance: with one feature on, directions spaced around a
# circle are enough for the right logit to win, and the logit scale (the norm) can grow freely; with
# several features on at once, two dimensions are not enough to rank them. Norms are not comparable
# between the two losses, so compare the *angles*.
#
# **Taking it further.** Make several features active at once and ask for all of them (a multi-label,
# sigmoid cross-entropy): does the geometry go back to what squared error gives?

# %% [markdown]
# ## Summary
#
# * Dropout privileges the hidden basis, but pushes features *off* single neurons.
# * GELU gave higher losses than ReLU in the ReLU output model once features were sparse.
# * A curved function ($x^2$) claims several neurons per feature; $|x|$ needs exactly two.
# * Logic gates of dense binary inputs needed about a neuron per gate in our runs.
# * Frequency, value range and the loss all change which features share dimensions; with
#   cross-entropy, two dimensions held all ten features.
#
# Every experiment above is one call to `run_experiment`; change a field and run it again. More
# problems from the list that the lab supports directly: computation across several hidden layers
# (`n_hidden_layers`), `max_pairs` of uniform inputs, and non-uniform importance in the
# absolute-value model.
