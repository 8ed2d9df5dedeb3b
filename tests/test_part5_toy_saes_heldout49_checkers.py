"""Proofs for part 5's confidence audit (round 49): hints that named a cause from a pattern now name it only when
a read-back confirms it.

* generate_batch's h = W x plus one vector (`bias_added`): the vector is read back against the SAE's and the toy
  model's fields; the hint used to put every such vector down to the toy model's b_final (fresh47
  gen_plus_sae_b_dec added the SAE's b_dec).
* W_dec_normalized with NaN in non-zero rows (`norm_nan`): "usually a square root of a negative number" is now said
  only when the NaN rows are the smallest-norm rows and the finite rows are divided by √(‖W‖² − c), or when the NaN
  lie exactly at W's negative entries; otherwise the hint says where the NaN are and names no cause.
* init's permuted draw (fresh47 init_drawn_dsae_first_then_permuted, `init_scale`): still named as a draw in another
  layout, not only mode='fan_out'.
"""

from __future__ import annotations

import einops
import torch
from torch import nn

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails


def _with(**methods) -> type:
    return type("V", (P.ToySAE,), methods)


def _gen(extra):
    def generate_batch(self, batch_size):
        f = self.model.generate_batch(batch_size)
        return einops.einsum(f, self.model.W, "b i f, i d f -> b i d") + extra(self)

    return generate_batch


def test_fresh47_gen_plus_sae_b_dec_names_b_dec_not_b_final():
    failure = assert_fails(checks.test_generate_batch, _with(generate_batch=_gen(lambda s: s.b_dec)), "bias_added")
    assert "self.b_dec" in failure.hint and "b_final belongs" not in failure.hint


def test_gen_plus_b_final_slice_named_b_final():
    impl = _with(generate_batch=_gen(lambda s: s.model.b_final[:, : s.cfg.d_in]))
    failure = assert_fails(checks.test_generate_batch, impl, "bias_added")
    assert "b_final" in failure.hint and "self.b_dec" not in failure.hint


def test_gen_plus_unknown_vector_names_no_field():
    # a vector that is none of the fields: the old hint said b_final; now only the observation and its values
    impl = _with(generate_batch=_gen(lambda s: torch.linspace(0.1, 0.7, s.cfg.d_in, device=s.W_enc.device)))
    failure = assert_fails(checks.test_generate_batch, impl, "bias_added")
    assert "none of the SAE's or the toy model's fields" in failure.hint and "b_final belongs" not in failure.hint


def _norm(fn):
    return _with(W_dec_normalized=property(lambda self: fn(self.W_dec, self.cfg.weight_normalize_eps)))


def test_nan_from_norm_minus_constant_still_names_the_negative_root():
    impl = _norm(lambda W, eps: W / ((W**2).sum(-1, keepdim=True) - 0.5).sqrt().add(eps))
    failure = assert_fails(checks.test_W_dec_normalized, impl, "norm_nan")
    assert "square root of a negative" in failure.hint and "0.5" in failure.hint


def test_nan_from_elementwise_root_named_as_such():
    impl = _norm(lambda W, eps: W / (W.sqrt().sum(-1, keepdim=True) + eps))
    failure = assert_fails(checks.test_W_dec_normalized, impl, "norm_nan")
    assert "rows holding a negative entry" in failure.hint


def test_nan_from_root_of_row_sum_still_named():
    impl = _norm(lambda W, eps: W / (W.sum(-1, keepdim=True).sqrt() + eps))
    failure = assert_fails(checks.test_W_dec_normalized, impl, "norm_nan")
    assert "your squared norm looks like the row's entries summed" in failure.hint


def test_nan_from_log_of_norm_not_put_down_to_a_root():
    # NaN exactly where the row sum is negative, but from a log of it, not a root: the old hint said square root
    impl = _norm(lambda W, eps: W / (W.norm(dim=-1, keepdim=True) * W.sum(-1, keepdim=True).log().exp() + eps))
    failure = assert_fails(checks.test_W_dec_normalized, impl, "norm_nan")
    assert "usually comes from a square root" not in failure.hint and "your squared norm looks like" not in failure.hint
    assert "not divided by its square root" in failure.message


def test_fresh47_init_permuted_draw_named_as_other_layout():
    class Permuted(P.ToySAE):
        def __init__(self, cfg, model=None):
            super().__init__(cfg, model)
            W = nn.init.kaiming_uniform_(torch.empty(cfg.d_sae, cfg.n_inst, cfg.d_in)).permute(1, 2, 0).contiguous()
            self.W_enc.data = W.to(self.W_enc.device)
            if not cfg.tied_weights:
                self._W_dec.data = self.W_enc.detach().transpose(-1, -2).clone()

    failure = assert_fails(checks.test_init, Permuted, "init_scale")
    assert "drawn in another layout" in failure.message


def test_nan_without_a_read_back_names_no_cause():
    # NaN where the first entry of the row is negative: no candidate reproduces it, so only the rows are told
    impl = _norm(lambda W, eps: W / (W.norm(dim=-1, keepdim=True) * W[..., :1].sqrt() / W[..., :1].abs().sqrt() + eps))
    failure = assert_fails(checks.test_W_dec_normalized, impl, "norm_nan")
    assert "usually comes from a square root" not in failure.hint and "find the step that gives NaN" in failure.hint


