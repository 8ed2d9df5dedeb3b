"""The catalogue of known mistakes for section 6b's checkers (`tests.part6b_circuits`).

Each function returns what a realistic buggy implementation returns on the checker's inputs (a mutant of the
reference, computed with the same shipped model and transcoder), with the code and hint the checker reports when
a learner's output matches it. `variant_forward` is the local replacement model with one mistake switched on
(none: the reference); `direct_edges` computes a graph's edges without gradients, by zeroing one source at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from tests.part6b_circuits_vector_edges import zero_vector_columns
from utils import part6b_circuits as circuits
from utils.transcoder import Transcoder


def synthetic_transcoder(device: torch.device, skip: bool = True) -> Transcoder:
    """Small transcoder with (or without) a skip connection, per-latent thresholds and non-zero biases everywhere."""
    g = torch.Generator().manual_seed(7)
    d, d_sae = 6, 11
    t = lambda *s: torch.randn(*s, generator=g)
    params = t(d, d_sae), t(d_sae) * 0.5, t(d_sae, d), t(d), 0.2 + torch.rand(d_sae, generator=g)
    W_skip = t(d, d) * 0.5
    return Transcoder(*params, W_skip=W_skip if skip else None).to(device)


def forward_mistakes(tc: Transcoder, x: Tensor) -> list[tuple[str, str, Tensor, Tensor]]:
    """(code, hint, acts, out) of the common mistakes."""
    pre = x @ tc.W_enc + tc.b_enc
    skip = x @ tc.W_skip.T if tc.W_skip is not None else 0
    dec = lambda f: f @ tc.W_dec + tc.b_dec + skip
    jump = lambda p, th: p * (p > th)
    th0 = tc.threshold[0]
    out = [
        ("relu", "this is a plain ReLU: a latent fires only when pre > threshold", torch.relu(pre)),
        (
            "shifted",
            "JumpReLU keeps pre unchanged above the threshold: pre · [pre > θ], not ReLU(pre - θ)",
            torch.relu(pre - tc.threshold),
        ),
        (
            "binary",
            "the activation is the pre-activation itself where it clears θ, not 1",
            (pre > tc.threshold).float(),
        ),
        (
            "b_dec_input",
            "a transcoder subtracts nothing from its input (b_dec belongs to the output side)",
            jump((x - tc.b_dec) @ tc.W_enc + tc.b_enc, tc.threshold) if x.shape[-1] == tc.b_dec.shape[0] else None,
        ),
        ("b_enc", "add b_enc to the pre-activation", jump(x @ tc.W_enc, tc.threshold)),
        (
            "threshold_exp",
            "tc.threshold is the threshold itself, not its log: compare pre with tc.threshold (no .exp())",
            jump(pre, tc.threshold.exp()),
        ),
        (
            "threshold_scalar",
            "threshold has one entry per latent: compare pre with the whole vector",
            jump(pre, th0) if not torch.equal(tc.threshold, th0.expand_as(tc.threshold)) else None,
        ),
        (
            "threshold_scalar",
            "threshold has one entry per latent: compare pre with the whole vector, not with its mean",
            jump(pre, tc.threshold.mean()) if not torch.equal(tc.threshold, th0.expand_as(tc.threshold)) else None,
        ),
    ]
    rows = [(c, h, a, dec(a)) for c, h, a in out if a is not None]
    acts = jump(pre, tc.threshold)
    rows += [
        ("b_dec", "add b_dec to the output", acts, acts @ tc.W_dec + skip),
        ("no_nonlinearity", "decode the activations, not the pre-activations", acts, dec(pre)),
    ]
    if tc.W_skip is None and x.shape[-1] == tc.b_dec.shape[-1]:
        rows.append(
            (
                "identity_skip",
                "this transcoder has no skip connection (tc.W_skip is None): add no skip term, not x itself",
                acts,
                dec(acts) + x,
            )
        )
    if tc.W_skip is not None:
        no_skip = acts @ tc.W_dec + tc.b_dec
        rows += [
            ("skip", "add the skip connection x @ W_skip.T when tc.W_skip is not None", acts, dec(acts) - skip),
            (
                "skip_from_out",
                "the skip connection reads the transcoder's *input*: out + x @ W_skip.T, not out @ W_skip.T",
                acts,
                no_skip + no_skip @ tc.W_skip.T,
            ),
            (
                "skip_transposed",
                "W_skip is [d_out d_in]: the term is x @ W_skip.T",
                acts,
                dec(acts) - skip + x @ tc.W_skip,
            ),
        ]
    return rows


def scalar_gate(tc: Transcoder, x: Tensor, acts: Tensor) -> list[tuple[str, str, Tensor, Tensor]]:
    """A learner's acts that are pre where pre > c and 0 elsewhere, for one number c (not 0): a scalar threshold.

    Whatever scalar was used (threshold[0], its mean, its max, a constant), the gating gives it away: every
    kept pre-activation is larger than every dropped one. Returned as a mutant (code, hint, acts, out).
    """
    pre = x @ tc.W_enc + tc.b_enc
    kept = acts != 0
    if acts.shape != pre.shape or not torch.allclose(torch.where(kept, pre, 0), acts, rtol=1e-4, atol=1e-4):
        return []
    if not kept.any() or kept.all() or torch.equal(kept, pre > tc.threshold):
        return []
    low, high = float(pre[~kept].max()), float(pre[kept].min())
    if not low < high or low <= 0 < high:  # not one cut, or the cut of a plain ReLU (its own mutant)
        return []
    out = acts @ tc.W_dec + tc.b_dec + (x @ tc.W_skip.T if tc.W_skip is not None else 0)
    if torch.equal(tc.threshold, tc.threshold[0].expand_as(tc.threshold)):  # one shared value: name the cut
        th = float(tc.threshold[0])
        named = [
            n
            for n, v in (
                ("exp(threshold)", math.exp(th)),
                ("threshold²", th * th),
                ("-threshold", -th),
                ("√threshold", math.sqrt(max(th, 0))),
                ("log(threshold)", math.log(th) if th > 0 else math.nan),
            )
            if low < v <= high
        ]
        hint = (
            f"every latent was cut at one value between {low:.3g} and {high:.3g}, but this transcoder's threshold is "
            f"{th:.4g} (the same for every latent)"
            + (f": that cut is {named[0]}; compare pre with tc.threshold itself" if named else "")
        )
    else:
        hint = (
            f"every latent was compared with the same number (between {low:.3g} and {high:.3g}): threshold has one "
            "entry per latent, compare pre with the whole vector"
        )
    return [("threshold_scalar", hint, acts, out)]


def out_terms(tc: Transcoder, x: Tensor, acts: Tensor, out: Tensor) -> list[tuple[str, str, Tensor]]:
    """A learner's out that is a sum of the right terms with wrong weights (a term missing, doubled, negated).

    out = acts @ W_dec + b_dec (+ x @ W_skip.T): least squares gives the weight of each term in what came back;
    when the fit is exact and a weight is a small integer other than 1, the mutant (code, hint, value) names it.
    """
    terms = {"acts @ W_dec": acts @ tc.W_dec, "b_dec": tc.b_dec.expand_as(out)}
    if tc.W_skip is not None:
        terms["the skip connection x @ W_skip.T"] = x @ tc.W_skip.T
    if out.shape != terms["b_dec"].shape:
        return []
    basis = torch.stack([t.flatten() for t in terms.values()], 1).double()
    weights = torch.linalg.lstsq(basis, out.detach().flatten().double()[:, None]).solution.flatten()
    rounded = weights.round()
    if not torch.allclose(weights, rounded, atol=1e-3) or (rounded == 1).all() or rounded.abs().max() > 2:
        return []
    value = (basis @ rounded).to(out.dtype).reshape(out.shape)
    said = {0: "is missing", -1: "has the wrong sign", 2: "is added twice"}
    wrong = [f"{name} {said[int(w)]}" for name, w in zip(terms, rounded.tolist(), strict=True) if w != 1]
    return [("out_terms", "; ".join(wrong) + ": out = acts @ W_dec + b_dec (+ x @ W_skip.T)", value)]


def _without_repeats(rows: list[tuple[str, str, Tensor]], reference: Tensor) -> list[tuple[str, str, Tensor]]:
    """Drop a mutant equal (at the token views' tolerance) to the reference (a decoder row of norm 1 is its own
    normalisation) or to an earlier one with the same code."""
    same = lambda a, b: a.shape == b.shape and torch.allclose(a, b, rtol=1e-3, atol=1e-4)
    kept: list[tuple[str, str, Tensor]] = []
    for code, hint, value in rows:
        if not same(value, reference) and not any(c == code and same(v, value) for c, _, v in kept):
            kept.append((code, hint, value))
    return kept


def de_embedding_mistakes(model, tc: Transcoder, i: int) -> list[tuple[str, str, Tensor]]:
    enc = tc.W_enc[:, i]
    return _without_repeats(de_embedding_rows(model, tc, enc, i), model.W_E @ enc)


def de_embedding_rows(model, tc: Transcoder, enc: Tensor, i: int) -> list[tuple[str, str, Tensor]]:
    return [
        (
            "decoder",
            "the input side is the encoder column W_enc[:, latent]; W_dec is what the latent writes",
            model.W_E @ tc.W_dec[i],
        ),
        ("unembedding", "de-embedding starts from the *embedding* W_E [d_vocab d_model], not W_U", model.W_U.T @ enc),
        ("bias", "leave b_enc out: it is there whatever the token", model.W_E @ enc + tc.b_enc[i]),
        (
            "positional",
            "leave the position embedding out: it is the same for every token at a position",
            (model.W_E + model.W_pos[1]) @ enc,
        ),
        (
            "positional",
            "leave the position embedding out: it is the same for every token at a position",
            (model.W_E + model.W_pos[0]) @ enc,
        ),
        (
            "threshold",
            "leave the threshold out: the de-embedding is a direction's strength, not a firing test",
            model.W_E @ enc - tc.threshold[i],
        ),
        ("softmax", "return raw strengths, no softmax", (model.W_E @ enc).softmax(-1)),
        (
            "logit_effect",
            "this is the logit effect (output side); de-embedding is W_E @ W_enc[:, latent]",
            tc.W_dec[i] @ model.W_U,
        ),
        ("attention", "the direct path skips attention: no W_V/W_O here", model.W_E @ ov_circuit(model) @ enc),
        (
            "bias_threshold",
            "leave b_enc and the threshold out: the de-embedding is a direction's strength, the same whatever they are",
            model.W_E @ enc + tc.b_enc[i] - tc.threshold[i],
        ),
        *[
            (
                "layernorm",
                "leave LN2 out of the direct path: its scale depends on the whole residual vector at a position, not "
                "on the latent, so the de-embedding uses the raw embeddings, W_E @ W_enc[:, latent]",
                normalised(model.W_E, kind) @ enc,
            )
            for kind in NORMALISATIONS
        ],
        *[
            (
                "unit_direction",
                "use the encoder column as it is, not normalised: its norm is part of how strongly the latent reads "
                "the token",
                model.W_E @ normalised(enc, kind),
            )
            for kind in NORMALISATIONS
        ],
    ]


NORMALISATIONS = ("layernorm", "centred_std", "unit", "rms")


def normalised(v: Tensor, kind: str) -> Tensor:
    """The ways a learner normalises vectors along the last axis (LN without weights, ÷ std, ÷ L2 norm, ÷ RMS)."""
    if kind == "layernorm":
        c = v - v.mean(-1, keepdim=True)
        return c / (c.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt()
    if kind == "centred_std":
        return (v - v.mean(-1, keepdim=True)) / v.std(-1, keepdim=True)
    if kind == "unit":
        return torch.nn.functional.normalize(v, dim=-1)
    return v / v.pow(2).mean(-1, keepdim=True).sqrt()


def direction_mistakes(model, tc: Transcoder, i: int, actual: Tensor, side: str) -> list[tuple[str, str, Tensor]]:
    """Token views that are linear in a d_model vector other than the latent's own: another latent's (a wrong
    index), or a vector changed some other way. Inferred from `actual`, as mutants (code, hint, value)."""
    matrix, views, own = (
        (model.W_E, (model.W_E @ tc.W_enc).T, "W_E @ W_enc[:, latent]")
        if side == "de"
        else (model.W_U.T, tc.W_dec @ model.W_U, "W_dec[latent] @ W_U")
    )
    same = lambda a, b: bool(torch.allclose(a, b, rtol=1e-3, atol=1e-4))
    j = int((views - actual).abs().amax(-1).argmin())
    if j != i and same(views[j], actual):
        return [("wrong_latent", f"these are the values of latent {j}, not {i}: {own} with the latent asked", views[j])]
    fit = (matrix.double() @ torch.linalg.lstsq(matrix.double(), actual.double()[:, None]).solution).flatten()
    if not same(fit.to(actual.dtype), actual):
        return []
    cosine = float(torch.cosine_similarity(actual.double(), views[i].double(), 0))
    vector = "W_enc[:, latent]" if side == "de" else "W_dec[latent]"
    hint = (
        f"what you return is linear in a d_model vector, but not in {vector} (cosine {cosine:.2f} with the right "
        f"values): check the vector you multiply by, it should be {vector} itself, nothing added, removed or mixed in"
    )
    return [("direction", hint, fit.to(actual.dtype))]


def ov_circuit(model) -> Tensor:
    """The summed OV circuit of the layer, [d_model d_model] (a path through attention)."""
    return torch.einsum("hde,hef->df", model.W_V[0], model.W_O[0])


def logit_effect_mistakes(model, tc: Transcoder, i: int) -> list[tuple[str, str, Tensor]]:
    return _without_repeats(logit_effect_rows(model, tc, tc.W_dec[i], i), tc.W_dec[i] @ model.W_U)


def logit_effect_rows(model, tc: Transcoder, dec: Tensor, i: int) -> list[tuple[str, str, Tensor]]:
    return [
        (
            "encoder",
            "a latent *writes* with its decoder row tc.W_dec[latent]; the encoder only reads",
            tc.W_enc[:, i] @ model.W_U,
        ),
        ("bias", "b_dec is added whether or not the latent fires: leave it out", (dec + tc.b_dec) @ model.W_U),
        ("b_U", "b_U is there whatever the latent does: leave it out", dec @ model.W_U + model.b_U),
        ("embed", "the logits come from the unembedding W_U [d_model d_vocab], not W_E", dec @ model.W_E.T),
        ("softmax", "return the raw change in logits, no softmax", (dec @ model.W_U).softmax(-1)),
        ("log_softmax", "return the raw change in logits, not log-probabilities", (dec @ model.W_U).log_softmax(-1)),
        (
            "de_embedding",
            "this is the de-embedding (input side); the logit effect is W_dec[latent] @ W_U",
            model.W_E @ tc.W_enc[:, i],
        ),
        ("activation", "one unit of activation: no factor of b_enc", tc.b_enc[i] * dec @ model.W_U),
        ("activation", "one unit of activation: no factor of b_enc", tc.b_enc[i].abs() * dec @ model.W_U),
        *[
            (
                "layernorm",
                "leave the final normalisation out: its scale depends on the whole residual vector, not on the "
                "latent, so one unit of activation moves the logits by the raw W_dec[latent] @ W_U",
                normalised(dec, kind) @ model.W_U,
            )
            for kind in ("layernorm", "centred_std", "rms")
        ],
        (
            "unit_direction",
            "use the decoder row as it is, not normalised: one unit of activation writes W_dec[latent] itself",
            normalised(dec, "unit") @ model.W_U,
        ),
    ]


def variant_forward(model, tc, frozen, embeds, latents=None, error=None, **bug) -> tuple[Tensor, Tensor]:
    """The local replacement model with one mistake switched on (`bug` names it); no bug = the reference."""

    def ln(v: Tensor, scale: Tensor, frozen_scale: bool = True) -> Tensor:
        centred = v - v.mean(*(() if bug.get("global_mean") else (-1, True))) if not bug.get("no_centring") else v
        scale = scale.mean() if bug.get("scale_mean") else scale
        if not frozen_scale:
            scale = (centred.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()
        return centred / scale

    x1 = embeds if bug.get("no_ln1") else ln(embeds, frozen.ln1_scale, not bug.get("ln_recomputed"))
    pattern = frozen.pattern
    if bug.get("pattern_recomputed"):
        q = torch.einsum("kd,hde->hke", x1, model.W_Q[0]) + model.b_Q[0][:, None]
        k = torch.einsum("kd,hde->hke", x1, model.W_K[0]) + model.b_K[0][:, None]
        scores = torch.einsum("hqe,hke->hqk", q, k) / model.cfg.d_head**0.5
        causal = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).tril()
        pattern = scores.masked_fill(~causal, -torch.inf).softmax(-1)
    pattern = pattern.softmax(-1) if bug.get("pattern_softmaxed") else pattern
    if bug.get("pattern_transposed"):
        pattern = pattern.transpose(-1, -2)
    if bug.get("pattern_summed_q") or bug.get("pattern_summed_k"):  # z[h, k] = (Σ_q or Σ_k pattern) · v[h, k]
        pattern = torch.diag_embed(pattern.sum(-2 if bug.get("pattern_summed_q") else -1))
    v = torch.einsum("kd,hde->hke", x1, model.W_V[0]) + model.b_V[0][:, None]
    attn = torch.einsum("hqe,hed->qd", torch.einsum("hqk,hke->hqe", pattern, v), model.W_O[0])
    b_O = model.b_O[0] * (model.cfg.n_heads if bug.get("b_O_per_head") else 1)
    stream = 0 if bug.get("no_residual") else x1 if bug.get("resid_x1") else embeds
    e = frozen.error if error is None or bug.get("error_ignored") else error + bug.get("error_added", 0) * frozen.error
    resid_mid = attn + (0 if bug.get("no_b_O") else b_O) + stream + (e if bug.get("error_in_ln2") else 0)
    x = ln(resid_mid, frozen.ln1_scale if bug.get("ln2_scale_ln1") else frozen.ln2_scale, not bug.get("ln_recomputed"))
    if bug.get("mlp_in_unscaled"):
        x = resid_mid - resid_mid.mean(-1, keepdim=True)
    pre = x @ tc.W_enc + tc.b_enc
    gated = (pre.relu() if bug.get("relu_active") else pre) * frozen.active
    if latents is not None and not bug.get("latents_ignored"):
        f = latents * frozen.active if bug.get("latents_masked") else latents + bug.get("latents_added", 0) * gated
    elif bug.get("acts_recomputed"):
        f = tc.encode(x)
    elif bug.get("acts_constant"):
        f = frozen.acts
    else:
        f = gated
    skip_in = (
        resid_mid if bug.get("skip_resid") else embeds if bug.get("skip_embeds") else x1 if bug.get("skip_x1") else x
    )
    skip = tc.skip(skip_in) if not bug.get("skip_untransposed") else x @ tc.W_skip
    mlp_out = f @ tc.W_dec + (0 if bug.get("no_b_dec") else tc.b_dec) + (0 if bug.get("no_skip") else skip)
    after_ln = bug.get("error_after_ln")  # the error added to the normalised stream, after ln_final
    mlp_out = mlp_out + (0 if bug.get("no_error") or bug.get("error_in_ln2") or after_ln else e)
    resid = mlp_out if bug.get("no_final_resid") else (embeds if bug.get("final_no_attn") else resid_mid) + mlp_out
    resid = resid + embeds if bug.get("embeds_twice") else resid
    final = frozen.ln2_scale if bug.get("final_scale_ln2") else frozen.final_scale
    logits = resid if bug.get("no_final_ln") else ln(resid, final, not bug.get("ln_recomputed"))
    logits = (logits + (e if after_ln else 0)) @ model.W_U + (0 if bug.get("no_b_U") else model.b_U)
    return pre, logits


LINEARISED_MISTAKES = {
    "ln_recomputed": "the normalisation scales must stay frozen: divide by frozen.ln*_scale, never recompute them",
    "pattern_recomputed": "the attention pattern must stay frozen: use frozen.pattern instead of recomputing it",
    "pattern_transposed": "frozen.pattern is [head query key]: einsum 'h q k, h k e -> h q e'",
    "no_centring": "each normalisation subtracts the mean over d_model before dividing by the scale",
    "no_residual": "resid_mid = embeds + attention output: keep the residual connection",
    "mlp_in_unscaled": "the MLP input is LN2(resid_mid): divide by frozen.ln2_scale",
    "acts_recomputed": "which latents fire is frozen: f = pre * frozen.active, not the JumpReLU of the new pre",
    "acts_constant": "f = pre * frozen.active depends on the input; frozen.acts is a constant",
    "no_error": "add the error term (frozen.error, or `error` when given) to the MLP output",
    "no_b_U": "the logits include the unembedding bias b_U",
    "no_skip": "the transcoder's output includes its skip connection: add tc.skip(x) (x @ W_skip.T)",
    "latents_ignored": "when `latents` is given, use it for f instead of pre * frozen.active",
    "error_ignored": "when `error` is given, use it instead of frozen.error",
}

# Terms forgotten or taken from the wrong place (the held-out round): the same flags of `variant_forward`.
LINEARISED_TERM_MISTAKES = {
    "ln2_scale_ln1": "LN2 divides by its own frozen scale: x = LN(resid_mid) / frozen.ln2_scale, not ln1_scale",
    "final_scale_ln2": "the final normalisation divides by frozen.final_scale, not ln2_scale",
    "no_b_O": "the attention output includes the bias b_O: resid_mid = embeds + z @ W_O + b_O",
    "latents_masked": "when `latents` is given, use it as it is for f: no multiplication by frozen.active",
    "skip_resid": "the skip connection reads the MLP input x = LN2(resid_mid), like the encoder: tc.skip(x)",
    "no_b_dec": "the transcoder's output includes b_dec: f @ W_dec + b_dec + skip + error",
    "no_final_ln": "normalise before unembedding: logits = LN_final(resid_mid + mlp_out) @ W_U + b_U, "
    "dividing by frozen.final_scale",
    "no_final_resid": "the MLP output is added to the residual stream: the final LN reads resid_mid + mlp_out, "
    "not mlp_out alone",
    "b_O_per_head": "b_O is added once, after the sum over heads (z @ W_O summed over heads, then + b_O), not per head",
    "final_no_attn": "the final LN reads resid_mid + mlp_out, and resid_mid includes the attention output: "
    "embeds + attention + b_O + mlp_out, not embeds + mlp_out",
}


def target_rows(graph: circuits.AttributionGraph) -> list[int]:
    return list(range(graph.n_latents)) + list(range(graph.nodes("logit").start, graph.n_nodes))


def target_values(forward: Callable, graph, frozen, embeds, latent_vals, error) -> Tensor:
    """Target values (latent pre-activations, then last-position logits) of the linearised model."""
    latents = torch.zeros_like(frozen.acts)
    latents[graph.latent_pos, graph.latent_idx] = latent_vals
    pre, logits = forward(frozen, embeds, latents, error)
    return torch.cat([pre[graph.latent_pos, graph.latent_idx], logits[-1, graph.logit_ids]])


def direct_edges(model, tc, frozen, graph, **bug) -> Tensor:
    """Every edge computed without gradients: a target's value minus its value with one source set to zero."""
    fwd = lambda fr, e, lat, r: variant_forward(model, tc, fr, e, lat, r, **bug)
    vals = frozen.acts[graph.latent_pos, graph.latent_idx]
    base = target_values(fwd, graph, frozen, frozen.embeds, vals, frozen.error)
    A = torch.zeros(graph.n_nodes, graph.n_nodes, device=frozen.embeds.device)
    rows = target_rows(graph)
    for j in range(graph.n_latents):
        v = vals.clone()
        v[j] = 0
        A[rows, j] = base - target_values(fwd, graph, frozen, frozen.embeds, v, frozen.error)
    for p in range(graph.n_pos):
        for kind in ("error", "token"):
            e, r = frozen.embeds.clone(), frozen.error.clone()
            (r if kind == "error" else e)[p] = 0
            A[rows, graph.nodes(kind).start + p] = base - target_values(fwd, graph, frozen, e, vals, r)
    return A


