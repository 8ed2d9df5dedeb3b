"""Proofs for the part 6 checkers from the fresh16 held-out trial (the others are in
test_part6_lm_saes_checkers.py and ..._heldout*_checkers.py)."""

from __future__ import annotations

import torch

import tests.part6_lm_saes as checks
from tests.proving import assert_fails


def test_top_activations_argmax_not_knocked_out_fresh16():
    def top_activations(acts, k):
        seq = acts.shape[1]
        masked = acts.clone()
        masked[:, 0] = -torch.inf
        vals, idx = [], []
        for _ in range(k):
            i = masked.flatten().argmax()
            vals.append(masked.flatten()[i])
            idx.append(i)
        idx = torch.stack(idx)
        return torch.stack(vals), idx // seq, idx % seq

    err = assert_fails(checks.test_top_activations, top_activations, "not_knocked_out")
    assert "-inf" in err.hint


def test_latent_frequencies_shadowed_tokens_fresh16():
    def latent_frequencies(model, sae, tokens, batch_size=32):
        counts = torch.zeros(sae.d_sae, device=sae.W_enc.device)
        for tokens in tokens.split(batch_size):  # noqa: B020  the loop variable shadows `tokens`
            _, cache = model.run_with_cache(tokens, names_filter=sae.hook_name)
            counts += (sae.encode(cache[sae.hook_name][:, 1:]) > 0).float().sum((0, 1))
        return counts / (tokens.shape[0] * (tokens.shape[1] - 1))

    err = assert_fails(checks.test_latent_frequencies, latent_frequencies, "scale")
    assert "sequences_in_the_last_batch" in err.hint


def test_latent_frequencies_sum_without_dims_fresh16():
    def latent_frequencies(model, sae, tokens, batch_size=32):
        counts, n = torch.zeros(sae.d_sae, device=sae.W_enc.device), 0
        for batch in tokens.split(batch_size):
            _, cache = model.run_with_cache(batch, names_filter=sae.hook_name)
            fired = sae.encode(cache[sae.hook_name])[:, 1:] > 0
            counts += fired.float().sum()
            n += fired.shape[0] * fired.shape[1]
        return counts / n

    assert_fails(checks.test_latent_frequencies, latent_frequencies, "latent_axis_reduced")


def _losses(bug):
    def reconstruction_losses(model, sae, tokens):
        def splice(act, hook):
            f = sae.encode(act)
            return f @ sae.W_enc.T + sae.b_dec if bug == "tied_decode" else torch.relu(sae.decode(f))

        L = lambda hooks: float(model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks))
        clean, s = L([]), L([(sae.hook_name, splice)])
        z = L([(sae.hook_name, lambda act, hook: torch.zeros_like(act))])
        return {"clean": clean, "spliced": s, "zero_ablated": z, "recovered": (z - s) / (z - clean)}

    return reconstruction_losses


def test_reconstruction_losses_tied_decode_fresh16():
    assert_fails(checks.test_reconstruction_losses, _losses("tied_decode"), "tied_decode")


def test_reconstruction_losses_relu_reconstruction_fresh16():
    assert_fails(checks.test_reconstruction_losses, _losses("relu"), "relu_reconstruction")


def test_latent_logit_effect_W_out_left_out_fresh16():
    err = assert_fails(
        checks.test_latent_logit_effect, lambda model, sae, latent: sae.W_dec[latent] @ model.W_U, "missing_W_out"
    )
    assert "W_out" in err.hint


def test_latent_logit_effect_steered_minus_clean_fresh16():
    def latent_logit_effect(model, sae, latent):
        toks = torch.tensor([[0]], device=sae.W_dec.device)
        clean = model(toks)[0, -1]
        hook = lambda a, hook: a + sae.W_dec[latent]
        return model.run_with_hooks(toks, fwd_hooks=[(sae.hook_name, hook)])[0, -1] - clean

    err = assert_fails(checks.test_latent_logit_effect, latent_logit_effect, "ran_model")
    assert "LayerNorm" in err.hint


def test_ablate_latent_f_summed_over_positions_fresh16():
    def ablate_latent(model, sae, tokens, latent):
        def hook(act, hook):
            f = sae.encode(act)[..., latent].sum(1, keepdim=True)
            return act - f[..., None] * sae.W_dec[latent]

        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    assert_fails(checks.test_ablate_latent, ablate_latent, "f_summed")
