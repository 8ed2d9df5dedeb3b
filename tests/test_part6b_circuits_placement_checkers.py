"""Proofs: terms written at the wrong place (b_dec in the zero-ablation, latents at every position, the error after
ln_final), recovered averaged per sequence, and a token view divided by its own sum are each named."""

from __future__ import annotations

import torch

import tests.part6b_circuits as checks
from solutions import part6b_circuits as ref
from tests.proving import assert_fails


def _losses(zero_fill, per_sequence=False):
    def impl(model, tc, tokens):
        seen = {}
        splice = [
            (tc.hook_name, lambda a, hook: seen.__setitem__("x", a)),
            (tc.hook_name_out, lambda a, hook: tc(seen["x"])),
        ]
        loss = lambda hooks: model.run_with_hooks(tokens, return_type="loss", loss_per_token=True, fwd_hooks=hooks)
        c, r, z = loss([]).mean(-1), loss(splice).mean(-1), loss([(tc.hook_name_out, zero_fill(tc))]).mean(-1)
        rec = ((z - r) / (z - c)).mean() if per_sequence else (z.mean() - r.mean()) / (z.mean() - c.mean())
        return {
            "clean": c.mean().item(),
            "replaced": r.mean().item(),
            "zero_ablated": z.mean().item(),
            "recovered": rec.item(),
        }

    return impl


def test_zero_ablation_with_b_dec():
    impl = _losses(lambda tc: lambda a, hook: torch.zeros_like(a) + tc.b_dec)
    assert "b_dec" in assert_fails(checks.test_replacement_losses, impl, "ablation_bias").message


def test_recovered_per_sequence():
    impl = _losses(lambda tc: lambda a, hook: torch.zeros_like(a), per_sequence=True)
    assert "per sequence" in assert_fails(checks.test_replacement_losses, impl, "recovered_averaged").hint


def test_de_embedding_divided_by_sum():
    impl = lambda model, tc, i: (lambda v: v / v.sum())(ref.latent_de_embedding(model, tc, i))
    assert "their sum" in assert_fails(checks.test_latent_de_embedding, impl, "own_factor").message


def test_error_after_final_ln():
    def impl(model, tc, frozen, embeds, latents=None, error=None):
        e = frozen.error if error is None else error
        pre, _ = ref.linearised_forward(model, tc, frozen, embeds, latents, torch.zeros_like(e))
        _, logits0 = ref.linearised_forward(model, tc, frozen, embeds, latents, torch.zeros_like(e))
        return pre, logits0 + e @ model.W_U

    assert "after the final LayerNorm" in assert_fails(checks.test_linearised_forward, impl, "error_after_ln").hint


def test_latents_every_position():
    def impl(model, tc, frozen, graph):
        pos, idx = graph.latent_pos, graph.latent_idx
        A = torch.zeros(graph.n_nodes, graph.n_nodes)
        with torch.enable_grad():
            emb = frozen.embeds.detach().clone().requires_grad_(True)
            err = frozen.error.detach().clone().requires_grad_(True)
            vals = frozen.acts[pos, idx].detach().clone().requires_grad_(True)
            lat = torch.zeros_like(frozen.acts)
            lat[:, idx] = vals
            pre, logits = ref.linearised_forward(model, tc, frozen, emb, lat, err)
            targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
            rows = torch.cat([torch.arange(graph.n_nodes)[graph.nodes(k)] for k in ("latent", "logit")]).tolist()
            for row, t in zip(rows, targets, strict=True):
                gv, ge, gt = torch.autograd.grad(
                    t, (vals, err, emb), retain_graph=True, allow_unused=True, materialize_grads=True
                )
                A[row, graph.nodes("latent")] = gv * vals.detach()
                A[row, graph.nodes("error")] = (ge * err.detach()).sum(-1)
                A[row, graph.nodes("token")] = (gt * emb.detach()).sum(-1)
        return A

    assert "every position" in assert_fails(checks.test_attribution_edges, impl, "latents_every_position").hint
