"""Proofs for section 5b (round AW): an absorption fraction that reads other instances' parent latents (an
[inst, inst] gather reduced with amax, no diagonal) is described by what re-running shows (which instances change
when only the OTHER instances' latents are reordered), instead of a list of guessed causes none of which it was;
instance 0's latent used everywhere gets the same observation; the round's correct loop still passes."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part5b_absorption as checks
from solutions import part5b_absorption as ref
from tests.proving import assert_fails, assert_passes


def _abs(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3, mode=""):
    W_dec_hat = W_dec / (W_dec.norm(dim=-1, keepdim=True) + 1e-8)
    W_feat_hat = W_features / (W_features.norm(dim=1, keepdim=True) + 1e-8)
    cos = einops.einsum(W_dec_hat, W_feat_hat, "inst d_sae d_in, inst d_in feats -> inst d_sae feats")
    n_inst = acts.shape[1]
    fr = []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        children = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & (features[..., children] > 0).any(-1)
        pl = cos[:, :, p].argmax(-1)
        carriers = cos[:, :, p] >= cos_threshold
        carriers[torch.arange(n_inst), pl] = False
        if mode == "diag_amax":
            parent_off = acts[:, :, pl].amax(-1) == 0
        elif mode == "inst0":
            parent_off = acts[:, :, pl[0]] == 0
        else:
            parent_off = acts[:, torch.arange(n_inst), pl] == 0
        carried = ((acts > 0) & carriers).any(-1)
        absorbed = cases & parent_off & carried
        fr.append(absorbed.sum(0) / cases.sum(0).clamp_min(1))
    return torch.stack(fr, -1).to(acts.dtype)


def abs_parent_off_amax_all_indices(*a, **k):
    return _abs(*a, **k, mode="diag_amax")


def abs_parent_latent_of_instance0(*a, **k):
    return _abs(*a, **k, mode="inst0")


def abs_instance_loop_correct(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
    out = torch.zeros(acts.shape[1], sum(1 for q in parent_of if q == -1), dtype=acts.dtype, device=acts.device)
    for i in range(acts.shape[1]):
        cos = F.cosine_similarity(W_dec[i].unsqueeze(-1), W_features[i].unsqueeze(0), dim=1)
        col = 0
        for p, q in enumerate(parent_of):
            if q != -1:
                continue
            kids = torch.tensor([f for f, r in enumerate(parent_of) if r == p], dtype=torch.long, device=acts.device)
            f_i = features[:, i]
            case = (f_i[:, p] != 0) & (f_i.index_select(1, kids) != 0).any(1)
            lat = int(cos[:, p].argmax())
            others = (cos[:, p] >= cos_threshold).clone()
            others[lat] = False
            a = acts[:, i]
            hit = case & (a[:, lat] <= 0) & (a[:, others] > 0).any(1)
            n = int(case.sum())
            out[i, col] = hit.sum() / n if n else 0.0
            col += 1
    return out


def test_other_instances_latents_observed_not_guessed():
    err = assert_fails(checks.test_absorption_fraction, abs_parent_off_amax_all_indices, code="instance_latent")
    assert "OTHER instances' latents" in err.hint
    assert "flattened" not in err.hint and "instance 0's" not in err.hint


def test_instance0_latent_observed_too():
    err = assert_fails(checks.test_absorption_fraction, abs_parent_latent_of_instance0, code="instance_latent")
    assert "OTHER instances' latents" in err.hint


def test_absorption_correct_variants_pass():
    assert_passes(checks.test_absorption_fraction, abs_instance_loop_correct)
    assert_passes(checks.test_absorption_fraction, ref.absorption_fraction)
