"""Held-out round AV (part 6b): the gated activations returned as linearised_forward's first output named as such
(not as frozen's recording), logit targets relative to another logit in attribution_edges, F.normalize(A, p=1) on the
signed adjacency among node_influence's readings, and the neighbouring band's middle among quantile_examples' wrong
middles; plus the round's correct variants."""

import einops
import torch
import torch.nn.functional as F

import tests.part6b_circuits as checks
from solutions.part6b_circuits import linearised_forward as REF_LF
from tests.proving import assert_fails, assert_passes


# ------------------------------------------------------------------------------------------------ linearised_forward
def _lf(model, tc, frozen, embeds, latents=None, error=None):
    ln = lambda v, s: (v - v.mean(-1, keepdim=True)) / s
    x1 = ln(embeds, frozen.ln1_scale)
    v = einops.einsum(x1, model.W_V[0], "k d, h d e -> h k e") + model.b_V[0][:, None]
    z = einops.einsum(frozen.pattern, v, "h q k, h k e -> h q e")
    mid = embeds + einops.einsum(z, model.W_O[0], "h q e, h e d -> q d") + model.b_O[0]
    x = ln(mid, frozen.ln2_scale)
    pre = x @ tc.W_enc + tc.b_enc
    f_ = pre * frozen.active if latents is None else latents
    err = frozen.error if error is None else error
    out = f_ @ tc.W_dec + tc.b_dec + tc.skip(x) + err
    logits = ln(mid + out, frozen.final_scale) @ model.W_U + model.b_U
    return f_, logits


def test_gated_activations_returned_for_pre_are_named_not_the_recording():
    err = assert_fails(checks.test_linearised_forward, _lf, "returns_gated")
    assert "gated" in str(err) and "doesn't depend" not in str(err)


def test_frozen_recording_returned_is_still_named():
    assert_fails(
        checks.test_linearised_forward, lambda m, tc, fr, e, lat=None, er=None: (fr.acts, fr.logits), "recorded_output"
    )


def test_fused_einsum_forward_passes():
    def lf(model, tc, frozen, embeds, latents=None, error=None):
        c = embeds - embeds.mean(-1, keepdim=True)
        x1 = c / frozen.ln1_scale
        attn = torch.einsum("hqk,kd,hde,hef->qf", frozen.pattern, x1, model.W_V[0], model.W_O[0])
        attn = attn + torch.einsum("hqk,he,hef->qf", frozen.pattern, model.b_V[0], model.W_O[0]) + model.b_O[0]
        mid = embeds + attn
        x = (mid - mid.mean(-1, keepdim=True)) / frozen.ln2_scale
        pre = F.linear(x, tc.W_enc.T, tc.b_enc)
        f_ = latents if latents is not None else pre.masked_fill(~frozen.active, 0.0)
        resid = (
            mid + F.linear(f_, tc.W_dec.T, tc.b_dec) + x @ tc.W_skip.T + (error if error is not None else frozen.error)
        )
        return pre, F.linear((resid - resid.mean(-1, keepdim=True)) / frozen.final_scale, model.W_U.T, model.b_U)

    assert_passes(checks.test_linearised_forward, lf)


# ------------------------------------------------------------------------------------------------ attribution_edges
def _ae(variant):
    def f(model, tc, frozen, graph):
        n = graph.n_nodes
        A = torch.zeros(n, n, device=frozen.embeds.device)
        pos, idx = graph.latent_pos, graph.latent_idx
        with torch.enable_grad():
            embeds = frozen.embeds.detach().clone().requires_grad_(True)
            error = frozen.error.detach().clone().requires_grad_(True)
            values = frozen.acts[pos, idx].detach().clone().requires_grad_(True)
            lat = torch.zeros_like(frozen.acts)
            lat[pos, idx] = values
            pre, logits = REF_LF(model, tc, frozen, embeds, lat, error)
            lt = logits[-1, graph.logit_ids]
            if variant == "minus_top":
                lt = lt - logits[-1, graph.logit_ids[0]]
            targets = torch.cat([pre[pos, idx], lt])
            ar = torch.arange(n)
            rows = torch.cat([ar[graph.nodes("latent")], ar[graph.nodes("logit")]])
            if variant == "x1_value":
                tv = (embeds - embeds.mean(-1, keepdim=True)).detach() / frozen.ln1_scale
            elif variant == "mlp_in_value":
                tv = frozen.mlp_in
            else:
                tv = embeds.detach()
            for r, t in zip(rows.tolist(), targets, strict=True):
                gv, ge, gx = torch.autograd.grad(t, (values, error, embeds), retain_graph=True)
                A[r, graph.nodes("latent")] = gv * values.detach()
                A[r, graph.nodes("error")] = (ge * error.detach()).sum(-1)
                A[r, graph.nodes("token")] = (gx * tv).sum(-1)
        return A

    return f


