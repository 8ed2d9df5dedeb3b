"""Held-out round BA (fresh54), part 6b: trials the checkers passed, misread or did not name, now named.
linearised_forward that ignores an `error` (or `latents`) given without the other (optional_coupled: the attribution
code passes both, so only a call with one of them shows it), that accumulates its terms into frozen.error in place
(read as the recorded logits before) or masks the given latents in place (passed: the expected values were
recomputed from the edited tensors) (inplace); the round's correct variants pass."""

import pytest
import torch

import tests.part6b_circuits as checks
from tests.proving import assert_fails, assert_passes


# ------------------------------------------------------------------------------------------- linearised_forward
def _lf(bug: str = ""):
    def linearised_forward(model, tc, frozen, embeds, latents=None, error=None):
        ln = lambda v, s: (v - v.mean(-1, keepdim=True)) / s
        x1 = ln(embeds, frozen.ln1_scale)
        v = torch.einsum("kd,hde->hke", x1, model.W_V[0]) + model.b_V[0][:, None]
        z = torch.einsum("hqk,hke->hqe", frozen.pattern, v)
        mid = embeds + torch.einsum("hqe,hed->qd", z, model.W_O[0]) + model.b_O[0]
        x = ln(mid, frozen.ln2_scale)
        pre = x @ tc.W_enc + tc.b_enc
        if bug in ("coupled", "coupled_latents"):
            both = latents is not None if bug == "coupled" else latents is not None and error is not None
            f, e = (latents, error) if both else (pre * frozen.active, frozen.error)
        else:
            f = pre * (frozen.acts > 0) if latents is None else latents  # thresholds are positive: acts > 0 is active
            if bug == "mask" and latents is not None:
                latents.mul_(frozen.active)
            e = frozen.error if error is None else error
        if bug == "accumulate":
            mlp_out = e
            mlp_out += f @ tc.W_dec + tc.b_dec + tc.skip(x)
        else:
            mlp_out = f @ tc.W_dec + tc.b_dec + tc.skip(x) + e
        return pre, ln(mid + mlp_out, frozen.final_scale) @ model.W_U + model.b_U

    return linearised_forward


@pytest.mark.parametrize(("bug", "code"), [("coupled", "optional_coupled"), ("coupled_latents", "optional_coupled")])
def test_fresh54_linearised_optional_arguments_named(bug, code):
    err = assert_fails(checks.test_linearised_forward, _lf(bug), code)
    assert "ignored" in err.hint and "`error`" in err.hint


@pytest.mark.parametrize(("bug", "name"), [("accumulate", "frozen.error"), ("mask", "`latents`")])
def test_fresh54_linearised_inputs_edited_in_place_named(bug, name):
    err = assert_fails(checks.test_linearised_forward, _lf(bug), "inplace")
    assert name in err.message


def test_fresh54_linearised_correct_variant_passes():
    assert_passes(checks.test_linearised_forward, _lf())


def test_fresh54_linearised_heads_reshaped_named():
    def merged(model, tc, frozen, embeds, latents=None, error=None):
        x1 = (embeds - embeds.mean(-1, keepdim=True)) / frozen.ln1_scale
        v = torch.einsum("kd,hde->hke", x1, model.W_V[0]) + model.b_V[0][:, None]
        z = torch.einsum("hqk,hke->hqe", frozen.pattern, v)
        h, q, e = z.shape
        mid = embeds + z.reshape(q, h * e) @ model.W_O[0].reshape(h * e, -1) + model.b_O[0]  # no permute first
        return _lf_from_mid(model, tc, frozen, mid, latents, error)

    err = assert_fails(checks.test_linearised_forward, merged, "heads_reshaped")
    assert "permute" in err.hint


def _lf_from_mid(model, tc, frozen, mid, latents, error):
    x = (mid - mid.mean(-1, keepdim=True)) / frozen.ln2_scale
    pre = x @ tc.W_enc + tc.b_enc
    f = torch.where(frozen.active, pre, 0.0) if latents is None else latents
    r = mid + f @ tc.W_dec + tc.b_dec + tc.skip(x) + (frozen.error if error is None else error)
    return pre, (r - r.mean(-1, keepdim=True)) / frozen.final_scale @ model.W_U + model.b_U


