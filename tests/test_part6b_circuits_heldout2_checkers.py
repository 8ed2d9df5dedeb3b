"""Proofs for the part 6b checkers from the fresh7 held-out trial: mistakes nobody had listed, each named by its own
code (the main proofs are in test_part6b_circuits_checkers.py and ..._heldout_checkers.py)."""

from __future__ import annotations

import torch

import tests.part6b_circuits as checks
from solutions import part6b_circuits as ref
from tests.proving import assert_fails

_STORED = []


def _stale_losses(model, tc, tokens):
    """The transcoder's input kept in a module-level list: every later call reuses the first call's input."""

    def read(act, hook):
        _STORED.append(act)

    def write(act, hook):
        return tc(_STORED[0])

    loss = lambda hooks: model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()
    clean, replaced = loss([]), loss([(tc.hook_name, read), (tc.hook_name_out, write)])
    zero = loss([(tc.hook_name_out, lambda act, hook: torch.zeros_like(act))])
    return {"clean": clean, "replaced": replaced, "zero_ablated": zero, "recovered": (zero - replaced) / (zero - clean)}


def test_replacement_losses_stale_state():
    _STORED.clear()
    assert_fails(checks.test_replacement_losses, _stale_losses, "stale_state")


def _leaf_edges(model, tc, frozen, graph):
    """Latent targets read from the injected leaf values instead of the recomputed pre-activations."""
    n, pos, idx = graph.n_nodes, graph.latent_pos, graph.latent_idx
    adj = torch.zeros(n, n, device=frozen.embeds.device)
    with torch.enable_grad():
        vals = frozen.acts[pos, idx].detach().clone().requires_grad_(True)
        lat = torch.zeros_like(frozen.acts).index_put((pos, idx), vals)
        _, logits = ref.linearised_forward(model, tc, frozen, frozen.embeds.detach(), lat, frozen.error.detach())
        targets = torch.cat([lat[pos, idx], logits[-1, graph.logit_ids]])
        rows = list(range(graph.n_latents)) + list(range(graph.nodes("logit").start, n))
        for j, row in enumerate(rows):
            (g,) = torch.autograd.grad(targets[j], vals, retain_graph=True, allow_unused=True, materialize_grads=True)
            adj[row, graph.nodes("latent")] = g * vals.detach()
    return adj


def test_attribution_edges_leaf_targets():
    assert_fails(checks.test_attribution_edges, _leaf_edges, "leaf_targets")


def _quantile(bug):
    def quantile_examples(acts, k, n_bands=4):
        seq = acts.shape[1]
        a = acts.clone()
        a[:, 0] = 0
        a = a.reshape(-1)
        m, out = a.max(), []
        for j in range(n_bands):
            if bug == "floor":
                lo, hi = m * (n_bands - j - 1) // n_bands, m * (n_bands - j) // n_bands
            else:
                lo, hi = m * (n_bands - j - 1) / n_bands, m * (n_bands - j) / n_bands
            inside = (a > lo) & (a <= hi)
            dist = (a - (lo + hi) / 2).abs()
            if bug != "unmasked":
                dist = dist.masked_fill(~inside, float("inf"))
            chosen = torch.sort(dist).indices[: k if bug == "unmasked" else min(k, int(inside.sum()))]
            chosen = chosen[torch.sort(a[chosen], descending=True).indices]
            out.append((a[chosen], chosen // seq, chosen % seq))
        return out

    return quantile_examples


def test_quantile_examples_fresh7():
    assert_fails(checks.test_quantile_examples, _quantile("floor"), "floor_division")
    # the nearest values outside a band sit on its lower edge here; a second input tells it from a >= lo
    failure = assert_fails(checks.test_quantile_examples, _quantile("unmasked"), "outside_band")
    assert "inside the band" in str(failure)
