"""Proofs for part 6 after round AV's fix round: a decoder row read through W_dec.view(d_mlp, d_sae)[:, latent] or a
flat slice W_dec.flatten()[latent : latent + d_mlp] is named (`row_layout`); an ablation whose coefficient is the
least-squares coordinate (pinv) or f of gelu(act) is named (`coefficient_least_squares`,
`coefficient_transformed_act`); cross_entropy fed softmax probabilities (`softmax_twice`), a zero-ablation of only
the positive entries (`zeroed_partly`), and a frequency count that flattens each batch before [1:]
(`flattened_then_sliced`) are named."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import tests.part6_lm_saes as p6
from tests.proving import assert_fails, assert_passes


def freq_flatten_then_drop_first_row(model, sae, tokens, batch_size=32):
    counts = torch.zeros(sae.d_sae)
    n = 0
    for start in range(0, tokens.shape[0], batch_size):
        _, cache = model.run_with_cache(tokens[start : start + batch_size], names_filter=sae.hook_name)
        x = cache[sae.hook_name].flatten(0, 1)[1:]
        acts = sae.encode(x)
        counts += (acts > 0).float().sum(0)
        n += acts.shape[0]
    return counts / n


def _ce_double_softmax(model, tokens, hooks):
    logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
    probs = logits.softmax(-1)
    return F.cross_entropy(probs[:, :-1].flatten(0, 1), tokens[:, 1:].flatten()).item()


def losses_double_softmax(model, sae, tokens):
    c = _ce_double_softmax(model, tokens, [])
    s = _ce_double_softmax(model, tokens, [(sae.hook_name, lambda a, hook: sae.decode(sae.encode(a)))])
    z = _ce_double_softmax(model, tokens, [(sae.hook_name, lambda a, hook: torch.zeros_like(a))])
    return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": (z - s) / (z - c)}


def _loss(model, tokens, hooks):
    return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()


def losses_zero_only_active_neurons(model, sae, tokens):
    c = _loss(model, tokens, [])
    s = _loss(model, tokens, [(sae.hook_name, lambda a, hook: sae.decode(sae.encode(a)))])
    z = _loss(model, tokens, [(sae.hook_name, lambda a, hook: torch.where(a > 0, torch.zeros_like(a), a))])
    return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": (z - s) / (z - c)}


def effect_view_not_transpose(model, sae, latent):
    cols = sae.W_dec.view(sae.W_dec.shape[1], sae.W_dec.shape[0])
    return cols[:, latent] @ model.W_out[0] @ model.W_U


def effect_flat_slice_stride(model, sae, latent):
    d_mlp = sae.W_dec.shape[1]
    row = sae.W_dec.flatten()[latent : latent + d_mlp]
    return row @ model.W_out[0] @ model.W_U


def ablate_pinv_coefficient(model, sae, tokens, latent):
    P = torch.linalg.pinv(sae.W_dec)

    def h(a, hook):
        f = (a - sae.b_dec) @ P[:, latent]
        return a - f[..., None] * sae.W_dec[latent]

    return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, h)])


def ablate_gelu_before_encode(model, sae, tokens, latent):
    def h(a, hook):
        f = sae.encode(F.gelu(a))[..., latent]
        return a - f[..., None] * sae.W_dec[latent]

    return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, h)])


def test_freq_flatten_then_drop_first_row():
    assert_fails(p6.test_latent_frequencies, freq_flatten_then_drop_first_row, "flattened_then_sliced")


def test_losses_double_softmax():
    assert_fails(p6.test_reconstruction_losses, losses_double_softmax, "softmax_twice")


def test_losses_zero_only_active_neurons():
    assert_fails(p6.test_reconstruction_losses, losses_zero_only_active_neurons, "zeroed_partly")


def test_effect_view_not_transpose():
    assert_fails(p6.test_latent_logit_effect, effect_view_not_transpose, "row_layout")


def test_effect_flat_slice_stride():
    assert_fails(p6.test_latent_logit_effect, effect_flat_slice_stride, "row_layout")


def test_ablate_pinv_coefficient():
    assert_fails(p6.test_ablate_latent, ablate_pinv_coefficient, "coefficient_least_squares")


def test_ablate_gelu_before_encode():
    assert_fails(p6.test_ablate_latent, ablate_gelu_before_encode, "coefficient_transformed_act")


def freq_correct_bincount(model, sae, tokens, batch_size=32):
    counts = torch.zeros(sae.d_sae, dtype=torch.long)
    n = 0
    for batch in tokens.split(batch_size):
        _, cache = model.run_with_cache(batch, names_filter=sae.hook_name)
        on = sae.encode(cache[sae.hook_name])[:, 1:].ne(0)
        counts += torch.bincount(on.nonzero()[:, -1], minlength=sae.d_sae)
        n += on.shape[0] * on.shape[1]
    return counts.to(torch.float32) / n


def losses_correct_cached_recon(model, sae, tokens):
    _, cache = model.run_with_cache(tokens, names_filter=sae.hook_name)
    recon = sae(cache[sae.hook_name])
    c = float(model(tokens, return_type="loss"))
    s = _loss(model, tokens, [(sae.hook_name, lambda a, hook: recon)])
    z = _loss(model, tokens, [(sae.hook_name, lambda a, hook: a.new_zeros(a.shape))])
    rec = (torch.tensor(z, dtype=torch.float64) - s) / (torch.tensor(z, dtype=torch.float64) - c)
    return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": rec.item()}


def effect_correct_decode_difference(model, sae, latent):
    one = torch.zeros(sae.d_sae)
    one[latent] = 1.0
    d = sae.decode(one) - sae.decode(torch.zeros(sae.d_sae))
    return model.W_U.T @ (model.W_out[0].T @ d)


def ablate_correct_at_mlp_out(model, sae, tokens, latent):
    _, cache = model.run_with_cache(tokens, names_filter=sae.hook_name)
    f = sae.encode(cache[sae.hook_name])[..., latent]
    delta = f[..., None] * (sae.W_dec[latent] @ model.W_out[0])
    return model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_mlp_out", lambda a, hook: a - delta)])


def test_correct_variants_pass():
    assert_passes(p6.test_latent_frequencies, freq_correct_bincount)
    assert_passes(p6.test_reconstruction_losses, losses_correct_cached_recon)
    assert_passes(p6.test_latent_logit_effect, effect_correct_decode_difference)
    assert_passes(p6.test_ablate_latent, ablate_correct_at_mlp_out)