def edge_mistakes(model, tc, frozen, graph, correct: Tensor) -> list[tuple[str, str, Tensor]]:
    rows = target_rows(graph)
    out = [
        ("transposed", "adjacency[target, source]: a row holds the edges *into* a node", correct.T.contiguous()),
        ("abs", "keep the signs: an inhibitory edge is negative", correct.abs()),
    ]
    grad_only = correct.clone()
    vals = frozen.acts[graph.latent_pos, graph.latent_idx]
    grad_only[:, graph.nodes("latent")] = correct[:, graph.nodes("latent")] / vals
    out.append(
        (
            "gradient_only",
            "an edge is gradient × the source's value (its activation), not the gradient alone",
            grad_only,
        )
    )
    no_error = correct.clone()
    no_error[:, graph.nodes("error")] = 0
    out.append(
        (
            "error_nodes",
            "observed: the error nodes' columns are zero (to rounding), the rest is right. Possible causes, e.g.: "
            "an edge grad.sum(-1) instead of (grad · error).sum(-1) (the final normalisation centres the gradient, "
            "so its sum over d_model is 0); error vectors that are not leaves requiring grad; a leaf without the "
            "error's values (zeros_like); or columns never filled",
            no_error,
        )
    )
    only_logits = correct.clone()
    only_logits[: graph.n_latents] = 0
    out.append(
        (
            "latent_targets",
            "the latents are targets too: one backward pass from each latent's pre-activation",
            only_logits,
        )
    )
    # Token nodes valued by the token embedding alone (position embedding left out).
    no_pos = correct.clone()
    for p in range(graph.n_pos):
        no_pos[rows, graph.nodes("token").start + p] = direct_edges_token_only(model, tc, frozen, graph, p)
    out.append(
        (
            "position",
            "a token node's vector is the whole residual stream before the block: token and position embedding",
            no_pos,
        )
    )
    # Real gradients (nothing frozen) and total effects (latents not leaves).
    unfrozen = autograd_edges(model, tc, frozen, graph, ln_recomputed=True, pattern_recomputed=True)
    out.append(
        (
            "not_linearised",
            "freeze the attention patterns and normalisation scales: differentiate linearised_forward, not the model",
            unfrozen,
        )
    )
    total = correct.clone()
    total[rows, graph.nodes("token")] = autograd_edges(model, tc, frozen, graph, total=True)[rows][
        :, graph.nodes("token")
    ]
    out.append(
        (
            "total_effect",
            "pass the latents in as leaves: otherwise token → logit edges also count the paths through latents",
            total,
        )
    )
    out.append(
        (
            "total_effect",
            "pass the latents in as leaves (latents=...): without them the latent columns stay zero and the token "
            "edges also count the paths through latents",
            autograd_edges(model, tc, frozen, graph, total=True),
        )
    )
    out.append(
        (
            "logprob",
            "the logit nodes' value is the logit, not the log-probability",
            autograd_edges(model, tc, frozen, graph, logprob=True),
        )
    )
    # Every path from a token or error vector goes through a normalisation that subtracts the mean over d_model, so
    # the gradient alone sums to 0 there: "gradient summed" and "columns left empty" both give zero columns.
    for kinds in (("token",), ("token", "error")):
        empty = correct.clone()
        for kind in kinds:
            empty[:, graph.nodes(kind)] = 0
        out.append(
            (
                "token_nodes",
                zero_vector_columns(kinds),
                empty,
            )
        )
    swapped = correct.clone()
    swapped[:, graph.nodes("token")], swapped[:, graph.nodes("error")] = (
        correct[:, graph.nodes("error")],
        correct[:, graph.nodes("token")],
    )
    out.append(
        (
            "columns_swapped",
            "the token and error columns are swapped: tokens get (grad_embeds · embeds).sum(-1), errors "
            "(grad_error · error).sum(-1), each in its own block of columns (graph.nodes(kind))",
            swapped,
        )
    )
    return out


