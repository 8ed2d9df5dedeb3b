"""Proofs for part 6 after held-out round AZ (fresh53). Now named:

* latent_frequencies: per-sequence or per-batch frequencies combined by a median or a max (`aggregate`);
* reconstruction_losses: a splice that decodes the firing pattern (`binary_latents`) or applies the SAE twice
  (`sae_twice`); a 'zero-ablation' that puts position 0's activation everywhere (`bos_not_zeroed`); recovered with a
  sum as its denominator (`recovered_formula`, quoted as a sign slip);
* top_activations: the last sequence left out (`last_sequence_dropped`); values rounded to float16
  (`low_precision`);
* steer_with_latent: the row divided by the norm of the whole decoder matrix (`steer_scaled`);
* ablate_latent: the removed amount read from the reconstruction re-encoded or from a projection of act − b_dec
  (`f_source`), a two-latent slice (`latent_slice`, on a latent whose index neighbours fire), the activation of
  latent ± 1 (`other_latent_f`), and zeros where the latent is silent (`zeroed_positions`).

The round's correct variants (written differently from the reference) still pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import tests.part6_lm_saes as p6
from tests.proving import assert_fails, assert_passes


# --- latent_frequencies ---------------------------------------------------------------------------------------
def _per_batch(model, sae, tokens, batch_size):
    for s in range(0, tokens.shape[0], batch_size):
        _, c = model.run_with_cache(tokens[s : s + batch_size], names_filter=sae.hook_name)
        yield sae.encode(c[sae.hook_name][:, 1:]) > 0


def freq_median_over_sequences(model, sae, tokens, batch_size=32):
    return torch.cat([f.float().mean(1) for f in _per_batch(model, sae, tokens, batch_size)]).median(0).values


def freq_max_over_batches(model, sae, tokens, batch_size=32):
    return torch.stack([f.float().mean((0, 1)) for f in _per_batch(model, sae, tokens, batch_size)]).max(0).values


def freq_correct_hook_cat_mean(model, sae, tokens, batch_size=32):
    fired = []

    def grab(act, hook):
        fired.append((sae.encode(act)[:, 1:] > 0).reshape(-1, sae.d_sae))

    for b in tokens.split(batch_size):
        model.run_with_hooks(b, fwd_hooks=[(sae.hook_name, grab)])
    return torch.cat(fired).double().mean(0).float()


def freq_correct_all_minus_bos(model, sae, tokens, batch_size=32):
    tot, cnt = 0, 0
    for i in range(0, len(tokens), batch_size):
        b = tokens[i : i + batch_size]
        _, c = model.run_with_cache(b, names_filter=lambda n: n == sae.hook_name)
        f = sae.encode(c[sae.hook_name]) > 0
        tot = tot + f.sum((0, 1)) - f[:, 0].sum(0)
        cnt += b.numel() - b.shape[0]
    return tot.float() / cnt


def test_freq_median_over_sequences_is_named():
    err = assert_fails(p6.test_latent_frequencies, freq_median_over_sequences, "aggregate")
    assert "median" in err.message + err.hint and "sequence" in err.message + err.hint


def test_freq_max_over_batches_is_named():
    err = assert_fails(p6.test_latent_frequencies, freq_max_over_batches, "aggregate")
    assert "maximum" in err.message + err.hint and "batch" in err.message + err.hint


def test_freq_correct_variants_pass():
    assert_passes(p6.test_latent_frequencies, freq_correct_hook_cat_mean)
    assert_passes(p6.test_latent_frequencies, freq_correct_all_minus_bos)


# --- reconstruction_losses ------------------------------------------------------------------------------------
def _losses(splice=None, zero=None, recovered=None, zero_hook=None):
    def impl(model, sae, tokens):
        h = sae.hook_name
        run = lambda hooks: model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()
        c = run([])
        s = run([(h, splice or (lambda a, hook: sae.decode(sae.encode(a))))])
        z = run([(zero_hook or h, zero or (lambda a, hook: torch.zeros_like(a)))])
        r = (z - s) / (z - c) if recovered is None else recovered(c, s, z)
        return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": r}

    return impl


def test_losses_binary_splice_is_named():
    def impl(model, sae, tokens):
        return _losses(splice=lambda a, hook: sae.decode((sae.encode(a) > 0).float()))(model, sae, tokens)

    assert_fails(p6.test_reconstruction_losses, impl, "binary_latents")


def test_losses_sae_twice_is_named():
    def impl(model, sae, tokens):
        return _losses(splice=lambda a, hook: sae(sae(a)))(model, sae, tokens)

    assert_fails(p6.test_reconstruction_losses, impl, "sae_twice")


def test_losses_zero_is_bos_broadcast_is_named():
    impl = _losses(zero=lambda a, hook: torch.zeros_like(a[:, :1]).expand_as(a) + a[:, :1])
    assert_fails(p6.test_reconstruction_losses, impl, "bos_not_zeroed")


def test_losses_recovered_sum_denominator_is_named():
    err = assert_fails(
        p6.test_reconstruction_losses, _losses(recovered=lambda c, s, z: (z - s) / (z + c)), "recovered_formula"
    )
    assert "(zero + clean)" in err.hint or "(clean + zero)" in err.hint
    assert "sign slip" in err.hint


def test_losses_correct_variants_pass():
    assert_passes(p6.test_reconstruction_losses, _losses(zero_hook="blocks.0.mlp.hook_pre", zero=lambda a, hook: a * 0))

    def manual_gather(model, sae, tokens):
        out = _losses()(model, sae, tokens)
        lp = model(tokens).log_softmax(-1)[:, :-1]
        out["clean"] = -lp.gather(-1, tokens[:, 1:, None]).mean().item()
        return out

    assert_passes(p6.test_reconstruction_losses, manual_gather)


# --- top_activations ------------------------------------------------------------------------------------------
def top_drops_last_sequence(acts, k):
    m = acts[:-1].clone()
    m[:, 0] = -float("inf")
    v, i = m.flatten().topk(k)
    return v, i // acts.shape[1], i % acts.shape[1]


def top_half_precision(acts, k):
    m = acts.clone().half()
    m[:, 0] = -float("inf")
    v, i = m.flatten().topk(k)
    return v.float(), i // acts.shape[1], i % acts.shape[1]


def top_correct_min_minus_one(acts, k):
    m = acts.clone()
    m[:, 0] = acts.min() - 1
    v, i = m.flatten().topk(k)
    return v, torch.div(i, acts.shape[1], rounding_mode="floor"), torch.remainder(i, acts.shape[1])


def top_correct_where_finfo_sort(acts, k):
    pos = torch.arange(acts.shape[1], device=acts.device)
    m = torch.where(pos == 0, torch.finfo(acts.dtype).min, acts)
    v, i = torch.sort(m.reshape(-1), descending=True, stable=True)
    s, p = torch.unravel_index(i[:k], acts.shape)
    return v[:k], s, p


def top_correct_filter_after_full_sort(acts, k):
    v, i = acts.flatten().sort(descending=True)
    s, p = i // acts.shape[1], i % acts.shape[1]
    keep = p != 0
    return v[keep][:k], s[keep][:k], p[keep][:k]


def top_correct_int32(acts, k):
    m = acts.clone()
    m[:, 0] = -float("inf")
    v, i = m.flatten().topk(k)
    i = i.int()
    return v, i // acts.shape[1], i % acts.shape[1]


def test_top_drops_last_sequence_is_named():
    assert_fails(p6.test_top_activations, top_drops_last_sequence, "last_sequence_dropped")


def test_top_half_precision_is_named():
    err = assert_fails(p6.test_top_activations, top_half_precision, "low_precision")
    assert "float16" in err.message


def test_top_correct_variants_pass():
    for impl in (top_correct_min_minus_one, top_correct_where_finfo_sort, top_correct_filter_after_full_sort):
        assert_passes(p6.test_top_activations, impl)
    assert_passes(p6.test_top_activations, top_correct_int32)


# --- steer_with_latent ----------------------------------------------------------------------------------------
def steer_whole_decoder_norm(model, sae, tokens, latent, coeff):
    v = coeff * sae.W_dec[latent] / sae.W_dec.norm()
    return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, lambda a, hook: a + v)])


def steer_correct_at_mlp_out(model, sae, tokens, latent, coeff):
    v = coeff * sae.W_dec[latent] @ model.W_out[0]
    return model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_mlp_out", lambda a, hook: a + v)])


def steer_correct_resid_post_inplace(model, sae, tokens, latent, coeff):
    v = coeff * torch.einsum("m,md->d", sae.W_dec[latent], model.W_out[0])

    def hook(a, hook):
        a += v

    return model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_resid_post", hook)])


def test_steer_whole_decoder_norm_is_named():
    err = assert_fails(p6.test_steer_with_latent, steer_whole_decoder_norm, "steer_scaled")
    assert "WHOLE decoder" in err.message


def test_steer_correct_variants_pass():
    assert_passes(p6.test_steer_with_latent, steer_correct_at_mlp_out)
    assert_passes(p6.test_steer_with_latent, steer_correct_resid_post_inplace)


# --- ablate_latent --------------------------------------------------------------------------------------------
def _ablate(edit):
    def impl(model, sae, tokens, latent):
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, lambda a, hook: edit(a, sae, latent))])

    return impl


def test_ablate_f_of_reconstruction_is_named():
    edit = lambda a, sae, i: a - sae.encode(sae(a))[..., i, None] * sae.W_dec[i]
    err = assert_fails(p6.test_ablate_latent, _ablate(edit), "f_source")
    assert "reconstruction" in err.message


def test_ablate_projection_of_centred_act_is_named():
    edit = lambda a, sae, i: a - ((a - sae.b_dec) @ sae.W_dec[i])[..., None] * sae.W_dec[i]
    err = assert_fails(p6.test_ablate_latent, _ablate(edit), "f_source")
    assert "b_dec" in err.message


def test_ablate_two_latent_slice_is_named():
    edit = lambda a, sae, i: a - sae.encode(a)[..., i : i + 2].sum(-1, keepdim=True) * sae.W_dec[i]
    assert_fails(p6.test_ablate_latent, _ablate(edit), "latent_slice")


def test_ablate_next_latent_is_named():
    edit = lambda a, sae, i: a - sae.encode(a)[..., i + 1, None] * sae.W_dec[i]
    err = assert_fails(p6.test_ablate_latent, _ablate(edit), "other_latent_f")
    assert "index slip" in err.hint


def test_ablate_zeros_where_silent_is_named():
    def edit(a, sae, i):
        f = sae.encode(a)[..., i, None]
        return torch.where(f > 0, a - f * sae.W_dec[i], torch.zeros_like(a))

    err = assert_fails(p6.test_ablate_latent, _ablate(edit), "zeroed_positions")
    assert "does not fire" in err.message


def test_ablate_correct_variants_pass():
    def decode_delta(a, sae, i):
        f = sae.encode(a)
        g = f.clone()
        g[..., i] = 0
        return a + sae.decode(g) - sae.decode(f)

    def manual_clamp(a, sae, i):
        pre = torch.einsum("bsm,m->bs", a - sae.b_dec, sae.W_enc[:, i]) + sae.b_enc[i]
        return a - torch.einsum("bs,m->bsm", F.relu(pre), sae.W_dec[i])

    assert_passes(p6.test_ablate_latent, _ablate(decode_delta))
    assert_passes(p6.test_ablate_latent, _ablate(manual_clamp))


def test_ablate_previous_latent_is_named():
    edit = lambda a, sae, i: a - sae.encode(a)[..., i - 1, None] * sae.W_dec[i]
    err = assert_fails(p6.test_ablate_latent, _ablate(edit), "other_latent_f")
    assert "index slip" in err.hint
