"""Proofs for part 6b's checkers, second file: mistakes from the held-out trial, each named by its code."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import tests.part6b_circuits as checks
import tests.part6b_circuits_mistakes as mistakes
from solutions import part6b_circuits as ref
from tests.proving import assert_fails, assert_passes


def de_position_zero(model, tc, latent):
    return (model.W_E + model.W_pos[0]) @ tc.W_enc[:, latent]


def influence_l2_rows(adjacency, logit_weights):
    a = F.normalize(adjacency.abs(), dim=-1)
    eye = torch.eye(len(a))
    return logit_weights @ (torch.linalg.inv(eye - a) - eye)


def influence_max_rows(adjacency, logit_weights):
    a = adjacency.abs() / adjacency.abs().amax(-1, keepdim=True).clamp_min(1e-12)
    eye = torch.eye(len(a))
    return logit_weights @ (torch.linalg.inv(eye - a) - eye)


def influence_plus(adjacency, logit_weights):
    a = adjacency.abs() / adjacency.abs().sum(-1, keepdim=True).clamp_min(1e-12)
    eye = torch.eye(len(a))
    return logit_weights @ (torch.linalg.inv(eye + a) - eye)


def influence_weights_normalised(adjacency, logit_weights):
    return ref.node_influence(adjacency, logit_weights / logit_weights.sum())


def _losses(write=None, ablate_input=False, percent=False):
    def impl(model, tc, tokens):
        box = {}

        def loss(hooks):
            return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()

        clean = loss([])
        out = write or (lambda x: tc(x))
        replaced = loss(
            [(tc.hook_name, lambda a, hook: box.__setitem__("x", a)), (tc.hook_name_out, lambda a, hook: out(box["x"]))]
        )
        zero = loss([(tc.hook_name if ablate_input else tc.hook_name_out, lambda a, hook: torch.zeros_like(a))])
        recovered = (zero - replaced) / (zero - clean) * (100 if percent else 1)
        return {"clean": clean, "replaced": replaced, "zero_ablated": zero, "recovered": recovered}

    return impl


MISTAKES = [
    (checks.test_latent_de_embedding, de_position_zero, "positional"),
    (checks.test_node_influence, influence_l2_rows, "l2_rows"),
    (checks.test_node_influence, influence_max_rows, "max_rows"),
    (checks.test_node_influence, influence_plus, "series_sign"),
    (checks.test_node_influence, influence_weights_normalised, "weights_normalised"),
    (checks.test_replacement_losses, _losses(ablate_input=True), "ablation_input"),
    (checks.test_replacement_losses, _losses(percent=True), "recovered_formula"),
]


@pytest.mark.parametrize(("check", "impl", "code"), MISTAKES, ids=[c for _, _, c in MISTAKES])
def test_heldout_mistakes_are_named(check, impl, code):
    assert_fails(check, impl, code)


def test_replacement_losses_without_the_skip_is_named():
    _, tc, _ = checks._inputs(torch.device("cpu"))
    error = assert_fails(checks.test_replacement_losses, _losses(write=lambda x: tc.decode(tc.encode(x))), "no_skip")
    assert "skip" in error.hint


def test_percentage_is_named():
    error = assert_fails(checks.test_replacement_losses, _losses(percent=True), "recovered_formula")
    assert "percentage" in error.hint


# --------------------------------------------------------------------------------------------
# Second pass: mistakes named by inferred structure (scalar gate, weighted terms) and new catalogue entries
# --------------------------------------------------------------------------------------------
def _fwd(threshold=None, out_weights=(1, 1, 1), skip_from_out=False):
    def impl(tc, x):
        pre = x @ tc.W_enc + tc.b_enc
        th = tc.threshold if threshold is None else threshold(tc.threshold)
        acts = pre * (pre > th)
        dec, b_dec = acts @ tc.W_dec, tc.b_dec
        skip = x @ tc.W_skip.T if tc.W_skip is not None else 0
        if skip_from_out:
            return acts, dec + b_dec + ((dec + b_dec) @ tc.W_skip.T if tc.W_skip is not None else 0)
        w_dec, w_b, w_skip = out_weights
        return acts, w_dec * dec + w_b * b_dec + w_skip * skip

    return impl


FORWARD = [
    (_fwd(threshold=lambda th: th.mean()), "threshold_scalar"),
    (_fwd(threshold=lambda th: th.max()), "threshold_scalar"),
    (_fwd(threshold=lambda th: th.median()), "threshold_scalar"),
    (_fwd(out_weights=(1, 0, 0)), "out_terms"),
    (_fwd(out_weights=(1, 2, 1)), "out_terms"),
    (_fwd(out_weights=(1, 1, -1)), "out_terms"),
    (_fwd(skip_from_out=True), "skip_from_out"),
]


@pytest.mark.parametrize(("impl", "code"), FORWARD, ids=[f"{c}{i}" for i, (_, c) in enumerate(FORWARD)])
def test_transcoder_forward_heldout(impl, code):
    error = assert_fails(checks.test_transcoder_forward, impl, code)
    if code == "out_terms":
        assert "b_dec" in error.hint or "skip" in error.hint


def _recovered(formula):
    def impl(model, tc, tokens):
        out = ref.replacement_losses(model, tc, tokens)
        out["recovered"] = formula(out["clean"], out["replaced"], out["zero_ablated"])
        return out

    return impl


@pytest.mark.parametrize(
    ("formula", "code"),
    [
        (lambda c, r, z: (z - r) / z, "recovered_denominator"),
        (lambda c, r, z: 1 - r / z, "recovered_denominator"),
        (lambda c, r, z: c / r, "recovered_ratio"),
        (lambda c, r, z: r / c, "recovered_ratio"),
        (lambda c, r, z: (r - c) / (z - c), "recovered_formula"),
    ],
)
def test_recovered_formulas_are_named(formula, code):
    assert_fails(checks.test_replacement_losses, _recovered(formula), code)


def _layernorm(v):
    v = v - v.mean(-1, keepdim=True)
    return v / (v.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt()


TOKEN_VIEWS = [
    (checks.test_latent_de_embedding, lambda m, t, i: _layernorm(m.W_E) @ t.W_enc[:, i], "layernorm"),
    (checks.test_latent_de_embedding, lambda m, t, i: F.normalize(m.W_E, dim=-1) @ t.W_enc[:, i], "layernorm"),
    (checks.test_latent_de_embedding, lambda m, t, i: m.W_E @ F.normalize(t.W_enc[:, i], dim=0), "unit_direction"),
    (checks.test_latent_de_embedding, lambda m, t, i: m.W_E @ (t.W_enc[:, i] / t.W_enc[:, i].norm()), "unit_direction"),
    (
        checks.test_latent_de_embedding,
        lambda m, t, i: m.W_E @ t.W_enc[:, i] + t.b_enc[i] - t.threshold[i],
        "bias_threshold",
    ),
    (checks.test_latent_logit_effect, lambda m, t, i: _layernorm(t.W_dec[i]) @ m.W_U, "layernorm"),
    (
        checks.test_latent_logit_effect,
        lambda m, t, i: ((t.W_dec[i] - t.W_dec[i].mean()) / t.W_dec[i].std()) @ m.W_U,
        "layernorm",
    ),
    (checks.test_latent_logit_effect, lambda m, t, i: t.b_enc[i] * (t.W_dec[i] @ m.W_U), "activation"),
    (checks.test_latent_logit_effect, lambda m, t, i: t.b_enc[i].abs() * (t.W_dec[i] @ m.W_U), "activation"),
    (checks.test_latent_logit_effect, lambda m, t, i: t.W_dec[(i + 1) % t.d_sae] @ m.W_U, "wrong_latent"),
    (checks.test_latent_de_embedding, lambda m, t, i: m.W_E @ t.W_enc[:, i - 1], "wrong_latent"),
    (checks.test_latent_de_embedding, lambda m, t, i: m.W_E @ (t.W_enc[:, i] + t.W_dec[i]), "direction"),
    (
        checks.test_latent_logit_effect,
        lambda m, t, i: (t.W_dec[i] + t.W_skip[:, i % t.W_skip.shape[1]]) @ m.W_U,
        "direction",
    ),
]


@pytest.mark.parametrize(
    ("check", "impl", "code"), TOKEN_VIEWS, ids=[f"{c}{i}" for i, (_, _, c) in enumerate(TOKEN_VIEWS)]
)
def test_token_views_heldout(check, impl, code):
    assert_fails(check, impl, code)


def _lin(bug):
    """linearised_forward written as a learner would (batched matmuls), with one held-out mistake switched on."""

    def impl(model, tc, frozen, embeds, latents=None, error=None):
        ln = lambda v, s: (v - v.mean(-1, keepdim=True)) / s
        x1 = ln(embeds, frozen.ln1_scale)
        v = torch.einsum("kd,hde->hke", x1, model.W_V[0]) + model.b_V[0][:, None]
        z = frozen.pattern @ v
        b_O = model.b_O[0] * (model.cfg.n_heads if bug == "b_O_per_head" else 1)  # per head: n_heads times
        attn = torch.einsum("hqe,hed->qd", z, model.W_O[0]) + (0 if bug == "no_b_O" else b_O)
        r1 = embeds + attn
        x = ln(r1, frozen.ln1_scale if bug == "ln2_scale_ln1" else frozen.ln2_scale)
        pre = x @ tc.W_enc + tc.b_enc
        f = pre * frozen.active if latents is None else latents
        if latents is not None and bug == "latents_masked":
            f = latents * frozen.active
        e = frozen.error if error is None else error
        skip = tc.skip(r1 if bug == "skip_resid" else x)
        mlp = f @ tc.W_dec + (0 if bug == "no_b_dec" else tc.b_dec) + skip + e
        final = mlp if bug == "no_final_resid" else (embeds if bug == "final_no_attn" else r1) + mlp
        scale = frozen.ln2_scale if bug == "final_scale_ln2" else frozen.final_scale
        h = final if bug == "no_final_ln" else ln(final, scale)
        return pre, h @ model.W_U + model.b_U

    return impl


@pytest.mark.parametrize("code", list(mistakes.LINEARISED_TERM_MISTAKES))
def test_linearised_forward_heldout(code):
    assert_fails(checks.test_linearised_forward, _lin(code), code)


def test_linearised_forward_written_another_way_passes():
    assert_passes(checks.test_linearised_forward, _lin(None))


def _edges(bug):
    def impl(model, tc, frozen, graph):
        pos, idx = graph.latent_pos, graph.latent_idx
        A = torch.zeros(graph.n_nodes, graph.n_nodes)
        rows = mistakes.target_rows(graph)
        for row_i, row in enumerate(rows):
            with torch.enable_grad():
                embeds = frozen.embeds.clone().requires_grad_(True)
                error = frozen.error.clone().requires_grad_(True)
                vals = frozen.acts[pos, idx].clone().requires_grad_(True)
                latents = torch.zeros_like(frozen.acts).index_put((pos, idx), vals)
                pre, logits = ref.linearised_forward(
                    model, tc, frozen, embeds, None if bug == "no_latents" else latents, error
                )
                torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])[row_i].backward()
            g_vals = vals.grad if vals.grad is not None else torch.zeros_like(vals)
            A[row, graph.nodes("latent")] = g_vals * vals.detach()
            tok = embeds.grad.sum(-1) if bug in ("token_grad", "both_grad") else (embeds.grad * embeds).sum(-1)
            err = error.grad.sum(-1) if bug == "both_grad" else (error.grad * error).sum(-1)
            if bug == "swap":
                tok, err = err, tok
            A[row, graph.nodes("token")], A[row, graph.nodes("error")] = tok.detach(), err.detach()
        return A

    return impl


@pytest.mark.parametrize(
    ("bug", "code"),
    [
        ("token_grad", "token_nodes"),
        ("both_grad", "token_nodes"),
        ("no_latents", "total_effect"),
        ("swap", "columns_swapped"),
    ],
)
def test_attribution_edges_heldout(bug, code):
    assert_fails(checks.test_attribution_edges, _edges(bug), code)


def test_attribution_edges_written_another_way_passes():
    assert_passes(checks.test_attribution_edges, _edges(None))


def _quantiles(bug):
    def impl(acts, k, n_bands=4):
        a = acts.clone()
        a[:, 0] = 0
        top = acts.max() if bug == "top_with_bos" else a.max()
        flat, seq = (acts[:, 1:].flatten(), acts.shape[1] - 1) if bug == "slice" else (a.flatten(), acts.shape[1])
        seq = acts.shape[0] if bug == "split_by_n_seq" else seq  # flat index split by the number of sequences
        out = []
        for j in range(n_bands):
            lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
            below = flat >= lo if bug == "closed" else flat > lo
            above = flat < hi if bug == "open_top" else flat <= hi
            idx = (below & above).nonzero().flatten()
            score = {
                "farthest": -(flat[idx] - (lo + hi) / 2).abs(),
                "lowest": flat[idx],
                "first": torch.arange(len(idx), dtype=flat.dtype),
            }.get(bug, (flat[idx] - (lo + hi) / 2).abs())
            chosen = idx[score.argsort()[:k]]
            if bug != "no_sort":
                chosen = chosen[flat[chosen].argsort(descending=True)]
            out.append((flat[chosen], chosen // seq, chosen % seq))
        return out

    return impl


@pytest.mark.parametrize(
    ("bug", "code"),
    [
        ("top_with_bos", "top_with_bos"),
        ("slice", "slice_offset"),
        ("farthest", "not_closest"),
        ("lowest", "not_closest"),
        ("first", "not_closest"),
        ("no_sort", "not_sorted"),
        ("closed", "closed_bottom"),  # a >= lo: told apart from choosing outside the band on a second input
        ("open_top", "boundary"),  # a < hi: the band's upper edge left out (named by the generic boundary test)
        ("split_by_n_seq", "indices"),  # out-of-range indices: named, never an IndexError in the checker
    ],
)
def test_quantile_examples_heldout(bug, code):
    assert_fails(checks.test_quantile_examples, _quantiles(bug), code)


def test_quantile_examples_written_another_way_passes():
    assert_passes(checks.test_quantile_examples, _quantiles(None))


# --------------------------------------------------------------------------------------------
# The fresh held-out trial
# --------------------------------------------------------------------------------------------
def edges_grad_accumulated(model, tc, frozen, graph):
    """target.backward() once per target on shared leaves, .grad never zeroed: each row sums the earlier ones."""
    A = torch.zeros(graph.n_nodes, graph.n_nodes)
    pos, idx = graph.latent_pos, graph.latent_idx
    with torch.enable_grad():
        embeds = frozen.embeds.detach().clone().requires_grad_(True)
        error = frozen.error.detach().clone().requires_grad_(True)
        values = frozen.acts[pos, idx].detach().clone().requires_grad_(True)
        latents = frozen.acts.detach().clone()
        latents[pos, idx] = values
        pre, logits = ref.linearised_forward(model, tc, frozen, embeds, latents, error)
        targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
        for row, target in zip(mistakes.target_rows(graph), targets, strict=True):
            target.backward(retain_graph=True)
            A[row, graph.nodes("latent")] = values.grad * values.detach()
            A[row, graph.nodes("error")] = (error.grad * error.detach()).sum(-1)
            A[row, graph.nodes("token")] = (embeds.grad * embeds.detach()).sum(-1)
    return A


def losses_written_at_input(model, tc, tokens):
    """The transcoder's output returned at tc.hook_name (where it reads) instead of tc.hook_name_out."""
    out = ref.replacement_losses(model, tc, tokens)
    replaced = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(tc.hook_name, lambda a, hook: tc(a))])
    replaced = replaced.item()
    c, z = out["clean"], out["zero_ablated"]
    return {**out, "replaced": replaced, "recovered": (z - replaced) / (z - c)}


