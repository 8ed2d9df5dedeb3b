# %% [markdown]
# # Part 6b: circuits in the shipped model, with a transcoder and attribution graphs
#
# Part 6 found single SAE latents that a programmer can name. A latent on its own does not say how the
# model reaches a prediction: for that we need the paths from the input tokens, through the latents, to
# the output. This notebook builds those paths for the one-layer model of part 6, on a laptop CPU and
# offline, and checks every number along the way.
#
# Two ideas carry the section.
#
# * **A transcoder** replaces the MLP. An SAE reconstructs an activation from itself; a transcoder reads
#   the MLP's *input* and predicts the MLP's *output* through a wide, sparse layer of latents. Swap it in
#   for the MLP and the model now computes with latents we can read, instead of 512 polysemantic neurons.
# * **An attribution graph** traces one prediction. Freeze what is nonlinear in the model (the attention
#   patterns, the normalisation scales, which latents fire), and the rest is linear: every node's value
#   is a sum of contributions from the nodes before it. Those contributions are the
#   graph's edges. In a model with one layer the graph is small enough to check by hand.
#
# **What you will do**
# 1. Write the transcoder's forward pass, swap it in for the MLP, and measure the loss it recovers.
# 2. Read a latent without running the model: which input tokens drive it (de-embedding) and which next
#    tokens it promotes and suppresses (logit effect).
# 3. Build the local replacement model for one prompt, compute its attribution graph by gradient
#    injection, check that the edges add up, prune the graph by influence and draw it.
# 4. Build a dashboard per latent (density, examples at several activation levels, token views).
# 5. Trace real predictions of the model on Python source and say what the graphs show.
#
# The transcoder ships with the repository (`utils/artifacts/transcoder/`, 1 MB, trained by
# `python -m tools.train_transcoder` in 18 minutes on a busy two-core CPU, 6 minutes of CPU time); loading it
# checks the sha256 of every file against its manifest.

# %% [markdown]
# ## Imports

# %%
import functools

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from solutions.part6_lm_saes import top_activations  # part 6's exercise, reused for the dashboards
from utils import lm
from utils import part6b_circuits as circuits
from utils.device import get_device
from utils.runtime import FAST
from utils.transcoder import TRANSCODER_DIR, Transcoder, load_transcoder, manifest

MAIN = __name__ == "__main__"

if MAIN:
    import tests.part6b_circuits

    torch.set_grad_enabled(False)
    device = get_device()
    model = lm.load_model(device=device)
    tc = load_transcoder(device=device)  # raises if any file differs from the sha256 in its manifest
    tokens = lm.load_eval_tokens(device, n_seq=64 if FAST else 512)
    recorded = manifest()
    print(f"Running on {device}. Transcoder: {tc.hook_name} -> {tc.hook_name_out}, {tc.d_sae} latents,")
    print(f"  architecture {tc.architecture!r}, shared threshold {float(tc.threshold[0]):.3f}")
    print(f"  trained by: {recorded['command']} ({recorded['train_seconds'] / 60:.0f} min of training)")

# %% [markdown]
# ## The transcoder
#
# The model's block is `resid_mid = resid_pre + attn(resid_pre)`, then `resid_post = resid_mid +
# MLP(LN2(resid_mid))`. The MLP reads $x$ = `blocks.0.ln2.hook_normalized` (128 numbers per token) and
# writes `blocks.0.hook_mlp_out` (128 numbers, added to the residual stream). The transcoder `tc` maps
# the same $x$ to a prediction of the same output:
#
# $$\text{pre} = x W_{enc} + b_{enc}, \qquad f = \text{pre} \cdot \mathbb{1}[\text{pre} > \theta], \qquad
# \widehat{\text{out}} = f\, W_{dec} + b_{dec} + x\, W_{skip}^\top.$$
#
# The activation is a **JumpReLU**: a latent is either off or passes its pre-activation through unchanged,
# once it clears its threshold $\theta$ (`tc.threshold`, one number per latent). `tc.W_enc` is
# `[d_model d_sae]`, `tc.W_dec` is `[d_sae d_model]`. Unlike an SAE there is no $b_{dec}$ subtracted
# from the input: the input and the output live in different places. The last term is a linear *skip
# connection* (`tc.W_skip`, `[d_out d_in]`): the part of the MLP that is close to linear goes through it,
# and the latents are left with what is not. Not every transcoder has one (then `tc.W_skip is None`);
# your code should handle both.
#
# **How it was trained** (`tools/train_transcoder.py`): with part 5b's BatchTopK (each batch keeps its
# $k \cdot$batch largest pre-activations) plus part 5's AuxK loss against dead latents, on the MLP
# inputs and outputs of 6 000 training sequences (768 000 tokens, 32 768 of them held back to set the
# threshold). BatchTopK lets the number of active latents vary from
# token to token; after training it is turned into the JumpReLU above with one threshold shared by all
# latents, chosen so that the latents fire $k = 24$ times per token on average.
#
# **What SAELens did for us.** SAELens (installed with this section) has transcoders built in:
# the JumpReLU skip transcoder's on-disk format (`cfg.json` with both hook names, `sae_weights.safetensors`)
# is the one we ship, and its `HookedSAETransformer` can splice a transcoder into a TransformerLens
# model. It does not train transcoders, so the training loop is ours. At the end of the
# "replacement model" part we load the shipped folder with SAELens and compare, number for number.
#
# ### Exercise 1: `transcoder_forward`
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 10 minutes
#
# Write the forward pass from the weights (`tc.encode` and `tc.forward` exist, and later code uses them;
# here you write what they do). Return both the latent activations and the output.


