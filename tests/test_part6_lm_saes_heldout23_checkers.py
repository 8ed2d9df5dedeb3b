"""Proofs for part 6 after the fresh42 measurement: NaN from an additive mask (`inf_times_zero`) told from NaN at
position 0 (`not_finite`); positions that are ranks in a sorted row (`sorted_rows`); a logit effect cached on the
first call (`stale_cache`) told from a hard-coded row (`latent_index`); counts / n_seq * (seq − 1) (`precedence`);
per-token losses divided by tokens.numel() (`numel_denominator`); a splice flattened (s b) and put back (b s)
(`tokens_scrambled`); zeros at any other hook point (`zero_hook_point`, hook_pre still passes); steering with latent
and coeff swapped (`steer_swapped`)."""

from __future__ import annotations

import einops
import torch

import tests.part6_lm_saes as p6
from tests.proving import assert_fails, assert_passes


def _top(mask_nan):
    def top_activations(acts, k):
        mask = torch.zeros_like(acts)
        mask[:, 0] = 1
        masked = acts.masked_fill(mask.bool(), float("nan")) if mask_nan else acts - float("inf") * mask
        v, i = masked.flatten().topk(k)
        return v, i // acts.shape[1], i % acts.shape[1]

    return top_activations


def test_top_nan_where():
    failure = assert_fails(p6.test_top_activations, _top(False), "inf_times_zero")
    assert "every one of the 84 entries at positions >= 1" in failure.message and "0 · inf" in failure.hint
    assert "only at position 0" in assert_fails(p6.test_top_activations, _top(True), "not_finite").message


def test_top_sorted_rows():
    def top_activations(acts, k):
        m = acts.clone()
        m[:, 0] = float("-inf")
        srt, _order = m.sort(dim=1, descending=True)
        v, i = srt.flatten().topk(k)
        return v, i // acts.shape[1], i % acts.shape[1]

    assert "ranks in a sorted row" in assert_fails(p6.test_top_activations, top_activations, "sorted_rows").message


def test_logit_effect_cache_or_row():
    cache = {}

    def cached(model, sae, latent):
        if "eff" not in cache:
            cache["eff"] = sae.W_dec[latent] @ model.W_out[0] @ model.W_U
        return cache["eff"]

    assert_fails(p6.test_latent_logit_effect, cached, "stale_cache")
    hard = lambda model, sae, latent: sae.W_dec[3] @ model.W_out[0] @ model.W_U
    assert "whatever latent is" in assert_fails(p6.test_latent_logit_effect, hard, "latent_index").hint


def test_frequencies_precedence():
    def latent_frequencies(model, sae, tokens, batch_size=32):
        counts = torch.zeros(sae.d_sae)
        for b in tokens.split(batch_size):
            _, cache = model.run_with_cache(b, names_filter=sae.hook_name)
            counts += (sae.encode(cache[sae.hook_name][:, 1:]) > 0).float().sum((0, 1))
        return counts / tokens.shape[0] * (tokens.shape[1] - 1)

    assert "47² = 2209" in assert_fails(p6.test_latent_frequencies, latent_frequencies, "precedence").hint


def _losses(splice, zero_at=None, numel=False):
    def reconstruction_losses(model, sae, tokens):
        def L(name, fn):
            out = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(name, fn)] if fn else [],
                                       loss_per_token=numel)  # fmt: skip
            return float(out.sum() / tokens.numel()) if numel else float(out)

        c, s = L(sae.hook_name, None), L(sae.hook_name, lambda a, hook: splice(sae, a))
        z = L(zero_at or sae.hook_name, lambda a, hook: torch.zeros_like(a))
        return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": (z - s) / (z - c)}

    return reconstruction_losses


_splice = lambda sae, a: sae.decode(sae.encode(a))


def _scrambled(sae, a):
    flat = einops.rearrange(a, "b s d -> (s b) d")
    return einops.rearrange(sae.decode(sae.encode(flat)), "(b s) d -> b s d", b=a.shape[0])


def test_losses_denominator_scramble_hook_point():
    assert (
        "63/64" in assert_fails(p6.test_reconstruction_losses, _losses(_splice, numel=True), "numel_denominator").hint
    )
    assert_fails(p6.test_reconstruction_losses, _losses(_scrambled), "tokens_scrambled")
    attn = _losses(_splice, "blocks.0.hook_attn_out")
    assert "blocks.0.hook_attn_out" in assert_fails(p6.test_reconstruction_losses, attn, "zero_hook_point").hint
    assert_passes(p6.test_reconstruction_losses, _losses(_splice, "blocks.0.mlp.hook_pre"))  # GELU(0) = 0


def test_steer_swapped():
    def steer_with_latent(model, sae, tokens, coeff, latent):
        return model.run_with_hooks(
            tokens, fwd_hooks=[(sae.hook_name, lambda a, hook: a + coeff * sae.W_dec[int(latent)])]
        )

    assert_fails(p6.test_steer_with_latent, steer_with_latent, "steer_swapped")