# ------------------------------------------------------------------------------------------- transcoder_forward
def _fw(bug: str = ""):
    def transcoder_forward(tc, x):
        pre = x @ tc.W_enc + tc.b_enc
        fired = pre > tc.threshold
        acts = torch.where(fired, torch.relu(pre - tc.threshold) + tc.threshold, 0.0)  # = pre where it fires
        out = torch.nn.functional.linear(acts, tc.W_dec.T, tc.b_dec)
        if tc.W_skip is not None:
            if bug == "centred":
                out = out + (x - x.mean(-1, keepdim=True)) @ tc.W_skip.T
            elif bug == "broadcast":
                out = out + (x[..., None, :] * tc.W_skip).sum(-2)
            else:
                out = out + torch.nn.functional.linear(x, tc.W_skip)
        return acts, out

    return transcoder_forward


@pytest.mark.parametrize(("bug", "code"), [("centred", "skip_centred"), ("broadcast", "skip_elementwise")])
def test_fresh54_forward_skip_forms_named(bug, code):
    err = assert_fails(checks.test_transcoder_forward, _fw(bug), code)
    assert "x @ W_skip.T" in err.hint


def test_fresh54_forward_correct_variant_passes():
    assert_passes(checks.test_transcoder_forward, _fw())


# ------------------------------------------------------------------------------------------- replacement_losses
def _rl(bug: str = ""):
    def replacement_losses(model, tc, tokens):
        def loss(hooks):
            per = model.run_with_hooks(tokens, return_type="loss", loss_per_token=True, fwd_hooks=hooks)
            if bug == "numel":
                return (per.sum() / tokens.numel()).item()
            return (per[:, 1:] if bug == "bos" else per).mean().item()

        _, cache = model.run_with_cache(tokens, names_filter=[tc.hook_name])
        c = loss([])
        r = loss([(tc.hook_name_out, lambda act, hook: tc(cache[tc.hook_name]))])
        z = loss([(tc.hook_name_out, lambda act, hook: act * 0)])
        rec = (z - c) / (z - r) if bug == "inverted" else 1 - (r - c) / (z - c)
        return {"clean": c, "replaced": r, "zero_ablated": z, "recovered": rec}

    return replacement_losses


@pytest.mark.parametrize(
    ("bug", "code", "said"),
    [
        ("numel", "loss_average", "batch × seq_len"),
        ("bos", "loss_average", "BOS"),
        ("inverted", "recovered_inverted", "upside"),
    ],
)
def test_fresh54_losses_averages_and_inverted_fraction_named(bug, code, said):
    err = assert_fails(checks.test_replacement_losses, _rl(bug), code)
    assert said in err.hint + err.message
    assert bug != "bos" or "numel" not in err.message  # the two averages differ by less than the tolerance here


def test_fresh54_losses_correct_variant_passes():
    assert_passes(checks.test_replacement_losses, _rl())


# ------------------------------------------------------------------------------------------- node_influence
def _ni(bug: str = ""):
    def node_influence(adjacency, logit_weights):
        a = adjacency.abs()
        s = a.sum(1, keepdim=True)
        a = torch.where(s > 0, a / s, a)
        paths = torch.linalg.inv(torch.eye(len(a), dtype=a.dtype, device=a.device) - a)
        paths.fill_diagonal_(0)  # a DAG's (I - Â)⁻¹ has ones on its diagonal: zeroing it is - I
        return logit_weights @ (paths + a if bug == "direct" else paths)

    return node_influence


def test_fresh54_influence_direct_edges_twice_named():
    err = assert_fails(checks.test_node_influence, _ni("direct"), "direct_twice")
    assert "twice" in err.hint


def test_fresh54_influence_correct_variant_passes():
    assert_passes(checks.test_node_influence, _ni())


def test_fresh54_new_catalogue_entries_are_separated():
    A, w = checks._influence_inputs(torch.device("cpu"))
    right = checks.ref.node_influence(A, w)
    twice = [v for c, _, v in checks.reads.identity_terms(A, w) if c == "direct_twice"]
    assert len(twice) == 1 and not torch.allclose(twice[0], right, rtol=1e-4, atol=1e-6)
    assert "heads_reshaped" in checks.LINEARISED_MISTAKES


# ------------------------------------------------------------------------------------------- latent_logit_effect
def test_fresh54_logit_effect_both_biases_named():
    def both(model, tc, latent):
        return (tc.W_dec[latent] + tc.b_dec) @ model.W_U + model.b_U

    err = assert_fails(checks.test_latent_logit_effect, both, "both_biases")
    assert "b_dec" in err.hint and "b_U" in err.hint