# %%
def transcoder_forward(
    tc: Transcoder, x: Float[Tensor, "... d_in"]
) -> tuple[Float[Tensor, "... d_sae"], Float[Tensor, "... d_out"]]:
    """(acts, out): acts = pre · [pre > threshold] with pre = x W_enc + b_enc; out = acts W_dec + b_dec,
    plus x W_skipᵀ when tc.W_skip is not None. `threshold` has one entry per latent."""
    ### BEGIN SOLUTION
    pre = x @ tc.W_enc + tc.b_enc
    acts = torch.where(pre > tc.threshold, pre, torch.zeros_like(pre))
    out = acts @ tc.W_dec + tc.b_dec
    if tc.W_skip is not None:
        out = out + x @ tc.W_skip.T
    return acts, out
    ### END SOLUTION


# %%
if MAIN:
    tests.part6b_circuits.test_transcoder_forward(transcoder_forward)

# %% [markdown]
# ## The replacement model and its loss
#
# Splice the transcoder in: run the model, and at `tc.hook_name_out` replace the MLP's output by
# $\widehat{\text{out}}$, computed from the MLP input read at `tc.hook_name` earlier in the same pass.
# This is the **replacement model**. As in part 6 we measure it by the next-token loss, on the scale from
# "no MLP at all" (zero-ablated, 0%) to "the real MLP" (100%):
#
# $$\text{recovered} = \frac{L_{\text{zero}} - L_{\text{replaced}}}{L_{\text{zero}} - L_{\text{clean}}}.$$
#
# ### Exercise 2: `replacement_losses`
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 15 minutes
#
# The new part compared with part 6: the transcoder *reads* at one hook and *writes* at another. Hooks
# run in the order of the forward pass, so a hook on `tc.hook_name` can store the input in a dict and a
# hook on `tc.hook_name_out` can use it.
#
# <details><summary>Hint: two hooks</summary>
#
# ```python
# seen = {}
# def read(act, hook): seen["x"] = act
# def write(act, hook): return tc(seen["x"])
# model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(tc.hook_name, read), (tc.hook_name_out, write)])
# ```
# A hook that returns nothing leaves the activation as it was.
# </details>


# %%
def replacement_losses(model, tc: Transcoder, tokens: Int[Tensor, "batch seq"]) -> dict[str, float]:
    """Mean next-token loss clean, with the MLP output replaced by the transcoder's prediction (from the MLP
    input), and with the MLP output zero-ablated; plus the fraction of loss recovered.

    Returns {"clean": ..., "replaced": ..., "zero_ablated": ..., "recovered": ...} (floats).
    """
    ### BEGIN SOLUTION
    seen: dict[str, Tensor] = {}

    def read(act: Tensor, hook) -> None:
        seen["x"] = act

    def loss(hooks: list) -> float:
        return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()

    clean = loss([])
    replaced = loss([(tc.hook_name, read), (tc.hook_name_out, lambda act, hook: tc(seen["x"]))])
    zero = loss([(tc.hook_name_out, lambda act, hook: torch.zeros_like(act))])
    return {"clean": clean, "replaced": replaced, "zero_ablated": zero, "recovered": (zero - replaced) / (zero - clean)}
    ### END SOLUTION


# %%
if MAIN:
    tests.part6b_circuits.test_replacement_losses(replacement_losses)

# %%
if MAIN:
    losses = replacement_losses(model, tc, tokens[:128])
    print({k: round(v, 4) for k, v in losses.items()})
    metrics = recorded["metrics_on_shipped_eval_tokens"]
    print(
        f"On all {metrics['n_eval_tokens']:,} held-out tokens (from the manifest): loss recovered "
        f"{metrics['ce_loss_recovered']:.1%}, variance of the MLP output explained "
        f"{metrics['fraction_variance_explained']:.1%}, L0 {metrics['l0']:.1f}, "
        f"{metrics['dead_latents']} latents never fire.\nFor scale: the best affine map from MLP input to output "
        f"recovers {metrics['ce_loss_recovered_affine_baseline']:.1%}."
    )

# %% [markdown]
# Read the last line before celebrating. In this small model most of what the MLP does is close to
# linear: the best *affine* map from its input to its output, fitted by least squares, already recovers
# 86.8% of the loss. The transcoder, whose skip connection can learn that affine part, reaches 98.5%: its
# latents earn the difference. "Loss recovered" on its own flatters any replacement of an MLP that is
# mostly linear; compare with a linear baseline.
#
# ### The error term
#
# The replacement model is not the model: the transcoder misses part of the MLP's output. Call that part
# the **error**, $e = \text{MLP}(x) - \widehat{\text{out}}(x)$, one vector per position. Adding it back
# gives the model's own output exactly, whatever the transcoder is. In the attribution graph, each
# position's error becomes a node of its own: the part of the computation the graph does not explain.

