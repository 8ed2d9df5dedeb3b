"""Proofs for part 5 from held-out round BB (fresh55).

* forward whose loss is the convex combination (1 - sparsity_coeff) · L_reconstruction + sparsity_coeff · L_sparsity
  is named (`convex_combination`), no longer only "the sparsity part of instance i is [...] × the expected"; the
  two terms' weights are read back in general as small integers a + b·c (the swapped combination, `term_weights`).
* W_dec_normalized dividing by ‖W‖ · (1 + eps) (eps as a factor: NaN on a zero row) is read back with a large eps
  and named (`eps_factor`), no longer "eps missing, or low precision".
* generate_batch whose h is M (W x) per instance is read back (M fitted by least squares after W): M = W Wᵀ (h sent
  through W a second time) is named (`map_after_W`); one factor for every coordinate is still left to the generic
  scale diagnosis (`scale`, naming 1/√n_features).
* init that puts the toy model in eval mode (model.eval()) instead of freezing it: `model_not_frozen` now says that
  eval mode does not switch gradients off.
* resample_advanced whose new directions use the steps in another order or b_dec another way (x normalised before
  b_dec is subtracted, b_dec subtracted twice) is named (`direction_steps`), no longer "not (input - b_dec)".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails
from tests.test_part5_toy_saes_heldout45_checkers import resample_advanced_with


def _fwd_weights(self, h, swapped=False):
    acts = F.relu(torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc)
    h_rec = torch.einsum("bis,isd->bid", acts, self.W_dec_normalized) + self.b_dec
    L_rec, L_sp = (h_rec - h).pow(2).mean(-1), acts.sum(-1)
    c = self.sparsity_coeff
    loss = ((c * L_rec + (1 - c) * L_sp) if swapped else ((1 - c) * L_rec + c * L_sp)).mean(0).sum()
    return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, h_rec


def test_fresh55_forward_convex_combination_is_named():
    cls = type("FwdV", (P.ToySAE,), {"forward": _fwd_weights})
    failure = assert_fails(checks.test_forward, cls, "convex_combination")
    assert "(1 - sparsity_coeff) · L_reconstruction + sparsity_coeff · L_sparsity" in failure.message
    cls = type("FwdV", (P.ToySAE,), {"forward": lambda self, h: _fwd_weights(self, h, swapped=True)})
    failure = assert_fails(checks.test_forward, cls, "term_weights")
    assert "sparsity_coeff · L_reconstruction + (1 - sparsity_coeff) · L_sparsity" in failure.message


def _norm_eps_factor(self):
    return self.W_dec / (self.W_dec.norm(dim=-1, keepdim=True) * (1 + self.cfg.weight_normalize_eps))


def test_fresh55_W_dec_normalized_eps_as_a_factor_is_named():
    cls = type("NormV", (P.ToySAE,), {"W_dec_normalized": property(_norm_eps_factor)})
    failure = assert_fails(checks.test_W_dec_normalized, cls, "eps_factor")
    assert "(1 + eps)" in failure.message


def _gen_after(rule):
    def generate_batch(self, batch_size):
        W = self.model.W
        h = torch.einsum("bif,idf->bid", self.model.generate_batch(batch_size), W)
        if rule == "twice":  # through W a second time: W Wᵀ (W x)
            return torch.einsum("bid,idf,ief->bie", h, W, W)
        return h / math.sqrt(self.model.cfg.n_features)

    return type("GenV", (P.ToySAE,), {"generate_batch": generate_batch})


def test_fresh55_generate_batch_map_after_W_is_read_back():
    failure = assert_fails(checks.test_generate_batch, _gen_after("twice"), "map_after_W")
    assert "W Wᵀ" in failure.message
    failure = assert_fails(checks.test_generate_batch, _gen_after("uniform"), "scale")  # still the generic reading
    assert "1/√6" in failure.hint


def _ra_steps(rule):
    if rule == "normalised_first":
        return resample_advanced_with(direction=lambda x, b_dec: F.normalize(x, dim=-1) - b_dec)
    return resample_advanced_with(direction=lambda x, b_dec: x - 2 * b_dec)  # b_dec subtracted twice


def test_fresh55_resample_advanced_direction_steps_are_named():
    failure = assert_fails(checks.test_resample_advanced, _ra_steps("normalised_first"), "direction_steps")
    assert "normalised BEFORE" in failure.message
    failure = assert_fails(checks.test_resample_advanced, _ra_steps("twice"), "direction_steps")
    assert "subtracted twice" in failure.message


def test_fresh55_init_eval_mode_instead_of_frozen_is_named():
    def __init__(self, cfg, model=None):
        P.ToySAE.__init__(self, cfg, model)
        if model is not None:
            model.requires_grad_(True).eval()  # the learner's "freeze": eval mode only

    failure = assert_fails(checks.test_init, type("InitV", (P.ToySAE,), {"__init__": __init__}), "model_not_frozen")
    assert "model.eval()" in failure.hint
