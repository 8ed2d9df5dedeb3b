"""The catalogue of known mistakes for section 6's checkers (`tests.part6_lm_saes`).

Each builder returns what a realistic buggy implementation returns on the checker's inputs (a mutant of the
reference, computed with the same shipped model and SAE), with the code and hint the checker reports when a
learner's output matches it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

HOOK_PRE = "blocks.0.mlp.hook_pre"
HOOK_MLP_OUT = "blocks.0.hook_mlp_out"


def mlp_acts(model, hook_name: str, tokens: Tensor) -> Tensor:
    _, cache = model.run_with_cache(tokens, names_filter=hook_name)
    return cache[hook_name]


def run(model, tokens: Tensor, hook_name: str, fn: Callable, **kwargs: Any) -> Tensor:
    return model.run_with_hooks(tokens, fwd_hooks=[(hook_name, fn)], **kwargs)


def count_factors(bases: list[tuple[str, Tensor, str]], counts: dict[str, int]) -> list[tuple[str, str, Tensor]]:
    """Results off by a factor that equals a count the exercise involves (the number of batches, the batch size):
    a sum where a mean was meant, or a division by that count left out or added. `bases` are (what it is, value,
    advice) for the right result and for mutants a count factor can compound."""
    out = []
    for desc, value, advice in bases:
        for what, n in counts.items():
            if n > 1:
                out.append(
                    (
                        "count_factor",
                        f"your values are {n} × {desc}, and {n} is {what}: a sum over it where a mean was meant "
                        f"(a division by {n} left out)?{advice}",
                        n * value,
                    )
                )
                out.append(
                    (
                        "count_factor",
                        f"your values are {desc} divided by {n}, and {n} is {what}: an extra division by it?{advice}",
                        value / n,
                    )
                )
    return out


def clipped_mutants(expected: Tensor) -> list[tuple[str, str, Tensor]]:
    """The right values with the entries of one sign set to 0 (a ReLU, clamp or mask on the result)."""
    out = []
    if bool((expected < 0).any()):
        out.append(
            (
                "clipped",
                "your values are the expected ones with every negative entry set to 0: a ReLU, clamp(min=0) or a "
                "mask on the result? Keep the signed values (negative ones are tokens that push the other way)",
                expected.clamp(min=0),
            )
        )
    if bool((expected > 0).any()):
        out.append(
            (
                "clipped",
                "your values are the expected ones with every positive entry set to 0: a clamp(max=0), a -ReLU(-x) "
                "or a mask on the result? Keep the signed values",
                expected.clamp(max=0),
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# Exercise 1: latent_frequencies
# --------------------------------------------------------------------------------------------
def frequency_mistakes(model, sae, tokens: Tensor, batch_size: int) -> list[tuple[str, str, Tensor]]:
    acts = sae.encode(mlp_acts(model, sae.hook_name, tokens))  # [n_seq seq d_sae]
    fired = (acts[:, 1:] > 0).float()
    n_seq, seq = tokens.shape
    n_tok = n_seq * (seq - 1)
    batches = [fired[i : i + batch_size] for i in range(0, n_seq, batch_size)]
    full = [b for b in batches if b.shape[0] == batch_size]
    pre = sae.encode(mlp_acts(model, HOOK_PRE, tokens))[:, 1:]
    all_fired = (acts > 0).float()
    rest = [all_fired[i + 1 : i + batch_size] for i in range(0, n_seq, batch_size)]  # [1:] on each batch
    no_bos_input = (sae.encode(mlp_acts(model, sae.hook_name, tokens[:, 1:])) > 0).float()  # BOS cut from the input
    bos_input = (
        "keep BOS in the model's input: the model needs it as context (without it every activation changes); "
        "leave position 0 out only when counting, `acts[:, 1:]`"
    )
    batch_means = torch.stack([b.mean((0, 1)) for b in batches]).mean(0)
    once = " Accumulate the counts and the number of tokens over the batches and divide once at the end"
    scaled = count_factors(
        [
            ("the right frequencies", fired.mean((0, 1)), ""),
            ("the average of the per-batch frequencies", batch_means, once),
        ],
        {"the number of batches": len(batches), "the batch size": batch_size},
    )
    return [
        *scaled,
        ("bos_input", bos_input, no_bos_input.mean((0, 1))),
        ("bos_input", bos_input, no_bos_input[:, 1:].mean((0, 1))),
        (
            "first_sequence",
            "drop position 0 of every sequence (`acts[:, 1:]`), not the first sequence of each batch (`acts[1:]`)",
            torch.cat(rest).sum((0, 1)) / sum(r.shape[0] * r.shape[1] for r in rest),
        ),
        (
            "accumulate",
            "that is the last batch's count over all tokens: accumulate the counts over batches (`count += ...`), "
            "don't overwrite them",
            batches[-1].sum((0, 1)) / n_tok,
        ),
        ("bos", "leave out position 0 (BOS) of every sequence: `acts[:, 1:]`", (acts > 0).float().mean((0, 1))),
        (
            "threshold",
            "a latent fires when its activation is > 0; after a ReLU every activation is >= 0",
            (acts[:, 1:] >= 0).float().mean((0, 1)),
        ),
        (
            "mean_activation",
            "that is the mean activation: count where the activation is > 0 (`(acts > 0).float()`), then average",
            acts[:, 1:].mean((0, 1)),
        ),
        (
            "batches",
            "that is the first batch only: loop over all of `tokens` in steps of batch_size and accumulate",
            batches[0].mean((0, 1)),
        ),
        ("count", f"divide the counts by the number of tokens counted ({n_tok} here)", fired.sum((0, 1))),
        (
            "normalisation",
            "divide by sequences × positions (the number of tokens), not by the number of sequences",
            fired.sum((0, 1)) / n_seq,
        ),
        (
            "hook",
            "read the activations at `sae.hook_name` (the post-GELU activations), not hook_pre",
            (pre > 0).float().mean((0, 1)),
        ),
        (
            "batch_means",
            "the last batch is smaller: averaging the per-batch frequencies weights its tokens more. Accumulate "
            "counts and the number of tokens, and divide once at the end",
            batch_means,
        ),
        (
            "last_batch",
            "the last, partial batch is missing: `range(0, n_seq, batch_size)` with `tokens[start:start + "
            "batch_size]` covers every sequence",
            torch.cat(full).mean((0, 1)),
        ),
        (
            "partial_batch",
            "count the tokens you actually saw: the last batch can be smaller than batch_size",
            fired.sum((0, 1)) / (len(batches) * batch_size * (seq - 1)),
        ),
        (
            "token_count",
            "you left position 0 out of the counts, so leave it out of the number of tokens too (seq - 1 per sequence)",
            fired.sum((0, 1)) / (n_seq * seq),
        ),
        (
            "last_position",
            "drop the FIRST position (BOS, `[:, 1:]`), not the last",
            (acts[:, :-1] > 0).float().mean((0, 1)),
        ),
        (
            "any_token",
            "that is whether the latent fires at all (0 or 1): the exercise asks for the fraction of tokens",
            fired.amax((0, 1)),
        ),
        (
            "per_sequence",
            "that is the fraction of sequences in which the latent fires: count tokens, not sequences",
            fired.amax(1).mean(0),
        ),
    ]


# --------------------------------------------------------------------------------------------
# Exercise 2: reconstruction_losses
# --------------------------------------------------------------------------------------------
def loss_mistakes(model, sae, tokens: Tensor, exp: dict[str, float]) -> dict[str, list[tuple[str, str, Tensor]]]:
    """For each key of the result, (code, hint, value) of the known mistakes."""

    def loss(hook_name: str | None = None, fn: Callable | None = None, **kwargs: Any) -> Tensor:
        hooks = [(hook_name, fn)] if fn is not None else []
        return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks, **kwargs)

    per_token = loss(loss_per_token=True)  # [batch seq-1]
    logits = model(tokens)
    unshifted = F.cross_entropy(logits.flatten(0, 1), tokens.flatten())
    decode_no_bias = lambda act, hook: sae.encode(act) @ sae.W_dec
    encode_no_bias = lambda act, hook: sae.decode(torch.relu(act @ sae.W_enc + sae.b_enc))

    def splice_after_bos(act: Tensor, hook: Any) -> Tensor:
        return torch.cat([act[:, :1], sae.decode(sae.encode(act[:, 1:]))], dim=1)

    c, s, z = exp["clean"], exp["spliced"], exp["zero_ablated"]
    no_relu = lambda act, hook: sae.decode((act - sae.b_dec) @ sae.W_enc + sae.b_enc)
    swapped = "that is the {} loss: are the keys 'spliced' and 'zero_ablated' swapped?"
    mean_over = lambda dims: lambda act, hook: act.mean(dims, keepdim=True).expand_as(act).clone()
    as_t = lambda v: torch.tensor(float(v), dtype=torch.float64)
    recon = lambda act, hook: sae.decode(sae.encode(act))
    z_tok = loss(sae.hook_name, lambda act, hook: torch.zeros_like(act), loss_per_token=True)
    s_tok = loss(sae.hook_name, recon, loss_per_token=True)
    return {
        "clean": [
            (
                "clean_positions",
                "use the model's own mean loss over every predicted position: `model(tokens, return_type='loss')`",
                as_t(per_token[:, 1:].mean()),
            ),
            (
                "not_shifted",
                "the logits at position i predict token i + 1: compare logits[:, :-1] with tokens[:, 1:] (or use "
                "`return_type='loss'`, which shifts for you)",
                as_t(unshifted),
            ),
            (
                "clean_sum",
                "the loss is the MEAN cross-entropy over predicted positions, not the sum",
                as_t(per_token.sum()),
            ),
            (
                "clean_no_bos",
                "compute every loss on the full tokens, BOS included (the model needs it as context; position 0 is "
                "left out only of the activation statistics)",
                as_t(model(tokens[:, 1:], return_type="loss")),
            ),
            (
                "last_token_dropped",
                "run the model on the full tokens: return_type='loss' already leaves out the last position's "
                "prediction (it has no next token), so feeding tokens[:, :-1] also drops the last target",
                as_t(model(tokens[:, :-1], return_type="loss")),
            ),
            (
                "shift_reversed",
                "shifted the wrong way: the logits at position i predict token i + 1, so compare logits[:, :-1] "
                "with tokens[:, 1:] (not logits[:, 1:] with tokens[:, :-1])",
                as_t(F.cross_entropy(logits[:, 1:].flatten(0, 1), tokens[:, :-1].flatten())),
            ),
            (
                "log_softmax_missing",
                "log_softmax missing: F.nll_loss expects log-probabilities, not raw logits (a negative loss is the "
                "sign); use F.cross_entropy on the logits, or nll_loss on logits.log_softmax(-1)",
                as_t(F.nll_loss(logits[:, :-1].transpose(1, 2), tokens[:, 1:])),
            ),
        ],
        "spliced": [
            (
                "no_splice",
                "the spliced loss equals the clean loss, so the hook changed nothing: either it never ran (not "
                "registered: pass it as fwd_hooks=[(sae.hook_name, hook_fn)]) or it didn't *return* the "
                "reconstruction `sae.decode(sae.encode(act))`",
                as_t(c),
            ),
            (
                "spliced_hook",
                "splice the SAE in at `sae.hook_name` (the post-GELU activations), not hook_pre",
                as_t(loss(HOOK_PRE, recon)),
            ),
            (
                "decode_bias",
                "the reconstruction includes b_dec: sae.decode(f) = f @ W_dec + b_dec",
                as_t(loss(sae.hook_name, decode_no_bias)),
            ),
            (
                "encode_bias",
                "the SAE subtracts b_dec before encoding: use sae.encode(act) (or relu((act - b_dec) @ W_enc + b_enc))",
                as_t(loss(sae.hook_name, encode_no_bias)),
            ),
            (
                "spliced_positions",
                "replace the activations at every position, BOS included: the hook returns sae.decode(sae.encode(act))",
                as_t(loss(sae.hook_name, splice_after_bos)),
            ),
            (
                "error_only",
                "that is the loss with only the SAE's error (act - reconstruction) left: return the reconstruction",
                as_t(loss(sae.hook_name, lambda act, hook: act - recon(act, hook))),
            ),
            ("keys_swapped", swapped.format("zero-ablated"), as_t(z)),
            (
                "no_relu",
                "the SAE's latents are ReLU'd: decode(relu((act - b_dec) @ W_enc + b_enc)), i.e. sae.encode(act)",
                as_t(loss(sae.hook_name, no_relu)),
            ),
        ],
        "zero_ablated": [
            (
                "mean_ablation",
                "that is mean-ablation; this exercise asks for zero-ablation: replace the activations by zeros "
                "(`torch.zeros_like(act)`)",
                as_t(loss(sae.hook_name, lambda act, hook: act.mean((0, 1), keepdim=True).expand_as(act))),
            ),
            (
                "no_ablation",
                "the zero-ablated loss equals the clean loss, so the hook changed nothing: either it never ran (not "
                "registered: pass it as fwd_hooks=[(sae.hook_name, hook_fn)]) or it didn't *return* the zeros",
                as_t(c),
            ),
            ("keys_swapped", swapped.format("spliced"), as_t(s)),
            *[
                (
                    "mean_ablation",
                    f"that is mean-ablation over {where}; this exercise asks for zero-ablation: replace the "
                    "activations by zeros (`torch.zeros_like(act)`)",
                    as_t(loss(sae.hook_name, mean_over(dims))),
                )
                for dims, where in ((0, "the batch"), (1, "the positions"))
            ],
            (
                "zero_hook",
                "zero the MLP activations at `sae.hook_name`, not the residual stream",
                as_t(loss("blocks.0.hook_resid_post", lambda act, hook: torch.zeros_like(act))),
            ),
            (
                "zero_hook",
                "zero the activations at `sae.hook_name` (the MLP's post-GELU activations), not the MLP's output "
                "(which still gets b_out)",
                as_t(loss(HOOK_MLP_OUT, lambda act, hook: torch.zeros_like(act))),
            ),
            (
                "ablate_latents",
                "zero the MLP activations themselves; sae.decode(zeros) is b_dec, not zero",
                as_t(loss(sae.hook_name, lambda act, hook: sae.decode(torch.zeros_like(sae.encode(act))))),
            ),
        ],
        "recovered": [
            (
                "recovered_per_token",
                "that is the mean of per-token ratios: compute the three mean losses first, then one ratio "
                "(zero - spliced) / (zero - clean); a ratio per token blows up where zero and clean nearly agree",
                as_t(((z_tok - s_tok) / (z_tok - per_token)).mean()),
            ),
            (
                "recovered_lost",
                "that is the fraction LOST: recovered = (zero - spliced) / (zero - clean)",
                as_t((s - c) / (z - c)),
            ),
            (
                "recovered_ratio",
                "clean / spliced is not on the zero-ablation scale: recovered = (zero - spliced) / (zero - clean)",
                as_t(c / s),
            ),
            ("recovered_percent", "return a fraction (0.9), not a percentage (90)", as_t(100 * (z - s) / (z - c))),
            (
                "recovered_denominator",
                "divide by the MLP's whole effect, zero - clean: recovered = (zero - spliced) / (zero - clean)",
                as_t((z - s) / (s - c)),
            ),
            (
                "recovered_no_baseline",
                "subtract the clean loss in the denominator: (zero - spliced) / (zero - clean)",
                as_t((z - s) / z),
            ),
            (
                "recovered_inverted",
                "that is the inverse: recovered = (zero - spliced) / (zero - clean)",
                as_t((z - c) / (z - s)),
            ),
        ],
    }


# --------------------------------------------------------------------------------------------
# Exercise 3: top_activations
# --------------------------------------------------------------------------------------------
def top_mistakes(acts: Tensor, k: int) -> list[tuple[str, str, Tensor]]:
    """(code, hint, [3 k] stack of values, seq_idx, pos_idx) of the known mistakes."""
    n_seq, seq = acts.shape

    def triple(values: Tensor, s: Tensor, p: Tensor) -> Tensor:
        return torch.stack([values.double(), s.double(), p.double()])

    masked = acts.clone()
    masked[:, 0] = -torch.inf
    values, flat = masked.flatten().topk(k)
    body_values, body_flat = acts[:, 1:].flatten().topk(k)
    with_bos_values, with_bos = acts.flatten().topk(k)
    row_max, row_pos = acts[:, 1:].max(1)
    seq_top, seq_idx = row_max.topk(min(k, n_seq))
    later_values, later = acts[1:].flatten().topk(k)
    skip_values, skip = acts.flatten().topk(k + 1)
    both = masked.clone()
    both[0] = -torch.inf
    both_values, both_flat = both.flatten().topk(k)
    hint_unravel = f"turn a flat index i into (i // seq_len, i % seq_len); seq_len = acts.shape[1] = {seq}"
    return [
        (
            "bos",
            "mask position 0 (BOS) out before taking the top k",
            triple(with_bos_values, with_bos // seq, with_bos % seq),
        ),
        (
            "order",
            "`topk` returns the largest first by default; don't sort ascending",
            triple(values.flip(0), (flat // seq).flip(0), (flat % seq).flip(0)),
        ),
        ("unravel", hint_unravel, triple(values, flat % n_seq, flat // n_seq)),
        (
            "pos_offset",
            "positions count from the start of the sequence: after topk on acts[:, 1:], add 1 to the position",
            triple(body_values, body_flat // (seq - 1), body_flat % (seq - 1)),
        ),
        (
            "seq_len_offset",
            "after topk on acts[:, 1:], the row length is seq - 1: divide by it, then add 1 to the position",
            triple(body_values, body_flat // seq, body_flat % seq + 1),
        ),
        ("swapped", "return (values, seq_idx, pos_idx) in that order", triple(values, flat % seq, flat // seq)),
        (
            "per_sequence",
            "take the top k over all (sequence, position) pairs together, not one maximum per sequence",
            triple(seq_top, seq_idx, row_pos[seq_idx] + 1) if len(seq_top) == k else None,
        ),
        (
            "first_sequence",
            "drop position 0 of every sequence (`acts[:, 1:]` or a mask on column 0), not sequence 0 (`acts[1:]`)",
            triple(later_values, later // seq + 1, later % seq),
        ),
        (
            "first_sequence",
            "mask position 0 of every sequence only: `masked[0]` is sequence 0, which holds real activations",
            triple(both_values, both_flat // seq, both_flat % seq),
        ),
        (
            "skip_first",
            "dropping the largest result doesn't remove BOS (every sequence has a BOS): mask position 0 "
            "(acts[:, 0] = -inf) before topk",
            triple(skip_values[1:], skip[1:] // seq, skip[1:] % seq),
        ),
    ]


# --------------------------------------------------------------------------------------------
# Exercise 4: latent_logit_effect
# --------------------------------------------------------------------------------------------
def logit_effect_mistakes(model, sae, latent: int) -> list[tuple[str, str, Tensor]]:
    W_U, W_out = model.W_U, model.W_out[0]
    d = sae.W_dec[latent]
    right = d @ W_out @ W_U
    other = (latent + 1) % sae.d_sae
    return [
        (
            "encoder",
            "a latent *writes* with its decoder row `sae.W_dec[latent]`; the encoder column only reads",
            sae.W_enc[:, latent] @ W_out @ W_U,
        ),
        ("b_dec", "b_dec is added whether or not the latent fires: leave it out", (d + sae.b_dec) @ W_out @ W_U),
        (
            "b_out",
            "the MLP's output bias b_out is added whether or not the latent fires: leave it out",
            right + model.b_out[0] @ W_U,
        ),
        ("b_U", "the unembedding bias b_U is there whether or not the latent fires: leave it out", right + model.b_U),
        (
            "embed",
            "the logits come from `model.W_U` [d_model d_vocab]; this model's W_E is a different matrix",
            d @ W_out @ model.W_E.T,
        ),
        (
            "w_in",
            "the MLP writes to the residual stream with `model.W_out[0]` [d_mlp d_model], not W_in",
            d @ model.W_in[0].T @ W_U,
        ),
        ("softmax", "return the raw change in logits, no softmax", right.softmax(-1)),
        ("log_softmax", "return the raw change in logits, no log_softmax", right.log_softmax(-1)),
        (
            "latent_index",
            f"index the decoder with `latent` itself (row {latent}), not a neighbour",
            sae.W_dec[other] @ W_out @ W_U,
        ),
        (
            "normalised",
            "return the effect of one unit of activation: don't normalise the result",
            right / right.norm(),
        ),
        (
            "gelu",
            "the decoder row is already a post-GELU direction: no activation function on it",
            F.gelu(d) @ W_out @ W_U,
        ),
        *[
            (
                "biases",
                f"{' and '.join(names)} are added whether or not the latent fires: leave them out (decode(one-hot) "
                "adds b_dec; the MLP's output adds b_out; model.unembed adds b_U)",
                (d + sae.b_dec * ("b_dec" in names)) @ W_out @ W_U
                + model.b_out[0] @ W_U * ("b_out" in names)
                + model.b_U * ("b_U" in names),
            )
            for names in (("b_dec", "b_out"), ("b_dec", "b_U"), ("b_out", "b_U"), ("b_dec", "b_out", "b_U"))
        ],
        *[
            ("ln_final", "leave the final LayerNorm out: the direct effect is the linear map d W_out W_U", value)
            for value in (model.ln_final(d @ W_out) @ W_U, model.ln_final(d @ W_out) @ W_U + model.b_U)
        ],
    ]


# --------------------------------------------------------------------------------------------
# Exercise 5: steer_with_latent and ablate_latent
# --------------------------------------------------------------------------------------------
def steer_mistakes(model, sae, tokens: Tensor, latent: int, coeff: float) -> list[tuple[str, str, Tensor]]:
    d, name = sae.W_dec[latent], sae.hook_name
    right = run(model, tokens, name, lambda a, hook: a + coeff * d)

    def last_only(act: Tensor, hook: Any) -> Tensor:
        act = act.clone()
        act[:, -1] += coeff * d
        return act

    def after_bos(act: Tensor, hook: Any) -> Tensor:
        act = act.clone()
        act[:, 1:] += coeff * d
        return act

    def first_only(act: Tensor, hook: Any) -> Tensor:
        act = act.clone()
        act[:, 0] += coeff * d
        return act

    def through_sae(set_to: bool) -> Callable:
        def hook_fn(act: Tensor, hook: Any) -> Tensor:
            f = sae.encode(act)
            f[..., latent] = coeff if set_to else f[..., latent] + coeff
            return sae.decode(f)

        return hook_fn

    sae_hint = (
        "add coeff · W_dec[latent] to the real activation; going through sae.decode replaces the activation by "
        "the SAE's reconstruction (its error term is lost){}"
    )

    return [
        (
            "noop",
            "the logits are unchanged, so the hook changed nothing: either it never ran (not registered: pass it "
            "as fwd_hooks=[(sae.hook_name, hook_fn)] to run_with_hooks, or add it with model.add_hook) or it didn't "
            "*return* the modified activation, or the hooked run's logits were thrown away (return what "
            "run_with_hooks returns, not a fresh model(tokens))",
            model(tokens),
        ),
        (
            "encoder",
            "steer along the decoder row `sae.W_dec[latent]`, not the encoder column",
            run(model, tokens, name, lambda a, hook: a + coeff * sae.W_enc[:, latent]),
        ),
        (
            "coeff",
            "scale the steering vector: add `coeff * sae.W_dec[latent]`",
            run(model, tokens, name, lambda a, hook: a + d),
        ),
        (
            "positions",
            "add the vector at every position (it broadcasts over [batch seq]), not only the last",
            run(model, tokens, name, last_only),
        ),
        ("positions_bos", "add the vector at every position, BOS included", run(model, tokens, name, after_bos)),
        (
            "positions",
            "add the vector at every position (it broadcasts over [batch seq]), not only position 0",
            run(model, tokens, name, first_only),
        ),
        (
            "through_sae",
            sae_hint.format(", and setting the latent to coeff removes its own activation"),
            run(model, tokens, name, through_sae(True)),
        ),
        ("through_sae", sae_hint.format(""), run(model, tokens, name, through_sae(False))),
        (
            "scaled_activations",
            "add coeff · W_dec[latent]; don't multiply the activations by coeff",
            run(model, tokens, name, lambda a, hook: coeff * (a + d)),
        ),
        (
            "encoder",
            "steer along the decoder row `sae.W_dec[latent]`, not the (normalised) encoder column",
            run(model, tokens, name, lambda a, hook: a + coeff * F.normalize(sae.W_enc[:, latent], dim=0)),
        ),
        (
            "hook",
            "hook `sae.hook_name` (the post-GELU activations, where the SAE reads), not hook_pre",
            run(model, tokens, HOOK_PRE, lambda a, hook: a + coeff * d),
        ),
        ("logits", "return the logits themselves, not log-probabilities", right.log_softmax(-1)),
        ("probs", "return the logits themselves, not probabilities", right.softmax(-1)),
        (
            "sign",
            "ADD coeff · W_dec[latent] to the activations (you subtracted it)",
            run(model, tokens, name, lambda a, hook: a - coeff * d),
        ),
        (
            "replaced",
            "add the vector to the activations: return `act + coeff * W_dec[latent]`, not the vector alone",
            run(model, tokens, name, lambda a, hook: (coeff * d).expand_as(a)),
        ),
        (
            "bias",
            "steer with the decoder row alone: sae.decode(f) adds b_dec too",
            run(model, tokens, name, lambda a, hook: a + coeff * d + sae.b_dec),
        ),
        *[
            (
                "gelu",
                "add coeff · W_dec[latent] as it is: the decoder row is already a direction in the post-GELU "
                "activations, so no activation function on it",
                run(model, tokens, name, fn),
            )
            for fn in (lambda a, hook: a + F.gelu(coeff * d), lambda a, hook: a + coeff * F.gelu(d))
        ],
        (
            "twice",
            "the vector was added twice (2 · coeff · W_dec[latent]): an in-place `act += ...` followed by "
            "`return act + ...` adds it a second time; do one or the other",
            run(model, tokens, name, lambda a, hook: a + 2 * coeff * d),
        ),
        (
            "latent_index",
            "steer with row `latent` of W_dec, not a neighbour",
            run(model, tokens, name, lambda a, hook: a + coeff * sae.W_dec[latent + 1]),
        ),
    ]


def ablate_mistakes(model, sae, tokens: Tensor, latent: int) -> list[tuple[str, str, Tensor]]:
    d, name = sae.W_dec[latent], sae.hook_name

    def f_of(act: Tensor) -> Tensor:
        return sae.encode(act)[..., latent, None]

    def recon_without(act: Tensor, hook: Any) -> Tensor:
        f = sae.encode(act)
        f[..., latent] = 0
        return sae.decode(f)

    def last_only(act: Tensor, hook: Any) -> Tensor:
        act = act.clone()
        act[:, -1] -= f_of(act[:, -1:])[:, 0] * d
        return act

    f_post = f_of(model.run_with_cache(tokens, names_filter=name)[1][name])
    pre = lambda a: ((a - sae.b_dec) @ sae.W_enc[:, latent] + sae.b_enc[latent])[..., None]
    no_b_dec = lambda a: torch.relu(a @ sae.W_enc[:, latent] + sae.b_enc[latent])[..., None]
    return [
        (
            "noop",
            "the logits are unchanged, so the edit had no effect: the hook never ran (not registered: pass it as "
            "fwd_hooks=[(sae.hook_name, hook_fn)]), or it didn't *return* the modified activation, or the edit "
            "cancels out (an error term computed after zeroing the latent, act - decode(edited), puts it back), or "
            "the latent's value was read AFTER zeroing it (f[..., latent] = 0, then f[..., latent] · W_dec[latent] "
            "removes 0 · d): read it before, or subtract it from a copy; or the hooked run's logits were thrown "
            "away (return what run_with_hooks returns, not a fresh model(tokens))",
            model(tokens),
        ),
        (
            "hook",
            "ablate at `sae.hook_name` (the post-GELU activations the SAE reads), not hook_pre",
            run(model, tokens, HOOK_PRE, lambda a, hook: a - f_of(a) * d),
        ),
        (
            "hook_edit_pre",
            "that is f read at sae.hook_name (right) but f · W_dec[latent] subtracted at hook_pre, before the GELU: "
            "subtract it where it was read, at `sae.hook_name`",
            run(model, tokens, HOOK_PRE, lambda a, hook: a - f_post * d),
        ),
        (
            "projection",
            "remove the latent's own term f(x) · W_dec[latent] (its activation times its decoder row), not the "
            "projection of x on the decoder direction",
            run(model, tokens, name, lambda a, hook: a - (a @ d)[..., None] * d / d.dot(d)),
        ),
        (
            "mean_activation",
            "subtract each position's own activation f(x) of the latent, not one value (its max) for all positions",
            run(model, tokens, name, lambda a, hook: a - f_of(a).max() * d),
        ),
        (
            "encode_no_b_enc",
            "the latent's activation includes b_enc: f = relu((act - b_dec) @ W_enc + b_enc), or sae.encode(act)",
            run(
                model,
                tokens,
                name,
                lambda a, hook: a - torch.relu((a - sae.b_dec) @ sae.W_enc[:, latent])[..., None] * d,
            ),
        ),
        (
            "others_ablated",
            "remove only this latent's term; that keeps this latent and removes all the others",
            run(model, tokens, name, lambda a, hook: a - sae.encode(a) @ sae.W_dec + f_of(a) * d),
        ),
        (
            "error_term",
            "subtract only the latent's term from the real activation, so the SAE's error term is kept (not "
            "sae.decode of the edited latents)",
            run(model, tokens, name, recon_without),
        ),
        (
            "scale",
            "subtract `f[..., None] * W_dec[latent]`, where f is the latent's activation at each position",
            run(model, tokens, name, lambda a, hook: a - d),
        ),
        (
            "firing_mask",
            "subtract f(x) · W_dec[latent], the latent's activation times its decoder row, not its firing mask "
            "(f > 0) times the row",
            run(model, tokens, name, lambda a, hook: a - (f_of(a) > 0).to(a.dtype) * d),
        ),
        (
            "mlp_neuron",
            f"that zeroes MLP neuron {latent} (the activation's own axis); a latent is a direction of the SAE: "
            "subtract f(x) · W_dec[latent]",
            run(model, tokens, name, lambda a, hook: a * (torch.arange(a.shape[-1], device=a.device) != latent)),
        ),
        (
            "encoder",
            "the latent's contribution is along its decoder row, not the encoder column",
            run(model, tokens, name, lambda a, hook: a - f_of(a) * sae.W_enc[:, latent]),
        ),
        (
            "bias",
            "only the latent's own term f · W_dec[latent] goes, not b_dec",
            run(model, tokens, name, lambda a, hook: a - f_of(a) * d - sae.b_dec),
        ),
        (
            "sign",
            "SUBTRACT the latent's contribution (you added it)",
            run(model, tokens, name, lambda a, hook: a + f_of(a) * d),
        ),
        (
            "no_relu",
            "the latent's activation is the ReLU of its pre-activation (use sae.encode): negative values don't count",
            run(model, tokens, name, lambda a, hook: a - pre(a) * d),
        ),
        (
            "encode_no_b_dec",
            "the SAE subtracts b_dec before encoding: f = relu((act - b_dec) @ W_enc + b_enc), or sae.encode(act)",
            run(model, tokens, name, lambda a, hook: a - no_b_dec(a) * d),
        ),
        (
            "all_latents",
            "remove only this latent's term, not the whole reconstruction",
            run(model, tokens, name, lambda a, hook: a - sae.encode(a) @ sae.W_dec),
        ),
        (
            "positions",
            "remove the latent's contribution at every position, not only the last",
            run(model, tokens, name, last_only),
        ),
        (
            "mean_activation",
            "subtract each position's own activation f(x) of the latent, not its mean over positions",
            run(model, tokens, name, lambda a, hook: a - f_of(a).mean((0, 1), keepdim=True) * d),
        ),
        (
            "twice",
            "the latent's term was removed twice (act - 2 · f · W_dec[latent]): an in-place `act -= ...` followed by "
            "`return act - ...` subtracts it a second time; do one or the other",
            run(model, tokens, name, lambda a, hook: a - 2 * f_of(a) * d),
        ),
        (
            "logits",
            "return the logits themselves, not log-probabilities",
            run(model, tokens, name, lambda a, hook: a - f_of(a) * d).log_softmax(-1),
        ),
    ]