# %%
if MAIN:
    sample = tokens[:16]
    seen = {}
    hooks = [
        (tc.hook_name, lambda act, hook: seen.__setitem__("x", act)),
        (tc.hook_name_out, lambda act, hook: seen.__setitem__("out", act)),
    ]
    clean_logits = model.run_with_hooks(sample, fwd_hooks=hooks)
    error = seen["out"] - tc(seen["x"])
    with_error = model.run_with_hooks(sample, fwd_hooks=[(tc.hook_name_out, lambda act, hook: tc(seen["x"]) + error)])
    print(f"replacement + error vs clean logits: largest difference {(with_error - clean_logits).abs().max():.2e}")
    relative = error[:, 1:].norm(dim=-1) / seen["out"][:, 1:].norm(dim=-1)
    print(f"error norm / MLP output norm per token: median {relative.median():.2f}, 90% {relative.quantile(0.9):.2f}")

# %% [markdown]
# SAELens reads the shipped folder as its own `JumpReLUSkipTranscoder`, with the same encoder, decoder,
# threshold and skip matrix, and its forward pass agrees with ours. Its `HookedSAETransformer` then runs
# the transcoder in place of the MLP. Compare its loss with ours on the same sequences:

# %%
if MAIN:
    from sae_lens import SAE, HookedSAETransformer

    theirs = SAE.load_from_disk(str(TRANSCODER_DIR), device=str(device))
    x = seen["x"][:4]
    print(
        f"SAELens: a {type(theirs).__name__}, largest difference from our forward {(theirs(x) - tc(x)).abs().max():.1e}"
    )
    hooked = HookedSAETransformer(model.cfg, tokenizer=model.tokenizer)
    hooked.load_state_dict(model.state_dict(), strict=False)
    hooked.add_sae(theirs)
    no_skip = Transcoder(tc.W_enc, tc.b_enc, tc.W_dec, tc.b_dec, tc.threshold)  # the same, without W_skip
    spliced = {
        "HookedSAETransformer": hooked(sample, return_type="loss").item(),
        "ours": replacement_losses(model, tc, sample)["replaced"],
        "ours without the skip term": replacement_losses(model, no_skip, sample)["replaced"],
    }
    print({name: round(loss, 4) for name, loss in spliced.items()})

# %% [markdown]
# With SAELens 6.54, the version this section was written with, the two losses differ, and SAELens's is
# exactly ours *without* the skip term: its wrapper calls the transcoder's `encode` and `decode` and not
# its `forward`, so the skip connection never runs. That is why this notebook splices with its own hooks.

# %% [markdown]
# ## Reading a latent without running the model
#
# A transcoder latent has two sides. Its encoder column $W_{enc}[:, i]$ says what it *reads* from the MLP
# input; its decoder row $W_{dec}[i]$ says what it *writes* into the residual stream. In a one-layer model
# both sides connect directly to tokens.
#
# * **De-embedding** (the input side). Token $t$'s embedding $W_E[t]$ is in the residual stream at its own
#   position. Follow it straight to the MLP input, skipping attention (the *direct path*): LN2 subtracts
#   the mean over `d_model` (our embeddings are already centred) and divides by a scale that depends on
#   the whole residual vector at that position, not on the latent. Up to that positive scale, token $t$
#   pushes latent $i$'s pre-activation by $W_E[t] \cdot W_{enc}[:, i]$. The tokens at the top of this list
#   are the ones that switch the latent on by themselves.
# * **Logit effect** (the output side). One unit of activation adds $W_{dec}[i]$ to the residual stream,
#   which goes straight to the unembedding: the logits move by $W_{dec}[i]\, W_U$ (up to the final
#   normalisation's scale). The transcoder writes into the residual stream, so there is no $W_{out}$
#   here, unlike part 6's SAE on the MLP neurons.
#
# ### Exercise 3: `latent_de_embedding` and `latent_logit_effect`
# > **Difficulty** 🔴⚪⚪⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 10 minutes
#
# `model.W_E` is `[d_vocab d_model]` and `model.W_U` is `[d_model d_vocab]`. Leave biases out: they are
# there whatever the token or the latent.


# %%
def latent_de_embedding(model, tc: Transcoder, latent: int) -> Float[Tensor, " d_vocab"]:
    """How much each token's embedding, through the direct path, drives `latent`'s pre-activation."""
    ### BEGIN SOLUTION
    return model.W_E @ tc.W_enc[:, latent]
    ### END SOLUTION


def latent_logit_effect(model, tc: Transcoder, latent: int) -> Float[Tensor, " d_vocab"]:
    """Direct effect on the logits of one unit of `latent`: its decoder row through the unembedding."""
    ### BEGIN SOLUTION
    return tc.W_dec[latent] @ model.W_U
    ### END SOLUTION


# %%
if MAIN:
    tests.part6b_circuits.test_latent_de_embedding(latent_de_embedding)

# %%
if MAIN:
    tests.part6b_circuits.test_latent_logit_effect(latent_logit_effect)

# %% [markdown]
# Our tokenizer writes `def __init__(` as ` def`, ` __`, `init`, `__(`. Take the latent that fires most
# strongly on that last token, `__(`, in a small example, and look at both sides.

# %%
if MAIN:
    example = model.to_tokens("class Point:\n    def __init__(self, x, y):\n        self.x = x\n")[0]
    labels = [circuits.visible(s) for s in lm.token_strings(model.tokenizer, example)]
    acts = tc.encode(circuits.freeze(model, tc, example).mlp_in)
    where = labels.index("__(")
    latent = int(acts[where].argmax())
    print(
        f"strongest latent on {labels[where]!r} (position {where}): #{latent}, "
        f"activation {float(acts[where, latent]):.2f}"
    )
    circuits.plot_token_views(
        latent_de_embedding(model, tc, latent),
        latent_logit_effect(model, tc, latent),
        model.tokenizer,
        title=f"Latent #{latent}: what drives it directly, and what it writes",
    )

