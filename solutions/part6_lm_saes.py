# %% [markdown]
# # Part 6: SAEs in a language model
#
# In part 5 an SAE recovered the known features of a toy model. In a real language model nobody hands
# us the features: the SAE is how we look for them. This notebook uses a real (small) transformer
# and an SAE trained on its MLP activations, both shipped with the repository, so everything runs
# offline on a laptop CPU.
#
# **The model.** A one-layer transformer (attention, then an MLP with 512 GELU neurons, 128-dim
# residual stream) trained for half an hour on one CPU thread, on the Python standard library's own
# source code, with a 2048-token byte-level BPE tokenizer. Its training script measured a next-token
# loss of 3.13 nats on held-out files, where a bigram model gets 3.85. Python code is full of features a
# programmer recognises at a glance: being inside a string, a name right after `def`, an attribute
# after `self.`, an open bracket.
# `python -m tools.train_lm` rebuilds it from scratch (the data is on every machine with Python).
#
# **The SAE.** Section 5's `ToySAE` (ReLU, L1 penalty, resampling), trained by
# `python -m tools.train_lm_sae` on the MLP's post-GELU activations `blocks.0.mlp.hook_post`, with
# 1024 latents, saved in SAELens's on-disk format. On the held-out tokens about 33 latents are active
# per token (L0), it explains 77% of the activations' variance, and spliced into the model it keeps
# 91% of the MLP's effect on the loss (you will measure these yourself).
#
# **What you will do**
# 1. Measure how often each latent fires, and find the dead and dense ones.
# 2. Splice the SAE into the model and see how much of the MLP's contribution to the loss it keeps.
# 3. Find a latent's max-activating examples and read them in context.
# 4. Compute a latent's direct effect on the logits.
# 5. Steer the model with a latent, and ablate a latent, and watch the predictions change.
# 6. Hunt for interpretable latents: strings, `def`, `self.`, brackets.
#
# With a network, the same functions load a public model and SAE (see the last section).

# %% [markdown]
# ## Imports

# %%
import collections

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from utils import lm
from utils import part6_lm_saes as figures
from utils.device import get_device
from utils.runtime import FAST

MAIN = __name__ == "__main__"

if MAIN:
    import tests.part6_lm_saes

    torch.set_grad_enabled(False)
    device = get_device()
    model = lm.load_model(device=device)
    sae = lm.load_sae(device=device)
    tokens = lm.load_eval_tokens(device, n_seq=64 if FAST else 512)
    print(f"Running on {device}: d_mlp={model.cfg.d_mlp}, d_vocab={model.cfg.d_vocab}, d_sae={sae.d_sae}")
    print(f"{tokens.shape[0]} held-out sequences of {tokens.shape[1]} tokens, e.g.:")
    print(model.tokenizer.decode(tokens[0, 1:60]))

# %% [markdown]
# ## The pieces
#
# `model` is a TransformerLens `HookedTransformer`. Every intermediate activation has a *hook point*
# with a name; `model.run_with_cache(tokens, names_filter=name)` returns them, and
# `model.run_with_hooks(tokens, fwd_hooks=[(name, fn)])` lets `fn(activation, hook)` read or replace one.
#
# `sae` reads the activations at `sae.hook_name` (here `"blocks.0.mlp.hook_post"`, shape
# `[batch seq d_mlp]`) and has `W_enc: [d_mlp d_sae]`, `W_dec: [d_sae d_mlp]` (unit rows), `b_enc`,
# `b_dec`, and
#
# $$f(x) = \mathrm{ReLU}\big((x - b_{dec}) W_{enc} + b_{enc}\big), \qquad \hat x = f(x)\, W_{dec} + b_{dec},$$
#
# as `sae.encode(x)` and `sae.decode(f)`. `tokens` are sequences from standard-library files the model
# never trained on; position 0 of every row is the BOS token. BOS activations are outliers (the model
# uses that position as a resting place), so we leave position 0 out of every statistic.

