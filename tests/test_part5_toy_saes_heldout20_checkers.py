"""Proofs for part 5's diagnoses added after the fresh40 held-out measurement: W_dec_normalized divided by the norm
of part of each row (W[..., :-1]) or with its entries rearranged (a reshape where a transpose belonged),
generate_batch's features meeting W's columns in another order (flipped, rolled), and forward centring with b_dec
averaged over the instances or measuring L_reconstruction as the error's variance, are named."""

from __future__ import annotations

import einops
import torch.nn.functional as F

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails


def _subclass(name, fn, prop=False):
    return type("S", (P.ToySAE,), {name: property(fn) if prop else fn})


def test_norm_of_part_of_the_row_is_named():
    def dropped(self):
        W = self.W_dec
        return W / (W[..., :-1].norm(dim=-1, keepdim=True) + self.cfg.weight_normalize_eps)

    err = assert_fails(checks.test_W_dec_normalized, _subclass("W_dec_normalized", dropped, True), "norm_partial_row")
    assert "[0, 1, 2]" in err.message and "left out" in err.message


def test_scrambled_rows_are_named():
    def scrambled(self):
        W = self.W_dec
        n_inst, d_sae, d_in = W.shape
        flat = W.reshape(-1, d_in)
        flat = flat / (flat.norm(dim=-1, keepdim=True) + self.cfg.weight_normalize_eps)
        return flat.reshape(n_inst, d_in, d_sae).transpose(-1, -2)

    err = assert_fails(checks.test_W_dec_normalized, _subclass("W_dec_normalized", scrambled, True), "rows_scrambled")
    assert "wrong positions" in err.message


def _mapped(order):
    def generate_batch(self, batch_size):
        x = order(self.model.generate_batch(batch_size))
        return einops.einsum(x, self.model.W, "b i f, i d f -> b i d")

    return _subclass("generate_batch", generate_batch)


def test_flipped_features_are_named():
    err = assert_fails(checks.test_generate_batch, _mapped(lambda x: x.flip(-1)), "features_permuted")
    assert "reverse order" in err.message


def test_rolled_features_are_named():
    err = assert_fails(checks.test_generate_batch, _mapped(lambda x: x.roll(1, -1)), "features_permuted")
    assert "shifted by" in err.message


def test_any_feature_permutation_is_named():
    err = assert_fails(checks.test_generate_batch, _mapped(lambda x: x[..., [1, 0, 2, 3, 5, 4]]), "features_permuted")
    assert "another order" in err.message


def _forward(centre=lambda b: b, rec=lambda e: e.pow(2).mean(-1)):
    def forward(self, h):
        acts = F.relu(einops.einsum(h - centre(self.b_dec), self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
        h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
        L_rec = rec(h_rec - h)
        L_sp = acts.abs().sum(-1)
        loss = (L_rec + self.sparsity_coeff * L_sp).mean(0).sum()
        return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, h_rec

    return _subclass("forward", forward)


def test_b_dec_averaged_over_instances_is_named():
    err = assert_fails(checks.test_forward, _forward(centre=lambda b: b.mean(0)), "b_dec_pooled_over_inst")
    assert "b_dec.mean(0)" in err.hint


def test_b_dec_of_instance_0_is_named():
    err = assert_fails(checks.test_forward, _forward(centre=lambda b: b[0]), "b_dec_first_inst")
    assert "b_dec[0]" in err.hint


def test_error_variance_is_named():
    err = assert_fails(checks.test_forward, _forward(rec=lambda e: e.var(-1)), "error_variance")
    assert "VARIANCE" in err.message
    assert_fails(checks.test_forward, _forward(rec=lambda e: e.var(-1, unbiased=False)), "error_variance")
