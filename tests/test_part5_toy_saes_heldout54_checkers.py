"""Proofs for part 5 from held-out round BA (fresh54).

* generate_batch that draws fewer examples than it returns and fills the batch up (the draw with a negated, flipped or
  rescaled copy of it appended): the checker no longer crashes comparing the draw with the batch; it names the
  shortfall and reads the extra examples back (`too_few_draws`). Two draws that add up to the batch still pass.
* resample_advanced is also run on a tied SAE (its main check is untied): a decoder write through sae._W_dec
  (`used_private_W_dec`) and the encoder column written before the decoder row (`tied_enc_overwritten`) are named;
  the project's correct `_advanced_cumsum` wrote through sae._W_dec and now writes through sae.W_dec.
* resample_simple whose encoder write reaches the live latents too (the whole W_enc rebuilt from the decoder, or
  multiplied by resample_scale) is named as such (`live_encoder_changed`), no longer as "all latents resampled".
* resample_advanced: one input for every dead latent in some instances but spread picks in others is named as a
  sampler that depends on the weights' scale (an unnormalised inverse CDF), not as argmax or a shared draw; picks
  that follow the per-example total loss are named (`sampling_total`).
* init whose kaiming draw is normalised afterwards (every encoder column of one length) is named (`init_normalised`);
  generate_batch adding or averaging two draws is read back as a combination of the draws (`draws_combined`).
* W_dec_normalized whose unit rows are sign-flipped per row (`rows_negated`) or centred over d_in (`rows_centred`).
* resample_simple's decoder rows read back as c · ‖v‖^e of the Gaussian draw: v / ‖v‖² and v / √d_in are named
  (`draw_length_law`); an unnormalised draw (e = 1, c = 1) is still `dec_not_unit`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails, assert_passes
from tests.test_part5_toy_saes_heldout45_checkers import resample_advanced_with


def _hidden(self, x):
    return torch.einsum("bif,idf->bid", x, self.model.W)


def _gen(fill):
    def generate_batch(self, batch_size):
        if fill == "halves":  # correct: two draws that add up to the batch
            n = batch_size // 2
            return _hidden(self, torch.cat([self.model.generate_batch(n), self.model.generate_batch(batch_size - n)]))
        h = _hidden(self, self.model.generate_batch(batch_size // 2))
        return torch.cat([h, {"negated": -h, "flipped": h.flip(0), "rescaled": 0.5 * h}[fill]])

    return type("GenFill", (P.ToySAE,), {"generate_batch": generate_batch})


def test_fresh54_generate_batch_filled_up_from_a_smaller_draw_is_named():
    for fill, kind in (("negated", "negated copies"), ("flipped", "exact copies"), ("rescaled", "rescaled copies")):
        failure = assert_fails(checks.test_generate_batch, _gen(fill), "too_few_draws")
        assert "drew only 32" in failure.message and kind in failure.message


def test_fresh54_generate_batch_two_draws_adding_up_pass():
    assert_passes(checks.test_generate_batch, _gen("halves"))


def test_fresh54_resample_advanced_with_tied_weights():
    assert_fails(checks.test_resample_advanced, resample_advanced_with("private"), "used_private_W_dec")
    failure = assert_fails(checks.test_resample_advanced, resample_advanced_with("enc_first"), "tied_enc_overwritten")
    assert "length 1" in failure.message
    assert_passes(checks.test_resample_advanced, resample_advanced_with("ok"))


def _simple_whole_encoder(kind):
    """resample_simple whose encoder write reaches every latent: W_enc rebuilt from the whole decoder, or the new
    columns written unscaled and then the whole W_enc multiplied by resample_scale."""

    def resample(sae, frac, resample_scale):
        dead = (frac <= 0).all(0)
        v = F.normalize(torch.randn(int(dead.sum()), sae.cfg.d_in), dim=-1)
        sae.W_dec.data[dead] = v
        if kind == "from_decoder":
            sae.W_enc.data.copy_(sae.W_dec.data.transpose(-1, -2) * resample_scale)
        else:
            sae.W_enc.data.transpose(-1, -2)[dead] = v
            sae.W_enc.data *= resample_scale
        sae.b_enc.data[dead] = 0.0

    return resample


def test_fresh54_resample_simple_live_encoder_columns_changed_is_named():
    for kind, source in (("from_decoder", "decoder rows"), ("scaled", "old columns")):
        failure = assert_fails(checks.test_resample_simple, _simple_whole_encoder(kind), "live_encoder_changed")
        assert f"0.37 × their {source}" in failure.message


def _advanced_picks(rule):
    """resample_advanced choosing the examples by hand: an inverse-CDF search of u in [0, 1) in cumulative weights not
    divided by their total (`unnormalised`), weights from the per-example total loss (`total`), or correct."""

    def resample(sae, frac, resample_scale, batch_size):
        dead = (frac <= 0).all(dim=0)
        h = sae.generate_batch(batch_size)
        loss_dict = sae.forward(h)[0]
        l2 = loss_dict["L_reconstruction"]
        for inst in range(sae.cfg.n_inst):
            idx = dead[inst].nonzero().squeeze(-1)
            w = l2[:, inst].pow(2)
            if idx.numel() == 0 or w.sum() <= 0:
                continue
            if rule == "total":
                w = (l2 + sae.sparsity_coeff * loss_dict["L_sparsity"])[:, inst].pow(2)
            cdf = torch.cumsum(w, 0)
            u = torch.rand(idx.numel()) * (1.0 if rule == "unnormalised" else cdf[-1])
            picked = torch.searchsorted(cdf, u, right=True).clamp_max(len(w) - 1)
            v = F.normalize(h[picked, inst] - sae.b_dec[inst], dim=-1)
            alive = sae.W_enc[inst, :, ~dead[inst]].norm(dim=0)
            sae.W_dec.data[inst, idx] = v
            sae.W_enc.data[inst][:, idx] = v.T * resample_scale * (alive.mean() if alive.numel() else 1.0)
            sae.b_enc.data[inst, idx] = 0.0

    return resample


def test_fresh54_resample_advanced_scale_dependent_sampler_and_total_loss_named():
    failure = assert_fails(checks.test_resample_advanced, _advanced_picks("unnormalised"), "same_input")
    assert "neither an argmax nor one draw shared" in failure.hint and "not divided by their total" in failure.hint
    failure = assert_fails(checks.test_resample_advanced, _advanced_picks("total"), "sampling_total")
    assert "total loss" in failure.hint
    assert_passes(checks.test_resample_advanced, _advanced_picks("normalised"))


class _InitUnitColumns(P.ToySAE):
    """init whose kaiming draw is normalised to unit encoder columns afterwards (decoder rows unit too)."""

    def __init__(self, cfg, model=None):
        super().__init__(cfg, model)
        with torch.no_grad():
            self.W_enc.div_(self.W_enc.norm(dim=1, keepdim=True))
            if self._W_dec is not None:
                self._W_dec.copy_(self.W_enc.transpose(-1, -2))


def test_fresh54_init_normalised_columns_named():
    failure = assert_fails(checks.test_init, _InitUnitColumns, "init_normalised")
    assert "every encoder column" in failure.message


def _gen_draws(kind):
    def generate_batch(self, batch_size):
        x1, x2 = self.model.generate_batch(batch_size), self.model.generate_batch(batch_size)
        x = {"added": x1 + x2, "averaged": (x1 + x2) / 2, "second": x2}[kind]  # "second": a draw discarded, correct
        return _hidden(self, x)

    return type("GenDraws", (P.ToySAE,), {"generate_batch": generate_batch})


def test_fresh54_generate_batch_combined_draws_named():
    for kind, terms in (("added", "1 · W x_1 + 1 · W x_2"), ("averaged", "0.5 · W x_1 + 0.5 · W x_2")):
        failure = assert_fails(checks.test_generate_batch, _gen_draws(kind), "draws_combined")
        assert terms in failure.message
    assert_passes(checks.test_generate_batch, _gen_draws("second"))


def _normalized(kind):
    def W_dec_normalized(self):
        W = self.W_dec
        unit = W / (W.norm(dim=-1, keepdim=True) + self.cfg.weight_normalize_eps)
        if kind == "centred":
            return unit - unit.mean(-1, keepdim=True)
        return unit * torch.sign(unit.sum(-1, keepdim=True))  # a canonical sign per row

    return type("NormRows", (P.ToySAE,), {"W_dec_normalized": property(W_dec_normalized)})


def test_fresh54_W_dec_normalized_rows_negated_or_centred_named():
    assert "negated" in assert_fails(checks.test_W_dec_normalized, _normalized("signed"), "rows_negated").message
    assert "centred" in assert_fails(checks.test_W_dec_normalized, _normalized("centred"), "rows_centred").message


def _simple_lengths(kind):
    def resample(sae, frac, resample_scale):
        dead = (frac <= 0).all(0)
        v = torch.randn(int(dead.sum()), sae.cfg.d_in)
        v = v / v.norm(dim=-1, keepdim=True) ** 2 if kind == "squared" else v / sae.cfg.d_in**0.5
        sae.W_dec.data[dead] = v
        sae.W_enc.data.transpose(-1, -2)[dead] = v * resample_scale
        sae.b_enc.data[dead] = 0.0

    return resample


def test_fresh54_resample_simple_draw_length_law_named():
    for kind, what in (("squared", "v / ‖v‖²"), ("constant", "v / √d_in")):
        failure = assert_fails(checks.test_resample_simple, _simple_lengths(kind), "draw_length_law")
        assert what in failure.message