# %% [markdown]
# ## Feature density
#
# ### Exercise 1: `latent_frequencies`
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 10 minutes
#
# The first health check of any SAE: on what fraction of tokens does each latent fire (activation
# $> 0$)? A **dead** latent never fires: wasted capacity. A **dense** latent fires on a large
# fraction of tokens (we say more than 10%): it is rarely interpretable, and often means the
# sparsity penalty is too weak. The healthy bulk sits somewhere between $10^{-4}$ and $10^{-1}$.
#
# Compute the frequencies over every position except 0, processing `tokens` in batches of
# `batch_size` sequences (a full dataset would not fit in memory at once).
#
# <details><summary>Hint: getting the activations</summary>
#
# `_, cache = model.run_with_cache(batch, names_filter=sae.hook_name)` and then
# `cache[sae.hook_name]` is `[batch seq d_mlp]`. Encode it with `sae.encode`.
# </details>
#
# <details><summary>Hint: the average</summary>
#
# Keep a running count of firing per latent and the number of tokens seen, and divide at the end.
# Drop position 0 with `[:, 1:]`.
# </details>


# %%
def latent_frequencies(model, sae, tokens: Int[Tensor, "n_seq seq"], batch_size: int = 32) -> Float[Tensor, " d_sae"]:
    """Fraction of tokens (positions 1 onwards, all sequences) on which each SAE latent is > 0.

    Process `tokens` in batches of `batch_size` sequences. Returns a float tensor [d_sae] in [0, 1].
    """
    ### BEGIN SOLUTION
    counts = torch.zeros(sae.d_sae, device=sae.W_enc.device)
    n_tokens = 0
    for start in range(0, tokens.shape[0], batch_size):
        _, cache = model.run_with_cache(tokens[start : start + batch_size], names_filter=sae.hook_name)
        acts = sae.encode(cache[sae.hook_name][:, 1:])
        counts += (acts > 0).float().sum(dim=(0, 1))
        n_tokens += acts.shape[0] * acts.shape[1]
    return counts / n_tokens
    ### END SOLUTION


# %%
if MAIN:
    tests.part6_lm_saes.test_latent_frequencies(latent_frequencies)

# %% [markdown]
# The histogram uses a log scale: frequencies span several orders of magnitude. Dead latents have
# frequency 0, which has no logarithm; they are counted in the subtitle instead.

# %%
if MAIN:
    freqs = latent_frequencies(model, sae, tokens)
    n_dead, n_dense = int((freqs == 0).sum()), int((freqs > 0.1).sum())
    print(f"dead latents: {n_dead} / {sae.d_sae}, dense (> 10% of tokens): {n_dense}")
    figures.plot_density_histogram(freqs, title="Latent firing frequency on held-out tokens")

# %% [markdown]
# The histogram has two humps. The right one, between 1% and 15% of tokens, is the bulk of the SAE. The
# left one, far below it, is a separate group of latents that fire on one to a few dozen of the 65 000
# tokens. Rare
# is not bad in itself (a latent for a rare construct *should* be rare), so look before judging. The
# cell below keeps the MLP activations of the whole dataset (about 130 MB; we reuse them later) and
# compares the two groups.

# %%
if MAIN:
    h_all = lm.hook_activations(model, sae.hook_name, tokens)  # [n_seq seq d_mlp]
    acts_all = sae.encode(h_all[:, 1:]).flatten(0, 1)  # [tokens d_sae], positions >= 1
    rare = (freqs > 0) & (freqs < 10**-2.5)  # the left hump: fewer than 1 token in 300
    bulk = freqs >= 10**-2.5
    max_act = acts_all.amax(0)
    fires_in = (acts_all[:, rare] > 0).reshape(h_all.shape[0], -1, int(rare.sum())).any(1)  # [n_seq rare]
    top_sequences = fires_in.float().sum(1).topk(10).indices
    firings = (acts_all[:, rare] > 0).reshape(h_all.shape[0], -1, int(rare.sum())).sum((1, 2))
    enc = torch.nn.functional.normalize(sae.W_enc[:, rare], dim=0)
    enc_cos = (enc.T @ enc).fill_diagonal_(-1).amax(1)
    h_body = h_all[:, 1:]
    relative_error = ((sae(h_body) - h_body).pow(2).sum(-1) / h_body.pow(2).sum(-1)).mean(1)  # [n_seq]
    print(
        f"left hump: {int(rare.sum())} latents ({rare.float().mean():.0%}); right hump: {int(bulk.sum())}\n"
        f"largest activation (median over latents): left {max_act[rare].median():.2f}, "
        f"right {max_act[bulk].median():.2f}\n"
        f"share of the left hump's firings in the 10 sequences where most of them fire: "
        f"{firings[top_sequences].sum() / firings.sum():.0%}\n"
        f"encoder cosine with the most similar latent of the left hump (median): {enc_cos.median():.2f}\n"
        f"relative reconstruction error: {relative_error[top_sequences].mean():.2f} in those 10 sequences, "
        f"{relative_error.mean():.2f} on average"
    )
    print("one of those sequences:", repr(model.tokenizer.decode(tokens[int(top_sequences[0]), 1:60])))

