"""Proof: instance 0's carrier set used for every instance is named (not read as another instance's latent)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import tests.part5b_absorption as C
from tests.proving import assert_fails


def _inst0_carriers(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
    cos = torch.einsum("isd,idf->isf", F.normalize(W_dec, dim=-1), F.normalize(W_features, dim=1))
    n, ar, out = acts.shape[1], torch.arange(acts.shape[1]), []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        kids = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & (features[..., kids] > 0).any(-1)
        lat = cos[:, :, p].argmax(-1)
        carriers = (cos[0, :, p] >= cos_threshold).expand(n, -1).clone()
        carriers[ar, lat] = False
        carried = ((acts > 0) & carriers).any(-1)
        out.append((cases & (acts[:, ar, lat] == 0) & carried).sum(0) / cases.sum(0).clamp_min(1))
    return torch.stack(out, -1).to(acts.dtype)


def test_instance0_carriers_is_named():
    assert_fails(C.test_absorption_fraction, _inst0_carriers, "instance0_carriers")