# %% [markdown]
# <details><summary>Question: the de-embedding ignores attention. When is that a poor guide?</summary>
#
# When the latent is driven by *other* positions: a latent that fires on the token after `(` when the
# line started with `def` reads the earlier tokens through attention, and its de-embedding (one token,
# its own position) shows little. De-embedding finds "this token, here" latents; the attribution graph
# below sees the attention paths too.
# </details>

# %% [markdown]
# ## One prompt, frozen: the local replacement model
#
# Fix a prompt and run the model once. Three things in the model are nonlinear: the attention patterns
# (a softmax), the normalisation scales (a square root of a mean of squares) and the MLP. Replace the MLP
# by the transcoder plus that prompt's error vectors, and freeze the patterns, the scales and *which*
# latents fire at their values on this prompt. What is left is **affine** in the token embeddings:
#
# $$\begin{aligned}
# r_0[p] &= W_E[t_p] + W_{pos}[p] &&\text{(the token node at position } p\text{)}\\
# \text{LN}(v; s) &= (v - \text{mean}(v)) / s &&\text{(} s \text{ frozen)}\\
# a[q] &= \textstyle\sum_h \sum_k A_h[q, k]\,\big(\text{LN}(r_0[k]; s_1[k])\, W_V^h + b_V^h\big) W_O^h + b_O
#   &&(A_h \text{ frozen})\\
# r_1 &= r_0 + a, \qquad x = \text{LN}(r_1; s_2), \qquad \text{pre} = x W_{enc} + b_{enc}\\
# f &= \text{pre} \odot \text{active} &&\text{(active frozen)}\\
# r_2 &= r_1 + f W_{dec} + b_{dec} + x W_{skip}^\top + e &&(e \text{: the error, frozen})\\
# \text{logits} &= \text{LN}(r_2; s_f)\, W_U + b_U
# \end{aligned}$$
#
# This is the **local replacement model**: at this prompt it gives exactly the model's logits, and near
# it every quantity is a sum of contributions. `circuits.freeze(model, tc, prompt_tokens)` runs the model
# and returns a `FrozenRun` with `embeds` ($r_0$, `[seq d_model]`), `ln1_scale`, `ln2_scale`,
# `final_scale` (each `[seq 1]`), `pattern` (`[head seq seq]`, query by key), `active` (`[seq d_sae]`,
# bool), `acts`, `error` (`[seq d_model]`) and `logits`.
#
# ### Exercise 4: `linearised_forward`
# > **Difficulty** 🔴🔴🔴🔴⚪ · **Importance** 🔵🔵🔵🔵🔵 · about 30 minutes
#
# Compute the equations above for one prompt (no batch dimension). The model's weights are
# `model.W_V[0]` `[head d_model d_head]`, `model.b_V[0]` `[head d_head]`, `model.W_O[0]`
# `[head d_head d_model]`, `model.b_O[0]` `[d_model]`, `model.W_U`, `model.b_U`. Two optional arguments
# will let the attribution code inject its own values: when `latents` is given use it for $f$ instead of
# $\text{pre} \odot \text{active}$, and when `error` is given use it for $e$ instead of `frozen.error`.
# `tc.skip(x)` is the skip term $x W_{skip}^\top$ (zeros for a transcoder without one).
# Return the pre-activations (all latents, all positions) and the logits (all positions). Use only
# differentiable operations: the next exercise takes gradients through this function.
#
# <details><summary>Hint: attention with a frozen pattern</summary>
#
# `v = einops.einsum(x1, W_V, "k d, h d e -> h k e") + b_V[:, None]`, then
# `z = einops.einsum(pattern, v, "h q k, h k e -> h q e")` and
# `einops.einsum(z, W_O, "h q e, h e d -> q d") + b_O`.
# </details>
#
# <details><summary>Hint: frozen normalisation</summary>
#
# `(v - v.mean(-1, keepdim=True)) / scale` with `scale` from `frozen`, never recomputed from `v`.
# </details>


# %%
def linearised_forward(
    model,
    tc: Transcoder,
    frozen: circuits.FrozenRun,
    embeds: Float[Tensor, "seq d_model"],
    latents: Float[Tensor, "seq d_sae"] | None = None,
    error: Float[Tensor, "seq d_model"] | None = None,
) -> tuple[Float[Tensor, "seq d_sae"], Float[Tensor, "seq d_vocab"]]:
    """The local replacement model of `frozen`'s prompt, from the residual stream before the block `embeds`.

    Attention patterns and normalisation scales come from `frozen`; latent activations are
    pre ⊙ frozen.active (or `latents` if given); the error term is frozen.error (or `error` if given).
    Returns (pre-activations of every latent, logits), both for every position.
    """

    ### BEGIN SOLUTION
    def frozen_ln(v: Tensor, scale: Tensor) -> Tensor:
        return (v - v.mean(-1, keepdim=True)) / scale

    x1 = frozen_ln(embeds, frozen.ln1_scale)
    v = einops.einsum(x1, model.W_V[0], "k d, h d e -> h k e") + model.b_V[0][:, None]
    z = einops.einsum(frozen.pattern, v, "h q k, h k e -> h q e")
    resid_mid = embeds + einops.einsum(z, model.W_O[0], "h q e, h e d -> q d") + model.b_O[0]
    x = frozen_ln(resid_mid, frozen.ln2_scale)
    pre = x @ tc.W_enc + tc.b_enc
    f = pre * frozen.active if latents is None else latents
    mlp_out = f @ tc.W_dec + tc.b_dec + tc.skip(x) + (frozen.error if error is None else error)
    logits = frozen_ln(resid_mid + mlp_out, frozen.final_scale) @ model.W_U + model.b_U
    return pre, logits
    ### END SOLUTION


