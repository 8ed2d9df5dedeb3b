"""Proofs for the part 6 checkers: sequences counted twice by overlapping batches, losses normalised over another
axis than the vocabulary or a norm-matched splice, and what a steering or ablation hook did to the activation
(multiplicative, a unit steer whose logit change is scaled, f read from the reconstruction, the SAE error dropped
where the latent fires); the scale of a per-position mean divided again names the 47 positions after BOS."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import tests.part6_lm_saes as checks
from tests.proving import assert_fails


@pytest.mark.parametrize("bug, code", [("overlap", "counted_twice"), ("pos_mean", "scale")])
def test_latent_frequencies_overlap_and_position_mean(bug, code):
    def latent_frequencies(model, sae, tokens, batch_size=32):
        counts, n = torch.zeros(sae.d_sae, device=sae.W_enc.device), 0
        for s in range(0, tokens.shape[0], batch_size):
            end = s + batch_size + (bug == "overlap")
            _, cache = model.run_with_cache(tokens[s:end], names_filter=sae.hook_name)
            fired = (sae.encode(cache[sae.hook_name])[:, 1:] > 0).float()
            counts += fired.mean(1).sum(0) if bug == "pos_mean" else fired.sum((0, 1))
            n += fired.shape[0] * fired.shape[1]
        return counts / n

    err = assert_fails(checks.test_latent_frequencies, latent_frequencies, code)
    if bug == "overlap":
        assert "sequences 4 and 8 twice" in err.message
    else:
        assert "47 (positions_after_bos" in err.hint


@pytest.mark.parametrize("bug, code", [("ce_seq_axis", "softmax_axis"), ("renorm", "renormalised_splice")])
def test_reconstruction_losses_softmax_axis_and_renorm(bug, code):
    def reconstruction_losses(model, sae, tokens):
        def loss(hooks):
            if bug == "ce_seq_axis":
                lp = model.run_with_hooks(tokens, fwd_hooks=hooks)[:, :-1].log_softmax(dim=1)
                return -lp.gather(-1, tokens[:, 1:, None]).mean().item()
            return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()

        def splice(act, hook):
            rec = sae.decode(sae.encode(act))
            return rec * act.norm(dim=-1, keepdim=True) / rec.norm(dim=-1, keepdim=True) if bug == "renorm" else rec

        clean, spliced = loss([]), loss([(sae.hook_name, splice)])
        zero = loss([(sae.hook_name, lambda a, hook: torch.zeros_like(a))])
        return {
            "clean": clean,
            "spliced": spliced,
            "zero_ablated": zero,
            "recovered": (zero - spliced) / (zero - clean),
        }

    err = assert_fails(checks.test_reconstruction_losses, reconstruction_losses, code)
    if bug == "ce_seq_axis":
        assert "sequence axis (dim=1)" in err.hint


@pytest.mark.parametrize("bug, code", [("mult", "steer_multiplicative"), ("scaled", "scaled_logit_change")])
def test_steer_with_latent_multiplicative_and_scaled_change(bug, code):
    def steer_with_latent(model, sae, tokens, latent, coeff):
        if bug == "scaled":
            clean = model(tokens)
            unit = model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, lambda a, hook: a + sae.W_dec[latent])])
            return clean + coeff * (unit - clean)
        hook = lambda act, hook: act * (1 + coeff * sae.W_dec[latent])
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    assert_fails(checks.test_steer_with_latent, steer_with_latent, code)


@pytest.mark.parametrize("bug, code", [("recon_index", "f_source"), ("where_fires", "error_dropped")])
def test_ablate_latent_f_from_reconstruction_and_error_dropped(bug, code):
    def ablate_latent(model, sae, tokens, latent):
        def hook(act, hook):
            if bug == "recon_index":
                return act - sae(act)[..., latent, None] * sae.W_dec[latent]
            acts = sae.encode(act)
            a0 = acts.clone()
            a0[..., latent] = 0
            return torch.where((acts[..., latent] > 0)[..., None], sae.decode(a0), act)

        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    err = assert_fails(checks.test_ablate_latent, ablate_latent, code)
    assert "batch 0" not in err.hint


def test_ablate_latent_relu_by_hand_accepted():
    """f by hand with a plain ReLU is right for this ReLU SAE (no threshold): the hook probes must not reject it."""

    def ablate_latent(model, sae, tokens, latent):
        def hook(act, hook):
            f = F.relu((act - sae.b_dec) @ sae.W_enc + sae.b_enc)[..., latent]
            return act - f[..., None] * sae.W_dec[latent]

        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    checks.test_ablate_latent(ablate_latent, device="cpu")
