"""Proofs for part 6 after held-out round BB (fresh55). Now named (`tests/part6_lm_saes_slip_readings.py` unless said):

* every checker that runs the learner's code: an error from a column of W_dec taken for its row (`W_dec[:, latent]`,
  `decoder_column`), and from f [batch seq] times the row without `[..., None]` (`missing_unsqueeze`);
* latent_frequencies: `>= 0` (every token fires) with position 0 in the denominator, (seq − 1)/seq for every latent
  (`every_token_fires`; it was read as a `.sum()` over every axis); one position alone, acts[:, 1]
  (`single_position`); latents encoded with the decoder transposed (`tied_encoder`);
* reconstruction_losses: the per-token losses reduced by a median (`median_loss`); a zero-ablation that keeps position
  0 (`bos_kept`);
* top_activations: a flat index unravelled with the two sizes swapped (`unravel_reversed`);
* latent_logit_effect: the encoder column and a bias at once (`direction_and_bias`);
* steer_with_latent: the encoder column subtracted (`steer_vector` now says subtracted, part6_lm_saes_variants.py); an
  edit in the first sequence only, act[0] (`some_positions` now says which sequences, and that act[0] is the batch);
* ablate_latent: f read as the reconstruction's projection on the decoder row (`f_source`, part6_lm_saes_edit_sources).

The round's correct variants (written differently from the reference) still pass.
"""

from __future__ import annotations

import torch

import tests.part6_lm_saes as p6
from tests.proving import assert_fails, assert_passes
from tests.test_part6_lm_saes_heldout54_checkers import ablate_at_mlp_out, steer_at_mlp_out, steer_in_latent_space


def _hooked(model, sae, tokens, fn):
    return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, fn)])


# --- errors from the decoder's layout ------------------------------------------------------------------------------
def effect_dec_column(model, sae, latent):
    return sae.W_dec[:, latent] @ model.W_out[0] @ model.W_U


def steer_dec_column(model, sae, tokens, latent, coeff):
    return _hooked(model, sae, tokens, lambda a, hook: a + coeff * sae.W_dec[:, latent])


def ablate_dec_column(model, sae, tokens, latent):
    def hook(act, hook):
        f = sae.encode(act)[..., latent]
        return act - f[..., None] * sae.W_dec[:, latent]

    return _hooked(model, sae, tokens, hook)


def ablate_missing_none(model, sae, tokens, latent):
    def hook(act, hook):
        f = sae.encode(act)[..., latent]
        return act - f * sae.W_dec[latent]

    return _hooked(model, sae, tokens, hook)


def test_decoder_column_is_named():
    for checker, impl in (
        (p6.test_latent_logit_effect, effect_dec_column),
        (p6.test_steer_with_latent, steer_dec_column),
        (p6.test_ablate_latent, ablate_dec_column),
    ):
        err = assert_fails(checker, impl, "decoder_column")
        assert "W_dec[latent]" in err.hint


def test_missing_unsqueeze_is_named():
    err = assert_fails(p6.test_ablate_latent, ablate_missing_none, "missing_unsqueeze")
    assert "f[..., None]" in err.hint


# --- latent_frequencies ------------------------------------------------------------------------------------------
def _freq(count, encode=None, denominator=None):
    def latent_frequencies(model, sae, tokens, batch_size=32):
        counts, n = torch.zeros(sae.d_sae), 0
        for batch in tokens.split(batch_size):
            h = model.run_with_cache(batch, names_filter=sae.hook_name)[1][sae.hook_name]
            acts = (encode or sae.encode)(h)
            c, m = count(acts)
            counts, n = counts + c, n + (denominator(batch) if denominator else m)
        return counts / n

    return latent_frequencies


freq_geq_numel = _freq(lambda a: ((a[:, 1:] >= 0).float().sum((0, 1)), 0), denominator=lambda b: b.numel())
freq_position_one = _freq(lambda a: ((a[:, 1] > 0).float().sum(0), a.shape[0]))


def freq_tied_encoder(model, sae, tokens, batch_size=32):
    enc = lambda h: torch.relu((h - sae.b_dec) @ sae.W_dec.T + sae.b_enc)
    fn = _freq(lambda a: ((a[:, 1:] > 0).float().sum((0, 1)), a.shape[0] * (a.shape[1] - 1)), encode=enc)
    return fn(model, sae, tokens, batch_size)


def freq_correct_preact_sign(model, sae, tokens, batch_size=32):
    enc = lambda h: (h - sae.b_dec) @ sae.W_enc + sae.b_enc  # > 0 exactly where the ReLU is
    fn = _freq(lambda a: ((a[:, 1:] > 0).float().sum((0, 1)), a.shape[0] * (a.shape[1] - 1)), encode=enc)
    return fn(model, sae, tokens, batch_size)


def freq_correct_count_nonzero(model, sae, tokens, batch_size=32):
    total, seen = torch.zeros(sae.d_sae, dtype=torch.long), 0
    for batch in torch.split(tokens, batch_size):
        acts = sae.encode(model.run_with_cache(batch, names_filter=sae.hook_name)[1][sae.hook_name])[:, 1:]
        total += torch.count_nonzero(acts, dim=(0, 1))
        seen += acts[..., 0].numel()
    return total.float() / seen


def test_frequency_slips_are_named():
    err = assert_fails(p6.test_latent_frequencies, freq_geq_numel, "every_token_fires")
    assert ">= 0" in err.hint and "position 0" in err.hint and ".sum()" not in err.hint
    err = assert_fails(p6.test_latent_frequencies, freq_position_one, "single_position")
    assert "acts[:, 1]" in err.message
    err = assert_fails(p6.test_latent_frequencies, freq_tied_encoder, "tied_encoder")
    assert "W_dec.T" in err.hint