# %%
if MAIN:
    tests.part6b_circuits.test_linearised_forward(linearised_forward)

# %% [markdown]
# At the prompt itself the local replacement model is the model:

# %%
if MAIN:
    prompt = "    def __init__(self, name):\n        self.name = name\n        self."
    frozen = circuits.freeze(model, tc, model.to_tokens(prompt)[0])
    pre, logits = linearised_forward(model, tc, frozen, frozen.embeds)
    print(f"largest |logit difference| with the model: {(logits - frozen.logits).abs().max():.2e}")
    print(f"{len(frozen.tokens)} tokens; active latents per position: {frozen.active.sum(-1).tolist()}")

# %% [markdown]
# ## The attribution graph
#
# **Nodes.** One *token* node per position (its vector is $r_0[p]$), one *latent* node per active
# latent at each position (its value is its activation), one *error* node per position (its vector is
# $e[p]$), and one *logit* node for each of the top few predictions at the last position. The skip
# connection is linear, so it needs no node of its own: what flows through it is part of the token
# nodes' direct edges, like what flows through attention and the residual stream.
#
# **Edges.** The local replacement model is affine, so each target value $y$ (a latent's
# pre-activation, or a logit) is exactly a sum of one term per source node plus a constant $c_y$ that
# comes from the biases:
#
# $$y = \sum_{s} \underbrace{\frac{\partial y}{\partial s} \cdot s}_{\text{edge } s \to y} + c_y,$$
#
# where the derivative is taken with every *other* node held fixed. For a vector-valued node (token,
# error) the product is a dot product over `d_model`. "Every other node held fixed" matters: a token
# also reaches a logit *through* the latents, but that path is already counted by the token → latent and
# latent → logit edges. So the latents must enter the computation as inputs of their own, not as
# functions of the tokens.
#
# **Gradient injection.** All the edges into one target come from a single backward pass: make the
# token vectors, the active latents' activations and the error vectors leaf tensors that require
# gradients, run `linearised_forward` with `latents` and `error` built from those leaves, and call
# `torch.autograd.grad(y, leaves, retain_graph=True)`; each leaf's gradient times its value is the edge.
# One backward pass per target: a few hundred here, each on a tiny graph.
#
# ### Exercise 5: `attribution_edges`
# > **Difficulty** 🔴🔴🔴🔴⚪ · **Importance** 🔵🔵🔵🔵🔵 · about 30 minutes
#
# `graph = circuits.graph_nodes(frozen, tokenizer, n_logits)` fixes the node order: the active latents
# (`graph.latent_pos`, `graph.latent_idx`), then the error nodes, the token nodes and the logit nodes
# (`graph.logit_ids`, at the last position); `graph.nodes("latent")` and friends give each kind's slice.
# Return the square matrix `adjacency[target, source]` over all nodes. Rows of token and error nodes stay
# zero (nothing flows into them), and so do the columns of logit nodes.
#
# <details><summary>Hint: latents as leaves</summary>
#
# ```python
# values = frozen.acts[graph.latent_pos, graph.latent_idx].clone().requires_grad_(True)
# latents = torch.zeros_like(frozen.acts)
# latents[graph.latent_pos, graph.latent_idx] = values   # differentiable in `values`
# ```
# The notebook turned gradients off globally; wrap the work in `with torch.enable_grad():`.
# </details>
#
# <details><summary>Hint: the targets</summary>
#
# A latent target's value is its pre-activation `pre[pos, idx]` (equal to its activation, since it is
# active); a logit target's is `logits[-1, token_id]`.
# </details>


# %%
def attribution_edges(
    model, tc: Transcoder, frozen: circuits.FrozenRun, graph: circuits.AttributionGraph
) -> Float[Tensor, "n_nodes n_nodes"]:
    """adjacency[target, source]: the direct effect of each source node on each latent and logit target in
    the local replacement model (gradient times value, dot product over d_model for token and error nodes)."""
    ### BEGIN SOLUTION
    adjacency = torch.zeros(graph.n_nodes, graph.n_nodes, device=frozen.embeds.device)
    pos, idx = graph.latent_pos, graph.latent_idx
    with torch.enable_grad():
        embeds = frozen.embeds.detach().clone().requires_grad_(True)
        error = frozen.error.detach().clone().requires_grad_(True)
        values = frozen.acts[pos, idx].detach().clone().requires_grad_(True)
        latents = torch.zeros_like(frozen.acts)
        latents[pos, idx] = values
        pre, logits = linearised_forward(model, tc, frozen, embeds, latents, error)
        targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
        rows = torch.cat(
            [torch.arange(graph.n_nodes)[graph.nodes("latent")], torch.arange(graph.n_nodes)[graph.nodes("logit")]]
        )
        for row, target in zip(rows.tolist(), targets, strict=True):
            g_values, g_error, g_embeds = torch.autograd.grad(target, (values, error, embeds), retain_graph=True)
            adjacency[row, graph.nodes("latent")] = g_values * values.detach()
            adjacency[row, graph.nodes("error")] = (g_error * error.detach()).sum(-1)
            adjacency[row, graph.nodes("token")] = (g_embeds * embeds.detach()).sum(-1)
    return adjacency
    ### END SOLUTION


