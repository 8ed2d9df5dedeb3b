"""Proofs for the part 5b checkers from the fresh7 held-out trial: mistakes nobody had listed, each named by its
own code (the main proofs are in test_part5b_absorption_checkers.py and ..._heldout_checkers.py)."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part5b_absorption as P
import tests.part5b_absorption as checks
from solutions.part5b_absorption import batch_topk
from tests.proving import assert_fails


def _absorption(bug):
    def absorption_fraction(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
        cos = torch.einsum("isd,idf->isf", F.normalize(W_dec, dim=-1), F.normalize(W_features, dim=1))
        ar, out = torch.arange(acts.shape[1]), []
        for p in [f for f, q in enumerate(parent_of) if q == -1]:
            kids = [c for c, q in enumerate(parent_of) if q == p]
            cases = (features[..., p] == 1) & (features[..., kids] == 1).any(-1)
            cp = cos[:, :, p]
            lat = cp.abs().argmax(-1) if bug == "abs" else cp.argmax(-1)
            par_act = acts[:, ar, lat]
            off = par_act < cos_threshold if bug == "below" else par_act == 0
            carriers = (cp >= cos_threshold) & (torch.arange(cp.shape[1])[None] != lat[:, None])
            absorbed = (cases & off & ((acts > 0) & carriers[None]).any(-1)).float()
            den = (cases & off).float() if bug == "den_off" else cases.float()
            out.append(torch.where(den.sum(0) > 0, absorbed.sum(0) / den.sum(0).clamp_min(1), torch.zeros(())))
        return torch.stack(out, -1)

    return absorption_fraction


@pytest.mark.parametrize(
    "bug, code",
    [("abs", "parent_latent_abs"), ("below", "off_below_threshold"), ("den_off", "denominator_parent_off")],
)
def test_absorption_fresh7(bug, code):
    assert_fails(checks.test_absorption_fraction, _absorption(bug), code)


def _topk(bug):
    def batch_topk(pre, k):
        b = pre.shape[0]
        flat = einops.rearrange(pre, "b i s -> i (b s)")
        top = flat.topk(k * b, dim=-1)
        if bug == "soft":
            kept = F.relu(flat - top.values[:, -1:])
        elif bug == "shift":  # an arbitrary constant subtracted, one entry dropped: described, not named
            kept = torch.where(flat > top.values[:, -1:], flat - 0.01, torch.zeros_like(flat))
        else:
            kept = torch.zeros_like(flat)
            kept[:, top.indices] = top.values
        return einops.rearrange(kept, "i (b s) -> b i s", b=b)

    return batch_topk


@pytest.mark.parametrize(
    "bug, code", [("soft", "soft_threshold"), ("shift", "values_changed"), ("rows", "indices_all_rows")]
)
def test_topk_fresh7(bug, code):
    assert_fails(checks.test_batch_topk, _topk(bug), code)


def _encode(bug):
    class BTK(P.BatchTopKToySAE):
        def encode(self, h):
            pre = F.relu(torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc)
            if not self.training:
                return pre * (pre > self.threshold[:, None])
            acts = batch_topk(pre, self.cfg.k * h.shape[0] if bug == "budget" else self.cfg.k)
            with torch.no_grad():
                masked = acts.masked_fill(acts <= 0, float("inf"))
                mins = masked.amin(dim=(0, 1)) if bug == "axes" else masked.amin(dim=(0, 2))
                new = self.threshold + self.THRESHOLD_MOMENTUM * (mins - self.threshold)
                self.threshold.copy_(torch.where(torch.isfinite(mins), new, self.threshold))
            return acts

    return BTK


@pytest.mark.parametrize("bug, code", [("budget", "topk_budget"), ("axes", "threshold_axes")])
def test_encode_fresh7(bug, code):
    assert_fails(checks.test_batchtopk_encode, _encode(bug), code)


def _matryoshka(bug):
    def matryoshka_loss(acts, W, b, h, sizes):
        terms, running = [], b.expand_as(h)
        full = torch.einsum("bis,isd->bid", acts, W) + b
        for m in sizes:
            part = torch.einsum("bim,imd->bid", acts[..., :m], W[:m] if bug == "inst" else W[:, :m])
            running = running + part
            rec = running if bug == "running" else part + b
            target = full if bug == "full" and m != sizes[-1] else h
            terms.append((rec - target).pow(2).mean(-1))
        return torch.stack(terms).sum(0)

    return matryoshka_loss


@pytest.mark.parametrize(
    "bug, code",
    [("running", "running_reconstruction"), ("full", "target_full_reconstruction"), ("inst", "prefix_on_inst")],
)
def test_matryoshka_fresh7(bug, code):
    assert_fails(checks.test_matryoshka_loss, _matryoshka(bug), code)