def test_frequency_correct_variants_pass():
    assert_passes(p6.test_latent_frequencies, freq_correct_preact_sign)
    assert_passes(p6.test_latent_frequencies, freq_correct_count_nonzero)


# --- reconstruction_losses ---------------------------------------------------------------------------------------
def _losses(reduce=None, zero=None):
    def reconstruction_losses(model, sae, tokens):
        def run(fn=None):
            hooks = [] if fn is None else [(sae.hook_name, fn)]
            per = model.run_with_hooks(tokens, return_type="loss", loss_per_token=True, fwd_hooks=hooks)
            return float((reduce or torch.mean)(per))

        c, s = run(), run(lambda a, hook: sae(a))
        z = run(zero or (lambda a, hook: a * 0.0))
        return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": (z - s) / (z - c)}

    return reconstruction_losses


def _keep_bos(a, hook):
    a = a.clone()
    a[:, 1:] = 0.0
    return a


def test_loss_slips_are_named():
    err = assert_fails(p6.test_reconstruction_losses, _losses(reduce=torch.median), "median_loss")
    assert "median" in err.hint
    err = assert_fails(p6.test_reconstruction_losses, _losses(zero=_keep_bos), "bos_kept")
    assert "act[:, 1:] = 0" in err.hint


def test_loss_correct_variant_passes():
    assert_passes(p6.test_reconstruction_losses, _losses())  # loss_per_token then mean, sae.forward, act * 0


# --- top_activations ---------------------------------------------------------------------------------------------
def top_unravel_reversed(acts, k):
    m = acts.clone()
    m[:, 0] = float("-inf")
    v, flat = m.flatten().topk(k)
    seq, pos = torch.unravel_index(flat, (acts.shape[1], acts.shape[0]))
    return v, seq, pos


def top_correct_col_major(acts, k):
    m = torch.where(torch.arange(acts.shape[1], device=acts.device) == 0, float("-inf"), acts)
    v, flat = m.T.flatten().topk(k)
    return v, flat % acts.shape[0], flat // acts.shape[0]


def top_correct_min_fill(acts, k):
    m = acts.clone()
    m[:, 0] = acts.min() - 1.0
    v, flat = m.flatten().topk(k)
    return v, (flat // acts.shape[1]).int(), (flat % acts.shape[1]).int()


def test_top_reversed_unravel_is_named():
    err = assert_fails(p6.test_top_activations, top_unravel_reversed, "unravel_reversed")
    assert "reversed" in err.hint


def test_top_correct_variants_pass():
    assert_passes(p6.test_top_activations, top_correct_col_major)
    assert_passes(p6.test_top_activations, top_correct_min_fill)


# --- latent_logit_effect / steer_with_latent / ablate_latent -------------------------------------------------------
def effect_encoder_plus_b_U(model, sae, latent):
    return sae.W_enc[:, latent] @ model.W_out[0] @ model.W_U + model.b_U


def effect_correct_decode_difference(model, sae, latent):
    one = torch.zeros(sae.d_sae)
    one[latent] = 1.0
    return (sae.decode(one) - sae.decode(torch.zeros(sae.d_sae))) @ model.W_out[0] @ model.W_U


def steer_minus_encoder(model, sae, tokens, latent, coeff):
    return _hooked(model, sae, tokens, lambda a, hook: a - coeff * sae.W_enc[:, latent])


def steer_first_sequence(model, sae, tokens, latent, coeff):
    def hook(act, hook):
        act[0] += coeff * sae.W_dec[latent]
        return act

    return _hooked(model, sae, tokens, hook)


def ablate_reconstruction_projection(model, sae, tokens, latent):
    d = sae.W_dec[latent]
    return _hooked(model, sae, tokens, lambda a, hook: a - (sae(a) @ d)[..., None] * d)


def ablate_correct_decode_difference(model, sae, tokens, latent):
    def hook(act, hook):
        f = sae.encode(act)
        f0 = f.clone()
        f0[..., latent] = 0
        return act - (sae.decode(f) - sae.decode(f0))

    return _hooked(model, sae, tokens, hook)


def test_effect_two_slips_are_named():
    err = assert_fails(p6.test_latent_logit_effect, effect_encoder_plus_b_U, "direction_and_bias")
    assert "W_enc[:, latent]" in err.hint and "b_U" in err.hint


def test_steer_slips_are_named():
    err = assert_fails(p6.test_steer_with_latent, steer_minus_encoder, "steer_vector")
    assert "subtracted" in err.message and "W_enc[:, latent]" in err.message
    err = assert_fails(p6.test_steer_with_latent, steer_first_sequence, "some_positions")
    assert "act[0]" in err.hint and "[0]" in err.hint


def test_ablate_reconstruction_projection_is_named():
    err = assert_fails(p6.test_ablate_latent, ablate_reconstruction_projection, "f_source")
    assert "reconstruction" in err.message


def test_round_bb_correct_variants_pass():
    assert_passes(p6.test_latent_logit_effect, effect_correct_decode_difference)
    assert_passes(p6.test_steer_with_latent, steer_at_mlp_out)
    assert_passes(p6.test_steer_with_latent, steer_in_latent_space)
    assert_passes(p6.test_ablate_latent, ablate_at_mlp_out)
    assert_passes(p6.test_ablate_latent, ablate_correct_decode_difference)