# %%
if MAIN:
    tests.part6b_circuits.test_attribution_edges(attribution_edges)

# %% [markdown]
# ### Completeness, checked
#
# Two checks that the edges mean what we say. **Completeness**: for every target, the edges into it plus
# its bias constant $c_y$ (the local replacement model's value with every token, latent and error set to
# zero) give back its value. **Direct computation**: an edge is what the target loses when its source is
# set to zero with everything else held fixed; for a latent into a logit it is even a closed formula,
# $f_s \, \big(W_{dec}[s] - \text{mean}\big) \cdot W_U[:, v] \,/\, s_f$. The given
# `circuits.completeness_gap` and `circuits.edge_by_ablation` take the local replacement model as a function
# `forward(frozen, embeds, latents, error)`: we hand them yours.


# %%
def attribution_graph(model, tc: Transcoder, prompt: str, n_logits: int = 5):
    """The attribution graph of `prompt` (given): (graph with adjacency, frozen run)."""
    frozen = circuits.freeze(model, tc, model.to_tokens(prompt)[0])
    graph = circuits.graph_nodes(frozen, model.tokenizer, n_logits)
    graph.adjacency = attribution_edges(model, tc, frozen, graph)
    return graph, frozen


if MAIN:
    graph, frozen = attribution_graph(model, tc, prompt)
    forward = functools.partial(linearised_forward, model, tc)  # forward(frozen, embeds, latents, error)
    gap = circuits.completeness_gap(forward, frozen, graph)
    print(f"{graph.n_nodes} nodes ({graph.n_latents} latents); largest completeness gap {gap.abs().max():.2e}")
    top = graph.nodes("logit").start  # the top prediction's node
    s = int(graph.adjacency[top, graph.nodes("latent")].abs().argmax())  # latents come first: a node index
    d = tc.W_dec[graph.latent_idx[s]]
    formula = frozen.acts[-1, graph.latent_idx[s]] * (d - d.mean()) @ model.W_U[:, graph.logit_ids[0]]
    for node in (s, graph.nodes("token").start + 3, graph.nodes("error").stop - 1):
        closed = f", formula {float(formula / frozen.final_scale[-1, 0]):+.4f}" if node == s else ""
        print(
            f"edge {graph.label(node)} -> {graph.label(top)}: gradient {float(graph.adjacency[top, node]):+.4f}, "
            f"ablation {circuits.edge_by_ablation(forward, frozen, graph, node, top):+.4f}{closed}"
        )

# %% [markdown]
# <details><summary>Question: only the last position's latents have edges into the logits. Why?</summary>
#
# In this model the MLP comes *after* attention, and it is the last thing in the block: what the MLP
# writes at position $p$ only ever reaches the logits at position $p$. Latents at earlier positions
# cannot affect the next-token prediction at the end at all; their edges into the logits are exactly
# zero, and pruning removes them. In a deeper model they would reach later positions through the next
# layers' attention, and the graph would have many more paths.
# </details>

# %% [markdown]
# ## Pruning by influence
#
# Even this small graph has hundreds of nodes and thousands of edges, most of them negligible for the
# prediction. To keep what matters, measure each node's **influence** on the logits, counting every path.
#
# 1. Work with magnitudes and make each node's incoming edges fractions: $\hat A = |A|$, each row divided
#    by its sum (rows with no incoming edges stay zero). $\hat A[t, s]$ is then the share of $t$'s input
#    that comes from $s$.
# 2. Paths of length $\ell$ are products: $\hat A^\ell[t, s]$ sums the shares along every path of $\ell$
#    edges from $s$ to $t$. The graph has no cycles, so $\hat A$ is nilpotent and the sum over all lengths
#    is finite: $B = \hat A + \hat A^2 + \dots = (I - \hat A)^{-1} - I$.
# 3. Weight each logit node by its probability (a vector $w$, zero off the logit nodes): a node's
#    influence is $(w B)[s] = \sum_t w_t B[t, s]$.
#
# ### Exercise 6: `node_influence`
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 15 minutes
#
# <details><summary>Hint</summary>
#
# `torch.linalg.solve` or `torch.linalg.inv` on `torch.eye(n) - A_hat`; `clamp_min` keeps the empty
# rows from dividing by zero.
# </details>


# %%
def node_influence(
    adjacency: Float[Tensor, "n_nodes n_nodes"], logit_weights: Float[Tensor, " n_nodes"]
) -> Float[Tensor, " n_nodes"]:
    """Each node's influence on the weighted logits through paths of every length, with |adjacency| rows
    normalised to sum to 1 (adjacency[target, source]; zero rows stay zero)."""
    ### BEGIN SOLUTION
    a_hat = adjacency.abs()
    a_hat = a_hat / a_hat.sum(-1, keepdim=True).clamp_min(1e-12)
    eye = torch.eye(len(a_hat), device=a_hat.device, dtype=a_hat.dtype)
    paths = torch.linalg.inv(eye - a_hat) - eye
    return logit_weights @ paths
    ### END SOLUTION


