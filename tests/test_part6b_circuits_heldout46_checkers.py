"""Held-out round AU (part 6b): a zero-ablation that spares BOS named as such, a latent's vector taken from another
known matrix (an MLP neuron's output row) named with that matrix, latents added to the gated pre-activations in
linearised_forward, token edges as a product of norms in attribution_edges, and rows of the path matrix normalised
after the inverse in node_influence; plus the round's correct variants."""

import torch
import torch.nn.functional as F

import tests.part6b_circuits as checks
from solutions.part6b_circuits import linearised_forward as REF_LF
from tests.proving import assert_fails, assert_passes


# ------------------------------------------------------------------------------------------------ replacement_losses
def _losses(model, tc, tokens, zero_hook):
    seen = {}
    loss = lambda h: model.run_with_hooks(tokens, return_type="loss", fwd_hooks=h).item()
    clean = loss([])
    read = (tc.hook_name, lambda a, hook: seen.__setitem__("x", a))
    replaced = loss([read, (tc.hook_name_out, lambda a, hook: tc(seen["x"]))])
    zero = loss([(tc.hook_name_out, zero_hook)])
    return {"clean": clean, "replaced": replaced, "zero_ablated": zero, "recovered": (zero - replaced) / (zero - clean)}


def test_zero_ablation_that_spares_bos_is_named():
    def zero(a, hook):
        out = torch.zeros_like(a)
        out[:, 0] = a[:, 0]
        return out

    err = assert_fails(checks.test_replacement_losses, lambda m, tc, t: _losses(m, tc, t, zero), "ablation_bos_kept")
    assert "BOS" in err.hint


def test_per_sequence_runs_averaged_pass():
    def replacement_losses(model, tc, tokens):
        res = {"clean": [], "replaced": [], "zero_ablated": []}
        for row in tokens:
            t, box = row[None], {}
            res["clean"].append(model(t, return_type="loss").item())
            hooks = [
                (tc.hook_name, lambda a, hook, box=box: box.__setitem__("x", a)),
                (tc.hook_name_out, lambda a, hook, box=box: tc.decode(tc.encode(box["x"])) + tc.skip(box["x"])),
            ]
            res["replaced"].append(model.run_with_hooks(t, return_type="loss", fwd_hooks=hooks).item())
            zero = [(tc.hook_name_out, lambda a, hook: a * 0)]
            res["zero_ablated"].append(model.run_with_hooks(t, return_type="loss", fwd_hooks=zero).item())
        c, r, z = (sum(v) / len(v) for v in res.values())
        return {"clean": c, "replaced": r, "zero_ablated": z, "recovered": (z - r) / (z - c)}

    assert_passes(checks.test_replacement_losses, replacement_losses)


# ------------------------------------------------------------------------------------------------ logit effect
def test_mlp_neuron_output_row_is_named_with_its_matrix():
    err = assert_fails(
        checks.test_latent_logit_effect, lambda model, tc, latent: model.W_out[0][latent] @ model.W_U, "other_matrix"
    )
    assert "W_out[0]" in err.hint


def test_mlp_neuron_input_column_in_the_de_embedding_is_named_too():
    err = assert_fails(
        checks.test_latent_de_embedding, lambda model, tc, latent: model.W_E @ model.W_in[0][:, latent], "other_matrix"
    )
    assert "W_in[0]" in err.hint


def test_mv_with_the_transposed_unembedding_passes():
    assert_passes(checks.test_latent_logit_effect, lambda model, tc, latent: torch.mv(model.W_U.T, tc.W_dec[latent]))


# ------------------------------------------------------------------------------------------------ linearised_forward
def _forward(model, tc, frozen, embeds, latents=None, error=None, added=False):
    ln = lambda v, s: (v - v.mean(-1, keepdim=True)) / s
    x1 = ln(embeds, frozen.ln1_scale)
    v = torch.einsum("kd,hde->hke", x1, model.W_V[0]) + model.b_V[0][:, None]
    z = torch.einsum("hqk,hke->hqe", frozen.pattern, v)
    mid = embeds + torch.einsum("hqe,hed->qd", z, model.W_O[0]) + model.b_O[0]
    x = ln(mid, frozen.ln2_scale)
    pre = x @ tc.W_enc + tc.b_enc
    f = pre * frozen.active
    if latents is not None:
        f = f + latents if added else latents
    out = f @ tc.W_dec + tc.b_dec + tc.skip(x) + (frozen.error if error is None else error)
    return pre, ln(mid + out, frozen.final_scale) @ model.W_U + model.b_U


