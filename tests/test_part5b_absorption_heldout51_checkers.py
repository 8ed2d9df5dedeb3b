"""Proofs for section 5b (round AX): absorption_fraction gets a dead latent (instance 0's latent 0: decoder row
all zero, never active), so cosines without eps (0/0 = NaN, which argmax picks as the parent latent) are caught
and read back (code dead_latent); carriers pooled over instances by a boolean-mask index, acts[:, carriers], are
read back on the random inputs before the hand-built case's diagnoses (code carriers_pooled); the round's correct
variant still passes."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part5b_absorption as checks
from tests.proving import assert_fails, assert_passes


def _cos(W_dec, W_features):
    W_dec_hat = W_dec / (W_dec.norm(dim=-1, keepdim=True) + 1e-8)
    W_feat_hat = W_features / (W_features.norm(dim=1, keepdim=True) + 1e-8)
    return einops.einsum(W_dec_hat, W_feat_hat, "inst d_sae d_in, inst d_in feats -> inst d_sae feats")


def abs_no_eps_norm(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
    cos = einops.einsum(
        W_dec / W_dec.norm(dim=-1, keepdim=True),
        W_features / W_features.norm(dim=1, keepdim=True),
        "inst d_sae d_in, inst d_in feats -> inst d_sae feats",
    )
    n_inst = acts.shape[1]
    fr = []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        ch = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & (features[..., ch] > 0).any(-1)
        pl = cos[:, :, p].argmax(-1)
        carriers = cos[:, :, p] >= cos_threshold
        carriers[torch.arange(n_inst), pl] = False
        off = acts[:, torch.arange(n_inst), pl] == 0
        absorbed = cases & off & ((acts > 0) & carriers).any(-1)
        fr.append(absorbed.sum(0) / cases.sum(0).clamp_min(1))
    return torch.stack(fr, -1).to(acts.dtype)


def abs_carriers_bool_index(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
    cos = _cos(W_dec, W_features)
    n_inst = acts.shape[1]
    fr = []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        ch = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & (features[..., ch] > 0).any(-1)
        pl = cos[:, :, p].argmax(-1)
        carriers = cos[:, :, p] >= cos_threshold
        carriers[torch.arange(n_inst), pl] = False
        off = acts[:, torch.arange(n_inst), pl] == 0
        carried = (acts[:, carriers] > 0).any(-1, keepdim=True)  # boolean-mask index pools every instance's carriers
        absorbed = cases & off & carried
        fr.append(absorbed.sum(0) / cases.sum(0).clamp_min(1))
    return torch.stack(fr, -1).to(acts.dtype)


def abs_onehot_matmul_correct(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
    cos = F.normalize(W_dec, dim=-1) @ F.normalize(W_features, dim=1)  # [inst d_sae feats]
    out = []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        kids = torch.tensor([f for f, q in enumerate(parent_of) if q == p])
        cases = (features[..., p] != 0) & (features[..., kids] != 0).any(-1)
        onehot = F.one_hot(cos[..., p].argmax(-1), acts.shape[-1]).bool()  # [inst d_sae]
        carriers = (cos[..., p] >= cos_threshold) & ~onehot
        off = ~((acts > 0) & onehot).any(-1)
        hit = cases & off & ((acts > 0) & carriers).any(-1)
        n = cases.to(acts.dtype).sum(0)
        out.append(torch.where(n > 0, hit.to(acts.dtype).sum(0) / n.clamp(min=1), torch.zeros_like(n)))
    return torch.stack(out, -1)


def test_cosines_without_eps_caught_on_a_dead_latent():
    assert_fails(checks.test_absorption_fraction, abs_no_eps_norm, "dead_latent")


def test_carriers_pooled_over_instances_read_back():
    assert_fails(checks.test_absorption_fraction, abs_carriers_bool_index, "carriers_pooled")


def test_correct_variant_passes():
    assert_passes(checks.test_absorption_fraction, abs_onehot_matmul_correct)