# %% [markdown]
# So the left hump is not a set of rare concepts: its latents fire weakly (their largest activation is a
# small fraction of a typical latent's), mostly on the same few sequences, the character-name tables of
# the `encodings/` package, and their encoder directions are near copies of each other. The SAE
# reconstructs those tables worse than average (about 1.5 times the average relative error, printed
# above), and the training
# script's resampling (section 5's advanced resampling) re-initialises dead latents towards badly
# reconstructed inputs. Many latents were sent towards the same inputs, and they
# never grew into anything else. They cost capacity just as dead latents do; a longer run, or resampling
# that avoids duplicates, would put them to use.
#
# <details><summary>Question: a latent never fires on these 65 000 tokens. Is it certainly dead?</summary>
#
# No: it might fire on something rare that this sample lacks (a latent with frequency $10^{-5}$ is
# absent from 65 000 tokens about half the time). "Dead" is always relative to a sample. With
# resampling during training, truly dead latents are rare; the ones you see here may be very rare ones.
# </details>

# %% [markdown]
# Two more numbers every SAE report gives: **L0**, the mean number of active latents per token, and the
# **fraction of variance explained** by the reconstruction, $1 - \sum \lVert x - \hat x \rVert^2 /
# \sum \lVert x - \bar x \rVert^2$ (section 5 defined both). Here they are over every held-out token.

# %%
if MAIN:
    h_flat = h_all[:, 1:].flatten(0, 1)
    l0 = (acts_all > 0).float().sum(-1).mean()
    fve = 1 - (sae.decode(acts_all) - h_flat).pow(2).sum() / (h_flat - h_flat.mean(0)).pow(2).sum()
    print(f"L0 = {l0:.1f} active latents per token (of {sae.d_sae}); variance explained {fve:.1%}")

# %% [markdown]
# ## Reconstruction: does the SAE keep what the model uses?
#
# A small reconstruction error can still hide a large change in behaviour, if the error lands on the
# directions the model relies on. The test that matters is downstream: replace the MLP activations by
# the SAE's reconstruction (*splice* it in) and measure the next-token loss.
#
# * **clean**: the model as it is;
# * **spliced**: the activations at `sae.hook_name` replaced by $\hat x$;
# * **zero-ablated**: the same activations replaced by zeros (the MLP switched off).
#
# The **loss recovered** puts the spliced loss on the scale from "no MLP" (0) to "the real MLP" (1):
#
# $$\text{recovered} = \frac{L_{\text{zero}} - L_{\text{spliced}}}{L_{\text{zero}} - L_{\text{clean}}}.$$
#
# ### Exercise 2: `reconstruction_losses`
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 15 minutes
#
# Use the model's own loss: `model.run_with_hooks(tokens, return_type="loss", fwd_hooks=...)`, the
# mean cross-entropy over every predicted position. Return plain floats.
#
# <details><summary>Hint: a hook that replaces an activation</summary>
#
# A hook function receives `(activation, hook)` and, if it returns a tensor, that tensor replaces the
# activation: `lambda act, hook: sae.decode(sae.encode(act))`. A hook that returns nothing changes nothing.
# TransformerLens passes the second argument by keyword, so it must be called `hook`.
# </details>