def direct_edges_token_only(model, tc, frozen, graph, p: int) -> Tensor:
    fwd = lambda fr, e, lat, r: variant_forward(model, tc, fr, e, lat, r)
    vals = frozen.acts[graph.latent_pos, graph.latent_idx]
    base = target_values(fwd, graph, frozen, frozen.embeds, vals, frozen.error)
    e = frozen.embeds.clone()
    e[p] = e[p] - model.W_E[graph.token_ids[p]]
    return base - target_values(fwd, graph, frozen, e, vals, frozen.error)


def autograd_edges(model, tc, frozen, graph, total: bool = False, logprob: bool = False, **bug) -> Tensor:
    """Gradient-times-value edges of a (possibly buggy) linearised model; `total` keeps latents as functions."""
    pos, idx = graph.latent_pos, graph.latent_idx
    A = torch.zeros(graph.n_nodes, graph.n_nodes, device=frozen.embeds.device)
    with torch.enable_grad():
        embeds = frozen.embeds.clone().requires_grad_(True)
        error = frozen.error.clone().requires_grad_(True)
        vals = frozen.acts[pos, idx].clone().requires_grad_(True)
        latents = torch.zeros_like(frozen.acts)
        latents[pos, idx] = vals
        pre, logits = variant_forward(model, tc, frozen, embeds, None if total else latents, error, **bug)
        if total:
            _, logits = variant_forward(model, tc, frozen, embeds, None, error, **bug)
            logits = logits + 0 * vals.sum()
        if logprob:
            logits = logits.log_softmax(-1)
        targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
        for row, t in zip(target_rows(graph), targets, strict=True):
            gv, ge, gm = torch.autograd.grad(t, (vals, error, embeds), retain_graph=True, allow_unused=True)
            gv = torch.zeros_like(vals) if gv is None else gv
            A[row, graph.nodes("latent")] = gv * vals.detach()
            A[row, graph.nodes("error")] = (ge * error.detach()).sum(-1)
            A[row, graph.nodes("token")] = (gm * embeds.detach()).sum(-1)
    return A