def _resample_rows(rule):
    def resample_simple(sae, frac, resample_scale):
        chosen = rule(frac)
        n = int(chosen.sum())
        if n == 0:
            return
        d = torch.nn.functional.normalize(torch.randn(n, sae.cfg.d_in, device=sae.W_enc.device), dim=-1)
        sae.W_dec.data[chosen] = d
        sae.W_enc.data.transpose(-1, -2)[chosen] = d * resample_scale
        sae.b_enc.data[chosen] = 0.0

    return resample_simple


def test_some_live_latents_resampled_not_called_an_inverted_mask():
    # only the live latents at even positions: no dead latent touched, but not the dead mask inverted either
    def rule(frac):
        live = (frac > 0).any(0)
        return live & (torch.arange(live.shape[-1], device=live.device) % 2 == 0)

    failure = assert_fails(checks.test_resample_simple, _resample_rows(rule), "only_live_resampled")
    assert "inverted" not in failure.hint


def _gen_masked(mask):
    def generate_batch(self, batch_size):
        x = self.model.generate_batch(batch_size)
        return torch.einsum("bif,idf->bid", x * mask(self, x), self.model.W)

    return generate_batch


def test_features_thresholded_named_as_threshold():
    impl = _with(generate_batch=_gen_masked(lambda s, x: x > 0.5))
    failure = assert_fails(checks.test_generate_batch, impl, "features_dropped")
    assert "a threshold on the feature values" in failure.hint and "ReLU" not in failure.hint


def test_features_masked_at_random_not_called_a_threshold_or_relu():
    impl = _with(generate_batch=_gen_masked(lambda s, x: torch.rand_like(x) < s.model.feature_probability))
    failure = assert_fails(checks.test_generate_batch, impl, "features_dropped")
    assert "not a threshold on the values" in failure.hint and "ReLU" not in failure.hint


def _gen_post(post):
    def generate_batch(self, batch_size):
        h = einops.einsum(self.model.generate_batch(batch_size), self.model.W, "b i f, i d f -> b i d")
        return post(self, h, batch_size)

    return generate_batch


def test_examples_masked_by_second_draw_told_where_not_why():
    impl = _with(generate_batch=_gen_post(lambda s, h, n: h * (s.model.generate_batch(n).sum(-1, keepdim=True) > 0)))
    failure = assert_fails(checks.test_generate_batch, impl, "examples_zeroed")
    assert "the zero rows" in failure.message and "never written" not in failure.message


def test_examples_never_written_not_called_a_mask():
    # a loop over the batch that stops short into a zeros tensor: the old hint said "don't multiply by a mask"
    def post(self, h, n):
        out = torch.zeros_like(h)
        for b in range(n - 3):
            out[b] = h[b]
        return out

    failure = assert_fails(checks.test_generate_batch, _with(generate_batch=_gen_post(post)), "examples_zeroed")
    assert "never written" in failure.message and "mask" not in failure.hint


def _resample_unless_few(min_dead):
    def resample(sae, frac, resample_scale):
        dead = (frac <= 0).all(dim=0)
        if int(dead.sum()) < min_dead:
            return
        d = torch.nn.functional.normalize(torch.randn(int(dead.sum()), sae.cfg.d_in, device=sae.W_enc.device), dim=-1)
        sae.W_dec.data[dead] = d
        sae.W_enc.data.transpose(-1, -2)[dead] = d * resample_scale
        sae.b_enc.data[dead] = 0.0

    return resample


def test_lone_dead_guard_still_named_by_read_back():
    failure = assert_fails(checks.test_resample_simple, _resample_unless_few(2), "lone_dead_skipped")
    assert "so were two dead latents" in failure.message and "n_dead <= 1" in failure.hint


def test_few_dead_skipped_not_called_a_lone_count_guard():
    # skipped below 3 dead latents: the old hint put it down to `n_dead <= 1` or a squeeze of one index
    failure = assert_fails(checks.test_resample_simple, _resample_unless_few(3), "lone_dead_skipped")
    assert "n_dead <= 1" not in failure.hint and "squeeze" not in failure.hint


def test_writes_into_an_indexed_copy_not_called_an_all_false_mask():
    # the mask is right, the writes land in copies (W_dec[dead] is a copy): the old hint asked "is your dead mask
    # all False?"
    def resample(sae, frac, resample_scale):
        dead = (frac <= 0).all(dim=0)
        d = torch.nn.functional.normalize(torch.randn(int(dead.sum()), sae.cfg.d_in, device=sae.W_enc.device), dim=-1)
        sae.W_dec.data[dead].copy_(d)
        sae.W_enc.data.transpose(-1, -2)[dead].copy_(d * resample_scale)
        sae.b_enc.data[dead].zero_()

    failure = assert_fails(checks.test_resample_simple, resample, "nothing_resampled")
    assert "all False" not in failure.hint


def test_features_scaled_by_an_unknown_table_names_no_field():
    # each feature times its own constant (no model field): the old hint offered a probability, an importance, a mask
    def generate_batch(self, batch_size):
        x = self.model.generate_batch(batch_size)
        s = torch.linspace(0.5, 1.5, x.shape[-1], device=x.device)
        return torch.einsum("bif,idf->bid", x * s, self.model.W)

    failure = assert_fails(checks.test_generate_batch, _with(generate_batch=generate_batch), "feature_scaled")
    assert "an importance" not in failure.hint and "They are not the toy model's per-feature fields" in failure.hint