# %%
def reconstruction_losses(model, sae, tokens: Int[Tensor, "batch seq"]) -> dict[str, float]:
    """Cross-entropy (mean over predicted positions) clean, with the SAE spliced in at sae.hook_name,
    and with that activation zero-ablated; plus the fraction of loss recovered.

    Returns {"clean": ..., "spliced": ..., "zero_ablated": ..., "recovered": ...} (floats).
    """

    ### BEGIN SOLUTION
    def loss(hook_fn=None) -> float:
        hooks = [(sae.hook_name, hook_fn)] if hook_fn is not None else []
        return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()

    clean = loss()
    spliced = loss(lambda act, hook: sae.decode(sae.encode(act)))
    zero = loss(lambda act, hook: torch.zeros_like(act))
    return {"clean": clean, "spliced": spliced, "zero_ablated": zero, "recovered": (zero - spliced) / (zero - clean)}
    ### END SOLUTION


# %%
if MAIN:
    tests.part6_lm_saes.test_reconstruction_losses(reconstruction_losses)

# %% [markdown]
# A few hundred sequences at once would make a large logits tensor, so we run the function on chunks of
# 128 sequences (each chunk predicts the same number of tokens, so the mean of the chunks' losses is the
# loss over all of them).

# %%
if MAIN:
    chunks = [reconstruction_losses(model, sae, chunk) for chunk in tokens.split(128)]
    losses = {k: sum(c[k] for c in chunks) / len(chunks) for k in ("clean", "spliced", "zero_ablated")}
    losses["recovered"] = (losses["zero_ablated"] - losses["spliced"]) / (losses["zero_ablated"] - losses["clean"])
    print({k: round(v, 4) for k, v in losses.items()})
    figures.plot_losses(
        {k: losses[k] for k in ("clean", "spliced", "zero_ablated")},
        title=f"Next-token loss on held-out code: the SAE recovers {losses['recovered']:.1%} of the MLP's effect",
    )

# %% [markdown]
# <details><summary>Question: why compare with zero ablation and not with the clean loss alone?</summary>
#
# "The loss went up by 0.1 nats" means little without a scale: for an MLP that barely matters 0.1
# might be all of its contribution. Zero-ablation measures what the MLP is worth, so the ratio reads
# as "how much of the MLP's work survives the SAE". Mean-ablation (replacing by the average
# activation) is a gentler baseline some papers use; it gives a smaller denominator.
# </details>

# %% [markdown]
# ## Max-activating examples
#
# The standard first look at a latent: the tokens where it fires hardest, each shown with the text
# before it. If those contexts share something a human can name, that is a hypothesis for what the
# latent represents (to be tested, not trusted).
#
# ### Exercise 3: `top_activations`
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 10 minutes
#
# Given one latent's activations on a dataset, `acts: [n_seq seq]`, return the `k` largest values
# over all (sequence, position) pairs with position $\ge 1$, in decreasing order, with their
# sequence and position indices. Write it for any real values, negative ones included: the same
# ranking is useful on pre-activations or on differences of activations, so position 0 must lose to
# every real entry.
#
# <details><summary>Hint</summary>
#
# Flatten, `topk`, and turn each flat index back into (sequence, position) with `divmod` by the
# sequence length (or `torch.unravel_index`). To skip position 0, set it to `-inf` in a copy first.
# </details>


# %%
def top_activations(
    acts: Float[Tensor, "n_seq seq"], k: int
) -> tuple[Float[Tensor, " k"], Int[Tensor, " k"], Int[Tensor, " k"]]:
    """The k largest entries of acts (any real values) at positions >= 1, largest first: (values, seq_idx, pos_idx)."""
    ### BEGIN SOLUTION
    masked = acts.clone()
    masked[:, 0] = -float("inf")
    values, flat = masked.flatten().topk(k)
    return values, flat // acts.shape[1], flat % acts.shape[1]
    ### END SOLUTION


# %%
if MAIN:
    tests.part6_lm_saes.test_top_activations(top_activations)