def test_logit_targets_relative_to_the_top_logit_are_named():
    err = assert_fails(checks.test_attribution_edges, _ae("minus_top"), "relative_logits")
    assert "relative" in str(err)


def test_centred_two_pass_edges_pass():
    def ae(model, tc, frozen, graph):
        n = graph.n_nodes
        A = frozen.embeds.new_zeros(n, n)
        pos, idx = graph.latent_pos, graph.latent_idx
        with torch.enable_grad():
            emb = frozen.embeds.clone().requires_grad_()
            err = frozen.error.clone().requires_grad_()
            val = frozen.acts[pos, idx].clone().requires_grad_()
            lat = frozen.acts.clone()
            lat[pos, idx] = val
            pre, _ = REF_LF(model, tc, frozen, emb)
            _, logits = REF_LF(model, tc, frozen, emb, lat, err)
            ce = lambda v: (v - v.mean(-1, keepdim=True)).detach()
            L, E, T = graph.nodes("latent"), graph.nodes("error"), graph.nodes("token")
            jobs = [(L.start + i, pre[p, j]) for i, (p, j) in enumerate(zip(pos.tolist(), idx.tolist(), strict=True))]
            jobs += [(graph.nodes("logit").start + i, logits[-1, t]) for i, t in enumerate(list(graph.logit_ids))]
            for r, t in jobs:
                gv, ge, gx = torch.autograd.grad(t, (val, err, emb), retain_graph=True, allow_unused=True)
                if gv is not None:
                    A[r, L] = gv * val.detach()
                if ge is not None:
                    A[r, E] = (ge * ce(err)).sum(-1)
                A[r, T] = (gx * ce(emb)).sum(-1)
        return A

    assert_passes(checks.test_attribution_edges, ae)


# ------------------------------------------------------------------------------------------------ node_influence
def test_F_normalize_on_the_signed_adjacency_is_named():
    def ni(adjacency, w):
        a = F.normalize(adjacency, p=1, dim=-1)
        eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
        return w @ (torch.linalg.inv(eye - a) - eye)

    err = assert_fails(checks.test_node_influence, ni, "signed_normaliser")
    assert "F.normalize" in str(err)


def test_inverse_times_A_with_guarded_rows_passes():
    def ni(adjacency, w):
        a = adjacency.abs()
        s = a.sum(1, keepdim=True)
        a = torch.where(s > 0, a / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(a))
        eye = torch.eye(a.shape[0], dtype=a.dtype, device=a.device)
        return (w @ torch.linalg.inv(eye - a)) @ a

    assert_passes(checks.test_node_influence, ni)


# ------------------------------------------------------------------------------------------------ quantile_examples
def test_middle_of_the_band_below_is_among_the_listed_middles():
    def qe(acts, k, n_bands=4):
        flat = acts.clone()
        flat[:, 0] = 0
        flat = flat.flatten()
        top, groups = flat.max(), []
        for j in range(n_bands):
            lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
            inb = (flat > lo) & (flat <= hi)
            n = min(k, int(inb.sum()))
            mid = (top * (n_bands - j - 2) / n_bands + lo) / 2
            d = torch.where(inb, (flat - mid).abs(), torch.full_like(flat, float("inf")))
            ch = d.topk(n, largest=False).indices
            ch = ch[flat[ch].argsort(descending=True)]
            groups.append((flat[ch], ch // acts.shape[1], ch % acts.shape[1]))
        return groups

    err = assert_fails(checks.test_quantile_examples, qe, "not_closest")
    assert "band below" in str(err)


def test_linspace_edges_on_sliced_acts_pass():
    def qe(acts, k, n_bands=4):
        a = acts[:, 1:]
        seq1, flat = a.shape[1], a[:, :].reshape(-1)
        edges = torch.linspace(0, 1, n_bands + 1, dtype=flat.dtype, device=flat.device) * flat.max().clamp_min(0)
        out = []
        for j in range(n_bands - 1, -1, -1):
            lo, hi = edges[j], edges[j + 1]
            ids = ((flat > lo) & (flat <= hi)).nonzero()[:, 0]
            ids = ids[(flat[ids] - (lo + hi) / 2).abs().argsort()[:k]]
            ids = ids[flat[ids].argsort(descending=True)]
            out.append((flat[ids], ids // seq1, ids % seq1 + 1))
        return out

    assert_passes(checks.test_quantile_examples, qe)
