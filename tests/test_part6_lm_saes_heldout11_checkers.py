"""Proofs for part 6's checkers: the SAE's bias slips (b_dec subtracted twice or added, b_enc left out, b_dec added
again after decode), one sequence's reconstruction for all, a decoder row rescaled to unit L1 norm, steering at
hook_mlp_out with b_out, a constant steering vector that is another row or carries b_dec (never called 'differs
between positions'), an ablation rescaled to the activation's norm or removing another row, and topk(k + 1)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import tests.part6_lm_saes as checks
from tests.proving import assert_fails


def _encode(sae, x, bug):
    if bug == "b_dec_twice":
        return sae.encode(x - sae.b_dec)
    if bug == "no_b_enc":
        return F.relu((x - sae.b_dec) @ sae.W_enc)
    if bug == "encode_sign":
        return F.relu((x + sae.b_dec) @ sae.W_enc + sae.b_enc)
    return sae.encode(x)


@pytest.mark.parametrize("bug", ["b_dec_twice", "no_b_enc", "encode_sign"])
def test_latent_frequencies_encode_slips(bug):
    def latent_frequencies(model, sae, tokens, batch_size=32):
        fired = []
        for b in torch.split(tokens, batch_size):
            _, cache = model.run_with_cache(b, names_filter=sae.hook_name)
            fired.append((_encode(sae, cache[sae.hook_name], bug)[:, 1:] > 0).flatten(0, 1))
        return torch.cat(fired).float().mean(0)

    assert_fails(checks.test_latent_frequencies, latent_frequencies, bug)


@pytest.mark.parametrize("bug", ["b_dec_twice", "one_sequence"])
def test_reconstruction_losses_splice_slips(bug):
    def reconstruction_losses(model, sae, tokens):
        def splice(act, hook):
            if bug == "one_sequence":
                return sae.decode(sae.encode(act[0]))
            return sae.decode(sae.encode(act)) + sae.b_dec

        loss = lambda hooks: model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()
        c, s = loss([]), loss([(sae.hook_name, splice)])
        z = loss([(sae.hook_name, lambda a, hook: torch.zeros_like(a))])
        return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": (z - s) / (z - c)}

    assert_fails(checks.test_reconstruction_losses, reconstruction_losses, bug)


def test_top_activations_one_more_than_k():
    def top_activations(acts, k):
        m = acts.clone()
        m[:, 0] = -torch.inf
        v, i = m.flatten().topk(k + 1)
        return v, i // acts.shape[1], i % acts.shape[1]

    err = assert_fails(checks.test_top_activations, top_activations, "shape")
    assert "one more than k" in err.message and "acts.shape" not in err.hint


def test_latent_logit_effect_l1_unit_row():
    def latent_logit_effect(model, sae, latent):
        d = sae.W_dec[latent]
        return (d / d.abs().sum()) @ model.W_out[0] @ model.W_U

    err = assert_fails(checks.test_latent_logit_effect, latent_logit_effect, "row_normalised")
    assert "L1" in err.hint


@pytest.mark.parametrize(
    "bug, code",
    [("mlp_out_b_out", "b_out_added"), ("prev", "steer_row"), ("minus_b_dec", "steer_vector"), ("rot", "steer_vector")],
)
def test_steer_with_latent_constant_vectors(bug, code):
    def steer_with_latent(model, sae, tokens, latent, coeff):
        d = sae.W_dec[latent]
        if bug == "mlp_out_b_out":
            v = coeff * d @ model.W_out[0] + model.b_out[0]
            return model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_mlp_out", lambda a, hook: a + v)])
        if bug == "prev":
            v = coeff * sae.W_dec[latent - 1]
        elif bug == "minus_b_dec":
            v = coeff * (d - sae.b_dec)
        else:  # a constant vector nobody listed: the row with its entries rolled
            v = coeff * d.roll(1)
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, lambda a, hook: a + v)])

    err = assert_fails(checks.test_steer_with_latent, steer_with_latent, code)
    assert "differs between positions" not in err.message
    if bug == "prev":
        assert "latent − 1" in err.message
    if bug == "rot":
        assert "cosine" in err.message and "constant vector" in err.message


@pytest.mark.parametrize(
    "bug, code", [("encode_sign", "encode_sign"), ("renorm", "ablate_renormalised"), ("next_row", "ablate_row")]
)
def test_ablate_latent_sign_norm_and_row(bug, code):
    def ablate_latent(model, sae, tokens, latent):
        def hook(act, hook):
            f = _encode(sae, act, bug)[..., latent, None]
            d = sae.W_dec[latent + 1] if bug == "next_row" else sae.W_dec[latent]
            new = act - f * d
            if bug == "renorm":
                new = new * act.norm(dim=-1, keepdim=True) / new.norm(dim=-1, keepdim=True)
            return new

        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    err = assert_fails(checks.test_ablate_latent, ablate_latent, code)
    if bug == "next_row":
        assert "latent + 1" in err.message


def test_short_last_batch_weights_named_batch_means_not_overlap():
    from tests.checking import CheckFailed
    from tests.part6_lm_saes_hints import sequence_weights

    torch.manual_seed(0)
    fired = (torch.rand(10, 7, 12) > 0.6).float()
    per_batch = [fired[s : s + 4].mean((0, 1)) for s in range(0, 10, 4)]
    out = torch.stack(per_batch).sum(0) / (10 // 4)
    with pytest.raises(CheckFailed) as err:
        sequence_weights(out, fired, 4)
    assert err.value.code == "batch_means" and "overlap" not in err.value.hint
    assert "a count of batches as the divisor" in err.value.hint