# %% [markdown]
# With the MLP activations of the whole dataset kept (`h_all`, above), any latent's activations are one
# matrix-vector product away. Here are the top examples of the most frequent non-dense latent. Hover over a
# token to see the latent's value there; the outlined token is the max.


# %%
def latent_acts(h: Float[Tensor, "n_seq seq d_in"], sae, latent: int) -> Float[Tensor, "n_seq seq"]:
    """One latent's activation everywhere (given): the `latent` column of sae.encode(h), without the rest."""
    return torch.relu((h - sae.b_dec) @ sae.W_enc[:, latent] + sae.b_enc[latent])


def show_top_examples(latent: int, k: int = 10, title: str = "") -> None:
    """Max-activating examples of `latent` on the held-out tokens, as highlighted HTML (given)."""
    acts = latent_acts(h_all, sae, latent)
    _, seq_idx, pos_idx = top_activations(acts, k)
    title = title or f"latent {latent}: top {k} activations (frequency {freqs[latent]:.2%})"
    figures.show_html(figures.max_activating_html(model.tokenizer, tokens, acts, seq_idx, pos_idx, title=title))


def top_tokens(latent: int, k: int = 20) -> str:
    """The tokens the latent's k strongest activations sit on, most common first (given)."""
    _, seq_idx, pos_idx = top_activations(latent_acts(h_all, sae, latent), k)
    pairs = zip(seq_idx.tolist(), pos_idx.tolist(), strict=True)
    counts = collections.Counter(repr(model.tokenizer.decode([int(tokens[s, p])])) for s, p in pairs)
    return ", ".join(f"{token} ×{n}" for token, n in counts.most_common(4))


if MAIN:
    candidates = torch.where(freqs < 0.1, freqs, torch.zeros_like(freqs))
    show_top_examples(int(candidates.argmax()))

# %% [markdown]
# ## A latent's direct effect on the logits
#
# A one-layer model is simple enough to follow a latent all the way to the output. When latent $i$
# fires with activation $f_i$, the MLP activations move by $f_i\, d_i$ ($d_i$ is row $i$ of
# $W_{dec}$); the MLP's output moves by $f_i\, d_i W_{out}$, which is added to the residual stream; the
# logits move by $f_i\, d_i W_{out} W_U$ (ignoring the final LayerNorm's rescaling, which is the same
# for every token). So $d_i W_{out} W_U$, one number per vocabulary entry, says which next tokens the
# latent promotes and which it suppresses. Since there is no later layer, this direct path is the
# *whole* effect of the latent.
#
# ### Exercise 4: `latent_logit_effect`
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 10 minutes
#
# `model.W_out` is `[n_layers d_mlp d_model]` and `model.W_U` is `[d_model d_vocab]`.
#
# <details><summary>Hint</summary>
#
# `sae.W_dec[latent] @ model.W_out[0] @ model.W_U`. Biases do not belong in it: they are there
# whether or not the latent fires.
# </details>


# %%
def latent_logit_effect(model, sae, latent: int) -> Float[Tensor, " d_vocab"]:
    """Direct effect on the logits of one unit of `latent`: its decoder row through W_out[0] and W_U."""
    ### BEGIN SOLUTION
    return sae.W_dec[latent] @ model.W_out[0] @ model.W_U
    ### END SOLUTION


# %%
if MAIN:
    tests.part6_lm_saes.test_latent_logit_effect(latent_logit_effect)

# %% [markdown]
# ## Steering and ablating
#
# The logit effect is a prediction. An intervention tests it: change the latent and watch what the
# model does.
#
# * **Steering**: add $c\, d_i$ to the MLP activations at every position, as if latent $i$ fired with
#   strength $c$ everywhere.
# * **Ablating**: remove the latent's contribution where it fires, $x \mapsto x - f_i(x)\, d_i$, and
#   keep everything else, including the part of $x$ the SAE does not reconstruct (its error). So only
#   this one latent changes, not the whole SAE.
#
# ### Exercise 5: `steer_with_latent` and `ablate_latent`
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵🔵⚪ · about 20 minutes
#
# Both return the model's logits `[batch seq d_vocab]` with a hook on `sae.hook_name`.
#
# <details><summary>Hint: steering</summary>
#
# `lambda act, hook: act + coeff * sae.W_dec[latent]`: the row broadcasts over batch and positions.
# </details>
#
# <details><summary>Hint: ablating</summary>
#
# In the hook, `f = sae.encode(act)[..., latent]` is `[batch seq]`; subtract
# `f[..., None] * sae.W_dec[latent]`. Do not return `sae.decode(...)` of the modified latents: that
# would also throw away the SAE's error term everywhere.
# </details>


