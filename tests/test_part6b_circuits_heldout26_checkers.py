"""Proofs for round AQ's part 6b read-backs: attribution edges summed per position or built with the last
embedding; influence with softmax rows, elementwise powers, or a series stopped by a tolerance; quantile bands on a
99th-percentile m, values divided by m, indices of a transposed flatten."""

from __future__ import annotations

import torch

import tests.part6b_circuits as checks
from solutions import part6b_circuits as ref
from tests.proving import assert_fails


def _ni(bug):
    def impl(adjacency, w):
        a = adjacency.abs()
        a = a.softmax(-1) if bug == "softmax" else a / a.sum(-1, keepdim=True).clamp_min(1e-12)
        n = len(a)
        if bug == "power":
            return w @ sum(a**k for k in range(1, n + 1))
        if bug == "tol":
            B, term = torch.zeros_like(a), torch.eye(n, dtype=a.dtype)
            while True:
                term = term @ a
                if term.sum() < 1e-2:
                    break
                B = B + term
            return w @ B
        eye = torch.eye(n, dtype=a.dtype)
        return w @ (torch.linalg.inv(eye - a) - eye)

    return impl


def test_influence_readbacks():
    assert_fails(checks.test_node_influence, _ni("softmax"), code="softmax_rows")
    assert_fails(checks.test_node_influence, _ni("power"), code="elementwise_power")
    assert_fails(checks.test_node_influence, _ni("tol"), code="truncated_series")


def _qe(bug):
    def impl(acts, k, n_bands=4):
        a2 = acts.clone()
        a2[:, 0] = 0
        seq = acts.shape[1]
        flat = a2.T.flatten() if bug == "T" else a2.flatten()
        m = torch.quantile(flat[flat > 0], 0.99) if bug == "q99" else flat.max()
        groups = []
        for j in range(n_bands):
            lo, hi = m * (n_bands - j - 1) / n_bands, m * (n_bands - j) / n_bands
            inb = (flat > lo) & (flat <= hi)
            d = torch.where(inb, (flat - (lo + hi) / 2).abs(), torch.full_like(flat, float("inf")))
            ch = d.topk(min(k, int(inb.sum())), largest=False).indices
            ch = ch[flat[ch].argsort(descending=True)]
            groups.append((flat[ch] / m if bug == "unit" else flat[ch], ch // seq, ch % seq))
        return groups

    return impl


def test_quantile_readbacks():
    assert_fails(checks.test_quantile_examples, _qe("T"), code="transposed_flatten")
    assert_fails(checks.test_quantile_examples, _qe("q99"), code="band_max")
    assert_fails(checks.test_quantile_examples, _qe("unit"), code="values_over_max")


def _ae(bug):
    def impl(model, tc, frozen, graph):
        A = torch.zeros(graph.n_nodes, graph.n_nodes)
        pos, idx = graph.latent_pos, graph.latent_idx
        with torch.enable_grad():
            emb = frozen.embeds.detach().clone().requires_grad_(True)
            err = frozen.error.detach().clone().requires_grad_(True)
            val = frozen.acts[pos, idx].detach().clone().requires_grad_(True)
            lat = torch.zeros_like(frozen.acts)
            lat[pos, idx] = val
            pre, logits = ref.linearised_forward(model, tc, frozen, emb, lat, err)
            targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
            tpos = torch.cat([pos, torch.full((len(graph.logit_ids),), graph.n_pos - 1)])
            every = list(range(graph.n_nodes))
            rows = every[graph.nodes("latent")] + every[graph.nodes("logit")]
            for i, row in enumerate(rows):
                y = targets[tpos == tpos[i]].sum() if bug == "pos" else targets[i]
                gv, ge, gt = torch.autograd.grad(y, (val, err, emb), retain_graph=True)
                A[row, graph.nodes("latent")] = gv * val.detach()
                A[row, graph.nodes("error")] = (ge * err.detach()).sum(-1)
                tv = emb.detach()[-1] if bug == "last" else emb.detach()
                A[row, graph.nodes("token")] = (gt * tv).sum(-1)
        return A

    return impl


def test_edge_readbacks():
    assert_fails(checks.test_attribution_edges, _ae("pos"), code="position_summed")
    assert_fails(checks.test_attribution_edges, _ae("last"), code="token_embed_position")