# ------------------------------------------------------------------------------------------- attribution_edges
def _ae(bug: str = ""):
    def attribution_edges(model, tc, frozen, graph):
        A = torch.zeros(graph.n_nodes, graph.n_nodes)
        if bug == "active":  # every active latent a leaf, its first columns written into the graph's latent columns
            pos, idx = frozen.active.nonzero(as_tuple=True)
        else:
            pos, idx = graph.latent_pos, graph.latent_idx
        n_lat = len(graph.latent_idx)
        with torch.enable_grad():
            embeds = frozen.embeds.clone().requires_grad_(True)
            error = frozen.error.clone().requires_grad_(True)
            lat = frozen.acts.clone().requires_grad_(True) if not bug else None  # every latent a leaf
            values = frozen.acts[pos, idx].clone().requires_grad_(True) if bug else None
            if bug:
                latents = torch.zeros_like(frozen.acts)
                latents[pos, idx] = values
            pre, logits = checks.ref.linearised_forward(model, tc, frozen, embeds, lat if not bug else latents, error)
            t = torch.cat([pre[graph.latent_pos, graph.latent_idx], logits[-1, graph.logit_ids]])
            rows = list(range(graph.n_nodes))
            rows = rows[graph.nodes("latent")] + rows[graph.nodes("logit")]
            for row, target in zip(rows, t, strict=True):
                leaf = values if bug else lat
                gl, ge, gm = torch.autograd.grad(target, (leaf, error, embeds), retain_graph=True)
                if bug:
                    A[row, graph.nodes("latent")] = (gl * values.detach())[:n_lat]
                else:
                    A[row, graph.nodes("latent")] = (gl * lat.detach())[graph.latent_pos, graph.latent_idx]
                e, m = error.detach(), embeds.detach()  # the gradients are mean-free over d_model: centring is free
                A[row, graph.nodes("error")] = (ge * (e - e.mean(-1, keepdim=True))).sum(-1)
                A[row, graph.nodes("token")] = (gm * (m - m.mean(-1, keepdim=True))).sum(-1)
        return A

    return attribution_edges


def test_fresh54_edges_latents_from_frozen_active_listed():
    err = assert_fails(checks.test_attribution_edges, _ae("active"), "zero_columns")
    assert "graph.latent_pos" in err.hint and "frozen.active" in err.hint


def test_fresh54_edges_correct_variant_passes():
    assert_passes(checks.test_attribution_edges, _ae())


# ------------------------------------------------------------------------------------------- quantile_examples
def _qe(bug: str = ""):
    def quantile_examples(acts, k, n_bands=4):
        body = acts[:, 1:] if bug else acts.clone()
        if not bug:
            body[:, 0] = 0
        seq_len = body.shape[1]
        flat = body.flatten()
        edges = torch.linspace(0, float(flat.max()), n_bands + 1, dtype=flat.dtype)
        band = torch.bucketize(flat, edges)  # edges[b - 1] < a <= edges[b] gives b
        groups = []
        for b in range(n_bands, 0, -1):
            idx = ((band == b) & (flat > 0)).nonzero().flatten()
            idx = idx[(flat[idx] - (edges[b - 1] + edges[b]) / 2).abs().argsort(stable=True)][:k]
            idx = idx.sort().values if bug else idx[flat[idx].argsort(descending=True)]  # by flat index: a 2nd slip
            groups.append((flat[idx], idx // seq_len, idx % seq_len))
        return groups

    return quantile_examples


def test_fresh54_quantile_sliced_positions_read_back():
    err = assert_fails(checks.test_quantile_examples, _qe("sliced"), "indices")
    assert "acts[:, 1:]" in err.message


def test_fresh54_quantile_correct_variant_passes():
    assert_passes(checks.test_quantile_examples, _qe())


def test_fresh54_influence_two_slips_named():
    def columns_no_identity(adjacency, logit_weights):
        a = adjacency.abs()
        a = a / a.sum(0, keepdim=True).clamp_min(1e-12)
        return logit_weights @ torch.linalg.inv(torch.eye(len(a)) - a)

    err = assert_fails(checks.test_node_influence, columns_no_identity, "two_slips")
    assert "column sums" in err.hint and "identity" in err.hint