def influence_signed_row_sum(adjacency, logit_weights):
    a = adjacency.abs() / adjacency.sum(-1, keepdim=True).abs().clamp_min(1e-12)
    eye = torch.eye(len(a))
    return logit_weights @ (torch.linalg.inv(eye - a) - eye)


def influence_softmax(adjacency, logit_weights):
    a = torch.where((adjacency != 0).any(-1, keepdim=True), adjacency.abs().softmax(-1), 0.0)
    eye = torch.eye(len(a))
    return logit_weights @ (torch.linalg.inv(eye - a) - eye)


FRESH = [
    (checks.test_attribution_edges, edges_grad_accumulated, "grad_accumulated"),
    (checks.test_replacement_losses, losses_written_at_input, "write_input"),
    (checks.test_latent_de_embedding, lambda m, tc, i: F.relu(m.W_E @ tc.W_enc[:, i]), "clipped"),
    (checks.test_latent_logit_effect, lambda m, tc, i: (tc.W_dec[i] @ m.W_U).clamp(max=0), "clipped"),
    (checks.test_node_influence, influence_signed_row_sum, "signed_row_sum"),
    (checks.test_node_influence, influence_softmax, "softmax_rows"),
]


@pytest.mark.parametrize(("check", "impl", "code"), FRESH, ids=[f"{c}{i}" for i, (_, _, c) in enumerate(FRESH)])
def test_fresh_heldout_mistakes_are_named(check, impl, code):
    assert_fails(check, impl, code)


