"""Proofs for part 6b's diagnoses added after the fresh40 held-out measurement: node_influence with identity rows
for the empty rows (a singular I - Â from self loops), scaled by the weights' sum, or with only the logit rows left
raw; quantile_examples with BOS masked with NaN (every band empty); attribution_edges with the token and error
gradients unpacked in the wrong order."""

from __future__ import annotations

import pytest
import torch

import tests.part6b_circuits as checks
from solutions.part6b_circuits import linearised_forward
from tests.proving import assert_fails


def _influence(bug):
    def node_influence(adjacency, w):
        a = adjacency.abs()
        s = a.sum(-1, keepdim=True)
        eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
        if bug == "self_loop":
            a = torch.where(s > 0, a / s.clamp_min(1e-12), eye)
        elif bug == "rows_unnormalised":
            a = torch.where((w > 0)[:, None], a, a / s.clamp_min(1e-12))
        else:
            a = a / s.clamp_min(1e-12)
        out = w @ (torch.linalg.inv(eye - a) - eye)
        return out * w.sum() if bug == "weight_factor" else out

    return node_influence


@pytest.mark.parametrize("code", ["self_loop", "rows_unnormalised", "weight_factor"])
def test_influence_fresh40_named(code):
    err = assert_fails(checks.test_node_influence, _influence(code), code)
    assert "normalise" not in err.hint or code != "weight_factor"
    assert "count off by one" not in err.hint


def test_quantile_nan_bos_is_named():
    def quantile_examples(acts, k, n_bands=4):
        seq = acts.shape[1]
        flat = acts.clone()
        flat[:, 0] = float("nan")
        flat = flat.flatten()
        m = flat.max()
        groups = []
        for j in range(n_bands):
            lo, hi = m * (n_bands - j - 1) / n_bands, m * (n_bands - j) / n_bands
            inb = (flat > lo) & (flat <= hi)
            d = torch.where(inb, (flat - (lo + hi) / 2).abs(), torch.full_like(flat, float("inf")))
            ch = d.topk(min(k, int(inb.sum())), largest=False).indices
            ch = ch[flat[ch].argsort(descending=True)]
            groups.append((flat[ch], ch // seq, ch % seq))
        return groups

    err = assert_fails(checks.test_quantile_examples, quantile_examples, "nan_max")
    assert "EACH band" not in err.hint


def test_edges_unpack_order_is_named():
    def attribution_edges(model, tc, frozen, graph):
        A = torch.zeros(graph.n_nodes, graph.n_nodes, device=frozen.embeds.device)
        pos, idx = graph.latent_pos, graph.latent_idx
        with torch.enable_grad():
            embeds = frozen.embeds.detach().clone().requires_grad_(True)
            error = frozen.error.detach().clone().requires_grad_(True)
            values = frozen.acts[pos, idx].detach().clone().requires_grad_(True)
            latents = torch.zeros_like(frozen.acts)
            latents[pos, idx] = values
            pre, logits = linearised_forward(model, tc, frozen, embeds, latents, error)
            targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
            ar = torch.arange(graph.n_nodes)
            rows = torch.cat([ar[graph.nodes("latent")], ar[graph.nodes("logit")]])
            for row, t in zip(rows.tolist(), targets, strict=True):
                gv, gt, ge = torch.autograd.grad(t, (values, error, embeds), retain_graph=True)
                A[row, graph.nodes("latent")] = gv * values.detach()
                A[row, graph.nodes("error")] = (ge * error.detach()).sum(-1)
                A[row, graph.nodes("token")] = (gt * embeds.detach()).sum(-1)
        return A

    assert_fails(checks.test_attribution_edges, attribution_edges, "swapped_gradients")


def test_singular_fallback_lists_causes():
    """I - Â with the rows of edgeless nodes zeroed (not a self loop in any variable): the singular-matrix error is
    reported as observed, with its possible causes, never as a different named mistake."""

    def node_influence(adjacency, w):
        a = adjacency.abs()
        s = a.sum(-1, keepdim=True)
        eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
        m = eye - a / s.clamp_min(1e-12)
        m[s[:, 0] == 0] = 0
        return w @ (torch.linalg.inv(m) - eye)

    err = assert_fails(checks.test_node_influence, node_influence, "singular")
    assert "self loop" in err.hint


def test_empty_bands_fallback_lists_causes():
    """Band comparisons the wrong way round empty every band without any NaN: said as observed, with causes."""

    def quantile_examples(acts, k, n_bands=4):
        seq = acts.shape[1]
        flat = acts.clone()
        flat[:, 0] = 0
        flat = flat.flatten()
        m = flat.max()
        groups = []
        for j in range(n_bands):
            lo, hi = m * (n_bands - j - 1) / n_bands, m * (n_bands - j) / n_bands
            inb = (flat < lo) & (flat >= hi)
            ch = torch.nonzero(inb).flatten()[:k]
            groups.append((flat[ch], ch // seq, ch % seq))
        return groups

    err = assert_fails(checks.test_quantile_examples, quantile_examples, "empty_bands")
    assert "the wrong way round" in err.hint
