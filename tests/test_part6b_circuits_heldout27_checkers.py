"""Proofs for round AR's part 6b probes: influence with |A| normalised by the column sums (a node's outgoing total)
or damped PageRank-style; quantile bands built on int(max) told from floor division by a second input, and a band
rule keeping one example per sequence caught on an input whose closest examples share a sequence."""

from __future__ import annotations

import torch

import tests.part6b_circuits as checks
from tests.proving import assert_fails


def _ni(bug):
    def impl(adjacency, w):
        a = adjacency.abs()
        if bug == "outgoing":
            a = a / a.sum(0)[:, None].clamp_min(1e-12)
        elif bug == "columns":
            s = a.sum(0, keepdim=True)
            a = a / torch.where(s == 0, torch.ones_like(s), s)
        else:
            a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
        eye = torch.eye(len(a), dtype=a.dtype)
        c = 0.85 if bug == "pagerank" else 1.0
        return w @ (torch.linalg.inv(eye - c * a) - eye)

    return impl


def _qe(bug):
    def impl(acts, k, n_bands=4):
        a = acts.clone()
        a[:, 0] = 0
        seq, flat = acts.shape[1], a.flatten()
        m = int(flat.max()) if bug == "int_m" else flat.max()
        groups = []
        for j in range(n_bands):
            lo, hi = m * (n_bands - j - 1) / n_bands, m * (n_bands - j) / n_bands
            if bug == "floor":
                lo, hi = m * (n_bands - j - 1) // n_bands, m * (n_bands - j) // n_bands
            inb = (flat > lo) & (flat <= hi)
            d = torch.where(inb, (flat - (lo + hi) / 2).abs(), torch.full_like(flat, float("inf")))
            if bug == "one_per_seq":
                ch, used = [], set()
                for i in d.argsort().tolist():
                    if d[i] == float("inf") or len(ch) == k:
                        break
                    if i // seq not in used:
                        used.add(i // seq)
                        ch.append(i)
                ch = torch.tensor(ch, dtype=torch.long, device=acts.device)
            else:
                ch = d.topk(min(k, int(inb.sum())), largest=False).indices
            ch = ch[flat[ch].argsort(descending=True)]
            groups.append((flat[ch], ch // seq, ch % seq))
        return groups

    return impl


def test_influence_other_axis_and_damping():
    assert_fails(checks.test_node_influence, _ni("outgoing"), code="column_normalised")
    assert_fails(checks.test_node_influence, _ni("pagerank"), code="damped")


def test_quantile_integer_max_and_shared_sequence():
    assert_fails(checks.test_quantile_examples, _qe("int_m"), code="integer_max")
    assert_fails(checks.test_quantile_examples, _qe("floor"), code="floor_division")
    assert_fails(checks.test_quantile_examples, _qe("one_per_seq"), code="one_per_sequence")


def test_quantile_correct_variant_passes():
    checks.test_quantile_examples(_qe("none"), device="cpu")
    checks.test_node_influence(_ni("none"), device="cpu")
