"""The catalogue of known mistakes for section 6b's checkers (`tests.part6b_circuits`).

Each function returns what a realistic buggy implementation returns on the checker's inputs (a mutant of the
reference, computed with the same shipped model and transcoder), with the code and hint the checker reports when
a learner's output matches it. `variant_forward` is the local replacement model with one mistake switched on
(none: the reference); `direct_edges` computes a graph's edges without gradients, by zeroing one source at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from utils import part6b_circuits as circuits
from utils.transcoder import Transcoder


def synthetic_transcoder(device: torch.device) -> Transcoder:
    """Small transcoder with a skip connection, per-latent thresholds and non-zero biases everywhere."""
    g = torch.Generator().manual_seed(7)
    d, d_sae = 6, 11
    t = lambda *s: torch.randn(*s, generator=g)
    return Transcoder(
        t(d, d_sae), t(d_sae) * 0.5, t(d_sae, d), t(d), 0.2 + torch.rand(d_sae, generator=g), W_skip=t(d, d) * 0.5
    ).to(device)


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
            "threshold_scalar",
            "threshold has one entry per latent: compare pre with the whole vector",
            jump(pre, th0) if not torch.equal(tc.threshold, th0.expand_as(tc.threshold)) else None,
        ),
    ]
    rows = [(c, h, a, dec(a)) for c, h, a in out if a is not None]
    acts = jump(pre, tc.threshold)
    rows += [
        ("b_dec", "add b_dec to the output", acts, acts @ tc.W_dec + skip),
        ("no_nonlinearity", "decode the activations, not the pre-activations", acts, dec(pre)),
    ]
    if tc.W_skip is not None:
        rows += [
            ("skip", "add the skip connection x @ W_skip.T when tc.W_skip is not None", acts, dec(acts) - skip),
            (
                "skip_transposed",
                "W_skip is [d_out d_in]: the term is x @ W_skip.T",
                acts,
                dec(acts) - skip + x @ tc.W_skip,
            ),
        ]
    return rows


def de_embedding_mistakes(model, tc: Transcoder, i: int) -> list[tuple[str, str, Tensor]]:
    enc = tc.W_enc[:, i]
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
    ]


def ov_circuit(model) -> Tensor:
    """The summed OV circuit of the layer, [d_model d_model] (a path through attention)."""
    return torch.einsum("hde,hef->df", model.W_V[0], model.W_O[0])


def logit_effect_mistakes(model, tc: Transcoder, i: int) -> list[tuple[str, str, Tensor]]:
    dec = tc.W_dec[i]
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
        ("activation", "one unit of activation, not the threshold's worth", tc.threshold[i] * dec @ model.W_U),
    ]


def variant_forward(model, tc, frozen, embeds, latents=None, error=None, **bug) -> tuple[Tensor, Tensor]:
    """The local replacement model with one mistake switched on (`bug` names it); no bug = the reference."""

    def ln(v: Tensor, scale: Tensor, frozen_scale: bool = True) -> Tensor:
        centred = v - v.mean(-1, keepdim=True) if not bug.get("no_centring") else v
        if not frozen_scale:
            scale = (centred.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()
        return centred / scale

    x1 = ln(embeds, frozen.ln1_scale, not bug.get("ln_recomputed"))
    pattern = frozen.pattern
    if bug.get("pattern_recomputed"):
        q = torch.einsum("kd,hde->hke", x1, model.W_Q[0]) + model.b_Q[0][:, None]
        k = torch.einsum("kd,hde->hke", x1, model.W_K[0]) + model.b_K[0][:, None]
        scores = torch.einsum("hqe,hke->hqk", q, k) / model.cfg.d_head**0.5
        causal = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).tril()
        pattern = scores.masked_fill(~causal, -torch.inf).softmax(-1)
    if bug.get("pattern_transposed"):
        pattern = pattern.transpose(-1, -2)
    v = torch.einsum("kd,hde->hke", x1, model.W_V[0]) + model.b_V[0][:, None]
    attn = torch.einsum("hqe,hed->qd", torch.einsum("hqk,hke->hqe", pattern, v), model.W_O[0])
    resid_mid = attn + model.b_O[0] + (0 if bug.get("no_residual") else embeds)
    x = ln(resid_mid, frozen.ln2_scale, not bug.get("ln_recomputed"))
    if bug.get("mlp_in_unscaled"):
        x = resid_mid - resid_mid.mean(-1, keepdim=True)
    pre = x @ tc.W_enc + tc.b_enc
    if latents is not None and not bug.get("latents_ignored"):
        f = latents
    elif bug.get("acts_recomputed"):
        f = tc.encode(x)
    elif bug.get("acts_constant"):
        f = frozen.acts
    else:
        f = pre * frozen.active
    e = frozen.error if (error is None or bug.get("error_ignored")) else error
    mlp_out = f @ tc.W_dec + tc.b_dec + (0 if bug.get("no_skip") else tc.skip(x)) + (0 if bug.get("no_error") else e)
    logits = ln(resid_mid + mlp_out, frozen.final_scale, not bug.get("ln_recomputed"))
    logits = logits @ model.W_U + (0 if bug.get("no_b_U") else model.b_U)
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
        ("error_nodes", "make the error vectors a leaf too and fill their columns: (grad · error).sum(-1)", no_error)
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
            "logprob",
            "the logit nodes' value is the logit, not the log-probability",
            autograd_edges(model, tc, frozen, graph, logprob=True),
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
            "adjacency[target, source]: influence flows from sources to targets, so use w @ B, not B @ w",
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
        ("two_steps", "the series goes on past Â²: (I - Â)⁻¹ - I", weights @ (a_hat + a_hat @ a_hat)),
    ]


def quantile_variant(acts: Tensor, k: int, n_bands: int, **bug) -> list[tuple[Tensor, Tensor, Tensor]]:
    flat = acts.clone()
    if not bug.get("bos"):
        flat[:, 0] = 0
    flat = flat.flatten()
    top = flat.max()
    firing = flat[flat > 0]
    groups = []
    for j in range(n_bands):
        lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
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
        groups.append((flat[chosen], seq, pos))
    return groups[::-1] if bug.get("order") else groups


QUANTILE_MISTAKES = {
    "bos": "leave position 0 (BOS) out: set it to 0 in a copy before anything else",
    "boundary": "band j holds m(n-j-1)/n < a <= m(n-j)/n: open at the bottom, closed at the top",
    "zeros": "an activation of 0 is not firing: the lowest band is (0, m/n], without 0",
    "quantiles": "the bands split the activation *range* (0, max] into equal parts, not the distribution into "
    "quantiles",
    "largest": "take the examples closest to each band's middle, not the largest in the band",
    "outside_band": "choose only among activations inside the band (mask the others out before topk)",
    "short_band": "a band can hold fewer than k examples: take min(k, number in the band)",
    "ascending": "sort each group by decreasing activation",
    "order": "return the bands from the highest to the lowest",
    "unravel": "flat index i is sequence i // seq_len, position i % seq_len",
}


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
