"""Proofs for part 5b after held-out round BB (fresh55), read-backs in tests/part5b_absorption_levels.py:

* absorption_fraction reading activations against a small positive level (the parent latent "off" below 0.01, or a
  carrier "active" only above 0.01): `activity_tolerance`, found by scaling every activation by 1000 (the right
  fraction does not move) and then only the parents' latents or only the others (was "only parents 0 is wrong").
* batch_topk with two slips, a listed mistake (top-k per example) and a ReLU of the kept values: both named (was the
  bare count "keep exactly k·batch entries").
* matryoshka_loss renormalising the already normalised decoder rows (over the prefix's latents):
  `decoder_renormalised`, its loss does not move when W_dec_normalized is doubled (was a restated formula).
* the round's correct variants pass.
"""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part5b_absorption as checks
from tests.proving import assert_fails, assert_passes
from tests.test_part5b_absorption_heldout18_checkers import _off_below


def _active_above(level):
    def absorption_fraction(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
        cos = torch.einsum("isd,idf->isf", F.normalize(W_dec, dim=-1), F.normalize(W_features, dim=1))
        ar, out = torch.arange(acts.shape[1]), []
        for p in [f for f, q in enumerate(parent_of) if q == -1]:
            kids = [f for f, q in enumerate(parent_of) if q == p]
            cases = (features[..., p] > 0) & (features[..., kids] > 0).any(-1)
            lat = cos[..., p].argmax(-1)
            carriers = (cos[..., p] >= cos_threshold) & (torch.arange(cos.shape[1]) != lat[:, None])
            absorbed = cases & (acts[:, ar, lat] == 0) & ((acts > level) & carriers).any(-1)
            out.append(absorbed.sum(0) / cases.sum(0).clamp_min(1))
        return torch.stack(out, -1).to(acts.dtype)

    return absorption_fraction


def test_parent_off_below_a_small_tolerance_named():
    err = assert_fails(
        checks.test_absorption_fraction, _off_below(lambda f: torch.full_like(f, 0.01)), "activity_tolerance"
    )
    assert "parent latent counts as off only when" in err.hint


def test_carrier_active_above_a_small_level_named():
    err = assert_fails(checks.test_absorption_fraction, _active_above(0.01), "activity_tolerance")
    assert "carrier counts as active as soon as" in err.hint


def test_topk_per_example_with_relu_names_both_slips():
    def batch_topk(pre, k):
        top = pre.topk(k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, top.values).clamp_min(0)

    err = assert_fails(checks.test_batch_topk, batch_topk, "per_example")
    assert "two slips" in err.hint and "ReLU" in err.hint


def test_matryoshka_decoder_renormalised_named():
    def matryoshka_loss(acts, W_dec_normalized, b_dec, h, prefix_sizes):
        total = 0
        for m in prefix_sizes:
            W = F.normalize(W_dec_normalized[:, :m], dim=1)
            total = total + (torch.einsum("bis,isd->bid", acts[..., :m], W) + b_dec - h).pow(2).mean(-1)
        return total

    assert_fails(checks.test_matryoshka_loss, matryoshka_loss, "decoder_renormalised")


def test_round_correct_variants_pass():
    def batch_topk(pre, k):  # flattened latent-major, both ways
        flat = einops.rearrange(pre, "b i d -> i (d b)")
        top = flat.topk(k * pre.shape[0], dim=-1)
        kept = torch.zeros_like(flat).scatter(-1, top.indices, top.values)
        return einops.rearrange(kept, "i (d b) -> b i d", b=pre.shape[0])

    def matryoshka_loss(acts, W_dec_normalized, b_dec, h, prefix_sizes):  # a running reconstruction, group by group
        rec, lo, losses = b_dec.expand_as(h).clone(), 0, []
        for m in prefix_sizes:
            rec = rec + torch.einsum("bis,isd->bid", acts[..., lo:m], W_dec_normalized[:, lo:m])
            losses.append(F.mse_loss(rec, h, reduction="none").mean(-1))
            lo = m
        return torch.stack(losses).sum(0)

    assert_passes(checks.test_batch_topk, batch_topk)
    assert_passes(checks.test_matryoshka_loss, matryoshka_loss)