# %%
if MAIN:
    tests.part6b_circuits.test_node_influence(node_influence)

# %% [markdown]
# `circuits.prune` keeps every token and logit node, then the most influential latent and error nodes
# until they hold 80% of the influence (at most 30 nodes in all), and `circuits.plot_attribution_graph`
# draws the result: tokens at the bottom, latents and errors in the middle, predictions on top; edge
# width is proportional to the weight, blue edges excite and red ones inhibit. Hover over a node for its
# influence and a short description of the latent (the tokens it promotes and the tokens that drive it);
# hover over the middle of an edge for its weight.


# %%
def describe(latent: int) -> str:
    """A one-line description of a latent from its token views (given)."""
    views = (latent_de_embedding(model, tc, latent), latent_logit_effect(model, tc, latent))
    return circuits.describe_latent(*views, model.tokenizer)


def show_graph(graph: circuits.AttributionGraph, title: str) -> Tensor:
    """Influence, pruning and the figure for one graph (given); returns the influence of every node."""
    influence = node_influence(graph.adjacency, circuits.logit_weights(graph))
    circuits.show_pruned_graph(graph, influence, describe, title, node_threshold=0.8, max_nodes=30)
    return influence


if MAIN:
    influence = show_graph(graph, f"Attribution graph of {circuits.visible(prompt[-30:])!r}")
    last = graph.nodes("latent").start + (graph.latent_pos == graph.n_pos - 1).nonzero().flatten()
    totals = {kind: float(influence[graph.nodes(kind)].sum()) for kind in ("latent", "token", "error")}
    print(
        f"influence of the latents at the last position {float(influence[last].sum()):.3f}, of all latents "
        f"{totals['latent']:.3f}, of the token nodes {totals['token']:.3f}, of the error nodes {totals['error']:.3f}"
    )

# %% [markdown]
# ## A dashboard per latent
#
# The graph names latents by number; to know what a latent *is*, look at it from every side at once, as
# the field's latent dashboards do: how often and how strongly it fires, the token views above, and
# examples of it firing. Top examples alone mislead: they show the latent at its most extreme, which can
# be a different story from its typical firing. So we also show examples from lower bands of activation.
#
# ### Exercise 7: `quantile_examples`
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 15 minutes
#
# Given one latent's activations `acts` `[n_seq seq]` on the dataset, split $(0, m]$, where $m$ is the
# largest activation at positions $\ge 1$, into `n_bands` equal bands, and return one group per band,
# from the highest band to the lowest. Band $j$ (counting from the top, $j = 0, 1, \dots$) holds the
# activations $a$ with $m \frac{n - j - 1}{n} < a \le m \frac{n - j}{n}$; from it take the `k` examples
# whose activation is closest to the band's middle (fewer if the band has fewer), and return them as
# `(values, seq_idx, pos_idx)` sorted by decreasing activation. Position 0 (BOS) never counts, and an
# activation of 0 is not firing.
#
# <details><summary>Hint</summary>
#
# Flatten a copy of `acts` with position 0 set to 0; for each band, `in_band = (a > lo) & (a <= hi)`,
# then `torch.where(in_band, (a - middle).abs(), inf).topk(min(k, n_in_band), largest=False)`, then sort
# the chosen ones by value. A flat index $i$ is position `i % seq` of sequence `i // seq`.
# </details>


