"""Proofs for part 6 after the fresh43 measurement: topk(k − 1) named as the right top k's first k − 1 (`too_few`),
steering by torch.maximum(act, coeff·d) (`steer_clamped`) or by coeff·relu(d) (`steer_elementwise`), "fires" above
the token's mean activation (`statistic_threshold`), a zero-ablation that changed nothing (`zero_difference`), a
z-scored logit effect (`logit_affine`), and a count off by one named n_tokens (not a config size)."""

from __future__ import annotations

import torch

import tests.part6_lm_saes as p6
from solutions import part6_lm_saes as ref
from tests.proving import assert_fails


def _acts(model, sae, batch):
    _, cache = model.run_with_cache(batch, names_filter=sae.hook_name)
    return cache[sae.hook_name]


def test_topk_k_minus_one_named():
    def top_activations(acts, k):
        m = acts.clone()
        m[:, 0] = -float("inf")
        v, i = m.flatten().topk(k - 1)
        return v, i // acts.shape[1], i % acts.shape[1]

    assert "k − 1" in assert_fails(p6.test_top_activations, top_activations, "too_few").message


def _steer(fn):
    def steer_with_latent(model, sae, tokens, latent, coeff):
        return model.run_with_hooks(
            tokens, fwd_hooks=[(sae.hook_name, lambda a, hook: fn(a, sae.W_dec[latent], coeff))]
        )

    return steer_with_latent


def test_steer_max_and_relu_named():
    clamped = assert_fails(p6.test_steer_with_latent, _steer(lambda a, d, c: torch.maximum(a, c * d)), "steer_clamped")
    assert "torch.maximum" in clamped.message
    relu = _steer(lambda a, d, c: a + c * d.clamp(min=0))
    assert "relu" in assert_fails(p6.test_steer_with_latent, relu, "steer_elementwise").message


def test_frequency_above_token_mean_and_off_by_one():
    def above_mean(model, sae, tokens, batch_size=32):
        counts, n = torch.zeros(sae.d_sae), 0
        for s in range(0, tokens.shape[0], batch_size):
            a = sae.encode(_acts(model, sae, tokens[s : s + batch_size])[:, 1:])
            counts += (a > a.mean(-1, keepdim=True)).float().sum((0, 1))
            n += a.shape[0] * a.shape[1]
        return counts / n

    hint = assert_fails(p6.test_latent_frequencies, above_mean, "statistic_threshold").hint
    assert "token's mean" in hint

    def unbiased(model, sae, tokens, batch_size=32):
        out = ref.latent_frequencies(model, sae, tokens, batch_size)
        n = tokens.shape[0] * (tokens.shape[1] - 1)
        return out * n / (n - 1)

    assert "n_tokens" in assert_fails(p6.test_latent_frequencies, unbiased, "scale").hint


def test_zero_ablation_on_a_copy_named():
    def reconstruction_losses(model, sae, tokens):
        def loss(fn=None):
            hooks = [(sae.hook_name, fn)] if fn else []
            return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()

        c, s = loss(), loss(lambda a, hook: sae.decode(sae.encode(a)))
        with torch.no_grad():
            model.W_out[0].zero_()  # a stacked copy in TransformerLens: nothing is ablated
        z = loss()
        return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": (z - s) / (z - c)}

    assert "copy" in assert_fails(p6.test_reconstruction_losses, reconstruction_losses, "zero_difference").hint


def test_logit_effect_z_scored_named():
    def latent_logit_effect(model, sae, latent):
        e = sae.W_dec[latent] @ model.W_out[0] @ model.W_U
        return (e - e.mean()) / e.std()

    assert (
        "standard deviation" in assert_fails(p6.test_latent_logit_effect, latent_logit_effect, "logit_affine").message
    )