# --------------------------------------------------------------------------------------------
# third fresh trial: band edges read off the groups
# --------------------------------------------------------------------------------------------
def _quantile_edges(bug):
    def fn(acts, k, n_bands=4):
        seq, a = acts.shape[1], acts.clone()
        a[:, 0] = 0
        a = a.flatten()
        m = a.max()
        if bug == "linspace":
            edges = torch.linspace(0, float(m), n_bands)
        else:
            base = a[a > 0].min()
            edges = base + (m - base) * torch.arange(n_bands + 1, dtype=a.dtype) / n_bands
        out = []
        for j in range(n_bands):
            b = len(edges) - 2 - j
            ch = torch.zeros(0, dtype=torch.long)
            if b >= 0:
                lo, hi = edges[b], edges[b + 1]
                inside = ((a >= lo) if (bug == "from_min" and b == 0) else (a > lo)) & (a <= hi) & (a > 0)
                ids = inside.nonzero().flatten()
                ch = ids[(a[ids] - (lo + hi) / 2).abs().argsort()[:k]]
                ch = ch[a[ch].argsort(descending=True)]
            out.append((a[ch], ch // seq, ch % seq))
        return out

    return fn


@pytest.mark.parametrize("bug", ["linspace", "from_min"])
def test_quantile_examples_edges(bug):
    assert_fails(checks.test_quantile_examples, _quantile_edges(bug), "edges")


def _forward_always_skip(tc, x):
    """Adds the skip connection without checking `tc.W_skip is None`."""
    pre = x @ tc.W_enc + tc.b_enc
    acts = pre * (pre > tc.threshold)
    return acts, acts @ tc.W_dec + tc.b_dec + x @ tc.W_skip.T


def test_transcoder_forward_skip_none():
    assert_fails(checks.test_transcoder_forward, _forward_always_skip, "skip_none")


def _influence_clamp1(A, w):
    a = A.abs()
    a = a / a.sum(-1, keepdim=True).clamp_min(1)  # rows summing to less than 1 stay unnormalised
    eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
    return w @ (torch.linalg.inv(eye - a) - eye)


def test_influence_row_scale():
    assert_fails(checks.test_node_influence, _influence_clamp1, "row_scale")