def influence_mistakes(A: Tensor, weights: Tensor) -> list[tuple[str, str, Tensor]]:
    eye = torch.eye(len(A), device=A.device)
    rownorm = lambda M: M / M.sum(-1, keepdim=True).clamp_min(1e-12)
    series = lambda M: torch.linalg.inv(eye - M) - eye
    a_hat = rownorm(A.abs())
    col = A.abs() / A.abs().sum(0, keepdim=True).clamp_min(1e-12)
    signed = A / A.sum(-1, keepdim=True).where(A.sum(-1, keepdim=True) != 0, torch.ones(1, device=A.device))
    return [
        (
            "signed",
            "take |adjacency| before normalising: influence counts inhibition as much as excitation",
            weights @ series(signed),
        ),
        (
            "unnormalised",
            "divide each row of |A| by its sum, so a node's incoming shares add up to 1",
            weights @ series(A.abs()),
        ),
        ("columns", "normalise rows (the edges *into* a node), not columns", weights @ series(col)),
        ("direct_only", "count paths of every length: (I - Â)⁻¹ - I, not Â alone", weights @ a_hat),
        (
            "identity",
            "subtract the identity: a node's influence on itself is not a path",
            weights @ torch.linalg.inv(eye - a_hat),
        ),
        (
            "transposed",
            "adjacency[target, source]: influence flows from sources to targets, so contract w with the paths "
            "matrix's target axis, w @ B: not B @ w, nor an elementwise (B * w).sum(...) (broadcasting lines w up "
            "with the source axis)",
            series(a_hat) @ weights,
        ),
        (
            "unweighted",
            "weight each logit by its probability (`logit_weights`), not equally",
            (weights > 0).float() @ series(a_hat),
        ),
        (
            "global",
            "normalise each row by its own sum, not by the sum of the whole matrix",
            weights @ series(A.abs() / A.abs().sum()),
        ),
        (
            "global_max",
            "normalise each row by its own sum (its incoming shares add up to 1), not by the largest entry of the "
            "whole matrix",
            weights @ series(A.abs() / A.abs().max()),
        ),
        ("two_steps", "the series goes on past Â²: (I - Â)⁻¹ - I", weights @ (a_hat + a_hat @ a_hat)),
        (
            "l2_rows",
            "make each row's shares add up to 1: divide by the row's *sum* (F.normalize(..., p=1)), not its L2 norm",
            weights @ series(torch.nn.functional.normalize(A.abs(), dim=-1)),
        ),
        (
            "max_rows",
            "divide each row by its sum, not by its largest entry",
            weights @ series(A.abs() / A.abs().amax(-1, keepdim=True).clamp_min(1e-12)),
        ),
        (
            "series_sign",
            "Â + Â² + ... = (I - Â)⁻¹ - I: a minus sign, not (I + Â)⁻¹",
            weights @ (torch.linalg.inv(eye + a_hat) - eye),
        ),
        (
            "signed_row_sum",
            "divide each row of |A| by the sum of its absolute values, not by |sum of the signed row|: with signs "
            "mixed the signed sum is smaller, and the shares no longer add up to 1",
            weights @ series(A.abs() / A.sum(-1, keepdim=True).abs().clamp_min(1e-12)),
        ),
        *[
            (
                "softmax_rows",
                "make each incoming share proportional to |A|: divide the row by its sum; a softmax weights by "
                "exp(|A|) (and gives the absent edges weight too)",
                weights @ series(torch.where(A.ne(0).any(-1, keepdim=True), m, torch.zeros_like(m))),
            )
            for m in (
                A.abs().softmax(-1),
                A.abs().masked_fill(A == 0, -torch.inf).softmax(-1).nan_to_num(0.0),
            )
        ],
        (
            "weights_normalised",
            "use logit_weights as they are (the logits' probabilities), without rescaling them to sum to 1",
            (weights / weights.sum()) @ series(a_hat),
        ),
    ]