# %%
def steer_with_latent(
    model, sae, tokens: Int[Tensor, "batch seq"], latent: int, coeff: float
) -> Float[Tensor, "batch seq d_vocab"]:
    """Logits with coeff · W_dec[latent] added to the activations at sae.hook_name, at every position."""

    ### BEGIN SOLUTION
    def hook_fn(act: Tensor, hook) -> Tensor:
        return act + coeff * sae.W_dec[latent]

    return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook_fn)])
    ### END SOLUTION


def ablate_latent(model, sae, tokens: Int[Tensor, "batch seq"], latent: int) -> Float[Tensor, "batch seq d_vocab"]:
    """Logits with the latent's contribution f_latent(x) · W_dec[latent] removed from the activations at
    sae.hook_name (everything else, including the SAE's reconstruction error, kept)."""

    ### BEGIN SOLUTION
    def hook_fn(act: Tensor, hook) -> Tensor:
        f = sae.encode(act)[..., latent]
        return act - f[..., None] * sae.W_dec[latent]

    return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook_fn)])
    ### END SOLUTION


# %%
if MAIN:
    tests.part6_lm_saes.test_steer_with_latent(steer_with_latent)

# %%
if MAIN:
    tests.part6_lm_saes.test_ablate_latent(ablate_latent)

# %% [markdown]
# ## Hunting for interpretable latents
#
# Now put the tools together. For a few things a Python programmer would look for, we mark the
# positions where it holds (a *probe* on the text), and rank latents by how much of their strong
# activation (above half the latent's maximum) falls on marked positions: the latent's precision for
# the pattern where it fires clearly.
# A latent that scores near 1 and fires often is a candidate; then read its max-activating examples
# and logit effect to see whether the story holds up.
#
# * `string`: the token is inside a one-line string literal (an odd number of quotes before it on its line);
# * `after_def`: the previous token is `def` (the token is a function's name);
# * `self_dot`: the text just before the token ends with `self.` (the token is an attribute name);
# * `open_bracket`: the token ends with `(`, `[` or `{`.
#
# The probes are rough (a `'` inside a `"..."` string fools the string probe), which is fine for
# ranking.


# %%
def probe_masks(tokenizer, tokens: Int[Tensor, "n_seq seq"]) -> dict[str, Tensor]:
    """Boolean [n_seq seq] masks for the four patterns above (given)."""
    masks = {
        name: torch.zeros(tokens.shape, dtype=torch.bool)
        for name in ("string", "after_def", "self_dot", "open_bracket")
    }
    for s, row in enumerate(tokens.tolist()):
        strs = [tokenizer.decode([t]) for t in row]
        line = ""
        for p, text in enumerate(strs):
            if p > 0:
                quotes = line.count('"') - 3 * line.count('"""') + line.count("'") - 3 * line.count("'''")
                masks["string"][s, p] = quotes % 2 == 1
                masks["after_def"][s, p] = strs[p - 1].strip() == "def"
                masks["self_dot"][s, p] = (line + "").endswith("self.")
                masks["open_bracket"][s, p] = text.rstrip().endswith(("(", "[", "{"))
            line = (line + text).split("\n")[-1]
    return masks


