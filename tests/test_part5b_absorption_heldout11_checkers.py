"""Proofs for the part 5b checkers: a carrier rule that asks every carrier to be active (`.all` where `.any`
belongs), children (or parents) found by the standard feature layout instead of parent_of, on inputs whose
parent_of is not that layout, and an encode that returns the pre-activations in training mode (the top-k result
never used), named before other budgets are tried."""

from __future__ import annotations

import pytest
import torch

import solutions.part5b_absorption as P
import tests.part5b_absorption as checks
from tests.part5b_absorption_fractions import carrier_inputs, copies_verdict, reordered_inputs
from tests.proving import assert_fails


# ---------------------------------------------------------------- absorption_fraction
def _absorption(bug):
    def absorption_fraction(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
        cos = torch.nn.functional.normalize(W_dec, dim=-1) @ torch.nn.functional.normalize(W_features, dim=1)
        parents = [f for f, q in enumerate(parent_of) if q == -1]
        n_c = (len(parent_of) - len(parents)) // len(parents)
        ar, out = torch.arange(acts.shape[1]), []
        for j, p in enumerate(parents):
            kids = [f for f, q in enumerate(parent_of) if q == p]
            if bug == "layout":
                kids = list(range(len(parents) + j * n_c, len(parents) + (j + 1) * n_c))
            elif bug == "first":
                p, kids = j, list(range(len(parents) + j * n_c, len(parents) + (j + 1) * n_c))
            elif bug == "ordinal":
                kids = [f for f, q in enumerate(parent_of) if q == j]
            cases = (features[..., p] > 0) & (features[..., kids] > 0).any(-1)
            lat = cos[..., p].argmax(-1)
            carriers = cos[..., p] >= cos_threshold
            carriers[ar, lat] = False
            off = acts[:, ar, lat] == 0
            if bug in ("all", "all_unguarded"):
                carried = ((acts > 0) | ~carriers).all(-1)
                if bug == "all":
                    carried = carried & carriers.any(-1)
            else:
                carried = ((acts > 0) & carriers).any(-1)
            out.append((cases & off & carried).sum(0) / cases.sum(0).clamp_min(1))
        return torch.stack(out, -1).to(acts.dtype)

    return absorption_fraction


@pytest.mark.parametrize("bug", ["all", "all_unguarded"])
def test_absorption_all_carriers_named(bug):
    err = assert_fails(checks.test_absorption_fraction, _absorption(bug), "carriers_all")
    assert "ANY carrier is active" in err.hint and "not .all" in err.hint


@pytest.mark.parametrize(
    "bug, code", [("layout", "layout_children"), ("first", "layout_parents"), ("ordinal", "parent_ordinal")]
)
def test_absorption_standard_layout_named(bug, code):
    err = assert_fails(checks.test_absorption_fraction, _absorption(bug), code)
    assert "parent_of = [5, -1, 1, 5, 1, -1, 5, 1]" in err.message


def test_reordered_inputs_keep_the_fraction():
    """The right fraction doesn't depend on the feature order; the layout rules differ there from it."""
    for th in (0.3, 0.5):
        before = P.absorption_fraction(*carrier_inputs("cpu"), th)
        after = P.absorption_fraction(*reordered_inputs("cpu"), th)
        assert torch.allclose(before, after)
    _, _, _, _, parent_of = reordered_inputs("cpu")
    assert parent_of[0] != -1 and parent_of.index(-1) > 0
    assert parent_of[2] != parent_of[3]  # the children of one parent are not together


def test_duplicated_latents_list_all_for_any():
    base = torch.tensor([[0.2, 0.5], [0.1, 0.0]])
    _, hint = copies_verdict(base, base * 0, "over")
    assert ".all where .any belongs" in hint


# ---------------------------------------------------------------- BatchTopKToySAE.encode
def _encode(returned, via_global=True):
    class BatchTopKToySAE(P.BatchTopKToySAE):
        def encode(self, h):
            raw = torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc
            pre = torch.relu(raw)
            if not self.training:
                return pre * (pre > self.threshold[None, :, None])
            acts = batch_topk(pre, self.cfg.k) if via_global else P.batch_topk(pre, self.cfg.k)  # noqa: F821
            with torch.no_grad():
                low = torch.where(acts > 0, acts, torch.inf).amin(dim=(0, 2))
                target = torch.where(torch.isfinite(low), low, self.threshold)
                self.threshold.mul_(1 - self.THRESHOLD_MOMENTUM).add_(self.THRESHOLD_MOMENTUM * target)
            return pre if returned == "relu" else raw

    return BatchTopKToySAE


@pytest.mark.parametrize("returned", ["relu", "raw"])
@pytest.mark.parametrize("via_global", [True, False])
def test_encode_topk_result_unused_named(returned, via_global):
    err = assert_fails(checks.test_batchtopk_encode, _encode(returned, via_global), "topk_unused")
    assert err.hint.startswith("the top-k result is never used")
    assert ("batch_topk was called with k = cfg.k" in err.message) == via_global
    assert ("a hard-coded k" in err.hint) != via_global
    assert ("before the ReLU" in err.message) == (returned == "raw")
