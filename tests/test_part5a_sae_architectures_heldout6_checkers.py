"""Proofs for part 5a's diagnoses added after the fresh14 held-out measurement: the TopK indices of every example
written into each one (fancy-index assignment), a metric's instance computed on an example, an FVE denominator from
standard deviations, a metric returned in float64, recovery normalised over the wrong axes or built from distances."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes


def _topk_fancy_index():
    def forward(self, h):
        post = F.relu(torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc)
        top = post.topk(self.cfg.k, dim=-1)
        acts = torch.zeros_like(post)
        acts[..., top.indices] = top.values  # every example's indices into every example
        h_rec = torch.einsum("bis,isd->bid", acts, self.W_dec_normalized) + self.b_dec
        Lr = (h_rec - h).pow(2).mean(-1)
        return {"L_reconstruction": Lr, "L_sparsity": (acts > 0).to(h.dtype).sum(-1)}, Lr.mean(0).sum(), acts, h_rec

    return type("Fresh14TopK", (A.TopKToySAE,), {"forward": forward})


def test_topk_fancy_index_assignment():
    failure = assert_fails(C.test_topk_forward, _topk_fancy_index(), "indices_shared")
    assert "scatter" in failure.hint


def test_l0_example_as_instance():
    impl = lambda acts: torch.stack([(acts[i] != 0).float().sum(-1).mean() for i in range(acts.shape[1])])
    assert_fails(C.test_l0_norm, impl, "example_as_instance")


def test_fve_std_denominator():
    def fve(h, h_rec):
        return 1 - (h - h_rec).pow(2).sum((0, 2)) / (h.std(0, unbiased=False).sum(-1) * h.shape[0])

    assert_fails(C.test_fraction_variance_explained, fve, "std_not_variance")


def test_fve_float64_result():
    def fve(h, h_rec):
        h, h_rec = h.double(), h_rec.double()
        return 1 - (h - h_rec).pow(2).sum((0, 2)) / (h - h.mean(0)).pow(2).sum((0, 2))

    failure = assert_fails(C.test_fraction_variance_explained, fve, "dtype")
    assert "float64" in failure.message


def test_l0_float64_result():
    assert_fails(C.test_l0_norm, lambda acts: (acts != 0).double().sum(-1).mean(0), "dtype")


def test_recovery_frobenius_norm():
    def rec(W_features, W_dec):
        f = W_features / (W_features.norm(dim=1, keepdim=True) + 1e-8)
        d = W_dec / (W_dec.norm(dim=(-2, -1), keepdim=True) + 1e-8)
        return torch.einsum("isd,idf->isf", d, f).max(1).values

    failure = assert_fails(C.test_feature_recovery, rec, "norm_wrong_axes")
    assert "Frobenius" in failure.hint


def test_recovery_one_minus_distance():
    def rec(W_features, W_dec):
        f = F.normalize(W_features, dim=1).transpose(1, 2)
        return (1 - torch.cdist(f, F.normalize(W_dec, dim=-1))).max(-1).values

    assert_fails(C.test_feature_recovery, rec, "distance_not_cosine")


def test_recovery_one_minus_half_squared_distance_passes():
    def rec(W_features, W_dec):
        f = F.normalize(W_features, dim=1).transpose(1, 2)
        return (1 - torch.cdist(f, F.normalize(W_dec, dim=-1)).pow(2) / 2).amax(-1)

    assert_passes(C.test_feature_recovery, rec)
