"""Proofs for held-out round BB (fresh55) of part 6b.

The round added:
- attribution_edges: a `.grad` read while None (`.backward()` per target: a latent target depends on no latent, so
  the latent leaf's .grad stays None) named as such (grad_none), not as a generic None value; gradients that
  accumulate for some kinds of leaf only (grad_accumulated, naming the kinds); rows that are copies of another
  target's right row (rows_copied); token/error edges from all-pairs dot products summed over one axis
  (position_pairs, `(grad @ vector.T).sum(0)` or `.sum(1)`).
- transcoder_forward: a leaky gate (entries below the threshold kept as a fixed fraction of pre) read back (leaky_gate).
- replacement_losses: a zero-ablation that zeroes one sequence or one position only (ablation_subset); recovered
  computed on perplexities exp(loss) (recovered_perplexity).
- linearised_forward: a frozen scale squeezed to [seq], which meets [seq d_model] on the wrong axis (scale_squeezed).
- node_influence: |influence| taken at the end of a signed computation (signed_normaliser, now naming it).
- quantile_examples: indices into the band's filtered vector (flat[in_band]) used as flat indices (filtered_index).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import tests.part6b_circuits as checks
import tests.part6b_circuits_mistakes as mistakes
from solutions import part6b_circuits as ref
from tests.proving import assert_fails, assert_passes


def _edges(bug):
    """attribution_edges with one slip: `bug` in grad_none, partial, copies, pairs0, pairs1."""

    def impl(model, tc, frozen, graph):
        A = torch.zeros(graph.n_nodes, graph.n_nodes)
        pos, idx = graph.latent_pos, graph.latent_idx
        rows = mistakes.target_rows(graph)
        with torch.enable_grad():
            leaves = [
                t.detach().clone().requires_grad_(True) for t in (frozen.acts[pos, idx], frozen.error, frozen.embeds)
            ]
            values, error, embeds = leaves
            latents = torch.zeros_like(frozen.acts)
            latents[pos, idx] = values
            pre, logits = ref.linearised_forward(model, tc, frozen, embeds, latents, error)
            targets = [pre[p, i] for p, i in zip(pos.tolist(), idx.tolist(), strict=True)]
            targets += [logits[-1, t] for t in graph.logit_ids.tolist()]
            for k, (row, target) in enumerate(zip(rows, targets, strict=True)):
                if bug in ("grad_none", "partial"):
                    values.grad = None
                    target.backward(retain_graph=True)
                    g = [leaf.grad for leaf in leaves]
                else:
                    g = torch.autograd.grad(target, leaves, retain_graph=True, allow_unused=True)
                if bug != "grad_none":
                    g = [torch.zeros_like(x) if d is None else d for d, x in zip(g, leaves, strict=True)]
                if bug == "copies" and k >= len(pos):
                    row = rows[len(pos)]  # every logit target written into the first logit row, then copied
                A[row, graph.nodes("latent")] = g[0] * values.detach()
                for kind, grad, vec in (("error", g[1], error), ("token", g[2], embeds)):
                    if bug == "pairs0":
                        A[row, graph.nodes(kind)] = (grad @ vec.detach().T).sum(0)
                    elif bug == "pairs1":
                        A[row, graph.nodes(kind)] = (grad @ vec.detach().T).sum(1)
                    else:
                        A[row, graph.nodes(kind)] = (grad * vec.detach()).sum(-1)
                if bug == "grad_none":
                    for leaf in leaves:
                        leaf.grad = None
        if bug == "copies":
            A[graph.nodes("logit")] = A[graph.nodes("logit").start].clone()
        return A

    return impl


@pytest.mark.parametrize(
    ("bug", "code"),
    [
        ("grad_none", "grad_none"),
        ("partial", "grad_accumulated"),
        ("copies", "rows_copied"),
        ("pairs0", "position_pairs"),
        ("pairs1", "position_pairs"),
    ],
)
def test_attribution_edges_gradient_readings(bug, code):
    assert_fails(checks.test_attribution_edges, _edges(bug), code)


def test_attribution_edges_with_a_full_latent_leaf_passes():
    assert_passes(checks.test_attribution_edges, _edges(None))


def forward_leaky(tc, x):
    """Below the threshold, 0.01 × pre kept instead of 0."""
    pre = x @ tc.W_enc + tc.b_enc
    acts = torch.where(pre > tc.threshold, pre, 0.01 * pre)
    return acts, acts @ tc.W_dec + tc.b_dec + tc.skip(x)


def _losses(bug):
    """replacement_losses with the zero-ablation of the first sequence only, or recovered on perplexities."""

    def impl(model, tc, tokens):
        out = ref.replacement_losses(model, tc, tokens)
        c, r, z = out["clean"], out["replaced"], out["zero_ablated"]
        if bug == "first_sequence":
            hook = lambda a, hook: torch.cat([torch.zeros_like(a[:1]), a[1:]])
            z = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(tc.hook_name_out, hook)]).item()
            return {"clean": c, "replaced": r, "zero_ablated": z, "recovered": (z - r) / (z - c)}
        e = torch.tensor([c, r, z], dtype=torch.float64).exp().tolist()
        return {**out, "recovered": (e[2] - e[1]) / (e[2] - e[0])}

    return impl


def linearised_scales_squeezed(model, tc, frozen, embeds, latents=None, error=None):
    """The frozen scales squeezed to [seq]: they meet [seq d_model] along d_model."""
    squeezed = {k: getattr(frozen, k).squeeze(-1) for k in ("ln1_scale", "ln2_scale", "final_scale")}
    return ref.linearised_forward(model, tc, dataclasses.replace(frozen, **squeezed), embeds, latents, error)


def influence_abs_at_end(adjacency, logit_weights):
    """Signed shares A / |A|.sum(-1); |·| of the influence at the end."""
    a = adjacency / adjacency.abs().sum(-1, keepdim=True).clamp_min(1e-12)
    eye = torch.eye(len(a), dtype=a.dtype)
    return (logit_weights @ (torch.linalg.inv(eye - a) - eye)).abs()


def quantiles_filtered_index(acts, k, n_bands=4):
    """Ranks within flat[in_band]; those positions used as flat indices."""
    groups = ref.quantile_examples(acts, k, n_bands)
    flat = acts.clone()
    flat[:, 0] = 0
    flat = flat.flatten()
    top, out = flat.max(), []
    for j, (values, _, _) in enumerate(groups):
        lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
        members = ((flat > lo) & (flat <= hi)).nonzero().flatten().tolist()
        within = torch.tensor([members.index(int(i)) for i in (flat == values[:, None]).int().argmax(-1)])
        out.append((values, within // acts.shape[1], within % acts.shape[1]))
    return out


@pytest.mark.parametrize(
    ("check", "impl", "code"),
    [
        (checks.test_transcoder_forward, forward_leaky, "leaky_gate"),
        (checks.test_replacement_losses, _losses("first_sequence"), "ablation_subset"),
        (checks.test_replacement_losses, _losses("perplexity"), "recovered_perplexity"),
        (checks.test_linearised_forward, linearised_scales_squeezed, "scale_squeezed"),
        (checks.test_node_influence, influence_abs_at_end, "signed_normaliser"),
        (checks.test_quantile_examples, quantiles_filtered_index, "filtered_index"),
    ],
)
def test_round_bb_readings(check, impl, code):
    err = assert_fails(check, impl, code)
    assert code != "signed_normaliser" or "at the end" in err.message