def test_latents_added_to_the_gated_pre_activations_are_named():
    impl = lambda *args, **kw: _forward(*args, **kw, added=True)
    err = assert_fails(checks.test_linearised_forward, impl, "latents_added")
    assert "replaces" in err.hint


def test_per_head_loop_with_addmm_and_where_passes():
    def linearised_forward(model, tc, frozen, embeds, latents=None, error=None):
        c = lambda v: v - v.mean(-1, keepdim=True)
        x1 = c(embeds) / frozen.ln1_scale
        attn = model.b_O[0].expand_as(embeds).clone()
        for h in range(model.cfg.n_heads):
            vh = x1 @ model.W_V[0, h] + model.b_V[0, h]
            attn = attn + (frozen.pattern[h] @ vh) @ model.W_O[0, h]
        mid = embeds + attn
        x = c(mid) / frozen.ln2_scale
        pre = torch.addmm(tc.b_enc, x, tc.W_enc)
        f = torch.where(frozen.active, pre, 0.0) if latents is None else latents
        err = frozen.error if error is None else error
        mlp = tc.decode(f) + tc.skip(x) + err
        return pre, (c(mid + mlp) / frozen.final_scale) @ model.W_U + model.b_U

    assert_passes(checks.test_linearised_forward, linearised_forward)


# ------------------------------------------------------------------------------------------------ node_influence
def test_rows_of_a_damped_paths_matrix_normalised_after_the_inverse_are_named():
    def node_influence(adjacency, w):
        a = adjacency.abs()
        eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
        p = torch.linalg.inv(eye - a * 0.1) - eye
        p = p / p.sum(-1, keepdim=True).clamp_min(1e-12)
        return w @ p

    err = assert_fails(checks.test_node_influence, node_influence, "rows_of_B")
    assert "after the series" in err.message


def test_F_normalize_and_a_walk_until_the_vector_vanishes_passes():
    def node_influence(adjacency, w):
        a = F.normalize(adjacency.abs(), p=1)
        n, out, v = len(a), torch.zeros_like(w), w.clone()
        while v.abs().sum() > 0 and n > 0:
            v = v @ a
            out += v
            n -= 1
        return out

    assert_passes(checks.test_node_influence, node_influence)


# ------------------------------------------------------------------------------------------------ attribution_edges
def test_token_edges_as_a_product_of_norms_are_named():
    def attribution_edges(model, tc, frozen, graph):
        A = torch.zeros(graph.n_nodes, graph.n_nodes, device=frozen.embeds.device)
        pos, idx = graph.latent_pos, graph.latent_idx
        with torch.enable_grad():
            embeds = frozen.embeds.detach().clone().requires_grad_(True)
            error = frozen.error.detach().clone().requires_grad_(True)
            values = frozen.acts[pos, idx].detach().clone().requires_grad_(True)
            lat = torch.zeros_like(frozen.acts)
            lat[pos, idx] = values
            pre, logits = REF_LF(model, tc, frozen, embeds, lat, error)
            targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
            ar = torch.arange(graph.n_nodes)
            rows = torch.cat([ar[graph.nodes("latent")], ar[graph.nodes("logit")]])
            for r, t in zip(rows.tolist(), targets, strict=True):
                gv, ge, gx = torch.autograd.grad(t, (values, error, embeds), retain_graph=True, allow_unused=True)
                gv = torch.zeros_like(values) if gv is None else gv
                ge = torch.zeros_like(error) if ge is None else ge
                gx = torch.zeros_like(embeds) if gx is None else gx
                A[r, graph.nodes("latent")] = gv * values.detach()
                A[r, graph.nodes("error")] = (ge * error.detach()).sum(-1)
                A[r, graph.nodes("token")] = gx.norm(dim=-1) * embeds.detach().norm(dim=-1)
        return A

    err = assert_fails(checks.test_attribution_edges, attribution_edges, "token_edges_norms")
    assert "dot product" in err.hint