def rank_latents(
    acts: Float[Tensor, "tokens d_sae"], mask: Tensor, min_freq: float = 5e-4, top: int = 5
) -> list[tuple[int, float, float]]:
    """Latents ranked by the share of their strong activation (above half their maximum) on masked positions
    (given). Returns (latent, share, frequency) for the `top` latents firing on at least `min_freq` of tokens.

    acts: SAE activations of every token at positions >= 1, flattened; mask: [n_seq seq] (position 0 is dropped).
    """
    on = mask[:, 1:].flatten().to(acts.device)
    strong = acts * (acts > 0.5 * acts.max(0).values)
    share = strong[on].sum(0) / strong.sum(0).clamp_min(1e-9)
    freq = (acts > 0).float().mean(0)
    share = torch.where(freq >= min_freq, share, torch.zeros_like(share))
    best = share.topk(top).indices.tolist()
    return [(i, float(share[i]), float(freq[i])) for i in best]


if MAIN:
    masks = probe_masks(model.tokenizer, tokens.cpu())
    found = {}
    for name, mask in masks.items():
        ranked = rank_latents(acts_all, mask)
        found[name] = ranked[0][0]
        base_rate = mask[:, 1:].float().mean().item()
        print(
            f"{name:13s} (true on {base_rate:.1%} of tokens): "
            + ", ".join(f"#{i} share {s:.2f} freq {f:.2%}" for i, s, f in ranked[:3])
        )

# %% [markdown]
# Look at the best latent for each pattern: which tokens its strongest activations sit on, its
# max-activating examples, then its logit effect.

# %%
if MAIN:
    for name, latent in found.items():
        print(f"{name}: latent {latent}'s 20 strongest activations are on {top_tokens(latent)}")
        show_top_examples(latent, k=8, title=f"{name}: latent {latent}")
        figures.plot_logit_effect(
            latent_logit_effect(model, sae, latent),
            model.tokenizer,
            k=10,
            title=f"{name}: latent {latent}, direct effect on the next-token logits",
        )

# %% [markdown]
# <details><summary>What you should find</summary>
#
# With the shipped SAE, on all 512 held-out sequences (the `FAST` test run uses fewer, so its ranking
# can differ):
#
# * **Open bracket**: the clearest of the four. Several latents put all of their strong activation on
#   `(`; the top one fires on the `(` right after a function or method name (`getopt.getopt(`,
#   `isinstance(`, `self.post_to_server(`) and boosts what usually comes first in a call: `self`,
#   `object`, `os`, `msg`, `None`, `value`.
# * **Inside a string**: several latents score close to 1. The top one is narrow: all of its 20 strongest
#   activations are on a `'`, and the examples show which one: the *closing* quote of the entries of the
#   codec tables in `encodings/` (`'\xd7'`; the string probe counts a closing quote as inside, since an
#   odd number of quotes precede it). It boosts the spaces that follow there and the capitalised
#   character names (`TION`, ` OF`) of the table's comments. Others in the list fire inside string
#   literals (the hex digits of `'\u2588'`, or short strings such as `'gcc'`); look at two or three.
# * **After `def`**: a latent with a share around 0.45 fires on the pieces of a function name being
#   written (`def count_`, `def rmenu_`, `def _`) and boosts typical name parts (`get`, `repr`, `sub`,
#   `init`). It is a "writing a function name" latent rather than a "token after `def`" latent.
# * **`self.`**: the best latents score around 0.4: they fire on the first piece of an attribute name
#   after `self.` (`self.per`, `self.de`) and boost endings and method names (`write`, `append`, `set`).
#   The rest of their activation is on attribute names after other objects, so "attribute name being
#   written" describes them better than "`self.`".
#
# Scores well below 1 are the probe's fault as often as the latent's: a latent can track a
# neighbouring concept (any attribute, not only `self`'s), and the probes are crude.
# </details>
#
# <details><summary>Question: a latent scores 0.95 for `after_def`. Is it a "function name" feature?</summary>
#
# Not yet. The score says that when it fires, it is mostly after `def`; it does not say it fires on
# *every* function name (recall), nor that the model uses it for that. Check its frequency against how
# often the pattern occurs, look at where it fires *off* the pattern, and intervene on it.
# </details>

# %% [markdown]
# ### Steering and ablation in action
#
# Take the `open_bracket` latent. At its strongest example (a `(` after a method name), ablating it
# should take probability away from the tokens its logit effect boosts (the first argument: `self`,
# `obj`, ...). Steering with it in a context where no call is being opened should push those tokens up.


