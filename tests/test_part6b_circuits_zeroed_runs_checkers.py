"""Proofs for part 6b's diagnoses of a run that silently used zeros: the 'replaced' run whose hook zero-ablated the
MLP (a late-binding lambda in a loop; the keys are not swapped, 'zero_ablated' is right), and the token columns of
attribution_edges left zero because the forward used frozen.embeds instead of the leaf the gradient is taken for."""

from __future__ import annotations

import torch

import tests.part6b_circuits as checks
from solutions import part6b_circuits as ref
from tests import part6b_circuits_mistakes as mistakes
from tests.proving import assert_fails


def _late_bound_losses(model, tc, tokens):
    seen = {}
    loss = lambda hooks: model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()
    runs = {}
    for name in ("replaced", "zero_ablated"):
        write = lambda act, hook: tc(seen["x"]) if name == "replaced" else torch.zeros_like(act)  # noqa: B023
        runs[name] = [(tc.hook_name, lambda act, hook: seen.__setitem__("x", act)), (tc.hook_name_out, write)]
    clean = loss([])
    replaced, zero = loss(runs["replaced"]), loss(runs["zero_ablated"])  # `name` is "zero_ablated" in both
    return {"clean": clean, "replaced": replaced, "zero_ablated": zero, "recovered": (zero - replaced) / (zero - clean)}


def test_replacement_losses_late_binding_is_not_keys_swapped():
    err = assert_fails(checks.test_replacement_losses, _late_bound_losses, "replaced_zeroed")
    assert "late" in err.hint and "returned zeros" in err.hint and "not swapped" in err.hint


def test_replacement_losses_both_exchanged_is_keys_swapped():
    def impl(model, tc, tokens):
        out = ref.replacement_losses(model, tc, tokens)
        out["replaced"], out["zero_ablated"] = out["zero_ablated"], out["replaced"]
        return out

    assert_fails(checks.test_replacement_losses, impl, "keys_swapped")


def _frozen_embeds_edges(model, tc, frozen, graph):
    pos, idx = graph.latent_pos, graph.latent_idx
    A = torch.zeros(graph.n_nodes, graph.n_nodes)
    with torch.enable_grad():
        embeds = frozen.embeds.clone().requires_grad_(True)  # the leaf, never used below
        error = frozen.error.clone().requires_grad_(True)
        vals = frozen.acts[pos, idx].clone().requires_grad_(True)
        latents = torch.zeros_like(frozen.acts).index_put((pos, idx), vals)
        pre, logits = ref.linearised_forward(model, tc, frozen, frozen.embeds, latents, error)
        targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
        for row, t in zip(mistakes.target_rows(graph), targets, strict=True):
            gv, ge, gt = torch.autograd.grad(t, (vals, error, embeds), retain_graph=True, allow_unused=True)
            gv = torch.zeros_like(vals) if gv is None else gv
            gt = torch.zeros_like(embeds) if gt is None else gt
            A[row, graph.nodes("latent")] = (gv * vals).detach()
            A[row, graph.nodes("error")] = (ge * error).sum(-1).detach()
            A[row, graph.nodes("token")] = (gt * embeds).sum(-1).detach()
    return A


def test_attribution_edges_frozen_embeds_names_the_leaf_first():
    err = assert_fails(checks.test_attribution_edges, _frozen_embeds_edges, "token_nodes")
    leaf, dot = err.hint.find("never reached your embedding leaf"), err.hint.find("(gradient · vector).sum(-1)")
    assert 0 <= leaf < dot and "frozen.embeds" in err.hint
