"""Proofs for part 5b's diagnoses added after the fresh39 held-out measurement: absorption_fraction with the
parent's latent counted off below a threshold above 0 (act < the parent feature's value) lists that cause."""

from __future__ import annotations

import pytest
import torch

import tests.part5b_absorption as checks
from tests.proving import assert_fails


def _off_below(threshold):
    def absorption_fraction(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
        Wf = W_features / W_features.norm(dim=1, keepdim=True)
        Wd = W_dec / W_dec.norm(dim=-1, keepdim=True)
        cos = torch.einsum("isd,idf->isf", Wd, Wf)
        out = []
        for p in [i for i, q in enumerate(parent_of) if q == -1]:
            kids = [c for c, q in enumerate(parent_of) if q == p]
            cases = (features[..., p] > 0) & (features[..., kids] > 0).any(-1)
            lat = cos[..., p].argmax(-1)
            pa = acts.gather(-1, lat.view(1, -1, 1).expand(acts.shape[0], -1, 1))[..., 0]
            off = pa < threshold(features[..., p])
            carriers = (cos[..., p] >= cos_threshold) & (torch.arange(cos.shape[1]) != lat[:, None])
            carried = ((acts > 0) & carriers).any(-1)
            out.append((cases & off & carried).sum(0) / cases.sum(0).clamp_min(1))
        return torch.stack(out, -1).to(acts.dtype)

    return absorption_fraction


@pytest.mark.parametrize("threshold", [lambda f: f, lambda f: torch.ones_like(f)])
def test_parent_off_threshold_above_zero_is_listed(threshold):
    err = assert_fails(checks.test_absorption_fraction, _off_below(threshold), "carriers_counted")
    assert "threshold above 0" in err.hint and "act == 0" in err.hint
    assert ".any(-1)" in err.hint  # the other causes stay listed: the probe can't tell them apart