# %%
def quantile_examples(
    acts: Float[Tensor, "n_seq seq"], k: int, n_bands: int = 4
) -> list[tuple[Float[Tensor, " k"], Int[Tensor, " k"], Int[Tensor, " k"]]]:
    """For each of n_bands equal bands of (0, max] (highest first), the <= k examples closest to the band's
    middle, as (values, seq_idx, pos_idx) sorted by decreasing value; position 0 excluded."""
    ### BEGIN SOLUTION
    flat = acts.clone()
    flat[:, 0] = 0
    flat = flat.flatten()
    top = flat.max()
    groups = []
    for j in range(n_bands):
        lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
        in_band = (flat > lo) & (flat <= hi)
        n = min(k, int(in_band.sum()))
        distance = torch.where(in_band, (flat - (lo + hi) / 2).abs(), torch.full_like(flat, float("inf")))
        chosen = distance.topk(n, largest=False).indices
        chosen = chosen[flat[chosen].argsort(descending=True)]
        groups.append((flat[chosen], chosen // acts.shape[1], chosen % acts.shape[1]))
    return groups
    ### END SOLUTION


# %%
if MAIN:
    tests.part6b_circuits.test_quantile_examples(quantile_examples)

# %% [markdown]
# The dashboard puts it together: the header gives the firing frequency and the largest activation; the
# orange histogram is the distribution of the activation when it fires; the three tables are the
# de-embedding and the logit effect; then the top examples (from part 6's `top_activations`) and the
# bands. In the examples, each token's background shows the latent's activation there relative to its
# largest anywhere, and the example's own token is outlined. `circuits.save_dashboards` writes the same
# HTML to a standalone file (no scripts, no network).
#
# We keep every MLP input of the dataset (65 000 tokens × 128 numbers, 33 MB): any one latent's
# activations are then one matrix-vector product away.


# %%
def dashboard(latent: int, k: int = 5) -> str:
    """The HTML dashboard of one latent on the held-out tokens (given)."""
    acts = tc.encode_one(x_all, latent)  # the latent's activation everywhere, without the other latents
    groups = [("top activations", top_activations(acts, k))]
    groups += zip(circuits.band_titles(4), quantile_examples(acts, k=3, n_bands=4), strict=True)
    views = (latent_de_embedding(model, tc, latent), latent_logit_effect(model, tc, latent))
    return circuits.dashboard_html(latent, acts, tokens, model.tokenizer, *views, groups)


if MAIN:
    x_all = lm.hook_activations(model, tc.hook_name, tokens)
    top_latents = graph.latent_idx.cpu()[influence[graph.nodes("latent")].topk(2).indices.cpu()].tolist()
    for latent in top_latents:
        circuits.show_html(dashboard(latent))

# %% [markdown]
# ## A guided hunt: `def __init__(`, `self.` and `except Import`
#
# Now trace three real predictions. For each prompt, `trace` prints the model's top predictions and how the
# top logit splits, draws the pruned graph, and lists the most influential latents with their edge into the
# top prediction and the token nodes that feed them most.


# %%
def trace(prompt: str, n_latents: int = 4) -> tuple[circuits.AttributionGraph, Tensor]:
    """Graph, figure and a printed summary of the most influential latents for `prompt` (given)."""
    graph, frozen = attribution_graph(model, tc, prompt)
    influence = show_graph(graph, f"Why {graph.logit_labels[0]!r} after {circuits.visible(prompt[-24:])!r}")
    print(circuits.summarise(graph, frozen, influence, describe, n_latents))
    return graph, influence


if MAIN:
    graph_init, influence_init = trace("class Cache:\n    def __init__(")

# %% [markdown]
# **`def __init__(` → `self` (92%).** The logit of `self` (14.4) splits into +7.1 from latents, +6.1
# straight from the tokens (through the residual stream, attention and the skip connection), -0.3 from the
# error and +1.5 from biases. The pruned graph keeps ten latents, all on the last token `__(`, and each of
# the top four is fed by two tokens: `__(` itself, directly, and ` def` three positions back, through
# attention. Three of them have `self` among the three tokens they promote most (the other pushes `,` and
# ` name`). So the graph shows a skip-trigram computed in two steps: attention brings "this line started
# with `def`" to the bracket, and latents that need both the bracket and that context write "first
# parameter". Note #1018: its de-embedding (` oper`, ` co`, ...) says nothing, because what drives it is
# ` def` at another position, which the direct path cannot see; the graph can.

# %%
if MAIN:
    prompt_self = "    def __init__(self, name, size):\n        self.name = name\n        self."
    graph_self, influence_self = trace(prompt_self)
    probs = model(model.to_tokens(prompt_self))[0, -1].softmax(-1)
    for word in ("size", "name"):
        i = model.to_single_token(word)
        print(f"P({word!r}) = {float(probs[i]):.2%}, rank {int((probs > probs[i]).sum()) + 1}")

# %% [markdown]
# **`self.` after storing one argument.** A programmer expects `size`, the argument not stored yet. The
# model does not: it spreads its bet over attribute names it saw often, `tk` first (6%; `self.tk` is all
# over the standard library's `tkinter`), then `w`, `st`, `re`, `can`, and gives `size` under half a
# percent. The graph says why in its own terms. The influential latents sit on the final `.`, are fed mostly
# by `.`, the indentation token and ` self`, and promote generic method names (`split`, `strip`, `append`;
# `process`, `read`, `close`). No path carries the identity of `size` to the end: copying an earlier name
# takes induction, which a one-layer model barely has. Each latent's influence is small (under 0.01)
# because the prediction itself is spread thin. A graph shows the computation the model does, not the one
# we hoped for.

# %%
if MAIN:
    graph_error, influence_error = trace("try:\n    import json\nexcept Import")

# %% [markdown]
# **`except Import` → `Error` (96%).** Here most of the logit (+11.3 of 14.9) comes straight from the
# tokens, and most of that from `mport` itself (+8.9): a bigram the model stores in its weights and reaches
# without any latent. Two latents, #1977 and #452, both switched on by `mport`, add +2.3 and survive
# pruning. The graph separates what is memorised per token (direct edges) from what is computed from
# context (paths through latents).
#
# **What the graphs show, honestly.** In a one-layer model every graph has the same shape: tokens feed
# latents at the last position (directly or through attention), and latents and tokens feed the logits.
# The error nodes are small here (the transcoder explains 95% of the MLP output's variance): they move the
# top logit by -0.3, -0.03 and -0.5 in the three graphs. What a graph cannot show: why attention looks
# where it does (the patterns are frozen inputs), how the prediction would change on another prompt, or
# what a latent means beyond its dashboard. Those need interventions (part 6) and more prompts.
#
# ## Summary
#
# * A transcoder replaces an MLP by a sparse layer that reads the MLP's input and writes its output; its
#   error term is what it misses. Judge its loss recovered against a linear baseline, not alone.
# * De-embedding and logit effects read a latent from its weights alone, through the direct paths.
# * Freezing attention patterns, normalisation scales and the set of active latents makes the model affine
#   around one prompt. The attribution graph's edges are then exact: they add up to each node's value
#   (completeness), agree with zeroing a source, and come from one backward pass per target.
# * Influence through paths of every length prunes the graph to what matters for the prediction, and
#   dashboards that show a latent at every activation level say what the remaining latents are.