def quantile_variant(acts: Tensor, k: int, n_bands: int, **bug) -> list[tuple[Tensor, Tensor, Tensor]]:
    flat = acts.clone()
    if not (bug.get("bos") or bug.get("bos_candidates")):
        flat[:, 0] = 0
    flat = flat.flatten()
    top = acts.max() if bug.get("top_with_bos") else acts[:, 1:].max() if bug.get("bos_candidates") else flat.max()
    firing = flat[flat > 0]
    groups = []
    for j in range(n_bands):
        lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
        if bug.get("floor_division"):
            lo, hi = top * (n_bands - j - 1) // n_bands, top * (n_bands - j) // n_bands
        if bug.get("quantiles"):
            lo = torch.quantile(firing, (n_bands - j - 1) / n_bands) if j < n_bands - 1 else torch.zeros(())
            hi = torch.quantile(firing, (n_bands - j) / n_bands)
        if bug.get("boundary"):
            in_band = (flat >= lo) & (flat < hi) if j > 0 else (flat >= lo) & (flat <= hi)
        elif bug.get("zeros") and j == n_bands - 1:
            in_band = (flat >= lo) & (flat <= hi)
        else:
            in_band = (flat > lo) & (flat <= hi)
        n = k if bug.get("short_band") else min(k, int(in_band.sum()))
        if bug.get("middle_from_bottom"):  # in_band is set: only the middle moves
            lo, hi = top * j / n_bands, top * (j + 1) / n_bands
        if bug.get("largest"):
            score = torch.where(in_band, -flat, torch.full_like(flat, float("inf")))
        elif bug.get("outside_band"):
            score, n = (flat - (lo + hi) / 2).abs(), k
        else:
            score = torch.where(in_band, (flat - (lo + hi) / 2).abs(), torch.full_like(flat, float("inf")))
        chosen = score.topk(n, largest=False).indices
        chosen = chosen[flat[chosen].argsort(descending=not bug.get("ascending"))]
        seq, pos = (
            (chosen % acts.shape[0], chosen // acts.shape[0])
            if bug.get("unravel")
            else (chosen // acts.shape[1], chosen % acts.shape[1])
        )
        groups.append((flat[chosen], seq, pos - 1 if bug.get("slice_offset") else pos))
    return groups[::-1] if bug.get("order") else groups


QUANTILE_MISTAKES = {
    "bos": "leave position 0 (BOS) out: set it to 0 in a copy before anything else",
    "boundary": "band j holds m(n-j-1)/n < a <= m(n-j)/n: open at the bottom, closed at the top",
    "zeros": "an activation of 0 is not firing: the lowest band is (0, m/n], without 0",
    "quantiles": "the bands split the activation *range* (0, max] into equal parts, not the distribution into "
    "quantiles",
    "largest": "take the examples closest to each band's middle, not the largest in the band",
    "middle_from_bottom": "the middles are counted from the bottom (m·(j+½)/n) while the bands count from the top: "
    "band j (highest first) is (m(n-j-1)/n, m(n-j)/n], its middle m(n-j-½)/n",
    "bos_candidates": "position 0 (BOS) was left out of the maximum m but kept among the candidates: set it to 0 "
    "in a copy before choosing too",
    "outside_band": "choose only among activations inside the band (mask the others out before topk)",
    "short_band": "a band can hold fewer than k examples: take min(k, number in the band) (or a band test is missing "
    "one of its edges: (a > lo) & (a <= hi))",
    "floor_division": "the band edges are m·(n-j-1)/n and m·(n-j)/n with true division `/`: floor division `//` "
    "rounds them down to whole numbers (the max m is a float)",
    "ascending": "sort each group by decreasing activation",
    "order": "return the bands from the highest to the lowest",
    "unravel": "flat index i is sequence i // seq_len, position i % seq_len",
    "top_with_bos": "take the maximum m after setting position 0 (BOS) to 0: the bands split (0, m] of the other "
    "positions",
    "slice_offset": "the positions are off by one: position p of acts[:, 1:] is position p + 1 of acts (or zero "
    "position 0 in a copy instead of slicing it off)",
}


# On inputs where the nearest values outside a band sit on its lower edge, both readings fit: say so.
EDGE_OR_OUTSIDE = (
    "two mistakes fit what you returned: the bands are closed at the bottom (a value on a band's lower edge joins "
    "it: use a > lo, not a >= lo), or the k closest to the middle are chosen among all activations, not only inside "
    "the band (mask the others out before sorting)"
)


def closed_bottom_values(acts: Tensor, k: int, n_bands: int) -> list[list[Tensor]]:
    """The values chosen with bands closed at the bottom, [lo, hi] (0 counted in the lowest band or not)."""
    flat = acts.clone()
    flat[:, 0] = 0
    flat, readings = flat.flatten(), []
    for zeros in (True, False):
        groups = []
        for j in range(n_bands):
            lo, hi = flat.max() * (n_bands - j - 1) / n_bands, flat.max() * (n_bands - j) / n_bands
            vals = flat[(flat >= lo) & (flat <= hi) & ((flat > 0) | zeros)]
            groups.append([vals[(vals - (lo + hi) / 2).abs().argsort()[:k]].sort(descending=True).values])
        readings.append(groups)
    return readings


def same_values(a, b) -> bool:
    """The same values in every group (indices aside: equal activations, zeros above all, tie in any order)."""
    try:
        return len(a) == len(b) and all(
            x[0].shape == y[0].shape and torch.allclose(x[0].float(), y[0].float()) for x, y in zip(a, b, strict=True)
        )
    except (TypeError, IndexError, RuntimeError, AttributeError):
        return False


def same_groups(a, b) -> bool:
    try:
        return len(a) == len(b) and all(
            x[0].shape == y[0].shape
            and torch.allclose(x[0].float(), y[0].float())
            and torch.equal(x[1].long(), y[1].long())
            and torch.equal(x[2].long(), y[2].long())
            for x, y in zip(a, b, strict=True)
        )
    except (TypeError, IndexError, RuntimeError, AttributeError):
        return False