# %%
def print_top_predictions(logits_by_name: dict[str, Tensor], k: int = 5) -> None:
    """The k most likely next tokens under each logit vector, with their probabilities (given)."""
    for name, logits in logits_by_name.items():
        probs = logits.softmax(-1)
        top = probs.topk(k)
        row = ", ".join(
            f"{model.tokenizer.decode([int(i)])!r} {p:.3f}" for p, i in zip(top.values, top.indices, strict=True)
        )
        print(f"{name:>15s}: {row}")


if MAIN:
    latent = found["open_bracket"]
    acts = latent_acts(h_all, sae, latent)
    _, seq_idx, pos_idx = top_activations(acts, 1)
    s, p = int(seq_idx[0]), int(pos_idx[0])
    context = tokens[s : s + 1, : p + 1]
    print("context:", repr(model.tokenizer.decode(context[0, -30:])))
    clean_logits = model(context)[0, -1]
    ablated_logits = ablate_latent(model, sae, context, latent)[0, -1]
    print_top_predictions({"clean": clean_logits, "latent ablated": ablated_logits})
    figures.plot_prediction_change(
        clean_logits,
        ablated_logits,
        model.tokenizer,
        title=f"Next token after the context, before and after ablating latent {latent}",
        labels=("clean", "latent ablated"),
    )
    neutral = model.to_tokens("    def close(self):\n        self.file")
    steered_logits = steer_with_latent(model, sae, neutral, latent, coeff=2 * float(acts.max()))[0, -1]
    print_top_predictions({"clean": model(neutral)[0, -1], "steered": steered_logits})
    figures.plot_prediction_change(
        model(neutral)[0, -1],
        steered_logits,
        model.tokenizer,
        title=f"After '    def close(self): self.file', steered with latent {latent} (2 × its max activation)",
        labels=("clean", "steered"),
    )

# %% [markdown]
# With the shipped SAE, ablation halves the probability of `self` after `self.post_to_server(` (the
# printed lines above: from about 0.17 to 0.09), and the newline-and-indent that starts a multi-line
# argument list gains. Steering makes `obj` the most likely token after `self.file` (from about 0.03 to
# 0.2), brings `value` and `self` into the top five, and pushes out `.` and ` =` (what follows a complete
# name): first arguments of a call, as the logit effect predicted.
#
# <details><summary>Question: why steer with a multiple of the latent's largest activation?</summary>
#
# A steering coefficient only means something relative to how strongly the latent normally fires. Much
# smaller and nothing visible happens; much larger and the activation leaves the range the model ever
# saw, so its outputs become arbitrary. A few times the natural maximum is a common starting point.
# </details>

# %% [markdown]
# ## With a network: public models and SAEs
#
# Every function above takes a TransformerLens model and an SAE with `W_enc`, `W_dec`, `b_enc`,
# `b_dec`, `encode`, `decode` and `hook_name`, so they work unchanged on public ones. With a network,
# and the `sae-lens` package:
#
# ```python
# model = lm.load_model("gpt2-small", device=device)
# sae = lm.load_sae(release="gpt2-small-mlp-tm", sae_id="blocks.0.hook_mlp_out", device=device)
# ```
#
# That SAE reads the MLP's *output* (`hook_mlp_out`, already in the residual stream), so its logit
# effect is `sae.W_dec[latent] @ model.W_U`, without `W_out`. GPT-2 has twelve layers, so the direct
# effect is no longer the whole effect. Conversely, SAELens can read ours:
# `sae_lens.SAE.load_from_disk("utils/artifacts/sae")`.
#
# ## Summary
#
# * Feature density is the first health check: dead latents waste capacity, dense ones rarely mean anything,
#   and a crowd of near-identical rare latents (here a third of them, left behind by resampling) wastes it too.
#   L0 and the variance explained say how sparse and how faithful the SAE is.
# * Spliced-in loss, on the scale set by zero-ablation, measures whether the SAE keeps what the model uses
#   (here about 91% of the MLP's effect).
# * Max-activating examples give hypotheses; logit effects and interventions test them.
# * Even a tiny model trained for half an hour on Python source has SAE latents a programmer can name.
